//! A Hugging Face hub cache written exactly as `huggingface_hub` lays it out:
//!
//! ```text
//! <cache>/models--org--name/blobs/<etag>                 file content
//! <cache>/models--org--name/snapshots/<commit>/<path>    relative symlink ../../blobs/<etag>
//! <cache>/models--org--name/refs/main                    the commit (no newline)
//! <cache>/.locks/models--org--name/<etag>.lock
//! ```
//!
//! Blob names are the files' etags: the sha256 of the content for LFS files
//! (weights) and the git blob sha1 for regular files, as on the Hub.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::files::{symlink, Content, Files};

/// The fixed modification time given to snapshot folders (2024-01-02T03:04:05Z),
/// so `last_modified` and human ages are reproducible.
pub const FIXTURE_MTIME_SECS: u64 = 1_704_164_645;

pub fn fixture_mtime() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(FIXTURE_MTIME_SECS)
}

/// `org/name` → `models--org--name`.
pub fn repo_folder_name(repo_id: &str) -> String {
    format!("models--{}", repo_id.replace('/', "--"))
}

/// A deterministic 40-hex commit id derived from a seed.
pub fn commit_hash(seed: &str) -> String {
    hex::encode(Sha1::digest(format!("commit {seed}").as_bytes()))
}

/// Files the Hub stores through LFS (their etag is a sha256).
fn is_lfs_path(path: &str) -> bool {
    let l = path.to_ascii_lowercase();
    [
        ".safetensors",
        ".gguf",
        ".bin",
        ".onnx",
        ".pt",
        ".pth",
        ".msgpack",
        ".h5",
    ]
    .iter()
    .any(|e| l.ends_with(e))
}

/// The etag (blob name) the Hub reports for a file.
pub fn etag(path: &str, content: &Content) -> String {
    match content {
        Content::Bytes(b) if is_lfs_path(path) || b.len() > 10 * 1024 * 1024 => {
            hex::encode(Sha256::digest(b))
        }
        Content::Bytes(b) => {
            let mut h = Sha1::new();
            h.update(format!("blob {}\0", b.len()).as_bytes());
            h.update(b);
            hex::encode(h.finalize())
        }
        // Hashing gigabytes of real weights would be slow; a stable synthetic etag will do.
        Content::External(p) => hex::encode(Sha256::digest(
            format!("external {}", p.display()).as_bytes(),
        )),
    }
}

/// Set a path's modification time (directories included).
pub fn set_mtime(path: &Path, t: SystemTime) -> io::Result<()> {
    fs::File::open(path)?.set_modified(t)
}

/// The root of a hub cache (`HF_HUB_CACHE`).
#[derive(Debug, Clone)]
pub struct HubCache {
    root: PathBuf,
    mtime: Option<SystemTime>,
}

