//! The two stores: the Hugging Face hub cache (`models--org--name/{blobs,refs,snapshots}`)
//! and workspaces (self-contained folders, optionally with a sentinel). Reading
//! only; the cache's writes and deletions are in `cache.rs`. Refs are read
//! through the capped reader (a ref that is a fifo or a link to `/dev/zero`
//! reads as absent).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::fs_walk::fs_walk;
use crate::limits::{read_capped_string, REF_MAX};
use crate::resolve::naming::{cache_dir_to_repo, MODEL_PREFIX};

/// Sentinel file that marks a managed workspace (defined in [`crate::workspace`]).
pub use crate::workspace::SENTINEL_FILE;

/// One `models--org--name` folder in the hub cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRepo {
    pub repo_id: String,
    pub dir: PathBuf,
}

/// One `snapshots/<commit>` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub commit: String,
    pub path: PathBuf,
    pub mtime: Option<SystemTime>,
}

impl CacheRepo {
    pub fn from_dir(dir: PathBuf) -> Option<Self> {
        let name = dir.file_name()?.to_str()?.to_string();
        if !name.starts_with(MODEL_PREFIX) {
            return None;
        }
        Some(Self {
            repo_id: cache_dir_to_repo(&name),
            dir,
        })
    }

    /// All snapshot folders, newest first (mtime, then name for stability).
    pub fn snapshots(&self) -> Vec<Snapshot> {
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(self.dir.join("snapshots")) {
            for e in rd.flatten() {
                let path = e.path();
                let Ok(meta) = fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_dir() {
                    continue;
                }
                let Some(commit) = e.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let mtime = meta.modified().ok();
                out.push(Snapshot {
                    commit,
                    path,
                    mtime,
                });
            }
        }
        out.sort_by(|a, b| b.mtime.cmp(&a.mtime).then_with(|| a.commit.cmp(&b.commit)));
        out
    }

    /// `refs/<name>` → commit (nested refs like `refs/pr/1` are included as `pr/1`).
    pub fn refs(&self) -> BTreeMap<String, String> {
        let root = self.dir.join("refs");
        fs_walk(&root)
            .follow_links(true)
            .filter(|e| !e.is_dir)
            .filter_map(|e| {
                let s = read_capped_string(&e.path, REF_MAX).ok()?;
                Some((e.rel, s.trim().to_string()))
            })
            .collect()
    }

    /// The snapshot a bare name means: the one `refs/main` points at if present,
    /// else the newest.
    pub fn default_snapshot(&self) -> Option<Snapshot> {
        // Fast path (list probes every repo): read refs/main and stat that one
        // snapshot instead of walking refs/ and snapshots/.
        if let Ok(main) = read_capped_string(&self.dir.join("refs").join("main"), REF_MAX) {
            let commit = main.trim();
            if !commit.is_empty() && !commit.contains(['/', '\\']) && commit != ".." {
                let path = self.dir.join("snapshots").join(commit);
                if let Ok(m) = fs::metadata(&path) {
                    if m.is_dir() {
                        return Some(Snapshot {
                            commit: commit.to_string(),
                            path,
                            mtime: m.modified().ok(),
                        });
                    }
                }
            }
        }
        self.snapshots().into_iter().next()
    }

    /// Find a snapshot by commit prefix or ref name (case-insensitive prefix).
    pub fn find_revision(&self, rev: &str) -> Option<Snapshot> {
        let snaps = self.snapshots();
        if let Some(commit) = self.refs().get(rev) {
            if let Some(s) = snaps.iter().find(|s| &s.commit == commit) {
                return Some(s.clone());
            }
        }
        let rev_l = rev.to_ascii_lowercase();
        let hits: Vec<_> = snaps
            .into_iter()
            .filter(|s| s.commit.to_ascii_lowercase().starts_with(&rev_l))
            .collect();
        if hits.len() == 1 {
            hits.into_iter().next()
        } else {
            None
        }
    }

    /// `blobs/*.incomplete` left by an interrupted download.
    pub fn incomplete_blobs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(self.dir.join("blobs")) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".incomplete") {
                    out.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    /// Lock files under `<cache>/.locks/models--org--name/`.
    pub fn lock_files(&self, cache: &Path) -> Vec<PathBuf> {
        let Some(name) = self.dir.file_name() else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = fs_walk(&cache.join(".locks").join(name))
            .follow_links(true)
            .filter(|e| !e.is_dir && e.path.extension().is_some_and(|x| x == "lock"))
            .map(|e| e.path)
            .collect();
        out.sort();
        out
    }
}

/// All model repos in the hub cache, sorted by repo id.
pub fn cache_repos(cache: &Path) -> Vec<CacheRepo> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(cache) {
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with(MODEL_PREFIX) || name.contains("TEST-CACHE-SENTINEL") {
                continue;
            }
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            if let Some(r) = CacheRepo::from_dir(e.path()) {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| a.repo_id.cmp(&b.repo_id));
    out
}

/// A folder that holds a model: a config.json, a sentinel or a top-level .gguf.
pub fn is_model_dir(dir: &Path) -> bool {
    if dir.join("config.json").is_file() || dir.join(SENTINEL_FILE).is_file() {
        return true;
    }
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".gguf"))
        })
        .unwrap_or(false)
}

/// A managed workspace: a folder with the sentinel file.
pub fn is_workspace(dir: &Path) -> bool {
    dir.join(SENTINEL_FILE).is_file()
}

/// Model folders directly under the workspace home, sorted by name.
pub fn workspaces(home: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(home) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !e.file_name().to_string_lossy().starts_with('.') && is_model_dir(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
