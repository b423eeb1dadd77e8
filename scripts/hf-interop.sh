#!/usr/bin/env bash
# Interop between tanto's hub client and Python's huggingface_hub on one cache.
#
#   scripts/hf-interop.sh
#
# 1. Starts the fake hub (crates/tanto-hub/examples/fake_hub.rs) on a loopback port.
# 2. tanto pulls tanto-test/demo (examples/pull.rs, same code as `tanto pull`).
# 3. Python: scan_cache_dir() reports the repo with no warnings and no incomplete
#    files; hf_hub_download(..., local_files_only=True) returns tanto's files.
# 4. Python snapshot_download()s tanto-test/big into the same cache; tanto then
#    pulls it and finds every blob already cached; the cache still scans clean.
# 5. tanto clones the snapshot into a workspace; if mlx-knife is importable
#    (MLXK_PYTHON=/path/to/python with mlx-knife), mlx-knife sees it clean too.
# 6. Uploads both ways: a folder `tanto push` sends comes back byte for byte
#    through snapshot_download; a folder huggingface_hub's upload_folder sends
#    (LFS path, HF_HUB_DISABLE_XET=1) is pulled by tanto into a cache that
#    scan_cache_dir reports clean.
#
# Needs python3 and network access to PyPI for the first run (the venv is kept in
# ~/.cache/tanto/hf-venv; set TANTO_HF_VENV to move it, HF_HUB_PIN to pin a version).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${TANTO_HF_VENV:-$HOME/.cache/tanto/hf-venv}
PIN=${HF_HUB_PIN:-huggingface_hub}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import huggingface_hub" 2>/dev/null; then
  "$VENV/bin/pip" install -q "$PIN"
fi
PY="$VENV/bin/python"
echo "huggingface_hub $("$PY" -c 'import huggingface_hub as h; print(h.__version__)')"

(cd "$ROOT" && cargo build -q -p tanto-hub --examples && cargo build -q --bin tanto)
BIN="$CARGO_TARGET_DIR/debug/examples"
TANTO="$CARGO_TARGET_DIR/debug/tanto"

WORK=$(mktemp -d)
HUB_PID=""
cleanup() {
  if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/fake_hub" --big 3000000 >"$WORK/hub.out" &
HUB_PID=$!
for _ in $(seq 100); do
  [ -s "$WORK/hub.out" ] && break
  sleep 0.1
done
URL=$(head -n1 "$WORK/hub.out")
echo "fake hub at $URL"

unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HUGGINGFACE_HUB_TOKEN HF_HUB_OFFLINE
export HF_ENDPOINT="$URL"
export HF_HOME="$WORK/hf-home"
export HF_HUB_CACHE="$WORK/cache"
export HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1

echo "== tanto pull tanto-test/demo"
"$BIN/pull" tanto-test/demo >"$WORK/pull-demo.json"

echo "== python reads tanto's cache"
"$PY" - "$WORK/pull-demo.json" <<'PYEOF'
import json, sys, hashlib, os
from huggingface_hub import scan_cache_dir, hf_hub_download, snapshot_download

report = json.load(open(sys.argv[1]))
info = scan_cache_dir()
assert not info.warnings, f"scan_cache_dir warnings: {info.warnings}"
incomplete = getattr(info, "incomplete_files", ())
assert not incomplete, f"incomplete files: {incomplete}"
repos = {r.repo_id: r for r in info.repos}
assert "tanto-test/demo" in repos, repos
repo = repos["tanto-test/demo"]
revs = {r.commit_hash: r for r in repo.revisions}
rev = revs[report["commit"]]
assert "main" in rev.refs, rev.refs
names = sorted(str(f.file_path.relative_to(rev.snapshot_path)) for f in rev.files)
assert names == sorted(f["path"] for f in report["files"]), names
for f in report["files"]:
    p = hf_hub_download("tanto-test/demo", f["path"], local_files_only=True)
    assert os.path.realpath(p) == os.path.realpath(os.path.join(report["snapshot_dir"], f["path"])), p
    data = open(p, "rb").read()
    if len(f["etag"]) == 64:
        assert hashlib.sha256(data).hexdigest() == f["etag"], f["path"]
    else:
        git = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert git == f["etag"], f["path"]
snap = snapshot_download("tanto-test/demo", local_files_only=True)
assert os.path.realpath(snap) == os.path.realpath(report["snapshot_dir"]), snap
print(f"ok: {len(report['files'])} files, scan_cache_dir clean, hf_hub_download returns tanto's files")
PYEOF

echo "== python downloads tanto-test/big, tanto reuses it"
"$PY" - <<'PYEOF'
from huggingface_hub import snapshot_download, hf_hub_download
p = snapshot_download("tanto-test/big")
# Python re-download of a tanto-pulled repo is a no-op too.
snapshot_download("tanto-test/demo")
print("ok: python snapshot_download", p)
PYEOF
"$BIN/pull" tanto-test/big >"$WORK/pull-big.json"
"$PY" - "$WORK/pull-big.json" <<'PYEOF'
import json, sys
from huggingface_hub import scan_cache_dir
r = json.load(open(sys.argv[1]))
statuses = {f["path"]: f["status"] for f in r["files"]}
assert all(s == "cached" for s in statuses.values()), statuses
assert r["bytes_downloaded"] == 0, r["bytes_downloaded"]
info = scan_cache_dir()
assert not info.warnings, info.warnings
assert {x.repo_id for x in info.repos} == {"tanto-test/demo", "tanto-test/big"}
print("ok: tanto found python's blobs cached; cache scans clean")
PYEOF

echo "== same repo, pulled by each tool into its own cache: identical trees"
HF_HUB_CACHE="$WORK/py-cache" "$PY" -c "from huggingface_hub import snapshot_download; snapshot_download('tanto-test/demo')"
HF_HUB_CACHE="$WORK/rs-cache" "$BIN/pull" tanto-test/demo >/dev/null
"$PY" - "$WORK/py-cache" "$WORK/rs-cache" <<'PYEOF'
import os, stat, sys
def tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), open(p, "rb").read())
    return out
