#!/usr/bin/env bash
# Record mlx-knife 2.0.8's --json outputs on the conformance fixture tree into
# tests/fixtures/mlxk-2.0.8/ (one <case>.json per case + cases.json, the manifest).
# crates/tanto-cli/tests/conformance.rs replays every case against tanto.
#
# Installs the pinned reference into a venv on first use (network needed once):
#   mlx-knife==2.0.8, mlx[cpu]==0.32.0   (MLXK_VENV, default ~/.cache/tanto/mlxk-venv)
# The recording itself is offline: HF_ENDPOINT points at a closed port or at
# scripts/ref/mlxk-conformance/fake_hub.py on 127.0.0.1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${MLXK_VENV:-$HOME/.cache/tanto/mlxk-venv}"
out="${1:-$repo/tests/fixtures/mlxk-2.0.8}"

if [ ! -x "$venv/bin/mlxk" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "mlx-knife==2.0.8" "mlx[cpu]==0.32.0"
fi
ver="$("$venv/bin/mlxk" --version)"
case "$ver" in
  *" 2.0.8") ;;
  *) echo "record-mlxk.sh: need mlx-knife 2.0.8, $venv has: $ver" >&2; exit 1 ;;
esac

rm -f "$out"/*.json
MLXK="$venv/bin/mlxk" python3 "$here/mlxk-conformance/record.py" "$out"
echo "recorded into $out"
