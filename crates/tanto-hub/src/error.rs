//! [`HubError`]: everything `pull`, `clone` and `repair_index` can fail with, with
//! messages that say what to do, and [`HubError::error_type`], the one place that
//! decides each error's stable type in the shared taxonomy (CLI envelope, HTTP).

use std::io;
use std::path::PathBuf;

use tanto_core::error::ErrorType;
use tanto_core::resolve::cache::CacheError;
use tanto_core::workspace::WorkspaceError;

/// Everything that can go wrong in `pull`, `clone` and `repair_index`.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    InvalidRepoId(String),
    #[error(
        "repository '{repo}' not found on {endpoint} (if it is private or gated, \
         set HF_TOKEN to a token that can read it)"
    )]
    RepoNotFound { repo: String, endpoint: String },
    #[error(
        "access to '{repo}' denied (HTTP {status}): {}",
        if *gated {
            "gated repository; accept its terms on the hub and set HF_TOKEN"
        } else {
            "private or gated repository; set HF_TOKEN to a token that can read it"
        }
    )]
    Unauthorized {
        repo: String,
        status: u16,
        gated: bool,
    },
    #[error("invalid revision {revision:?}: {reason}; give a branch, tag or commit")]
    InvalidRevision { revision: String, reason: String },
    #[error(
        "refusing to write through {}: {reason}; if the cache is shared, someone may have \
         planted it: inspect and remove it, then run the same pull again",
        path.display()
    )]
    UnsafeCachePath { path: PathBuf, reason: String },
    #[error(
        "refusing to copy {}: {reason}; only regular files and links that stay inside \
         the model folder are copied",
        path.display()
    )]
    UnsafeSourceEntry { path: PathBuf, reason: String },
    #[error("revision '{revision}' not found in '{repo}'")]
    RevisionNotFound { repo: String, revision: String },
    #[error("file '{file}' not found in '{repo}' at revision {revision}")]
    EntryNotFound {
        repo: String,
        revision: String,
        file: String,
    },
    #[error("network error ({url}): {message}; run the same command again to resume")]
    Network { url: String, message: String },
    #[error(
        "hash mismatch for '{file}': expected {expected}, got {actual}; \
         the partial download was deleted, run the pull again"
    )]
    HashMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("disk full while writing {}; free some space and run the same pull again to resume", path.display())]
    DiskFull { path: PathBuf },
    #[error(
        "offline mode (HF_HUB_OFFLINE is set): cannot reach the hub to pull '{repo}'; \
         unset HF_HUB_OFFLINE to download"
    )]
    Offline { repo: String },
    #[error("download cancelled; run the same pull again to resume")]
    Cancelled,
    #[error("unexpected response from {url}: {message}")]
    Protocol { url: String, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("target {} exists and is not an empty directory", .0.display())]
    TargetNotEmpty(PathBuf),
    #[error("source {} is not a directory", .0.display())]
    SourceNotADirectory(PathBuf),
    #[error("tensor '{tensor}' appears in both {first} and {second}")]
    DuplicateTensor {
        tensor: String,
        first: String,
        second: String,
    },
    #[error("{file}: invalid safetensors header: {message}")]
    BadShard { file: String, message: String },
    /// `convert --quantize` refused the source or the options.
    #[error("{0}")]
    CannotQuantize(String),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// `push` needs a token with write access.
    #[error("no Hugging Face token: set HF_TOKEN (a token with write access) or log in with `hf auth login`")]
    MissingToken,
}

impl HubError {
    /// Wrap an I/O error, recognising a full disk (ENOSPC / EDQUOT).
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_disk_full(&source) {
            HubError::DiskFull { path }
        } else {
            HubError::Io { path, source }
        }
    }

    /// The error's type in the shared taxonomy: the CLI's `--json` envelope and the
    /// server's status both come from it; front-ends only choose the wording.
    pub fn error_type(&self) -> ErrorType {
        match self {
            HubError::InvalidRepoId(_)
            | HubError::InvalidRevision { .. }
            | HubError::TargetNotEmpty(_)
            | HubError::SourceNotADirectory(_)
            | HubError::CannotQuantize(_) => ErrorType::ValidationError,
            HubError::RepoNotFound { .. } | HubError::EntryNotFound { .. } => {
                ErrorType::ModelNotFound
            }
            HubError::Unauthorized { .. } | HubError::MissingToken => ErrorType::AccessDenied,
            HubError::RevisionNotFound { .. } => ErrorType::RevisionNotFound,
            HubError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                ErrorType::PermissionDenied
            }
            HubError::UnsafeCachePath { .. } => ErrorType::PermissionDenied,
            HubError::UnsafeSourceEntry { .. } => ErrorType::UnhealthyModel,
            HubError::Network { .. }
            | HubError::HashMismatch { .. }
            | HubError::DiskFull { .. }
            | HubError::Offline { .. }
            | HubError::Cancelled
            | HubError::Protocol { .. }
            | HubError::Io { .. }
            | HubError::DuplicateTensor { .. }
            | HubError::BadShard { .. }
            | HubError::Workspace(_) => ErrorType::DownloadFailed,
        }
    }

    /// True for errors after which running the same pull again resumes.
    pub fn is_resumable(&self) -> bool {
        matches!(
            self,
            HubError::Network { .. }
                | HubError::DiskFull { .. }
                | HubError::Cancelled
                | HubError::HashMismatch { .. }
        )
    }
}

