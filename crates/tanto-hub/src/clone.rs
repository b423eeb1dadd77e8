//! `clone`: a cached snapshot → a self-contained managed workspace.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tanto_core::workspace::{self, Sentinel, SENTINEL_FILE};

use crate::fsutil::{check_target, copy_file, CopyMethod, StagingDir};
use crate::HubError;

/// Result of [`clone_snapshot`].
#[derive(Debug, Clone, Serialize)]
pub struct CloneReport {
    /// The new workspace.
    pub target: PathBuf,
    /// Regular files written.
    pub files: usize,
    pub bytes: u64,
    /// Files cloned copy-on-write.
    pub reflinked: usize,
    /// Files byte-copied.
    pub copied: usize,
    /// The sentinel as written.
    pub sentinel: Sentinel,
    /// False when content_hash v2 could not be computed (the workspace then reads
    /// as `clean: None`, e.g. a corrupt safetensors header or no config.json).
    pub hashed: bool,
}

#[derive(Default)]
pub(crate) struct CopyStats {
    pub files: usize,
    pub bytes: u64,
    pub reflinked: usize,
    pub copied: usize,
}

/// The folder a model's links may point into: for a hub-cache snapshot
/// (`…/models--org--name/snapshots/<commit>`) the repo folder, since its files are
/// relative links into `../../blobs`; for any other folder, the folder itself.
/// Canonical, so that resolved link targets compare by prefix.
pub(crate) fn model_root(src: &Path) -> Result<PathBuf, HubError> {
    let src = fs::canonicalize(src).map_err(|e| HubError::io(src, e))?;
    let repo = src
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "snapshots"))
        .and_then(Path::parent)
        .filter(|r| {
            r.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("models--"))
        });
    Ok(repo.map(Path::to_path_buf).unwrap_or(src))
}

/// Walks a model folder for [`copy_tree`]: what may be copied, and the folders
/// being walked (a link back to one of them is a loop).
pub(crate) struct TreeCopy<'a> {
    /// Links must resolve inside it ([`model_root`]).
    pub root: PathBuf,
    /// `skip(rel_path, is_dir)` leaves entries out.
    pub skip: &'a dyn Fn(&str, bool) -> bool,
    pub stats: CopyStats,
    walking: Vec<PathBuf>,
}

impl<'a> TreeCopy<'a> {
    pub(crate) fn new(src: &Path, skip: &'a dyn Fn(&str, bool) -> bool) -> Result<Self, HubError> {
        Ok(TreeCopy {
            root: model_root(src)?,
            skip,
            stats: CopyStats::default(),
            walking: Vec::new(),
        })
    }

    fn refuse(path: &Path, reason: String) -> HubError {
        HubError::UnsafeSourceEntry {
            path: path.to_path_buf(),
            reason,
        }
    }

    /// Where `from` really is: itself, or for a link its resolved target, which has
    /// to lie inside the root.
    fn resolve(&self, from: &Path, is_link: bool) -> Result<PathBuf, HubError> {
        if !is_link {
            return Ok(from.to_path_buf());
        }
        let real = fs::canonicalize(from).map_err(|e| HubError::io(from, e))?;
        if !real.starts_with(&self.root) {
            return Err(Self::refuse(
                from,
                format!(
                    "it is a link to {}, outside {}",
                    real.display(),
                    self.root.display()
                ),
            ));
        }
        Ok(real)
    }

    /// Copy the tree `src` into `dst` (an existing empty dir), dereferencing links
    /// that stay inside the root. Only folders and regular files are copied; a link
    /// leading outside, a link loop, or a fifo, socket or device is an error (a
    /// workspace with a file silently missing would be worse).
    pub(crate) fn copy(&mut self, src: &Path, dst: &Path, rel: &str) -> Result<(), HubError> {
        let here = fs::canonicalize(src).map_err(|e| HubError::io(src, e))?;
        if self.walking.contains(&here) {
            return Err(Self::refuse(src, "a link loop leads back here".into()));
        }
        self.walking.push(here);
        let mut entries: Vec<_> = fs::read_dir(src)
            .map_err(|e| HubError::io(src, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| HubError::io(src, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let child_rel = if rel.is_empty() {
                name.to_string_lossy().to_string()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            let from = entry.path();
            let is_link = entry
                .file_type()
                .map_err(|e| HubError::io(&from, e))?
                .is_symlink();
            // Followed, for the skip rule only: nothing is read yet.
            let is_dir = fs::metadata(&from)
                .map_err(|e| HubError::io(&from, e))?
                .is_dir();
            if (self.skip)(&child_rel, is_dir) {
                continue;
            }
            let real = self.resolve(&from, is_link)?;
            let md = fs::symlink_metadata(&real).map_err(|e| HubError::io(&real, e))?;
            let to = dst.join(&name);
            if md.is_dir() {
                fs::create_dir(&to).map_err(|e| HubError::io(&to, e))?;
                self.copy(&real, &to, &child_rel)?;
            } else if md.is_file() {
                let file = crate::fsutil::open_regular(&real)
                    .map_err(|e| HubError::io(&real, e))?
                    .ok_or_else(|| Self::refuse(&from, "it is not a regular file".into()))?;
                match copy_file(&file, &to)? {
                    CopyMethod::Reflink => self.stats.reflinked += 1,
                    CopyMethod::Copy => self.stats.copied += 1,
                }
                self.stats.files += 1;
                self.stats.bytes += md.len();
            } else {
                return Err(Self::refuse(
                    &from,
                    "it is not a regular file (a fifo, socket or device)".into(),
                ));
            }
        }
        self.walking.pop();
        Ok(())
    }
}

/// Copy the snapshot `src_snapshot_dir` into a new workspace at `target` (absent or an
/// empty directory; parents are created) and write its sentinel: operation `clone`,
/// `source_repo`, `source_revision` (the commit, or the branch/tag asked for),
/// content_hash v2, `tanto_version`. Files are reflinked where the filesystem
/// allows, copied otherwise, never hardlinked. Nothing appears at `target` unless
/// the whole copy succeeded. Links must stay inside the repo folder
/// (`models--org--name`, where the blobs are); one leading elsewhere, or a fifo,
/// socket or device, fails the clone with [`HubError::UnsafeSourceEntry`].
pub fn clone_snapshot(
    src_snapshot_dir: &Path,
    target: &Path,
    source_repo: &str,
    source_revision: Option<&str>,
) -> Result<CloneReport, HubError> {
    if !src_snapshot_dir.is_dir() {
        return Err(HubError::SourceNotADirectory(
            src_snapshot_dir.to_path_buf(),
        ));
    }
    check_target(target)?;
    let staging = StagingDir::next_to(target)?;
    let skip = |rel: &str, is_dir: bool| !is_dir && rel == SENTINEL_FILE;
    let mut tree = TreeCopy::new(src_snapshot_dir, &skip)?;
    tree.copy(src_snapshot_dir, staging.path(), "")?;
    let stats = tree.stats;
    let mut sentinel = Sentinel::new(
        "clone",
        Some(source_repo.to_string()),
        source_revision.map(str::to_string),
    );
    let hashed = workspace::pin_content_hash(staging.path(), &mut sentinel);
    workspace::write_sentinel(staging.path(), &sentinel)?;
    check_target(target)?;
    staging.commit(target)?;
    Ok(CloneReport {
        target: target.to_path_buf(),
        files: stats.files,
        bytes: stats.bytes,
        reflinked: stats.reflinked,
        copied: stats.copied,
        sentinel,
        hashed,
    })
}
