//! The hub cache's layout, read *and* written, in one place: huggingface_hub's
//! `models--org--name/{blobs,refs,snapshots}` plus `.locks/models--org--name/`.
//! Reading the tree is [`CacheRepo`](super::store::CacheRepo) in `store.rs`;
//! this file holds the writes (snapshot links, refs), the deletions (a
//! revision with the blobs only it uses, a whole repo) and the interrupted-pull
//! marker ([`PendingPull`]), so the puller, `tanto rm` and the probe share one
//! contract with huggingface_hub.
//!
//! Every write and deletion checks that its path resolves inside the repo
//! folder (or the repo's lock folder): a symlinked `refs/` entry or a crafted
//! file name never reaches outside the cache.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::naming::repo_to_cache_dir;
use super::store::CacheRepo;
use crate::fs_walk::fs_walk;

/// Name of the pending-pull marker inside `.locks/models--org--name/`.
pub const PENDING_MARKER: &str = "tanto-pull.json";

/// A cache write or deletion that failed, with the path it was about.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The path would leave the repo folder (`..`, absolute, or through a symlink).
    #[error("refusing to touch {}: not inside {}", path.display(), root.display())]
    Outside { path: PathBuf, root: PathBuf },
}

impl CacheError {
    fn io(path: &Path, source: io::Error) -> Self {
        CacheError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    /// The underlying I/O error kind (`Outside` reads as permission denied).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            CacheError::Io { source, .. } => source.kind(),
            CacheError::Outside { .. } => io::ErrorKind::PermissionDenied,
        }
    }
}

/// A pull that started and did not finish. `tanto pull` writes it before the
/// first download and removes it when the pull completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPull {
    pub repo_id: String,
    #[serde(default = "main_revision")]
    pub revision: String,
    #[serde(default)]
    pub commit: String,
    /// Files the pull meant to fetch.
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `blobs/*.incomplete` present now.
    #[serde(skip)]
    pub incomplete_blobs: Vec<PathBuf>,
}

fn main_revision() -> String {
    "main".into()
}

impl PendingPull {
    /// The command that resumes it, e.g. `tanto pull org/name --revision v1 --include '*.json'`.
    pub fn resume_command(&self) -> String {
        let mut cmd = format!("tanto pull {}", self.repo_id);
        if self.revision != "main" {
            cmd.push_str(&format!(" --revision {}", shell_quote(&self.revision)));
        }
        for p in &self.include {
            cmd.push_str(&format!(" --include {}", shell_quote(p)));
        }
        for p in &self.exclude {
            cmd.push_str(&format!(" --exclude {}", shell_quote(p)));
        }
        cmd
    }
}

/// POSIX-shell quoting: plain words as they are, anything else in single quotes.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./@:".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A relative path of plain components (no `..`, no root, not empty).
fn plain_relative(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Write `bytes` to `path` through a unique temporary file and a rename.
pub fn write_unique_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let res = fs::write(&tmp, bytes).and_then(|_| fs::rename(&tmp, path));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(unix)]
fn make_symlink(target: &str, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn make_symlink(_target: &str, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are required for the hub cache",
    ))
}

/// Is `p` strictly inside `root` once both are canonical?
pub fn is_within(p: &Path, root: &Path) -> bool {
    match (fs::canonicalize(p), fs::canonicalize(root)) {
        (Ok(a), Ok(b)) => a.starts_with(&b) && a != b,
        _ => false,
    }
}

/// What [`CacheRepo::remove_revision`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemovedRevision {
    /// Blob files freed (used by no other snapshot).
    pub blobs: usize,
    /// Ref names that pointed at the revision (`main`, `pr/1`, …).
    pub refs: Vec<String>,
}

/// Blob files a snapshot's symlinks point to (canonical paths).
fn blobs_of(snapshot: &Path) -> BTreeSet<PathBuf> {
    fs_walk(snapshot)
        .filter(|e| e.is_symlink)
        .filter_map(|e| fs::canonicalize(&e.path).ok())
        .collect()
}

