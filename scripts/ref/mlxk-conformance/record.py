#!/usr/bin/env python3
"""Run mlx-knife 2.0.8 on the fixture tree, one fresh tree per case, and save
its --json outputs as tests/fixtures/mlxk-2.0.8/<case>.json plus cases.json.

Called by record-mlxk.sh (which installs/pins mlx-knife); MLXK names the binary.
The case table below is the single source of what is recorded: name, argv
(after the program name), extra env, whether the fake hub runs, and an optional
`tanto_argv` when tanto needs a different command line for the same situation.

Normalisation (the only edits made to the recorded bytes, also listed in
cases.json): the per-case fixture root is replaced by `$ROOT`, the fake hub's
port by `$HUB_PORT`; nothing else. Times are fixed by the fixture (mtimes) and
TZ=UTC, so they are recorded as-is.

Usage: record.py OUT_DIR
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build_fixture  # noqa: E402

OLD7 = build_fixture.commit_hash("chat-old")[:7]
NEW = build_fixture.commit_hash("chat-new")
SHARDED = build_fixture.commit_hash("sharded")
CHAT = "tiny-org/tiny-llama-chat"

# Env every case gets. $ROOT is the fresh fixture root; $HUB the fake hub URL.
BASE_ENV = {
    "TZ": "UTC",
    "HOME": "$ROOT/home",
    "HF_HOME": "$ROOT/hf",
    "MLXK_WORKSPACE_HOME": "$ROOT/ws",
    # Nothing may reach the network: a closed local port unless a case says otherwise.
    "HF_ENDPOINT": "http://127.0.0.1:9",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "NO_COLOR": "1",
}
HUB = {"HF_ENDPOINT": "$HUB"}
OFFLINE = {"HF_HUB_OFFLINE": "1"}

RUN_OPTS = ["--max-tokens", "4", "--temperature", "0"]


def case(name, argv, env=None, hub=False, tree=False, tanto_argv=None, note=None):
    c = {"name": name, "argv": argv, "env": env or {}, "fake_hub": hub, "record_tree": tree}
    if tanto_argv is not None:
        c["tanto_argv"] = tanto_argv
    if note:
        c["note"] = note
    return c


CASES = [
    # version / CLI layer
    case("version", ["--version", "--json"]),
    case("usage-error", ["list", "--no-such-flag", "--json"]),
    case("no-subcommand", ["--json"]),
    # list
    case("list", ["list", "--json"]),
    case("list-all", ["list", "--all", "--json"]),
    case("list-health", ["list", "--health", "--json"]),
    case("list-pattern", ["list", "tiny-llama", "--json"]),
    case("list-no-match", ["list", "zzz-no-such-model", "--json"]),
    case("list-workspace-path", ["list", "$ROOT/ws/tiny-ws", "--json"]),
    # show
    case("show-chat", ["show", CHAT, "--json"]),
    case("show-mlx-4bit", ["show", "mlx-community/tiny-llama-4bit", "--json"]),
    case("show-gguf", ["show", "tiny-org/tiny-llama-gguf", "--json"]),
    case("show-embedder", ["show", "sentence-transformers/tiny-minilm", "--json"]),
    case("show-sharded", ["show", "tiny-org/tiny-sharded", "--json"]),
    case("show-broken-lfs", ["show", "broken/lfs-pointer", "--json"]),
    case("show-fuzzy", ["show", "tiny-minilm", "--json"]),
    case("show-files", ["show", CHAT, "--files", "--json"]),
    case("show-files-embedder", ["show", "sentence-transformers/tiny-minilm", "--files", "--json"]),
    case("show-config", ["show", CHAT, "--config", "--json"]),
    case("show-old-revision", ["show", CHAT + "@" + OLD7, "--json"]),
    case("show-unknown-hash", ["show", CHAT + "@deadbee", "--json"]),
    case("show-ambiguous", ["show", "twin", "--json"]),
    case("show-not-found", ["show", "zzz-no-such-model", "--json"]),
    case("show-workspace", ["show", "tiny-ws", "--json"]),
    # health
    case("health-all", ["health", "--json"]),
    case("health-one", ["health", CHAT, "--json"]),
    case("health-sharded", ["health", "tiny-org/tiny-sharded", "--json"]),
    case("health-broken", ["health", "broken/lfs-pointer", "--json"]),
    case("health-missing-shard", ["health", "broken/missing-shard", "--json"]),
    case("health-no-match", ["health", "zzz-no-such-model", "--json"]),
    case("health-ambiguous", ["health", "twin", "--json"]),
    case("health-workspace-path", ["health", "$ROOT/ws/tiny-ws", "--json"]),
    # rm (every case on its own fresh tree)
    case("rm-exact", ["rm", "pair-org/twin-alpha", "--json"], tree=True),
    case("rm-fuzzy", ["rm", "twin-alpha", "--json"], tree=True),
    case("rm-fuzzy-force", ["rm", "twin-alpha", "--force", "--json"], tree=True),
    case("rm-hash", ["rm", CHAT + "@" + OLD7, "--json"], tree=True),
    case("rm-unknown-hash", ["rm", CHAT + "@deadbee", "--json"], tree=True),
    case("rm-ambiguous", ["rm", "twin", "--json"], tree=True),
    case("rm-not-found", ["rm", "zzz-no-such-model", "--json"], tree=True),
    case("rm-locks", ["rm", "lock-org/locked-model", "--json"], tree=True),
    case("rm-locks-force", ["rm", "lock-org/locked-model", "--force", "--json"], tree=True),
    case("rm-workspace", ["rm", "tiny-ws", "--json"], tree=True),
    # clone (mlx-knife downloads from the (fake) hub; tanto copies the cached snapshot
    # of the same commit — same result)
    case("clone", ["clone", CHAT, "$ROOT/out/cloned", "--json"], env=HUB, hub=True, tree=True),
    case("clone-missing-parent", ["clone", CHAT, "$ROOT/nowhere/cloned", "--json"], env=HUB, hub=True, tree=True),
    case("clone-target-not-empty", ["clone", CHAT, "$ROOT/src/single-shard", "--json"], env=HUB, hub=True, tree=True),
    # convert
    case("convert-repair-index", ["convert", "$ROOT/src/stale-index", "$ROOT/out/repaired", "--repair-index", "--json"], tree=True),
    case("convert-single-file", ["convert", "$ROOT/src/single-shard", "$ROOT/out/single", "--repair-index", "--json"], tree=True),
    case("convert-no-mode", ["convert", "$ROOT/src/stale-index", "$ROOT/out/repaired", "--json"], tree=True),
    case("convert-source-in-cache",
         ["convert", "$ROOT/hf/hub/models--tiny-org--tiny-sharded/snapshots/" + SHARDED, "$ROOT/out/x",
          "--repair-index", "--json"], tree=True),
    case("convert-target-not-empty", ["convert", "$ROOT/src/stale-index", "$ROOT/src/single-shard", "--repair-index", "--json"], tree=True),
    # pull
    case("pull", ["pull", "remote-org/remote-model", "--json"], env=HUB, hub=True, tree=True),
    case("pull-already-exists", ["pull", CHAT, "--json"], env=HUB, hub=True, tree=True),
    case("pull-unhealthy", ["pull", "broken/lfs-pointer", "--json"], env=HUB, hub=True, tree=True),
    case("pull-repo-not-found", ["pull", "nobody/not-there", "--json"], env=HUB, hub=True, tree=True),
    case("pull-offline", ["pull", "remote-org/remote-model", "--json"], env=OFFLINE, tree=True),
    case("pull-unreachable", ["pull", "remote-org/remote-model", "--json"], tree=True),
    case("pull-invalid-name", ["pull", "/bad//name", "--json"], tree=True),
    # run
    case("run-missing", ["run", "zzz-no-such-model", "hello"] + RUN_OPTS + ["--json"]),
    case("run-ambiguous", ["run", "twin", "hello"] + RUN_OPTS + ["--json"]),
    case("run-embedder", ["run", "sentence-transformers/tiny-minilm", "hello"] + RUN_OPTS + ["--json"]),
    case("run-success", ["run", "mlx-community/tiny-llama-4bit", "hello"] + RUN_OPTS + ["--json"],
         tanto_argv=["run", CHAT, "hello"] + RUN_OPTS + ["--json"],
         note="shape only: mlx-knife runs the MLX 4-bit model, tanto (no MLX engine) the "
              "unquantized safetensors llama; fields compared by name and type"),
]

NORMALISATION = [
    "the per-case fixture root (a temp dir) is written as $ROOT",
    "the fake hub's TCP port is written as $HUB_PORT ($HUB = http://127.0.0.1:$HUB_PORT)",
    "nothing else: mtimes are fixed by build_fixture.py and TZ=UTC",
    "record_tree cases also store `tree`: files added/removed under hf/hub, out and src "
    "(relative to $ROOT; not counted as added: lock files under hf/hub/.locks, hf/hub/CACHEDIR.TAG, "
    "hf/hub/models--*/trees/ — huggingface_hub internals)",
]


def expand(s, root, hub):
    return s.replace("$ROOT", root).replace("$HUB", hub)


def normalise(text, root, port):
    real = os.path.realpath(root)
    text = text.replace(real, "$ROOT").replace(root, "$ROOT")
    if port:
        text = text.replace("127.0.0.1:%s" % port, "127.0.0.1:$HUB_PORT")
    return text


def tree(root):
    """File/symlink paths (relative to root) under hf/hub, out and src."""
    out = []
    for top in ("hf/hub", "out", "src"):
        base = os.path.join(root, top)
        for dirpath, dirnames, filenames in os.walk(base):
            for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return set(out)


def ignored(p):
    """huggingface_hub internals a download leaves that are no part of the cache
    contract: lock files it creates, CACHEDIR.TAG, models--*/trees/ listings."""
    parts = p.split("/")
    return (p.startswith("hf/hub/.locks/") or p == "hf/hub/CACHEDIR.TAG"
            or (len(parts) > 3 and parts[:2] == ["hf", "hub"] and parts[3] == "trees"))


def tree_diff(before, after):
    """What a command changed on disk (see ignored() for what is not counted as added)."""
    added = sorted(p for p in after - before if not ignored(p))
    return {"added": added, "removed": sorted(before - after)}


def start_hub(root):
    pf = os.path.join(root, "..", "hub.port")
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_hub.py"), root, pf])
    for _ in range(100):
        if os.path.exists(pf):
            return p, open(pf).read().strip()
        time.sleep(0.05)
    p.kill()
    sys.exit("fake hub did not start")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = os.path.abspath(sys.argv[1])
    mlxk = os.environ.get("MLXK") or sys.exit("MLXK (path of the mlxk binary) is not set")
    os.makedirs(out_dir, exist_ok=True)
    manifest = []
    base = tempfile.mkdtemp(prefix="mlxk-rec-")
    try:
        for c in CASES:
            cdir = os.path.join(base, c["name"])
            os.makedirs(cdir)
            root = os.path.join(cdir, "root")
            build_fixture.build(root)
            os.makedirs(os.path.join(root, "home"))
            before = tree(root)
            hub_proc, port = (start_hub(root) if c["fake_hub"] else (None, ""))
            hub = "http://127.0.0.1:%s" % port if port else ""
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("HF_", "HUGGINGFACE_", "MLXK", "TANTO_"))}
            spec_env = dict(BASE_ENV)
            spec_env.update(c["env"])
            env.update({k: expand(v, root, hub) for k, v in spec_env.items()})
            argv = [expand(a, root, hub) for a in c["argv"]]
            try:
                r = subprocess.run([mlxk] + argv, env=env, cwd=root, capture_output=True,
                                   text=True, timeout=300)
            finally:
                if hub_proc:
                    hub_proc.send_signal(signal.SIGTERM)
                    hub_proc.wait()
            stdout = normalise(r.stdout, root, port)
            try:
                doc = json.loads(stdout)
            except ValueError:
                sys.stderr.write("case %s: stdout is not JSON:\n%s\nstderr:\n%s\n"
                                 % (c["name"], r.stdout, r.stderr))
                sys.exit(1)
            rec = {"exit_code": r.returncode, "stdout": doc}
            if c["record_tree"]:
                rec["tree"] = tree_diff(before, tree(root))
            with open(os.path.join(out_dir, c["name"] + ".json"), "w") as f:
                json.dump(rec, f, indent=2, ensure_ascii=False)
                f.write("\n")
            m = dict(c)
            m["env"] = spec_env
            m["exit_code"] = r.returncode
            manifest.append(m)
            print("%-28s exit %d  %s" % (c["name"], r.returncode,
                                         doc.get("error", {}).get("type") if doc.get("error") else doc.get("status")))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ver = subprocess.run([mlxk, "--version"], capture_output=True, text=True).stdout.strip()
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump({
            "tool": ver,
            "recorded_with": "scripts/ref/record-mlxk.sh (mlx-knife==2.0.8, mlx[cpu]==0.32.0, Linux)",
            "fixture": "scripts/ref/mlxk-conformance/build_fixture.py ROOT (fresh tree per case)",
            "program": "mlxk (tanto replaces it with the tanto binary)",
            "normalisation": NORMALISATION,
            "cases": manifest,
        }, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
