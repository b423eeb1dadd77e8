//! One directory walk for the whole crate: depth-first, never leaves the
//! root, and cannot loop. Directories are entered at most once by identity
//! (device, inode), so a symlinked folder pointing back up is not re-entered;
//! a symlinked folder is entered only with `follow_links(true)` and only when
//! it resolves inside the root. Symlinked *files* are yielded wherever they
//! point (the hub cache's snapshot links point into `blobs/`); the walk never
//! opens them. Every entry carries its `/`-joined path relative to the root.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// One entry below the root.
#[derive(Debug, Clone)]
pub struct WalkEntry {
    /// Absolute (root-joined) path.
    pub path: PathBuf,
    /// Path relative to the root, `/`-separated.
    pub rel: String,
    /// The entry itself is a symlink (whatever it points to).
    pub is_symlink: bool,
    /// A directory (after following the link, when links are followed).
    pub is_dir: bool,
}

impl WalkEntry {
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

type SkipDir = Box<dyn Fn(&str) -> bool>;

/// Iterator over every entry below `root` (directories too; the root itself not).
pub struct FsWalk {
    stack: Vec<(PathBuf, String)>,
    pending: Vec<WalkEntry>,
    visited: HashSet<(u64, u64)>,
    /// Directories entered before any link was followed, whose identity is
    /// taken only once a followed link makes a loop possible (plain
    /// directories cannot form one): most model folders have no linked
    /// folder, and this saves a stat per directory and the root's canonicalisation.
    unidentified: Vec<PathBuf>,
    identify: bool,
    follow_links: bool,
    skip_dir: Option<SkipDir>,
    root: Option<PathBuf>,
    root_path: PathBuf,
    /// The canonical root, for the containment check of followed links
    /// (computed at the first followed link).
    canonical_root: Option<Option<PathBuf>>,
}

/// Walk `root`. Unreadable directories are skipped silently.
pub fn fs_walk(root: &Path) -> FsWalk {
    FsWalk {
        stack: Vec::new(),
        pending: Vec::new(),
        visited: HashSet::new(),
        unidentified: Vec::new(),
        identify: false,
        follow_links: false,
        skip_dir: None,
        root: Some(root.to_path_buf()),
        root_path: root.to_path_buf(),
        canonical_root: None,
    }
}

#[cfg(unix)]
fn identity(m: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_m: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

impl FsWalk {
    /// Descend into symlinked directories (sizes and listings follow links).
    /// Each directory is still entered at most once.
    pub fn follow_links(mut self, yes: bool) -> Self {
        self.follow_links = yes;
        self
    }

    /// Do not descend into (nor yield) directories whose name matches.
    pub fn skip_dir(mut self, f: impl Fn(&str) -> bool + 'static) -> Self {
        self.skip_dir = Some(Box::new(f));
        self
    }

    /// Enter `dir` unless it was entered before (by identity).
    fn push_dir(&mut self, dir: PathBuf, rel: String, meta: Option<&fs::Metadata>) {
        if meta.is_some() {
            // A followed link: only inside the root.
            let root = &self.root_path;
            let canonical = self
                .canonical_root
                .get_or_insert_with(|| fs::canonicalize(root).ok());
            let inside = match (fs::canonicalize(&dir), canonical.as_ref()) {
                (Ok(c), Some(r)) => c.starts_with(r),
                _ => false,
            };
            if !inside {
                return;
            }
            if !self.identify {
                // From now on loops are possible: identify what was entered so far.
                self.identify = true;
                for d in std::mem::take(&mut self.unidentified) {
                    if let Some(id) = fs::metadata(&d).ok().as_ref().and_then(identity) {
                        self.visited.insert(id);
                    }
                }
            }
        } else if !self.identify {
            self.unidentified.push(dir.clone());
            self.stack.push((dir, rel));
            return;
        }
        let id = match meta {
            Some(m) => identity(m),
            None => fs::metadata(&dir).ok().as_ref().and_then(identity),
        };
        if let Some(id) = id {
            if !self.visited.insert(id) {
                return;
            }
        }
        self.stack.push((dir, rel));
    }

    fn read(&mut self, dir: &Path, prefix: &str) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut entries: Vec<WalkEntry> = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(ft) = e.file_type() else { continue };
            let is_symlink = ft.is_symlink();
            let (is_dir, meta) = if is_symlink && self.follow_links {
                match fs::metadata(e.path()) {
                    Ok(m) => (m.is_dir(), Some(m)),
                    Err(_) => (false, None),
                }
            } else {
                (ft.is_dir(), None)
            };
            if is_dir && self.skip_dir.as_ref().is_some_and(|f| f(&name)) {
                continue;
            }
            if is_dir {
                self.push_dir(e.path(), rel.clone(), meta.as_ref());
            }
            entries.push(WalkEntry {
                path: e.path(),
                rel,
                is_symlink,
                is_dir,
            });
        }
        // Yield in listing order.
        entries.reverse();
        self.pending.extend(entries);
    }
}

