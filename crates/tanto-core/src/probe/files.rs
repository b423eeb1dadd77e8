//! Probe phase 1, files: walk the model folder once (sizes follow symlinks;
//! dangling links are kept and flagged) and report partial downloads,
//! dangling links and entries that are not regular files (a fifo or a link to
//! a device is reported, never opened). Everything later works from this one
//! listing.

use std::path::Path;

use super::health::Findings;
use super::{FileEntry, Scan};
use crate::fs_walk::fs_walk;
use crate::limits;

/// Every value [`file_kind`] returns.
pub(crate) const FILE_KINDS: &[&str] = &["config", "weights", "tokenizer", "readme", "other"];

/// The role of a file, from its name alone.
pub(crate) fn file_kind(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower == "config.json" {
        "config"
    } else if lower.ends_with(".safetensors")
        || lower.ends_with(".bin")
        || lower.ends_with(".gguf")
        || lower.ends_with(".onnx")
        || lower.ends_with(".pt")
        || lower.ends_with(".pth")
    {
        "weights"
    } else if lower.contains("tokenizer")
        || lower == "vocab.txt"
        || lower == "vocab.json"
        || lower == "merges.txt"
    {
        "tokenizer"
    } else if lower.ends_with(".json") || lower.ends_with(".jinja") {
        "config"
    } else if lower == "readme.md" {
        "readme"
    } else {
        "other"
    }
}

/// Every file under `root` (skipping hidden folders and `__pycache__`), sorted by path.
pub(crate) fn scan_files(root: &Path) -> Vec<FileEntry> {
    let mut out = Vec::new();
    let walk = fs_walk(root)
        .follow_links(true)
        .with_meta(true)
        .skip_dir(|name| name.starts_with('.') || name == "__pycache__");
    for e in walk {
        let name = e.file_name();
        // The walk's one stat (links followed) gives the size; its entry says
        // whether the name itself is a link.
        match e.meta {
            Some(m) if m.is_dir => {}
            Some(m) => out.push(FileEntry {
                kind: file_kind(&name),
                path: e.rel,
                size: if m.is_file { m.len } else { 0 },
                symlink: e.is_symlink,
                dangling: false,
                special: (!m.is_file).then_some(m.type_name),
                stamp: m.stamp,
            }),
            None if e.is_symlink => out.push(FileEntry {
                kind: file_kind(&name),
                path: e.rel,
                size: 0,
                symlink: true,
                dangling: true,
                special: None,
                stamp: Default::default(),
            }),
            None => {}
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The listing a probe works from: the folder's files, or only the picked GGUF.
pub(crate) fn list(dir: &Path, file: Option<&Path>) -> Vec<FileEntry> {
    let mut files = scan_files(dir);
    if let Some(f) = file {
        // A lone GGUF: its folder may hold unrelated files; consider only it.
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.retain(|e| e.path == name);
    }
    files
}

/// Partial downloads (cache `.incomplete` blobs, partial-file names) and dangling links.
pub(crate) fn check_downloads(s: &Scan, f: &mut Findings) {
    if let Some(repo) = &s.target.repo {
        let inc = repo.incomplete_blobs();
        if !inc.is_empty() {
            let names: Vec<String> = inc
                .iter()
                .filter_map(|p| {
                    p.file_name()
                        .map(|n| format!("blobs/{}", n.to_string_lossy()))
                })
                .collect();
            f.fail_fix(
                "partial_download",
                format!(
                    "Partial download: {} incomplete file(s) ({}); resume with `tanto pull {}`",
                    inc.len(),
                    names.join(", "),
                    repo.repo_id
                ),
                format!("tanto pull {}", repo.repo_id),
            );
        }
    }
    let partial: Vec<&str> = s
        .files
        .iter()
        .filter(|f| {
            let l = f.path.to_ascii_lowercase();
            l.ends_with(".incomplete") || l.ends_with(".partial") || l.ends_with(".tmp")
        })
        .map(|f| f.path.as_str())
        .collect();
    if !partial.is_empty() {
        f.fail(
            "partial_download",
            format!("Partial download marker detected: {}", partial.join(", ")),
        );
    }
    let special: Vec<String> = s
        .files
        .iter()
        .filter_map(|e| e.special.map(|k| format!("{} ({k})", e.path)))
        .collect();
    if !special.is_empty() {
        f.fail(
            "not_regular_file",
            format!(
                "Not a regular file: {}; model files must be regular files (tanto does not read them)",
                special.join(", ")
            ),
        );
    }
    let dangling = s.dangling();
    if !dangling.is_empty() {
        let msg = format!(
            "Dangling symlink(s), target blob missing: {}",
            dangling.join(", ")
        );
        f.fail_maybe_fix("dangling_symlink", msg, s.pull_fix.as_deref());
    }
}

const LFS_MARKER: &[u8] = b"version https://git-lfs.github.com/spec/v1";

/// Could this file be a Git LFS pointer (~130 bytes: version, `oid sha256:<64 hex>`,
/// size)? Only files LFS would track are read — weights, tokenizer files and other
/// binaries, not JSON configs (parsed anyway) or READMEs — keeping `list` to a
/// handful of reads per model.
fn may_be_lfs_pointer(f: &FileEntry) -> bool {
    !f.dangling
        && f.special.is_none()
        && (100..limits::LFS_POINTER_MAX).contains(&f.size)
        && f.kind != "config"
        && f.kind != "readme"
        // Parsed (and reported as invalid JSON) on its own.
        && f.path != "tokenizer_config.json"
}

fn is_lfs_pointer(path: &Path, size: u64) -> bool {
    if size >= limits::LFS_POINTER_MAX {
        return false;
    }
    limits::read_capped(path, limits::LFS_POINTER_MAX)
        .map(|b| b.windows(LFS_MARKER.len()).any(|w| w == LFS_MARKER))
        .unwrap_or(false)
}

/// Files that are Git LFS pointers instead of content (reported as a problem).
pub(crate) fn lfs_pointers(s: &Scan, f: &mut Findings) -> Vec<String> {
    let lfs: Vec<String> = s
        .files
        .iter()
        .filter(|e| may_be_lfs_pointer(e) && is_lfs_pointer(&s.dir.join(&e.path), e.size))
        .map(|e| e.path.clone())
        .collect();
    if !lfs.is_empty() {
        f.fail(
            "lfs_pointer",
            format!(
                "Git LFS pointers instead of files: {} (the repo was cloned without `git lfs pull`)",
                lfs.join(", ")
            ),
        );
    }
    lfs
}
