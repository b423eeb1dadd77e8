//! Managed workspaces: the `.mlxk_workspace.json` sentinel and content_hash v2.
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

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

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
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| WorkspaceError::Json { path, source })
}

/// Formatter that writes JSON like Python's `json.dump(..., indent=2)`:
/// two-space indentation and non-ASCII escaped as `\uXXXX`.
struct PyJsonFormatter<'a>(serde_json::ser::PrettyFormatter<'a>);

impl serde_json::ser::Formatter for PyJsonFormatter<'_> {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// Serialise a value as Python's `json.dumps(value, indent=2) + "\n"` would.
pub fn to_python_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = python_json(value, 2);
    out.push(b'\n');
    out
}

/// Serialise a value as Python's `json.dumps(value, indent=N)` would (no trailing
/// newline): N-space indentation, non-ASCII escaped as `\uXXXX`.
pub fn python_json<T: Serialize>(value: &T, indent: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let indent = vec![b' '; indent];
    let fmt = PyJsonFormatter(serde_json::ser::PrettyFormatter::with_indent(&indent));
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising plain data into memory cannot fail.
    value
        .serialize(&mut ser)
        .expect("JSON serialisation into memory");
    out
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

// ---------------------------------------------------------------------------
// fnmatch

/// Python `fnmatch.fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]`; `*` also matches `/`.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Backtracking point for the last `*`: (pattern index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    while pi < p.len() && p[pi] == '*' {
                        pi += 1;
                    }
                    star = Some((pi, ni));
                    continue;
                }
                '?' if ni < n.len() => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched_len, ok)) = match_class(&p, pi, n.get(ni).copied()) {
                        if ok {
                            pi += matched_len;
                            ni += 1;
                            continue;
                        }
                    } else if ni < n.len() && n[ni] == '[' {
                        // Unclosed `[` is a literal.
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c != '?' && ni < n.len() && n[ni] == c => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return true;
        }
        // Mismatch: backtrack to the last star, letting it eat one more char.
        match star {
            Some((sp, sn)) if sn < n.len() => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
}

/// Match a `[...]` class starting at `p[start]`. `None` if the class is unclosed
/// (then `[` is literal); else `(pattern length consumed, matched)`.
fn match_class(p: &[char], start: usize, c: Option<char>) -> Option<(usize, bool)> {
    let mut j = start + 1;
    let negate = j < p.len() && p[j] == '!';
    if negate {
        j += 1;
    }
    let body_start = j;
    if j < p.len() && p[j] == ']' {
        j += 1;
    }
    while j < p.len() && p[j] != ']' {
        j += 1;
    }
    if j >= p.len() {
        return None;
    }
    let body = &p[body_start..j];
    let consumed = j + 1 - start;
    let Some(c) = c else {
        return Some((consumed, false));
    };
    if body.is_empty() {
        // `[!]` matches any char; `[]` cannot occur (the `]` would be literal).
        return Some((consumed, negate));
    }
    let mut hit = false;
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == '-' {
            let (lo, hi) = (body[k], body[k + 2]);
            if lo <= c && c <= hi {
                hit = true;
            }
            k += 3;
        } else {
            if body[k] == c {
                hit = true;
            }
            k += 1;
        }
    }
    Some((consumed, hit != negate))
}

// ---------------------------------------------------------------------------
// content_hash v2

/// Limits of the v2 algorithm; only tests change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    /// Files above this many bytes are hashed by name + size.
    pub full_read_cap: u64,
    /// Largest accepted safetensors header.
    pub safetensors_header_max: u64,
}

impl Default for HashLimits {
    fn default() -> Self {
        HashLimits {
            full_read_cap: CATCHALL_FULL_READ_CAP,
            safetensors_header_max: SAFETENSORS_HEADER_MAX,
        }
    }
}

/// Result of [`compute_content_hash`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHash {
    /// `"sha256:<64 hex>"`.
    pub content_hash: String,
    /// Sorted by path (code-point order).
    pub file_index: Vec<FileEntry>,
}

struct Excludes {
    dirs: Vec<String>,
    files: Vec<String>,
}

