//! Tests of the workspace modules (vectors shared with mlx-knife).

use std::fs::{self, File};
use std::path::Path;

use serde_json::Value;

use super::*;

fn defaults() -> Vec<String> {
    default_exclude_patterns()
}

fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

/// A safetensors file: 8-byte LE header length, header, then `data`.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn hash(root: &Path) -> Option<String> {
    compute_content_hash(root, &defaults()).map(|h| h.content_hash)
}

#[test]
fn fnmatch_like_python() {
    assert!(fnmatch("*.lock", "a.lock"));
    assert!(fnmatch("*.lock", ".lock"));
    assert!(!fnmatch("*.lock", "a.lock.x"));
    assert!(fnmatch("._*", "._foo"));
    assert!(!fnmatch("._*", "_.foo"));
    assert!(fnmatch(".*.swp", ".x.swp"));
    assert!(!fnmatch(".*.swp", "x.swp"));
    assert!(fnmatch("*~", "file~"));
    assert!(fnmatch("Icon\r", "Icon\r"));
    assert!(!fnmatch("Icon\r", "Icon"));
    assert!(fnmatch("a?c", "abc"));
    assert!(!fnmatch("a?c", "ac"));
    assert!(fnmatch("[ab]x", "bx"));
    assert!(!fnmatch("[!ab]x", "bx"));
    assert!(fnmatch("[!ab]x", "cx"));
    assert!(fnmatch("[a-c]*", "c9"));
    assert!(fnmatch("[", "["));
    assert!(fnmatch("[]]", "]"));
    assert!(fnmatch("*.safetensors", "sub/dir/m.safetensors"));
    assert!(fnmatch("*a*b*c", "xxaxxbxxbc"));
    assert!(!fnmatch("*.LOCK", "a.lock"));
    assert!(fnmatch("$RECYCLE.BIN", "$RECYCLE.BIN"));
    assert!(fnmatch("", ""));
    assert!(!fnmatch("", "a"));
}

// Test vectors. Each was computed independently with Python's hashlib:
//   def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
//   agg = "sha256:" + hashlib.sha256(b"".join(
//       p.encode() + b"\0" + s.encode() for p, s in sorted(entries))).hexdigest()
// and cross-checked against mlx-knife 2.0.8's compute_workspace_hash_v2.

#[test]
fn vector_minimal() {
    // entries = [("config.json", sha(b'{"model_type":"llama"}'))]
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "config.json", br#"{"model_type":"llama"}"#);
    let h = compute_content_hash(d.path(), &defaults()).unwrap();
    assert_eq!(
        h.file_index[0].sha,
        "sha256:fd11fd11fceeb9df51a63f347cec3af4051d086fccb030e78777a83a4d3289e8"
    );
    assert_eq!(
        h.content_hash,
        "sha256:b113fd017dbf0ad2efa74287cfc09808ea6fda72dd0ae922c4cf756b4651269e"
    );
}

/// config.json, model.safetensors (header-only), tokenizer/vocab.txt (nested),
/// plus excluded files: .git/ dir, x.lock, .hf_cache/ dir, the sentinel, a~.
fn build_model(root: &Path) {
    put(root, "config.json", b"{}");
    put(
        root,
        "model.safetensors",
        &safetensors(
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            b"\x00\x00\x80\x3f",
        ),
    );
    put(root, "tokenizer/vocab.txt", b"a\nb\n");
    put(root, ".git/HEAD", b"ref: refs/heads/main\n");
    put(root, ".hf_cache/hub/x", b"cache");
    put(root, "x.lock", b"");
    put(root, "a~", b"backup");
    put(root, SENTINEL_FILE, b"{}");
    put(root, "sub/.DS_Store", b"mac");
}

