#!/usr/bin/env bash
# Fuzz tanto's parsers with cargo-fuzz (libFuzzer, nightly toolchain).
#
#   FUZZ_SECONDS=30 bash scripts/fuzz.sh             # every target, 30 s each (CI)
#   FUZZ_TARGETS=core_gguf,chat_template bash scripts/fuzz.sh
#   FUZZ_RUNS=10000000 FUZZ_TARGETS=core_gguf bash scripts/fuzz.sh   # long mode: -runs
#
# Two fuzz crates, each its own workspace outside the main one:
#   fuzz/core    needs only tanto-core (fast to build): core_gguf, core_safetensors, core_config
#   fuzz/engine  tanto-engine (+ tanto-server): engine_gguf, tokenizer_json, tokenizer_gguf,
#                chat_template, openai_request (needs tanto_server::{parse_chat, parse_completion}
#                exported; skipped while they are not)
# Committed seeds: fuzz/seeds/<target>/ (read-only to the fuzzer). New corpus entries
# and crash/timeout/OOM inputs go under $FUZZ_WORK (default fuzz/corpus, fuzz/artifacts).
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 30; 0 = no limit, the default in long mode)
#   FUZZ_RUNS       executions per target (libFuzzer -runs); unset = until FUZZ_SECONDS
#   FUZZ_TARGETS    comma/space separated subset (default: all)
#   FUZZ_RSS_MB     memory limit per fuzzer process, MiB (default 2048: above it = OOM failure)
#   FUZZ_TIMEOUT    seconds one input may take (default 10: above it = timeout failure)
#   FUZZ_SANITIZER  none (default) | address. The parsers are safe Rust, where a
#                   sanitizer finds nothing panics/overflow checks do not, at half the speed.
#   FUZZ_TARGET_DIR build dir (default fuzz/target; never the main build's: nightly+fuzz flags)
#   FUZZ_WORK       corpus/artifact root (default fuzz/)
#   FUZZ_BUILD=0    skip the build (binaries already there)
# Exit status: 0 when every run ended without a crash, timeout or OOM; 1 otherwise; 2 on
# a build or setup failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RUNS=${FUZZ_RUNS:-}
if [[ -n "$RUNS" ]]; then SECONDS_EACH=${FUZZ_SECONDS:-0}; else SECONDS_EACH=${FUZZ_SECONDS:-30}; fi
RSS_MB=${FUZZ_RSS_MB:-2048}
TIMEOUT=${FUZZ_TIMEOUT:-10}
SANITIZER=${FUZZ_SANITIZER:-none}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$ROOT/fuzz/target}
WORK=${FUZZ_WORK:-$ROOT/fuzz}
TRIPLE=$(rustc +nightly -vV 2>/dev/null | sed -n 's/^host: //p')

CORE_TARGETS="core_gguf core_safetensors core_config"
ENGINE_TARGETS="engine_gguf tokenizer_json tokenizer_gguf chat_template openai_request"

die() { echo "fuzz.sh: $*" >&2; exit 2; }

command -v cargo >/dev/null || die "cargo not found"
[[ -n "$TRIPLE" ]] || die "the nightly toolchain is missing (rustup toolchain install nightly)"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked || die "cargo install cargo-fuzz failed"
fi

# tanto-server's request parsers are reachable only once the crate re-exports them.
server_exported() {
    grep -Eq 'pub use (crate::)?openai::\{?[^;]*parse_chat' crates/tanto-server/src/lib.rs
}

wanted() {
    [[ -z "${FUZZ_TARGETS:-}" ]] && return 0
    [[ " ${FUZZ_TARGETS//,/ } " == *" $1 "* ]]
}

crate_of() {
    if [[ " $CORE_TARGETS " == *" $1 "* ]]; then echo core; else echo engine; fi
}

if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    for t in ${FUZZ_TARGETS//,/ }; do
        [[ " $CORE_TARGETS $ENGINE_TARGETS " == *" $t "* ]] || die "unknown target '$t'"
    done
fi

BUILD_FLAGS=(--release --debug-assertions --sanitizer "$SANITIZER" --codegen-units "${FUZZ_CGU:-16}")
build() { # crate [features]
    local crate=$1 feats=${2:-} t targets=() start
    for t in $( [[ $crate == core ]] && echo "$CORE_TARGETS" || echo "$ENGINE_TARGETS"); do
        wanted "$t" || continue
        [[ $t == openai_request && -z "$feats" ]] && continue
        targets+=("$t")
    done
    ((${#targets[@]})) || return 0
    start=$(date +%s)
    local args=("${BUILD_FLAGS[@]}")
    [[ -n "$feats" ]] && args+=(--features "$feats")
    for t in "${targets[@]}"; do
        echo "fuzz.sh: building $t" >&2
        cargo +nightly fuzz build --fuzz-dir "fuzz/$crate" "${args[@]}" "$t" ||
            die "build of fuzz/$crate $t failed"
    done
    echo "fuzz.sh: built fuzz/$crate in $(( $(date +%s) - start )) s" >&2
}

SERVER_FEATS=""
server_exported && SERVER_FEATS=server
if [[ "${FUZZ_BUILD:-1}" != 0 ]]; then
    build core
    build engine "$SERVER_FEATS"
fi

BIN_DIR="$CARGO_TARGET_DIR/$TRIPLE/release"
ROWS=()
FAILED=0
for t in $CORE_TARGETS $ENGINE_TARGETS; do
    wanted "$t" || continue
    if [[ $t == openai_request && -z "$SERVER_FEATS" ]]; then
        ROWS+=("$t|-|-|skipped (tanto-server does not export parse_chat/parse_completion)")
        continue
    fi
    bin="$BIN_DIR/$t"
    [[ -x "$bin" ]] || die "no fuzz binary at $bin (build first)"
    corpus="$WORK/corpus/$t" art="$WORK/artifacts/$t" log="$WORK/artifacts/$t.log"
    mkdir -p "$corpus" "$art"
    args=(-max_total_time="$SECONDS_EACH" -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$RSS_MB"
          -timeout="$TIMEOUT" -print_final_stats=1 -artifact_prefix="$art/")
    [[ -n "$RUNS" ]] && args+=(-runs="$RUNS")
    echo "fuzz.sh: running $t (${RUNS:+$RUNS runs, }${SECONDS_EACH}s limit; log $log)" >&2
    start=$(date +%s)
    "$bin" "${args[@]}" "$corpus" "$ROOT/fuzz/seeds/$t" >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    if ((rc == 0)); then
        result=ok
    else
        FAILED=1
        if grep -q 'ERROR: libFuzzer: timeout' "$log"; then result=TIMEOUT
        elif grep -Eq 'out-of-memory|malloc\(.*\) exceeds' "$log"; then result=OOM
        else result="CRASH (rc $rc)"; fi
        found=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
        result+="${found:+: $found}"
        [[ -z "$execs" ]] && execs=$(grep -Eo '^#[0-9]+' "$log" | tail -n1 | tr -d '#')
    fi
    ROWS+=("$t|${execs:-?}|$secs|$result")
done

printf '\n%-16s %14s %8s  %s\n' target executions seconds result
for r in "${ROWS[@]}"; do
    IFS='|' read -r t e s res <<<"$r"
    printf '%-16s %14s %8s  %s\n' "$t" "$e" "$s" "$res"
done
exit "$FAILED"
