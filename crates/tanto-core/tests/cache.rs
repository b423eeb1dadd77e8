//! The hub-cache layout owner (`resolve::cache`): links, refs, revision and repo
//! removal, the interrupted-pull marker, and the one model enumeration.

mod common;

use std::fs;
use std::path::Path;

use common::Env;
use serde_json::json;
use tanto_core::resolve::cache::{pending_pull, shell_quote, PendingPull};
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
    assert!(!mlx.runnable(), "no MLX engine in this build");
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
