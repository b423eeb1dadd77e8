//! `push` against the fake hub: a pushed folder pulls back byte for byte,
//! ignored files stay home, multipart uploads, a cut push resumes with only
//! what is missing, dry runs send nothing, and refusals are typed.

mod support;

use std::fs;
use std::path::Path;

use support::fake_hub::{noise, FakeHub};
use tanto_hub::{pull, push, HubError, PullOptions, PushOptions};

const REPO: &str = "tanto-test/pushed";
const TOKEN: &str = "hf_write_secret";

fn folder(dir: &Path) {
    let w = |p: &str, b: &[u8]| {
        let p = dir.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b).unwrap();
    };
    w("config.json", br#"{"model_type":"llama"}"#);
    w("tokenizer.json", br#"{"version":"1.0"}"#);
    w("model-00001-of-00002.safetensors", &noise(300_000, 1));
    w("model-00002-of-00002.safetensors", &noise(120_000, 2));
    w("sub/notes.txt", b"nested\n");
    w("empty.txt", b"");
    // Never uploaded:
    w(".mlxk_workspace.json", br#"{"managed":true}"#);
    w(".git/config", b"[core]\n");
    w("__pycache__/x.pyc", b"\0");
    w("train.log", b"loss 1.0\n");
    w(".hfignore", b"# local only\n*.log\nscratch/\n");
    w("scratch/big.bin", &noise(1000, 3));
}

const SENT: &[&str] = &[
    "config.json",
    "empty.txt",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "sub/notes.txt",
    "tokenizer.json",
];

fn opts(hub: &FakeHub, dir: &Path) -> PushOptions {
    let mut o = PushOptions::new(dir, REPO);
    o.endpoint = Some(hub.url.clone());
    o.token = Some(TOKEN.into());
    o
}

fn pull_back(hub: &FakeHub, cache: &Path) -> std::path::PathBuf {
    let mut o = PullOptions::new(REPO);
    o.endpoint = Some(hub.url.clone());
    o.cache_dir = Some(cache.to_path_buf());
    o.offline = Some(false);
    o.token = Some(TOKEN.into());
    pull(&o).unwrap().snapshot_dir
}

#[test]
fn pushed_folder_pulls_back_byte_for_byte_without_ignored_files() {
    let hub = FakeHub::start(vec![]);
    hub.set_write_token(Some(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());

    // The repo does not exist: without --create that is the typed error.
    let err = push(&opts(&hub, dir.path())).unwrap_err();
    assert!(matches!(err, HubError::RepoNotFound { .. }), "{err}");

    // A dry run says what would happen and sends nothing that writes.
    let mut o = opts(&hub, dir.path());
    o.create = true;
    o.dry_run = true;
    let r = push(&o).unwrap();
    assert!(r.would_create_repo && r.commit.is_none());
    assert_eq!(r.added, SENT);
    assert!(hub.repo(REPO).is_none(), "the dry run created nothing");

    let mut o = opts(&hub, dir.path());
    o.create = true;
    o.commit_message = Some("first".into());
    let r = push(&o).unwrap();
    assert!(r.created_repo);
    assert_eq!(r.added, SENT);
    assert_eq!(r.lfs_uploaded, 2, "the two shards go to LFS storage");
    let commit = r.commit.clone().unwrap();
    assert_eq!(hub.repo(REPO).unwrap().commit, commit);
    let lines = hub.state.commits.lock().unwrap()[0].clone();
    assert_eq!(lines[0]["value"]["summary"], "first");

    // Pulled back: exactly the sent files, byte for byte.
    let cache = tempfile::tempdir().unwrap();
    let snap = pull_back(&hub, cache.path());
    let mut got: Vec<String> = Vec::new();
    for e in walk(&snap) {
        let rel = e.strip_prefix(&snap).unwrap().to_string_lossy().to_string();
        assert_eq!(
            fs::read(&e).unwrap(),
            fs::read(dir.path().join(&rel)).unwrap(),
            "{rel}"
        );
        got.push(rel);
    }
    got.sort();
    assert_eq!(got, SENT);

    // Pushing again without changes: no commit, nothing uploaded.
    let r = push(&opts(&hub, dir.path())).unwrap();
    assert!(r.commit.is_none() && r.added.is_empty() && r.modified.is_empty());
    assert_eq!(r.unchanged, SENT.len());
    // One changed file: only it is sent.
    fs::write(
        dir.path().join("config.json"),
        br#"{"model_type":"llama","v":2}"#,
    )
    .unwrap();
    let r = push(&opts(&hub, dir.path())).unwrap();
    assert_eq!(r.modified, ["config.json"]);
    assert_eq!(r.lfs_uploaded, 0);
    assert!(r.commit.is_some());
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn multipart_uploads_and_a_cut_push_resumes_with_what_is_missing() {
    let hub = FakeHub::start(vec![]);
    hub.set_write_token(Some(TOKEN));
    // Objects over 100 kB go up in parts of 64 KiB.
    hub.set_multipart(Some(100_000), 64 << 10);
    // The first object arrives, the second upload fails.
    hub.set_fail_uploads_after(1, 1);
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    let mut o = opts(&hub, dir.path());
    o.create = true;
    let err = push(&o).unwrap_err();
    // A 500 is a network error: running the same push again resumes.
    assert!(err.is_resumable(), "{err}");
    assert_eq!(*hub.state.uploads.lock().unwrap(), 1);
    assert!(
        hub.state.commits.lock().unwrap().is_empty(),
        "no commit from a cut push"
    );

    // Again: the hub has one object, only the other is sent.
    let r = push(&o).unwrap();
    assert_eq!((r.lfs_already_present, r.lfs_uploaded), (1, 1));
    assert_eq!(*hub.state.uploads.lock().unwrap(), 2);
    let parts = hub
        .state
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("PUT") && l.contains("/part/"))
        .count();
    assert!(parts >= 2, "multipart parts were PUT ({parts})");
    let cache = tempfile::tempdir().unwrap();
    let snap = pull_back(&hub, cache.path());
    assert_eq!(
        fs::read(snap.join("model-00001-of-00002.safetensors")).unwrap(),
        noise(300_000, 1)
    );
}

#[test]
fn refusals_are_typed() {
    let hub = FakeHub::start(vec![]);
    hub.set_write_token(Some(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    // No token at all.
    let mut o = opts(&hub, dir.path());
    o.token = Some(String::new());
    let err = push(&o).unwrap_err();
    assert!(matches!(err, HubError::MissingToken), "{err}");
    assert_eq!(err.error_type(), tanto_core::error::ErrorType::AccessDenied);
    // A wrong token: the hub's 401, typed.
    let mut o = opts(&hub, dir.path());
    o.token = Some("hf_wrong".into());
    o.create = true;
    let err = push(&o).unwrap_err();
    assert_eq!(
        err.error_type(),
        tanto_core::error::ErrorType::AccessDenied,
        "{err}"
    );
    // Not ORG/NAME, a bad branch, a folder that is not one.
    let mut o = opts(&hub, dir.path());
    o.repo_id = "noslash".into();
    assert!(matches!(push(&o).unwrap_err(), HubError::InvalidRepoId(_)));
    let mut o = opts(&hub, dir.path());
    o.branch = Some("../x".into());
    assert!(matches!(
        push(&o).unwrap_err(),
        HubError::InvalidRevision { .. }
    ));
    let mut o = opts(&hub, &dir.path().join("config.json"));
    o.create = true;
    assert!(push(&o).is_err());
    // A link out of the folder is refused, never uploaded.
    #[cfg(unix)]
    {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak")).unwrap();
        let mut o = opts(&hub, dir.path());
        o.create = true;
        let err = push(&o).unwrap_err();
        assert!(matches!(err, HubError::UnsafeSourceEntry { .. }), "{err}");
    }
}
