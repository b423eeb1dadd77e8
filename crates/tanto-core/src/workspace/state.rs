//! The clean check of a workspace against its sentinel (stat-only while sizes
//! and mtimes match) and the [`WorkspaceState`] list/show read.

use std::collections::HashMap;
use std::fs::{self};
use std::path::Path;

use super::hash::{Excludes, Node};
use super::*;

/// Detailed result of the clean check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanCheck {
    /// `Some(true)` clean, `Some(false)` modified, `None` unknown (no v2 hash,
    /// corrupt file index, unreadable workspace).
    pub clean: Option<bool>,
    /// The first path found modified, added or removed (when dirty).
    pub changed: Option<String>,
    /// Files whose mtime changed but content did not (their mtimes were updated).
    pub healed: usize,
}

/// Clean check of a workspace against its sentinel (mlx-knife's `is_workspace_clean`).
///
/// Stat-only while every size and mtime matches the file index; a file whose mtime
/// differs (same size) is re-hashed: same content → its mtime is healed in the
/// sentinel (rewritten best effort when `heal` is set), else dirty.
pub fn check_clean(dir: &Path, sentinel: &Sentinel, heal: bool) -> CleanCheck {
    let unknown = CleanCheck {
        clean: None,
        changed: None,
        healed: 0,
    };
    let dirty = |path: &str| CleanCheck {
        clean: Some(false),
        changed: Some(path.to_string()),
        healed: 0,
    };
    if sentinel.hash_algorithm.as_deref() != Some(HASH_ALGORITHM_V2) {
        return unknown;
    }
    let Some(index) = sentinel.file_index.as_ref() else {
        return unknown;
    };
    if !index.iter().all(|e| valid_index_path(&e.path)) {
        return unknown;
    }
    let Ok(root) = fs::canonicalize(dir) else {
        return unknown;
    };
    let by_path: HashMap<&str, (usize, &FileEntry)> = index
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_str(), (i, e)))
        .collect();
    let excludes = Excludes::new(&sentinel.exclude_patterns_or_default());
    let Some(nodes) = walk(&root, &excludes) else {
        return unknown;
    };
    let limits = HashLimits::default();
    let mut seen = vec![false; index.len()];
    let mut heals: Vec<(usize, i64)> = Vec::new();
    for node in &nodes {
        let Some(&(i, entry)) = by_path.get(node.rel()) else {
            return dirty(node.rel());
        };
        seen[i] = true;
        match node {
            Node::Symlink { abs, rel } => {
                if symlink_sha(&root, abs).as_deref() != Some(entry.sha.as_str()) {
                    return dirty(rel);
                }
            }
            Node::File {
                rel,
                abs,
                name,
                size,
                mtime_ns,
            } => {
                if *size != entry.size {
                    return dirty(rel);
                }
                if *mtime_ns == entry.mtime_ns {
                    continue;
                }
                if file_sha(abs, name, *size, &limits).as_deref() != Some(entry.sha.as_str()) {
                    return dirty(rel);
                }
                heals.push((i, *mtime_ns));
            }
        }
    }
    // Duplicated index paths share one map slot; only unseen distinct paths count.
    for (i, e) in index.iter().enumerate() {
        if !seen[i] && by_path.get(e.path.as_str()).map(|x| x.0) == Some(i) {
            return dirty(&e.path);
        }
    }
    if heal && !heals.is_empty() {
        let mut updated = sentinel.clone();
        if let Some(idx) = updated.file_index.as_mut() {
            for &(i, m) in &heals {
                idx[i].mtime_ns = m;
            }
        }
        let _ = write_sentinel(dir, &updated);
    }
    CleanCheck {
        clean: Some(true),
        changed: None,
        healed: heals.len(),
    }
}

/// The hot-path clean check: `Some(true)` clean, `Some(false)` modified, `None`
/// unknown. Heals mtimes in the sentinel when content is unchanged.
pub fn clean_state(dir: &Path, sentinel: &Sentinel) -> Option<bool> {
    check_clean(dir, sentinel, true).clean
}

/// What `list` / `show` need to know about a workspace folder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkspaceState {
    /// A sentinel with `"managed": true` exists.
    pub managed: bool,
    /// See [`clean_state`]; `None` without a sentinel.
    pub clean: Option<bool>,
    /// Sentinel `content_hash`.
    pub content_hash: Option<String>,
    /// Sentinel `hash_modified`.
    pub hash_modified: Option<String>,
    /// Sentinel `source_repo`.
    pub origin: Option<String>,
    /// The sentinel itself (`None` when absent or unreadable).
    pub sentinel: Option<Sentinel>,
}

/// Sentinel-derived state of a workspace folder. Never fails: a missing or
/// unreadable sentinel gives an unmanaged state with `clean: None`.
pub fn workspace_state(dir: &Path) -> WorkspaceState {
    let Ok(Some(s)) = read_sentinel(dir) else {
        return WorkspaceState::default();
    };
    WorkspaceState {
        managed: s.managed,
        clean: clean_state(dir, &s),
        content_hash: s.content_hash.clone(),
        hash_modified: s.hash_modified.clone(),
        origin: s.source_repo.clone(),
        sentinel: Some(s),
    }
}
