//! Regression tests for the hub-side security defects (issue 9, items 7–10): links
//! out of a model folder, writes through links planted in a shared cache,
//! revisions that climb out of `refs/`, the token after a redirect, and unbounded
//! downloads. Each test fails on the code before its fix.

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use support::fake_hub::{demo_repo, FakeFile, FakeHub, FakeRepo};
use tanto_hub::{clone_snapshot, pull, repair_index, HubError, PullOptions, PullReport};

const REPO: &str = "tanto-test/demo";

fn opts(hub: &FakeHub, cache: &Path) -> PullOptions {
    let mut o = PullOptions::new(REPO);
    o.endpoint = Some(hub.url.clone());
    o.cache_dir = Some(cache.to_path_buf());
    o.offline = Some(false);
    o.token = Some(String::new());
    o
}

fn repo_dir(cache: &Path) -> PathBuf {
    cache.join("models--tanto-test--demo")
}

/// Run a pull with a deadline, so an endless body fails the test instead of hanging
/// it: past the deadline the pull is cancelled (which also lets the fake hub shut
/// down) and the test fails.
fn pull_within(mut o: PullOptions, secs: u64) -> Result<PullReport, HubError> {
    let cancel = Arc::new(AtomicBool::new(false));
    o.cancel = Some(cancel.clone());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(pull(&o));
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(r) => r,
        Err(_) => {
            cancel.store(true, Ordering::SeqCst);
            let _ = rx.recv_timeout(Duration::from_secs(10));
            panic!("pull did not finish in {secs} s: the download is unbounded");
        }
    }
}

fn git_repo(files: &[(&str, &[u8])]) -> FakeRepo {
    FakeRepo::new(
        REPO,
        files.iter().map(|(p, c)| FakeFile::git(p, c)).collect(),
    )
}

fn assert_unsafe_cache_path(err: &HubError, name: &str) {
    match err {
        HubError::UnsafeCachePath { path, .. } => {
            assert!(path.to_string_lossy().contains(name), "{err}")
        }
        e => panic!("expected UnsafeCachePath for {name}, got {e:?}"),
    }
}

fn dir_is_empty(p: &Path) -> bool {
    fs::read_dir(p).unwrap().next().is_none()
}

// ---- item 7: clone / convert copy only what is inside the model

#[test]
fn clone_refuses_links_leading_outside_the_repo_folder() {
    let repo = demo_repo(REPO);
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let snap = pull(&opts(&hub, cache.path())).unwrap().snapshot_dir;
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    fs::write(&secret, b"not yours").unwrap();
    // In the cache root, next to the repo folder but not inside it.
    fs::write(cache.path().join("sibling.json"), b"{}").unwrap();

    for (name, target) in [
        ("evil.txt", secret.clone()),
        ("up.json", PathBuf::from("../../../sibling.json")),
        ("evil-dir", outside.path().to_path_buf()),
    ] {
        let link = snap.join(name);
        symlink(&target, &link).unwrap();
        let home = tempfile::tempdir().unwrap();
        let dst = home.path().join("ws");
        let err = clone_snapshot(&snap, &dst, REPO, None).unwrap_err();
        match &err {
            HubError::UnsafeSourceEntry { path, reason } => {
                assert_eq!(path, &link, "{err}");
                assert!(reason.contains("outside"), "{err}");
            }
            e => panic!("{name}: expected UnsafeSourceEntry, got {e:?}"),
        }
        assert_eq!(
            err.error_type(),
            tanto_core::error::ErrorType::UnhealthyModel
        );
        assert!(!dst.exists(), "{name}: a workspace appeared");
        assert!(dir_is_empty(home.path()), "{name}: staging left");
        fs::remove_file(&link).unwrap();
    }
    // Without the planted links the snapshot (links into ../../blobs) still clones.
    let home = tempfile::tempdir().unwrap();
    let r = clone_snapshot(&snap, &home.path().join("ws"), REPO, None).unwrap();
    assert_eq!(r.files, repo.files.len());
}

