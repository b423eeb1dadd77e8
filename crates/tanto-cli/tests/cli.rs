//! End-to-end tests of the `tanto` binary on synthetic hub caches: list / health /
//! show --explain / rm, the JSON envelope, exit codes, and insta snapshots of the
//! human output.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tanto_testkit::hub::{self, commit_hash};
use tanto_testkit::presets::{self, Broken};
use tanto_testkit::{workspace, HubCache};

const BIN: &str = env!("CARGO_BIN_EXE_tanto");

/// A temp HOME with `hf/hub` (the cache) and `ws` (the workspace home).
struct Env {
    tmp: tempfile::TempDir,
    cache: HubCache,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = HubCache::new(tmp.path().join("hf/hub"));
        std::fs::create_dir_all(tmp.path().join("ws")).unwrap();
        Self { tmp, cache }
    }

    /// Every healthy preset, every broken case, and one managed workspace.
    fn standard() -> Self {
        let env = Self::new();
        presets::standard_cache(&env.cache);
        workspace::write_workspace(
            &env.ws_home().join("my-llama-ws"),
            &presets::hf_chat(),
            Some("tanto-test/tiny-llama-chat"),
        );
        env
    }

    fn ws_home(&self) -> PathBuf {
        self.tmp.path().join("ws")
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, &[])
    }

    /// [`Env::run`] with extra environment variables.
    fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Out {
        let out = Command::new(BIN)
            .args(args)
            .env("HOME", self.root())
            .env("HF_HOME", self.root().join("hf"))
            .env("HF_HUB_CACHE", self.cache.root())
            .env("TANTO_WORKSPACE_HOME", self.ws_home())
            .env("TANTO_MEMORY_AVAILABLE", "16G")
            .env("NO_COLOR", "1")
            // Nothing here reaches the real hub: a closed port unless a test says otherwise.
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HUGGINGFACE_HUB_CACHE")
            .env_remove("MLXK_WORKSPACE_HOME")
            .env_remove("TANTO_MEMORY_THRESHOLD")
            .env_remove("XDG_CACHE_HOME")
            .envs(extra.iter().copied())
            .current_dir(self.root())
            .output()
            .expect("run tanto");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
        }
    }

    /// Run with `--json`, expect `code`, return the envelope (shape checked).
    fn json(&self, args: &[&str], code: i32) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        assert_eq!(
            out.code, code,
            "tanto {a:?}\nstdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
        let v = out.json();
        assert_envelope(&v);
        v
    }
}

fn assert_envelope(v: &Value) {
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["status", "command", "data", "error"], "{v:#}");
    match v["status"].as_str() {
        Some("success") => assert!(v["error"].is_null()),
        Some("error") => {
            assert!(
                v["error"]["type"].is_string() && v["error"]["message"].is_string(),
                "{v:#}"
            )
        }
        other => panic!("bad status {other:?}"),
    }
}

fn is_utc_z(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
        && s.chars().filter(char::is_ascii_digit).count() == 14
}

/// Expected (framework, model_type, capabilities) of each healthy preset.
fn expected_healthy(id: &str) -> (&'static str, &'static str, Vec<&'static str>) {
    match id {
        "tanto-test/tiny-llama-chat-GGUF" => ("GGUF", "chat", vec!["text-generation", "chat"]),
        "tanto-test/tiny-llama-chat" => ("PyTorch", "chat", vec!["text-generation", "chat"]),
        "mlx-community/tiny-llama-chat-4bit" => ("MLX", "chat", vec!["text-generation", "chat"]),
        "sentence-transformers/tiny-minilm" => ("PyTorch", "embedding", vec!["embeddings"]),
        "openai/whisper-tiny-test" => ("PyTorch", "audio", vec!["audio", "audio-translate-en"]),
        "llava-hf/tiny-llava" => ("PyTorch", "chat", vec!["text-generation", "chat", "vision"]),
        "HuggingFaceTB/tiny-SmolVLM" => {
            ("PyTorch", "chat", vec!["text-generation", "chat", "vision"])
        }
        other => panic!("unexpected preset {other}"),
    }
}

fn find<'a>(models: &'a [Value], name: &str) -> &'a Value {
    models
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

// ---------------------------------------------------------------------------
// list / health

#[test]
fn list_json_classifies_every_entry() {
    let env = Env::standard();
    let v = env.json(&["list"], 0);
    assert_eq!(v["command"], "list");
    let models = v["data"]["models"].as_array().unwrap();
    let n_presets = presets::healthy_presets().len();
    assert_eq!(models.len(), n_presets + Broken::ALL.len() + 1);
    assert_eq!(v["data"]["count"], models.len());
    // JSON API 0.2.4: list carries the host's system facts.
    assert!(v["data"]["system"].is_object(), "{:#}", v["data"]["system"]);

    for m in models {
        for key in [
            "name",
            "hash",
            "size_bytes",
            "last_modified",
            "framework",
            "model_type",
            "capabilities",
            "health",
            "runtime_compatible",
            "reason",
            "cached",
        ] {
            assert!(m.get(key).is_some(), "{key} missing in {m:#}");
        }
        assert!(m["size_bytes"].as_u64().unwrap() > 0);
        assert!(m["capabilities"].is_array());
        assert!(
            is_utc_z(m["last_modified"].as_str().unwrap()),
            "{}",
            m["last_modified"]
        );
    }

    for (id, _) in presets::healthy_presets() {
        let m = find(models, id);
        let (fw, ty, caps) = expected_healthy(id);
        assert_eq!(m["framework"], fw, "{id}");
        assert_eq!(m["model_type"], ty, "{id}");
        assert_eq!(m["capabilities"], serde_json::json!(caps), "{id}");
        assert_eq!(m["health"], "healthy", "{id}: {}", m["reason"]);
        assert_eq!(m["cached"], true);
        assert_eq!(m["hash"], commit_hash(id));
        assert_eq!(m["last_modified"], "2024-01-02T03:04:05Z");
        // Runnable exactly when no reason is given.
        assert_eq!(
            m["runtime_compatible"].as_bool().unwrap(),
            m["reason"].is_null(),
            "{id}: {m:#}"
        );
    }
    // MLX 4-bit llama runs on the native kernels.
    let mlx = find(models, "mlx-community/tiny-llama-chat-4bit");
    assert_eq!(mlx["runtime_compatible"], true);
    assert!(mlx["reason"].is_null());
    // The GGUF llama is runnable when this build has the engine.
    let gguf = find(models, "tanto-test/tiny-llama-chat-GGUF");
    let runnable = tanto_core::registry::supports(tanto_core::plan::Backend::GgufText, "llama");
    assert_eq!(gguf["runtime_compatible"], runnable);
    assert_eq!(gguf["quantization"]["file_type"], "Q4_0");

    for b in Broken::ALL {
        let m = find(models, &b.repo_id());
        assert_eq!(m["health"], "unhealthy", "{b:?}");
        assert_eq!(m["runtime_compatible"], false, "{b:?}");
        let reason = m["reason"].as_str().unwrap();
        assert!(reason.contains(b.mentions()), "{b:?}: {reason}");
        assert_eq!(m["problems"][0]["code"], b.code(), "{b:?}");
    }

    // The workspace: absolute path as name, display_name, not cached.
    let ws = models.iter().find(|m| m["cached"] == false).unwrap();
    assert_eq!(ws["display_name"], "my-llama-ws");
    assert!(ws["name"].as_str().unwrap().ends_with("/ws/my-llama-ws"));
    assert!(ws["hash"].is_null());
    assert_eq!(ws["origin"], "tanto-test/tiny-llama-chat");
}

