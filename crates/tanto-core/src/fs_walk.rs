//! One directory walk for the whole crate: depth-first, never leaves the
//! root, and cannot loop. Directories are entered at most once by identity
//! (device, inode), so a symlinked folder pointing back up is not re-entered;
//! a symlinked folder is entered only with `follow_links(true)` and only when
//! it resolves inside the root. Symlinked *files* are yielded wherever they
//! point (the hub cache's snapshot links point into `blobs/`); the walk never
//! opens them. Every entry carries its `/`-joined path relative to the root.
//!
//! On Unix each folder is opened once and its entries are stat'ed relative to
//! that descriptor (`fstatat`), so the kernel does not walk the whole path
//! again for every file: `list` over a thousand cache repos spends most of
//! its time in exactly these stats. With [`FsWalk::with_meta`] every
//! non-folder entry comes with its (link-followed) [`Meta`].

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};
#[cfg(not(unix))]
use std::time::{SystemTime, UNIX_EPOCH};

/// Identity and times of one file or folder (what a change would alter).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Stamp {
    #[cfg(unix)]
    pub fn of(m: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
            ctime_ns: m.ctime().saturating_mul(1_000_000_000) + m.ctime_nsec(),
        }
    }

    #[cfg(not(unix))]
    pub fn of(m: &Metadata) -> Self {
        let ns = |t: std::io::Result<SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i64)
        };
        Stamp {
            dev: 0,
            ino: 0,
            mtime_ns: ns(m.modified()),
            ctime_ns: ns(m.created()),
        }
    }

    /// The stamp of `path` (following links), None when it does not exist.
    pub fn path(path: &Path) -> Option<Self> {
        fs::metadata(path).ok().map(|m| Stamp::of(&m))
    }

    /// The later of mtime and ctime, in ns since the epoch.
    pub fn newest_ns(&self) -> i64 {
        self.mtime_ns.max(self.ctime_ns)
    }
}

/// What a stat of an entry says (links followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub len: u64,
    pub is_dir: bool,
    pub is_file: bool,
    /// [`crate::limits::file_type_name`]'s word for the type.
    pub type_name: &'static str,
    pub stamp: Stamp,
}

impl Meta {
    pub fn of(m: &Metadata) -> Self {
        Meta {
            len: m.len(),
            is_dir: m.is_dir(),
            is_file: m.is_file(),
            type_name: crate::limits::file_type_name(m),
            stamp: Stamp::of(m),
        }
    }

    #[cfg(unix)]
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    fn of_stat(st: &rustix::fs::Stat) -> Self {
        use rustix::fs::FileType;
        let ft = FileType::from_raw_mode(st.st_mode as _);
        let type_name = match ft {
            FileType::Directory => "directory",
            FileType::RegularFile => "regular file",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
            FileType::CharacterDevice => "character device",
            FileType::BlockDevice => "block device",
            _ => "special file",
        };
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Meta {
            len: st.st_size.max(0) as u64,
            is_dir: ft == FileType::Directory,
            is_file: ft == FileType::RegularFile,
            type_name,
            stamp: Stamp {
                dev: st.st_dev as u64,
                ino: st.st_ino as u64,
                mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
                ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
            },
        }
    }
}

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
    /// The entry's stat, links followed: for every non-folder entry with
    /// [`FsWalk::with_meta`], and for links the walk followed. None when the
    /// stat failed (a dangling link) or was not asked for.
    pub meta: Option<Meta>,
}

impl WalkEntry {
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Stats of paths below one folder, relative to a descriptor of it (Unix),
/// so each stat walks only the relative part (links followed).
pub struct DirStat {
    root: PathBuf,
    #[cfg(unix)]
    fd: Option<rustix::fd::OwnedFd>,
}

impl DirStat {
    pub fn open(root: &Path) -> Self {
        #[cfg(unix)]
        {
            use rustix::fs::{self as rfs, Mode, OFlags};
            #[cfg(any(target_os = "linux", target_os = "android"))]
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK;
            let fd = rfs::openat(rfs::CWD, root, flags, Mode::empty()).ok();
            DirStat {
                root: root.to_path_buf(),
                fd,
            }
        }
        #[cfg(not(unix))]
        DirStat {
            root: root.to_path_buf(),
        }
    }

    /// The stat of `rel` (`/`-separated, below the folder); None when it
    /// does not resolve.
    pub fn stat(&self, rel: &str) -> Option<Meta> {
        if rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
            return None;
        }
        #[cfg(unix)]
        if let Some(fd) = &self.fd {
            use rustix::fs::{self as rfs, AtFlags};
            return rfs::statat(fd, rel, AtFlags::empty())
                .ok()
                .map(|st| Meta::of_stat(&st));
        }
        meta_of(&self.root.join(rel))
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
    with_meta: bool,
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
        with_meta: false,
        skip_dir: None,
        root: Some(root.to_path_buf()),
        root_path: root.to_path_buf(),
        canonical_root: None,
    }
}

