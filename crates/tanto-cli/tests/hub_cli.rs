//! The commands that reach the hub on demand, against the fake hub on
//! loopback: `run`/`embed` pull an exact ORG/NAME they lack (never a fuzzy
//! name, never with `--no-pull` or `HF_HUB_OFFLINE`), `clone` pulls then
//! clones, `pull` of a complete cached model answers without the network.

#[path = "../../tanto-hub/tests/support/fake_hub.rs"]
mod fake_hub;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fake_hub::{FakeFile, FakeHub, FakeRepo};
use serde_json::Value;
use tanto_testkit::presets;
use tanto_testkit::Files;

const BIN: &str = env!("CARGO_BIN_EXE_tanto");

/// A fixture folder on disk as fake-hub files (weights in LFS).
fn repo_from_dir(id: &str, dir: &Path) -> FakeRepo {
    let mut files = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<FakeFile>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
                continue;
            }
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel == "reference.json" {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            out.push(if rel.ends_with(".safetensors") {
                FakeFile::lfs(&rel, bytes)
            } else {
                FakeFile::git(&rel, &bytes)
            });
        }
    }
    walk(dir, dir, &mut files);
    FakeRepo::new(id, files)
}

/// testkit files as fake-hub files.
fn repo_from_files(id: &str, files: &Files) -> FakeRepo {
    let out = files
        .iter()
        .map(|(path, c)| {
            let bytes = match c {
                tanto_testkit::Content::Bytes(b) => b.clone(),
                tanto_testkit::Content::External(p) => std::fs::read(p).unwrap(),
            };
            if path.ends_with(".safetensors") || path.ends_with(".gguf") {
                FakeFile::lfs(path, bytes)
            } else {
                FakeFile::git(path, &bytes)
            }
        })
        .collect();
    FakeRepo::new(id, out)
}

struct Env {
    tmp: tempfile::TempDir,
    hub: FakeHub,
}

impl Env {
    fn new(repos: Vec<FakeRepo>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("hf/hub")).unwrap();
        std::fs::create_dir_all(tmp.path().join("ws")).unwrap();
        Env {
            tmp,
            hub: FakeHub::start(repos),
        }
    }
    fn cache(&self) -> PathBuf {
        self.tmp.path().join("hf/hub")
    }
    fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("HOME", self.tmp.path())
            .env("HF_HOME", self.tmp.path().join("hf"))
            .env("HF_HUB_CACHE", self.cache())
            .env("HF_ENDPOINT", &self.hub.url)
            .env("HF_TOKEN", "")
            .env("TANTO_WORKSPACE_HOME", self.tmp.path().join("ws"))
            .env("TANTO_MEMORY_AVAILABLE", "16G")
            .env("NO_COLOR", "1")
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HUGGINGFACE_HUB_CACHE")
            .envs(extra.iter().copied())
            .current_dir(self.tmp.path())
            .output()
            .unwrap()
    }
    fn requests(&self) -> usize {
        self.hub.state.log.lock().unwrap().len()
    }
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn embed_fixture() -> (PathBuf, Value) {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/embed-tiny/bert-mean");
    let fx = serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    (dir, fx)
}

fn cos(a: &Value, b: &Value) -> f64 {
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    let f = |v: &Value| v.as_f64().unwrap();
    let d: f64 = a.iter().zip(b).map(|(x, y)| f(x) * f(y)).sum();
    let n = |v: &[Value]| v.iter().map(|x| f(x) * f(x)).sum::<f64>().sqrt();
    d / (n(a) * n(b))
}