#[test]
fn vector_model_with_excludes_and_safetensors() {
    // entries = [
    //  ("config.json", sha(b"{}")),
    //  ("model.safetensors", sha(b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')),
    //  ("tokenizer/vocab.txt", sha(b"a\nb\n"))]
    let d = tempfile::tempdir().unwrap();
    build_model(d.path());
    let h = compute_content_hash(d.path(), &defaults()).unwrap();
    let paths: Vec<_> = h.file_index.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["config.json", "model.safetensors", "tokenizer/vocab.txt"]
    );
    assert_eq!(
        h.file_index[1].sha,
        "sha256:1df6f7adc18e258c9c5c222b1a6fc512f591b9d7ecf0bde5a61702bb6d0c9b62"
    );
    assert_eq!(h.file_index[1].size, 8 + 54 + 4);
    assert_eq!(
        h.content_hash,
        "sha256:1870bb6c2daa3737205c24b8589a3ef0806feb42faaacf063c189bd6f4feeaee"
    );
    // Tensor data is not hashed: changing it keeps the hash.
    put(
        d.path(),
        "model.safetensors",
        &safetensors(
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            b"\x01\x02\x03\x04",
        ),
    );
    assert_eq!(hash(d.path()).unwrap(), h.content_hash);
    // Without excludes the excluded files count.
    assert_ne!(
        compute_content_hash(d.path(), &[]).unwrap().content_hash,
        h.content_hash
    );
}

#[test]
fn path_order_is_code_point_not_dfs() {
    // DFS visits "a/b" before "a.txt"; the index sorts "a.txt" < "a/b" ('.' < '/').
    // entries = [("a.txt", sha(b"1")), ("a/b", sha(b"2")), ("config.json", sha(b"{}"))]
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "config.json", b"{}");
    put(d.path(), "a/b", b"2");
    put(d.path(), "a.txt", b"1");
    let h = compute_content_hash(d.path(), &defaults()).unwrap();
    let paths: Vec<_> = h.file_index.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["a.txt", "a/b", "config.json"]);
    assert_eq!(
        h.content_hash,
        "sha256:bfa4e65e78436f5a1af9854f8a6db464eb23ceb32fcbc7e3fd2fe4eccc34c5a7"
    );
}

#[test]
fn size_cap_hashes_name_and_size() {
    // With a 4-byte cap, "big.bin" (5 bytes) hashes as sha(b"big.bin\x005").
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "config.json", b"{}");
    put(d.path(), "big.bin", b"12345");
    let limits = HashLimits {
        full_read_cap: 4,
        ..Default::default()
    };
    let h = compute_content_hash_with(d.path(), &defaults(), &limits).unwrap();
    assert_eq!(h.file_index[0].path, "big.bin");
    assert_eq!(
        h.file_index[0].sha,
        "sha256:42c3778750fc3d04e87b688508b010efd5ff4ea5e04bb748a1aa841c0dcacf7b"
    );
    // Same size, other content: same hash.
    put(d.path(), "big.bin", b"54321");
    let h2 = compute_content_hash_with(d.path(), &defaults(), &limits).unwrap();
    assert_eq!(h.content_hash, h2.content_hash);
}

#[test]
fn safetensors_header_rules_abort() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "config.json", b"{}");
    // Zero-length header.
    put(d.path(), "m.safetensors", &0u64.to_le_bytes());
    assert_eq!(hash(d.path()), None);
    // Short file.
    put(d.path(), "m.safetensors", b"\x01\x02");
    assert_eq!(hash(d.path()), None);
    // Header longer than the file.
    let mut v = 100u64.to_le_bytes().to_vec();
    v.extend_from_slice(b"{}");
    put(d.path(), "m.safetensors", &v);
    assert_eq!(hash(d.path()), None);
    // Header over the cap.
    put(d.path(), "m.safetensors", &safetensors("{\"a\":1}", b""));
    let limits = HashLimits {
        safetensors_header_max: 4,
        ..Default::default()
    };
    assert_eq!(
        compute_content_hash_with(d.path(), &defaults(), &limits),
        None
    );
    assert!(hash(d.path()).is_some());
}

#[test]
fn needs_config_json() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "a.txt", b"x");
    assert_eq!(hash(d.path()), None);
}

