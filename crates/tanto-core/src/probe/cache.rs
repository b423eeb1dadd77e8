//! The probe cache: the probe's own result, stored with the key it was
//! computed under, so `list` over a thousand models reads one small file per
//! model instead of every config, tokenizer config and weight header.
//!
//! The probe stays the single authority: an entry is the serialized
//! [`Probe`] (plus its file listing and config.json), and it is used only
//! while everything the probe read is unchanged:
//!
//! - the build ([`ProbeCache::build`]: a format version, the crate version and
//!   the running executable's size and mtime, so a new tanto build starts over);
//! - the target (name, folder, lone file, cache repo);
//! - the model folder's identity and times, and the file listing itself: every
//!   path, size, and for each entry (after following links into `blobs/`) the
//!   device, inode, mtime and ctime (a replaced blob has a new inode, an edit
//!   a new ctime);
//! - for cache repos the `blobs/` folder (an `.incomplete` blob changes it)
//!   and, for unhealthy results, the interrupted-pull marker.
//!
//! [`ProbeCache::lookup_unlisted`] checks an entry without listing the
//! folder: a name is added, removed, renamed or replaced only through its
//! folder, which changes that folder's times, so while the model folder and
//! every subfolder of the listing keep their stamps the listing is the same,
//! and a stat of each listed path (links followed) checks the rest.
//!
//! Entries whose files changed less than [`RACY_WINDOW`] before the probe are
//! not stored: file times have coarse granularity, so a second write in the
//! same tick could otherwise go unnoticed (git's "racy" index entries).
//!
//! Where: `$TANTO_CACHE_DIR/probe`, else `$XDG_CACHE_HOME/tanto/probe`, else
//! `~/.cache/tanto/probe`; `TANTO_PROBE_CACHE=0` turns it off. One file per
//! target, written to a temporary name and renamed, so two tanto processes
//! never see a half-written entry; an unreadable, corrupt or foreign entry is
//! ignored and overwritten.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{FileEntry, Probe, ProbeTarget};
use crate::limits;
use crate::resolve::cache::write_unique_atomic;

/// Bump when the entry format or the meaning of a probe field changes.
pub const FORMAT: u32 = 4;
/// Largest entry read back (a config.json is at most [`limits::JSON_MAX`]).
pub const ENTRY_MAX: u64 = 2 * limits::JSON_MAX;
/// Files changed this recently are not trusted to show their next change.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

pub use crate::fs_walk::Stamp;
use crate::fs_walk::{DirStat, Meta};

/// What a probe is of (the entry's file name is a hash of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TargetKey {
    name: String,
    dir: Option<PathBuf>,
    file: Option<PathBuf>,
    repo: Option<(String, PathBuf)>,
}

/// The key of one probe, minus the file listing (compared on its own).
#[derive(Debug, Clone)]
pub struct Key {
    target: TargetKey,
    dir: Stamp,
    /// The stamps of the listing's subfolders.
    subdirs: Vec<(String, Stamp)>,
    blobs: Option<Stamp>,
    /// Where the target's interrupted-pull marker would be.
    marker_path: Option<PathBuf>,
    newest_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    build: String,
    target: TargetKey,
    dir: Stamp,
    #[serde(default)]
    subdirs: Vec<(String, Stamp)>,
    blobs: Option<Stamp>,
    /// The pull marker's stamp (None: absent), recorded for unhealthy probes.
    marker: Option<Stamp>,
    files: Vec<FileEntry>,
    config: Option<Value>,
    probe: Probe,
}

/// A probe cache folder.
#[derive(Debug)]
pub struct ProbeCache {
    dir: PathBuf,
    build: String,
    racy_window: Duration,
    created: AtomicBool,
}

fn non_empty_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// `$TANTO_CACHE_DIR`, else `$XDG_CACHE_HOME/tanto`, else `~/.cache/tanto`.
pub fn tanto_cache_dir() -> Option<PathBuf> {
    use crate::resolve::paths::{expand_tilde, home_dir};
    if let Some(d) = non_empty_env("TANTO_CACHE_DIR") {
        return Some(expand_tilde(&d));
    }
    if let Some(x) = non_empty_env("XDG_CACHE_HOME") {
        return Some(expand_tilde(&x).join("tanto"));
    }
    home_dir().map(|h| h.join(".cache").join("tanto"))
}