impl Iterator for FsWalk {
    type Item = WalkEntry;

    fn next(&mut self) -> Option<WalkEntry> {
        if let Some(root) = self.root.take() {
            self.push_dir(root, String::new(), None);
        }
        loop {
            if let Some(e) = self.pending.pop() {
                return Some(e);
            }
            let (dir, rel) = self.stack.pop()?;
            self.read(&dir, &rel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rels(w: FsWalk) -> Vec<String> {
        let mut v: Vec<String> = w.map(|e| e.rel).collect();
        v.sort();
        v
    }

    #[test]
    fn walks_nested_and_skips() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a/b")).unwrap();
        fs::create_dir_all(t.path().join(".git")).unwrap();
        fs::write(t.path().join("a/b/x"), b"1").unwrap();
        fs::write(t.path().join(".git/y"), b"1").unwrap();
        fs::write(t.path().join("top"), b"1").unwrap();
        let all = rels(fs_walk(t.path()));
        assert_eq!(all, vec![".git", ".git/y", "a", "a/b", "a/b/x", "top"]);
        let some = rels(fs_walk(t.path()).skip_dir(|n| n.starts_with('.')));
        assert_eq!(some, vec!["a", "a/b", "a/b/x", "top"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_end_and_links_are_not_entered_by_default() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("d")).unwrap();
        fs::write(t.path().join("d/f"), b"1").unwrap();
        std::os::unix::fs::symlink("..", t.path().join("d/up")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"1").unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("out")).unwrap();

        let plain = rels(fs_walk(t.path()));
        assert_eq!(plain, vec!["d", "d/f", "d/up", "out"]);
        let plain_links: Vec<bool> = fs_walk(t.path())
            .filter(|e| e.rel == "d/up")
            .map(|e| e.is_symlink && !e.is_dir)
            .collect();
        assert_eq!(plain_links, vec![true]);

        // Following links: `d/up` is the root again and is not re-entered;
        // `out` leads outside the root and is not entered either.
        let followed = rels(fs_walk(t.path()).follow_links(true));
        assert_eq!(followed, vec!["d", "d/f", "d/up", "out"]);
        // A link to a folder inside the root is followed.
        std::os::unix::fs::symlink("d", t.path().join("alias")).unwrap();
        fs::create_dir_all(t.path().join("e")).unwrap();
        fs::write(t.path().join("e/g"), b"1").unwrap();
        std::os::unix::fs::symlink("../e", t.path().join("d/e2")).unwrap();
        let followed = rels(fs_walk(t.path()).follow_links(true));
        // `d` and `e` are entered once each, through whichever name comes first.
        assert_eq!(
            followed.iter().filter(|r| r.ends_with("/g")).count(),
            1,
            "{followed:?}"
        );
        assert_eq!(
            followed.iter().filter(|r| r.ends_with("/f")).count(),
            1,
            "{followed:?}"
        );
    }
}
