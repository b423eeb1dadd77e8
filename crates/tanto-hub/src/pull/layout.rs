//! Every write `pull` makes to the hub cache, behind a few small functions on
//! [`RepoLayout`]: blob files (`blobs/<etag>`, `.incomplete` while downloading),
//! snapshot pointers (`snapshots/<commit>/<path>` → `../../blobs/<etag>`),
//! `refs/<name>`, the huggingface_hub extras (`CACHEDIR.TAG`, `trees/<commit>.json`)
//! and the pending-pull marker. The layout is the compatibility contract with
//! huggingface_hub; keeping its writes here lets them move to one owner later.
//!
//! The cache may be shared with other users, so no write here follows a link
//! someone else planted: folders inside the repo folder are created one component
//! at a time and refused when one is a symlink, partial files are opened with
//! `O_NOFOLLOW` and must be plain files with one link, and every other file is
//! written to a fresh (`O_EXCL`) temporary name and renamed into place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use tanto_core::naming::repo_to_cache_dir;

use super::api::Sibling;
use crate::HubError;

/// Name of the pending-pull marker inside `.locks/models--org--name/`.
const PENDING_MARKER: &str = "tanto-pull.json";

/// What huggingface_hub writes into `<cache>/CACHEDIR.TAG` (bford.info/cachedir).
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by huggingface_hub.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/\n";

/// A pull that started and did not finish (marker written by [`pull`](super::pull)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPull {
    pub repo_id: String,
    pub revision: String,
    pub commit: String,
    /// Files the pull meant to fetch.
    pub files: Vec<String>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `blobs/*.incomplete` present now.
    #[serde(skip)]
    pub incomplete_blobs: Vec<PathBuf>,
}

impl PendingPull {
    /// The command that resumes it, e.g. `tanto pull org/name --revision v1`.
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

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./@:".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The interrupted pull of `repo_id` in `cache_dir`, if any: a marker left by a
/// pull that did not finish, or `.incomplete` blobs (e.g. from another tool).
pub fn pending_pull(cache_dir: &Path, repo_id: &str) -> Option<PendingPull> {
    let folder = repo_to_cache_dir(repo_id);
    let incomplete: Vec<PathBuf> = fs::read_dir(cache_dir.join(&folder).join("blobs"))
        .map(|rd| {
            let mut v: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "incomplete"))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    let marker = cache_dir.join(".locks").join(&folder).join(PENDING_MARKER);
    let parsed = fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice::<PendingPull>(&b).ok());
    match parsed {
        Some(mut p) => {
            p.incomplete_blobs = incomplete;
            Some(p)
        }
        None if !incomplete.is_empty() => Some(PendingPull {
            repo_id: repo_id.to_string(),
            revision: "main".into(),
            commit: String::new(),
            files: Vec::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            incomplete_blobs: incomplete,
        }),
        None => None,
    }
}

/// One entry of huggingface_hub's tree cache (`trees/<commit>.json`, format 1).
#[derive(Debug, Serialize)]
struct TreeEntry {
    size: u64,
    blob_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lfs_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lfs_size: Option<u64>,
}

#[derive(Debug, Serialize)]
struct TreeCache {
    format_version: u32,
    files: std::collections::BTreeMap<String, TreeEntry>,
}

/// The cache paths of one repo at one commit, and the writes a pull makes there.
pub(super) struct RepoLayout {
    cache_dir: PathBuf,
    /// `<cache>/models--org--name`.
    pub repo_dir: PathBuf,
    /// `<repo_dir>/snapshots/<commit>`.
    pub snapshot_dir: PathBuf,
    /// `<cache>/.locks/models--org--name`.
    locks_dir: PathBuf,
    commit: String,
}

impl RepoLayout {
    /// The paths only; nothing is created.
    pub fn new(cache_dir: &Path, repo: &str, commit: &str) -> RepoLayout {
        let folder = repo_to_cache_dir(repo);
        let repo_dir = cache_dir.join(&folder);
        RepoLayout {
            cache_dir: cache_dir.to_path_buf(),
            snapshot_dir: repo_dir.join("snapshots").join(commit),
            repo_dir,
            locks_dir: cache_dir.join(".locks").join(&folder),
            commit: commit.to_string(),
        }
    }

