#!/usr/bin/env bash
# A CUDA 13.0 toolkit from PyPI wheels, laid out so that `cargo build
# --features cuda` finds it on a machine without NVIDIA's installer (candle's
# kernels need nvcc at build time; cudarc links cuBLAS/cuRAND/NVRTC/cudart).
#
#   bash scripts/cuda-toolkit-from-pypi.sh      # prints the env lines to eval
#   eval "$(bash scripts/cuda-toolkit-from-pypi.sh)"
#   CUDA_COMPUTE_CAP=90 cargo build --release -p tanto --features cuda
#
# PyPI has no driver library, so a link-time stub libcuda.so (soname
# libcuda.so.1, every cu* symbol cudarc declares) goes in lib/stubs; at run
# time the real driver's libcuda.so.1 (r580+ for CUDA 13) is used. Env:
# CUDA_VENV (default ~/.cache/tanto/cuda13-venv).
set -euo pipefail
V="${CUDA_VENV:-$HOME/.cache/tanto/cuda13-venv}"
if [[ ! -x "$V/bin/python" ]]; then python3 -m venv "$V"; fi
"$V/bin/pip" install -q nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
  nvidia-cublas==13.1.2.11 nvidia-curand==10.4.0.35 >&2
C="$("$V/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
cd "$C/lib"
for l in cublas cublasLt cudart nvrtc; do ln -sf "lib$l.so.13" "lib$l.so"; done
ln -sf libcurand.so.10 libcurand.so
[[ -e ../lib64 ]] || ln -s lib ../lib64
if [[ ! -e stubs/libcuda.so ]]; then
  mkdir -p stubs
  R="$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.* 2>/dev/null | sort | tail -1)"
  if [[ -z "$R" ]]; then
    echo "cudarc sources not found: run 'cargo fetch' in the repo first" >&2
    exit 1
  fi
  T="$(mktemp -d)"
  grep -hoP '^\s+fn \Kcu\w+(?=\()' "$R/src/driver/sys/mod.rs" | sort -u |
    awk '{print "int " $1 "(void){return 999;}"}' >"$T/libcuda_stub.c"
  gcc -shared -fPIC -o stubs/libcuda.so -Wl,-soname,libcuda.so.1 "$T/libcuda_stub.c"
  rm -rf "$T"
fi
echo "export CUDA_HOME='$C' CUDA_PATH='$C' CUDA_ROOT='$C' PATH='$C/bin':\"\$PATH\" LIBRARY_PATH='$C/lib:$C/lib/stubs'"
