//! The hub cache's layout, read *and* written, in one place: huggingface_hub's
//! `models--org--name/{blobs,refs,snapshots,trees}`, `CACHEDIR.TAG` and
//! `.locks/models--org--name/`. Reading the tree is
//! [`CacheRepo`](super::store::CacheRepo) in `store.rs`; this file holds every
//! write (blob files and their `.incomplete` downloads, snapshot links, refs, the
//! huggingface_hub extras), the deletions (a revision with the blobs only it
//! uses, a whole repo) and the interrupted-pull marker ([`PendingPull`]), so the
//! puller (tanto-hub), `tanto rm` and the probe share one contract with
//! huggingface_hub.
//!
//! SECURITY: the cache may be shared with other users, so no write here follows
//! a link someone else planted inside the repo folder (or its lock folder):
//! - folders below the repo folder are created one component at a time and
//!   refused when one is a symlink or a file ([`CacheError::Unsafe`]); the repo
//!   folder itself may be a link (a repo moved to another disk);
//! - `.incomplete` files are opened `O_NOFOLLOW | O_NONBLOCK` and must be plain
//!   files with one link (a planted symlink, fifo or hard link is refused);
//! - every other file is written to a fresh `O_EXCL` temporary name and renamed
//!   into place (a link standing at the final name is replaced, never followed);
//! - a complete blob counts only as a plain file: a link in its place is not
//!   trusted and the download replaces it;
//! - names (commits, files, refs, blobs) must be plain relative paths, and every
//!   deletion checks that its path resolves inside the repo folder.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::naming::repo_to_cache_dir;
use super::store::CacheRepo;
use crate::fs_walk::fs_walk;
use crate::pycompat::python_json;

/// Name of the pending-pull marker inside `.locks/models--org--name/`.
pub const PENDING_MARKER: &str = "tanto-pull.json";

/// What huggingface_hub writes into `<cache>/CACHEDIR.TAG` (bford.info/cachedir).
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by huggingface_hub.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/\n";

/// One file of huggingface_hub's tree listing (`trees/<commit>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeEntry {
    pub size: u64,
    /// The git blob id.
    pub blob_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lfs_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lfs_size: Option<u64>,
}

#[derive(Serialize)]
struct TreeListing {
    format_version: u32,
    files: BTreeMap<String, TreeEntry>,
}

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
    /// Something planted stands in the way of a write (a symlink where a folder
    /// or a partial download belongs, a fifo, a hard link): writing would land
    /// outside the cache.
    #[error("refusing to write through {}: {reason}", path.display())]
    Unsafe { path: PathBuf, reason: String },
}

impl CacheError {
    fn io(path: &Path, source: io::Error) -> Self {
        CacheError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    fn unsafe_path(path: &Path, reason: &str) -> Self {
        CacheError::Unsafe {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
    /// The underlying I/O error kind (`Outside` reads as permission denied).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            CacheError::Io { source, .. } => source.kind(),
            CacheError::Outside { .. } | CacheError::Unsafe { .. } => {
                io::ErrorKind::PermissionDenied
            }
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

/// One file name (a single plain component: a blob or commit name).
fn plain_name(name: &str) -> bool {
    plain_relative(name) && !name.contains('/')
}

/// A number unique within this process, for temporary names.
fn next_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Write `bytes` to `path` through a temporary file unique to this process and
/// call, then a rename (two pulls of the same repo may write the same file at
/// once). The temporary file is created with `O_EXCL`, so a link planted under
/// its name is never followed; the rename replaces a link at `path` itself.
pub fn write_unique_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_unique_atomic_mode(path, bytes, None)
}

/// [`write_unique_atomic`], the file given exactly `mode` before it appears.
fn write_unique_atomic_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    let n = next_seq();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let res = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            set_mode(&f, mode)
        })
        .and_then(|_| fs::rename(&tmp, path));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(unix)]
fn set_mode(f: &File, mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match mode {
        Some(m) => f.set_permissions(fs::Permissions::from_mode(m)),
        None => Ok(()),
    }
}

#[cfg(not(unix))]
fn set_mode(_f: &File, _mode: Option<u32>) -> io::Result<()> {
    Ok(())
}

