//! The probe cache: a stored result is used only while its key matches, and
//! never when stale (a file's size, mtime or blob changed), corrupt, from
//! another build, or written while the files were still changing.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::Env;
use serde_json::Value;
use tanto_core::probe::cache::ProbeCache;
use tanto_core::probe::{probe_uncached, probe_with, Probe, ProbeTarget};
use tanto_testkit::presets;

fn cache_in(t: &tempfile::TempDir) -> ProbeCache {
    // No racy window: the fixtures were written a moment ago.
    ProbeCache::at(t.path().join("probe")).with_racy_window(Duration::ZERO)
}

fn target(env: &Env, spec: &str) -> ProbeTarget {
    ProbeTarget::from(&env.resolve(spec))
}

/// Everything a probe says, files and config included.
fn view(p: &Probe) -> Value {
    let mut v = serde_json::to_value(p).unwrap();
    v["files"] = serde_json::to_value(&p.files).unwrap();
    v["config"] = p.config.clone().unwrap_or(Value::Null);
    v
}

/// Rewrite the stored entry's `parameters`, so a hit is recognisable.
fn mark_entry(c: &ProbeCache, t: &ProbeTarget, marker: u64) -> PathBuf {
    let path = c.entry_path(t);
    let mut e: Value = serde_json::from_slice(&fs::read(&path).expect("entry stored")).unwrap();
    e["probe"]["parameters"] = marker.into();
    fs::write(&path, serde_json::to_vec(&e).unwrap()).unwrap();
    path
}

const MARK: u64 = 123_456_789;

#[test]
fn a_hit_returns_the_stored_probe_in_full() {
    let env = Env::new();
    env.cache.add("org/chat", &presets::hf_chat());
    let tmp = tempfile::tempdir().unwrap();
    let c = cache_in(&tmp);
    let t = target(&env, "org/chat");
    let fresh = probe_with(&t, Some(&c));
    assert!(c.entry_path(&t).is_file(), "stored");
    let hit = probe_with(&t, Some(&c));
    assert_eq!(view(&hit), view(&fresh));
    assert_eq!(view(&hit), view(&probe_uncached(&t)));
    // It really is the stored entry that answers.
    mark_entry(&c, &t, MARK);
    assert_eq!(probe_with(&t, Some(&c)).parameters, Some(MARK));
}

