//! Hostile input: model files whose numbers would size an allocation, and
//! filesystem entries that would hang or exhaust a naive reader. Each case is
//! unhealthy with a specific problem code (never a panic, hang or huge
//! allocation), and `list`-style walks over looping trees finish.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::{codes, probe_path, Env};
use serde_json::json;
use tanto_core::probe::{Probe, ProbeTarget};
use tanto_core::resolve::Stores;
use tanto_testkit::gguf::GgufBuilder;
use tanto_testkit::presets::{self, gguf_builder, GGUF_CHAT_FILE};
use tanto_testkit::workspace;

/// Run `f` on a thread; fail (instead of hanging the suite) after 30 s.
fn within_30s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("finished within 30 s (no hang)")
}

fn probe_dir(dir: &Path) -> Probe {
    // Uncached: these tests are about the phases themselves.
    tanto_core::probe::probe_uncached(&ProbeTarget {
        name: dir.display().to_string(),
        dir: Some(dir.to_path_buf()),
        file: None,
        repo: None,
    })
}

fn gguf_folder(t: &Path, bytes: Vec<u8>) -> PathBuf {
    let dir = t.join("m");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(GGUF_CHAT_FILE), bytes).unwrap();
    dir
}

fn assert_problem(p: &Probe, code: &str, mentions: &[&str]) {
    assert!(!p.health.healthy, "{} should be unhealthy", p.name);
    let pr = p
        .health
        .problems
        .iter()
        .find(|x| x.code == code)
        .unwrap_or_else(|| panic!("no {code} problem in {:#?}", p.health.problems));
    for m in mentions {
        assert!(
            pr.message.contains(m),
            "{code}: {:?} should mention {m:?}",
            pr.message
        );
    }
    assert!(!p.runtime.compatible);
}

/// Offset of the first occurrence of `needle`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in bytes")
}

// ---------------------------------------------------------------------------
// GGUF numbers

#[test]
fn gguf_huge_block_count_is_implausible() {
    let t = tempfile::tempdir().unwrap();
    let bytes = gguf_builder("llama")
        .u32("llama.block_count", 0xFFFF_FFFF)
        .build();
    assert!(bytes.len() < 64 << 10, "a small file");
    let p = probe_dir(&gguf_folder(t.path(), bytes));
    assert_problem(
        &p,
        "implausible_metadata",
        &["llama.block_count", "4294967295"],
    );
    assert_eq!(p.attention, None, "no KV shape from implausible numbers");
}

#[test]
fn gguf_block_count_above_tensor_count_is_implausible() {
    let t = tempfile::tempdir().unwrap();
    // 1,000 layers is under the limit, but the file has 12 tensors.
    let bytes = gguf_builder("llama").u32("llama.block_count", 1000).build();
    let p = probe_dir(&gguf_folder(t.path(), bytes));
    assert_problem(
        &p,
        "implausible_metadata",
        &["block_count = 1000", "12 tensors"],
    );
}

#[test]
fn gguf_huge_context_length_is_implausible() {
    let t = tempfile::tempdir().unwrap();
    let bytes = gguf_builder("llama")
        .u32("llama.context_length", 0xFFFF_FFFF)
        .build();
    let p = probe_dir(&gguf_folder(t.path(), bytes));
    assert_problem(&p, "implausible_metadata", &["llama.context_length"]);
    assert_eq!(p.context_length, None, "the bogus context is not passed on");
}

#[test]
fn gguf_tensor_count_larger_than_the_file_could_hold() {
    let t = tempfile::tempdir().unwrap();
    let mut bytes = gguf_builder("llama").build();
    // 8 M tensors: under any fixed cap a reader might use, but 8 M × 24 bytes
    // of tensor infos cannot fit in this file. The old reader reserved a
    // vector for all of them first.
    bytes[8..16].copy_from_slice(&(8u64 << 20).to_le_bytes());
    let p = probe_dir(&gguf_folder(t.path(), bytes));
    assert_problem(&p, "corrupt_gguf", &["tensor count 8388608"]);
    // Under the limit, but more than the bytes left could describe: truncated.
    let mut bytes = gguf_builder("llama").build();
    bytes[8..16].copy_from_slice(&(100_000u64).to_le_bytes());
    let t2 = tempfile::tempdir().unwrap();
    let p = probe_dir(&gguf_folder(t2.path(), bytes));
    assert_problem(&p, "truncated_gguf", &["100000 tensors need at least"]);
    // And 0xFFFFFFFF.
    let mut bytes = gguf_builder("llama").build();
    bytes[8..16].copy_from_slice(&0xFFFF_FFFFu64.to_le_bytes());
    let p = probe_dir(&gguf_folder(t.path(), bytes));
    assert_problem(&p, "corrupt_gguf", &["tensor count 4294967295"]);
}

