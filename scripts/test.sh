#!/usr/bin/env bash
# The project's test command (README): fetch the real small test models
# (cached), run every Rust test, then the OpenAI-client test against a real
# `tanto serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tanto/target}"
export TANTO_TEST_MODELS="${TANTO_TEST_MODELS:-$HOME/.cache/tanto/test-models}"
# The models are fetched just below, so a real-model test that finds none is a failure, not a skip.
export TANTO_REQUIRE_TEST_MODELS="${TANTO_REQUIRE_TEST_MODELS:-1}"

bash scripts/fetch-test-models.sh

# The binary first: the server's SIGTERM test and the Python test drive the real `tanto serve`.
cargo build --bin tanto
export TANTO_BIN="$CARGO_TARGET_DIR/debug/tanto"
cargo test --workspace --all-targets

# Interop with the real Python huggingface_hub on one cache (fake hub on loopback).
HF_HUB_PIN="huggingface_hub==1.33.0" bash scripts/hf-interop.sh

if [ -f tests/python/test_openai_client.py ]; then
  venv="$HOME/.cache/tanto/pyvenv"
  if [ ! -x "$venv/bin/pytest" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r tests/python/requirements.txt
  fi
  "$venv/bin/pytest" -q tests/python
fi