#[cfg(unix)]
#[test]
fn symlinks_inside_hash_target_outside_abort() {
    use std::os::unix::fs::symlink;
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "config.json", b"{}");
    put(d.path(), "w/real.bin", b"data");
    // Inside: sha(b"SYMLINK\x00w/real.bin"); excluded name does not matter.
    symlink("w/real.bin", d.path().join("link.lock")).unwrap();
    let h = compute_content_hash(d.path(), &defaults()).unwrap();
    let e = h.file_index.iter().find(|e| e.path == "link.lock").unwrap();
    assert_eq!((e.size, e.mtime_ns), (0, 0));
    assert_eq!(
        e.sha,
        "sha256:d416d4be11ab889e78d9e2d535ca3f4b8b748ad40663d45e99b85f1177429978"
    );
    // Broken but inside: still hashed by its would-be target.
    symlink("w/missing", d.path().join("dangling")).unwrap();
    assert!(hash(d.path()).is_some());
    // Outside: abort.
    let other = tempfile::tempdir().unwrap();
    symlink(other.path(), d.path().join("out")).unwrap();
    assert_eq!(hash(d.path()), None);
}

#[test]
fn nfc_names() {
    // "é" written decomposed (e + U+0301) is indexed in NFC (U+00E9).
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "config.json", b"{}");
    put(d.path(), "e\u{301}.txt", b"x");
    let h = compute_content_hash(d.path(), &defaults()).unwrap();
    assert!(h.file_index.iter().any(|e| e.path == "\u{e9}.txt"));
    // And the clean check finds it.
    let mut s = Sentinel::new("clone", None, None);
    assert!(pin_content_hash(d.path(), &mut s));
    assert_eq!(clean_state(d.path(), &s), Some(true));
}

fn set_mtime(p: &Path, secs: i64) {
    let f = File::options().write(true).open(p).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64))
        .unwrap();
}

#[test]
fn clean_check_and_heal() {
    let d = tempfile::tempdir().unwrap();
    build_model(d.path());
    let mut s = Sentinel::new("clone", Some("org/m".into()), None);
    assert!(pin_content_hash(d.path(), &mut s));
    write_sentinel(d.path(), &s).unwrap();
    let st = workspace_state(d.path());
    assert!(st.managed);
    assert_eq!(st.clean, Some(true));
    assert_eq!(st.origin.as_deref(), Some("org/m"));

    // Touch without change: still clean, mtime healed in the sentinel.
    set_mtime(&d.path().join("tokenizer/vocab.txt"), 1_000_000);
    let c = check_clean(d.path(), &s, true);
    assert_eq!((c.clean, c.healed), (Some(true), 1));
    let s2 = read_sentinel(d.path()).unwrap().unwrap();
    let e = s2
        .file_index
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.path == "tokenizer/vocab.txt")
        .unwrap();
    assert_eq!(e.mtime_ns, 1_000_000 * 1_000_000_000);
    assert_eq!(check_clean(d.path(), &s2, true).healed, 0);

    // Excluded files may change freely.
    put(d.path(), "new.log", b"x");
    put(d.path(), ".git/x", b"x");
    assert_eq!(clean_state(d.path(), &s2), Some(true));

    // Same size, other content, new mtime: dirty.
    put(d.path(), "tokenizer/vocab.txt", b"a\nc\n");
    set_mtime(&d.path().join("tokenizer/vocab.txt"), 2_000_000);
    let c = check_clean(d.path(), &s2, true);
    assert_eq!(c.clean, Some(false));
    assert_eq!(c.changed.as_deref(), Some("tokenizer/vocab.txt"));
    put(d.path(), "tokenizer/vocab.txt", b"a\nb\n");
    assert_eq!(clean_state(d.path(), &s2), Some(true));

    // New file: dirty. Missing file: dirty.
    put(d.path(), "extra.txt", b"x");
    assert_eq!(clean_state(d.path(), &s2), Some(false));
    fs::remove_file(d.path().join("extra.txt")).unwrap();
    fs::remove_file(d.path().join("tokenizer/vocab.txt")).unwrap();
    let c = check_clean(d.path(), &s2, false);
    assert_eq!(c.clean, Some(false));
    assert_eq!(c.changed.as_deref(), Some("tokenizer/vocab.txt"));
}