#[test]
fn a_changed_size_mtime_or_blob_is_recomputed() {
    let env = Env::new();
    let repo = env.cache.add("org/chat", &presets::hf_chat());
    let tmp = tempfile::tempdir().unwrap();
    let c = cache_in(&tmp);
    let t = target(&env, "org/chat");
    let commit = repo.main_commit().unwrap();
    let real = probe_with(&t, Some(&c)).parameters;
    assert_ne!(real, Some(MARK));

    // mtime of one blob (through its snapshot link).
    mark_entry(&c, &t, MARK);
    let blob = repo.blob_of(&commit, "README.md");
    fs::File::options()
        .write(true)
        .open(&blob)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();
    assert_eq!(probe_with(&t, Some(&c)).parameters, real, "mtime change");

    // size of config.json's blob: the new value is seen.
    mark_entry(&c, &t, MARK);
    let cfg_blob = repo.blob_of(&commit, "config.json");
    let mut cfg: Value = serde_json::from_slice(&fs::read(&cfg_blob).unwrap()).unwrap();
    cfg["max_position_embeddings"] = 12_345.into();
    fs::write(&cfg_blob, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let p = probe_with(&t, Some(&c));
    assert_eq!(p.parameters, real);
    assert_eq!(p.context_length, Some(12_345));

    // A blob replaced by another file of the same size (new inode).
    mark_entry(&c, &t, MARK);
    let w = repo.blob_of(&commit, "model.safetensors");
    let mut bytes = fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    let tmpfile = w.with_extension("new");
    fs::write(&tmpfile, &bytes).unwrap();
    fs::rename(&tmpfile, &w).unwrap();
    assert_eq!(probe_with(&t, Some(&c)).parameters, real, "replaced blob");

    // A file added to the snapshot.
    mark_entry(&c, &t, MARK);
    fs::write(repo.snapshot_dir(&commit).join("extra.txt"), b"x").unwrap();
    let p = probe_with(&t, Some(&c));
    assert_eq!(p.parameters, real, "new file");
    assert!(p.files.iter().any(|f| f.path == "extra.txt"));

    // An `.incomplete` blob appears (blobs/ changes): now a partial download.
    mark_entry(&c, &t, MARK);
    repo.add_incomplete("deadbeef", b"part");
    let p = probe_with(&t, Some(&c));
    assert!(!p.health.healthy);
    assert_eq!(p.health.problems[0].code, "partial_download");
}

#[test]
fn corrupt_or_foreign_entries_are_ignored_and_replaced() {
    let env = Env::new();
    env.cache.add("org/gguf", &presets::gguf_chat());
    let tmp = tempfile::tempdir().unwrap();
    let c = cache_in(&tmp);
    let t = target(&env, "org/gguf");
    let good = view(&probe_with(&t, Some(&c)));
    let path = c.entry_path(&t);
    for junk in [
        b"".to_vec(),
        b"{not json".to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        br#"{"build":1}"#.to_vec(),
    ] {
        fs::write(&path, &junk).unwrap();
        assert_eq!(view(&probe_with(&t, Some(&c))), good);
        // Rewritten with a valid entry.
        assert!(serde_json::from_slice::<Value>(&fs::read(&path).unwrap()).is_ok());
    }
    // An entry from another build (version stamp) is not used.
    let mut e: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    e["build"] = "0:0.0.0:other".into();
    e["probe"]["parameters"] = MARK.into();
    fs::write(&path, serde_json::to_vec(&e).unwrap()).unwrap();
    assert_ne!(probe_with(&t, Some(&c)).parameters, Some(MARK));
    // An unknown problem code (a newer build's) is not trusted either.
    let mut e: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    e["probe"]["health"]["problems"] =
        serde_json::json!([{"code": "from_the_future", "message": "x"}]);
    e["probe"]["parameters"] = MARK.into();
    fs::write(&path, serde_json::to_vec(&e).unwrap()).unwrap();
    assert_ne!(probe_with(&t, Some(&c)).parameters, Some(MARK));
    // A directory or a fifo where the entry should be.
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    assert_eq!(view(&probe_with(&t, Some(&c))), good);
}

#[test]
fn results_of_files_changed_just_now_are_not_stored() {
    let env = Env::new();
    env.cache.add("org/chat", &presets::hf_chat());
    let tmp = tempfile::tempdir().unwrap();
    // The default 2 s window: the fixture was written a moment ago.
    let c = ProbeCache::at(tmp.path().join("probe"));
    let t = target(&env, "org/chat");
    let p = probe_with(&t, Some(&c));
    assert!(p.health.healthy);
    assert!(!c.entry_path(&t).exists(), "racy result not stored");
}

#[test]
fn an_interrupted_pull_marker_is_part_of_an_unhealthy_key() {
    let env = Env::new();
    let repo = env.cache.add("org/chat", &presets::hf_chat());
    let commit = repo.main_commit().unwrap();
    repo.delete_blob(&commit, "tokenizer.json");
    let tmp = tempfile::tempdir().unwrap();
    let c = cache_in(&tmp);
    let t = target(&env, "org/chat");
    let before = probe_with(&t, Some(&c));
    assert!(!before.health.healthy);
    assert_ne!(before.health.problems[0].code, "partial_download");
    // A pull marker appears: the unhealthy result is recomputed and names it.
    let r = tanto_core::store::CacheRepo::from_dir(repo.dir.clone()).unwrap();
    r.write_pull_marker(&tanto_core::resolve::cache::PendingPull {
        repo_id: "org/chat".into(),
        revision: "main".into(),
        commit: commit.clone(),
        files: vec!["tokenizer.json".into()],
        include: vec![],
        exclude: vec![],
        incomplete_blobs: vec![],
    })
    .unwrap();
    let after = probe_with(&t, Some(&c));
    assert_eq!(after.health.problems[0].code, "partial_download");
}

#[test]
fn two_writers_and_readers_at_once_stay_correct() {
    let env = Env::new();
    for i in 0..8 {
        env.cache
            .add(&format!("org/m{i}"), &presets::healthy_presets()[i % 6].1);
    }
    let tmp = tempfile::tempdir().unwrap();
    let targets: Vec<ProbeTarget> = (0..8).map(|i| target(&env, &format!("org/m{i}"))).collect();
    let want: Vec<Value> = targets.iter().map(|t| view(&probe_uncached(t))).collect();
    // Two independent cache handles on one folder stand for two processes.
    let dir = tmp.path().join("probe");
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (targets, want, dir) = (&targets, &want, dir.clone());
            s.spawn(move || {
                let c = ProbeCache::at(dir).with_racy_window(Duration::ZERO);
                for round in 0..20 {
                    for (t, w) in targets.iter().zip(want) {
                        assert_eq!(&view(&probe_with(t, Some(&c))), w, "round {round}");
                    }
                }
            });
        }
    });
    // No temporary files left behind.
    let left: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn cached_probes_of_every_preset_and_broken_case_match_fresh_ones() {
    let env = Env::new();
    presets::standard_cache(&env.cache);
    let tmp = tempfile::tempdir().unwrap();
    let c = cache_in(&tmp);
    for r in env.stores().all_models() {
        let t = ProbeTarget::from(&r);
        let fresh = view(&probe_uncached(&t));
        let _ = probe_with(&t, Some(&c));
        assert_eq!(view(&probe_with(&t, Some(&c))), fresh, "{}", r.name);
    }
}

