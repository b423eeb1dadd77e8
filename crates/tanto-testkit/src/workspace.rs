//! Workspaces: self-contained model folders, optionally managed by a
//! `.mlxk_workspace.json` sentinel (mlx-knife's format).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::files::Files;

pub const SENTINEL_FILE: &str = ".mlxk_workspace.json";

/// A v1-style managed sentinel (no content hash): `clean` reads as unknown.
pub fn sentinel(source_repo: Option<&str>, operation: &str) -> Value {
    json!({
        "mlxk_version": "2.0.4",
        "created_at": "2024-01-02T03:04:05.000000Z",
        "source_repo": source_repo,
        "source_revision": null,
        "managed": true,
        "operation": operation,
    })
}

/// Write `files` as a plain folder `dir` (no sentinel: an unmanaged folder).
pub fn write_folder(dir: &Path, files: &Files) -> PathBuf {
    files.write_to(dir).expect("write model folder");
    dir.to_path_buf()
}

/// Write `files` plus a managed sentinel: a workspace.
pub fn write_workspace(dir: &Path, files: &Files, source_repo: Option<&str>) -> PathBuf {
    write_folder(dir, files);
    let s = serde_json::to_string_pretty(&sentinel(source_repo, "clone")).expect("sentinel JSON");
    fs::write(dir.join(SENTINEL_FILE), s).expect("write sentinel");
    dir.to_path_buf()
}
