#!/usr/bin/env bash
# Benchmark `tanto list --json` as a whole process on a generated hub cache,
# cold (empty probe cache) and warm, and `mlxk list --json` on the same cache.
#
#   scripts/bench-list.sh            # 1,000 models, 30 timed runs
#   N=5000 RUNS=50 scripts/bench-list.sh
#   KEEP=1 scripts/bench-list.sh     # keep the generated cache (path printed)
#   MLXK=/path/to/mlxk scripts/bench-list.sh   # compare with mlx-knife
#   TANTO_BIN=... GEN_CACHE=... scripts/bench-list.sh   # prebuilt binaries
#
# Builds tanto and the testkit's gen_cache example in release mode, generates a
# cache of N models (GGUF, HF safetensors, MLX 4-bit, embedders, Whisper, llava,
# about 15 % broken), checks that `tanto list --json` sees all of them, then times
# it with hyperfine when installed (apt-get install -y hyperfine), else with a
# shell loop:
#
#   cold:     every run starts with an empty probe cache (TANTO_CACHE_DIR is
#             emptied before each run), so it probes every model and stores
#             the results;
#   uncached: TANTO_PROBE_CACHE=0 (probes everything, stores nothing);
#   warm:     the probe cache is filled once, then every run reuses it.
#
# mlxk is timed when MLXK is set or ~/.cache/tanto/mlxk-venv/bin/mlxk exists
# (MLXK_RUNS runs, default 5: it is slow). Prints a table: tool, median ms and
# the ratio to mlxk (goal: warm >= 50x). Target: warm <= 30 ms on 2 cores.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
N="${N:-1000}"
RUNS="${RUNS:-30}"
WARMUP="${WARMUP:-3}"
MLXK_RUNS="${MLXK_RUNS:-5}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
MLXK="${MLXK:-}"
if [[ -z "$MLXK" && -x "$HOME/.cache/tanto/mlxk-venv/bin/mlxk" ]]; then
    MLXK="$HOME/.cache/tanto/mlxk-venv/bin/mlxk"
fi

log() { printf '[bench-list] %s\n' "$*" >&2; }

if [[ -n "${TANTO_BIN:-}" && -n "${GEN_CACHE:-}" ]]; then
    # Prebuilt binaries (a shared target dir may be rebuilt by others meanwhile).
    BIN="$TANTO_BIN"
    GEN="$GEN_CACHE"
else
    log "building release binaries (target dir: $TARGET_DIR)"
    (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --quiet --release -p tanto --bin tanto)
    (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --quiet --release -p tanto-testkit --example gen_cache)
    BIN="$TARGET_DIR/release/tanto"
    GEN="$TARGET_DIR/release/examples/gen_cache"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tanto-bench.XXXXXX")"
if [[ -z "${KEEP:-}" ]]; then
    trap 'rm -rf "$WORK"' EXIT
else
    log "keeping $WORK"
