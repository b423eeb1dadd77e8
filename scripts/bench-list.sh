#!/usr/bin/env bash
# Benchmark `tanto list --json` as a whole process on a generated hub cache.
#
#   scripts/bench-list.sh            # 1,000 models, 30 timed runs
#   N=5000 RUNS=50 scripts/bench-list.sh
#   KEEP=1 scripts/bench-list.sh     # keep the generated cache (path printed)
#
# Builds tanto and the testkit's gen_cache example in release mode, generates a
# cache of N models (GGUF, HF safetensors, MLX 4-bit, embedders, Whisper, llava,
# about 15 % broken), checks that `tanto list --json` sees all of them, then times
# it with hyperfine when installed (apt-get install -y hyperfine), else with a
# shell loop. Prints the median in milliseconds. Target: <= 30 ms on 2 cores.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
N="${N:-1000}"
RUNS="${RUNS:-30}"
WARMUP="${WARMUP:-3}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"

log() { printf '[bench-list] %s\n' "$*" >&2; }

log "building release binaries (target dir: $TARGET_DIR)"
(cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --quiet --release -p tanto --bin tanto)
(cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --quiet --release -p tanto-testkit --example gen_cache)
BIN="$TARGET_DIR/release/tanto"
GEN="$TARGET_DIR/release/examples/gen_cache"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tanto-bench.XXXXXX")"
if [[ -z "${KEEP:-}" ]]; then
    trap 'rm -rf "$WORK"' EXIT
else
    log "keeping $WORK"
fi
mkdir -p "$WORK/ws"
"$GEN" "$WORK/hub" "$N"

export HF_HUB_CACHE="$WORK/hub" HF_HOME="$WORK/hf" TANTO_WORKSPACE_HOME="$WORK/ws" NO_COLOR=1
unset HUGGINGFACE_HUB_CACHE MLXK_WORKSPACE_HOME

count="$("$BIN" list --json | grep -m1 '"count"' | tr -dc '0-9')"
if [[ "$count" != "$N" ]]; then
    log "error: tanto list --json reported count=$count, expected $N"
    exit 1
fi
log "tanto list --json sees $count models; timing $RUNS runs ($(nproc) cores)"

median_ms=""
if command -v hyperfine >/dev/null 2>&1; then
    hyperfine --shell=none --warmup "$WARMUP" --runs "$RUNS" \
        --export-json "$WORK/hyperfine.json" "$BIN list --json" >&2
    # "median": <seconds> in the exported JSON.
    median_s="$(sed -nE 's/.*"median": *([0-9.eE+-]+).*/\1/p' "$WORK/hyperfine.json" | head -n1)"
    median_ms="$(awk -v s="$median_s" 'BEGIN { printf "%.1f", s * 1000 }')"
else
    log "hyperfine not installed; timing with a shell loop"
    for _ in $(seq "$WARMUP"); do "$BIN" list --json >/dev/null; done
    : >"$WORK/times"
    for _ in $(seq "$RUNS"); do
        t0=$(date +%s%N)
        "$BIN" list --json >/dev/null
        t1=$(date +%s%N)
        echo $(( (t1 - t0) / 1000 )) >>"$WORK/times"
    done
    median_ms="$(sort -n "$WORK/times" | awk '{ a[NR] = $1 } END {
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.1f", m / 1000 }')"
fi
echo "tanto list --json, $N models: median ${median_ms} ms"