/// A cache write refused or failed in tanto-core's cache owner: a planted link or
/// a path leaving the repo folder is [`HubError::UnsafeCachePath`], an I/O error
/// stays one (a full disk as [`HubError::DiskFull`]).
impl From<CacheError> for HubError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Io { path, source } => HubError::io(path, source),
            CacheError::Unsafe { path, reason } => HubError::UnsafeCachePath { path, reason },
            CacheError::Outside { path, root } => HubError::UnsafeCachePath {
                reason: format!("it is not inside {}", root.display()),
                path,
            },
        }
    }
}

pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(e.raw_os_error(), Some(c) if c == libc::ENOSPC || c == libc::EDQUOT)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_disk_full() {
        let e = HubError::io("/x", io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(e, HubError::DiskFull { .. }));
        assert!(e.to_string().contains("resume"));
        let e = HubError::io("/x", io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(e, HubError::Io { .. }));
    }

    #[test]
    fn messages_name_the_fix() {
        let e = HubError::Unauthorized {
            repo: "o/n".into(),
            status: 403,
            gated: true,
        };
        assert!(e.to_string().contains("HF_TOKEN"));
        let e = HubError::RepoNotFound {
            repo: "o/n".into(),
            endpoint: "http://x".into(),
        };
        assert!(e.to_string().contains("HF_TOKEN"));
    }

    #[test]
    fn error_types_match_the_taxonomy() {
        use std::path::Path;
        let p = || Path::new("/x").to_path_buf();
        let s = String::new;
        let cases: Vec<(HubError, ErrorType)> = vec![
            (HubError::InvalidRepoId(s()), ErrorType::ValidationError),
            (
                HubError::InvalidRevision {
                    revision: "../x".into(),
                    reason: s(),
                },
                ErrorType::ValidationError,
            ),
            (HubError::TargetNotEmpty(p()), ErrorType::ValidationError),
            (
                HubError::SourceNotADirectory(p()),
                ErrorType::ValidationError,
            ),
            (
                HubError::RepoNotFound {
                    repo: s(),
                    endpoint: s(),
                },
                ErrorType::ModelNotFound,
            ),
            (
                HubError::EntryNotFound {
                    repo: s(),
                    revision: s(),
                    file: s(),
                },
                ErrorType::ModelNotFound,
            ),
            (
                HubError::Unauthorized {
                    repo: s(),
                    status: 401,
                    gated: false,
                },
                ErrorType::AccessDenied,
            ),
            (
                HubError::RevisionNotFound {
                    repo: s(),
                    revision: s(),
                },
                ErrorType::RevisionNotFound,
            ),
            (
                HubError::io("/x", io::Error::from(io::ErrorKind::PermissionDenied)),
                ErrorType::PermissionDenied,
            ),
            (
                HubError::io("/x", io::Error::from(io::ErrorKind::NotFound)),
                ErrorType::DownloadFailed,
            ),
            (
                HubError::UnsafeCachePath {
                    path: p(),
                    reason: s(),
                },
                ErrorType::PermissionDenied,
            ),
            (
                HubError::UnsafeSourceEntry {
                    path: p(),
                    reason: s(),
                },
                ErrorType::UnhealthyModel,
            ),
            (
                HubError::Network {
                    url: s(),
                    message: s(),
                },
                ErrorType::DownloadFailed,
            ),
            (HubError::Cancelled, ErrorType::DownloadFailed),
            (HubError::Offline { repo: s() }, ErrorType::DownloadFailed),
            (HubError::DiskFull { path: p() }, ErrorType::DownloadFailed),
            (
                HubError::Protocol {
                    url: s(),
                    message: s(),
                },
                ErrorType::DownloadFailed,
            ),
            (
                HubError::BadShard {
                    file: s(),
                    message: s(),
                },
                ErrorType::DownloadFailed,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.error_type(), want, "{e:?}");
        }
    }

    #[test]
    fn disk_full_from_dev_full() {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
            let err = f.write_all(b"x").and_then(|_| f.flush()).unwrap_err();
            assert!(is_disk_full(&err));
        }
    }
}