#[test]
fn clean_unknown_cases() {
    let d = tempfile::tempdir().unwrap();
    build_model(d.path());
    let mut s = Sentinel::new("clone", None, None);
    assert_eq!(clean_state(d.path(), &s), None); // no v2 fields
    assert!(pin_content_hash(d.path(), &mut s));
    for bad in ["", "/abs", "a/../b", "C:x", "a\\b", "a\0b", ".."] {
        let mut t = s.clone();
        t.file_index.as_mut().unwrap()[0].path = bad.to_string();
        assert_eq!(clean_state(d.path(), &t), None, "{bad:?}");
    }
    let mut t = s.clone();
    t.hash_algorithm = None;
    assert_eq!(clean_state(d.path(), &t), None);
    // A v1 sentinel read from disk.
    fs::write(
        d.path().join(SENTINEL_FILE),
        r#"{"mlxk_version":"2.0.5","managed":true,"content_hash":"ab","file_index":"x"}"#,
    )
    .unwrap();
    let st = workspace_state(d.path());
    assert!(st.managed);
    assert_eq!(st.clean, None);
    assert_eq!(st.content_hash.as_deref(), Some("ab"));
}

#[test]
fn sentinel_roundtrip_preserves_unknown_fields() {
    let d = tempfile::tempdir().unwrap();
    let text = r#"{"mlxk_version":"2.0.7","created_at":"2025-01-01T00:00:00.000001Z","source_repo":"o/ü","source_revision":null,"managed":true,"operation":"convert","mode":"quantize","quantization":{"bits":4,"group_size":64},"zzz":[1,2]}"#;
    fs::write(d.path().join(SENTINEL_FILE), text).unwrap();
    let s = read_sentinel(d.path()).unwrap().unwrap();
    assert_eq!(s.extra.len(), 2);
    write_sentinel(d.path(), &s).unwrap();
    let out = fs::read_to_string(d.path().join(SENTINEL_FILE)).unwrap();
    assert!(out.ends_with("}\n"));
    assert!(out.contains("\n  \"managed\": true,\n"));
    assert!(out.contains("\"o/\\u00fc\""), "{out}");
    assert!(out.contains("\"source_revision\": null"));
    assert!(out.contains("\"group_size\": 64"));
    assert!(!d.path().join(".mlxk_workspace.json.tmp").exists());
    let back: Value = serde_json::from_str(&out).unwrap();
    let orig: Value = serde_json::from_str(text).unwrap();
    assert_eq!(back, orig);
    // Unmanaged or absent sentinel.
    let e = tempfile::tempdir().unwrap();
    assert_eq!(read_sentinel(e.path()).unwrap(), None);
    assert_eq!(workspace_state(e.path()), WorkspaceState::default());
    assert!(matches!(
        recalc_hash(e.path()),
        Err(WorkspaceError::NotManaged(_))
    ));
}

#[test]
fn recalc_repins() {
    let d = tempfile::tempdir().unwrap();
    build_model(d.path());
    let mut s = Sentinel::new("clone", None, None);
    assert!(pin_content_hash(d.path(), &mut s));
    write_sentinel(d.path(), &s).unwrap();
    put(d.path(), "extra.txt", b"x");
    assert_eq!(workspace_state(d.path()).clean, Some(false));
    let s2 = recalc_hash(d.path()).unwrap();
    assert_ne!(s2.content_hash, s.content_hash);
    assert_eq!(current_content_hash(d.path(), &s2), s2.content_hash.clone());
    assert_eq!(workspace_state(d.path()).clean, Some(true));
}

#[test]
fn timestamp_shape() {
    let t = now_timestamp();
    assert_eq!(t.len(), "2025-01-01T00:00:00.000000Z".len(), "{t}");
    assert!(t.ends_with('Z'));
}