impl Excludes {
    fn new(patterns: &[String]) -> Self {
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for p in patterns {
            match p.strip_suffix('/') {
                Some(d) => dirs.push(d.to_string()),
                None => files.push(p.clone()),
            }
        }
        Excludes { dirs, files }
    }
    fn dir_excluded(&self, name: &str) -> bool {
        self.dirs.iter().any(|p| fnmatch(p, name))
    }
    fn file_excluded(&self, name: &str) -> bool {
        self.files.iter().any(|p| fnmatch(p, name))
    }
}

enum Node {
    File {
        rel: String,
        abs: PathBuf,
        name: String,
        size: u64,
        mtime_ns: i64,
    },
    Symlink {
        rel: String,
        abs: PathBuf,
    },
}

impl Node {
    fn rel(&self) -> &str {
        match self {
            Node::File { rel, .. } | Node::Symlink { rel, .. } => rel,
        }
    }
}

#[cfg(unix)]
fn mtime_ns(md: &fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    md.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec())
}

#[cfg(not(unix))]
fn mtime_ns(md: &fs::Metadata) -> i64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Depth-first walk. `None` on an unreadable directory or a non-UTF-8 name.
fn walk(root: &Path, excludes: &Excludes) -> Option<Vec<Node>> {
    let mut out = Vec::new();
    walk_dir(root, "", excludes, &mut out)?;
    Some(out)
}

fn walk_dir(dir: &Path, prefix: &str, excludes: &Excludes, out: &mut Vec<Node>) -> Option<()> {
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let name = entry.file_name().into_string().ok()?;
        entries.push((name.nfc().collect(), entry.path()));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (nfc, abs) in entries {
        let rel = if prefix.is_empty() {
            nfc.clone()
        } else {
            format!("{prefix}/{nfc}")
        };
        let md = fs::symlink_metadata(&abs).ok()?;
        let ft = md.file_type();
        if ft.is_symlink() {
            out.push(Node::Symlink { rel, abs });
        } else if ft.is_dir() {
            if !excludes.dir_excluded(&nfc) {
                walk_dir(&abs, &rel, excludes, out)?;
            }
        } else if ft.is_file() && !excludes.file_excluded(&nfc) {
            let name = abs
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(&nfc)
                .to_string();
            out.push(Node::File {
                rel,
                name,
                size: md.len(),
                mtime_ns: mtime_ns(&md),
                abs,
            });
        }
        // Sockets, FIFOs, devices: ignored.
    }
    Some(())
}

/// `os.path.realpath(path, strict=False)`: resolve every symlink component,
/// keep non-existent components literally, apply `..` after resolution.
fn realpath_lenient(path: &Path) -> PathBuf {
    let mut pending: Vec<std::ffi::OsString> = Vec::new(); // reversed stack
    let mut resolved = PathBuf::from("/");
    let push_components = |p: &Path, pending: &mut Vec<std::ffi::OsString>| {
        let comps: Vec<_> = p
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect();
        pending.extend(comps.into_iter().rev());
    };
    push_components(path, &mut pending);
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&c);
        match fs::symlink_metadata(&candidate) {
            Ok(md) if md.file_type().is_symlink() && hops < 40 => {
                hops += 1;
                match fs::read_link(&candidate) {
                    Ok(target) => {
                        if target.is_absolute() {
                            resolved = PathBuf::from("/");
                        }
                        push_components(&target, &mut pending);
                    }
                    Err(_) => resolved = candidate,
                }
            }
            _ => resolved = candidate,
        }
    }
    resolved
}

/// The v2 sha of a symlink, or `None` when its target lies outside `root`.
fn symlink_sha(root: &Path, link: &Path) -> Option<String> {
    let target = realpath_lenient(link);
    let rel = target.strip_prefix(root).ok()?;
    let rel = if rel.as_os_str().is_empty() {
        ".".to_string()
    } else {
        rel.to_str()?.to_string()
    };
    let mut h = Sha256::new();
    h.update(b"SYMLINK\x00");
    h.update(rel.as_bytes());
    Some(format!("sha256:{}", hex::encode(h.finalize())))
}

