//! Copying files for workspaces: reflink when the filesystem allows, else a copy.
//! Never a hardlink (it would share the cache blob's inode: an edit in the
//! workspace would change the cache).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::HubError;

/// How a file reached the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyMethod {
    /// Copy-on-write clone (`FICLONE`): shares extents until written, no extra space.
    Reflink,
    /// Byte copy.
    Copy,
}

/// Open `path` for reading only if it is a regular file: the last component is not
/// followed (`O_NOFOLLOW`; callers pass a resolved path) and a fifo or device is
/// refused before any read could block on it. `Ok(None)` for "not a regular file".
pub(crate) fn open_regular(path: &Path) -> io::Result<Option<File>> {
    let mut oo = fs::OpenOptions::new();
    oo.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        oo.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let f = oo.open(path)?;
    Ok(f.metadata()?.is_file().then_some(f))
}

/// Copy the open regular file `src` to `dst` (must not exist), keeping permissions.
pub(crate) fn copy_file(src: &File, dst: &Path) -> Result<CopyMethod, HubError> {
    let perms = src
        .metadata()
        .map_err(|e| HubError::io(dst, e))?
        .permissions();
    let mut d = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| HubError::io(dst, e))?;
    let method = if try_reflink(src, &d) {
        CopyMethod::Reflink
    } else {
        io::copy(&mut &*src, &mut d).map_err(|e| HubError::io(dst, e))?;
        CopyMethod::Copy
    };
    d.set_permissions(perms).map_err(|e| HubError::io(dst, e))?;
    Ok(method)
}

/// True when `dst` now shares `src`'s extents (FICLONE); false when the filesystem
/// cannot, with `dst` still empty so a copy can follow.
#[cfg(target_os = "linux")]
fn try_reflink(src: &File, dst: &File) -> bool {
    use std::os::unix::io::AsRawFd;
    // SAFETY: ioctl(FICLONE) with two valid descriptors.
    unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn try_reflink(_src: &File, _dst: &File) -> bool {
    false
}

/// A directory that is removed on drop unless [`TempDir::keep`] was called.
pub(crate) struct StagingDir {
    path: PathBuf,
    keep: bool,
}

impl StagingDir {
    /// A fresh hidden directory next to `target`.
    pub(crate) fn next_to(target: &Path) -> Result<StagingDir, HubError> {
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(|e| HubError::io(parent, e))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workspace".into());
        let path = parent.join(format!(".{name}.tanto-tmp-{}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|e| HubError::io(&path, e))?;
        }
        fs::create_dir(&path).map_err(|e| HubError::io(&path, e))?;
        Ok(StagingDir { path, keep: false })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Move the staged tree to `target` (absent or an empty directory).
    pub(crate) fn commit(mut self, target: &Path) -> Result<(), HubError> {
        if target.is_dir() {
            // rename(2) replaces an empty directory; a non-empty one fails below.
            fs::remove_dir(target).map_err(|e| HubError::io(target, e))?;
        }
        fs::rename(&self.path, target).map_err(|e| HubError::io(target, e))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Refuse a target that exists and is not an empty directory.
pub(crate) fn check_target(target: &Path) -> Result<(), HubError> {
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(HubError::io(target, e)),
        Ok(md) if md.is_dir() => {
            let mut rd = fs::read_dir(target).map_err(|e| HubError::io(target, e))?;
            if rd.next().is_none() {
                Ok(())
            } else {
                Err(HubError::TargetNotEmpty(target.to_path_buf()))
            }
        }
        Ok(_) => Err(HubError::TargetNotEmpty(target.to_path_buf())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_is_independent_of_source() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::write(&a, b"hello").unwrap();
        let src = open_regular(&a).unwrap().unwrap();
        let m = copy_file(&src, &b).unwrap();
        assert!(matches!(m, CopyMethod::Reflink | CopyMethod::Copy));
        assert_eq!(fs::read(&b).unwrap(), b"hello");
        fs::write(&b, b"changed").unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"hello");
        // Never overwrites.
        assert!(copy_file(&src, &b).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn open_regular_refuses_links_and_fifos() {
        let d = tempfile::tempdir().unwrap();
        let (a, l, p) = (d.path().join("a"), d.path().join("l"), d.path().join("p"));
        fs::write(&a, b"x").unwrap();
        std::os::unix::fs::symlink(&a, &l).unwrap();
        assert!(open_regular(&l).is_err());
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(open_regular(&p).unwrap().is_none());
    }

    #[test]
    fn target_rules() {
        let d = tempfile::tempdir().unwrap();
        assert!(check_target(&d.path().join("new")).is_ok());
        assert!(check_target(d.path()).is_ok());
        fs::write(d.path().join("f"), b"").unwrap();
        assert!(matches!(
            check_target(d.path()),
            Err(HubError::TargetNotEmpty(_))
        ));
        assert!(matches!(
            check_target(&d.path().join("f")),
            Err(HubError::TargetNotEmpty(_))
        ));
    }
}
