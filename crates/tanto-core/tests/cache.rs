//! The hub-cache layout owner (`resolve::cache`): links, refs, blobs and partial
//! downloads, the huggingface_hub extras, revision and repo removal, the
//! interrupted-pull marker, and the one model enumeration. The shared-cache
//! tests plant links where a write would go and check that nothing is written
//! through them.

mod common;

use std::fs;
use std::path::Path;

use common::Env;
use serde_json::json;
use tanto_core::resolve::cache::{pending_pull, shell_quote, CacheError, PendingPull, TreeEntry};
use tanto_core::resolve::{all_models, Location, Resolved};
use tanto_core::store::{self, CacheRepo};
use tanto_testkit::{presets, workspace, Files};

fn repo(env: &Env, id: &str) -> CacheRepo {
    store::cache_repos(env.cache.root())
        .into_iter()
        .find(|r| r.repo_id == id)
        .expect("repo")
}

fn two_revisions(env: &Env) -> (CacheRepo, String, String) {
    let shared = Files::new().with("config.json", b"{\"model_type\": \"llama\"}".to_vec());
    let r = env
        .cache
        .add("org/two", &shared.clone().with("a.bin", vec![1u8; 10]));
    let first = r.main_commit().unwrap();
    let second = "b".repeat(40);
    r.add_snapshot(&second, &shared.with("b.bin", vec![2u8; 10]));
    r.set_ref("v2", &second);
    (repo(env, "org/two"), first, second)
}

#[test]
fn remove_revision_frees_only_its_own_blobs_and_refs() {
    let env = Env::new();
    let (repo, first, second) = two_revisions(&env);
    let blobs_before = fs::read_dir(repo.dir.join("blobs")).unwrap().count();
    let out = repo.remove_revision(&second).unwrap();
    assert_eq!(out.blobs, 1, "b.bin only; config.json is shared");
    assert_eq!(out.refs, vec!["v2".to_string()]);
    assert!(!repo.dir.join("snapshots").join(&second).exists());
    assert_eq!(
        fs::read_dir(repo.dir.join("blobs")).unwrap().count(),
        blobs_before - 1
    );
    // The other revision is intact and still resolves.
    let snap = repo.dir.join("snapshots").join(&first);
    assert_eq!(fs::read(snap.join("a.bin")).unwrap(), vec![1u8; 10]);
    assert!(repo.refs().contains_key("main"));
}

#[test]
fn remove_revision_refuses_paths_outside_the_repo() {
    let env = Env::new();
    let (repo, _, _) = two_revisions(&env);
    for bad in ["..", "../..", "/tmp", "a/../.."] {
        assert!(repo.remove_revision(bad).is_err(), "{bad}");
    }
    assert!(repo.dir.join("snapshots").is_dir());
}

#[cfg(unix)]
#[test]
fn a_symlinked_refs_folder_out_of_the_cache_is_not_followed_for_deletion() {
    let env = Env::new();
    let (repo, _, second) = two_revisions(&env);
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("tag"), &second).unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.dir.join("refs").join("ext")).unwrap();
    let out = repo.remove_revision(&second).unwrap();
    assert!(!out.refs.contains(&"ext/tag".to_string()), "{:?}", out.refs);
    assert!(
        outside.path().join("tag").exists(),
        "file outside the cache kept"
    );
}

#[test]
fn remove_repo_takes_its_lock_folder() {
    let env = Env::new();
    let r = env.cache.add("org/gone", &presets::hf_chat());
    let lock = r.add_lock("model.safetensors");
    let repo = repo(&env, "org/gone");
    assert_eq!(repo.lock_files(env.cache.root()), vec![lock.clone()]);
    let cleaned = repo.remove_repo(env.cache.root()).unwrap();
    assert_eq!(cleaned, vec![lock]);
    assert!(!repo.dir.exists());
    assert!(!env
        .cache
        .root()
        .join(".locks")
        .join("models--org--gone")
        .exists());
    // Not inside the given cache: refused.
    let other = tempfile::tempdir().unwrap();
    let r2 = env.cache.add("org/kept", &presets::hf_chat());
    let kept = CacheRepo::from_dir(r2.dir.clone()).unwrap();
    assert!(kept.remove_repo(other.path()).is_err());
    assert!(kept.dir.exists());
}