impl CacheRepo {
    /// `<cache>/.locks/models--org--name` (the cache is the repo folder's parent).
    pub fn locks_dir(&self) -> Option<PathBuf> {
        let cache = self.dir.parent()?;
        Some(cache.join(".locks").join(self.dir.file_name()?))
    }

    /// Where the interrupted-pull marker lives.
    pub fn pull_marker_path(&self) -> Option<PathBuf> {
        Some(self.locks_dir()?.join(PENDING_MARKER))
    }

    /// The interrupted-pull marker alone (one read; no blob listing).
    /// The repo id is the folder's, whatever the marker says.
    pub fn pull_marker(&self) -> Option<PendingPull> {
        let bytes =
            crate::limits::read_capped(&self.pull_marker_path()?, crate::limits::JSON_MAX).ok()?;
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        if let Some(o) = v.as_object_mut() {
            o.insert("repo_id".into(), self.repo_id.clone().into());
        }
        serde_json::from_value(v).ok()
    }

    /// The interrupted pull, if any: the marker with the `.incomplete` blobs
    /// present now, or (no marker) a `main` pull when such blobs exist.
    pub fn pending_pull(&self) -> Option<PendingPull> {
        let incomplete = self.incomplete_blobs();
        match self.pull_marker() {
            Some(mut p) => {
                p.incomplete_blobs = incomplete;
                Some(p)
            }
            None if !incomplete.is_empty() => Some(PendingPull {
                repo_id: self.repo_id.clone(),
                revision: main_revision(),
                commit: String::new(),
                files: Vec::new(),
                include: Vec::new(),
                exclude: Vec::new(),
                incomplete_blobs: incomplete,
            }),
            None => None,
        }
    }

