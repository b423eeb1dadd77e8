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

/// Copy the tree `src` into `dst` (an existing empty dir), dereferencing symlinks.
/// `skip(rel_path, is_dir)` leaves entries out.
pub(crate) fn copy_tree(
    src: &Path,
    dst: &Path,
    rel: &str,
    skip: &dyn Fn(&str, bool) -> bool,
    stats: &mut CopyStats,
) -> Result<(), HubError> {
    let mut entries: Vec<_> = fs::read_dir(src)
        .map_err(|e| HubError::io(src, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| HubError::io(src, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name_s = name.to_string_lossy();
        let child_rel = if rel.is_empty() {
            name_s.to_string()
        } else {
            format!("{rel}/{name_s}")
        };
        let from = entry.path();
        // Follow symlinks (snapshot pointers → blobs).
        let md = fs::metadata(&from).map_err(|e| HubError::io(&from, e))?;
        let to = dst.join(&name);
        if md.is_dir() {
            if skip(&child_rel, true) {
                continue;
            }
            fs::create_dir(&to).map_err(|e| HubError::io(&to, e))?;
            copy_tree(&from, &to, &child_rel, skip, stats)?;
        } else if md.is_file() {
            if skip(&child_rel, false) {
                continue;
            }
            match copy_file(&from, &to)? {
                CopyMethod::Reflink => stats.reflinked += 1,
                CopyMethod::Copy => stats.copied += 1,
            }
            stats.files += 1;
            stats.bytes += md.len();
        }
    }
    Ok(())
}

/// Copy the snapshot `src_snapshot_dir` into a new workspace at `target` (absent or an
/// empty directory; parents are created) and write its sentinel: operation `clone`,
/// `source_repo`, `source_revision` (the commit, or the branch/tag asked for),
/// content_hash v2, `tanto_version`. Files are reflinked where the filesystem
/// allows, copied otherwise, never hardlinked. Nothing appears at `target` unless
/// the whole copy succeeded.
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
    let mut stats = CopyStats::default();
    copy_tree(
        src_snapshot_dir,
        staging.path(),
        "",
        &|rel, is_dir| !is_dir && rel == SENTINEL_FILE,
        &mut stats,
    )?;
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