#[cfg(unix)]
#[test]
fn link_blob_and_write_ref_make_the_hub_layout() {
    let env = Env::new();
    let cache = env.cache.root();
    let dir = cache.join("models--org--new");
    fs::create_dir_all(dir.join("blobs")).unwrap();
    fs::write(dir.join("blobs").join("abc"), b"hello").unwrap();
    let repo = CacheRepo::from_dir(dir.clone()).unwrap();
    let commit = "c".repeat(40);
    repo.link_blob(&commit, "config.json", "abc").unwrap();
    repo.link_blob(&commit, "sub/dir/x.json", "abc").unwrap();
    // Idempotent.
    repo.link_blob(&commit, "config.json", "abc").unwrap();
    let snap = dir.join("snapshots").join(&commit);
    assert_eq!(
        fs::read_link(snap.join("config.json")).unwrap(),
        Path::new("../../blobs/abc")
    );
    assert_eq!(
        fs::read_link(snap.join("sub/dir/x.json")).unwrap(),
        Path::new("../../../../blobs/abc")
    );
    assert_eq!(fs::read(snap.join("sub/dir/x.json")).unwrap(), b"hello");
    assert!(repo.link_blob(&commit, "../escape", "abc").is_err());
    assert!(repo.link_blob(&commit, "ok", "../abc").is_err());

    repo.write_ref("main", &commit).unwrap();
    repo.write_ref("pr/1", &commit).unwrap();
    assert!(repo.write_ref("../x", &commit).is_err());
    assert_eq!(repo.refs().get("pr/1"), Some(&commit));
    assert_eq!(repo.default_snapshot().map(|s| s.commit), Some(commit));
}

#[test]
fn one_marker_type_one_resume_command() {
    let env = Env::new();
    let files = Files::new().with_json("config.json", &json!({"model_type": "llama"}));
    env.cache.add("org/half", &files);
    let repo = repo(&env, "org/half");
    assert_eq!(repo.pending_pull(), None);
    let marker = PendingPull {
        repo_id: "org/half".into(),
        revision: "v2".into(),
        commit: String::new(),
        files: vec!["config.json".into(), "model.safetensors".into()],
        include: vec!["*.json".into(), "plain.txt".into()],
        exclude: vec!["it's".into()],
        incomplete_blobs: Vec::new(),
    };
    repo.write_pull_marker(&marker).unwrap();
    let read = pending_pull(env.cache.root(), "org/half").unwrap();
    assert_eq!(read, marker);
    let cmd = "tanto pull org/half --revision v2 --include '*.json' --include plain.txt --exclude 'it'\\''s'";
    assert_eq!(read.resume_command(), cmd);
    // The probe reports the same command as its fix.
    let p = env.probe("org/half");
    assert_eq!(p.health.problems[0].code, "partial_download");
    assert_eq!(p.health.fix.as_deref(), Some(cmd));
    repo.clear_pull_marker();
    assert_eq!(repo.pull_marker(), None);
    // `.incomplete` blobs alone read as a pull of `main`.
    env.cache
        .repo("org/half")
        .add_incomplete("deadbeef", b"par");
    let p = repo.pending_pull().unwrap();
    assert_eq!(p.resume_command(), "tanto pull org/half");
    assert_eq!(p.incomplete_blobs.len(), 1);
}

#[test]
fn shell_quoting() {
    assert_eq!(shell_quote("v1.0-rc_2/x@y:z"), "v1.0-rc_2/x@y:z");
    assert_eq!(shell_quote("*.json"), "'*.json'");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote(""), "''");
}