impl HubCache {
    /// Create (if needed) a cache at `root`. Snapshots get [`fixture_mtime`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        fs::create_dir_all(&root).expect("create hub cache root");
        Self {
            root,
            mtime: Some(fixture_mtime()),
        }
    }

    /// Keep the real modification times instead of the fixed one.
    pub fn with_real_mtimes(mut self) -> Self {
        self.mtime = None;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A handle on `org/name` (nothing is written until a snapshot is added).
    pub fn repo(&self, repo_id: &str) -> CachedRepo {
        CachedRepo {
            repo_id: repo_id.to_string(),
            dir: self.root.join(repo_folder_name(repo_id)),
            cache_root: self.root.clone(),
            mtime: self.mtime,
        }
    }

    /// Add `repo_id` with one snapshot holding `files`; `refs/main` points at it.
    /// The commit is [`commit_hash`]`(repo_id)`.
    pub fn add(&self, repo_id: &str, files: &Files) -> CachedRepo {
        let repo = self.repo(repo_id);
        let commit = commit_hash(repo_id);
        repo.add_snapshot(&commit, files);
        repo.set_ref("main", &commit);
        repo
    }

    /// Every `models--*` folder, sorted.
    pub fn repo_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(&self.root)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("models--"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// One `models--org--name` folder.
#[derive(Debug, Clone)]
pub struct CachedRepo {
    pub repo_id: String,
    pub dir: PathBuf,
    cache_root: PathBuf,
    mtime: Option<SystemTime>,
}

impl CachedRepo {
    pub fn blobs_dir(&self) -> PathBuf {
        self.dir.join("blobs")
    }

    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    /// The commit `refs/main` points at.
    pub fn main_commit(&self) -> Option<String> {
        self.ref_commit("main")
    }

    pub fn ref_commit(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.dir.join("refs").join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// The snapshot `refs/main` points at.
    pub fn main_snapshot(&self) -> PathBuf {
        self.snapshot_dir(&self.main_commit().expect("refs/main"))
    }

    /// Write `files` as `snapshots/<commit>/…` symlinks into shared `blobs/`.
    pub fn add_snapshot(&self, commit: &str, files: &Files) -> PathBuf {
        let snap = self.snapshot_dir(commit);
        fs::create_dir_all(&snap).expect("create snapshot");
        fs::create_dir_all(self.blobs_dir()).expect("create blobs");
        fs::create_dir_all(self.dir.join("refs")).expect("create refs");
        for (path, content) in files.iter() {
            let tag = etag(path, content);
            let blob = self.blobs_dir().join(&tag);
            if fs::symlink_metadata(&blob).is_err() {
                match content {
                    Content::Bytes(b) => fs::write(&blob, b).expect("write blob"),
                    Content::External(target) => {
                        let abs = fs::canonicalize(target).unwrap_or_else(|_| target.clone());
                        symlink(&abs, &blob).expect("link external blob")
                    }
                }
            }
            let link = snap.join(path);
            if let Some(parent) = link.parent() {
                fs::create_dir_all(parent).expect("create snapshot subfolder");
            }
            let depth = path.matches('/').count();
            let rel = format!("{}blobs/{tag}", "../".repeat(depth + 2));
            let _ = fs::remove_file(&link);
            symlink(Path::new(&rel), &link).expect("snapshot symlink");
        }
        if let Some(t) = self.mtime {
            set_mtime(&snap, t).expect("set snapshot mtime");
        }
        snap
    }

    /// Point `refs/<name>` at `commit` (no trailing newline, as huggingface_hub writes it).
    pub fn set_ref(&self, name: &str, commit: &str) {
        let p = self.dir.join("refs").join(name);
        fs::create_dir_all(p.parent().expect("refs parent")).expect("create refs");
        fs::write(p, commit).expect("write ref");
    }

    /// Set a snapshot folder's modification time (snapshot order is newest first).
    pub fn set_snapshot_mtime(&self, commit: &str, t: SystemTime) {
        set_mtime(&self.snapshot_dir(commit), t).expect("set snapshot mtime");
    }

    /// The blob a snapshot file links to.
    pub fn blob_of(&self, commit: &str, path: &str) -> PathBuf {
        let link = self.snapshot_dir(commit).join(path);
        let target = fs::read_link(&link)
            .unwrap_or_else(|e| panic!("{} is not a symlink: {e}", link.display()));
        let tag = target
            .file_name()
            .expect("blob name")
            .to_string_lossy()
            .into_owned();
        self.blobs_dir().join(tag)
    }

    /// Delete the blob behind a snapshot file: the symlink now dangles.
    pub fn delete_blob(&self, commit: &str, path: &str) -> PathBuf {
        let blob = self.blob_of(commit, path);
        fs::remove_file(&blob).expect("delete blob");
        blob
    }

    /// Leave `blobs/<etag>.incomplete` the way an interrupted download does.
    pub fn add_incomplete(&self, etag: &str, partial: &[u8]) -> PathBuf {
        fs::create_dir_all(self.blobs_dir()).expect("create blobs");
        let p = self.blobs_dir().join(format!("{etag}.incomplete"));
        fs::write(&p, partial).expect("write incomplete blob");
        p
    }

    /// Add `<cache>/.locks/models--org--name/<name>.lock`.
    pub fn add_lock(&self, name: &str) -> PathBuf {
        let d = self
            .cache_root
            .join(".locks")
            .join(repo_folder_name(&self.repo_id));
        fs::create_dir_all(&d).expect("create lock dir");
        let p = d.join(format!("{name}.lock"));
        fs::write(&p, b"").expect("write lock");
        p
    }

    /// All blob files, sorted.
    pub fn blobs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.blobs_dir())
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Snapshot commit ids on disk, sorted.
    pub fn snapshots(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.dir.join("snapshots"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}
