#!/usr/bin/env bash
# Kill a running pull with SIGKILL at random moments (default 25 times), resume it
# each time, and check that no blob is ever visible with wrong content and that
# every file is correct at the end.
#
#   scripts/pull-kill-resume.sh [CYCLES]
#
# Uses the fake hub (crates/tanto-hub/examples/fake_hub.rs) throttled to 1 MB/s so
# that kills land mid-download, and examples/pull.rs (the code behind `tanto pull`).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CYCLES=${1:-25}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build -q -p tanto-hub --examples)
BIN="$CARGO_TARGET_DIR/debug/examples"

WORK=$(mktemp -d)
HUB_PID=""
cleanup() {
  if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/fake_hub" --big 8000000 --rate 1000000 >"$WORK/hub.out" &
HUB_PID=$!
for _ in $(seq 100); do
  [ -s "$WORK/hub.out" ] && break
  sleep 0.1
done
export HF_ENDPOINT=$(head -n1 "$WORK/hub.out")
export HF_HUB_CACHE="$WORK/cache"
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HUGGINGFACE_HUB_TOKEN HF_HUB_OFFLINE
REPO_DIR="$HF_HUB_CACHE/models--tanto-test--big"

# Every complete blob (no .incomplete suffix) must hash to its name.
check_blobs() {
  python3 - "$REPO_DIR/blobs" <<'PYEOF'
import hashlib, os, sys
d = sys.argv[1]
if not os.path.isdir(d):
    sys.exit(0)
for n in os.listdir(d):
    if n.endswith(".incomplete"):
        continue
    data = open(os.path.join(d, n), "rb").read()
    got = hashlib.sha256(data).hexdigest() if len(n) == 64 else \
        hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if got != n:
        sys.exit(f"corrupt blob visible: {n} hashes to {got}")
PYEOF
}

kills=0
for i in $(seq "$CYCLES"); do
  "$BIN/pull" tanto-test/big --retries 0 >"$WORK/out.json" 2>"$WORK/err.txt" &
  pid=$!
  sleep "0.$(( (RANDOM % 30) + 5 ))"
  if kill -9 "$pid" 2>/dev/null; then
    kills=$((kills + 1))
  fi
  wait "$pid" 2>/dev/null || true
  check_blobs
  partial=$(find "$REPO_DIR/blobs" -name '*.incomplete' -printf '%s ' 2>/dev/null || true)
  echo "cycle $i: killed=$kills partial sizes: ${partial:-none}"
done

"$BIN/pull" tanto-test/big >"$WORK/final.json"
check_blobs
python3 - "$WORK/final.json" <<'PYEOF'
import hashlib, json, os, sys
r = json.load(open(sys.argv[1]))
for f in r["files"]:
    data = open(os.path.join(r["snapshot_dir"], f["path"]), "rb").read()
    got = hashlib.sha256(data).hexdigest() if len(f["etag"]) == 64 else \
        hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    assert got == f["etag"], (f["path"], got, f["etag"])
print(f"final: {len(r['files'])} files verified")
PYEOF
if [ "$kills" -lt 20 ]; then
  echo "only $kills kills landed mid-pull (need >= 20)" >&2
  exit 1
fi
echo "pull-kill-resume: $kills kills, every file correct"