#[test]
fn all_models_lists_workspaces_then_repos_with_identity() {
    let env = Env::new();
    env.cache.add("org-b/zeta", &presets::hf_chat());
    env.cache.add("org-a/alpha", &presets::hf_base());
    workspace::write_workspace(&env.ws_home().join("mine"), &presets::hf_chat(), None);
    let all = all_models(&env.stores());
    let names: Vec<&str> = all.iter().map(|r| r.display_name.as_str()).collect();
    assert_eq!(names, vec!["mine", "org-a/alpha", "org-b/zeta"]);
    let ws = &all[0];
    assert!(matches!(
        ws.location,
        Location::Folder { managed: true, .. }
    ));
    assert_eq!(ws.id(), "mine");
    assert_eq!(ws.key(), env.ws_home().join("mine").display().to_string());
    let alpha = &all[1];
    assert_eq!(alpha.id(), "org-a/alpha");
    assert_eq!(
        alpha.key(),
        format!("org-a/alpha@{}", alpha.commit().unwrap())
    );
    // The same model resolved by a fuzzy alias has the same key.
    assert_eq!(env.resolve("alpha").key(), alpha.key());
    // A repo without snapshots: the key is the bare id.
    let empty = tempfile::tempdir().unwrap();
    let bare = Resolved::from_cache_repo(
        CacheRepo::from_dir(empty.path().join("models--org--bare")).unwrap(),
    );
    assert_eq!(bare.key(), "org/bare");
}

#[test]
fn runnable_and_serves_text() {
    let env = Env::new();
    env.cache.add("org/chat", &presets::hf_chat());
    env.cache.add("org/emb", &presets::st_embedder());
    env.cache.add("org/mlx", &presets::mlx_4bit());
    let chat = env.probe("org/chat");
    let emb = env.probe("org/emb");
    let mlx = env.probe("org/mlx");
    assert_eq!(
        chat.runnable(),
        chat.health.healthy && chat.runtime.compatible
    );
    assert_eq!(chat.serves_text(), chat.runnable());
    assert!(
        mlx.runnable() && mlx.serves_text(),
        "MLX 4-bit runs natively"
    );
    assert!(!emb.serves_text(), "an embedder never generates text");
}

#[cfg(unix)]
#[test]
fn probe_survives_a_symlink_loop_in_a_model_folder() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("model");
    workspace::write_folder(&dir, &presets::hf_chat());
    std::os::unix::fs::symlink("..", dir.join("loop")).unwrap();
    std::os::unix::fs::symlink(t.path(), dir.join("up")).unwrap();
    // A link back to the folder itself: the old walk never ended here.
    std::os::unix::fs::symlink(".", dir.join("self")).unwrap();
    let p = common::probe_path(&dir);
    // Every file is listed once: nothing under the looping links.
    assert!(p.files.iter().all(|f| !f.path.starts_with("loop/")
        && !f.path.starts_with("up/")
        && !f.path.starts_with("self/")));
    let fresh = tempfile::tempdir().unwrap();
    let clean = fresh.path().join("model");
    workspace::write_folder(&clean, &presets::hf_chat());
    assert_eq!(p.files.len(), common::probe_path(&clean).files.len());
    assert_eq!(p.health.healthy, common::probe_path(&clean).health.healthy);
}

// ---- shared cache: no write follows a planted link

#[cfg(unix)]
fn assert_unsafe(r: Result<impl std::fmt::Debug, CacheError>, planted: &Path) {
    match r {
        Err(CacheError::Unsafe { path, .. }) => assert_eq!(path, planted),
        other => panic!("expected Unsafe at {}, got {other:?}", planted.display()),
    }
}

#[cfg(unix)]
fn is_empty(p: &Path) -> bool {
    fs::read_dir(p).unwrap().next().is_none()
}

