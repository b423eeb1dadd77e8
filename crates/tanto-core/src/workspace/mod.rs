//! Managed workspaces: the `.mlxk_workspace.json` sentinel and content_hash v2.
//! Split by concern: `sentinel.rs` (the file format, read/write), `hash.rs`
//! (the v2 content hash walk), `state.rs` (clean check and what list/show need).
//! `fnmatch` and the Python-style JSON writer live in [`crate::pycompat`] and
//! are re-exported here for old callers.
//!
//! A *workspace* is a self-contained model folder outside the Hugging Face cache
//! (made by `tanto clone` / `tanto convert`, or by mlx-knife). A *managed* workspace
//! carries the sentinel file [`SENTINEL_FILE`] with `"managed": true`. The sentinel
//! format and the v2 content hash are shared with mlx-knife byte for byte, so a
//! workspace moves between the two tools and stays "clean":
//!
//! * Walk: depth-first from the resolved root; entries of a directory sorted by their
//!   NFC-normalised name; relative paths are `/`-joined NFC names.
//! * Symlinks are never followed and are classified before any exclude pattern: a
//!   target inside the root hashes as `sha256(b"SYMLINK\0" + target_relpath)` with
//!   size 0 and mtime 0; a target outside the root aborts the whole computation.
//! * Exclude patterns: a trailing `/` names a directory basename (pruned at any
//!   depth); any other pattern is an `fnmatch` against a regular file's basename.
//! * `*.safetensors` files hash only their JSON header (8-byte little-endian length L,
//!   then L bytes); L == 0, L > 100 MiB, a short read or an I/O error aborts.
//!   Other files above 1 GiB hash `basename + b"\0" + decimal size` without reading;
//!   everything else hashes its full content.
//! * Aggregate: `"sha256:" + hex(sha256(concat(path + b"\0" + sha)))` over entries
//!   sorted by path, where `sha` is the per-file string including its `sha256:` prefix.
//!
//! Entry points for `list` / `show`: [`workspace_state`] (hot path: stat only while
//! sizes and mtimes match the sentinel's file index), [`read_sentinel`],
//! [`recalc_hash`] (`show --recalc-hash`). Writers (`clone`, `convert`):
//! [`Sentinel::new`], [`pin_content_hash`], [`write_sentinel`].

use std::io;
use std::path::{Path, PathBuf};

mod hash;
mod sentinel;
mod state;
#[cfg(test)]
mod tests;

pub use crate::pycompat::{fnmatch, python_json, to_python_json};
pub use hash::*;
pub use sentinel::*;
pub use state::*;

/// The sentinel file name (shared with mlx-knife).
pub const SENTINEL_FILE: &str = ".mlxk_workspace.json";
/// Value of `hash_algorithm` for content_hash v2.
pub const HASH_ALGORITHM_V2: &str = "v2";
/// Files above this size (bytes) are hashed by name and size only.
pub const CATCHALL_FULL_READ_CAP: u64 = 1024 * 1024 * 1024;
/// Largest safetensors JSON header accepted (bytes).
pub const SAFETENSORS_HEADER_MAX: u64 = 100 * 1024 * 1024;
/// The mlx-knife sentinel format version tanto writes into `mlxk_version`
/// (mlx-knife requires the key when it rewrites a sentinel, e.g. `--recalc-hash`).
pub const MLXK_COMPAT_VERSION: &str = "2.0.8";
/// tanto's version, written into the sentinel's `tanto_version` field.
pub const TANTO_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exclude patterns frozen into every new sentinel (mlx-knife's defaults).
pub const DEFAULT_EXCLUDE_PATTERNS: &[&str] = &[
    ".hf_cache/",
    ".mlxk_workspace.json",
    ".git/",
    ".github/",
    "__pycache__/",
    ".vscode/",
    ".idea/",
    ".ipynb_checkpoints/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".tox/",
    "node_modules/",
    ".venv/",
    "venv/",
    "*.lock",
    "*.tmp",
    "*.log",
    "*.bak",
    ".DS_Store",
    "._*",
    ".Spotlight-V100/",
    ".Trashes/",
    ".fseventsd/",
    ".TemporaryItems/",
    ".apdisk",
    "Icon\r",
    "Thumbs.db",
    "desktop.ini",
    "$RECYCLE.BIN/",
    "System Volume Information/",
    "*~",
    ".*.swp",
    ".*.swo",
];

/// The default exclude patterns as owned strings.
pub fn default_exclude_patterns() -> Vec<String> {
    DEFAULT_EXCLUDE_PATTERNS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: invalid workspace sentinel: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}: not a managed workspace (no {SENTINEL_FILE} with \"managed\": true)")]
    NotManaged(PathBuf),
    #[error(
        "{0}: content hash could not be computed (missing config.json, corrupt safetensors \
         header, symlink pointing outside the workspace, or unreadable file)"
    )]
    HashUnavailable(PathBuf),
}

fn io_err(path: &Path, source: io::Error) -> WorkspaceError {
    WorkspaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}
