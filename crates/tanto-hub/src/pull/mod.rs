//! `pull`: a hub repo at a revision → the shared HF cache, in four phases
//! ([`pull`]): resolve the revision, list (and filter) its files, download them
//! with a small worker pool, then link refs and the extras. The HTTP side is in
//! `api`, one file's transfer in `download`; every cache write (and its
//! shared-cache safety) is tanto-core's cache owner,
//! [`tanto_core::resolve::cache`], through [`CacheRepo`].

pub(crate) mod api;
pub(crate) mod download;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::Client;
use serde::Serialize;
use tanto_core::naming::validate_repo_id;
use tanto_core::pycompat::fnmatch;
use tanto_core::resolve::cache::TreeEntry;
use tanto_core::store::CacheRepo;

pub use tanto_core::resolve::cache::{pending_pull, PendingPull};

use crate::config::HubConfig;
use crate::HubError;
use api::{net_err, Sibling};

/// Receives download progress. All methods have no-op defaults except
/// [`Progress::file_progress`]; a closure `Fn(&str, u64, u64)` implements it
/// (`total` is 0 when unknown).
pub trait Progress: Send + Sync {
    /// The repo is resolved to `commit`; these files will be fetched (after filters).
    fn pull_started(&self, _commit: &str, _files: &[PlannedFile]) {}
    /// A download begins (`resumed_from` > 0 when an `.incomplete` file is resumed).
    fn file_started(&self, _file: &str, _total: Option<u64>, _resumed_from: u64) {}
    /// Bytes of `file` on disk so far.
    fn file_progress(&self, file: &str, done: u64, total: Option<u64>);
    /// `file` is in place (downloaded, or already cached).
    fn file_finished(&self, _file: &str, _status: FileStatus) {}
}

impl<F: Fn(&str, u64, u64) + Send + Sync> Progress for F {
    fn file_progress(&self, file: &str, done: u64, total: Option<u64>) {
        self(file, done, total.unwrap_or(0))
    }
}

/// What to pull and how. [`PullOptions::new`] fills defaults from the environment
/// at call time (fields left `None`).
#[derive(Clone)]
pub struct PullOptions {
    /// `org/name`.
    pub repo_id: String,
    /// Branch, tag or commit; default `main`.
    pub revision: Option<String>,
    /// Glob patterns (fnmatch on the repo path; a trailing `/` means everything
    /// below): when non-empty, a file must match one.
    pub include: Vec<String>,
    /// Glob patterns: a file matching one is skipped.
    pub exclude: Vec<String>,
    /// Override `HF_ENDPOINT`.
    pub endpoint: Option<String>,
    /// Override the token lookup (`Some("")`: send no token).
    pub token: Option<String>,
    /// Override the hub cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Override `HF_HUB_OFFLINE`.
    pub offline: Option<bool>,
    /// Files downloaded at once (default 4).
    pub concurrency: usize,
    /// Automatic resumes of one file after a dropped connection (default 3).
    pub retries: u32,
    /// Progress sink.
    pub progress: Option<Arc<dyn Progress>>,
    /// Set to stop: downloads end at the next chunk and stay resumable.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Per-read network timeout (default 60 s).
    pub timeout: Duration,
    /// Most bytes accepted for a file whose size neither the listing nor the file
    /// metadata gives (such a file must still have a verifiable hash as its etag;
    /// default [`DEFAULT_MAX_UNSIZED_BYTES`]). A file with a size stops there.
    pub max_unsized_bytes: u64,
}

/// Default [`PullOptions::max_unsized_bytes`]: 16 GiB.
pub const DEFAULT_MAX_UNSIZED_BYTES: u64 = 16 << 30;

impl PullOptions {
    pub fn new(repo_id: impl Into<String>) -> Self {
        PullOptions {
            repo_id: repo_id.into(),
            revision: None,
            include: Vec::new(),
            exclude: Vec::new(),
            endpoint: None,
            token: None,
            cache_dir: None,
            offline: None,
            concurrency: 4,
            retries: 3,
            progress: None,
            cancel: None,
            timeout: Duration::from_secs(60),
            max_unsized_bytes: DEFAULT_MAX_UNSIZED_BYTES,
        }
    }
}

/// A file the pull will fetch, from the repo listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFile {
    pub path: String,
    /// Size from the listing, when the hub sent it.
    pub size: Option<u64>,
    /// LFS sha256, when the file is in LFS.
    pub lfs_sha256: Option<String>,
}

/// How a file got into the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// The blob was already in the cache.
    Cached,
    /// Downloaded from scratch.
    Downloaded,
    /// Completed from an `.incomplete` file.
    Resumed,
}

