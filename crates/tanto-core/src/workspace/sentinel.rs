//! The `.mlxk_workspace.json` sentinel: its fields (unknown ones kept), and
//! reading and writing it byte-compatibly with mlx-knife.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::{
    default_exclude_patterns, io_err, WorkspaceError, HASH_ALGORITHM_V2, MLXK_COMPAT_VERSION,
    SENTINEL_FILE, TANTO_VERSION,
};
use crate::pycompat::to_python_json;

/// One entry of the sentinel's `file_index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// `/`-joined NFC relative path.
    pub path: String,
    /// `st_size` (0 for symlinks).
    pub size: u64,
    /// `st_mtime_ns` (0 for symlinks).
    pub mtime_ns: i64,
    /// `"sha256:<64 hex>"`.
    pub sha: String,
}

/// The `.mlxk_workspace.json` sentinel. Unknown fields are kept in `extra` and
/// written back unchanged; known fields of the wrong type read as absent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sentinel {
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub mlxk_version: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub tanto_version: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<String>,
    /// Written as `null` when unknown (as mlx-knife does).
    #[serde(default, deserialize_with = "lenient")]
    pub source_repo: Option<String>,
    /// Written as `null` when unknown (as mlx-knife does).
    #[serde(default, deserialize_with = "lenient")]
    pub source_revision: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub managed: bool,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub operation: Option<String>,
    /// `convert` only: `"repair-index"` or `"quantize"`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub mode: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub hash_algorithm: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub content_hash: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub hash_modified: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub exclude_patterns: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_index: Option<Vec<FileEntry>>,
    /// Every other field, preserved in order.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(matches!(Value::deserialize(d)?, Value::Bool(true)))
}

impl Sentinel {
    /// A fresh managed sentinel (`created_at` = now) without hash fields; call
    /// [`pin_content_hash`] after the files are in place.
    pub fn new(
        operation: &str,
        source_repo: Option<String>,
        source_revision: Option<String>,
    ) -> Self {
        Sentinel {
            mlxk_version: Some(MLXK_COMPAT_VERSION.to_string()),
            tanto_version: Some(TANTO_VERSION.to_string()),
            created_at: Some(now_timestamp()),
            source_repo,
            source_revision,
            managed: true,
            operation: Some(operation.to_string()),
            ..Default::default()
        }
    }

    /// The stored exclude patterns, else the defaults.
    pub fn exclude_patterns_or_default(&self) -> Vec<String> {
        self.exclude_patterns
            .clone()
            .unwrap_or_else(default_exclude_patterns)
    }

    /// True when the sentinel carries a v2 hash with a file index.
    pub fn has_v2_hash(&self) -> bool {
        self.hash_algorithm.as_deref() == Some(HASH_ALGORITHM_V2)
            && self.content_hash.is_some()
            && self.file_index.is_some()
    }
}

/// `datetime.now(UTC).isoformat()` with `+00:00` → `Z` (microseconds included).
pub fn now_timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    now.format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".to_string())
}

/// Read `<dir>/.mlxk_workspace.json`. `Ok(None)` when there is none.
pub fn read_sentinel(dir: &Path) -> Result<Option<Sentinel>, WorkspaceError> {
    let path = dir.join(SENTINEL_FILE);
    // Capped and regular files only: a sentinel that is a fifo or a link to a
    // device must not hang or exhaust memory.
    let bytes = match crate::limits::read_capped(&path, crate::limits::SENTINEL_MAX) {
        Ok(b) => b,
        Err(crate::limits::ReadError::NotFound) => return Ok(None),
        Err(crate::limits::ReadError::Io(e)) => return Err(io_err(&path, e)),
        Err(e) => return Err(io_err(&path, io::Error::other(e.to_string()))),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| WorkspaceError::Json { path, source })
}

/// Write bytes to `path` atomically: `<path>.tmp` (fsynced) then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Write `<dir>/.mlxk_workspace.json` atomically (indent 2 + newline).
pub fn write_sentinel(dir: &Path, sentinel: &Sentinel) -> Result<(), WorkspaceError> {
    let path = dir.join(SENTINEL_FILE);
    write_atomic(&path, &to_python_json(sentinel)).map_err(|e| io_err(&path, e))
}