#[cfg(unix)]
#[test]
fn writes_refuse_symlinked_folders_below_the_repo_folder() {
    use std::os::unix::fs::symlink;
    let commit = "c".repeat(40);
    for planted in [
        "blobs".to_string(),
        "snapshots".to_string(),
        format!("snapshots/{commit}"),
        format!("snapshots/{commit}/sub"),
        "refs".to_string(),
        "refs/pr".to_string(),
    ] {
        let cache = tempfile::tempdir().unwrap();
        let repo = CacheRepo::in_cache(cache.path(), "org/shared");
        let outside = tempfile::tempdir().unwrap();
        let link = repo.dir.join(&planted);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(outside.path(), &link).unwrap();
        let r = match planted.as_str() {
            "blobs" => repo.open_partial("abc").map(|_| ()),
            p if p.starts_with("snapshots") && !p.ends_with("sub") => {
                repo.create_pull_dirs(&commit)
            }
            p if p.ends_with("sub") => repo.link_blob(&commit, "sub/x.json", "abc"),
            "refs" => repo.write_ref("main", &commit),
            _ => repo.write_ref("pr/1", &commit),
        };
        assert_unsafe(r, &link);
        assert!(is_empty(outside.path()), "{planted}: wrote outside");
    }
}

#[cfg(unix)]
#[test]
fn a_symlinked_repo_folder_itself_is_allowed() {
    // A repo folder moved to another disk and linked back is the user's choice.
    let cache = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let repo = CacheRepo::in_cache(cache.path(), "org/moved");
    std::os::unix::fs::symlink(elsewhere.path(), &repo.dir).unwrap();
    let commit = "d".repeat(40);
    repo.create_pull_dirs(&commit).unwrap();
    repo.write_ref("main", &commit).unwrap();
    assert_eq!(
        fs::read_to_string(elsewhere.path().join("refs/main")).unwrap(),
        commit
    );
}

#[cfg(unix)]
#[test]
fn a_symlinked_lock_folder_is_refused_for_the_marker() {
    let cache = tempfile::tempdir().unwrap();
    let repo = CacheRepo::in_cache(cache.path(), "org/locked");
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir_all(cache.path().join(".locks")).unwrap();
    let link = repo.locks_dir().unwrap();
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    let marker = PendingPull {
        repo_id: "org/locked".into(),
        revision: "main".into(),
        commit: String::new(),
        files: Vec::new(),
        include: Vec::new(),
        exclude: Vec::new(),
        incomplete_blobs: Vec::new(),
    };
    assert_unsafe(repo.write_pull_marker(&marker), &link);
    assert_unsafe(repo.create_pull_dirs(&"e".repeat(40)), &link);
    assert!(is_empty(outside.path()));
}

#[cfg(unix)]
#[test]
fn open_partial_refuses_planted_links_fifos_and_hard_links() {
    use std::os::unix::fs::symlink;
    let cache = tempfile::tempdir().unwrap();
    let repo = CacheRepo::in_cache(cache.path(), "org/part");
    repo.create_pull_dirs(&"f".repeat(40)).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"precious").unwrap();

    let partial = repo.partial_path("sym");
    symlink(&victim, &partial).unwrap();
    assert_unsafe(repo.open_partial("sym"), &partial);

    let partial = repo.partial_path("fifo");
    let c = std::ffi::CString::new(partial.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_unsafe(repo.open_partial("fifo"), &partial);

    let partial = repo.partial_path("hard");
    if fs::hard_link(&victim, &partial).is_ok() {
        assert_unsafe(repo.open_partial("hard"), &partial);
    }
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    // Names that would leave blobs/ never reach the filesystem.
    assert!(matches!(
        repo.open_partial("../x"),
        Err(CacheError::Outside { .. })
    ));
    assert!(!repo.has_blob("../blobs/x"));
    // A fresh partial opens, appends, and resumes where it stopped.
    use std::io::Write;
    repo.open_partial("ok").unwrap().write_all(b"ab").unwrap();
    repo.open_partial("ok").unwrap().write_all(b"cd").unwrap();
    assert_eq!(fs::read(repo.partial_path("ok")).unwrap(), b"abcd");
}