/// This build's stamp: entries from another build are never used.
fn build_stamp() -> &'static str {
    static B: OnceLock<String> = OnceLock::new();
    B.get_or_init(|| {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| fs::metadata(p).ok())
            .map(|m| {
                let s = Stamp::of(&m);
                format!("{}:{}", m.len(), s.mtime_ns)
            })
            .unwrap_or_default();
        format!("{FORMAT}:{}:{exe}", env!("CARGO_PKG_VERSION"))
    })
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl ProbeCache {
    /// A cache in `dir` (created on the first store).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        ProbeCache {
            dir: dir.into(),
            build: build_stamp().to_string(),
            racy_window: RACY_WINDOW,
            created: AtomicBool::new(false),
        }
    }

    /// Store even results whose files changed within `w` of the probe (tests).
    pub fn with_racy_window(mut self, w: Duration) -> Self {
        self.racy_window = w;
        self
    }

    /// The process-wide cache from the environment (see the module docs);
    /// None when `TANTO_PROBE_CACHE` is `0`/`off`/`false`/`no` or no home is known.
    pub fn default_cache() -> Option<&'static ProbeCache> {
        static C: OnceLock<Option<ProbeCache>> = OnceLock::new();
        C.get_or_init(|| {
            let off = non_empty_env("TANTO_PROBE_CACHE").is_some_and(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "0" | "off" | "false" | "no"
                )
            });
            if off {
                return None;
            }
            tanto_cache_dir().map(|d| ProbeCache::at(d.join("probe")))
        })
        .as_ref()
    }

    /// The folder entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The build stamp entries are checked against.
    pub fn build(&self) -> &str {
        &self.build
    }

    /// The entry file for a target.
    pub fn entry_path(&self, t: &ProbeTarget) -> PathBuf {
        self.entry_file(&target_key(t))
    }

    fn entry_file(&self, t: &TargetKey) -> PathBuf {
        let bytes = serde_json::to_vec(t).unwrap_or_default();
        let h = hex::encode(Sha256::digest(&bytes));
        self.dir.join(format!("{}.json", &h[..32]))
    }

    /// The key of a probe of `t` whose folder `root` has `dir` and listing `files`.
    pub fn key(&self, t: &ProbeTarget, root: &Path, dir: Stamp, files: &[FileEntry]) -> Key {
        let blobs = blobs_stamp(t);
        let subdirs = subdirs(root, files);
        let newest_ns = files
            .iter()
            .map(|f| f.stamp.newest_ns())
            .chain([dir.newest_ns()])
            .chain(subdirs.iter().map(|(_, s)| s.newest_ns()))
            .chain(blobs.map(|b| b.newest_ns()))
            .max()
            .unwrap_or(0);
        Key {
            target: target_key(t),
            dir,
            subdirs,
            blobs,
            marker_path: t.repo.as_ref().and_then(|r| r.pull_marker_path()),
            newest_ns,
        }
    }

    /// The stored entry for `t`, if it is this build's and of this target.
    fn entry(&self, target: &TargetKey) -> Option<Entry> {
        let bytes = limits::read_capped(&self.entry_file(target), ENTRY_MAX).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        (e.build == self.build && &e.target == target).then_some(e)
    }

    /// The entry's probe, when the pull marker agrees for unhealthy results.
    fn hit(e: Entry, marker_path: Option<&Path>) -> Option<Probe> {
        if !e.probe.health.healthy && marker_path.and_then(Stamp::path) != e.marker {
            return None;
        }
        let mut p = e.probe;
        p.files = e.files;
        p.config = e.config;
        Some(p)
    }

    /// The stored probe for `key`, if its entry matches in every part.
    pub fn lookup(&self, key: &Key, files: &[FileEntry]) -> Option<Probe> {
        let e = self.entry(&key.target)?;
        if e.dir != key.dir || e.subdirs != key.subdirs || e.blobs != key.blobs || e.files != files
        {
            return None;
        }
        Self::hit(e, key.marker_path.as_deref())
    }

    /// The stored probe of `t` (model folder `root`, stamped `dir`), checked
    /// without listing the folder (see the module docs): the folder and
    /// subfolder stamps, then one stat per listed path.
    pub fn lookup_unlisted(&self, t: &ProbeTarget, root: &Path, dir: Stamp) -> Option<Probe> {
        let e = self.entry(&target_key(t))?;
        if e.dir != dir {
            return None;
        }
        let blobs = blobs_stamp(t);
        if e.blobs != blobs {
            return None;
        }
        let at = DirStat::open(root);
        for (rel, stamp) in &e.subdirs {
            if at.stat(rel).map(|m| m.stamp) != Some(*stamp) {
                return None;
            }
        }
        if !e.files.iter().all(|f| unchanged(f, at.stat(&f.path))) {
            return None;
        }
        let marker = t.repo.as_ref().and_then(|r| r.pull_marker_path());
        Self::hit(e, marker.as_deref())
    }

    /// Store `p` under `key` (best effort; skipped for racy results).
    pub fn store(&self, key: Key, p: &Probe) {
        let racy_ns = self.racy_window.as_nanos().min(i64::MAX as u128) as i64;
        if key.newest_ns.saturating_add(racy_ns) > now_ns() {
            return;
        }
        let marker = if p.health.healthy {
            None
        } else {
            key.marker_path.as_deref().and_then(Stamp::path)
        };
        let path = self.entry_file(&key.target);
        let e = Entry {
            build: self.build.clone(),
            target: key.target,
            dir: key.dir,
            subdirs: key.subdirs,
            blobs: key.blobs,
            marker,
            files: p.files.clone(),
            config: p.config.clone(),
            probe: p.clone(),
        };
        let Ok(bytes) = serde_json::to_vec(&e) else {
            return;
        };
        if !self.created.load(Ordering::Relaxed) {
            if fs::create_dir_all(&self.dir).is_err() {
                return;
            }
            self.created.store(true, Ordering::Relaxed);
        }
        let _ = write_unique_atomic(&path, &bytes);
    }
}

