//! tanto-hub: get models from a Hugging Face hub into the shared HF cache, and make
//! self-contained workspaces from them. No UI: callers draw progress.
//!
//! # Pull
//!
//! ```no_run
//! use tanto_hub::{pull, PullOptions};
//! let mut opts = PullOptions::new("org/name");
//! opts.revision = Some("main".into());
//! opts.include = vec!["*.json".into(), "*.safetensors".into()];
//! opts.progress = Some(std::sync::Arc::new(|file: &str, done: u64, total: u64| {
//!     eprintln!("{file}: {done}/{total}");
//! }));
//! let report = pull(&opts)?;
//! println!("{}", report.snapshot_dir.display());
//! # Ok::<(), tanto_hub::HubError>(())
//! ```
//!
//! * [`pull`]`(&PullOptions) -> Result<PullReport, HubError>` speaks the hub HTTP
//!   protocol (`GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true`, then per
//!   file `HEAD` + `GET {endpoint}/{repo}/resolve/{commit}/{file}`) and writes the
//!   cache exactly as `huggingface_hub` does: `models--org--name/blobs/<etag>` (sha256
//!   for LFS files, git sha1 otherwise), `blobs/<etag>.incomplete` while downloading
//!   (resumed with `Range`), relative symlinks `snapshots/<commit>/<path>` →
//!   `../../blobs/<etag>`, `refs/<branch-or-tag>` holding the commit, and
//!   `.locks/models--org--name/<etag>.lock` (`flock`, shared with Python). LFS files
//!   are sha256-verified and git files sha1-verified before the atomic rename. Up to
//!   [`PullOptions::concurrency`] files download at once.
//! * Safe on a shared cache: the revision must be a valid git ref name or commit;
//!   no write follows a link planted inside the repo folder (folders are checked
//!   component by component, `.incomplete` files opened `O_NOFOLLOW`, other files
//!   written to an `O_EXCL` temporary and renamed; every cache write is
//!   [`tanto_core::resolve::cache`]'s, the one owner of the layout). The token goes only to the
//!   endpoint's exact origin (scheme, host, port), never across a redirect to
//!   another. A file needs a size or a verifiable hash, and no more bytes than
//!   announced are kept ([`PullOptions::max_unsized_bytes`] bounds a file with a
//!   hash but no size).
//! * Settings come from [`PullOptions`], else the environment ([`HubConfig::from_env`]):
//!   `HF_ENDPOINT`, `HF_TOKEN` / `HUGGING_FACE_HUB_TOKEN` / `HUGGINGFACE_HUB_TOKEN` /
//!   `$HF_TOKEN_PATH` / `$HF_HOME/token`, `HF_HUB_OFFLINE`, the cache dir from
//!   [`tanto_core::paths::hub_cache`].
//! * Progress: implement [`Progress`] (or pass a closure `Fn(&str, u64, u64)`).
//!   Cancel with [`PullOptions::cancel`]; an interrupted pull (cancel, error, kill)
//!   leaves a resumable state and a marker read by [`pending_pull`], whose
//!   [`PendingPull::resume_command`] tells the user how to resume.
//! * Errors are typed ([`HubError`]): `RepoNotFound`, `Unauthorized` (gated/private:
//!   set `HF_TOKEN`), `RevisionNotFound`, `EntryNotFound`, `Network` (resume hint),
//!   `HashMismatch` (the partial file is deleted), `DiskFull`, `Offline`, `Cancelled`,
//!   `InvalidRevision`, `UnsafeCachePath` (a planted link refused). Each has its
//!   taxonomy type in [`HubError::error_type`].
//!
//! # Clone
//!
//! [`clone_snapshot`]`(src_snapshot_dir, target, source_repo, source_revision)` copies a
//! snapshot (symlinks dereferenced, but only those that stay inside the repo folder
//! `models--org--name`; regular files only, else `UnsafeSourceEntry`) into a new
//! self-contained workspace: reflink
//! (`FICLONE`) where the filesystem allows, else a plain copy. Never a hardlink: a
//! hardlink shares the cache blob's inode, so editing the workspace would silently
//! modify the cache. The copy is built in a hidden temporary folder next to the target
//! and renamed into place; the sentinel (`.mlxk_workspace.json`, operation `clone`,
//! content_hash v2, `tanto_version`) is written last.
//!
//! # Convert --repair-index
//!
//! [`repair_index`]`(src_dir, dst_dir)` copies a model into a new workspace and rebuilds
//! `model.safetensors.index.json` from the shard headers (`weight_map` tensor → shard,
//! `metadata.total_size` = sum of tensor byte sizes), sentinel operation `convert`,
//! mode `repair-index`. Its copy follows the same rule as clone: links must stay
//! inside the model folder.

mod clone;
mod config;
mod convert;
mod error;
mod fsutil;
mod lock;
mod pull;
mod push;
pub mod quantize;

pub use clone::{clone_snapshot, CloneReport};
pub use config::{is_truthy, HubConfig, DEFAULT_ENDPOINT};
pub use convert::{repair_index, RepairReport};
pub use error::HubError;
pub use fsutil::CopyMethod;
pub use pull::{
    matches_patterns, pending_pull, pull, FileStatus, PendingPull, PlannedFile, Progress,
    PullOptions, PullReport, PulledFile, DEFAULT_MAX_UNSIZED_BYTES,
};
pub use push::{local_files, push, LocalFile, PushOptions, PushProgress, PushReport};
pub use quantize::{quantize, QuantizeOptions, QuantizeReport};
