#!/usr/bin/env bash
# Benchmark `tanto serve`: 1, 4 and 8 concurrent streaming chat clients.
# Reports time-to-first-token (mean / p50 / max) and aggregate completion
# tokens/s per level, and the server's overhead over the engine alone (the
# same greedy generation run in-process by the engine_bench example).
#
# usage: scripts/bench-serve.sh [MODEL]
#   MODEL          model spec (default: the SmolLM2-135M GGUF test model, served
#                  from a temporary HF cache that links it)
# env:
#   TANTO_BIN      a `tanto` binary with `serve` (default: the tanto-server
#                  `serve` example, built --release)
#   BASE_URL       benchmark an already running server instead (no engine baseline
#                  unless MODEL resolves locally)
#   MAX_TOKENS     completion tokens per request (default 128)
#   LEVELS         concurrency levels (default "1 4 8")
#   THREADS        engine threads (default: engine default)
#   PROFILE        cargo profile for the examples: release (default) or dev (quicker
#                  to build; dependencies and the engine are optimised in dev too)
#   TANTO_TEST_MODELS  where the test model lives (default ~/.cache/tanto/test-models)
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_TOKENS="${MAX_TOKENS:-128}"
LEVELS="${LEVELS:-1 4 8}"
PROMPT="${BENCH_PROMPT:-Write a short story about a lighthouse keeper.}"
export BENCH_PROMPT="$PROMPT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
MODELS_DIR="${TANTO_TEST_MODELS:-$HOME/.cache/tanto/test-models}"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

MODEL="${1:-}"
if [ -z "$MODEL" ]; then
  gguf="$MODELS_DIR/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
  [ -f "$gguf" ] || { echo "test model missing: $gguf (run scripts/fetch-test-models.sh)" >&2; exit 2; }
  MODEL="HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
  commit=0123456789abcdef0123456789abcdef01234567
  repo="$work/hf/hub/models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF"
  mkdir -p "$repo/snapshots/$commit" "$repo/refs"
  printf '%s' "$commit" > "$repo/refs/main"
  ln -s "$gguf" "$repo/snapshots/$commit/"
  export HF_HOME="$work/hf"
  unset HF_HUB_CACHE HUGGINGFACE_HUB_CACHE
fi

PROFILE="${PROFILE:-release}"
echo "== building examples ($PROFILE)" >&2
cargo build --profile "$PROFILE" -q -p tanto-server --examples
case "$PROFILE" in dev) ex="$CARGO_TARGET_DIR/debug/examples" ;; *) ex="$CARGO_TARGET_DIR/$PROFILE/examples" ;; esac

echo "== engine alone" >&2
engine_json="$("$ex/engine_bench" "$MODEL" "$MAX_TOKENS" ${THREADS:+"$THREADS"} 2>/dev/null || true)"
[ -n "$engine_json" ] || echo "   (engine baseline unavailable: the engine could not load $MODEL)" >&2

if [ -z "${BASE_URL:-}" ]; then
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  BASE_URL="http://127.0.0.1:$port"
  args=(--host 127.0.0.1 --port "$port" --model "$MODEL" --log-level warn)
  [ -n "${THREADS:-}" ] && args+=(--threads "$THREADS")
  if [ -n "${TANTO_BIN:-}" ]; then
    "$TANTO_BIN" serve "${args[@]}" 2>"$work/server.log" &
  else
    "$ex/serve" "${args[@]}" 2>"$work/server.log" &
  fi
  server_pid=$!
  for _ in $(seq 1 600); do
    curl -sf "$BASE_URL/health" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
  done
fi

echo "== server at $BASE_URL" >&2
python3 - "$BASE_URL" "$MODEL" "$MAX_TOKENS" "$LEVELS" "$engine_json" <<'PY'
import json, statistics, sys, threading, time, urllib.request

base, model, max_tokens, levels, engine_json = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(), sys.argv[5]
import os
prompt = os.environ["BENCH_PROMPT"]

def one(results, i):
    body = json.dumps({
        "model": model, "stream": True, "temperature": 0, "max_tokens": max_tokens,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": prompt}],
    }).encode()
    req = urllib.request.Request(f"{base}/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    ttft, tokens, err = None, 0, None
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            ev = json.loads(data)
            if "error" in ev:
                err = ev["error"]["message"]
                continue
            if ev.get("usage"):
                tokens = ev["usage"]["completion_tokens"]
            for c in ev.get("choices", []):
                if ttft is None and (c["delta"].get("content") or c["delta"].get("reasoning_content")):
                    ttft = time.perf_counter() - t0
    results[i] = (ttft, tokens, time.perf_counter() - t0, err)

def level(n):
    results = [None] * n
    threads = [threading.Thread(target=one, args=(results, i)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads: t.start()
    for t in threads: t.join()
    wall = time.perf_counter() - t0
    errs = [r[3] for r in results if r[3]]
    ttfts = [r[0] for r in results if r[0] is not None]
    toks = sum(r[1] for r in results)
    return {"clients": n, "wall_s": wall, "tokens": toks, "agg_tok_s": toks / wall,
            "ttft_mean": statistics.mean(ttfts), "ttft_p50": statistics.median(ttfts),
            "ttft_max": max(ttfts), "errors": errs,
            "single": results[0]}

level(1)  # warm-up (load, caches)
rows = [level(int(n)) for n in levels]
print(f"\nmodel {model}, {max_tokens} max tokens, greedy, streaming chat\n")
print(f"{'clients':>7} {'TTFT mean':>10} {'TTFT p50':>9} {'TTFT max':>9} {'tokens':>7} {'wall s':>7} {'agg tok/s':>10}")
for r in rows:
    print(f"{r['clients']:>7} {r['ttft_mean']:>9.3f}s {r['ttft_p50']:>8.3f}s {r['ttft_max']:>8.3f}s "
          f"{r['tokens']:>7} {r['wall_s']:>7.2f} {r['agg_tok_s']:>10.1f}")
    for e in r["errors"]:
        print("   error:", e)
if engine_json:
    e = json.loads(engine_json)
    one_client = next((r for r in rows if r["clients"] == 1), None)
    if one_client:
        ttft, toks, total, _ = one_client["single"]
        s_tok_s = toks / total
        print(f"\nengine alone: TTFT {e['ttft_s']:.3f}s, {e['completion_tokens']} tokens in {e['total_s']:.2f}s = {e['tok_s']:.1f} tok/s")
        print(f"via server (1 client): TTFT {ttft:.3f}s, {toks} tokens in {total:.2f}s = {s_tok_s:.1f} tok/s")
        print(f"server overhead: TTFT +{(ttft - e['ttft_s']) * 1000:.1f} ms, "
              f"throughput {100 * (1 - s_tok_s / e['tok_s']):+.1f}% "
              f"(per token {(total / max(toks, 1) - e['total_s'] / max(e['completion_tokens'], 1)) * 1000:+.2f} ms)")
print("\nnote: requests to one model are served one at a time (FIFO, no batching yet), so\n"
      "aggregate tok/s stays near the single-stream rate and TTFT grows with queue depth.")
PY