/// `base/rel` as a real folder, created one component at a time. A component
/// that is a symlink (or not a folder) is refused: writing through it would land
/// outside the cache. `base` itself may be a link (a repo folder moved to another
/// disk); only what is below it is checked.
fn ensure_dir_in(base: &Path, rel: &Path) -> Result<PathBuf, CacheError> {
    let mut cur = base.to_path_buf();
    for comp in rel.components() {
        let Component::Normal(name) = comp else {
            return Err(CacheError::unsafe_path(
                &base.join(rel),
                "the path leaves its folder",
            ));
        };
        cur.push(name);
        let mut created = false;
        loop {
            match fs::symlink_metadata(&cur) {
                Ok(md) if md.is_dir() => break,
                Ok(md) => {
                    return Err(CacheError::unsafe_path(
                        &cur,
                        if md.file_type().is_symlink() {
                            "a symbolic link stands where a folder belongs"
                        } else {
                            "a file stands where a folder belongs"
                        },
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && !created => {
                    created = true;
                    match fs::create_dir(&cur) {
                        Ok(()) => break,
                        // Someone else made it meanwhile: look at what it is.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(CacheError::io(&cur, e)),
                    }
                }
                Err(e) => return Err(CacheError::io(&cur, e)),
            }
        }
    }
    Ok(cur)
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
    /// The repo `repo_id` in the hub cache `cache_dir` (`models--org--name`),
    /// present or not; nothing is created.
    pub fn in_cache(cache_dir: &Path, repo_id: &str) -> CacheRepo {
        CacheRepo {
            repo_id: repo_id.to_string(),
            dir: cache_dir.join(repo_to_cache_dir(repo_id)),
        }
    }

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

    /// Write the marker (pretty JSON) into the lock folder, creating it (no
    /// planted link followed).
    pub fn write_pull_marker(&self, p: &PendingPull) -> Result<(), CacheError> {
        let path = self.ensure_locks_dir()?.join(PENDING_MARKER);
        let bytes = serde_json::to_vec_pretty(p).unwrap_or_default();
        write_unique_atomic(&path, &bytes).map_err(|e| CacheError::io(&path, e))
    }

    /// Remove the marker (a finished pull). Missing is fine.
    pub fn clear_pull_marker(&self) {
        if let Some(p) = self.pull_marker_path() {
            let _ = fs::remove_file(p);
        }
    }

    /// `<cache>/.locks/models--org--name` as a real folder: the `.locks` root is
    /// created as needed, the repo's folder below it checked like any other.
    fn ensure_locks_dir(&self) -> Result<PathBuf, CacheError> {
        let outside = || CacheError::Outside {
            path: self.dir.clone(),
            root: self.dir.clone(),
        };
        let cache = self.dir.parent().ok_or_else(outside)?;
        let name = self.dir.file_name().ok_or_else(outside)?;
        let root = cache.join(".locks");
        fs::create_dir_all(&root).map_err(|e| CacheError::io(&root, e))?;
        ensure_dir_in(&root, Path::new(name))
    }

    /// `rel` below the repo folder as a real folder (see [`ensure_dir_in`]); the
    /// repo folder itself is created when missing.
    fn ensure_repo_dir(&self, rel: &Path) -> Result<PathBuf, CacheError> {
        if !self.dir.is_dir() {
            fs::create_dir_all(&self.dir).map_err(|e| CacheError::io(&self.dir, e))?;
        }
        ensure_dir_in(&self.dir, rel)
    }

    /// Create what a pull of `commit` writes into: `blobs/`,
    /// `snapshots/<commit>/` and the lock folder, refusing planted links.
    pub fn create_pull_dirs(&self, commit: &str) -> Result<(), CacheError> {
        if !plain_name(commit) {
            return Err(CacheError::Outside {
                path: self.snapshot_dir(commit),
                root: self.dir.clone(),
            });
        }
        self.ensure_repo_dir(Path::new("blobs"))?;
        self.ensure_repo_dir(&Path::new("snapshots").join(commit))?;
        self.ensure_locks_dir()?;
        Ok(())
    }

    /// `snapshots/<commit>`.
    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    /// `blobs/<blob>`.
    pub fn blob_path(&self, blob: &str) -> PathBuf {
        self.dir.join("blobs").join(blob)
    }

    /// `blobs/<blob>.incomplete`, the download in progress.
    pub fn partial_path(&self, blob: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{blob}.incomplete"))
    }

    /// `.locks/models--org--name/<blob>.lock`, the per-blob lock shared with
    /// huggingface_hub (`None` for a repo folder without a parent).
    pub fn blob_lock_path(&self, blob: &str) -> Option<PathBuf> {
        Some(self.locks_dir()?.join(format!("{blob}.lock")))
    }

    /// The complete blob is in the cache: a plain file. A link planted in its
    /// place does not count (the download replaces it).
    pub fn has_blob(&self, blob: &str) -> bool {
        plain_name(blob) && fs::symlink_metadata(self.blob_path(blob)).is_ok_and(|m| m.is_file())
    }

    /// Size of the complete blob (0 when absent).
    pub fn blob_len(&self, blob: &str) -> u64 {
        fs::metadata(self.blob_path(blob))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Open (creating) `blobs/<blob>.incomplete` for appending and reading back.
    /// Refused when it is a symlink, not a plain file, or a hard link to another
    /// name: appending would write into a file outside the cache.
    pub fn open_partial(&self, blob: &str) -> Result<File, CacheError> {
        let path = self.partial_path(blob);
        if !plain_name(blob) {
            return Err(CacheError::Outside {
                path,
                root: self.dir.clone(),
            });
        }
        self.ensure_repo_dir(Path::new("blobs"))?;
        let mut oo = OpenOptions::new();
        oo.create(true).read(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // O_NONBLOCK: a planted fifo must not hang the open; plain files ignore it.
            oo.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        }
        let file = oo.open(&path).map_err(|e| {
            #[cfg(unix)]
            if e.raw_os_error() == Some(libc::ELOOP) {
                return CacheError::unsafe_path(&path, "it is a symbolic link");
            }
            CacheError::io(&path, e)
        })?;
        let md = file.metadata().map_err(|e| CacheError::io(&path, e))?;
        if !md.is_file() {
            return Err(CacheError::unsafe_path(&path, "it is not a regular file"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if md.nlink() > 1 {
                return Err(CacheError::unsafe_path(
                    &path,
                    "it is a hard link to another file",
                ));
            }
        }
        Ok(file)
    }

    /// Drop the partial download of `blob` (after a hash or size mismatch).
    pub fn discard_partial(&self, blob: &str) {
        if plain_name(blob) {
            let _ = fs::remove_file(self.partial_path(blob));
        }
    }

    /// Remove a complete blob that turned out wrong (e.g. truncated: its size
    /// differs from the hub's), so the next download replaces it. Only a plain
    /// file directly in `blobs/` is removed.
    pub fn discard_blob(&self, blob: &str) -> Result<(), CacheError> {
        if self.has_blob(blob) {
            let path = self.blob_path(blob);
            fs::remove_file(&path).map_err(|e| CacheError::io(&path, e))?;
        }
        Ok(())
    }

    /// Move the verified `.incomplete` file into place as `blobs/<blob>` (a link
    /// planted at that name is replaced, not followed).
    pub fn commit_blob(&self, blob: &str) -> Result<(), CacheError> {
        let dest = self.blob_path(blob);
        if !plain_name(blob) {
            return Err(CacheError::Outside {
                path: dest,
                root: self.dir.clone(),
            });
        }
        fs::rename(self.partial_path(blob), &dest).map_err(|e| CacheError::io(&dest, e))
    }

    /// Point `snapshots/<commit>/<file>` at `../../blobs/<blob>` (one `../` more per
    /// folder level of `file`), atomically, as huggingface_hub does, replacing
    /// whatever pointer was there. The folders on the way must be real folders.
    pub fn link_blob(&self, commit: &str, file: &str, blob: &str) -> Result<(), CacheError> {
        let pointer = self.snapshot_dir(commit).join(file);
        if !plain_name(commit) || !plain_relative(file) || !plain_name(blob) {
            return Err(CacheError::Outside {
                path: pointer,
                root: self.dir.clone(),
            });
        }
        let rel = Path::new("snapshots").join(commit).join(file);
        self.ensure_repo_dir(rel.parent().unwrap_or(Path::new("snapshots")))?;
        let depth = file.split('/').count();
        let target = format!("{}blobs/{}", "../".repeat(depth + 1), blob);
        if fs::read_link(&pointer).ok().as_deref() == Some(Path::new(&target)) {
            return Ok(());
        }
        let mut tmp = pointer.as_os_str().to_owned();
        tmp.push(format!(".tanto-link-{}-{}", std::process::id(), next_seq()));
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
        fs::rename(&tmp, &pointer).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            CacheError::io(&pointer, e)
        })
    }

    /// `refs/<name>` holding `commit` (no newline), unless it already does.
    /// Nested names (`pr/1`) allowed; the folders on the way must be real folders.
    pub fn write_ref(&self, name: &str, commit: &str) -> Result<(), CacheError> {
        let path = self.dir.join("refs").join(name);
        if !plain_relative(name) {
            return Err(CacheError::Outside {
                path,
                root: self.dir.clone(),
            });
        }
        let rel = Path::new("refs").join(name);
        self.ensure_repo_dir(rel.parent().unwrap_or(Path::new("refs")))?;
        if crate::limits::read_capped_string(&path, crate::limits::REF_MAX)
            .ok()
            .as_deref()
            == Some(commit)
        {
            return Ok(());
        }
        write_unique_atomic(&path, commit.as_bytes()).map_err(|e| CacheError::io(&path, e))
    }

    /// Best effort: `<cache>/CACHEDIR.TAG` as huggingface_hub writes it, when absent.
    pub fn write_cachedir_tag(&self) {
        let Some(cache) = self.dir.parent() else {
            return;
        };
        let tag = cache.join("CACHEDIR.TAG");
        if fs::symlink_metadata(&tag).is_err() {
            let _ = write_unique_atomic(&tag, CACHEDIR_TAG.as_bytes());
        }
    }

    /// Best effort: huggingface_hub's tree listing of `commit`
    /// (`trees/<commit>.json`, format 1, mode 0600), when absent.
    pub fn write_tree_listing(&self, commit: &str, files: BTreeMap<String, TreeEntry>) {
        if !plain_name(commit) {
            return;
        }
        let path = self.dir.join("trees").join(format!("{commit}.json"));
        if fs::symlink_metadata(&path).is_ok() {
            return;
        }
        let data = python_json(
            &TreeListing {
                format_version: 1,
                files,
            },
            1,
        );
        if self.ensure_repo_dir(Path::new("trees")).is_ok() {
            let _ = write_unique_atomic_mode(&path, &data, Some(0o600));
        }
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
    CacheRepo::in_cache(cache_dir, repo_id).pending_pull()
}
