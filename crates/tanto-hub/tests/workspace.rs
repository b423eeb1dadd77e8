//! `clone_snapshot` and `repair_index`: self-contained workspaces with sentinels.

mod support;

use std::fs;
use std::path::Path;

use serde_json::Value;
use support::fake_hub::{demo_repo, FakeHub};
use tanto_core::workspace::{
    compute_content_hash, default_exclude_patterns, read_sentinel, workspace_state,
    MLXK_COMPAT_VERSION, TANTO_VERSION,
};
use tanto_hub::{clone_snapshot, pull, repair_index, HubError, PullOptions};

fn pulled_snapshot(hub: &FakeHub, cache: &Path) -> std::path::PathBuf {
    let mut o = PullOptions::new("tanto-test/demo");
    o.endpoint = Some(hub.url.clone());
    o.cache_dir = Some(cache.to_path_buf());
    o.offline = Some(false);
    o.token = Some(String::new());
    pull(&o).unwrap().snapshot_dir
}

/// A safetensors file with U8 tensors of the given sizes.
fn shard(tensors: &[(&str, usize)]) -> Vec<u8> {
    let mut off = 0;
    let mut parts = Vec::new();
    for (name, n) in tensors {
        parts.push(format!(
            r#""{name}":{{"dtype":"U8","shape":[{n}],"data_offsets":[{off},{}]}}"#,
            off + n
        ));
        off += n;
    }
    let header = format!("{{{}}}", parts.join(","));
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend(vec![7u8; off]);
    v
}

fn no_staging_left(parent: &Path) {
    for e in fs::read_dir(parent).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!n.contains("tanto-tmp"), "staging dir left: {n}");
    }
}