/// The check that skips listing the folder still sees every change that the
/// listing would: files added to or removed from a subfolder (the model
/// folder's own times stay the same), regular files edited in place, and a
/// snapshot link pointed at another blob.
#[cfg(unix)]
#[test]
fn changes_below_subfolders_and_in_place_edits_are_seen_without_a_listing() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let c = cache_in(&tmp);
    let dir =
        tanto_testkit::workspace::write_folder(&env.ws_home().join("emb"), &presets::st_embedder());
    let t = ProbeTarget::from(&tanto_core::resolve::Resolved::from_folder(
        dir.clone(),
        "emb".into(),
    ));
    let real = probe_with(&t, Some(&c)).parameters;
    let root_stamp = || tanto_core::fs_walk::Stamp::path(&dir);
    let before = root_stamp();

    // A file appears in 1_Pooling/: only that subfolder's times change.
    mark_entry(&c, &t, MARK);
    assert_eq!(
        probe_with(&t, Some(&c)).parameters,
        Some(MARK),
        "a hit first"
    );
    fs::write(dir.join("1_Pooling/extra.json"), b"{}").unwrap();
    assert_eq!(root_stamp(), before, "the model folder itself is unchanged");
    let p = probe_with(&t, Some(&c));
    assert_eq!(p.parameters, real, "new file in a subfolder");
    assert!(p.files.iter().any(|f| f.path == "1_Pooling/extra.json"));

    // ... and is removed again.
    mark_entry(&c, &t, MARK);
    fs::remove_file(dir.join("1_Pooling/extra.json")).unwrap();
    let p = probe_with(&t, Some(&c));
    assert_eq!(p.parameters, real, "file removed from a subfolder");
    assert!(!p.files.iter().any(|f| f.path == "1_Pooling/extra.json"));

    // config.json edited in place, same size, an old mtime set back.
    mark_entry(&c, &t, MARK);
    let cfg_path = dir.join("config.json");
    let text = fs::read_to_string(&cfg_path).unwrap();
    let edited = text.replace(
        "\"max_position_embeddings\": 512",
        "\"max_position_embeddings\": 256",
    );
    assert_eq!(edited.len(), text.len());
    let mtime = fs::metadata(&cfg_path).unwrap().modified().unwrap();
    fs::write(&cfg_path, &edited).unwrap();
    fs::File::options()
        .write(true)
        .open(&cfg_path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let p = probe_with(&t, Some(&c));
    assert_eq!(
        p.context_length,
        Some(256),
        "edited in place (ctime changed)"
    );

    // A hub snapshot link retargeted at another blob.
    let repo = env.cache.add("org/chat", &presets::hf_chat());
    let ct = target(&env, "org/chat");
    let commit = repo.main_commit().unwrap();
    let real = probe_with(&ct, Some(&c)).parameters;
    mark_entry(&c, &ct, MARK);
    let link = repo.snapshot_dir(&commit).join("config.json");
    let blob = repo.blob_of(&commit, "config.json");
    let mut cfg: Value = serde_json::from_slice(&fs::read(&blob).unwrap()).unwrap();
    cfg["max_position_embeddings"] = 4_321.into();
    let other = blob.with_file_name("0123456789abcdef");
    fs::write(&other, serde_json::to_vec(&cfg).unwrap()).unwrap();
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&other, &link).unwrap();
    let p = probe_with(&ct, Some(&c));
    assert_eq!(p.parameters, real);
    assert_eq!(p.context_length, Some(4_321), "retargeted link");
}
