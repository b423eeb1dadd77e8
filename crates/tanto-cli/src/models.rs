//! Gathering models for list / health: every workspace and cache repo,
//! probed in parallel (probing is metadata-only, so this stays fast).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tanto_core::probe::{self, Probe};
use tanto_core::report;
use tanto_core::resolve::{self, Candidate, Resolved, Stores};
use tanto_core::store;
use tanto_core::workspace::WorkspaceState;

/// One listed model with everything the renderers need.
pub struct Entry {
    pub resolved: Resolved,
    pub probe: Probe,
    pub ws: Option<WorkspaceState>,
    /// The JSON model object, when it was built with the entry
    /// ([`Entry::with_object`], on the worker threads).
    object: Option<serde_json::Value>,
}

impl Entry {
    pub fn new(resolved: Resolved) -> Self {
        let probe = probe::probe_resolved(&resolved);
        let ws = report::workspace_of(&resolved);
        Self {
            resolved,
            probe,
            ws,
            object: None,
        }
    }
    /// The entry with its JSON model object built now.
    pub fn with_object(mut self) -> Self {
        self.object = Some(self.object());
        self
    }
    pub fn object(&self) -> serde_json::Value {
        match &self.object {
            Some(o) => o.clone(),
            None => report::model_object(&self.resolved, &self.probe, self.ws.as_ref()),
        }
    }
    /// [`Entry::object`], without a copy when it was built already.
    pub fn into_object(self) -> serde_json::Value {
        match self.object {
            Some(o) => o,
            None => report::model_object(&self.resolved, &self.probe, self.ws.as_ref()),
        }
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
/// (case-insensitive substring; explicit paths list that folder). With
/// `objects`, each entry's JSON object is built on the worker threads too.
pub fn gather(stores: &Stores, pattern: Option<&str>, objects: bool) -> Vec<Entry> {
    let entry = |r: Resolved| {
        let e = Entry::new(r);
        if objects {
            e.with_object()
        } else {
            e
        }
    };
    match pattern.filter(|p| resolve::is_explicit_path(p)) {
        Some(pat) => probe_all(path_entries(pat), entry),
        None => {
            // Filter on the listed name first (no I/O), then resolve and
            // probe each model on the worker threads.
            let needle = pattern.map(str::to_lowercase);
            let hit = |s: &str| needle.as_ref().is_none_or(|n| s.to_lowercase().contains(n));
            let candidates: Vec<Candidate> = resolve::all_candidates(stores)
                .into_iter()
                .filter(|c| hit(c.display_name()))
                .collect();
            probe_all(candidates, |c| entry(c.resolve()))
        }
    }
}

/// Run `work` over `items` on the available cores (this thread included),
/// keeping the input order. Items are handed out one at a time, so a few slow
/// models (a large header, a cold disk) do not hold up a whole share.
pub fn probe_all<T: Send + Sync, F>(items: Vec<T>, work: F) -> Vec<Entry>
where
    F: Fn(T) -> Entry + Sync,
{
    let n = items.len();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
        .min(n.max(1));
    if threads <= 1 || n < 8 {
        return items.into_iter().map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let items: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let run = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = items.get(i) else { break };
            let item = slot.lock().ok().and_then(|mut s| s.take());
            if let Some(item) = item {
                done.push((i, work(item)));
            }
        }
        done
    };
    let mut slots: Vec<Option<Entry>> = (0..n).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(run)).collect();
        let mut parts = vec![run()];
        parts.extend(handles.into_iter().filter_map(|h| h.join().ok()));
        for (i, e) in parts.into_iter().flatten() {
            slots[i] = Some(e);
        }
    });
    slots.into_iter().flatten().collect()
}