    /// Create `blobs/`, `snapshots/<commit>/` and the locks folder.
    pub fn create_dirs(&self) -> Result<(), HubError> {
        fs::create_dir_all(&self.repo_dir).map_err(|e| HubError::io(&self.repo_dir, e))?;
        ensure_dir_in(&self.repo_dir, Path::new("blobs"))?;
        ensure_dir_in(
            &self.repo_dir,
            self.snapshot_dir
                .strip_prefix(&self.repo_dir)
                .unwrap_or(Path::new("snapshots")),
        )?;
        let locks_root = self.cache_dir.join(".locks");
        fs::create_dir_all(&locks_root).map_err(|e| HubError::io(&locks_root, e))?;
        ensure_dir_in(
            &locks_root,
            self.locks_dir
                .strip_prefix(&locks_root)
                .unwrap_or(Path::new("")),
        )?;
        Ok(())
    }

    /// `blobs/<etag>`.
    pub fn blob(&self, etag: &str) -> PathBuf {
        self.repo_dir.join("blobs").join(etag)
    }

    /// `blobs/<etag>.incomplete`.
    pub fn partial(&self, etag: &str) -> PathBuf {
        self.repo_dir
            .join("blobs")
            .join(format!("{etag}.incomplete"))
    }

    /// The complete blob is in the cache (a plain file: a link planted in its place
    /// does not count and is replaced by the download).
    pub fn has_blob(&self, etag: &str) -> bool {
        fs::symlink_metadata(self.blob(etag)).is_ok_and(|m| m.is_file())
    }

    /// Size of the complete blob (0 when absent).
    pub fn blob_len(&self, etag: &str) -> u64 {
        fs::metadata(self.blob(etag)).map(|m| m.len()).unwrap_or(0)
    }

    /// `.locks/models--org--name/<etag>.lock`.
    pub fn lock_path(&self, etag: &str) -> PathBuf {
        self.locks_dir.join(format!("{etag}.lock"))
    }

    /// Open (creating) `blobs/<etag>.incomplete` for appending and reading back.
    /// Refused when it is a symlink, not a plain file, or a hard link to another
    /// name: appending would write into a file outside the cache.
    pub fn open_partial(&self, etag: &str) -> Result<File, HubError> {
        let path = self.partial(etag);
        let unsafe_path = |reason: &str| HubError::UnsafeCachePath {
            path: path.clone(),
            reason: reason.to_string(),
        };
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
                return unsafe_path("it is a symbolic link");
            }
            HubError::io(&path, e)
        })?;
        let md = file.metadata().map_err(|e| HubError::io(&path, e))?;
        if !md.is_file() {
            return Err(unsafe_path("it is not a regular file"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if md.nlink() > 1 {
                return Err(unsafe_path("it is a hard link to another file"));
            }
        }
        Ok(file)
    }

    /// Drop the partial download of `etag` (after a hash or size mismatch).
    pub fn discard_partial(&self, etag: &str) {
        let _ = fs::remove_file(self.partial(etag));
    }

    /// Move the verified `.incomplete` file into place as `blobs/<etag>`.
    pub fn commit_blob(&self, etag: &str) -> Result<(), HubError> {
        let blob = self.blob(etag);
        fs::rename(self.partial(etag), &blob).map_err(|e| HubError::io(&blob, e))
    }

    /// Point `snapshots/<commit>/<file>` at `../../blobs/<etag>` (deeper for nested
    /// paths), replacing whatever pointer was there.
    pub fn link_blob(&self, file: &str, etag: &str) -> Result<(), HubError> {
        let pointer = self.snapshot_dir.join(file);
        let depth = file.split('/').count();
        let target = format!("{}blobs/{}", "../".repeat(depth + 1), etag);
        if fs::read_link(&pointer).ok().as_deref() == Some(Path::new(&target)) {
            return Ok(());
        }
        if let Some(parent) = Path::new(file).parent() {
            ensure_dir_in(&self.snapshot_dir, parent)?;
        }
        let mut tmp = pointer.as_os_str().to_owned();
        tmp.push(format!(".tanto-link-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = fs::remove_file(&tmp);
        make_symlink(&target, &tmp).map_err(|e| HubError::io(&tmp, e))?;
        if pointer.is_dir() && !pointer.is_symlink() {
            let _ = fs::remove_file(&tmp);
            return Err(HubError::io(
                &pointer,
                io::Error::new(io::ErrorKind::AlreadyExists, "a directory is in the way"),
            ));
        }
        fs::rename(&tmp, &pointer).map_err(|e| HubError::io(&pointer, e))
    }

    /// `refs/<revision>` holding the commit (no newline), unless it already does.
    pub fn write_ref(&self, revision: &str) -> Result<(), HubError> {
        let rel = Path::new("refs").join(revision);
        let ref_path = self.repo_dir.join(&rel);
        if let Some(parent) = rel.parent() {
            ensure_dir_in(&self.repo_dir, parent)?;
        }
        if fs::read_to_string(&ref_path).ok().as_deref() == Some(self.commit.as_str()) {
            return Ok(());
        }
        write_unique_atomic(&ref_path, self.commit.as_bytes())
            .map_err(|e| HubError::io(&ref_path, e))
    }

    /// Write the pending-pull marker (removed by [`RepoLayout::clear_pending`]).
    pub fn write_pending(&self, pending: &PendingPull) -> Result<(), HubError> {
        let marker = self.locks_dir.join(PENDING_MARKER);
        let bytes = serde_json::to_vec_pretty(pending).unwrap_or_default();
        write_unique_atomic(&marker, &bytes).map_err(|e| HubError::io(&marker, e))
    }

    /// The pull finished: remove the marker.
    pub fn clear_pending(&self) {
        let _ = fs::remove_file(self.locks_dir.join(PENDING_MARKER));
    }

    /// Best effort: `CACHEDIR.TAG` in the cache root and the tree listing of the
    /// commit (`trees/<commit>.json`), both as huggingface_hub >= 1.x writes them,
    /// only when absent. The listing is written only when every file has a size
    /// and blob id.
    pub fn write_extras(&self, siblings: &[Sibling]) {
        let tag = self.cache_dir.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = write_unique_atomic(&tag, CACHEDIR_TAG.as_bytes());
        }
        let path = self
            .repo_dir
            .join("trees")
            .join(format!("{}.json", self.commit));
        if path.exists() {
            return;
        }
        let mut files = std::collections::BTreeMap::new();
        for s in siblings {
            let (Some(size), Some(blob_id)) = (s.size, s.blob_id.clone()) else {
                return;
            };
            files.insert(
                s.rfilename.clone(),
                TreeEntry {
                    size,
                    blob_id,
                    lfs_sha256: s.lfs.as_ref().map(|l| l.sha256.clone()),
                    lfs_size: s.lfs.as_ref().map(|l| l.size.unwrap_or(size)),
                },
            );
        }
        let data = tanto_core::workspace::python_json(
            &TreeCache {
                format_version: 1,
                files,
            },
            1,
        );
        if ensure_dir_in(&self.repo_dir, Path::new("trees")).is_ok() {
            let _ = write_unique_atomic(&path, &data);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
            }
        }
    }
}