/// Whether `f`, stat'ed now as `now`, is as it was listed.
fn unchanged(f: &FileEntry, now: Option<Meta>) -> bool {
    match now {
        None => f.dangling,
        Some(m) => {
            !f.dangling
                && !m.is_dir
                && m.stamp == f.stamp
                && (if m.is_file { m.len } else { 0 }) == f.size
                && (!m.is_file).then_some(m.type_name) == f.special
        }
    }
}

/// Every subfolder the listing has files in, with its stamp, sorted.
fn subdirs(root: &Path, files: &[FileEntry]) -> Vec<(String, Stamp)> {
    let mut names: Vec<&str> = Vec::new();
    for f in files {
        let mut rest = f.path.as_str();
        while let Some((parent, _)) = rest.rsplit_once('/') {
            names.push(parent);
            rest = parent;
        }
    }
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Vec::new();
    }
    let at = DirStat::open(root);
    names
        .into_iter()
        .map(|n| {
            (
                n.to_string(),
                at.stat(n).map(|m| m.stamp).unwrap_or_default(),
            )
        })
        .collect()
}

/// The stamp of a cache repo's `blobs/` folder (None: not a repo, or none).
fn blobs_stamp(t: &ProbeTarget) -> Option<Stamp> {
    t.repo
        .as_ref()
        .and_then(|r| Stamp::path(&r.dir.join("blobs")))
}

fn target_key(t: &ProbeTarget) -> TargetKey {
    TargetKey {
        name: t.name.clone(),
        dir: t.dir.clone(),
        file: t.file.clone(),
        repo: t.repo.as_ref().map(|r| (r.repo_id.clone(), r.dir.clone())),
    }
}
