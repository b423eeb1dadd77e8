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

/// Copy `src` (symlinks followed) to `dst` (must not exist), keeping permissions.
pub(crate) fn copy_file(src: &Path, dst: &Path) -> Result<CopyMethod, HubError> {
    if try_reflink(src, dst).map_err(|e| HubError::io(dst, e))? {
        return Ok(CopyMethod::Reflink);
    }
    fs::copy(src, dst).map_err(|e| HubError::io(dst, e))?;
    Ok(CopyMethod::Copy)
}

/// `Ok(true)` when the reflink worked; `Ok(false)` when the filesystem cannot (the
/// destination is then removed so a copy can follow).
#[cfg(target_os = "linux")]
fn try_reflink(src: &Path, dst: &Path) -> io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    let s = File::open(src)?;
    let perms = s.metadata()?.permissions();
    let d = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)?;
    // SAFETY: ioctl(FICLONE) with two valid descriptors.
    let rc = unsafe { libc::ioctl(d.as_raw_fd(), libc::FICLONE, s.as_raw_fd()) };
    if rc == 0 {
        d.set_permissions(perms)?;
        return Ok(true);
    }
    drop(d);
    fs::remove_file(dst)?;
    Ok(false)
}

#[cfg(not(target_os = "linux"))]
fn try_reflink(_src: &Path, _dst: &Path) -> io::Result<bool> {
    Ok(false)
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
        let m = copy_file(&a, &b).unwrap();
        assert!(matches!(m, CopyMethod::Reflink | CopyMethod::Copy));
        fs::write(&b, b"changed").unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"hello");
        // Never overwrites.
        assert!(copy_file(&a, &b).is_err());
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
