//! Resolve: exact, case-insensitive, fuzzy, ambiguous, name@rev, explicit paths,
//! workspaces, all through an env-free `Stores`.

mod common;

use std::path::{Path, PathBuf};

use common::Env;
use serde_json::json;
use tanto_core::error::ErrorType;
use tanto_core::resolve::{resolve, split_revision, Location, Resolved, Stores};
use tanto_testkit::presets;
use tanto_testkit::{hub, workspace};

fn cache_env() -> Env {
    let env = Env::new();
    env.cache.add("org-a/tiny-llama", &presets::hf_chat());
    env.cache
        .add("org-a/tiny-llama-chat-GGUF", &presets::gguf_chat());
    env.cache.add("org-b/Tiny-Llama-4bit", &presets::mlx_4bit());
    env.cache
        .add("sentence-transformers/all-minilm", &presets::st_embedder());
    env
}

fn commit(r: &Resolved) -> &str {
    r.commit().expect("cache snapshot")
}

#[test]
fn exact_org_name() {
    let env = cache_env();
    let r = env.resolve("org-a/tiny-llama");
    assert_eq!(r.name, "org-a/tiny-llama");
    assert!(!r.fuzzy);
    assert!(r.is_cache());
    assert_eq!(commit(&r), hub::commit_hash("org-a/tiny-llama"));
    assert!(matches!(r.location, Location::Cache { pinned: false, .. }));
}

#[test]
fn exact_is_case_insensitive() {
    let env = cache_env();
    let r = env.resolve("ORG-B/tiny-llama-4BIT");
    assert_eq!(r.name, "org-b/Tiny-Llama-4bit");
    assert!(!r.fuzzy);
}

#[test]
fn fuzzy_unique_substring() {
    let env = cache_env();
    let r = env.resolve("MiniLM");
    assert_eq!(r.name, "sentence-transformers/all-minilm");
    assert!(r.fuzzy);
    let r = env.resolve("chat-gguf");
    assert_eq!(r.name, "org-a/tiny-llama-chat-GGUF");
}

#[test]
fn unique_short_name_beats_longer_substrings() {
    let env = cache_env();
    // "tiny-llama" is a substring of three repos but the exact short name of one.
    let r = env.resolve("tiny-llama");
    assert_eq!(r.name, "org-a/tiny-llama");
    assert!(r.fuzzy);
}

#[test]
fn ambiguous_lists_sorted_candidates() {
    let env = cache_env();
    workspace::write_workspace(&env.ws_home().join("llama-work"), &presets::hf_chat(), None);
    let err = resolve("llama", &env.stores()).unwrap_err();
    assert_eq!(err.kind, ErrorType::AmbiguousMatch);
    assert_eq!(err.http_status(), 400);
    let expected = json!([
        "llama-work",
        "org-a/tiny-llama",
        "org-a/tiny-llama-chat-GGUF",
        "org-b/Tiny-Llama-4bit"
    ]);
    assert_eq!(err.details.get("matches"), Some(&expected));
    for m in expected.as_array().unwrap() {
        assert!(err.message.contains(m.as_str().unwrap()));
    }
    assert!(err.hint.is_some());
}

#[test]
fn not_found_and_empty() {
    let env = cache_env();
    let err = resolve("no-such-model", &env.stores()).unwrap_err();
    assert_eq!(err.kind, ErrorType::ModelNotFound);
    assert_eq!(err.http_status(), 404);
    assert!(err.hint.as_deref().unwrap().contains("tanto list"));
    assert_eq!(
        resolve("  ", &env.stores()).unwrap_err().kind,
        ErrorType::ValidationError
    );
    assert_eq!(
        resolve("org-a/tiny-llama@", &env.stores())
            .unwrap_err()
            .kind,
        ErrorType::ValidationError
    );
}

#[test]
fn split_revision_forms() {
    assert_eq!(split_revision("a/b@main"), ("a/b", Some("main")));
    assert_eq!(split_revision("a/b"), ("a/b", None));
    assert_eq!(split_revision("@x"), ("@x", None));
}

#[test]
fn revision_by_commit_prefix_and_ref_name() {
    let env = Env::new();
    let (_repo, old, new) = presets::two_snapshots(&env.cache, "org/two");
    // Bare name: refs/main.
    assert_eq!(commit(&env.resolve("org/two")), new);
    // Commit prefix (any case).
    let r = env.resolve(&format!("org/two@{}", &old[..7]));
    assert_eq!(commit(&r), old);
    assert!(matches!(r.location, Location::Cache { pinned: true, .. }));
    let r = env.resolve(&format!("org/two@{}", old[..10].to_uppercase()));
    assert_eq!(commit(&r), old);
    // Ref names.
    assert_eq!(commit(&env.resolve("org/two@main")), new);
    assert_eq!(commit(&env.resolve("org/two@v1")), old);
    // Fuzzy name with a revision.
    let r = env.resolve(&format!("two@{}", &new[..8]));
    assert_eq!((r.name.as_str(), commit(&r)), ("org/two", new.as_str()));
    // The pinned snapshot is what gets probed.
    let p = tanto_core::probe::probe_resolved(&env.resolve(&format!("org/two@{}", &old[..7])));
    assert!(p.dir.unwrap().ends_with(&old));
}