/// `base/rel` as a real folder, created one component at a time. A component that
/// is a symlink (or not a folder) is refused: writing through it would land
/// outside the cache. `base` itself may be a link (a repo folder moved to another
/// disk); only what is below it is checked.
fn ensure_dir_in(base: &Path, rel: &Path) -> Result<PathBuf, HubError> {
    let mut cur = base.to_path_buf();
    for comp in rel.components() {
        let std::path::Component::Normal(name) = comp else {
            return Err(HubError::UnsafeCachePath {
                path: base.join(rel),
                reason: "the path leaves its folder".into(),
            });
        };
        cur.push(name);
        let mut created = false;
        loop {
            match fs::symlink_metadata(&cur) {
                Ok(md) if md.is_dir() => break,
                Ok(md) => {
                    return Err(HubError::UnsafeCachePath {
                        path: cur,
                        reason: if md.file_type().is_symlink() {
                            "a symbolic link stands where a folder belongs".into()
                        } else {
                            "a file stands where a folder belongs".into()
                        },
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && !created => {
                    created = true;
                    match fs::create_dir(&cur) {
                        Ok(()) => break,
                        // Someone else made it meanwhile: look at what it is.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(HubError::io(&cur, e)),
                    }
                }
                Err(e) => return Err(HubError::io(&cur, e)),
            }
        }
    }
    Ok(cur)
}

/// Write via a temporary file unique to this process and call, then rename (two
/// pulls of the same repo may write the same file at once). The temporary file is
/// created with `O_EXCL`, so a link planted under its name is never followed.
fn write_unique_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let res = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|_| fs::rename(&tmp, path));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_command() {
        let p = PendingPull {
            repo_id: "o/n".into(),
            revision: "v 1".into(),
            commit: String::new(),
            files: vec![],
            include: vec!["*.json".into()],
            exclude: vec![],
            incomplete_blobs: vec![],
        };
        assert_eq!(
            p.resume_command(),
            "tanto pull o/n --revision 'v 1' --include '*.json'"
        );
    }
}