#[test]
fn clone_makes_a_clean_self_contained_workspace() {
    let repo = demo_repo("tanto-test/demo");
    let hub = FakeHub::start(vec![repo.clone()]);
    let cache = tempfile::tempdir().unwrap();
    let snap = pulled_snapshot(&hub, cache.path());
    let home = tempfile::tempdir().unwrap();
    let target = home.path().join("demo");

    let r = clone_snapshot(&snap, &target, "tanto-test/demo", Some("main")).unwrap();
    assert_eq!(r.files, repo.files.len());
    assert_eq!(r.reflinked + r.copied, r.files);
    assert!(r.hashed);
    for f in &repo.files {
        let p = target.join(&f.path);
        assert!(!p.is_symlink() && p.is_file(), "{}", f.path);
        assert_eq!(fs::read(&p).unwrap(), *f.content, "{}", f.path);
    }
    no_staging_left(home.path());

    // The sentinel: mlx-knife's format plus tanto_version.
    let raw: Value =
        serde_json::from_slice(&fs::read(target.join(".mlxk_workspace.json")).unwrap()).unwrap();
    assert_eq!(raw["managed"], true);
    assert_eq!(raw["operation"], "clone");
    assert_eq!(raw["source_repo"], "tanto-test/demo");
    assert_eq!(raw["source_revision"], "main");
    assert_eq!(raw["hash_algorithm"], "v2");
    assert_eq!(raw["mlxk_version"], MLXK_COMPAT_VERSION);
    assert_eq!(raw["tanto_version"], TANTO_VERSION);
    assert!(raw["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        raw["file_index"].as_array().unwrap().len(),
        repo.files.len()
    );
    let expected = compute_content_hash(&target, &default_exclude_patterns()).unwrap();
    assert_eq!(raw["content_hash"], expected.content_hash.as_str());

    let st = workspace_state(&target);
    assert!(st.managed);
    assert_eq!(st.clean, Some(true));
    assert_eq!(st.origin.as_deref(), Some("tanto-test/demo"));

    // Editing the workspace never touches the cache (no hardlinks).
    fs::write(target.join("config.json"), b"{\"edited\":true}").unwrap();
    assert_eq!(
        fs::read(snap.join("config.json")).unwrap(),
        *repo.files[0].content
    );
    assert_eq!(workspace_state(&target).clean, Some(false));

    // A non-empty target is refused and left alone.
    let err = clone_snapshot(&snap, &target, "tanto-test/demo", None).unwrap_err();
    assert!(matches!(err, HubError::TargetNotEmpty(_)), "{err}");
    // An empty directory is fine.
    let empty = home.path().join("empty");
    fs::create_dir(&empty).unwrap();
    clone_snapshot(&snap, &empty, "tanto-test/demo", None).unwrap();
    assert_eq!(workspace_state(&empty).clean, Some(true));
    // Missing source.
    let err = clone_snapshot(
        &home.path().join("nope"),
        &home.path().join("x"),
        "a/b",
        None,
    )
    .unwrap_err();
    assert!(matches!(err, HubError::SourceNotADirectory(_)), "{err}");
    assert!(!home.path().join("x").exists());
}

fn mismatched_model(dir: &Path) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::create_dir_all(dir.join(".git")).unwrap();
    fs::write(dir.join("config.json"), br#"{"model_type":"llama"}"#).unwrap();
    fs::write(dir.join("sub/notes.txt"), b"kept").unwrap();
    fs::write(dir.join(".git/HEAD"), b"ref").unwrap();
    fs::write(
        dir.join("model-00001-of-00002.safetensors"),
        shard(&[("a.weight", 10), ("b.weight", 6)]),
    )
    .unwrap();
    fs::write(
        dir.join("model-00002-of-00002.safetensors"),
        shard(&[("c.weight", 4)]),
    )
    .unwrap();
    // A stale index: wrong shard for c, a tensor that does not exist, b missing.
    fs::write(
        dir.join("model.safetensors.index.json"),
        r#"{"metadata":{"total_size":1},"weight_map":{"a.weight":"model-00001-of-00002.safetensors","c.weight":"model-00001-of-00002.safetensors","gone":"model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
}

#[test]
fn repair_index_rebuilds_from_shard_headers() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    mismatched_model(&src);
    // Source is itself a managed workspace: its origin carries over.
    fs::write(
        src.join(".mlxk_workspace.json"),
        r#"{"mlxk_version":"2.0.8","managed":true,"operation":"clone","source_repo":"org/model","source_revision":"abc"}"#,
    )
    .unwrap();
    let dst = d.path().join("fixed");
    let r = repair_index(&src, &dst).unwrap();
    assert!(r.index_written);
    assert_eq!(r.tensors, 3);
    assert_eq!(r.total_size, 20);
    assert!(r.hashed);
    no_staging_left(d.path());

    let text = fs::read_to_string(dst.join("model.safetensors.index.json")).unwrap();
    assert_eq!(
        text,
        "{\n  \"metadata\": {\n    \"total_size\": 20\n  },\n  \"weight_map\": {\n    \
         \"a.weight\": \"model-00001-of-00002.safetensors\",\n    \
         \"b.weight\": \"model-00001-of-00002.safetensors\",\n    \
         \"c.weight\": \"model-00002-of-00002.safetensors\"\n  }\n}\n"
    );
    assert!(dst.join("sub/notes.txt").is_file());
    assert!(!dst.join(".git").exists());
    let s = read_sentinel(&dst).unwrap().unwrap();
    assert!(s.managed);
    assert_eq!(s.operation.as_deref(), Some("convert"));
    assert_eq!(s.mode.as_deref(), Some("repair-index"));
    assert_eq!(s.source_repo.as_deref(), Some("org/model"));
    assert_eq!(s.source_revision.as_deref(), Some("abc"));
    assert_eq!(workspace_state(&dst).clean, Some(true));
    // The source is untouched.
    assert!(fs::read_to_string(src.join("model.safetensors.index.json"))
        .unwrap()
        .contains("gone"));
}

#[test]
fn repair_index_single_shard_and_failures() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("single");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("config.json"), b"{}").unwrap();
    fs::write(src.join("model.safetensors"), shard(&[("w", 3)])).unwrap();
    fs::write(src.join("model.safetensors.index.json"), b"{\"stale\":1}").unwrap();
    let dst = d.path().join("single-fixed");
    let r = repair_index(&src, &dst).unwrap();
    assert!(!r.index_written);
    assert!(!dst.join("model.safetensors.index.json").exists());
    // Unmanaged source: origin is its absolute path.
    let s = read_sentinel(&dst).unwrap().unwrap();
    assert_eq!(
        s.source_repo.as_deref(),
        Some(fs::canonicalize(&src).unwrap().to_str().unwrap())
    );

    // A tensor in two shards.
    let dup = d.path().join("dup");
    fs::create_dir_all(&dup).unwrap();
    fs::write(dup.join("config.json"), b"{}").unwrap();
    fs::write(dup.join("a.safetensors"), shard(&[("w", 3)])).unwrap();
    fs::write(dup.join("b.safetensors"), shard(&[("w", 3)])).unwrap();
    let err = repair_index(&dup, &d.path().join("dup-fixed")).unwrap_err();
    assert!(matches!(err, HubError::DuplicateTensor { .. }), "{err}");
    assert!(!d.path().join("dup-fixed").exists());

    // A corrupt shard.
    fs::write(dup.join("b.safetensors"), b"\x05\x00").unwrap();
    let err = repair_index(&dup, &d.path().join("dup-fixed")).unwrap_err();
    assert!(matches!(err, HubError::BadShard { .. }), "{err}");

    // Target not empty.
    let err = repair_index(&src, &dst).unwrap_err();
    assert!(matches!(err, HubError::TargetNotEmpty(_)), "{err}");
    no_staging_left(d.path());
}
