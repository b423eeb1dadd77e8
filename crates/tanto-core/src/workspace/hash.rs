//! content_hash v2: the walk (sorted by NFC name, symlinks classified, never
//! followed), the per-file sha rules and the aggregate, as mlx-knife computes it.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use super::*;

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

pub(super) struct Excludes {
    dirs: Vec<String>,
    files: Vec<String>,
}

impl Excludes {
    pub(super) fn new(patterns: &[String]) -> Self {
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
    pub(super) fn dir_excluded(&self, name: &str) -> bool {
        self.dirs.iter().any(|p| fnmatch(p, name))
    }
    pub(super) fn file_excluded(&self, name: &str) -> bool {
        self.files.iter().any(|p| fnmatch(p, name))
    }
}

pub(super) enum Node {
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
    pub(super) fn rel(&self) -> &str {
        match self {
            Node::File { rel, .. } | Node::Symlink { rel, .. } => rel,
        }
    }
}

#[cfg(unix)]
pub(super) fn mtime_ns(md: &fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    md.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec())
}

#[cfg(not(unix))]
pub(super) fn mtime_ns(md: &fs::Metadata) -> i64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Depth-first walk. `None` on an unreadable directory or a non-UTF-8 name.
pub(super) fn walk(root: &Path, excludes: &Excludes) -> Option<Vec<Node>> {
    let mut out = Vec::new();
    walk_dir(root, "", excludes, &mut out)?;
    Some(out)
}

pub(super) fn walk_dir(
    dir: &Path,
    prefix: &str,
    excludes: &Excludes,
    out: &mut Vec<Node>,
) -> Option<()> {
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
pub(super) fn realpath_lenient(path: &Path) -> PathBuf {
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
pub(super) fn symlink_sha(root: &Path, link: &Path) -> Option<String> {
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
pub(super) fn file_sha(abs: &Path, name: &str, size: u64, limits: &HashLimits) -> Option<String> {
    let mut h = Sha256::new();
    if name.ends_with(".safetensors") {
        let (mut f, _) = crate::limits::open_regular(abs).ok()?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).ok()?;
        let n = u64::from_le_bytes(len);
        // A header longer than the file is a short read (abort) either way;
        // refusing it first keeps the allocation within the file's size.
        if n == 0 || n > limits.safetensors_header_max || n > size.saturating_sub(8) {
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
        let (mut f, _) = crate::limits::open_regular(abs).ok()?;
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

pub(super) fn valid_index_path(p: &str) -> bool {
    let b = p.as_bytes();
    !(p.is_empty()
        || p.contains('\0')
        || p.contains('\\')
        || p.starts_with('/')
        || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
        || p.split('/').any(|c| c == ".."))
}