#[test]
fn unknown_revision() {
    let env = Env::new();
    let (_repo, old, new) = presets::two_snapshots(&env.cache, "org/two");
    let err = resolve("org/two@deadbeef", &env.stores()).unwrap_err();
    assert_eq!(err.kind, ErrorType::RevisionNotFound);
    assert_eq!(err.http_status(), 404);
    assert!(err.message.contains("deadbeef") && err.message.contains("org/two"));
    let avail: Vec<String> =
        serde_json::from_value(err.details["available_hashes"].clone()).unwrap();
    let mut avail_sorted = avail.clone();
    avail_sorted.sort();
    let mut want = vec![old[..8].to_string(), new[..8].to_string()];
    want.sort();
    assert_eq!(avail_sorted, want);
}

#[test]
fn default_snapshot_follows_refs_main_else_newest() {
    let env = Env::new();
    let (repo, old, new) = presets::two_snapshots(&env.cache, "org/two");
    repo.set_ref("main", &old);
    assert_eq!(
        commit(&env.resolve("org/two")),
        old,
        "refs/main wins over mtime"
    );
    std::fs::remove_file(repo.dir.join("refs/main")).unwrap();
    assert_eq!(
        commit(&env.resolve("org/two")),
        new,
        "newest snapshot without refs/main"
    );
}

/// `./…` relative to the current directory, going up to `/` first.
fn dot_relative(target: &Path) -> String {
    let cwd = std::env::current_dir().unwrap();
    let ups = cwd.components().count() - 1;
    format!(
        "./{}{}",
        "../".repeat(ups),
        target.strip_prefix("/").unwrap().display()
    )
}

#[test]
fn explicit_paths_to_folders_and_gguf_files() {
    let env = Env::new();
    let dir = env.tmp.path().join("models/llama-folder");
    workspace::write_folder(&dir, &presets::hf_chat());
    let canon = std::fs::canonicalize(&dir).unwrap();
    let stores = Stores {
        cache: PathBuf::from("/nonexistent"),
        workspace_home: None,
    };
    for spec in [
        dir.display().to_string(),
        dot_relative(&dir),
        dot_relative(&dir)[2..].to_string(),
    ] {
        if !tanto_core::resolve::is_explicit_path(&spec) {
            continue;
        }
        let r = resolve(&spec, &stores).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert!(
            matches!(&r.location, Location::Folder { dir, managed: false } if *dir == canon),
            "{spec}"
        );
        assert_eq!(r.name, canon.display().to_string());
    }
    // A .gguf file by absolute path.
    let gdir = env.tmp.path().join("models/gguf");
    workspace::write_folder(&gdir, &presets::gguf_chat());
    let file = gdir.join(presets::GGUF_CHAT_FILE);
    let r = resolve(file.to_str().unwrap(), &stores).unwrap();
    assert!(
        matches!(&r.location, Location::File { file: f } if f.ends_with(presets::GGUF_CHAT_FILE))
    );
    // …and the GGUF's folder by path.
    let r = resolve(gdir.to_str().unwrap(), &stores).unwrap();
    assert!(matches!(r.location, Location::Folder { .. }));
    // A non-model file, a non-model folder, a missing path.
    let readme = dir.join("README.md");
    let e = resolve(readme.to_str().unwrap(), &stores).unwrap_err();
    assert_eq!(e.kind, ErrorType::ModelNotFound);
    let e = resolve(env.tmp.path().join("models").to_str().unwrap(), &stores).unwrap_err();
    assert_eq!(e.kind, ErrorType::ModelNotFound);
    let e = resolve("/definitely/not/here", &stores).unwrap_err();
    assert!(e.message.contains("does not exist"));
}

#[test]
fn workspace_home_exact_and_fuzzy() {
    let env = cache_env();
    let ws = workspace::write_workspace(
        &env.ws_home().join("my-ws"),
        &presets::hf_chat(),
        Some("org-a/tiny-llama"),
    );
    workspace::write_folder(&env.ws_home().join("plain-folder"), &presets::gguf_chat());
    let r = env.resolve("my-ws");
    assert!(!r.fuzzy);
    assert_eq!(r.display_name, "my-ws");
    assert!(matches!(&r.location, Location::Folder { dir, managed: true } if *dir == ws));
    let r = env.resolve("plain-fold");
    assert!(r.fuzzy);
    assert!(matches!(
        r.location,
        Location::Folder { managed: false, .. }
    ));
    // No workspace home: the same name is not found.
    let stores = Stores {
        cache: env.cache.root().to_path_buf(),
        workspace_home: None,
    };
    assert_eq!(
        resolve("my-ws", &stores).unwrap_err().kind,
        ErrorType::ModelNotFound
    );
}

#[test]
fn test_cache_sentinel_repos_are_ignored() {
    let env = cache_env();
    env.cache.add("x/TEST-CACHE-SENTINEL", &presets::hf_chat());
    assert_eq!(
        resolve("TEST-CACHE", &env.stores()).unwrap_err().kind,
        ErrorType::ModelNotFound
    );
}
