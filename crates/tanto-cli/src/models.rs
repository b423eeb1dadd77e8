//! Gathering models for list / health: every workspace and cache repo,
//! probed in parallel (probing is metadata-only, so this stays fast).

use std::path::PathBuf;

use tanto_core::probe::{self, Probe};
use tanto_core::report;
use tanto_core::resolve::{self, Resolved, Stores};
use tanto_core::store;
use tanto_core::workspace::WorkspaceState;

/// One listed model with everything the renderers need.
pub struct Entry {
    pub resolved: Resolved,
    pub probe: Probe,
    pub ws: Option<WorkspaceState>,
}

impl Entry {
    pub fn new(resolved: Resolved) -> Self {
        let probe = probe::probe_resolved(&resolved);
        let ws = report::workspace_of(&resolved);
        Self {
            resolved,
            probe,
            ws,
        }
    }
    pub fn object(&self) -> serde_json::Value {
        report::model_object(&self.resolved, &self.probe, self.ws.as_ref())
    }
}

/// Model folders for an explicit-path pattern: the folder itself if it is a
/// model, else its model subfolders, else prefix matches in its parent.
fn path_entries(pattern: &str) -> Vec<Resolved> {
    let p = tanto_core::paths::expand_tilde(pattern);
    let abs = std::fs::canonicalize(&p).unwrap_or(p.clone());
    if abs.is_dir() {
        if store::is_model_dir(&abs) {
            return vec![Resolved::from_folder(
                abs.clone(),
                abs.display().to_string(),
            )];
        }
        return store::workspaces(&abs)
            .into_iter()
            .map(|d| {
                let display = d.display().to_string();
                Resolved::from_folder(d, display)
            })
            .collect();
    }
    let (parent, prefix) = match (p.parent(), p.file_name()) {
        (Some(par), Some(f)) => (par.to_path_buf(), f.to_string_lossy().into_owned()),
        _ => return Vec::new(),
    };
    let parent = if parent.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        parent
    };
    store::workspaces(&parent)
        .into_iter()
        .filter(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .map(|d| {
            let abs = std::fs::canonicalize(&d).unwrap_or(d);
            let display = abs.display().to_string();
            Resolved::from_folder(abs, display)
        })
        .collect()
}

/// Everything `list` / `health` cover, filtered by an optional pattern
/// (case-insensitive substring; explicit paths list that folder).
pub fn gather(stores: &Stores, pattern: Option<&str>) -> Vec<Entry> {
    let targets: Vec<Resolved> = match pattern.filter(|p| resolve::is_explicit_path(p)) {
        Some(pat) => path_entries(pat),
        None => {
            let needle = pattern.map(str::to_lowercase);
            let hit = |s: &str| needle.as_ref().is_none_or(|n| s.to_lowercase().contains(n));
            resolve::all_models(stores)
                .into_iter()
                .filter(|r| hit(&r.display_name))
                .collect()
        }
    };
    probe_all(targets)
}

/// Probe in parallel on the available cores, keeping the input order.
pub fn probe_all(targets: Vec<Resolved>) -> Vec<Entry> {
    let n = targets.len();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
        .min(n.max(1));
    if threads <= 1 || n < 8 {
        return targets.into_iter().map(Entry::new).collect();
    }
    let chunk = n.div_ceil(threads);
    let mut slots: Vec<Option<Entry>> = (0..n).map(|_| None).collect();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (ci, part) in targets.chunks(chunk).enumerate() {
            let part = part.to_vec();
            handles.push((
                ci,
                s.spawn(move || part.into_iter().map(Entry::new).collect::<Vec<_>>()),
            ));
        }
        for (ci, h) in handles {
            if let Ok(entries) = h.join() {
                for (i, e) in entries.into_iter().enumerate() {
                    slots[ci * chunk + i] = Some(e);
                }
            }
        }
    });
    slots.into_iter().flatten().collect()
}