fi
mkdir -p "$WORK/ws" "$WORK/hf"
"$GEN" "$WORK/hf/hub" "$N"
if [[ -n "$MLXK" && -x "$MLXK" ]]; then
    # mlx-knife aborts the whole `list` on a dangling snapshot symlink
    # (FileNotFoundError), so both tools are timed on the cache without those repos.
    dangling=("$WORK"/hf/hub/models--bench-broken--dangling-symlink-*)
    if [[ -e "${dangling[0]}" ]]; then
        rm -rf "${dangling[@]}"
        N=$((N - ${#dangling[@]}))
        log "removed ${#dangling[@]} dangling-symlink repos (mlxk list aborts on them); $N models"
    fi
fi
# The probe cache does not store results of files changed in the last 2 s.
sleep 3

export HF_HUB_CACHE="$WORK/hf/hub" HF_HOME="$WORK/hf" TANTO_WORKSPACE_HOME="$WORK/ws" NO_COLOR=1
export TANTO_CACHE_DIR="$WORK/tanto-cache"
unset HUGGINGFACE_HUB_CACHE MLXK_WORKSPACE_HOME TANTO_PROBE_CACHE

count="$("$BIN" list --json | grep -m1 '"count"' | tr -dc '0-9')"
if [[ "$count" != "$N" ]]; then
    log "error: tanto list --json reported count=$count, expected $N"
    exit 1
fi
log "tanto list --json sees $count models ($(nproc) cores)"

# median_ms NAME RUNS WARMUP PREPARE CMD... → prints the median in ms
median_ms() {
    local name="$1" runs="$2" warmup="$3" prepare="$4"
    shift 4
    if command -v hyperfine >/dev/null 2>&1; then
        local args=(--shell=none --warmup "$warmup" --runs "$runs" --export-json "$WORK/$name.json")
        if [[ -n "$prepare" ]]; then
            args+=(--prepare "$prepare")
        fi
        hyperfine "${args[@]}" --command-name "$name" "$*" >&2
        local s
        s="$(sed -nE 's/.*"median": *([0-9.eE+-]+).*/\1/p' "$WORK/$name.json" | head -n1)"
        awk -v s="$s" 'BEGIN { printf "%.1f", s * 1000 }'
    else
        : >"$WORK/$name.times"
        for _ in $(seq "$warmup"); do
            [[ -n "$prepare" ]] && sh -c "$prepare"
            "$@" >/dev/null
        done
        for _ in $(seq "$runs"); do
            [[ -n "$prepare" ]] && sh -c "$prepare"
            local t0 t1
            t0=$(date +%s%N)
            "$@" >/dev/null
            t1=$(date +%s%N)
            echo $(((t1 - t0) / 1000)) >>"$WORK/$name.times"
        done
        sort -n "$WORK/$name.times" | awk '{ a[NR] = $1 } END {
            m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.1f", m / 1000 }'
    fi
}

cold="$(median_ms tanto-cold "$RUNS" 1 "rm -rf $TANTO_CACHE_DIR" "$BIN" list --json)"
uncached="$(median_ms tanto-uncached "$RUNS" "$WARMUP" "" env TANTO_PROBE_CACHE=0 "$BIN" list --json)"
"$BIN" list --json >/dev/null # fill the probe cache
warm="$(median_ms tanto-warm "$RUNS" "$WARMUP" "" "$BIN" list --json)"

mlxk_ms=""
if [[ -n "$MLXK" && -x "$MLXK" ]]; then
    mcount="$("$MLXK" list --json 2>/dev/null | grep -o '"count": *[0-9]*' | head -n1 | tr -dc '0-9' || true)"
    log "mlxk list --json sees ${mcount:-?} models"
    mlxk_ms="$(median_ms mlxk "$MLXK_RUNS" 1 "" "$MLXK" list --json)"
else
    log "mlxk not found (set MLXK=/path/to/mlxk to compare)"
fi

cpu="$(lscpu 2>/dev/null | sed -nE 's/^Model name: *//p' | head -n1)"
echo
echo "list --json, $N models, $(nproc) cores, ${cpu:-unknown CPU}"
printf '%-22s %10s %10s\n' "tool" "median ms" "vs mlxk"
row() {
    local ratio="-"
    if [[ -n "$mlxk_ms" ]]; then
        ratio="$(awk -v a="$mlxk_ms" -v b="$2" 'BEGIN { printf "%.0fx", a / b }')"
    fi
    printf '%-22s %10s %10s\n' "$1" "$2" "$ratio"
}
row "tanto (warm cache)" "$warm"
row "tanto (cold cache)" "$cold"
row "tanto (no cache)" "$uncached"
if [[ -n "$mlxk_ms" ]]; then
    printf '%-22s %10s %10s\n' "mlxk" "$mlxk_ms" "1x"
fi
echo "tanto list --json, $N models: median ${warm} ms (warm), ${cold} ms (cold)"