#[cfg(unix)]
fn identity(m: &Meta) -> Option<(u64, u64)> {
    Some((m.stamp.dev, m.stamp.ino))
}

#[cfg(not(unix))]
fn identity(_m: &Meta) -> Option<(u64, u64)> {
    None
}

fn meta_of(path: &Path) -> Option<Meta> {
    fs::metadata(path).ok().map(|m| Meta::of(&m))
}

impl FsWalk {
    /// Descend into symlinked directories (sizes and listings follow links).
    /// Each directory is still entered at most once.
    pub fn follow_links(mut self, yes: bool) -> Self {
        self.follow_links = yes;
        self
    }

    /// Stat every non-folder entry (links followed) into [`WalkEntry::meta`].
    pub fn with_meta(mut self, yes: bool) -> Self {
        self.with_meta = yes;
        self
    }

    /// Do not descend into (nor yield) directories whose name matches.
    pub fn skip_dir(mut self, f: impl Fn(&str) -> bool + 'static) -> Self {
        self.skip_dir = Some(Box::new(f));
        self
    }

    /// Enter `dir` unless it was entered before (by identity).
    fn push_dir(&mut self, dir: PathBuf, rel: String, meta: Option<&Meta>) {
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
                    if let Some(id) = meta_of(&d).as_ref().and_then(identity) {
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
            None => meta_of(&dir).as_ref().and_then(identity),
        };
        if let Some(id) = id {
            if !self.visited.insert(id) {
                return;
            }
        }
        self.stack.push((dir, rel));
    }

    /// One entry of `dir` by name (a link or not, a plain folder or not, from
    /// the listing), with the stat the walk's options ask for (`stat`).
    fn entry(
        &mut self,
        dir: &Path,
        prefix: &str,
        name: &std::ffi::OsStr,
        is_symlink: bool,
        is_plain_dir: bool,
        stat: impl FnOnce() -> Option<Meta>,
    ) -> Option<WalkEntry> {
        let name_s = name.to_string_lossy();
        let rel = if prefix.is_empty() {
            name_s.to_string()
        } else {
            format!("{prefix}/{name_s}")
        };
        let follow = is_symlink && self.follow_links;
        let meta = if follow || (self.with_meta && !is_plain_dir) {
            stat()
        } else {
            None
        };
        let is_dir = if follow {
            meta.is_some_and(|m| m.is_dir)
        } else {
            is_plain_dir
        };
        if is_dir && self.skip_dir.as_ref().is_some_and(|f| f(&name_s)) {
            return None;
        }
        let path = dir.join(name);
        if is_dir {
            self.push_dir(path.clone(), rel.clone(), meta.as_ref().filter(|_| follow));
        }
        Some(WalkEntry {
            path,
            rel,
            is_symlink,
            is_dir,
            meta,
        })
    }

    /// List `dir`: one open, one `fstatat` per entry that needs a stat.
    #[cfg(unix)]
    fn read(&mut self, dir: &Path, prefix: &str) {
        use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
        use std::os::unix::ffi::OsStrExt;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let Ok(fd) = rfs::openat(rfs::CWD, dir, flags, Mode::empty()) else {
            return;
        };
        let Ok(mut rd) = rfs::Dir::new(fd) else {
            return;
        };
        let mut names = Vec::new();
        while let Some(Ok(e)) = rd.next() {
            let n = e.file_name();
            if n.to_bytes() != b"." && n.to_bytes() != b".." {
                names.push((n.to_owned(), e.file_type()));
            }
        }
        let Ok(dfd) = rd.fd() else { return };
        let mut entries: Vec<WalkEntry> = Vec::with_capacity(names.len());
        for (cname, ft) in names {
            let ft = if ft == FileType::Unknown {
                match rfs::statat(dfd, cname.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode as _),
                    Err(_) => continue,
                }
            } else {
                ft
            };
            let name = std::ffi::OsStr::from_bytes(cname.to_bytes());
            let stat = || {
                rfs::statat(dfd, cname.as_c_str(), AtFlags::empty())
                    .ok()
                    .map(|st| Meta::of_stat(&st))
            };
            let is_symlink = ft == FileType::Symlink;
            let is_plain_dir = ft == FileType::Directory;
            if let Some(e) = self.entry(dir, prefix, name, is_symlink, is_plain_dir, stat) {
                entries.push(e);
            }
        }
        // Yield in listing order.
        entries.reverse();
        self.pending.extend(entries);
    }

    #[cfg(not(unix))]
    fn read(&mut self, dir: &Path, prefix: &str) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut entries: Vec<WalkEntry> = Vec::new();
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            let stat = || meta_of(&path);
            let name = e.file_name();
            if let Some(we) = self.entry(dir, prefix, &name, ft.is_symlink(), ft.is_dir(), stat) {
                entries.push(we);
            }
        }
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