#[test]
fn convert_copies_links_inside_and_refuses_outside_links_and_fifos() {
    let src = tempfile::tempdir().unwrap();
    let model = src.path().join("model");
    fs::create_dir(&model).unwrap();
    fs::write(model.join("config.json"), br#"{"model_type":"llama"}"#).unwrap();
    symlink("config.json", model.join("alias.json")).unwrap();
    let home = tempfile::tempdir().unwrap();
    let r = repair_index(&model, &home.path().join("ok")).unwrap();
    assert_eq!(r.files, 2);
    let copied = home.path().join("ok/alias.json");
    assert!(!copied.is_symlink(), "links inside are dereferenced");
    assert_eq!(fs::read(&copied).unwrap(), br#"{"model_type":"llama"}"#);

    // A link to a file next to the model folder (outside it) is refused.
    fs::write(src.path().join("private.key"), b"k").unwrap();
    symlink("../private.key", model.join("key")).unwrap();
    let dst = home.path().join("bad");
    let err = repair_index(&model, &dst).unwrap_err();
    assert!(
        matches!(&err, HubError::UnsafeSourceEntry { path, .. } if path.ends_with("key")),
        "{err}"
    );
    assert!(!dst.exists());
    fs::remove_file(model.join("key")).unwrap();

    // A fifo would block the copy forever: refused, not read.
    let fifo = model.join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let err = repair_index(&model, &dst).unwrap_err();
    assert!(
        matches!(&err, HubError::UnsafeSourceEntry { path, .. } if path == &fifo),
        "{err}"
    );
    assert!(!dst.exists());
    fs::remove_file(&fifo).unwrap();

    // A link loop inside the folder is refused instead of recursing forever.
    fs::create_dir(model.join("sub")).unwrap();
    symlink("..", model.join("sub/loop")).unwrap();
    let err = repair_index(&model, &dst).unwrap_err();
    assert!(
        matches!(&err, HubError::UnsafeSourceEntry { reason, .. } if reason.contains("loop")),
        "{err}"
    );
}

// ---- item 8: a shared cache with planted links

#[test]
fn planted_incomplete_symlink_is_refused_and_its_target_untouched() {
    let repo = git_repo(&[("config.json", b"{\"a\":1}")]);
    let etag = repo.files[0].etag();
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let blobs = repo_dir(cache.path()).join("blobs");
    fs::create_dir_all(&blobs).unwrap();
    let planted = blobs.join(format!("{etag}.incomplete"));
    symlink(&victim, &planted).unwrap();

    let err = pull(&opts(&hub, cache.path())).unwrap_err();
    assert_unsafe_cache_path(&err, ".incomplete");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(!blobs.join(&etag).exists());

    // A hard link to the victim (where the system allows one) is refused too.
    fs::remove_file(&planted).unwrap();
    if fs::hard_link(&victim, &planted).is_ok() {
        let err = pull(&opts(&hub, cache.path())).unwrap_err();
        assert_unsafe_cache_path(&err, ".incomplete");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }
}

#[test]
fn planted_blob_symlink_is_replaced_not_trusted() {
    let repo = git_repo(&[("config.json", b"{\"a\":1}")]);
    let etag = repo.files[0].etag();
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let blobs = repo_dir(cache.path()).join("blobs");
    fs::create_dir_all(&blobs).unwrap();
    symlink(&victim, blobs.join(&etag)).unwrap();

    let r = pull(&opts(&hub, cache.path())).unwrap();
    let blob = blobs.join(&etag);
    assert!(!blob.is_symlink(), "the planted link is still the blob");
    assert_eq!(fs::read(&blob).unwrap(), b"{\"a\":1}");
    assert_eq!(
        fs::read(r.snapshot_dir.join("config.json")).unwrap(),
        b"{\"a\":1}"
    );
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn symlinked_folders_inside_the_repo_folder_are_refused() {
    let repo = git_repo(&[("config.json", b"{}"), ("nested/a.json", b"[1]")]);
    let hub = FakeHub::start(vec![repo.clone()]);
    for planted in [
        format!("snapshots/{}/nested", repo.commit),
        "refs".to_string(),
        "snapshots".to_string(),
        "blobs".to_string(),
    ] {
        let cache = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let link = repo_dir(cache.path()).join(&planted);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(outside.path(), &link).unwrap();
        let err = pull(&opts(&hub, cache.path())).unwrap_err();
        assert_unsafe_cache_path(&err, &planted);
        assert_eq!(
            err.error_type(),
            tanto_core::error::ErrorType::PermissionDenied
        );
        assert!(dir_is_empty(outside.path()), "{planted}: wrote outside");
    }
}

#[test]
fn revision_climbing_out_of_refs_is_rejected_before_the_network() {
    let hub = FakeHub::start(vec![demo_repo(REPO)]);
    let cache = tempfile::tempdir().unwrap();
    let target = cache.path().join("pwned");
    for rev in [
        "../../pwned",
        "../../../pwned",
        "/tmp/pwned",
        "main/../../../pwned",
        "-x",
        "a..b",
        "v1.lock",
    ] {
        let mut o = opts(&hub, cache.path());
        o.revision = Some(rev.into());
        let err = pull(&o).unwrap_err();
        assert!(
            matches!(&err, HubError::InvalidRevision { revision, .. } if revision == rev),
            "{rev}: {err}"
        );
        assert_eq!(
            err.error_type(),
            tanto_core::error::ErrorType::ValidationError
        );
    }
    assert!(hub.log().is_empty(), "{:?}", hub.log());
    assert!(!target.exists());
    assert!(!repo_dir(cache.path()).exists());
    // Slashes that stay below refs/ are fine (refs/pr/N on the hub).
    let mut repo = demo_repo(REPO);
    repo.refs.insert("refs/pr/1".into(), repo.commit.clone());
    let hub = FakeHub::start(vec![repo.clone()]);
    let mut o = opts(&hub, cache.path());
    o.revision = Some("refs/pr/1".into());
    pull(&o).unwrap();
    assert_eq!(
        fs::read_to_string(repo_dir(cache.path()).join("refs/refs/pr/1")).unwrap(),
        repo.commit
    );
}

// ---- item 9: the token stays on its origin

#[test]
fn token_is_not_sent_after_a_redirect_to_another_port() {
    // The endpoint (A) sends everything to B: same host, another port.
    let mut private = demo_repo(REPO);
    private.token = Some("hf_secret".into());
    let a = FakeHub::start(vec![private]);
    let public = demo_repo(REPO);
    let b = FakeHub::start(vec![public.clone()]);
    assert_ne!(a.url, b.url);
    a.set_redirect_to(Some(b.url.clone()));

    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(&a, cache.path());
    o.token = Some("hf_secret".into());
    let r = pull(&o).unwrap();
    assert_eq!(r.commit, public.commit);

    let la = a.log();
    assert!(!la.is_empty());
    assert!(la.iter().all(|l| l.ends_with("[auth]")), "{la:?}");
    let lb = b.log();
    assert!(
        lb.iter().any(|l| l.starts_with("GET /api/models/")),
        "{lb:?}"
    );
    assert!(lb.iter().any(|l| l.starts_with("HEAD /")), "{lb:?}");
    let leaked: Vec<_> = lb.iter().filter(|l| l.contains("[auth]")).collect();
    assert!(
        leaked.is_empty(),
        "token sent to another origin: {leaked:?}"
    );
}

// ---- item 10: downloads are bounded

#[test]
fn endless_body_without_size_or_hash_is_refused() {
    let repo = git_repo(&[("config.json", b"{}")]);
    let hub = FakeHub::start(vec![repo]);
    hub.set_endless_body(true);
    hub.set_hide_sizes(true);
    hub.set_opaque_etags(true);
    let cache = tempfile::tempdir().unwrap();
    let err = pull_within(opts(&hub, cache.path()), 30).unwrap_err();
    assert!(
        matches!(&err, HubError::Protocol { message, .. } if message.contains("neither a size nor a verifiable hash")),
        "{err}"
    );
    // Refused before any byte was fetched; nothing kept.
    assert!(hub.log().iter().all(|l| !l.starts_with("GET /tanto-test")));
    let blobs = repo_dir(cache.path()).join("blobs");
    assert!(!blobs.exists() || dir_is_empty(&blobs));
}

#[test]
fn endless_body_stops_at_the_announced_size() {
    let repo = git_repo(&[("config.json", b"{\"announced\":true}")]);
    let etag = repo.files[0].etag();
    let hub = FakeHub::start(vec![repo]);
    hub.set_endless_body(true); // the listing still says 18 bytes
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(&hub, cache.path());
    o.retries = 0;
    let err = pull_within(o, 30).unwrap_err();
    assert!(
        matches!(&err, HubError::Protocol { message, .. } if message.contains("more bytes than the announced 18")),
        "{err}"
    );
    let blobs = repo_dir(cache.path()).join("blobs");
    assert!(!blobs.join(&etag).exists(), "an oversize blob was kept");
    assert!(!blobs.join(format!("{etag}.incomplete")).exists());
}

#[test]
fn unsized_body_stops_at_the_limit() {
    let repo = git_repo(&[("config.json", b"{}")]);
    let etag = repo.files[0].etag();
    let hub = FakeHub::start(vec![repo]);
    hub.set_endless_body(true);
    hub.set_hide_sizes(true); // no size anywhere, but the etag is a git sha1
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(&hub, cache.path());
    o.retries = 0;
    o.max_unsized_bytes = 1 << 20;
    let err = pull_within(o, 30).unwrap_err();
    assert!(
        matches!(&err, HubError::Protocol { message, .. } if message.contains("limit")),
        "{err}"
    );
    let blobs = repo_dir(cache.path()).join("blobs");
    assert!(!blobs.join(&etag).exists());
    assert!(!blobs.join(format!("{etag}.incomplete")).exists());
}
