//! The fixtures write what huggingface_hub and the format specs say.

use std::fs;

use tanto_testkit::gguf::{ggml, GgufBuilder};
use tanto_testkit::hub::{commit_hash, etag, repo_folder_name};
use tanto_testkit::presets::{self, Broken};
use tanto_testkit::safetensors::{header_len, SafetensorsBuilder};
use tanto_testkit::{corrupt, Content, Files, HubCache};

#[test]
fn hub_layout_matches_huggingface_hub() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = HubCache::new(tmp.path());
    let repo = cache.add("org/name", &presets::st_embedder());
    let commit = commit_hash("org/name");
    assert_eq!(commit.len(), 40);
    assert_eq!(repo.dir, tmp.path().join("models--org--name"));
    assert_eq!(repo_folder_name("a/b"), "models--a--b");
    // refs/main holds the commit, without a newline.
    assert_eq!(
        fs::read_to_string(repo.dir.join("refs/main")).unwrap(),
        commit
    );
    // Snapshot files are relative symlinks into blobs/, deeper for nested paths.
    let snap = repo.snapshot_dir(&commit);
    let top = fs::read_link(snap.join("config.json")).unwrap();
    assert!(top.is_relative());
    assert!(top.starts_with("../../blobs"), "{}", top.display());
    let nested = fs::read_link(snap.join("1_Pooling/config.json")).unwrap();
    assert!(nested.starts_with("../../../blobs"), "{}", nested.display());
    assert!(
        snap.join("1_Pooling/config.json").is_file(),
        "link resolves"
    );
    // Blob names: sha256 for LFS files, git sha1 for the rest.
    let st = repo.blob_of(&commit, "model.safetensors");
    assert_eq!(st.file_name().unwrap().len(), 64);
    let cfg = repo.blob_of(&commit, "config.json");
    assert_eq!(cfg.file_name().unwrap().len(), 40);
    // git blob sha1 of "hello\n" is the well-known ce01362…
    assert_eq!(
        etag("x.txt", &Content::Bytes(b"hello\n".to_vec())),
        "ce013625030ba8dba906f756967f9e9ca394464a"
    );
    // Locks.
    let lock = repo.add_lock("abc");
    assert!(lock.ends_with(".locks/models--org--name/abc.lock"));
}

#[test]
fn snapshots_share_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = HubCache::new(tmp.path());
    let (repo, old, new) = presets::two_snapshots(&cache, "org/two");
    assert_eq!(repo.snapshots().len(), 2);
    assert_eq!(
        repo.blob_of(&old, "tokenizer.json"),
        repo.blob_of(&new, "tokenizer.json")
    );
    assert_ne!(
        repo.blob_of(&old, "config.json"),
        repo.blob_of(&new, "config.json")
    );
    assert_eq!(repo.main_commit().unwrap(), new);
    assert_eq!(repo.ref_commit("v1").unwrap(), old);
}

#[test]
fn blob_level_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = HubCache::new(tmp.path());
    let repo = Broken::DanglingSymlink.install(&cache);
    let link = repo.main_snapshot().join("model.safetensors");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::metadata(&link).is_err(), "dangling");
    let repo = Broken::PartialDownload.install(&cache);
    assert!(repo
        .blobs()
        .iter()
        .any(|b| b.to_string_lossy().ends_with(".incomplete")));
}

#[test]
fn safetensors_bytes_are_well_formed() {
    let b = SafetensorsBuilder::new()
        .metadata("format", "pt")
        .tensor("a", "F32", &[2, 3])
        .tensor("b", "BF16", &[5]);
    let bytes = b.build();
    let n = header_len(&bytes) as usize;
    assert_eq!(n % 8, 0, "header padded to 8");
    let h: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(h["a"]["data_offsets"], serde_json::json!([0, 24]));
    assert_eq!(h["b"]["data_offsets"], serde_json::json!([24, 34]));
    assert_eq!(h["__metadata__"]["format"], "pt");
    assert_eq!(bytes.len(), 8 + n + 34);
    assert_eq!(b.elements(), 11);
    // Corrupt variants keep or break exactly what they say.
    assert_eq!(corrupt::safetensors_bad_json(&bytes).len(), bytes.len());
    assert!(header_len(&corrupt::safetensors_header_len_past_eof(&bytes)) > bytes.len() as u64);
}

#[test]
fn gguf_bytes_are_well_formed() {
    let g = GgufBuilder::new()
        .str("general.architecture", "llama")
        .strings("tokenizer.ggml.tokens", vec!["a".into(), "b".into()])
        .tensor("t0", &[33], ggml::F32)
        .tensor("t1", &[64, 2], ggml::Q4_0);
    let bytes = g.build();
    assert_eq!(&bytes[..4], b"GGUF");
    assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
    assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), 2);
    assert_eq!(u64::from_le_bytes(bytes[16..24].try_into().unwrap()), 2);
    // t0: 132 bytes → t1 at offset 160 (aligned to 32); t1: 4 blocks × 18 = 72 bytes.
    let data_start = bytes.len() - (160 + 72);
    assert_eq!(data_start % 32, 0);
    assert_eq!(g.elements(), 33 + 128);
    assert_eq!(&corrupt::gguf_bad_magic(&bytes)[..4], b"GGML");
}

#[test]
fn files_edit_helpers() {
    let mut f = Files::new().with_json("config.json", &serde_json::json!({"a": 1}));
    f.update_json("config.json", |v| v["b"] = serde_json::json!(2));
    assert_eq!(f.json("config.json").unwrap()["b"], 2);
    assert!(f.contains("config.json"));
    assert_eq!(f.len(), 1);
    let f = f.without("config.json");
    assert!(f.is_empty());
}
