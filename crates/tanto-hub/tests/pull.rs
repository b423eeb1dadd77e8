//! `pull` against the fake hub: layout, resume, errors, filters, kill/resume cycles.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use support::fake_hub::{demo_repo, noise, FakeFile, FakeHub, FakeRepo};
use tanto_hub::{pending_pull, pull, FileStatus, HubError, PlannedFile, Progress, PullOptions};

const REPO: &str = "tanto-test/demo";

fn opts(hub: &FakeHub, cache: &Path, repo: &str) -> PullOptions {
    let mut o = PullOptions::new(repo);
    o.endpoint = Some(hub.url.clone());
    o.cache_dir = Some(cache.to_path_buf());
    o.offline = Some(false);
    o.token = Some(String::new());
    o
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(p).unwrap()))
}

fn repo_dir(cache: &Path) -> PathBuf {
    cache.join("models--tanto-test--demo")
}

/// Every file of `repo` is in the snapshot with the right bytes; blobs are complete.
fn assert_complete(cache: &Path, repo: &FakeRepo) {
    let rd = cache.join(format!("models--{}", repo.id.replace('/', "--")));
    let snap = rd.join("snapshots").join(&repo.commit);
    for f in &repo.files {
        let p = snap.join(&f.path);
        assert!(p.is_symlink(), "{} is not a symlink", f.path);
        assert_eq!(sha256_file(&p), f.sha256(), "{}", f.path);
    }
    assert_blobs_verified(&rd, repo);
}

/// No blob without `.incomplete` has wrong content.
fn assert_blobs_verified(rd: &Path, repo: &FakeRepo) {
    let Ok(entries) = fs::read_dir(rd.join("blobs")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".incomplete") {
            continue;
        }
        let f = repo
            .files
            .iter()
            .find(|f| f.etag() == name)
            .unwrap_or_else(|| panic!("unexpected blob {name}"));
        assert_eq!(sha256_file(&e.path()), f.sha256(), "blob {name}");
    }
}

