#!/usr/bin/env bash
# Build llama.cpp's own `llama-bench` for this host's SIMD, from the llama.cpp
# sources vendored in the llama-cpp-python sdist on PyPI (the only registry
# these machines reach). AVX-512 / VNNI / VBMI / BF16 are enabled when lscpu
# shows them; AMX stays off; GGML_NATIVE stays off so the flags are explicit.
#
#   scripts/build-llama-bench.sh        # prints the path of llama-bench
#
# Env: LLAMA_CPP_PY_VERSION (0.3.36), LLAMA_BENCH_DIR (~/.cache/tanto/llama-bench)
set -euo pipefail
VER="${LLAMA_CPP_PY_VERSION:-0.3.36}"
DIR="${LLAMA_BENCH_DIR:-$HOME/.cache/tanto/llama-bench}"
BIN="$DIR/build/bin/llama-bench"
log() { printf '[build-llama-bench] %s\n' "$*" >&2; }
flags="$(grep -m1 '^flags' /proc/cpuinfo || true)"
has() { [[ " $flags " == *" $1 "* ]] && echo ON || echo OFF; }
OPTS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
      "-DGGML_AVX512=$(has avx512f)" "-DGGML_AVX512_VNNI=$(has avx512_vnni)"
      "-DGGML_AVX512_VBMI=$(has avx512vbmi)" "-DGGML_AVX512_BF16=$(has avx512_bf16)"
      "-DGGML_AVX_VNNI=$(has avx_vnni)" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
      -DGGML_OPENMP=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF
      -DCMAKE_BUILD_TYPE=Release)
STAMP="$DIR/.stamp"
want="$VER ${OPTS[*]}"
if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    echo "$BIN"; exit 0
fi
mkdir -p "$DIR"
if [[ ! -x "$DIR/venv/bin/cmake" ]]; then
    log "venv with cmake + ninja"
    python3 -m venv "$DIR/venv"
    "$DIR/venv/bin/pip" install -q --disable-pip-version-check cmake ninja
fi
if [[ ! -d "$DIR/src/vendor/llama.cpp" ]]; then
    log "llama-cpp-python==$VER sdist"
    rm -rf "$DIR/sdist" "$DIR/src"
    # The sdist file from the simple index (pip download would build it).
    url="$("$DIR/venv/bin/python" - "$VER" <<'PY'
import re, sys, urllib.request
ver = sys.argv[1]
page = urllib.request.urlopen("https://pypi.org/simple/llama-cpp-python/").read().decode()
links = re.findall(r'href="([^"]+)"', page)
print(next(l for l in links if f"llama_cpp_python-{ver}.tar.gz" in l).replace("&amp;", "&"))
PY
)"
    mkdir -p "$DIR/sdist"
    "$DIR/venv/bin/python" -c "import sys, urllib.parse, urllib.request; urllib.request.urlretrieve(urllib.parse.urljoin('https://pypi.org/simple/llama-cpp-python/', sys.argv[1]), sys.argv[2])" \
        "$url" "$DIR/sdist/llama_cpp_python-$VER.tar.gz"
    mkdir -p "$DIR/src"
    tar -xzf "$DIR"/sdist/llama_cpp_python-*.tar.gz -C "$DIR/src" --strip-components=1
fi
log "cmake ${OPTS[*]}"
PATH="$DIR/venv/bin:$PATH" cmake -S "$DIR/src/vendor/llama.cpp" -B "$DIR/build" -G Ninja "${OPTS[@]}" >&2
PATH="$DIR/venv/bin:$PATH" cmake --build "$DIR/build" --target llama-bench llama-quantize -j "$(nproc)" >&2
echo "$want" > "$STAMP"
echo "$BIN"