#[test]
fn list_json_pattern_filters_case_insensitively() {
    let env = Env::standard();
    let v = env.json(&["list", "TINY-LLAMA"], 0);
    let mut names: Vec<&str> = v["data"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "mlx-community/tiny-llama-chat-4bit",
            "tanto-test/tiny-llama-chat",
            "tanto-test/tiny-llama-chat-GGUF"
        ]
    );
}

#[test]
fn health_json_classifies_every_entry() {
    let env = Env::standard();
    let v = env.json(&["health"], 0);
    assert_eq!(v["command"], "health");
    let healthy = v["data"]["healthy"].as_array().unwrap();
    let unhealthy = v["data"]["unhealthy"].as_array().unwrap();
    let n_presets = presets::healthy_presets().len();
    assert_eq!(healthy.len(), n_presets + 1);
    assert_eq!(unhealthy.len(), Broken::ALL.len());
    assert_eq!(
        v["data"]["summary"]["total"],
        n_presets + 1 + Broken::ALL.len()
    );
    assert_eq!(v["data"]["summary"]["healthy_count"], healthy.len());
    assert_eq!(v["data"]["summary"]["unhealthy_count"], unhealthy.len());
    for h in healthy {
        assert_eq!(h["status"], "healthy");
        assert_eq!(h["reason"], "Model is healthy");
    }
    for b in Broken::ALL {
        let e = find(unhealthy, &b.repo_id());
        assert_eq!(e["status"], "unhealthy");
        assert!(
            e["reason"].as_str().unwrap().contains(b.mentions()),
            "{b:?}: {}",
            e["reason"]
        );
        assert_eq!(e["problems"][0]["code"], b.code());
    }
    // Blob-level damage comes with the command that repairs it.
    let dangling = find(unhealthy, &Broken::DanglingSymlink.repo_id());
    // `--force`: an unhealthy cached model is otherwise answered `requires_confirmation`.
    assert_eq!(
        dangling["fix"],
        "tanto pull broken/dangling-symlink --force"
    );
}

#[test]
fn health_json_one_model_and_errors() {
    let env = Env::standard();
    let v = env.json(&["health", "broken/truncated-gguf"], 0);
    assert_eq!(v["data"]["summary"]["total"], 1);
    assert_eq!(
        v["data"]["unhealthy"][0]["problems"][0]["code"],
        "truncated_gguf"
    );
    // No match is a successful check of nothing (mlx-knife's behaviour).
    let v = env.json(&["health", "no-such-model"], 0);
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["healthy"], serde_json::json!([]));
    assert_eq!(v["data"]["unhealthy"], serde_json::json!([]));
    assert_eq!(v["data"]["summary"]["total"], 0);
    let out = env.run(&["health", "no-such-model"]);
    assert_eq!(out.code, 0);
    assert!(out.stderr.contains("no model matches 'no-such-model'"));
    // Ambiguous is an error that still carries the (empty) lists.
    let v = env.json(&["health", "broken"], 1);
    assert_eq!(v["error"]["type"], "ambiguous_match");
    assert_eq!(v["error"]["tanto_type"], "ambiguous_match");
    assert_eq!(v["data"]["healthy"], serde_json::json!([]));
    assert_eq!(v["data"]["summary"]["total"], 0);
    let matches = v["error"]["matches"].as_array().unwrap();
    let mut sorted = matches.clone();
    sorted.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(matches, &sorted);
    assert_eq!(matches.len(), Broken::ALL.len());
}

// ---------------------------------------------------------------------------
// show --explain

