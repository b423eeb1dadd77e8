#!/usr/bin/env bash
# Benchmark tanto's text engine against llama.cpp (llama-cpp-python) on the same GGUF.
#
#   scripts/bench-llamacpp.sh [MODEL.gguf]
#
# Same prompt (a fixed paragraph, tokenized and cut to PROMPT_TOKENS ids — both
# engines tokenize it identically), GEN_TOKENS greedy tokens with EOS ignored,
# THREADS threads, ROUNDS alternating rounds (tanto, llama.cpp, tanto, …); each
# process does one warm-up run and one measured run. Prints median prefill and
# decode tokens/s for both and the tanto/llama.cpp ratios, plus the host load.
#
# Env: THREADS (2) PROMPT_TOKENS (128) GEN_TOKENS (128) ROUNDS (4)
#      LLAMA_PY (~/.cache/tanto/llamavenv/bin/python) TANTO_TEST_MODELS
#      CARGO_TARGET_DIR (where bench_text is built)
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS="${TANTO_TEST_MODELS:-$HOME/.cache/tanto/test-models}"
MODEL="${1:-$MODELS/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf}"
THREADS="${THREADS:-2}"
PROMPT_TOKENS="${PROMPT_TOKENS:-128}"
GEN_TOKENS="${GEN_TOKENS:-128}"
ROUNDS="${ROUNDS:-4}"
LLAMA_PY="${LLAMA_PY:-$HOME/.cache/tanto/llamavenv/bin/python}"
TARGET="${CARGO_TARGET_DIR:-target}"

[ -f "$MODEL" ] || { echo "model not found: $MODEL (run scripts/fetch-test-models.sh)" >&2; exit 1; }
[ -x "$LLAMA_PY" ] || { echo "llama-cpp-python venv not found: $LLAMA_PY (see scripts/ref/README.md)" >&2; exit 1; }

echo "building bench_text (release)…" >&2
cargo build -q --release -p tanto-engine --example bench_text
BENCH="$TARGET/release/examples/bench_text"

LLAMA_SCRIPT="$(mktemp --suffix=.py)"
trap 'rm -f "$LLAMA_SCRIPT"' EXIT
cat > "$LLAMA_SCRIPT" <<'PY'
import json, sys, time
from llama_cpp import Llama
# Keep in sync with crates/tanto-engine/examples/bench_text.rs
TEXT = ("The history of the lighthouse is a story of engineering, commerce and "
"courage. Long before electric lamps, keepers climbed narrow stairs each evening to trim "
"wicks and polish lenses, so that ships could find their way past reefs and sandbanks. "
"Each tower had its own pattern of flashes, and sailors learned to read the coast like a "
"book of lights. Today most lights are automated, yet the buildings remain, standing on "
"cliffs and islands as reminders of the people who kept them burning through storms. ")
model, threads, n_prompt, n_gen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=model, n_ctx=max(512, n_prompt + n_gen + 8), n_threads=threads,
            n_threads_batch=threads, n_batch=512, verbose=False)
base = llm.tokenize(TEXT.encode(), add_bos=False, special=False)
prompt = [base[i % len(base)] for i in range(n_prompt)]
for run in range(2):
    llm.reset()
    t0 = time.perf_counter(); t1 = None; n = 0
    for tok in llm.generate(prompt, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
        n += 1
        if t1 is None:
            t1 = time.perf_counter()
        if n >= n_gen:
            break
    t2 = time.perf_counter()
print(json.dumps({"engine": "llama.cpp", "prefill_tps": n_prompt / (t1 - t0),
                  "decode_tps": (n - 1) / (t2 - t1)}))
PY

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

T_PRE=(); T_DEC=(); L_PRE=(); L_DEC=()
BACKEND=""
echo "host: $(nproc) cpus, load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for r in $(seq 1 "$ROUNDS"); do
  out="$("$BENCH" "$MODEL" --threads "$THREADS" --prompt-tokens "$PROMPT_TOKENS" --gen "$GEN_TOKENS" --runs 2 --json | tail -1)"
  T_PRE+=("$(echo "$out" | field prefill_tps)"); T_DEC+=("$(echo "$out" | field decode_tps)")
  BACKEND="$(echo "$out" | sed -n 's/.*"backend":"\([^"]*\)".*/\1/p')"
  out="$("$LLAMA_PY" "$LLAMA_SCRIPT" "$MODEL" "$THREADS" "$PROMPT_TOKENS" "$GEN_TOKENS" | tail -1)"
  out="$(echo "$out" | tr -d ' ')"
  L_PRE+=("$(echo "$out" | field prefill_tps)"); L_DEC+=("$(echo "$out" | field decode_tps)")
  echo "round $r: tanto prefill ${T_PRE[-1]} decode ${T_DEC[-1]} | llama.cpp prefill ${L_PRE[-1]} decode ${L_DEC[-1]}" >&2
done
tp=$(printf '%s\n' "${T_PRE[@]}" | median); td=$(printf '%s\n' "${T_DEC[@]}" | median)
lp=$(printf '%s\n' "${L_PRE[@]}" | median); ld=$(printf '%s\n' "${L_DEC[@]}" | median)
echo
echo "model: $(basename "$MODEL"), $THREADS threads, prompt $PROMPT_TOKENS tok, generate $GEN_TOKENS tok, median of $ROUNDS alternating rounds"
echo "tanto backend: $BACKEND; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| engine | prefill tok/s | decode tok/s |\n|---|---|---|\n'
printf '| llama.cpp | %.1f | %.1f |\n' "$lp" "$ld"
printf '| tanto | %.1f | %.1f |\n' "$tp" "$td"
printf '| ratio tanto/llama.cpp | %.2fx | %.2fx |\n' "$(echo "$tp / $lp" | bc -l)" "$(echo "$td / $ld" | bc -l)"