/// One file of a finished pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulledFile {
    pub path: String,
    /// The blob name (sha256 for LFS files, git sha1 otherwise).
    pub etag: String,
    pub size: u64,
    pub status: FileStatus,
}

/// Result of a successful [`pull`].
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub repo_id: String,
    /// The revision asked for (`main` by default).
    pub revision: String,
    /// The commit it resolved to.
    pub commit: String,
    /// `<cache>/models--org--name`.
    pub repo_dir: PathBuf,
    /// `<repo_dir>/snapshots/<commit>`.
    pub snapshot_dir: PathBuf,
    /// Sorted by path.
    pub files: Vec<PulledFile>,
    /// Bytes transferred over the network by this call.
    pub bytes_downloaded: u64,
}

/// huggingface_hub's `filter_repo_objects`: include (any must match) then exclude.
pub fn matches_patterns(path: &str, include: &[String], exclude: &[String]) -> bool {
    let m = |p: &String| {
        if p.ends_with('/') {
            fnmatch(&format!("{p}*"), path)
        } else {
            fnmatch(p, path)
        }
    };
    (include.is_empty() || include.iter().any(m)) && !exclude.iter().any(m)
}

/// Reject repo paths that would escape the snapshot.
fn safe_repo_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && !p.contains('\0')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Check a revision the way `git check-ref-format --allow-onelevel` checks a ref
/// name (a commit id passes too): it becomes `refs/<revision>` in the cache, so
/// `..`, a leading `/` and the like would write outside it.
pub(crate) fn validate_revision(rev: &str) -> Result<(), HubError> {
    let bad = |reason: &str| {
        Err(HubError::InvalidRevision {
            revision: rev.to_string(),
            reason: reason.to_string(),
        })
    };
    if rev.is_empty() {
        return bad("it is empty");
    }
    if rev.len() > 255 {
        return bad("it is longer than 255 bytes");
    }
    if rev.starts_with('-') {
        return bad("it starts with '-'");
    }
    if rev.starts_with('/') || rev.ends_with('/') {
        return bad("it starts or ends with '/'");
    }
    if rev.contains("//") {
        return bad("it contains '//'");
    }
    if rev.contains("..") {
        return bad("it contains '..'");
    }
    if rev.contains("@{") || rev == "@" {
        return bad("it contains '@{' or is '@'");
    }
    if rev.ends_with('.') {
        return bad("it ends with '.'");
    }
    if let Some(c) = rev
        .chars()
        .find(|&c| c.is_ascii_control() || c == ' ' || "~^:?*[\\".contains(c))
    {
        return bad(&format!("it contains {c:?}"));
    }
    for comp in rev.split('/') {
        if comp.starts_with('.') {
            return bad("a component starts with '.'");
        }
        if comp.ends_with(".lock") {
            return bad("a component ends with '.lock'");
        }
    }
    Ok(())
}

/// What every worker of one pull shares.
struct PullCtx<'a> {
    cfg: HubConfig,
    opts: &'a PullOptions,
    client: Client,
    /// `org/name`, trimmed.
    repo: String,
    /// Commit the files are resolved against.
    commit: String,
    /// The repo in the hub cache: every write goes through it.
    cache: CacheRepo,
    /// Internal stop: set on the first failure or on user cancel.
    abort: AtomicBool,
    bytes: Mutex<u64>,
}

impl PullCtx<'_> {
    fn cancelled(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
            || self
                .opts
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn progress(&self) -> Option<&dyn Progress> {
        self.opts.progress.as_deref()
    }

    fn add_bytes(&self, n: u64) {
        if let Ok(mut b) = self.bytes.lock() {
            *b += n;
        }
    }
}

/// The configuration of one pull: the environment, overridden by `opts`.
fn effective_config(opts: &PullOptions) -> HubConfig {
    let mut cfg = HubConfig::from_env();
    if let Some(e) = &opts.endpoint {
        cfg.endpoint = e.trim_end_matches('/').to_string();
    }
    if let Some(t) = &opts.token {
        cfg.token = Some(t.clone()).filter(|t| !t.is_empty());
    }
    if let Some(c) = &opts.cache_dir {
        cfg.cache_dir = c.clone();
    }
    if let Some(o) = opts.offline {
        cfg.offline = o;
    }
    cfg
}

fn http_client(opts: &PullOptions, endpoint: &str) -> Result<Client, HubError> {
    hub_client(opts.timeout, endpoint)
}

