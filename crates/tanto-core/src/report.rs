//! The JSON model object shared by `list`, `show`, `health` and the server.
//!
//! Field names follow mlx-knife's JSON API 0.2.x (`name`, `hash`, `size_bytes`,
//! `last_modified`, `framework`, `model_type`, `capabilities`, `health`,
//! `runtime_compatible`, `reason`, `cached`, `origin`, `content_hash`,
//! `hash_modified`, `clean`, `display_name`) so scripts keep working; tanto's
//! own fields are added beside them, never renamed.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::probe::Probe;
use crate::resolve::naming::is_commit_hash;
use crate::resolve::{Location, Resolved};
use crate::workspace::{self, WorkspaceState};

/// RFC 3339 UTC with a `Z` suffix, second precision.
pub fn utc_rfc3339(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    dt.format(&fmt).unwrap_or_default()
}

/// Workspace state for folder models, `None` for cache models.
pub fn workspace_of(r: &Resolved) -> Option<WorkspaceState> {
    match &r.location {
        Location::Folder { dir, .. } => Some(workspace::workspace_state(dir)),
        _ => None,
    }
}

/// A portable identity for vectors (embedding records, the server's
/// `system_fingerprint`): `(model, content_hash)`. `model` is `org/name` for
/// cache models, a workspace's `source_repo`, else the folder's name (never an
/// absolute path); `content_hash` is the snapshot commit or the workspace's
/// sentinel hash. Two vectors are comparable when both agree.
pub fn vector_identity(r: &Resolved) -> (String, Option<String>) {
    match &r.location {
        Location::Cache { repo, snapshot, .. } => (
            repo.repo_id.clone(),
            snapshot.as_ref().map(|s| s.commit.clone()),
        ),
        Location::Folder { dir, .. } => {
            let ws = workspace::workspace_state(dir);
            let base = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| r.display_name.clone());
            (ws.origin.unwrap_or(base), ws.content_hash)
        }
        Location::File { file } => (
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            None,
        ),
    }
}

/// `cache`, `ws` (clean), `ws*` (modified), `ws?` (unknown), `path` (unmanaged folder or file).
pub fn source_tag(r: &Resolved, ws: Option<&WorkspaceState>) -> &'static str {
    match (&r.location, ws) {
        (Location::Cache { .. }, _) => "cache",
        (Location::Folder { .. }, Some(w)) if w.sentinel.is_some() => match w.clean {
            Some(true) => "ws",
            Some(false) => "ws*",
            None => "ws?",
        },
        _ => "path",
    }
}

/// Build the model object.
pub fn model_object(r: &Resolved, p: &Probe, ws: Option<&WorkspaceState>) -> Value {
    let hash = r.commit().filter(|c| is_commit_hash(c)).map(str::to_string);
    let mut o = json!({
        "name": r.name,
        "hash": hash,
        "size_bytes": p.size_bytes,
        "last_modified": p.last_modified.map(utc_rfc3339),
        "framework": p.format.framework(),
        "model_type": p.kind.as_str(),
        "capabilities": p.capabilities,
        "health": if p.health.healthy { "healthy" } else { "unhealthy" },
        "runtime_compatible": p.runtime.compatible,
        "reason": if p.health.healthy { p.runtime.reason.clone() } else { p.health.reason.clone() },
        "cached": r.is_cache(),
        "origin": ws.and_then(|w| w.origin.clone()),
        "content_hash": ws.and_then(|w| w.content_hash.clone()),
        "hash_modified": ws.and_then(|w| w.hash_modified.clone()),
        "clean": ws.and_then(|w| w.clean),
        // tanto additions
        "source": source_tag(r, ws),
        "format": p.format.as_str(),
        "architecture": p.architecture,
        "config_model_type": p.config_model_type,
        "parameters": p.parameters,
        "quantization": p.quantization,
        "context_length": p.context_length,
        "dtype": p.dtype,
        "weights_bytes": p.weights_bytes,
        "backend": p.runtime.backend.map(|b| b.as_str()),
        "problems": p.health.problems,
        "fix": p.health.fix,
        "path": p.dir.as_ref().map(|d| d.display().to_string()),
    });
    if !r.is_cache() {
        if let Some(obj) = o.as_object_mut() {
            obj.insert("display_name".into(), Value::from(r.display_name.clone()));
        }
    }
    o
}