#[test]
fn gguf_array_longer_than_the_file() {
    let t = tempfile::tempdir().unwrap();
    let mut bytes = gguf_builder("llama").build();
    // key "tokenizer.ggml.tokens", type 9 (array), element type 8 (string), length.
    let at = find(&bytes, b"tokenizer.ggml.tokens") + "tokenizer.ggml.tokens".len() + 8;
    let base = bytes.clone();
    // Over any real vocabulary: corrupt.
    bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let p = probe_dir(&gguf_folder(t.path(), bytes));
    assert_problem(
        &p,
        "corrupt_gguf",
        &["tokenizer.ggml.tokens", "1099511627776 items"],
    );
    // A plausible length that this small file cannot hold: truncated, and says so.
    let mut bytes = base;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
    let t2 = tempfile::tempdir().unwrap();
    let p = probe_dir(&gguf_folder(t2.path(), bytes));
    assert_problem(
        &p,
        "truncated_gguf",
        &["tokenizer.ggml.tokens", "cannot fit"],
    );
}

#[test]
fn gguf_string_longer_than_the_file() {
    let t = tempfile::tempdir().unwrap();
    let base = gguf_builder("llama").build();
    // general.name's value: key, type (4 bytes), then the u64 length.
    let at = find(&base, b"general.name") + "general.name".len() + 4;
    // Over the per-string limit: corrupt.
    let mut bytes = base.clone();
    bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let p = probe_dir(&gguf_folder(t.path(), bytes));
    assert_problem(&p, "corrupt_gguf", &["string value of 1099511627776 bytes"]);
    // Under the limit but past the end of this small file: truncated.
    let mut bytes = base;
    bytes[at..at + 8].copy_from_slice(&(8u64 << 20).to_le_bytes());
    let t2 = tempfile::tempdir().unwrap();
    let p = probe_dir(&gguf_folder(t2.path(), bytes));
    assert_problem(&p, "truncated_gguf", &[GGUF_CHAT_FILE]);
}