/// The blocking client every hub call uses (pull and push): tanto's user
/// agent, no automatic redirects, 15 s to connect, `timeout` per read.
pub(crate) fn hub_client(timeout: Duration, endpoint: &str) -> Result<Client, HubError> {
    Client::builder()
        .user_agent(concat!(
            "tanto/",
            env!("CARGO_PKG_VERSION"),
            "; hf_hub/compatible"
        ))
        // Redirects are followed by hand (api.rs) so the token's destination is ours to decide.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .timeout(timeout)
        .build()
        .map_err(|e| net_err(endpoint, e))
}

/// Pull `opts.repo_id` at `opts.revision` into the hub cache. Blocking; downloads up
/// to `opts.concurrency` files at once. See the crate docs for the layout.
pub fn pull(opts: &PullOptions) -> Result<PullReport, HubError> {
    let repo = opts.repo_id.trim().to_string();
    validate_repo_id(&repo).map_err(HubError::InvalidRepoId)?;
    let cfg = effective_config(opts);
    if cfg.offline {
        return Err(HubError::Offline { repo });
    }
    let revision = opts
        .revision
        .clone()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "main".to_string());
    validate_revision(&revision)?;
    let client = http_client(opts, &cfg.endpoint)?;

    let (commit, siblings, listing_url) = resolve_revision(&client, &cfg, &repo, &revision)?;
    let planned = plan_files(&siblings, opts, &listing_url)?;

    let cache = CacheRepo::in_cache(&cfg.cache_dir, &repo);
    cache.create_pull_dirs(&commit)?;
    cache.write_pull_marker(&PendingPull {
        repo_id: repo.clone(),
        revision: revision.clone(),
        commit: commit.clone(),
        files: planned.iter().map(|f| f.path.clone()).collect(),
        include: opts.include.clone(),
        exclude: opts.exclude.clone(),
        incomplete_blobs: Vec::new(),
    })?;
    let ctx = PullCtx {
        cfg,
        opts,
        client,
        repo,
        commit,
        cache,
        abort: AtomicBool::new(false),
        bytes: Mutex::new(0),
    };
    if let Some(p) = ctx.progress() {
        p.pull_started(&ctx.commit, &planned);
    }
    let mut files = download_all(&ctx, planned)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));

    link_refs(&ctx.cache, &revision, &ctx.commit, &siblings)?;
    let bytes_downloaded = ctx.bytes.lock().map(|b| *b).unwrap_or(0);
    Ok(PullReport {
        snapshot_dir: ctx.cache.snapshot_dir(&ctx.commit),
        repo_id: ctx.repo,
        revision,
        commit: ctx.commit,
        repo_dir: ctx.cache.dir,
        files,
        bytes_downloaded,
    })
}

/// Phase 1: the commit `revision` points at, and the repo's files at it.
fn resolve_revision(
    client: &Client,
    cfg: &HubConfig,
    repo: &str,
    revision: &str,
) -> Result<(String, Vec<Sibling>, String), HubError> {
    let (commit, info, url) =
        api::repo_info(client, &cfg.endpoint, cfg.token.as_deref(), repo, revision)?;
    // The paged tree listing is the full file list (the info's siblings may be
    // cut short for large repos); a server without it has only the siblings.
    match api::list_tree(client, &cfg.endpoint, cfg.token.as_deref(), repo, &commit)? {
        Some(files) => Ok((commit, files, url)),
        None => Ok((commit, info.siblings, url)),
    }
}

/// Phase 2: the files to fetch (safe names only, after the include/exclude
/// filters), sorted by path.
fn plan_files(
    siblings: &[Sibling],
    opts: &PullOptions,
    listing_url: &str,
) -> Result<Vec<PlannedFile>, HubError> {
    let mut planned = Vec::new();
    for s in siblings {
        if !safe_repo_path(&s.rfilename) {
            return Err(HubError::Protocol {
                url: listing_url.to_string(),
                message: format!("unsafe file name in repo listing: {:?}", s.rfilename),
            });
        }
        if matches_patterns(&s.rfilename, &opts.include, &opts.exclude) {
            planned.push(PlannedFile {
                path: s.rfilename.clone(),
                size: s.size,
                lfs_sha256: s.lfs.as_ref().map(|l| l.sha256.to_ascii_lowercase()),
            });
        }
    }
    planned.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(planned)
}