/// The v2 sha of a regular file, or `None` (abort) for a corrupt safetensors header
/// or an I/O error.
fn file_sha(abs: &Path, name: &str, size: u64, limits: &HashLimits) -> Option<String> {
    let mut h = Sha256::new();
    if name.ends_with(".safetensors") {
        let mut f = File::open(abs).ok()?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).ok()?;
        let n = u64::from_le_bytes(len);
        if n == 0 || n > limits.safetensors_header_max {
            return None;
        }
        let mut header = Vec::with_capacity(n as usize);
        f.take(n).read_to_end(&mut header).ok()?;
        if header.len() as u64 != n {
            return None;
        }
        h.update(&header);
    } else if size > limits.full_read_cap {
        h.update(name.as_bytes());
        h.update(b"\x00");
        h.update(size.to_string().as_bytes());
    } else {
        let mut f = File::open(abs).ok()?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => h.update(&buf[..k]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }
    Some(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Aggregate hash over entries sorted by path.
pub fn aggregate_hash(sorted_index: &[FileEntry]) -> String {
    let mut h = Sha256::new();
    for e in sorted_index {
        h.update(e.path.as_bytes());
        h.update(b"\x00");
        h.update(e.sha.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// content_hash v2 of a workspace with the given exclude patterns (`None` when it
/// cannot be computed: no `config.json`, corrupt safetensors header, a symlink
/// pointing outside, an unreadable file).
pub fn compute_content_hash(root: &Path, exclude_patterns: &[String]) -> Option<ContentHash> {
    compute_content_hash_with(root, exclude_patterns, &HashLimits::default())
}

/// [`compute_content_hash`] with explicit limits (tests).
pub fn compute_content_hash_with(
    root: &Path,
    exclude_patterns: &[String],
    limits: &HashLimits,
) -> Option<ContentHash> {
    let root = fs::canonicalize(root).ok()?;
    if !root.join("config.json").exists() {
        return None;
    }
    let nodes = walk(&root, &Excludes::new(exclude_patterns))?;
    let mut index = Vec::with_capacity(nodes.len());
    for node in nodes {
        let entry = match node {
            Node::Symlink { rel, abs } => FileEntry {
                sha: symlink_sha(&root, &abs)?,
                path: rel,
                size: 0,
                mtime_ns: 0,
            },
            Node::File {
                rel,
                abs,
                name,
                size,
                mtime_ns,
            } => FileEntry {
                sha: file_sha(&abs, &name, size, limits)?,
                path: rel,
                size,
                mtime_ns,
            },
        };
        index.push(entry);
    }
    index.sort_by(|a, b| a.path.cmp(&b.path));
    Some(ContentHash {
        content_hash: aggregate_hash(&index),
        file_index: index,
    })
}

/// Compute content_hash v2 with the sentinel's exclude patterns (defaults when
/// absent) and store `hash_algorithm`, `content_hash`, `hash_modified`,
/// `exclude_patterns` and `file_index` in it. Returns false (sentinel unchanged)
/// when the hash cannot be computed.
pub fn pin_content_hash(dir: &Path, sentinel: &mut Sentinel) -> bool {
    let excludes = sentinel.exclude_patterns_or_default();
    let Some(h) = compute_content_hash(dir, &excludes) else {
        return false;
    };
    sentinel.hash_algorithm = Some(HASH_ALGORITHM_V2.to_string());
    sentinel.content_hash = Some(h.content_hash);
    sentinel.hash_modified = Some(now_timestamp());
    sentinel.exclude_patterns = Some(excludes);
    sentinel.file_index = Some(h.file_index);
    true
}

/// `show --recalc-hash`: re-pin the hash of a managed workspace and write the
/// sentinel. Returns the updated sentinel.
pub fn recalc_hash(dir: &Path) -> Result<Sentinel, WorkspaceError> {
    let mut s = match read_sentinel(dir)? {
        Some(s) if s.managed => s,
        _ => return Err(WorkspaceError::NotManaged(dir.to_path_buf())),
    };
    if !pin_content_hash(dir, &mut s) {
        return Err(WorkspaceError::HashUnavailable(dir.to_path_buf()));
    }
    write_sentinel(dir, &s)?;
    Ok(s)
}

/// Current v2 hash of a workspace with the sentinel's stored exclude patterns
/// (what a dirty workspace would now be pinned to). Reads every file.
pub fn current_content_hash(dir: &Path, sentinel: &Sentinel) -> Option<String> {
    compute_content_hash(dir, &sentinel.exclude_patterns_or_default()).map(|h| h.content_hash)
}

fn valid_index_path(p: &str) -> bool {
    let b = p.as_bytes();
    !(p.is_empty()
        || p.contains('\0')
        || p.contains('\\')
        || p.starts_with('/')
        || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
        || p.split('/').any(|c| c == ".."))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        default_exclude_patterns()
    }

    fn put(root: &Path, rel: &str, bytes: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }

    /// A safetensors file: 8-byte LE header length, header, then `data`.
    fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    fn hash(root: &Path) -> Option<String> {
        compute_content_hash(root, &defaults()).map(|h| h.content_hash)
    }

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("*.lock", "a.lock"));
        assert!(fnmatch("*.lock", ".lock"));
        assert!(!fnmatch("*.lock", "a.lock.x"));
        assert!(fnmatch("._*", "._foo"));
        assert!(!fnmatch("._*", "_.foo"));
        assert!(fnmatch(".*.swp", ".x.swp"));
        assert!(!fnmatch(".*.swp", "x.swp"));
        assert!(fnmatch("*~", "file~"));
        assert!(fnmatch("Icon\r", "Icon\r"));
        assert!(!fnmatch("Icon\r", "Icon"));
        assert!(fnmatch("a?c", "abc"));
        assert!(!fnmatch("a?c", "ac"));
        assert!(fnmatch("[ab]x", "bx"));
        assert!(!fnmatch("[!ab]x", "bx"));
        assert!(fnmatch("[!ab]x", "cx"));
        assert!(fnmatch("[a-c]*", "c9"));
        assert!(fnmatch("[", "["));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("*.safetensors", "sub/dir/m.safetensors"));
        assert!(fnmatch("*a*b*c", "xxaxxbxxbc"));
        assert!(!fnmatch("*.LOCK", "a.lock"));
        assert!(fnmatch("$RECYCLE.BIN", "$RECYCLE.BIN"));
        assert!(fnmatch("", ""));
        assert!(!fnmatch("", "a"));
    }

    // Test vectors. Each was computed independently with Python's hashlib:
    //   def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
    //   agg = "sha256:" + hashlib.sha256(b"".join(
    //       p.encode() + b"\0" + s.encode() for p, s in sorted(entries))).hexdigest()
    // and cross-checked against mlx-knife 2.0.8's compute_workspace_hash_v2.

    #[test]
    fn vector_minimal() {
        // entries = [("config.json", sha(b'{"model_type":"llama"}'))]
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "config.json", br#"{"model_type":"llama"}"#);
        let h = compute_content_hash(d.path(), &defaults()).unwrap();
        assert_eq!(
            h.file_index[0].sha,
            "sha256:fd11fd11fceeb9df51a63f347cec3af4051d086fccb030e78777a83a4d3289e8"
        );
        assert_eq!(
            h.content_hash,
            "sha256:b113fd017dbf0ad2efa74287cfc09808ea6fda72dd0ae922c4cf756b4651269e"
        );
    }

    /// config.json, model.safetensors (header-only), tokenizer/vocab.txt (nested),
    /// plus excluded files: .git/ dir, x.lock, .hf_cache/ dir, the sentinel, a~.
    fn build_model(root: &Path) {
        put(root, "config.json", b"{}");
        put(
            root,
            "model.safetensors",
            &safetensors(
                r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                b"\x00\x00\x80\x3f",
            ),
        );
        put(root, "tokenizer/vocab.txt", b"a\nb\n");
        put(root, ".git/HEAD", b"ref: refs/heads/main\n");
        put(root, ".hf_cache/hub/x", b"cache");
        put(root, "x.lock", b"");
        put(root, "a~", b"backup");
        put(root, SENTINEL_FILE, b"{}");
        put(root, "sub/.DS_Store", b"mac");
    }

    #[test]
    fn vector_model_with_excludes_and_safetensors() {
        // entries = [
        //  ("config.json", sha(b"{}")),
        //  ("model.safetensors", sha(b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')),
        //  ("tokenizer/vocab.txt", sha(b"a\nb\n"))]
        let d = tempfile::tempdir().unwrap();
        build_model(d.path());
        let h = compute_content_hash(d.path(), &defaults()).unwrap();
        let paths: Vec<_> = h.file_index.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["config.json", "model.safetensors", "tokenizer/vocab.txt"]
        );
        assert_eq!(
            h.file_index[1].sha,
            "sha256:1df6f7adc18e258c9c5c222b1a6fc512f591b9d7ecf0bde5a61702bb6d0c9b62"
        );
        assert_eq!(h.file_index[1].size, 8 + 54 + 4);
        assert_eq!(
            h.content_hash,
            "sha256:1870bb6c2daa3737205c24b8589a3ef0806feb42faaacf063c189bd6f4feeaee"
        );
        // Tensor data is not hashed: changing it keeps the hash.
        put(
            d.path(),
            "model.safetensors",
            &safetensors(
                r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                b"\x01\x02\x03\x04",
            ),
        );
        assert_eq!(hash(d.path()).unwrap(), h.content_hash);
        // Without excludes the excluded files count.
        assert_ne!(
            compute_content_hash(d.path(), &[]).unwrap().content_hash,
            h.content_hash
        );
    }

    #[test]
    fn path_order_is_code_point_not_dfs() {
        // DFS visits "a/b" before "a.txt"; the index sorts "a.txt" < "a/b" ('.' < '/').
        // entries = [("a.txt", sha(b"1")), ("a/b", sha(b"2")), ("config.json", sha(b"{}"))]
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "config.json", b"{}");
        put(d.path(), "a/b", b"2");
        put(d.path(), "a.txt", b"1");
        let h = compute_content_hash(d.path(), &defaults()).unwrap();
        let paths: Vec<_> = h.file_index.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a.txt", "a/b", "config.json"]);
        assert_eq!(
            h.content_hash,
            "sha256:bfa4e65e78436f5a1af9854f8a6db464eb23ceb32fcbc7e3fd2fe4eccc34c5a7"
        );
    }

    #[test]
    fn size_cap_hashes_name_and_size() {
        // With a 4-byte cap, "big.bin" (5 bytes) hashes as sha(b"big.bin\x005").
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "config.json", b"{}");
        put(d.path(), "big.bin", b"12345");
        let limits = HashLimits {
            full_read_cap: 4,
            ..Default::default()
        };
        let h = compute_content_hash_with(d.path(), &defaults(), &limits).unwrap();
        assert_eq!(h.file_index[0].path, "big.bin");
        assert_eq!(
            h.file_index[0].sha,
            "sha256:42c3778750fc3d04e87b688508b010efd5ff4ea5e04bb748a1aa841c0dcacf7b"
        );
        // Same size, other content: same hash.
        put(d.path(), "big.bin", b"54321");
        let h2 = compute_content_hash_with(d.path(), &defaults(), &limits).unwrap();
        assert_eq!(h.content_hash, h2.content_hash);
    }

    #[test]
    fn safetensors_header_rules_abort() {
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "config.json", b"{}");
        // Zero-length header.
        put(d.path(), "m.safetensors", &0u64.to_le_bytes());
        assert_eq!(hash(d.path()), None);
        // Short file.
        put(d.path(), "m.safetensors", b"\x01\x02");
        assert_eq!(hash(d.path()), None);
        // Header longer than the file.
        let mut v = 100u64.to_le_bytes().to_vec();
        v.extend_from_slice(b"{}");
        put(d.path(), "m.safetensors", &v);
        assert_eq!(hash(d.path()), None);
        // Header over the cap.
        put(d.path(), "m.safetensors", &safetensors("{\"a\":1}", b""));
        let limits = HashLimits {
            safetensors_header_max: 4,
            ..Default::default()
        };
        assert_eq!(
            compute_content_hash_with(d.path(), &defaults(), &limits),
            None
        );
        assert!(hash(d.path()).is_some());
    }

    #[test]
    fn needs_config_json() {
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "a.txt", b"x");
        assert_eq!(hash(d.path()), None);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_inside_hash_target_outside_abort() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "config.json", b"{}");
        put(d.path(), "w/real.bin", b"data");
        // Inside: sha(b"SYMLINK\x00w/real.bin"); excluded name does not matter.
        symlink("w/real.bin", d.path().join("link.lock")).unwrap();
        let h = compute_content_hash(d.path(), &defaults()).unwrap();
        let e = h.file_index.iter().find(|e| e.path == "link.lock").unwrap();
        assert_eq!((e.size, e.mtime_ns), (0, 0));
        assert_eq!(
            e.sha,
            "sha256:d416d4be11ab889e78d9e2d535ca3f4b8b748ad40663d45e99b85f1177429978"
        );
        // Broken but inside: still hashed by its would-be target.
        symlink("w/missing", d.path().join("dangling")).unwrap();
        assert!(hash(d.path()).is_some());
        // Outside: abort.
        let other = tempfile::tempdir().unwrap();
        symlink(other.path(), d.path().join("out")).unwrap();
        assert_eq!(hash(d.path()), None);
    }

    #[test]
    fn nfc_names() {
        // "é" written decomposed (e + U+0301) is indexed in NFC (U+00E9).
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "config.json", b"{}");
        put(d.path(), "e\u{301}.txt", b"x");
        let h = compute_content_hash(d.path(), &defaults()).unwrap();
        assert!(h.file_index.iter().any(|e| e.path == "\u{e9}.txt"));
        // And the clean check finds it.
        let mut s = Sentinel::new("clone", None, None);
        assert!(pin_content_hash(d.path(), &mut s));
        assert_eq!(clean_state(d.path(), &s), Some(true));
    }

    fn set_mtime(p: &Path, secs: i64) {
        let f = File::options().write(true).open(p).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64))
            .unwrap();
    }

    #[test]
    fn clean_check_and_heal() {
        let d = tempfile::tempdir().unwrap();
        build_model(d.path());
        let mut s = Sentinel::new("clone", Some("org/m".into()), None);
        assert!(pin_content_hash(d.path(), &mut s));
        write_sentinel(d.path(), &s).unwrap();
        let st = workspace_state(d.path());
        assert!(st.managed);
        assert_eq!(st.clean, Some(true));
        assert_eq!(st.origin.as_deref(), Some("org/m"));

        // Touch without change: still clean, mtime healed in the sentinel.
        set_mtime(&d.path().join("tokenizer/vocab.txt"), 1_000_000);
        let c = check_clean(d.path(), &s, true);
        assert_eq!((c.clean, c.healed), (Some(true), 1));
        let s2 = read_sentinel(d.path()).unwrap().unwrap();
        let e = s2
            .file_index
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.path == "tokenizer/vocab.txt")
            .unwrap();
        assert_eq!(e.mtime_ns, 1_000_000 * 1_000_000_000);
        assert_eq!(check_clean(d.path(), &s2, true).healed, 0);

        // Excluded files may change freely.
        put(d.path(), "new.log", b"x");
        put(d.path(), ".git/x", b"x");
        assert_eq!(clean_state(d.path(), &s2), Some(true));

        // Same size, other content, new mtime: dirty.
        put(d.path(), "tokenizer/vocab.txt", b"a\nc\n");
        set_mtime(&d.path().join("tokenizer/vocab.txt"), 2_000_000);
        let c = check_clean(d.path(), &s2, true);
        assert_eq!(c.clean, Some(false));
        assert_eq!(c.changed.as_deref(), Some("tokenizer/vocab.txt"));
        put(d.path(), "tokenizer/vocab.txt", b"a\nb\n");
        assert_eq!(clean_state(d.path(), &s2), Some(true));

        // New file: dirty. Missing file: dirty.
        put(d.path(), "extra.txt", b"x");
        assert_eq!(clean_state(d.path(), &s2), Some(false));
        fs::remove_file(d.path().join("extra.txt")).unwrap();
        fs::remove_file(d.path().join("tokenizer/vocab.txt")).unwrap();
        let c = check_clean(d.path(), &s2, false);
        assert_eq!(c.clean, Some(false));
        assert_eq!(c.changed.as_deref(), Some("tokenizer/vocab.txt"));
    }

    #[test]
    fn clean_unknown_cases() {
        let d = tempfile::tempdir().unwrap();
        build_model(d.path());
        let mut s = Sentinel::new("clone", None, None);
        assert_eq!(clean_state(d.path(), &s), None); // no v2 fields
        assert!(pin_content_hash(d.path(), &mut s));
        for bad in ["", "/abs", "a/../b", "C:x", "a\\b", "a\0b", ".."] {
            let mut t = s.clone();
            t.file_index.as_mut().unwrap()[0].path = bad.to_string();
            assert_eq!(clean_state(d.path(), &t), None, "{bad:?}");
        }
        let mut t = s.clone();
        t.hash_algorithm = None;
        assert_eq!(clean_state(d.path(), &t), None);
        // A v1 sentinel read from disk.
        fs::write(
            d.path().join(SENTINEL_FILE),
            r#"{"mlxk_version":"2.0.5","managed":true,"content_hash":"ab","file_index":"x"}"#,
        )
        .unwrap();
        let st = workspace_state(d.path());
        assert!(st.managed);
        assert_eq!(st.clean, None);
        assert_eq!(st.content_hash.as_deref(), Some("ab"));
    }

    #[test]
    fn sentinel_roundtrip_preserves_unknown_fields() {
        let d = tempfile::tempdir().unwrap();
        let text = r#"{"mlxk_version":"2.0.7","created_at":"2025-01-01T00:00:00.000001Z","source_repo":"o/ü","source_revision":null,"managed":true,"operation":"convert","mode":"quantize","quantization":{"bits":4,"group_size":64},"zzz":[1,2]}"#;
        fs::write(d.path().join(SENTINEL_FILE), text).unwrap();
        let s = read_sentinel(d.path()).unwrap().unwrap();
        assert_eq!(s.extra.len(), 2);
        write_sentinel(d.path(), &s).unwrap();
        let out = fs::read_to_string(d.path().join(SENTINEL_FILE)).unwrap();
        assert!(out.ends_with("}\n"));
        assert!(out.contains("\n  \"managed\": true,\n"));
        assert!(out.contains("\"o/\\u00fc\""), "{out}");
        assert!(out.contains("\"source_revision\": null"));
        assert!(out.contains("\"group_size\": 64"));
        assert!(!d.path().join(".mlxk_workspace.json.tmp").exists());
        let back: Value = serde_json::from_str(&out).unwrap();
        let orig: Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, orig);
        // Unmanaged or absent sentinel.
        let e = tempfile::tempdir().unwrap();
        assert_eq!(read_sentinel(e.path()).unwrap(), None);
        assert_eq!(workspace_state(e.path()), WorkspaceState::default());
        assert!(matches!(
            recalc_hash(e.path()),
            Err(WorkspaceError::NotManaged(_))
        ));
    }

    #[test]
    fn recalc_repins() {
        let d = tempfile::tempdir().unwrap();
        build_model(d.path());
        let mut s = Sentinel::new("clone", None, None);
        assert!(pin_content_hash(d.path(), &mut s));
        write_sentinel(d.path(), &s).unwrap();
        put(d.path(), "extra.txt", b"x");
        assert_eq!(workspace_state(d.path()).clean, Some(false));
        let s2 = recalc_hash(d.path()).unwrap();
        assert_ne!(s2.content_hash, s.content_hash);
        assert_eq!(current_content_hash(d.path(), &s2), s2.content_hash.clone());
        assert_eq!(workspace_state(d.path()).clean, Some(true));
    }

    #[test]
    fn timestamp_shape() {
        let t = now_timestamp();
        assert_eq!(t.len(), "2025-01-01T00:00:00.000000Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }
}