#[test]
fn gguf_huge_dims_do_not_overflow() {
    let t = tempfile::tempdir().unwrap();
    let bytes = GgufBuilder::new()
        .str("general.architecture", "llama")
        .tensor("a", &[1], tanto_testkit::gguf::ggml::F32)
        .build();
    // Patch the one tensor's dim to u64::MAX / 2 (elements overflow nothing, but
    // the data cannot be in the file).
    let mut bytes = bytes;
    let at = find(&bytes, b"\x01\x00\x00\x00\x00\x00\x00\x00a") + 9 + 4;
    bytes[at..at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let p = probe_dir(&gguf_folder(t.path(), bytes));
    assert!(!p.health.healthy);
    assert!(
        codes(&p)
            .iter()
            .any(|c| *c == "truncated_gguf" || *c == "corrupt_gguf"),
        "{:?}",
        p.health.problems
    );
}

// ---------------------------------------------------------------------------
// config.json numbers

#[test]
fn config_json_huge_dimensions_are_implausible() {
    let env = Env::new();
    let mut files = presets::hf_chat();
    files.update_json("config.json", |c| {
        c["max_position_embeddings"] = json!(1u64 << 40);
        c["num_hidden_layers"] = json!(0xFFFF_FFFFu64);
        c["hidden_size"] = json!(1u64 << 33);
        c["vocab_size"] = json!(u64::MAX);
    });
    env.cache.add("evil/config", &files);
    let p = env.probe("evil/config");
    assert_problem(
        &p,
        "implausible_metadata",
        &[
            "max_position_embeddings",
            "num_hidden_layers = 4294967295",
            "hidden_size",
            "vocab_size",
        ],
    );
    assert_eq!(p.context_length, None);
    // `health` (the policy's health gate) calls it unhealthy.
    let d = tanto_core::policy::decide(
        &p,
        tanto_core::policy::Request::Text,
        &tanto_core::host::HostMemory {
            total_bytes: Some(1 << 36),
            available_bytes: Some(1 << 36),
            source: "override",
        },
        &Default::default(),
    );
    assert!(d.is_blocked());
    assert_eq!(d.http_status(), 422);
}

#[test]
fn config_json_in_range_is_healthy_and_gives_the_kv_shape() {
    let env = Env::new();
    env.cache.add("ok/config", &presets::hf_chat());
    let p = env.probe("ok/config");
    assert!(p.health.healthy, "{:?}", p.health.problems);
    let a = p.attention.expect("attention");
    assert_eq!((a.layers, a.kv_heads, a.head_dim), (1, 4, 16));
}

// ---------------------------------------------------------------------------
// Filesystem

#[cfg(unix)]
#[test]
fn config_json_linked_to_dev_zero_is_a_problem_not_a_hang() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("m");
    workspace::write_folder(&dir, &presets::hf_chat());
    std::fs::remove_file(dir.join("config.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("config.json")).unwrap();
    let p = within_30s(move || probe_dir(&dir));
    assert_problem(&p, "not_regular_file", &["config.json (character device)"]);
}

#[cfg(unix)]
fn mkfifo(p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

#[cfg(unix)]
#[test]
fn fifos_are_problems_not_hangs() {
    let t = tempfile::tempdir().unwrap();
    // A fifo as tokenizer_config.json and as the weights.
    let dir = t.path().join("m");
    workspace::write_folder(&dir, &presets::hf_chat());
    for f in ["tokenizer_config.json", "model.safetensors"] {
        std::fs::remove_file(dir.join(f)).unwrap();
        mkfifo(&dir.join(f));
    }
    let d2 = dir.clone();
    let p = within_30s(move || probe_dir(&d2));
    assert_problem(
        &p,
        "not_regular_file",
        &["model.safetensors (fifo)", "tokenizer_config.json (fifo)"],
    );
    // A fifo GGUF picked by path.
    let g = t.path().join("g");
    std::fs::create_dir_all(&g).unwrap();
    mkfifo(&g.join("x.gguf"));
    let p = within_30s(move || probe_dir(&g));
    assert_problem(&p, "not_regular_file", &["x.gguf (fifo)"]);
}

#[cfg(unix)]
#[test]
fn refs_and_sentinels_that_are_devices_or_fifos_do_not_hang() {
    let env = Env::new();
    let repo = env.cache.add("org/refs", &presets::hf_chat());
    let main = repo.dir.join("refs").join("main");
    std::fs::remove_file(&main).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &main).unwrap();
    mkfifo(&repo.dir.join("refs").join("pr"));
    // A workspace whose sentinel is a fifo.
    let ws = env.ws_home().join("fifo-ws");
    workspace::write_folder(&ws, &presets::hf_chat());
    mkfifo(&ws.join(".mlxk_workspace.json"));
    let stores = env.stores();
    let (models, refs) = within_30s(move || {
        let models: Vec<_> = stores
            .all_models()
            .iter()
            .map(|r| {
                let p = tanto_core::probe::probe_resolved(r);
                let ws = tanto_core::report::workspace_of(r);
                (r.name.clone(), p.health.healthy, ws.map(|w| w.managed))
            })
            .collect();
        let repo =
            tanto_core::store::CacheRepo::from_dir(stores.cache.join("models--org--refs")).unwrap();
        (models, repo.refs())
    });
    // The repo still resolves (to its newest snapshot) and probes healthy.
    assert!(
        models
            .iter()
            .any(|(n, healthy, _)| n == "org/refs" && *healthy),
        "{models:?}"
    );
    assert!(models
        .iter()
        .any(|(n, _, managed)| n.ends_with("fifo-ws") && *managed == Some(false)));
    assert!(refs.is_empty(), "unreadable refs read as absent: {refs:?}");
}

#[test]
fn oversized_json_is_file_too_large() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("m");
    workspace::write_folder(&dir, &presets::hf_chat());
    // 17 MiB (sparse: the cap is checked before anything is read).
    let f = std::fs::File::create(dir.join("tokenizer_config.json")).unwrap();
    f.set_len(17 << 20).unwrap();
    let p = probe_dir(&dir);
    assert_problem(
        &p,
        "file_too_large",
        &["tokenizer_config.json", "17.0 MiB", "16.0 MiB"],
    );
}

#[cfg(unix)]
#[test]
fn all_models_over_looping_workspace_home_and_cache_finishes() {
    use std::os::unix::fs::symlink;
    let env = Env::new();
    env.cache.add("org/a", &presets::hf_chat());
    let home = env.ws_home();
    workspace::write_folder(&home.join("model"), &presets::gguf_chat());
    // The home links to itself, a model links to the home and to itself,
    // and the cache holds a repo folder that links back to the cache.
    symlink(&home, home.join("loop")).unwrap();
    symlink("..", home.join("model").join("up")).unwrap();
    symlink(".", home.join("model").join("self")).unwrap();
    symlink(
        env.cache.root(),
        env.cache.root().join("models--evil--loop"),
    )
    .unwrap();
    let snap = env.cache.repo("org/a").main_snapshot();
    symlink("../..", snap.join("back")).unwrap();
    let stores: Stores = env.stores();
    let out = within_30s(move || {
        let all = stores.all_models();
        all.iter()
            .map(|r| (r.display_name.clone(), tanto_core::probe::probe_resolved(r)))
            .collect::<Vec<_>>()
    });
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"model"), "{names:?}");
    assert!(names.contains(&"org/a"), "{names:?}");
    for (n, p) in &out {
        // Nothing listed through a looping link.
        assert!(
            p.files.iter().all(|f| !f.path.starts_with("up/")
                && !f.path.starts_with("self/")
                && !f.path.starts_with("back/")),
            "{n}: {:?}",
            p.files
        );
    }
    // The GGUF workspace was probed from its own files once.
    let model = &out.iter().find(|(n, _)| n == "model").unwrap().1;
    assert_eq!(
        model
            .files
            .iter()
            .filter(|f| f.path.ends_with(".gguf"))
            .count(),
        1
    );
    let _ = probe_path;
}