#[test]
fn embed_pulls_an_exact_name_it_lacks_then_runs_it() {
    let (dir, fx) = embed_fixture();
    let env = Env::new(vec![repo_from_dir("tiny-org/bert-mean", &dir)]);
    let text = fx["texts"][0].as_str().unwrap();

    // --no-pull: not found, nothing asked of the hub.
    let o = env.run(
        &["embed", "tiny-org/bert-mean", text, "--no-pull", "--json"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["tanto_type"], "model_not_found", "{v:#}");
    assert_eq!(env.requests(), 0);
    // Offline: the same, with the reason.
    let o = env.run(
        &["embed", "tiny-org/bert-mean", text],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HF_HUB_OFFLINE"));
    assert_eq!(env.requests(), 0);
    // A fuzzy name is never downloaded.
    let o = env.run(&["embed", "bert-mean", text], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(env.requests(), 0);

    // By default: pulled (progress on stderr), then embedded — the reference vector.
    let o = env.run(&["embed", "tiny-org/bert-mean", text], &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("pulling it from the hub"), "{stderr}");
    let rec: Value =
        serde_json::from_slice(o.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert!(cos(&rec["embedding"], &fx["embeddings"][0]) > 0.9999);
    assert!(env
        .cache()
        .join("models--tiny-org--bert-mean/refs/main")
        .is_file());

    // Now cached: the next call does not touch the network, even offline.
    let before = env.requests();
    let o = env.run(
        &["embed", "tiny-org/bert-mean", text],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(env.requests(), before);
    // …and pull answers already_exists without the network.
    let o = env.run(
        &["pull", "tiny-org/bert-mean", "--json"],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json_of(&o)["data"]["download_status"], "already_exists");
    assert_eq!(env.requests(), before);
}

#[test]
fn run_without_the_model_reports_pull_failures_typed() {
    // The hub does not have it either: the pull's own typed error.
    let env = Env::new(vec![]);
    let o = env.run(&["run", "nobody/nothing", "hi", "--json"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["tanto_type"], "model_not_found", "{v:#}");
    assert!(env.requests() > 0, "the hub was asked");
}

#[test]
fn clone_pulls_what_the_cache_lacks_then_clones() {
    let files = presets::hf_chat();
    let env = Env::new(vec![repo_from_files("tiny-org/chat", &files)]);
    let target = env.tmp.path().join("ws/chat-copy");
    let o = env.run(
        &["clone", "tiny-org/chat", target.to_str().unwrap(), "--json"],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    assert_eq!(v["data"]["clone_status"], "success");
    assert_eq!(v["data"]["health"], "healthy", "{v:#}");
    assert_eq!(v["data"]["health_check"], true);
    // Every file arrived byte for byte, in the cache and in the clone.
    for (path, c) in files.iter() {
        let tanto_testkit::Content::Bytes(want) = c else {
            continue;
        };
        assert_eq!(&std::fs::read(target.join(path)).unwrap(), want, "{path}");
    }
    assert!(env
        .cache()
        .join("models--tiny-org--chat/refs/main")
        .is_file());
    // --no-health-check and --quiet: just the folder.
    let t2 = env.tmp.path().join("ws/chat-2");
    let o = env.run(
        &[
            "clone",
            "tiny-org/chat",
            t2.to_str().unwrap(),
            "--quiet",
            "--no-health-check",
        ],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let printed = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(Path::new(&printed), t2.canonicalize().unwrap());
    // --no-pull on a model the cache lacks: not found.
    let env2 = Env::new(vec![repo_from_files("tiny-org/chat", &files)]);
    let o = env2.run(&["clone", "tiny-org/chat", "x", "--no-pull", "--json"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(env2.requests(), 0);
}

#[test]
fn push_check_only_dry_run_then_push_and_pull_back() {
    let env = Env::new(vec![]);
    env.hub.set_write_token(Some("hf_w"));
    let files = presets::hf_chat();
    let dir = env.tmp.path().join("ws/my-model");
    files.write_to(&dir).unwrap();
    std::fs::write(dir.join(".mlxk_workspace.json"), br#"{"managed":true}"#).unwrap();
    let d = dir.to_str().unwrap();
    let tok = [("HF_TOKEN", "hf_w")];

    // --check-only: the health check and the file list, no network, no token.
    let o = env.run(&["push", d, "me/model", "--check-only", "--json"], &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    assert_eq!(v["data"]["workspace_health"]["healthy"], true, "{v:#}");
    let listed: Vec<&str> = v["data"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), files.len());
    assert!(!listed.contains(&".mlxk_workspace.json"));
    assert_eq!(env.requests(), 0);

    // No token: typed, before any request.
    let o = env.run(&["push", d, "me/model", "--create", "--json"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"]["tanto_type"], "access_denied");
    assert_eq!(env.requests(), 0);
    // Missing repo without --create.
    let o = env.run(&["push", d, "me/model", "--json"], &tok);
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["tanto_type"], "model_not_found", "{v:#}");
    assert!(v["error"]["hint"].as_str().unwrap().contains("--create"));
    // --dry-run: what would change.
    let o = env.run(
        &["push", d, "me/model", "--create", "--dry-run", "--json"],
        &tok,
    );
    let v = json_of(&o);
    assert_eq!(v["data"]["would_create_repo"], true, "{v:#}");
    assert_eq!(v["data"]["change_summary"]["added"], files.len());
    assert!(env.hub.repo("me/model").is_none());
    // The push.
    let o = env.run(
        &["push", d, "me/model", "--create", "--private", "--json"],
        &tok,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    assert_eq!(v["data"]["created_repo"], true);
    assert_eq!(
        v["data"]["commit_sha"],
        env.hub.repo("me/model").unwrap().commit
    );
    // Pulled back into the cache, it is the same healthy model.
    let o = env.run(&["pull", "me/model", "--json"], &tok);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(json_of(&o)["data"]["health"], "healthy");
    for (path, c) in files.iter() {
        let tanto_testkit::Content::Bytes(want) = c else {
            continue;
        };
        let snap = env
            .cache()
            .join("models--me--model/snapshots")
            .join(env.hub.repo("me/model").unwrap().commit);
        assert_eq!(&std::fs::read(snap.join(path)).unwrap(), want, "{path}");
    }
    // An unhealthy folder is refused before anything is sent.
    std::fs::write(dir.join("config.json"), b"{ not json").unwrap();
    let before = env.requests();
    let o = env.run(&["push", d, "me/model", "--json"], &tok);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"]["tanto_type"], "unhealthy_model");
    assert_eq!(env.requests(), before);
}

#[test]
fn ps_lists_what_a_running_server_has_loaded() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let (dir, _) = embed_fixture();
    let env = Env::new(vec![]);
    let mut server = Command::new(BIN)
        .args([
            "serve",
            "--port",
            "0",
            "--allow-paths",
            "--keep-alive",
            "10m",
        ])
        .env("HOME", env.tmp.path())
        .env("HF_HUB_CACHE", env.cache())
        .env("TANTO_MEMORY_AVAILABLE", "16G")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().rsplit(':').next().unwrap().to_string();
    let ps = |extra: &[&str]| {
        let mut a = vec!["ps", "--port", port.as_str()];
        a.extend_from_slice(extra);
        env.run(&a, &[])
    };
    let o = ps(&["--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(json_of(&o)["data"]["models"], serde_json::json!([]));
    // Load the embedder through the API, then ps shows it.
    let model = dir.canonicalize().unwrap().display().to_string();
    let r = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/embeddings"))
        .json(&serde_json::json!({"model": model, "input": "hello"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = json_of(&ps(&["--json"]));
    let m = &v["data"]["models"][0];
    assert_eq!(m["name"], model.as_str(), "{v:#}");
    assert!(m["expires_in_s"].as_u64().unwrap() > 500);
    let o = ps(&[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.contains("fifo") && text.contains("10 min"), "{text}");
    let _ = server.kill();
    let _ = server.wait();
    // No server: a clear error, exit 1.
    let o = ps(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no tanto server answers"));
}