/// Phase 3: fetch with a small pool of workers; the first failure stops the rest.
fn download_all(ctx: &PullCtx, planned: Vec<PlannedFile>) -> Result<Vec<PulledFile>, HubError> {
    let queue: Mutex<VecDeque<PlannedFile>> = Mutex::new(planned.into_iter().collect());
    let results: Mutex<Vec<PulledFile>> = Mutex::new(Vec::new());
    let first_err: Mutex<Option<HubError>> = Mutex::new(None);
    let next = || queue.lock().ok().and_then(|mut q| q.pop_front());
    std::thread::scope(|s| {
        for _ in 0..ctx.opts.concurrency.max(1) {
            s.spawn(|| {
                while let Some(f) = next().filter(|_| !ctx.cancelled()) {
                    match download::fetch_file(ctx, &f) {
                        Ok(done) => {
                            if let Some(p) = ctx.progress() {
                                p.file_finished(&done.path, done.status);
                            }
                            if let Ok(mut r) = results.lock() {
                                r.push(done);
                            }
                        }
                        Err(e) => {
                            ctx.abort.store(true, Ordering::Relaxed);
                            if let Ok(mut slot) = first_err.lock() {
                                // Keep the root cause, not the Cancelled of the others.
                                if slot.is_none() || matches!(*slot, Some(HubError::Cancelled)) {
                                    *slot = Some(e);
                                }
                            }
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_err.into_inner().ok().flatten() {
        return Err(e);
    }
    if ctx.cancelled() {
        return Err(HubError::Cancelled);
    }
    Ok(results.into_inner().unwrap_or_default())
}

/// Phase 4: `refs/<revision>` for branch and tag names (not for commit ids or
/// prefixes), the huggingface_hub extras, and the pending marker goes.
fn link_refs(
    cache: &CacheRepo,
    revision: &str,
    commit: &str,
    siblings: &[Sibling],
) -> Result<(), HubError> {
    let is_sha_prefix = revision.len() >= 4
        && revision.bytes().all(|b| b.is_ascii_hexdigit())
        && commit.starts_with(&revision.to_ascii_lowercase());
    if revision != commit && !is_sha_prefix {
        cache.write_ref(revision, commit)?;
    }
    cache.write_cachedir_tag();
    if let Some(files) = tree_listing(siblings) {
        cache.write_tree_listing(commit, files);
    }
    cache.clear_pull_marker();
    Ok(())
}

/// The listing's files as huggingface_hub's tree cache entries; `None` unless
/// every file has a size and a blob id.
fn tree_listing(siblings: &[Sibling]) -> Option<BTreeMap<String, TreeEntry>> {
    siblings
        .iter()
        .map(|s| {
            let size = s.size?;
            let entry = TreeEntry {
                size,
                blob_id: s.blob_id.clone()?,
                lfs_sha256: s.lfs.as_ref().map(|l| l.sha256.clone()),
                lfs_size: s.lfs.as_ref().map(|l| l.size.unwrap_or(size)),
            };
            Some((s.rfilename.clone(), entry))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches_patterns("a.json", &[], &[]));
        assert!(matches_patterns("a.json", &v(&["*.json"]), &[]));
        assert!(!matches_patterns("a.bin", &v(&["*.json"]), &[]));
        assert!(matches_patterns("sub/x.json", &v(&["*.json"]), &[]));
        assert!(matches_patterns("sub/x.bin", &v(&["sub/"]), &[]));
        assert!(!matches_patterns("sub/x.bin", &[], &v(&["sub/"])));
        assert!(!matches_patterns("a.json", &v(&["*.json"]), &v(&["a.*"])));
    }

    #[test]
    fn revisions_follow_git_ref_rules() {
        for ok in [
            "main",
            "v1.0",
            "refs/pr/1",
            "feature/x-y_z",
            "0123456789abcdef0123456789abcdef01234567",
            "abc1234",
            "a@b",
        ] {
            assert!(validate_revision(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a/../../b",
            "..",
            "/etc/passwd",
            "-x",
            "a//b",
            "a/",
            "a.",
            "a.lock",
            "x/a.lock/y",
            ".hidden",
            "a/.b",
            "a@{1}",
            "@",
            "a b",
            "a\tb",
            "a\u{7f}",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
        ] {
            let err = validate_revision(bad).unwrap_err();
            assert!(matches!(err, HubError::InvalidRevision { .. }), "{bad}");
        }
        assert!(validate_revision(&"x".repeat(256)).is_err());
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            api::next_link(r#"<https://hf.co/api/models/a/b/tree/main?cursor=x>; rel="next""#),
            Some("https://hf.co/api/models/a/b/tree/main?cursor=x")
        );
        assert_eq!(
            api::next_link(r#"<https://x/p1>; rel="prev", <https://x/p3>; rel="next""#),
            Some("https://x/p3")
        );
        assert_eq!(api::next_link(r#"<https://x/p1>; rel="prev""#), None);
        assert_eq!(api::next_link("garbage"), None);
    }

    #[test]
    fn safe_paths() {
        assert!(safe_repo_path("a/b.json"));
        for p in ["", "/a", "a/../b", "a//b", "a\\b", "./a", ".."] {
            assert!(!safe_repo_path(p), "{p}");
        }
    }
}
