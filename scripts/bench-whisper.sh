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
# long60.wav repeats two sentences, so its windows compress well and trip the
# compression-ratio check: both sides then sample at T > 0 and their paths
# diverge. story60.wav is ~60 s of speech that does not repeat (espeak-ng,
# made once here), so greedy decoding stands and the two do the same work.
STORY="$MODELS/audio/story60.wav"
if [[ ! -s "$STORY" ]] && command -v espeak-ng >/dev/null; then
    espeak-ng -v en-us -s 165 -w "$STORY.tmp.wav" "$(cat scripts/bench/story60.txt)"
    sox -D "$STORY.tmp.wav" -r 16000 -c 1 -b 16 "$STORY" && rm -f "$STORY.tmp.wav"
fi
clips=(tests/fixtures/whisper/fox16k.wav "$MODELS/audio/long60.wav")
[[ -s "$STORY" ]] && clips+=("$STORY")
cargo build --release --quiet --bin tanto
"$VENV/bin/python" scripts/bench/whisper_bench.py "$CARGO_TARGET_DIR/release/tanto" "$MODELS" "${clips[@]}"