    /// Write the marker (pretty JSON) into the lock folder, creating it.
    pub fn write_pull_marker(&self, p: &PendingPull) -> Result<(), CacheError> {
        let path = self.pull_marker_path().ok_or_else(|| CacheError::Outside {
            path: self.dir.clone(),
            root: self.dir.clone(),
        })?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| CacheError::io(parent, e))?;
        }
        let bytes = serde_json::to_vec_pretty(p).unwrap_or_default();
        write_unique_atomic(&path, &bytes).map_err(|e| CacheError::io(&path, e))
    }

    /// Remove the marker (a finished pull). Missing is fine.
    pub fn clear_pull_marker(&self) {
        if let Some(p) = self.pull_marker_path() {
            let _ = fs::remove_file(p);
        }
    }

    /// Point `snapshots/<commit>/<file>` at `../../blobs/<blob>` (one `../` more per
    /// folder level of `file`), atomically, as huggingface_hub does.
    pub fn link_blob(&self, commit: &str, file: &str, blob: &str) -> Result<(), CacheError> {
        let snapshot = self.dir.join("snapshots").join(commit);
        let pointer = snapshot.join(file);
        if !plain_relative(commit) || !plain_relative(file) || !plain_relative(blob) {
            return Err(CacheError::Outside {
                path: pointer,
                root: self.dir.clone(),
            });
        }
        let depth = file.split('/').count();
        let target = format!("{}blobs/{}", "../".repeat(depth + 1), blob);
        if fs::read_link(&pointer).ok().as_deref() == Some(Path::new(&target)) {
            return Ok(());
        }
        if let Some(parent) = pointer.parent() {
            fs::create_dir_all(parent).map_err(|e| CacheError::io(parent, e))?;
        }
        let mut tmp = pointer.as_os_str().to_owned();
        tmp.push(format!(".tanto-link-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = fs::remove_file(&tmp);
        make_symlink(&target, &tmp).map_err(|e| CacheError::io(&tmp, e))?;
        if pointer.is_dir() && !pointer.is_symlink() {
            let _ = fs::remove_file(&tmp);
            return Err(CacheError::io(
                &pointer,
                io::Error::new(io::ErrorKind::AlreadyExists, "a directory is in the way"),
            ));
        }
        fs::rename(&tmp, &pointer).map_err(|e| CacheError::io(&pointer, e))
    }

    /// `refs/<name>` ← `commit`, unless it already says so. Nested names (`pr/1`) allowed.
    pub fn write_ref(&self, name: &str, commit: &str) -> Result<(), CacheError> {
        let path = self.dir.join("refs").join(name);
        if !plain_relative(name) {
            return Err(CacheError::Outside {
                path,
                root: self.dir.clone(),
            });
        }
        if crate::limits::read_capped_string(&path, crate::limits::REF_MAX)
            .ok()
            .as_deref()
            == Some(commit)
        {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| CacheError::io(parent, e))?;
        }
        write_unique_atomic(&path, commit.as_bytes()).map_err(|e| CacheError::io(&path, e))
    }

    /// Remove one snapshot, the refs pointing at it, and the blobs no other
    /// snapshot uses. Only paths inside this repo folder are deleted.
    pub fn remove_revision(&self, commit: &str) -> Result<RemovedRevision, CacheError> {
        let target = self.dir.join("snapshots").join(commit);
        if !plain_relative(commit) || !is_within(&target, &self.dir) {
            return Err(CacheError::Outside {
                path: target,
                root: self.dir.clone(),
            });
        }
        let mine = blobs_of(&target);
        let mut others = BTreeSet::new();
        for s in self.snapshots().iter().filter(|s| s.commit != commit) {
            others.extend(blobs_of(&s.path));
        }
        let blobs_dir = fs::canonicalize(self.dir.join("blobs")).ok();
        fs::remove_dir_all(&target).map_err(|e| CacheError::io(&target, e))?;
        let mut out = RemovedRevision::default();
        for b in mine.difference(&others) {
            // Only ever delete inside this repo's blobs/ folder.
            if blobs_dir.as_ref().is_some_and(|bd| b.starts_with(bd)) {
                fs::remove_file(b).map_err(|e| CacheError::io(b, e))?;
                out.blobs += 1;
            }
        }
        for (name, c) in self.refs() {
            if c == commit {
                let path = self.dir.join("refs").join(&name);
                // A refs/ entry that is (or passes through) a symlink out of the repo stays.
                if !is_within(&path, &self.dir) {
                    continue;
                }
                fs::remove_file(&path).map_err(|e| CacheError::io(&path, e))?;
                out.refs.push(name);
            }
        }
        Ok(out)
    }

    /// Remove the whole repo folder (it must lie inside `cache`) and its lock
    /// folder. Returns the lock files that were cleaned.
    pub fn remove_repo(&self, cache: &Path) -> Result<Vec<PathBuf>, CacheError> {
        if !is_within(&self.dir, cache) {
            return Err(CacheError::Outside {
                path: self.dir.clone(),
                root: cache.to_path_buf(),
            });
        }
        let locks = self.lock_files(cache);
        fs::remove_dir_all(&self.dir).map_err(|e| CacheError::io(&self.dir, e))?;
        let mut cleaned = Vec::new();
        if let Some(n) = self.dir.file_name() {
            let ld = cache.join(".locks").join(n);
            if ld.is_dir() && is_within(&ld, cache) && fs::remove_dir_all(&ld).is_ok() {
                cleaned = locks;
            }
        }
        Ok(cleaned)
    }
}

/// The interrupted pull of `repo_id` in `cache_dir`, if any (see [`CacheRepo::pending_pull`]).
pub fn pending_pull(cache_dir: &Path, repo_id: &str) -> Option<PendingPull> {
    CacheRepo {
        repo_id: repo_id.to_string(),
        dir: cache_dir.join(repo_to_cache_dir(repo_id)),
    }
    .pending_pull()
}