fn gate_names(explain: &Value) -> Vec<&str> {
    explain["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["gate"].as_str().unwrap())
        .collect()
}

#[test]
fn show_explain_json_lists_gates() {
    let env = Env::standard();
    let v = env.json(
        &["show", "mlx-community/tiny-llama-chat-4bit", "--explain"],
        0,
    );
    assert_eq!(v["command"], "show");
    let model = &v["data"]["model"];
    assert_eq!(model["framework"], "MLX");
    assert_eq!(model["quantization_config"]["bits"], 4);
    // mlx-knife's raw dict keys, merged over tanto's normalised object.
    let raw = model["quantization_config"].as_object().unwrap();
    for (k, val) in raw {
        assert_eq!(&model["quantization"][k], val, "quantization.{k}");
    }
    assert_eq!(model["quantization"]["bits"], 4);
    assert!(model["quantization"]["method"].is_string());
    let ex = &v["data"]["explain"];
    assert_eq!(
        gate_names(ex),
        ["health", "capability", "backend", "runtime", "memory"]
    );
    assert_eq!(ex["verdict"], "allow");
    assert_eq!(v["data"]["mlx"]["path"], "native");
    assert!(v["data"]["mlx"]["runtime_bytes"].as_u64().unwrap() > 0);

    // A modality without an engine in this build: blocked at the runtime gate.
    let v = env.json(&["show", "llava-hf/tiny-llava", "--explain"], 0);
    let ex = &v["data"]["explain"];
    assert_eq!(ex["verdict"], "block");
    assert_eq!(ex["http_status"], 501);
    assert_eq!(ex["error"]["type"], "runtime_incompatible");
    assert_eq!(ex["error"]["architecture"], "llava");
    assert!(ex["error"]["hint"].is_string());
    assert_eq!(ex["gates"][3]["verdict"], "block");
    assert_eq!(ex["gates"][4]["verdict"], "skipped");

    // Speech-to-text has an engine: the whisper backend is chosen.
    let v = env.json(&["show", "openai/whisper-tiny-test", "--explain"], 0);
    let ex = &v["data"]["explain"];
    assert_eq!(ex["verdict"], "allow");
    assert_eq!(ex["backend"], "whisper");

    let v = env.json(&["show", "broken/dangling-symlink", "--explain"], 0);
    let ex = &v["data"]["explain"];
    assert_eq!(ex["error"]["type"], "unhealthy_model");
    assert_eq!(ex["http_status"], 422);
    assert_eq!(ex["gates"][0]["verdict"], "block");

    let v = env.json(&["show", "tanto-test/tiny-llama-chat-GGUF", "--explain"], 0);
    let ex = &v["data"]["explain"];
    assert_eq!(gate_names(ex).len(), 5);
    if v["data"]["model"]["runtime_compatible"] == true {
        assert_eq!(ex["verdict"], "allow");
        assert_eq!(ex["backend"], "gguf-text");
        assert!(ex["http_status"].is_null());
    }
    // --files lists the real files, symlinks followed.
    let v = env.json(&["show", "sentence-transformers/tiny-minilm", "--files"], 0);
    let files = v["data"]["files"].as_array().unwrap();
    // mlx-knife: basename and "1.6KB"-style size; tanto: relative path and bytes.
    let pooling = files
        .iter()
        .find(|f| f["path"] == "1_Pooling/config.json")
        .expect("1_Pooling/config.json listed");
    assert_eq!(pooling["name"], "config.json");
    assert!(files.iter().all(|f| f["symlink"] == true));
    for f in files {
        let n = f["size_bytes"].as_u64().unwrap();
        let size = f["size"].as_str().unwrap();
        if n < 1000 {
            assert_eq!(size, format!("{n}B"));
        } else {
            assert!(size.ends_with("KB") || size.ends_with("MB"), "{size}");
            assert!(!size.contains(' '), "{size}");
        }
    }
    assert!(v["data"]["metadata"].is_null());
}

#[test]
fn show_explain_human_names_type_status_and_fix() {
    let env = Env::standard();
    let out = env.run(&["show", "sentence-transformers/tiny-minilm", "--explain"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for gate in ["health", "capability", "backend", "runtime", "memory"] {
        assert!(out.stdout.contains(gate), "{gate} missing:\n{}", out.stdout);
    }
    if tanto_core::registry::EMBEDDING_MODEL_TYPES.is_empty() {
        assert!(
            out.stdout.contains("missing_backend (HTTP 501)"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("fix:"), "{}", out.stdout);
    }
}

// ---------------------------------------------------------------------------
// rm

fn rel_blobs(repo: &tanto_testkit::CachedRepo) -> Vec<String> {
    repo.blobs()
        .iter()
        .map(|b| b.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn rm_revision_removes_only_that_snapshot_its_refs_and_unshared_blobs() {
    let env = Env::new();
    let (repo, old, new) = presets::two_snapshots(&env.cache, "org/two");
    let before = rel_blobs(&repo);
    let old_only: Vec<String> = ["config.json", "model.safetensors"]
        .iter()
        .map(|f| {
            repo.blob_of(&old, f)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let shared = repo.blob_of(&old, "tokenizer.json");
    assert_eq!(shared, repo.blob_of(&new, "tokenizer.json"));

    let v = env.json(&["rm", &format!("org/two@{}", &old[..7])], 0);
    assert_eq!(v["data"]["action"], "deleted");
    assert_eq!(v["data"]["requires_confirmation"], false);
    assert_eq!(v["data"]["matches"], serde_json::json!([]));
    assert_eq!(v["data"]["lock_files_cleaned"], 0);
    assert_eq!(v["data"]["commit_hash"], old.as_str());
    assert_eq!(v["data"]["blobs_removed"], 2);
    assert_eq!(v["data"]["refs_removed"], serde_json::json!(["v1"]));
    assert_eq!(v["data"]["repo_removed"], false);

    assert_eq!(repo.snapshots(), vec![new.clone()]);
    assert_eq!(repo.ref_commit("main").as_deref(), Some(new.as_str()));
    assert_eq!(repo.ref_commit("v1"), None);
    let after = rel_blobs(&repo);
    assert_eq!(after.len(), before.len() - 2);
    for b in &old_only {
        assert!(!after.contains(b), "{b} should be gone");
    }
    assert!(shared.exists(), "shared blob kept");
    // The remaining revision is intact.
    let v = env.json(&["health", "org/two"], 0);
    assert_eq!(v["data"]["summary"]["healthy_count"], 1, "{v:#}");

    // Removing the last revision removes the repo, and its (empty) lock folder.
    let locks = env.cache.root().join(".locks/models--org--two");
    std::fs::create_dir_all(&locks).unwrap();
    let v = env.json(&["rm", "org/two@main"], 0);
    assert_eq!(v["data"]["repo_removed"], true);
    assert!(!repo.dir.exists());
    assert!(
        !locks.exists(),
        "the cache owner removes .locks/models--org--two"
    );
}

#[test]
fn rm_whole_model() {
    let env = Env::new();
    let repo = env.cache.add("org/gone", &presets::gguf_chat());
    let out = env.run(&["rm", "org/gone"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("rm: "), "{}", out.stdout);
    assert!(!repo.dir.exists());
    assert!(env.cache.root().is_dir(), "the cache itself stays");
}

#[test]
fn rm_fuzzy_without_force_does_not_delete() {
    let env = Env::new();
    let repo = env.cache.add("org/fuzzy-target", &presets::gguf_chat());
    let v = env.json(&["rm", "fuzzy-tar"], 0);
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["action"], "requires_confirmation");
    assert_eq!(v["data"]["requires_confirmation"], true);
    assert_eq!(v["data"]["model"], "org/fuzzy-target");
    assert_eq!(v["data"]["matches"], serde_json::json!([]));
    assert!(repo.dir.exists());
    // Human mode without a TTY: refused, exit 1.
    let out = env.run(&["rm", "fuzzy-tar"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("nothing deleted"), "{}", out.stderr);
    assert!(repo.dir.exists());
    // -f deletes.
    let v = env.json(&["rm", "fuzzy-tar", "-f"], 0);
    assert_eq!(v["data"]["action"], "deleted");
    assert!(!repo.dir.exists());
}

#[test]
fn rm_lock_files_block_without_force() {
    let env = Env::new();
    let repo = env.cache.add("org/locked", &presets::hf_chat());
    let lock = repo.add_lock("0123abcd");
    let v = env.json(&["rm", "org/locked"], 1);
    assert_eq!(v["error"]["type"], "locks_present");
    assert_eq!(v["error"]["locks_detected"], true);
    assert_eq!(v["error"]["lock_files"][0], lock.display().to_string());
    // mlx-knife keeps them in data, relative to the cache.
    let rel = lock
        .strip_prefix(env.cache.root())
        .unwrap()
        .display()
        .to_string();
    assert!(rel.starts_with(".locks/models--org--locked/"), "{rel}");
    assert_eq!(v["data"]["locks_detected"], true);
    assert_eq!(v["data"]["lock_files"][0], rel.as_str());
    assert_eq!(v["data"]["model"], "org/locked");
    assert!(repo.dir.exists());
    let out = env.run(&["rm", "org/locked"]);
    assert_eq!(out.code, 1);
    assert!(repo.dir.exists());
    let v = env.json(&["rm", "org/locked", "-f"], 0);
    assert_eq!(v["data"]["lock_files_cleaned"], 1);
    assert_eq!(v["data"]["cleaned_lock_files"][0], rel.as_str());
    assert_eq!(v["data"]["requires_confirmation"], false);
    assert_eq!(v["data"]["matches"], serde_json::json!([]));
    assert!(!repo.dir.exists());
    assert!(!lock.parent().unwrap().exists());
}

#[test]
fn rm_refuses_workspaces() {
    let env = Env::new();
    let ws = workspace::write_workspace(&env.ws_home().join("keep-me"), &presets::hf_chat(), None);
    let v = env.json(&["rm", "keep-me", "-f"], 1);
    assert_eq!(v["error"]["type"], "workspace_model");
    // mlx-knife's data.model: the resolved folder.
    assert_eq!(
        v["data"]["model"],
        ws.display().to_string().as_str(),
        "{v:#}"
    );
    assert!(ws.join("config.json").exists());
    let v = env.json(&["rm", ws.to_str().unwrap(), "-f"], 1);
    assert_eq!(v["error"]["type"], "workspace_model");
    assert!(ws.join("config.json").exists());
}

#[test]
fn rm_errors() {
    let env = Env::standard();
    let v = env.json(&["rm", "nothing-like-this"], 1);
    assert_eq!(v["error"]["type"], "model_not_found");
    assert_eq!(v["data"]["action"], "unknown");
    assert_eq!(v["data"]["matches"], serde_json::json!([]));
    let v = env.json(&["rm", "tiny-llama"], 1);
    assert_eq!(v["error"]["type"], "ambiguous_match");
    assert_eq!(v["data"]["action"], "ambiguous");
    assert_eq!(v["data"]["matches"], v["error"]["matches"]);
    assert!(v["data"]["matches"].as_array().unwrap().len() > 1);
    assert_eq!(v["data"]["requires_confirmation"], false);
    assert_eq!(v["data"]["model"], serde_json::Value::Null);
    let v = env.json(&["rm", "tanto-test/tiny-llama-chat@0000000"], 1);
    // mlx-knife 2.0.8 answers an unknown hash in rm with model_not_found too.
    assert_eq!(v["error"]["type"], "model_not_found");
    assert_eq!(v["data"]["model"], serde_json::Value::Null);
    assert_eq!(v["error"]["tanto_type"], "revision_not_found");
    assert!(v["error"]["available_hashes"].is_array(), "{v:#}");
    // show reports an unknown revision as mlx-knife 2.0.8 does.
    let v = env.json(&["show", "tanto-test/tiny-llama-chat@0000000"], 1);
    assert_eq!(v["error"]["type"], "model_not_found");
    assert_eq!(v["error"]["tanto_type"], "revision_not_found");
    assert!(env.cache.repo("tanto-test/tiny-llama-chat").dir.exists());
}

// ---------------------------------------------------------------------------
// clone / convert / run: mlx-knife's fields beside tanto's

#[test]
fn clone_json_carries_mlx_knife_fields() {
    let env = Env::new();
    env.cache.add("org/clonable", &presets::hf_chat());
    let target = env.root().join("out/clonable");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let v = env.json(&["clone", "org/clonable", target.to_str().unwrap()], 0);
    let d = &v["data"];
    let abs = std::fs::canonicalize(&target).unwrap();
    assert_eq!(d["target_dir"], abs.display().to_string());
    assert_eq!(d["clone_status"], "success");
    assert_eq!(d["message"], format!("Cloned to {}", abs.display()));
    assert_eq!(d["health_check"], true);
    assert_eq!(d["health"], "healthy", "{d:#}");
    assert_eq!(d["health_reason"], "Model is healthy");
    // tanto's own fields stay.
    assert_eq!(d["target"], target.display().to_string());
    assert!(d["files"].as_u64().unwrap() > 0);
    assert!(target.join("config.json").exists());

    // A second clone into the same, now full, folder: mlx-knife's error data.
    let v = env.json(&["clone", "org/clonable", target.to_str().unwrap()], 1);
    assert_eq!(v["error"]["type"], "InvalidTargetError");
    assert_eq!(v["data"]["clone_status"], "error");
    assert_eq!(v["data"]["health_check"], true);
    assert_eq!(v["data"]["model"], "org/clonable");
    assert_eq!(v["data"]["target_dir"], target.display().to_string());
    // Not cached: clone pulls it first; a hub that cannot be reached is pull_failed…
    let v = env.json(&["clone", "org/not-pulled", "somewhere"], 1);
    assert_eq!(v["data"]["clone_status"], "pull_failed", "{v:#}");
    // …and with --no-pull it is not in the cache.
    let v = env.json(&["clone", "org/not-pulled", "somewhere", "--no-pull"], 1);
    assert_eq!(v["data"]["clone_status"], "cache_not_found");
}

#[test]
fn clone_refuses_a_target_whose_parent_is_missing() {
    let env = Env::new();
    env.cache.add("org/clonable", &presets::hf_chat());
    let target = env.root().join("nowhere/cloned");
    let v = env.json(&["clone", "org/clonable", target.to_str().unwrap()], 1);
    assert_eq!(v["error"]["type"], "InvalidTargetError");
    assert_eq!(v["error"]["tanto_type"], "validation_error");
    let parent = env.root().join("nowhere");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&parent.display().to_string()),
        "{v:#}"
    );
    assert_eq!(v["data"]["clone_status"], "error");
    assert_eq!(v["data"]["target_dir"], target.display().to_string());
    assert!(!parent.exists(), "nothing created");
    // The default target under the workspace home still works (home created).
    let out = env.run_with(
        &["clone", "org/clonable", "--json"],
        &[(
            "TANTO_WORKSPACE_HOME",
            env.root().join("new-home").to_str().unwrap(),
        )],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(env.root().join("new-home/clonable/config.json").exists());
}

#[test]
fn convert_json_carries_mlx_knife_fields() {
    let env = Env::new();
    env.cache.add("org/convertible", &presets::hf_chat());
    let target = env.root().join("out/converted");
    let v = env.json(
        &[
            "convert",
            "org/convertible",
            target.to_str().unwrap(),
            "--repair-index",
        ],
        0,
    );
    let d = &v["data"];
    assert_eq!(d["mode"], "repair-index");
    assert_eq!(d["health_check"], true);
    assert_eq!(d["health_status"], "healthy", "{d:#}");
    assert_eq!(d["health_reason"], "Model is healthy");
    assert!(d["message"].as_str().unwrap().contains("index"), "{d:#}");
    assert!(
        d["content_hash"].as_str().unwrap().starts_with("sha256:"),
        "{d:#}"
    );
    // The old names stay as extras.
    assert_eq!(d["health"], "healthy");
    assert!(d["reason"].is_null());
    // content_hash is the v2 hash of what was written.
    let h = tanto_core::workspace::compute_content_hash(
        &target,
        &tanto_core::workspace::DEFAULT_EXCLUDE_PATTERNS
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
    )
    .expect("hashable target");
    assert_eq!(d["content_hash"], h.content_hash.as_str());

    // A target that is not empty: mlx-knife's ValueError with its data.
    let full = env.root().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("keep.txt"), "x").unwrap();
    let v = env.json(
        &[
            "convert",
            "org/convertible",
            full.to_str().unwrap(),
            "--repair-index",
        ],
        1,
    );
    assert_eq!(v["error"]["type"], "ValueError");
    assert_eq!(v["error"]["tanto_type"], "validation_error");
    assert_eq!(v["data"]["source"], "org/convertible");
    assert_eq!(v["data"]["target"], full.display().to_string());
    assert_eq!(v["data"]["mode"], "repair-index");
    assert_eq!(v["data"]["health_check"], true);
    assert_eq!(std::fs::read_to_string(full.join("keep.txt")).unwrap(), "x");
}

#[test]
fn convert_quantize_writes_a_runnable_mlx_workspace() {
    let env = Env::new();
    env.cache.add("org/convertible", &presets::hf_chat());
    let target = env.root().join("out/q4");
    let v = env.json(
        &[
            "convert",
            "org/convertible",
            target.to_str().unwrap(),
            "--quantize",
            "4",
            "--group-size",
            "32",
        ],
        0,
    );
    let d = &v["data"];
    assert_eq!(d["mode"], "quantize");
    assert_eq!(
        (d["bits"].as_u64(), d["group_size"].as_u64()),
        (Some(4), Some(32))
    );
    assert_eq!(d["health_status"], "healthy", "{d:#}");
    assert_eq!(d["message"], "Quantized to 4-bit successfully");
    assert!(d["content_hash"].as_str().unwrap().starts_with("sha256:"));
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(target.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["quantization"]["bits"], 4);
    assert_eq!(cfg["quantization_config"]["group_size"], 32);
    // The probe sees an MLX checkpoint it runs natively.
    let v = env.json(&["show", target.to_str().unwrap()], 0);
    assert_eq!(v["data"]["model"]["framework"], "MLX");
    assert_eq!(v["data"]["mlx"]["path"], "native", "{:#}", v["data"]);

    // Bad bits and group sizes, an already quantized source: errors with data.
    let q7 = env.root().join("out/q7");
    let v = env.json(
        &[
            "convert",
            "org/convertible",
            q7.to_str().unwrap(),
            "--quantize",
            "7",
        ],
        1,
    );
    assert!(!q7.exists());
    assert!(v["error"]["message"].as_str().unwrap().contains("got 7"));
    assert_eq!(v["data"]["mode"], "quantize");
    let v = env.json(
        &[
            "convert",
            target.to_str().unwrap(),
            env.root().join("out/again").to_str().unwrap(),
            "--quantize",
            "8",
        ],
        1,
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already quantized"));
    let out = env.run(&[
        "convert",
        "org/convertible",
        "x",
        "--quantize",
        "4",
        "--repair-index",
    ]);
    assert_eq!(out.code, 2, "the two modes exclude each other");
}

// ---------------------------------------------------------------------------
// pull answers from the cache without the hub

/// An endpoint nothing listens on: any hub contact fails.
const NO_HUB: &[(&str, &str)] = &[("HF_ENDPOINT", "http://127.0.0.1:9")];

fn pull_json(env: &Env, args: &[&str], code: i32) -> Value {
    let mut a = vec!["pull"];
    a.extend_from_slice(args);
    a.push("--json");
    let out = env.run_with(&a, NO_HUB);
    assert_eq!(out.code, code, "{}{}", out.stdout, out.stderr);
    out.json()
}

#[test]
fn pull_expands_short_names_against_the_cache_first() {
    let env = Env::new();
    env.cache.add("org/tiny-widget", &presets::hf_chat());
    env.cache.add("org/other-a", &presets::hf_chat());
    env.cache.add("org/other-b", &presets::hf_chat());
    // A unique cached match: expanded, answered from the cache.
    let v = pull_json(&env, &["widget"], 0);
    assert_eq!(v["data"]["download_status"], "already_exists", "{v:#}");
    assert_eq!(v["data"]["expanded_name"], "org/tiny-widget");
    assert_eq!(v["data"]["model"], "org/tiny-widget");
    // Several: ambiguous, nothing sent anywhere.
    let v = pull_json(&env, &["other"], 1);
    assert_eq!(v["error"]["tanto_type"], "ambiguous_match", "{v:#}");
    // None: a short name is never sent to the hub as a repo id.
    let v = pull_json(&env, &["nothing-like-it"], 1);
    assert_eq!(v["error"]["tanto_type"], "validation_error", "{v:#}");
    // An exact id is not expanded.
    let v = pull_json(&env, &["org/tiny-widget"], 0);
    assert!(v["data"]["expanded_name"].is_null());
}

#[test]
fn pull_of_a_healthy_cached_model_is_already_exists() {
    let env = Env::new();
    let repo = env.cache.add("org/here", &presets::hf_chat());
    let v = pull_json(&env, &["org/here"], 0);
    assert_eq!(v["status"], "success", "{v:#}");
    assert_eq!(v["data"]["download_status"], "already_exists");
    assert_eq!(v["data"]["model"], "org/here");
    assert_eq!(v["data"]["commit_hash"], repo.snapshots()[0].as_str());
    // Human mode says so too; exit 0.
    let out = env.run_with(&["pull", "org/here"], NO_HUB);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("already in the cache"),
        "{}",
        out.stdout
    );
    // A fuzzy name is not a cache hit: pull takes full ids, and the hub is asked.
    let v = pull_json(&env, &["org/her"], 1);
    assert_eq!(v["data"]["download_status"], "failed", "{v:#}");
    assert!(v["data"]["preflight_warning"].is_string(), "{v:#}");
    // Filters may want files the snapshot lacks: the hub is asked.
    let v = pull_json(&env, &["org/here", "--include", "*.gguf"], 1);
    assert_eq!(v["data"]["download_status"], "failed", "{v:#}");
}

#[test]
fn pull_of_an_unhealthy_cached_model_needs_force() {
    let env = Env::new();
    let repo = Broken::LfsPointer.install(&env.cache);
    let id = Broken::LfsPointer.repo_id();
    let v = pull_json(&env, &[&id], 0);
    assert_eq!(v["status"], "success", "{v:#}");
    assert_eq!(v["data"]["download_status"], "requires_confirmation");
    let msg = v["data"]["message"].as_str().unwrap();
    assert!(msg.contains("--force"), "{msg}");
    assert!(repo.dir.exists());
    // --force goes to the hub (unreachable here).
    let v = pull_json(&env, &[&id, "--force"], 1);
    assert_eq!(v["data"]["download_status"], "failed", "{v:#}");
    // An interrupted pull resumes without asking.
    let env = Env::new();
    Broken::PartialDownload.install(&env.cache);
    let v = pull_json(&env, &[&Broken::PartialDownload.repo_id()], 1);
    assert_eq!(v["data"]["download_status"], "failed", "{v:#}");
}

#[test]
fn run_errors_are_execution_errors_with_the_tanto_type() {
    let env = Env::standard();
    let v = env.json(&["run", "no-such-model", "--prompt", "hi"], 1);
    assert_eq!(v["command"], "run");
    assert_eq!(v["error"]["type"], "execution_error");
    assert_eq!(v["error"]["tanto_type"], "model_not_found");
    let v = env.json(&["run", "broken/partial-download", "hi"], 1);
    assert_eq!(v["error"]["type"], "execution_error");
    assert_eq!(v["error"]["tanto_type"], "unhealthy_model");
}

#[test]
fn server_is_an_alias_of_serve() {
    let env = Env::new();
    let a = env.run(&["server", "--help"]);
    let b = env.run(&["serve", "--help"]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert!(a.stdout.contains("--keep-alive"), "{}", a.stdout);
    assert_eq!(a.stdout, b.stdout);
}

// ---------------------------------------------------------------------------
// exit codes and usage errors

#[test]
fn exit_codes() {
    let env = Env::standard();
    assert_eq!(env.run(&["list"]).code, 0);
    assert_eq!(env.run(&["--version"]).code, 0);
    assert_eq!(env.run(&["show", "no-such-model"]).code, 1);

    let out = env.run(&["list", "--no-such-flag"]);
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("--no-such-flag"));

    let out = env.run(&["show"]);
    assert_eq!(out.code, 2, "missing argument is a usage error");

    let out = env.run(&["list", "--no-such-flag", "--json"]);
    assert_eq!(out.code, 2);
    let v = out.json();
    assert_envelope(&v);
    assert_eq!(v["error"]["type"], "CommandError");
    assert_eq!(v["error"]["tanto_type"], "usage_error");
    assert!(v["command"].is_null());

    // No subcommand with --json: mlx-knife's CommandError, exit 1.
    let v = env.json(&[], 1);
    assert_eq!(v["error"]["type"], "CommandError");
    assert_eq!(v["error"]["message"], "No command specified");
    assert!(v["command"].is_null());

    // Validation errors use mlx-knife's CLI name.
    let v = env.json(&["pull", "no-slash"], 1);
    assert_eq!(v["error"]["type"], "ValidationError");
    assert_eq!(v["error"]["tanto_type"], "validation_error");
    assert_eq!(v["data"]["download_status"], "error");
    assert_eq!(v["data"]["model"], Value::Null);
    let v = env.json(&["convert", "tiny-minilm", "out"], 1);
    assert_eq!(v["error"]["type"], "InvalidArgumentError");

    let out = env.run(&["frobnicate"]);
    assert_eq!(out.code, 2);

    // Errors go to stderr in human mode.
    let out = env.run(&["show", "no-such-model"]);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr
            .contains("No model found matching 'no-such-model'"),
        "{}",
        out.stderr
    );
}

#[test]
fn version_json() {
    let env = Env::new();
    let v = env.json(&["--version"], 0);
    assert_eq!(v["command"], "version");
    assert!(v["data"]["cli_version"].is_string());
    assert_eq!(v["data"]["json_api_spec_version"], "0.2.4");
    // The devices this build can use: the CPU always, GPUs by cargo feature.
    let dev = &v["data"]["devices"];
    let built: Vec<&str> = dev["built"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(built.contains(&"cpu"));
    assert_eq!(built.contains(&"cuda"), cfg!(feature = "cuda"));
    assert!(built.contains(&dev["selected"].as_str().unwrap()));
    assert_eq!(v["data"]["mlx"]["native_bits"], serde_json::json!([4, 8]));
}

// ---------------------------------------------------------------------------
// Human output snapshots (insta); paths, ages and hashes are redacted.

fn snapshot_settings(env: &Env) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    let root = env.root().display().to_string();
    let canon = std::fs::canonicalize(env.root())
        .unwrap()
        .display()
        .to_string();
    s.add_filter(&regex_escape(&canon), "[TMP]");
    s.add_filter(&regex_escape(&root), "[TMP]");
    s.add_filter(r"\b[0-9a-f]{64}\b", "[SHA256]");
    s.add_filter(r"\b[0-9a-f]{40}\b", "[COMMIT]");
    s.add_filter(r"\b[0-9a-f]{7}\b", "[ID]");
    s.add_filter(r"\b\d{4}-\d{2}-\d{2}\b", "[DATE]");
    s.add_filter(r"just now|\b\d+ (minute|hour|day)s? ago", "[AGE]");
    s.add_filter(r"\d+\.\d GB available", "[MEM] available");
    s.set_prepend_module_to_snapshot(false);
    s
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn human(env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    assert_eq!(out.code, 0, "tanto {args:?}: {}", out.stderr);
    format!(
        "$ tanto {}\n{}--- stderr ---\n{}",
        args.join(" "),
        out.stdout,
        out.stderr
    )
}

#[test]
fn snapshot_list_human() {
    let env = Env::standard();
    snapshot_settings(&env).bind(|| {
        insta::assert_snapshot!("list_default", human(&env, &["list"]));
        insta::assert_snapshot!(
            "list_all_health",
            human(&env, &["list", "--all", "--health"])
        );
        insta::assert_snapshot!(
            "list_all_verbose_health",
            human(&env, &["list", "--all", "--verbose", "--health"])
        );
    });
}

#[test]
fn snapshot_show_human() {
    let env = Env::standard();
    snapshot_settings(&env).bind(|| {
        insta::assert_snapshot!(
            "show_gguf",
            human(&env, &["show", "tanto-test/tiny-llama-chat-GGUF"])
        );
        insta::assert_snapshot!(
            "show_mlx_explain",
            human(
                &env,
                &["show", "mlx-community/tiny-llama-chat-4bit", "--explain"]
            )
        );
        insta::assert_snapshot!(
            "show_broken_explain",
            human(&env, &["show", "broken/partial-download", "--explain"])
        );
        insta::assert_snapshot!(
            "show_embedder_files",
            human(&env, &["show", "tiny-minilm", "--files"])
        );
    });
}

#[test]
fn snapshot_health_human() {
    let env = Env::standard();
    snapshot_settings(&env).bind(|| {
        insta::assert_snapshot!("health_all", human(&env, &["health"]));
        insta::assert_snapshot!(
            "health_one",
            human(&env, &["health", "broken/missing-shard"])
        );
    });
}

#[test]
fn fixture_mtime_is_what_list_reports() {
    // Guards the snapshot redaction assumptions: snapshot folders carry the fixed mtime.
    let env = Env::new();
    let repo = env.cache.add("org/m", &presets::gguf_chat());
    let t = std::fs::metadata(repo.main_snapshot())
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(t, hub::fixture_mtime());
}

// ---------------------------------------------------------------------------
// embed, end to end on the committed tiny sentence-transformers models.

fn embed_fixture(name: &str) -> (String, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/embed-tiny");
    let dir = dir.join(name).canonicalize().unwrap();
    let fx = serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    (dir.display().to_string(), fx)
}

fn cos(a: &Value, b: &Value) -> f64 {
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    assert_eq!(a.len(), b.len(), "dimensions");
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    d / (na.sqrt() * nb.sqrt())
}

/// `tanto embed ARGS` with `input` on standard input.
fn embed_with_stdin(env: &Env, args: &[&str], input: &str) -> Out {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(BIN)
        .arg("embed")
        .args(args)
        .env("HOME", env.root())
        .env("HF_HUB_CACHE", env.cache.root())
        .env("TANTO_MEMORY_AVAILABLE", "16G")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn jsonl(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn embed_texts_batch_stdin_and_json() {
    let env = Env::new();
    let (model, fx) = embed_fixture("bert-mean");
    let (t0, t2) = (
        fx["texts"][0].as_str().unwrap(),
        fx["texts"][2].as_str().unwrap(),
    );
    // Positional texts: one JSONL record each, sentence-transformers' vectors.
    let out = env.run(&["embed", &model, t0, t2]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let recs = jsonl(&out.stdout);
    assert_eq!(recs.len(), 2);
    for (r, (text, want)) in recs
        .iter()
        .zip([(t0, &fx["embeddings"][0]), (t2, &fx["embeddings"][2])])
    {
        assert_eq!(r["text"], text);
        assert!(cos(&r["embedding"], want) > 0.9999, "{text}");
        assert_eq!(r["metadata"]["dimensions"], 32);
        assert_eq!(r["metadata"]["model"], "bert-mean");
    }
    // --batch: JSONL in, other fields pass through, order kept.
    let out = embed_with_stdin(
        &env,
        &[&model, "--batch"],
        &format!("{}\n\n{}\n", json_line(7, t0), json_line("x", t2)),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let recs = jsonl(&out.stdout);
    assert_eq!(
        (recs[0]["id"].clone(), recs[1]["id"].clone()),
        (7.into(), "x".into())
    );
    assert!(cos(&recs[1]["embedding"], &fx["embeddings"][2]) > 0.9999);
    // `-`: standard input is one text (its final newline dropped).
    let out = embed_with_stdin(&env, &[&model, "-"], &format!("{t0}\n"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let recs = jsonl(&out.stdout);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["text"], t0);
    assert!(cos(&recs[0]["embedding"], &fx["embeddings"][0]) > 0.9999);
    // --json: the envelope with the records.
    let v = env.json(&["embed", &model, t0], 0);
    assert_eq!(v["data"]["count"], 1);
    assert_eq!(v["data"]["dimensions"], 32);
    assert!(cos(&v["data"]["records"][0]["embedding"], &fx["embeddings"][0]) > 0.9999);
}

fn json_line(id: impl Into<Value>, text: &str) -> String {
    serde_json::json!({"id": id.into(), "text": text}).to_string()
}

#[test]
fn embed_query_prompt_and_refusals() {
    let env = Env::new();
    let (model, fx) = embed_fixture("bert-prompt");
    let t0 = fx["texts"][0].as_str().unwrap();
    // --query applies the model's query prompt: the reference's query vector.
    let out = env.run(&["embed", &model, "--query", t0]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = &jsonl(&out.stdout)[0];
    assert!(cos(&r["embedding"], &fx["query_embeddings"][0]) > 0.9999);
    assert!(
        cos(&r["embedding"], &fx["embeddings"][0]) < 0.9999,
        "the prompt changes it"
    );
    // Bad input: typed errors, nothing on stdout.
    for (args, what) in [
        (vec!["embed", model.as_str(), ""], "empty string"),
        (
            vec!["embed", model.as_str(), "--instruct", "Find it", t0],
            "instruction",
        ),
        (vec!["embed", model.as_str()], "text"),
    ] {
        let v = env.json(&args, 1);
        assert_eq!(
            v["error"]["tanto_type"], "validation_error",
            "{args:?}: {v:#}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains(what),
            "{v:#}"
        );
    }
    // A chat model is not an embedder: the policy's capability error.
    env.cache.add("org/chat", &presets::gguf_chat());
    let v = env.json(&["embed", "org/chat", "hi"], 1);
    assert_eq!(v["error"]["tanto_type"], "capability_mismatch", "{v:#}");
}

#[test]
fn deploy_vllm_mounts_the_cache_read_only_at_the_cached_snapshot() {
    let env = Env::new();
    let repo = env.cache.add("org/chat-model", &presets::hf_chat());
    let commit = repo.main_commit().unwrap();
    let cache = std::fs::canonicalize(env.cache.root()).unwrap();
    let out = env.run(&["deploy", "vllm", "org/chat-model", "--port", "8011"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let y = &out.stdout;
    for want in [
        "\"--model\", \"org/chat-model\"".to_string(),
        format!("\"--revision\", \"{commit}\""),
        format!(
            "{}:/hf/hub:ro",
            serde_json::to_string(&cache.display().to_string()).unwrap()
        ),
        "HF_HUB_OFFLINE: \"1\"".to_string(),
        "127.0.0.1:8011:8000".to_string(),
        "tanto serve --upstream http://127.0.0.1:8011".to_string(),
    ] {
        assert!(y.contains(&want), "missing {want} in\n{y}");
    }
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    // k8s: a read-only hostPath mount and a Service.
    let out = env.run(&["deploy", "vllm", "org/chat-model", "--emit", "k8s"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("kind: Deployment") && out.stdout.contains("kind: Service"));
    assert!(out.stdout.contains("readOnly: true"));
    // Embedders get vLLM's embedding task.
    env.cache.add("org/emb", &presets::st_embedder());
    let v = env.json(&["deploy", "vllm", "org/emb"], 0);
    assert!(v["data"]["manifest"]
        .as_str()
        .unwrap()
        .contains("\"--task\", \"embed\""));
    // GGUF: a warning; MLX-quantized: refused, with the reason.
    env.cache.add("org/chat-GGUF", &presets::gguf_chat());
    let v = env.json(&["deploy", "vllm", "org/chat-GGUF"], 0);
    assert!(
        v["data"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("experimental"),
        "{v:#}"
    );
    env.cache.add("mlx-community/m-4bit", &presets::mlx_4bit());
    let v = env.json(&["deploy", "vllm", "mlx-community/m-4bit"], 1);
    assert_eq!(v["error"]["tanto_type"], "runtime_incompatible", "{v:#}");
    // Not in the cache: the resolver's error.
    let v = env.json(&["deploy", "vllm", "org/absent"], 1);
    assert_eq!(v["error"]["tanto_type"], "model_not_found");
}
