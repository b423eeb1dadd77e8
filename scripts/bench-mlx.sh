#!/usr/bin/env bash
# tanto on GGUF Q4_0/Q4_1/Q8_0 and MLX 4/8-bit SmolLM2-135M beside llama.cpp's
# own llama-bench (built for this host by scripts/build-llama-bench.sh) and
# MLX's CPU backend (mlx-lm, the engine under mlx-knife), in one run.
#
#   bash scripts/bench-mlx.sh
#
# Env: THREADS (2) PROMPT_TOKENS (128) GEN_TOKENS (128) ROUNDS (3) MLX_TOKENS (16)
#      TANTO_TEST_MODELS, CARGO_TARGET_DIR
# tanto: bench_text, prefill of PROMPT_TOKENS then GEN_TOKENS greedy tokens
# (EOS ignored), best of 2 runs per round. llama.cpp: llama-bench -p/-n (its tg
# starts from an empty context). Rounds alternate engines; medians are shown.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS="${TANTO_TEST_MODELS:-$HOME/.cache/tanto/test-models}"
THREADS="${THREADS:-2}"; PT="${PROMPT_TOKENS:-128}"; GT="${GEN_TOKENS:-128}"
ROUNDS="${ROUNDS:-3}"; MLX_TOKENS="${MLX_TOKENS:-16}"
TARGET="${CARGO_TARGET_DIR:-target}"
log() { printf '[bench-mlx] %s\n' "$*" >&2; }

LB="$(bash scripts/build-llama-bench.sh)"
LQ="$(dirname "$LB")/llama-quantize"
cargo build -q --release -p tanto-engine --example bench_text
BENCH="$TARGET/release/examples/bench_text"

Q41="$MODELS/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
GDIR="$MODELS/bench-gguf"; mkdir -p "$GDIR"
for q in Q4_0 Q8_0; do
    # Same weights, every tensor in one type (--pure), from the Q4_1 file.
    [[ -f "$GDIR/SmolLM2-135M-Instruct.$q.gguf" ]] ||
        "$LQ" --allow-requantize --pure "$Q41" "$GDIR/SmolLM2-135M-Instruct.$q.gguf" "$q" >/dev/null 2>&1
done
declare -A PATHS=(
    [Q4_0]="$GDIR/SmolLM2-135M-Instruct.Q4_0.gguf" [Q4_1]="$Q41"
    [Q8_0]="$GDIR/SmolLM2-135M-Instruct.Q8_0.gguf"
    [MLX-4bit]="$MODELS/smollm2-135m-instruct-mlx-4bit" [MLX-8bit]="$MODELS/smollm2-135m-instruct-mlx-8bit")
ORDER=(Q4_0 Q4_1 Q8_0 MLX-4bit MLX-8bit)
declare -A TP TD LP LD
field() { sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
for r in $(seq 1 "$ROUNDS"); do
    for m in "${ORDER[@]}"; do
        out="$("$BENCH" "${PATHS[$m]}" --threads "$THREADS" --prompt-tokens "$PT" --gen "$GT" --runs 2 --json | tail -1)"
        TP[$m]+="$(echo "$out" | field prefill_tps) "; TD[$m]+="$(echo "$out" | field decode_tps) "
        if [[ "$m" != MLX-* ]]; then
            j="$("$LB" -m "${PATHS[$m]}" -t "$THREADS" -p "$PT" -n "$GT" -r 2 -o jsonl 2>/dev/null)"
            LP[$m]+="$(echo "$j" | grep "\"n_gen\": *0" | field avg_ts | head -1) "
            LD[$m]+="$(echo "$j" | grep "\"n_prompt\": *0" | field avg_ts | head -1) "
        fi
    done
    log "round $r done"
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
simd="$(grep -o -w 'avx2\|avx512f\|avx512bw\|avx512vl\|avx512_vnni\|avx512vbmi\|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo
echo "SmolLM2-135M-Instruct, $THREADS threads, prompt $PT, generate $GT, median of $ROUNDS alternating rounds"
echo "CPU: $cpu, $(nproc) cores; SIMD: $simd(llama.cpp built with these, AMX off)"
printf '| weights | tanto prefill / decode tok/s | llama-bench pp / tg tok/s | tanto ÷ llama.cpp | vs tanto Q4_1 |\n|---|---|---|---|---|\n'
q41p="$(med "${TP[Q4_1]}")"; q41d="$(med "${TD[Q4_1]}")"
for m in "${ORDER[@]}"; do
    tp="$(med "${TP[$m]}")"; td="$(med "${TD[$m]}")"
    if [[ -n "${LP[$m]:-}" ]]; then
        lp="$(med "${LP[$m]}")"; ld="$(med "${LD[$m]}")"
        printf '| %s | %.0f / %.0f | %.0f / %.0f | %.2f× / %.2f× | %.2f× / %.2f× |\n' "$m" "$tp" "$td" "$lp" "$ld" \
            "$(bc -l <<<"$tp/$lp")" "$(bc -l <<<"$td/$ld")" "$(bc -l <<<"$tp/$q41p")" "$(bc -l <<<"$td/$q41d")"
    else
        printf '| %s | %.0f / %.0f | – | – | %.2f× / %.2f× |\n' "$m" "$tp" "$td" "$(bc -l <<<"$tp/$q41p")" "$(bc -l <<<"$td/$q41d")"
    fi
done
# MLX's own CPU backend on the same 4-bit checkpoint (what mlx-knife runs on Linux).
MLXPY="$MODELS/.mlx-venv/bin/python"
if [[ -x "$MLXPY" ]]; then
    out="$("$MLXPY" -m mlx_lm generate --model "${PATHS[MLX-4bit]}" --prompt "What is the capital of France?" \
        --max-tokens "$MLX_TOKENS" --temp 0 2>&1 | grep -E "tokens-per-sec" | tr '\n' ' ')"
    echo
    echo "mlx-lm 0.31.3 on mlx 0.32.0 CPU, MLX-4bit, $MLX_TOKENS tokens: $out"
fi