a, b = tree(sys.argv[1]), tree(sys.argv[2])
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
assert not diff, "differences: " + ", ".join(f"{k}: py={str(a.get(k))[:80]} tanto={str(b.get(k))[:80]}" for k in diff)
print(f"ok: {len(a)} entries identical (names, symlink targets, modes, bytes)")
PYEOF

echo "== tanto clone → workspace"
SNAP=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['snapshot_dir'])" "$WORK/pull-demo.json")
"$BIN/workspace" clone "$SNAP" "$WORK/ws/demo" tanto-test/demo main >/dev/null
"$BIN/workspace" state "$WORK/ws/demo" | "$PY" -c "import json,sys; s=json.load(sys.stdin); assert s['clean'] is True, s; print('ok: tanto clean', s['content_hash'])"
if [ -n "${MLXK_PYTHON:-}" ] && "$MLXK_PYTHON" -c "import mlxk2" 2>/dev/null; then
  "$MLXK_PYTHON" - "$WORK/ws/demo" <<'PYEOF'
import sys
from pathlib import Path
import mlxk2.operations.workspace as w
clean, stored, current = w.is_workspace_clean(Path(sys.argv[1]))
assert clean is True and stored == current, (clean, stored, current)
print("ok: mlx-knife sees tanto's workspace clean", stored)
PYEOF
else
  echo "skip: mlx-knife check (set MLXK_PYTHON to a python with mlx-knife)"
fi
echo "== tanto push → huggingface_hub snapshot_download"
SRC="$WORK/to-push"
mkdir -p "$SRC/sub"
printf '{"model_type":"llama","hidden_size":8}' >"$SRC/config.json"
head -c 250000 /dev/urandom >"$SRC/model.safetensors.raw"
"$PY" - "$SRC" <<'PYEOF'
import json, struct, sys, os
d = sys.argv[1]
raw = open(os.path.join(d, "model.safetensors.raw"), "rb").read()
n = len(raw) // 4 * 4
hdr = json.dumps({"w": {"dtype": "F32", "shape": [n // 4], "data_offsets": [0, n]}}).encode()
open(os.path.join(d, "model.safetensors"), "wb").write(struct.pack("<Q", len(hdr)) + hdr + raw[:n])
os.remove(os.path.join(d, "model.safetensors.raw"))
PYEOF
printf 'nested\n' >"$SRC/sub/notes.txt"
printf '{"version":"1.0","model":{"type":"BPE","vocab":{"a":0},"merges":[]}}' >"$SRC/tokenizer.json"
printf '{"managed":true}' >"$SRC/.mlxk_workspace.json"
HF_TOKEN=hf_fake "$TANTO" push "$SRC" tanto-test/pushed --create --json >"$WORK/push.json"
HF_TOKEN=hf_fake "$PY" - "$SRC" "$WORK/push.json" "$WORK/dl" <<'PYEOF'
import json, os, sys
from huggingface_hub import snapshot_download
src, rep, dl = sys.argv[1:]
r = json.load(open(rep))["data"]
assert r["created_repo"] is True and r["commit_sha"], r
p = snapshot_download("tanto-test/pushed", cache_dir=dl)
got = sorted(os.path.relpath(os.path.join(d, f), p) for d, _, fs in os.walk(p) for f in fs)
assert got == ["config.json", "model.safetensors", "sub/notes.txt", "tokenizer.json"], got
for f in got:
    assert open(os.path.join(p, f), "rb").read() == open(os.path.join(src, f), "rb").read(), f
print(f"ok: {len(got)} pushed files identical through snapshot_download; the sentinel stayed home")
PYEOF

echo "== huggingface_hub upload_folder → tanto pull"
HF_TOKEN=hf_fake HF_HUB_DISABLE_XET=1 "$PY" - "$SRC" <<'PYEOF'
import sys
from huggingface_hub import HfApi
api = HfApi()
api.create_repo("tanto-test/uploaded", exist_ok=True)
info = api.upload_folder(repo_id="tanto-test/uploaded", folder_path=sys.argv[1], ignore_patterns=[".mlxk_workspace.json"])
print("ok: upload_folder committed", info.oid)
PYEOF
HF_TOKEN=hf_fake "$BIN/pull" tanto-test/uploaded >"$WORK/pull-up.json"
"$PY" - "$SRC" "$WORK/pull-up.json" <<'PYEOF'
import json, os, sys
from huggingface_hub import scan_cache_dir
src, rep = sys.argv[1:]
r = json.load(open(rep))
names = sorted(f["path"] for f in r["files"])
assert names == ["config.json", "model.safetensors", "sub/notes.txt", "tokenizer.json"], names
for f in names:
    assert open(os.path.join(r["snapshot_dir"], f), "rb").read() == open(os.path.join(src, f), "rb").read(), f
info = scan_cache_dir()
assert not info.warnings, info.warnings
assert "tanto-test/uploaded" in {x.repo_id for x in info.repos}
print("ok: tanto pulled what upload_folder pushed; cache scans clean")
PYEOF
echo "hf-interop: all checks passed"
