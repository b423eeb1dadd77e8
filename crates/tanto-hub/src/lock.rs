//! Advisory file locks compatible with Python's `filelock` (BSD `flock`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// An exclusive `flock` held until drop. The lock file itself stays (as with
/// `huggingface_hub`).
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Create `path` (and its parents) and block until the exclusive lock is ours.
    pub(crate) fn acquire(path: &Path) -> io::Result<FileLock> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        // O_NOFOLLOW: a lock file replaced by a link (shared cache) is refused, not
        // opened through. create_new (O_EXCL) never follows one anyway.
        let mut oo = OpenOptions::new();
        oo.write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            oo.custom_flags(libc::O_NOFOLLOW);
        }
        let file = match oo.clone().create_new(true).open(path) {
            Ok(f) => {
                // Python's filelock leaves lock files group-writable (0664).
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = f.set_permissions(fs::Permissions::from_mode(0o664));
                }
                f
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => oo.open(path)?,
            Err(e) => return Err(e),
        };
        lock_exclusive(&file)?;
        Ok(FileLock { _file: file })
    }
}

#[cfg(unix)]
fn lock_exclusive(file: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &File) -> io::Result<()> {
    Ok(())
}
// The lock is released when the descriptor closes (drop of `File`).

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn lock_excludes_a_second_holder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/x.lock");
        let held = FileLock::acquire(&p).unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let (p2, got2) = (p.clone(), got.clone());
        let t = std::thread::spawn(move || {
            let _l = FileLock::acquire(&p2).unwrap();
            got2.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(150));
        assert!(!got.load(Ordering::SeqCst));
        drop(held);
        t.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
        assert!(p.exists());
    }
}
