#!/usr/bin/env bash
# Vision preprocessing beside transformers' processor (same image, same run),
# the SigLIP tower per tile, and the SmolVLM-256M estimate.
#
#   bash scripts/bench-vision.sh [IMAGE]      (default: tests/fixtures/vlm-tiny/images/big.jpg)
#
# Needs the reference venv of scripts/ref/vlm-requirements.txt at
# ~/.cache/tanto/vlm-venv (made on first use) and, for the text estimate, the
# SmolLM2-135M safetensors test model (scripts/fetch-test-models.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tanto/target}"
img="${1:-tests/fixtures/vlm-tiny/images/big.jpg}"
threads="${THREADS:-2}"
venv="$HOME/.cache/tanto/vlm-venv"
models="${TANTO_TEST_MODELS:-$HOME/.cache/tanto/test-models}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r scripts/ref/vlm-requirements.txt
fi
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); flags: $(grep -o -w -E 'avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
cargo build --release --quiet -p tanto-engine --example bench_vision
text=()
[ -f "$models/smollm2-135m-instruct-f32/config.json" ] && text=(--text "$models/smollm2-135m-instruct-f32")
"$CARGO_TARGET_DIR/release/examples/bench_vision" "$img" --threads "$threads" "${text[@]}" | tee /tmp/tanto-bench-vision.txt
OMP_NUM_THREADS="$threads" "$venv/bin/python" scripts/ref/bench_vision_processor.py "$img" | tee /tmp/hf-bench-vision.txt
tanto=$(awk -F'|' '/preprocessing total/ {gsub(/ /,"",$3); print $3}' /tmp/tanto-bench-vision.txt)
tproc=$(awk -F'|' '/resize \+ tiles/ {gsub(/ /,"",$3); print $3}' /tmp/tanto-bench-vision.txt)
hf=$(awk '/total_ms/ {print $2}' /tmp/hf-bench-vision.txt)
hproc=$(awk '/process_ms/ {print $2}' /tmp/hf-bench-vision.txt)
python3 -c "print(f'resize + tiles + normalise: tanto {float($tproc):.1f} ms, transformers processor {float($hproc):.1f} ms -> {float($hproc)/float($tproc):.1f}x'); print(f'with decoding: tanto {float($tanto):.1f} ms, transformers (load_image + processor) {float($hf):.1f} ms -> {float($hf)/float($tanto):.1f}x')"
