#!/usr/bin/env bash
# Speech-to-text speed, tanto vs faster-whisper (CTranslate2), side by side in
# one run: `bash scripts/bench-whisper.sh` (THREADS=2 RUNS=3). Same CTranslate2
# folders (faster-whisper-tiny.en, faster-whisper-base from
# scripts/fetch-test-models.sh), same clips (4 s and 60 s of speech), greedy,
# float32 on both sides. faster-whisper lives in its own venv (BENCH_VENV,
# default ~/.cache/tanto/bench-venv, created when missing). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tanto/target}"
MODELS="${TANTO_TEST_MODELS:-$HOME/.cache/tanto/test-models}"
VENV="${BENCH_VENV:-$HOME/.cache/tanto/bench-venv}"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import faster_whisper" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "faster-whisper==1.2.1"
fi
cargo build --release --quiet --bin tanto
"$VENV/bin/python" scripts/bench/whisper_bench.py "$CARGO_TARGET_DIR/release/tanto" "$MODELS" \
    tests/fixtures/whisper/fox16k.wav "$MODELS/audio/long60.wav"