#[test]
fn fresh_pull_lays_out_the_cache_like_huggingface_hub() {
    let repo = demo_repo(REPO);
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let report = pull(&opts(&hub, cache.path(), REPO)).unwrap();

    let rd = repo_dir(cache.path());
    assert_eq!(report.commit, repo.commit);
    assert_eq!(report.revision, "main");
    assert_eq!(report.snapshot_dir, rd.join("snapshots").join(&repo.commit));
    // refs/main holds the commit, no newline.
    assert_eq!(
        fs::read_to_string(rd.join("refs/main")).unwrap(),
        repo.commit
    );
    // Blobs named by etag: sha256 for LFS, git sha1 otherwise; one blob per content.
    let mut blobs: Vec<String> = fs::read_dir(rd.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    blobs.sort();
    let mut want: Vec<String> = repo.files.iter().map(|f| f.etag()).collect();
    want.sort();
    want.dedup();
    assert_eq!(blobs, want);
    // Relative symlinks, deeper for nested paths.
    let snap = &report.snapshot_dir;
    for f in &repo.files {
        let depth = f.path.split('/').count();
        let target = fs::read_link(snap.join(&f.path)).unwrap();
        assert_eq!(
            target,
            PathBuf::from(format!("{}blobs/{}", "../".repeat(depth + 1), f.etag())),
            "{}",
            f.path
        );
    }
    assert_eq!(
        fs::read_link(snap.join("config.json")).unwrap(),
        PathBuf::from(format!("../../blobs/{}", repo.files[0].etag()))
    );
    assert_eq!(
        fs::read_link(snap.join("nested/deeper/blob.bin")).unwrap(),
        PathBuf::from(format!("../../../../blobs/{}", repo.files[7].sha256()))
    );
    assert_complete(cache.path(), &repo);
    // Lock files under .locks/models--org--name/<etag>.lock; no pending marker.
    let locks = cache.path().join(".locks/models--tanto-test--demo");
    for f in &repo.files {
        assert!(
            locks.join(format!("{}.lock", f.etag())).exists(),
            "{}",
            f.path
        );
    }
    assert!(pending_pull(cache.path(), REPO).is_none());
    // Report.
    assert_eq!(report.files.len(), repo.files.len());
    let total: u64 = repo.files.iter().map(|f| f.content.len() as u64).sum();
    let dup = repo.files[2].content.len() as u64; // README.md == docs/README.md
    assert!(report.bytes_downloaded == total || report.bytes_downloaded == total - dup);
    assert!(report.files.iter().all(|f| f.status != FileStatus::Resumed));

    // A second pull finds everything cached and downloads nothing.
    hub.clear_log();
    let again = pull(&opts(&hub, cache.path(), REPO)).unwrap();
    assert!(again.files.iter().all(|f| f.status == FileStatus::Cached));
    assert_eq!(again.bytes_downloaded, 0);
    assert!(hub.log().iter().all(|l| !l.starts_with("GET /cdn/")));
}

#[test]
fn revision_by_tag_writes_ref_and_by_commit_does_not() {
    let mut repo = demo_repo(REPO);
    repo.refs.insert("v1.0".into(), repo.commit.clone());
    let hub = FakeHub::start(vec![repo.clone()]);

    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(&hub, cache.path(), REPO);
    o.revision = Some(repo.commit.clone());
    let r = pull(&o).unwrap();
    assert_eq!(r.commit, repo.commit);
    assert!(!repo_dir(cache.path()).join("refs").exists());
    o.revision = Some(repo.commit[..10].to_string());
    pull(&o).unwrap();
    assert!(!repo_dir(cache.path()).join("refs").exists());

    o.revision = Some("v1.0".into());
    pull(&o).unwrap();
    assert_eq!(
        fs::read_to_string(repo_dir(cache.path()).join("refs/v1.0")).unwrap(),
        repo.commit
    );
    assert!(!repo_dir(cache.path()).join("refs/main").exists());
}

#[test]
fn resume_after_dropped_connection() {
    let repo = FakeRepo::new(
        REPO,
        vec![
            FakeFile::git("config.json", b"{}"),
            FakeFile::lfs("model.safetensors", noise(400_000, 7)),
        ],
    );
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(&hub, cache.path(), REPO);
    o.retries = 0;
    hub.set_drop_after(Some(123_457), None);
    let err = pull(&o).unwrap_err();
    assert!(matches!(err, HubError::Network { .. }), "{err}");
    assert!(err.is_resumable());
    assert!(err.to_string().contains("resume"));

    let big = &repo.files[1];
    let blob = repo_dir(cache.path()).join("blobs").join(big.sha256());
    let partial = PathBuf::from(format!("{}.incomplete", blob.display()));
    assert!(!blob.exists());
    assert_eq!(fs::metadata(&partial).unwrap().len(), 123_457);
    // Not visible in the snapshot, no ref yet.
    let snap = repo_dir(cache.path()).join("snapshots").join(&repo.commit);
    assert!(!snap.join("model.safetensors").exists());
    assert!(!repo_dir(cache.path()).join("refs/main").exists());
    // The interrupted pull is reported with the command that resumes it.
    let pending = pending_pull(cache.path(), REPO).unwrap();
    assert_eq!(pending.commit, repo.commit);
    assert_eq!(pending.incomplete_blobs, vec![partial.clone()]);
    assert_eq!(pending.resume_command(), "tanto pull tanto-test/demo");

    hub.set_drop_after(None, None);
    hub.clear_log();
    let r = pull(&o).unwrap();
    assert!(hub
        .log()
        .iter()
        .any(|l| l.starts_with("GET /cdn/") && l.ends_with("bytes=123457-")));
    let f = r
        .files
        .iter()
        .find(|f| f.path == "model.safetensors")
        .unwrap();
    assert_eq!(f.status, FileStatus::Resumed);
    assert_eq!(r.bytes_downloaded, 400_000 - 123_457);
    assert!(!partial.exists());
    assert_complete(cache.path(), &repo);
    assert!(pending_pull(cache.path(), REPO).is_none());
}

#[test]
fn automatic_retries_resume_within_one_call() {
    let repo = FakeRepo::new(
        REPO,
        vec![
            FakeFile::git("config.json", b"{}"),
            FakeFile::lfs("a.bin", noise(300_000, 9)),
        ],
    );
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    hub.set_drop_after(Some(50_000), Some(3));
    let mut o = opts(&hub, cache.path(), REPO);
    o.retries = 3;
    let r = pull(&o).unwrap();
    assert_complete(cache.path(), &repo);
    let ranges = hub
        .log()
        .iter()
        .filter(|l| l.starts_with("GET /cdn/") && l.contains("bytes="))
        .count();
    assert_eq!(ranges, 3);
    assert_eq!(r.bytes_downloaded, 300_000 + 2);
}

#[test]
fn server_ignoring_range_restarts_cleanly() {
    let repo = FakeRepo::new(
        REPO,
        vec![
            FakeFile::git("config.json", b"{}"),
            FakeFile::lfs("a.bin", noise(200_000, 11)),
        ],
    );
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(&hub, cache.path(), REPO);
    o.retries = 0;
    hub.set_drop_after(Some(70_000), Some(1));
    assert!(pull(&o).is_err());
    hub.set_ignore_range(true);
    pull(&o).unwrap();
    assert_complete(cache.path(), &repo);
}

#[test]
fn hash_mismatch_is_an_error_and_leaves_no_blob() {
    let repo = FakeRepo::new(
        REPO,
        vec![
            FakeFile::git("config.json", b"{}"),
            FakeFile::lfs("model.safetensors", noise(100_000, 5)),
        ],
    );
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    hub.set_corrupt_lfs(true);
    let err = pull(&opts(&hub, cache.path(), REPO)).unwrap_err();
    match &err {
        HubError::HashMismatch { file, expected, .. } => {
            assert_eq!(file, "model.safetensors");
            assert_eq!(expected, &repo.files[1].sha256());
        }
        e => panic!("expected a hash mismatch, got {e}"),
    }
    let blobs = repo_dir(cache.path()).join("blobs");
    let sha = repo.files[1].sha256();
    assert!(!blobs.join(&sha).exists());
    assert!(!blobs.join(format!("{sha}.incomplete")).exists());
    assert!(!repo_dir(cache.path())
        .join("snapshots")
        .join(&repo.commit)
        .join("model.safetensors")
        .exists());
    // Fixed server: the next pull succeeds.
    hub.set_corrupt_lfs(false);
    pull(&opts(&hub, cache.path(), REPO)).unwrap();
    assert_complete(cache.path(), &repo);
}

#[test]
fn missing_private_and_gated_repos() {
    let mut private = FakeRepo::new(
        "tanto-test/private",
        vec![FakeFile::git("config.json", b"{}")],
    );
    private.token = Some("hf_secret".into());
    let mut gated = FakeRepo::new(
        "tanto-test/gated",
        vec![
            FakeFile::git("config.json", b"{}"),
            FakeFile::lfs("w.bin", noise(1000, 1)),
        ],
    );
    gated.token = Some("hf_accepted".into());
    gated.gated = true;
    let hub = FakeHub::start(vec![private.clone(), gated.clone()]);
    let cache = tempfile::tempdir().unwrap();

    let err = pull(&opts(&hub, cache.path(), "tanto-test/nope")).unwrap_err();
    assert!(matches!(err, HubError::RepoNotFound { .. }), "{err}");

    // Private without token: the hub answers 401 RepoNotFound; the message says HF_TOKEN.
    let err = pull(&opts(&hub, cache.path(), "tanto-test/private")).unwrap_err();
    assert!(matches!(err, HubError::RepoNotFound { .. }), "{err}");
    assert!(err.to_string().contains("HF_TOKEN"));

    let err = pull(&opts(&hub, cache.path(), "tanto-test/gated")).unwrap_err();
    assert!(
        matches!(
            err,
            HubError::Unauthorized {
                status: 401,
                gated: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("HF_TOKEN"));
    let mut o = opts(&hub, cache.path(), "tanto-test/gated");
    o.token = Some("hf_wrong".into());
    let err = pull(&o).unwrap_err();
    assert!(
        matches!(
            err,
            HubError::Unauthorized {
                status: 403,
                gated: true,
                ..
            }
        ),
        "{err}"
    );

    o.token = Some("hf_accepted".into());
    hub.clear_log();
    pull(&o).unwrap();
    // The token goes to the hub, never to the CDN host.
    let log = hub.log();
    assert!(log
        .iter()
        .any(|l| l.starts_with("HEAD /tanto-test/gated/resolve/") && l.ends_with("[auth]")));
    let cdn: Vec<_> = log.iter().filter(|l| l.starts_with("GET /cdn/")).collect();
    assert_eq!(cdn.len(), 1);
    assert!(!cdn[0].contains("[auth]"));
    let mut o = opts(&hub, cache.path(), "tanto-test/private");
    o.token = Some("hf_secret".into());
    pull(&o).unwrap();
    assert_complete(cache.path(), &private);
    assert_complete(cache.path(), &gated);

    // Invalid ids never reach the network.
    let err = pull(&opts(&hub, cache.path(), "/bad//id")).unwrap_err();
    assert!(matches!(err, HubError::InvalidRepoId(_)), "{err}");
}

#[test]
fn bad_revision() {
    let hub = FakeHub::start(vec![demo_repo(REPO)]);
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(&hub, cache.path(), REPO);
    o.revision = Some("no-such-branch".into());
    let err = pull(&o).unwrap_err();
    assert!(
        matches!(&err, HubError::RevisionNotFound { revision, .. } if revision == "no-such-branch"),
        "{err}"
    );
    assert!(!repo_dir(cache.path()).exists());
}

#[test]
fn include_and_exclude() {
    let repo = demo_repo(REPO);
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(&hub, cache.path(), REPO);
    o.include = vec!["*.json".into(), "*.safetensors".into()];
    o.exclude = vec!["tokenizer*".into(), "model-00002*".into()];
    let r = pull(&o).unwrap();
    let got: Vec<_> = r.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(got, ["config.json", "model-00001-of-00002.safetensors"]);
    let snap = &r.snapshot_dir;
    assert!(snap.join("config.json").exists());
    assert!(!snap.join("tokenizer.json").exists());
    assert!(!snap.join("README.md").exists());

    // A folder pattern.
    let mut o = opts(&hub, cache.path(), REPO);
    o.include = vec!["nested/".into()];
    let r = pull(&o).unwrap();
    assert_eq!(r.files.len(), 1);
    assert_eq!(r.files[0].path, "nested/deeper/blob.bin");
}

#[test]
fn renamed_repo_follows_relative_redirects() {
    let repo = demo_repo(REPO);
    let hub = FakeHub::start(vec![repo.clone()]);
    hub.rename("tanto-test/old-name", REPO);
    let cache = tempfile::tempdir().unwrap();
    let r = pull(&opts(&hub, cache.path(), "tanto-test/old-name")).unwrap();
    assert_eq!(r.commit, repo.commit);
    // Stored under the name asked for, as huggingface_hub does.
    assert!(cache
        .path()
        .join("models--tanto-test--old-name/snapshots")
        .join(&repo.commit)
        .join("config.json")
        .exists());
}

#[test]
fn offline_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let mut o = PullOptions::new(REPO);
    o.endpoint = Some("http://127.0.0.1:9".into());
    o.cache_dir = Some(cache.path().to_path_buf());
    o.offline = Some(true);
    let err = pull(&o).unwrap_err();
    assert!(matches!(err, HubError::Offline { .. }), "{err}");
    assert!(err.to_string().contains("HF_HUB_OFFLINE"));
}

#[test]
fn unreachable_hub_is_a_network_error() {
    let cache = tempfile::tempdir().unwrap();
    let mut o = PullOptions::new(REPO);
    o.endpoint = Some("http://127.0.0.1:9".into());
    o.cache_dir = Some(cache.path().to_path_buf());
    o.offline = Some(false);
    let err = pull(&o).unwrap_err();
    assert!(matches!(err, HubError::Network { .. }), "{err}");
}

#[test]
fn two_concurrent_pulls_share_the_cache() {
    let repo = demo_repo(REPO);
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let o = opts(&hub, cache.path(), REPO);
    std::thread::scope(|s| {
        let a = s.spawn(|| pull(&o));
        let b = s.spawn(|| pull(&o));
        a.join().unwrap().unwrap();
        b.join().unwrap().unwrap();
    });
    assert_complete(cache.path(), &repo);
    // No leftover partial files.
    for e in fs::read_dir(repo_dir(cache.path()).join("blobs")).unwrap() {
        assert!(!e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".incomplete"));
    }
}

#[derive(Default)]
struct Recorder {
    planned: Mutex<Vec<PlannedFile>>,
    finished: Mutex<Vec<(String, FileStatus)>>,
    max_done: AtomicU64,
}

impl Progress for Recorder {
    fn pull_started(&self, _commit: &str, files: &[PlannedFile]) {
        *self.planned.lock().unwrap() = files.to_vec();
    }
    fn file_progress(&self, _file: &str, done: u64, _total: Option<u64>) {
        self.max_done.fetch_max(done, Ordering::Relaxed);
    }
    fn file_finished(&self, file: &str, status: FileStatus) {
        self.finished
            .lock()
            .unwrap()
            .push((file.to_string(), status));
    }
}

#[test]
fn progress_is_reported() {
    let repo = demo_repo(REPO);
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let mut o = opts(&hub, cache.path(), REPO);
    o.progress = Some(rec.clone());
    pull(&o).unwrap();
    let planned = rec.planned.lock().unwrap().clone();
    assert_eq!(planned.len(), repo.files.len());
    let shard = planned
        .iter()
        .find(|p| p.path == "model-00001-of-00002.safetensors")
        .unwrap();
    assert_eq!(shard.size, Some(repo.files[5].content.len() as u64));
    assert_eq!(
        shard.lfs_sha256.as_deref(),
        Some(repo.files[5].sha256().as_str())
    );
    assert_eq!(rec.finished.lock().unwrap().len(), repo.files.len());
    assert_eq!(
        rec.max_done.load(Ordering::Relaxed),
        repo.files[5].content.len() as u64
    );

    // A plain closure works too.
    let cache2 = tempfile::tempdir().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    let mut o = opts(&hub, cache2.path(), REPO);
    o.progress = Some(Arc::new(move |_f: &str, done: u64, _t: u64| {
        s2.fetch_max(done, Ordering::Relaxed);
    }));
    pull(&o).unwrap();
    assert!(seen.load(Ordering::Relaxed) > 0);
}

#[test]
fn cancel_leaves_a_resumable_state() {
    let repo = FakeRepo::new(
        REPO,
        vec![
            FakeFile::git("config.json", b"{}"),
            FakeFile::lfs("a.bin", noise(2_000_000, 13)),
        ],
    );
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = cancel.clone();
    let mut o = opts(&hub, cache.path(), REPO);
    o.cancel = Some(cancel.clone());
    o.progress = Some(Arc::new(move |f: &str, done: u64, _t: u64| {
        if f == "a.bin" && done > 0 {
            c2.store(true, Ordering::Relaxed);
        }
    }));
    let err = pull(&o).unwrap_err();
    assert!(matches!(err, HubError::Cancelled), "{err}");
    assert!(pending_pull(cache.path(), REPO).is_some());
    cancel.store(false, Ordering::Relaxed);
    o.progress = None;
    pull(&o).unwrap();
    assert_complete(cache.path(), &repo);
}

/// Cut the connection at random byte offsets again and again (≥ 20 cycles), resume
/// each time, and check every file at the end.
#[test]
fn kill_resume_cycles_end_with_every_file_correct() {
    let repo = FakeRepo::new(
        REPO,
        vec![
            FakeFile::git("config.json", br#"{"model_type":"llama"}"#),
            FakeFile::git("tokenizer.json", &noise(20_000, 21)),
            FakeFile::lfs("model-00001-of-00002.safetensors", noise(1_500_000, 22)),
            FakeFile::lfs("model-00002-of-00002.safetensors", noise(900_000, 23)),
            FakeFile::lfs("sub/extra.bin", noise(250_000, 24)),
        ],
    );
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(&hub, cache.path(), REPO);
    o.retries = 0;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut cuts = 0;
    for _ in 0..25 {
        hub.set_drop_after(Some(1 + next() % 120_000), None);
        match pull(&o) {
            Err(HubError::Network { .. }) => cuts += 1,
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => {}
        }
        // Whatever completed is correct; partial files stay partial.
        assert_blobs_verified(&repo_dir(cache.path()), &repo);
    }
    assert!(cuts >= 20, "only {cuts} cuts");
    hub.set_drop_after(None, None);
    pull(&o).unwrap();
    assert_complete(cache.path(), &repo);
    assert!(pending_pull(cache.path(), REPO).is_none());
}

/// `health` sends a user with a truncated blob to `tanto pull`: the second pull
/// must notice the blob's size is not the hub's and fetch it again, not call
/// the damaged file cached.
#[test]
fn a_truncated_cached_blob_is_downloaded_again() {
    let repo = demo_repo(REPO);
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    pull(&opts(&hub, cache.path(), REPO)).unwrap();
    let big = repo
        .files
        .iter()
        .filter(|f| f.lfs)
        .max_by_key(|f| f.content.len())
        .expect("the demo repo has an LFS file");
    let blob = repo_dir(cache.path()).join("blobs").join(big.etag());
    let half = big.content.len() / 2;
    fs::write(&blob, &big.content[..half]).unwrap();

    let report = pull(&opts(&hub, cache.path(), REPO)).unwrap();
    let again = report
        .files
        .iter()
        .find(|f| f.path == big.path)
        .expect("the file is in the report");
    assert_ne!(
        again.status,
        FileStatus::Cached,
        "a truncated blob is not cached"
    );
    assert_complete(cache.path(), &repo);
}

#[test]
fn the_file_list_is_the_paged_tree_listing() {
    let repo = demo_repo(REPO);
    let hub = FakeHub::start(vec![repo.clone()]);
    // Two entries per page: the listing takes several pages, every file arrives.
    hub.set_tree_page(Some(2));
    let cache = tempfile::tempdir().unwrap();
    let report = pull(&opts(&hub, cache.path(), REPO)).unwrap();
    assert_eq!(report.files.len(), repo.files.len());
    assert_complete(cache.path(), &repo);
    let pages = hub
        .state
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("/tree/"))
        .count();
    let mut folders = std::collections::BTreeSet::new();
    for f in &repo.files {
        let parts: Vec<&str> = f.path.split('/').collect();
        for i in 1..parts.len() {
            folders.insert(parts[..i].join("/"));
        }
    }
    let entries = repo.files.len() + folders.len();
    assert_eq!(pages, entries.div_ceil(2), "one request per page");
    // huggingface_hub's tree cache is written from it, every file in it.
    let tree = cache.path().join(format!(
        "models--tanto-test--demo/trees/{}.json",
        repo.commit
    ));
    let tree = fs::read_to_string(tree).unwrap();
    for f in &repo.files {
        assert!(
            tree.contains(&format!("\"{}\"", f.path)),
            "{} in the tree cache",
            f.path
        );
    }

    // A server without the tree endpoint: the repo info's siblings are the list.
    let hub2 = FakeHub::start(vec![repo.clone()]);
    hub2.set_no_tree(true);
    let cache2 = tempfile::tempdir().unwrap();
    let report = pull(&opts(&hub2, cache2.path(), REPO)).unwrap();
    assert_eq!(report.files.len(), repo.files.len());
    assert_complete(cache2.path(), &repo);
}