#[cfg(unix)]
#[test]
fn a_planted_blob_link_is_not_a_blob_and_is_replaced() {
    use std::io::Write;
    let cache = tempfile::tempdir().unwrap();
    let repo = CacheRepo::in_cache(cache.path(), "org/blob");
    let commit = "a".repeat(40);
    repo.create_pull_dirs(&commit).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, repo.blob_path("etag")).unwrap();
    assert!(!repo.has_blob("etag"), "a link does not count as the blob");

    repo.open_partial("etag")
        .unwrap()
        .write_all(b"real")
        .unwrap();
    repo.commit_blob("etag").unwrap();
    assert!(repo.has_blob("etag"));
    assert!(!repo.blob_path("etag").is_symlink());
    assert_eq!(repo.blob_len("etag"), 4);
    assert!(!repo.partial_path("etag").exists());
    repo.link_blob(&commit, "w.bin", "etag").unwrap();
    assert_eq!(
        fs::read(repo.snapshot_dir(&commit).join("w.bin")).unwrap(),
        b"real"
    );
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    repo.discard_partial("etag");
    assert!(repo.has_blob("etag"), "discarding a partial keeps the blob");
}

#[cfg(unix)]
#[test]
fn a_planted_ref_link_is_replaced_and_its_target_untouched() {
    let cache = tempfile::tempdir().unwrap();
    let repo = CacheRepo::in_cache(cache.path(), "org/ref");
    let commit = "b".repeat(40);
    repo.create_pull_dirs(&commit).unwrap();
    fs::create_dir_all(repo.dir.join("refs")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, repo.dir.join("refs/main")).unwrap();
    repo.write_ref("main", &commit).unwrap();
    let r = repo.dir.join("refs/main");
    assert!(!r.is_symlink());
    assert_eq!(fs::read_to_string(&r).unwrap(), commit);
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    // No temporary file is left next to it.
    let names: Vec<_> = fs::read_dir(repo.dir.join("refs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("main")]);
}

#[cfg(unix)]
#[test]
fn extras_are_written_once_as_huggingface_hub_writes_them() {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    let cache = tempfile::tempdir().unwrap();
    let repo = CacheRepo::in_cache(cache.path(), "org/extra");
    let commit = "9".repeat(40);
    repo.create_pull_dirs(&commit).unwrap();
    repo.write_cachedir_tag();
    let tag = fs::read_to_string(cache.path().join("CACHEDIR.TAG")).unwrap();
    assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55\n"));
    assert!(tag.contains("huggingface_hub"));

    let mut files = BTreeMap::new();
    files.insert(
        "model.safetensors".to_string(),
        TreeEntry {
            size: 10,
            blob_id: "ab".into(),
            lfs_sha256: Some("cd".into()),
            lfs_size: Some(10),
        },
    );
    files.insert(
        "config.json".to_string(),
        TreeEntry {
            size: 2,
            blob_id: "ef".into(),
            lfs_sha256: None,
            lfs_size: None,
        },
    );
    repo.write_tree_listing(&commit, files.clone());
    let path = repo.dir.join("trees").join(format!("{commit}.json"));
    let text = fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(
        v["files"]["config.json"],
        json!({"size": 2, "blob_id": "ef"})
    );
    assert_eq!(v["files"]["model.safetensors"]["lfs_sha256"], "cd");
    assert!(
        text.starts_with(
            "{\n \"format_version\": 1,\n \"files\": {\n  \"config.json\": {\n   \"size\""
        ),
        "indent 1, sorted paths: {text}"
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Present: left alone.
    files.clear();
    repo.write_tree_listing(&commit, files);
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
    // A commit that is not one name writes nothing.
    repo.write_tree_listing("../x", BTreeMap::new());
    assert!(!repo.dir.join("x.json").exists());
}
