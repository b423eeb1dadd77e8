#!/usr/bin/env bash
# Embedding throughput, tanto vs sentence-transformers (CPU torch), side by
# side in one run: `bash scripts/bench-embed.sh` (THREADS=2 RUNS=2 N=1000).
# Needs the test models (scripts/fetch-test-models.sh) and a venv with
# sentence-transformers (REF_VENV, default ~/.cache/tanto/ref-venv; created
# from scripts/ref/embed-requirements.txt when missing). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tanto/target}"
MODELS="${TANTO_TEST_MODELS:-$HOME/.cache/tanto/test-models}"
VENV="${REF_VENV:-$HOME/.cache/tanto/ref-venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet -r scripts/ref/embed-requirements.txt
fi
cargo build --release --quiet --bin tanto --example bench_embed -p tanto -p tanto-engine
"$VENV/bin/python" scripts/bench/embed_bench.py "$MODELS/all-MiniLM-L6-v2" \
    "$CARGO_TARGET_DIR/release/tanto" "$CARGO_TARGET_DIR/release/examples/bench_embed"
