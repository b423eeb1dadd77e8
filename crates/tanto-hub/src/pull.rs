//! `pull`: the hub HTTP protocol and the huggingface_hub cache layout.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tanto_core::naming::{is_commit_hash, repo_to_cache_dir, validate_repo_id};
use tanto_core::workspace::fnmatch;

use crate::config::HubConfig;
use crate::lock::FileLock;
use crate::HubError;

/// Name of the pending-pull marker inside `.locks/models--org--name/`.
const PENDING_MARKER: &str = "tanto-pull.json";

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
}

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

/// A pull that started and did not finish (marker written by [`pull`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPull {
    pub repo_id: String,
    pub revision: String,
    pub commit: String,
    /// Files the pull meant to fetch.
    pub files: Vec<String>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `blobs/*.incomplete` present now.
    #[serde(skip)]
    pub incomplete_blobs: Vec<PathBuf>,
}

impl PendingPull {
    /// The command that resumes it, e.g. `tanto pull org/name --revision v1`.
    pub fn resume_command(&self) -> String {
        let mut cmd = format!("tanto pull {}", self.repo_id);
        if self.revision != "main" {
            cmd.push_str(&format!(" --revision {}", shell_quote(&self.revision)));
        }
        for p in &self.include {
            cmd.push_str(&format!(" --include {}", shell_quote(p)));
        }
        for p in &self.exclude {
            cmd.push_str(&format!(" --exclude {}", shell_quote(p)));
        }
        cmd
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./@:".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The interrupted pull of `repo_id` in `cache_dir`, if any: a marker left by a
/// pull that did not finish, or `.incomplete` blobs (e.g. from another tool).
pub fn pending_pull(cache_dir: &Path, repo_id: &str) -> Option<PendingPull> {
    let folder = repo_to_cache_dir(repo_id);
    let incomplete: Vec<PathBuf> = fs::read_dir(cache_dir.join(&folder).join("blobs"))
        .map(|rd| {
            let mut v: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "incomplete"))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    let marker = cache_dir.join(".locks").join(&folder).join(PENDING_MARKER);
    let parsed = fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice::<PendingPull>(&b).ok());
    match parsed {
        Some(mut p) => {
            p.incomplete_blobs = incomplete;
            Some(p)
        }
        None if !incomplete.is_empty() => Some(PendingPull {
            repo_id: repo_id.to_string(),
            revision: "main".into(),
            commit: String::new(),
            files: Vec::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            incomplete_blobs: incomplete,
        }),
        None => None,
    }
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

// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct ModelInfo {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "blobId")]
    blob_id: Option<String>,
    #[serde(default)]
    lfs: Option<LfsInfo>,
}

#[derive(Debug, Deserialize)]
struct LfsInfo {
    sha256: String,
    #[serde(default)]
    size: Option<u64>,
}

/// One entry of huggingface_hub's tree cache (`trees/<commit>.json`, format 1).
#[derive(Debug, Serialize)]
struct TreeEntry {
    size: u64,
    blob_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lfs_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lfs_size: Option<u64>,
}

#[derive(Debug, Serialize)]
struct TreeCache {
    format_version: u32,
    files: std::collections::BTreeMap<String, TreeEntry>,
}

/// What huggingface_hub writes into `<cache>/CACHEDIR.TAG` (bford.info/cachedir).
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by huggingface_hub.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/\n";

/// Best effort: `CACHEDIR.TAG` in the cache root and the tree listing of `commit`
/// (`<repo>/trees/<commit>.json`), both as huggingface_hub >= 1.x writes them, only
/// when absent. The listing is written only when every file has a size and blob id.
fn write_cache_extras(cache_dir: &Path, repo_dir: &Path, commit: &str, siblings: &[Sibling]) {
    let tag = cache_dir.join("CACHEDIR.TAG");
    if !tag.exists() {
        let _ = write_unique_atomic(&tag, CACHEDIR_TAG.as_bytes());
    }
    let path = repo_dir.join("trees").join(format!("{commit}.json"));
    if path.exists() {
        return;
    }
    let mut files = std::collections::BTreeMap::new();
    for s in siblings {
        let (Some(size), Some(blob_id)) = (s.size, s.blob_id.clone()) else {
            return;
        };
        files.insert(
            s.rfilename.clone(),
            TreeEntry {
                size,
                blob_id,
                lfs_sha256: s.lfs.as_ref().map(|l| l.sha256.clone()),
                lfs_size: s.lfs.as_ref().map(|l| l.size.unwrap_or(size)),
            },
        );
    }
    let data = tanto_core::workspace::python_json(
        &TreeCache {
            format_version: 1,
            files,
        },
        1,
    );
    if fs::create_dir_all(repo_dir.join("trees")).is_ok() {
        let _ = write_unique_atomic(&path, &data);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        }
    }
}

/// Percent-encode for a URL path; `/` kept when `keep_slash`.
fn quote(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `W/"abc"` / `"abc"` → `abc`.
fn normalize_etag(raw: &str) -> String {
    let s = raw.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.trim_matches('"').to_string()
}

/// Reject repo paths that would escape the snapshot.
fn safe_repo_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && !p.contains('\0')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

struct Ctx<'a> {
    cfg: HubConfig,
    opts: &'a PullOptions,
    client: Client,
    /// Commit the files are resolved against.
    commit: String,
    repo_dir: PathBuf,
    locks_dir: PathBuf,
    snapshot_dir: PathBuf,
    /// Internal stop: set on the first failure or on user cancel.
    abort: AtomicBool,
    bytes: Mutex<u64>,
}

impl Ctx<'_> {
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

    fn auth(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.cfg.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }
}

fn net_err(url: &str, e: impl std::fmt::Display) -> HubError {
    HubError::Network {
        url: url.to_string(),
        message: e.to_string(),
    }
}

/// Map a non-success hub response to a typed error.
fn status_error(
    resp: &Response,
    url: &str,
    repo: &str,
    endpoint: &str,
    revision: &str,
    file: Option<&str>,
) -> HubError {
    let status = resp.status();
    let code = resp
        .headers()
        .get("x-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let repo_nf = || HubError::RepoNotFound {
        repo: repo.to_string(),
        endpoint: endpoint.to_string(),
    };
    match code {
        "RepoNotFound" => return repo_nf(),
        "GatedRepo" => {
            return HubError::Unauthorized {
                repo: repo.to_string(),
                status: status.as_u16(),
                gated: true,
            }
        }
        "RevisionNotFound" => {
            return HubError::RevisionNotFound {
                repo: repo.to_string(),
                revision: revision.to_string(),
            }
        }
        "EntryNotFound" if file.is_some() => {
            return HubError::EntryNotFound {
                repo: repo.to_string(),
                revision: revision.to_string(),
                file: file.unwrap_or_default().to_string(),
            }
        }
        _ => {}
    }
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => HubError::Unauthorized {
            repo: repo.to_string(),
            status: status.as_u16(),
            gated: false,
        },
        StatusCode::NOT_FOUND => match file {
            Some(f) => HubError::EntryNotFound {
                repo: repo.to_string(),
                revision: revision.to_string(),
                file: f.to_string(),
            },
            None => repo_nf(),
        },
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
            net_err(url, format!("HTTP {s}"))
        }
        s => HubError::Protocol {
            url: url.to_string(),
            message: format!("HTTP {s}"),
        },
    }
}

/// Hosts that count as the hub: the public hub, its short domain, staging, and
/// the configured endpoint. Redirects between them are followed and may carry the
/// token; any other host (a CDN, a storage bucket) gets no token.
fn is_hub_host(endpoint: &str, url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    let configured = reqwest::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    matches!(
        host.as_str(),
        "hf.co" | "huggingface.co" | "hub-ci.huggingface.co"
    ) || configured.as_deref() == Some(host.as_str())
}

/// Send an API or HEAD request, following redirects that stay on the hub (renamed
/// repos), as huggingface_hub does. A redirect to another host (the CDN, for LFS
/// files) is returned to the caller: the file metadata is on that response.
fn send_hub(
    client: &Client,
    endpoint: &str,
    token: Option<&str>,
    method: reqwest::Method,
    url: &str,
) -> Result<(Response, String), HubError> {
    let mut url = url.to_string();
    for _ in 0..10 {
        let mut rb = client
            .request(method.clone(), &url)
            .header(header::ACCEPT_ENCODING, "identity");
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let resp = rb.send().map_err(|e| net_err(&url, e))?;
        if resp.status().is_redirection() {
            if let Some(loc) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
            {
                let cur = reqwest::Url::parse(&url).map_err(|e| net_err(&url, e))?;
                let next = cur.join(loc).map_err(|e| net_err(&url, e))?;
                let same_host = next.host_str().map(str::to_ascii_lowercase)
                    == cur.host_str().map(str::to_ascii_lowercase);
                if same_host || is_hub_host(endpoint, &next) {
                    url = next.to_string();
                    continue;
                }
            }
        }
        return Ok((resp, url));
    }
    Err(HubError::Protocol {
        url,
        message: "too many redirects".into(),
    })
}

/// Pull `opts.repo_id` at `opts.revision` into the hub cache. Blocking; downloads up
/// to `opts.concurrency` files at once. See the crate docs for the layout.
pub fn pull(opts: &PullOptions) -> Result<PullReport, HubError> {
    let repo = opts.repo_id.trim().to_string();
    validate_repo_id(&repo).map_err(HubError::InvalidRepoId)?;
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
    if cfg.offline {
        return Err(HubError::Offline { repo });
    }
    let revision = opts
        .revision
        .clone()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "main".to_string());

    let client = Client::builder()
        .user_agent(concat!(
            "tanto/",
            env!("CARGO_PKG_VERSION"),
            "; hf_hub/compatible"
        ))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .timeout(opts.timeout)
        .build()
        .map_err(|e| net_err(&cfg.endpoint, e))?;

    // 1. Resolve the revision and list the files.
    let info_url = format!(
        "{}/api/models/{}/revision/{}?blobs=true",
        cfg.endpoint,
        repo,
        quote(&revision, false)
    );
    let (resp, final_url) = send_hub(
        &client,
        &cfg.endpoint,
        cfg.token.as_deref(),
        reqwest::Method::GET,
        &info_url,
    )?;
    if !resp.status().is_success() {
        return Err(status_error(
            &resp,
            &final_url,
            &repo,
            &cfg.endpoint,
            &revision,
            None,
        ));
    }
    let info: ModelInfo = resp.json().map_err(|e| HubError::Protocol {
        url: final_url.clone(),
        message: format!("bad repo info: {e}"),
    })?;
    let commit = info
        .sha
        .filter(|s| is_commit_hash(s))
        .ok_or_else(|| HubError::Protocol {
            url: final_url.clone(),
            message: "repo info without a commit sha".into(),
        })?;
    let mut planned: Vec<PlannedFile> = Vec::new();
    for s in &info.siblings {
        if !safe_repo_path(&s.rfilename) {
            return Err(HubError::Protocol {
                url: final_url.clone(),
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

    // 2. Lay out the cache.
    let folder = repo_to_cache_dir(&repo);
    let repo_dir = cfg.cache_dir.join(&folder);
    let snapshot_dir = repo_dir.join("snapshots").join(&commit);
    let locks_dir = cfg.cache_dir.join(".locks").join(&folder);
    for d in [
        repo_dir.join("blobs"),
        snapshot_dir.clone(),
        locks_dir.clone(),
    ] {
        fs::create_dir_all(&d).map_err(|e| HubError::io(&d, e))?;
    }
    let marker = locks_dir.join(PENDING_MARKER);
    let pending = PendingPull {
        repo_id: repo.clone(),
        revision: revision.clone(),
        commit: commit.clone(),
        files: planned.iter().map(|f| f.path.clone()).collect(),
        include: opts.include.clone(),
        exclude: opts.exclude.clone(),
        incomplete_blobs: Vec::new(),
    };
    let marker_bytes = serde_json::to_vec_pretty(&pending).unwrap_or_default();
    write_unique_atomic(&marker, &marker_bytes).map_err(|e| HubError::io(&marker, e))?;

    let ctx = Ctx {
        cfg,
        opts,
        client,
        commit: commit.clone(),
        repo_dir: repo_dir.clone(),
        locks_dir,
        snapshot_dir: snapshot_dir.clone(),
        abort: AtomicBool::new(false),
        bytes: Mutex::new(0),
    };
    if let Some(p) = ctx.progress() {
        p.pull_started(&commit, &planned);
    }

    // 3. Fetch with a small pool of workers.
    let queue: Mutex<VecDeque<PlannedFile>> = Mutex::new(planned.into_iter().collect());
    let results: Mutex<Vec<PulledFile>> = Mutex::new(Vec::new());
    let first_err: Mutex<Option<HubError>> = Mutex::new(None);
    let workers = opts.concurrency.max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if ctx.cancelled() {
                    break;
                }
                let Some(f) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                match fetch_file(&ctx, &f) {
                    Ok(done) => {
                        if let Some(p) = ctx.progress() {
                            p.file_finished(&done.path, done.status);
                        }
                        results.lock().unwrap().push(done);
                    }
                    Err(e) => {
                        ctx.abort.store(true, Ordering::Relaxed);
                        let mut slot = first_err.lock().unwrap();
                        // Keep the root cause, not the Cancelled of the others.
                        if slot.is_none() || matches!(*slot, Some(HubError::Cancelled)) {
                            *slot = Some(e);
                        }
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = first_err.into_inner().unwrap() {
        return Err(e);
    }
    if ctx.cancelled() {
        return Err(HubError::Cancelled);
    }

    // 4. refs/<revision> for branch and tag names (not for commit ids or prefixes).
    let is_sha_prefix = revision.len() >= 4
        && revision.bytes().all(|b| b.is_ascii_hexdigit())
        && commit.starts_with(&revision.to_ascii_lowercase());
    if revision != commit && !is_sha_prefix {
        let ref_path = repo_dir.join("refs").join(&revision);
        if fs::read_to_string(&ref_path).ok().as_deref() != Some(commit.as_str()) {
            if let Some(parent) = ref_path.parent() {
                fs::create_dir_all(parent).map_err(|e| HubError::io(parent, e))?;
            }
            write_unique_atomic(&ref_path, commit.as_bytes())
                .map_err(|e| HubError::io(&ref_path, e))?;
        }
    }
    write_cache_extras(&ctx.cfg.cache_dir, &repo_dir, &commit, &info.siblings);
    let _ = fs::remove_file(&marker);

    let mut files = results.into_inner().unwrap();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let bytes_downloaded = *ctx.bytes.lock().unwrap();
    Ok(PullReport {
        repo_id: repo,
        revision,
        commit,
        repo_dir,
        snapshot_dir,
        files,
        bytes_downloaded,
    })
}

/// Write via a temporary file unique to this process and call, then rename (two
/// pulls of the same repo may write the same file at once).
fn write_unique_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let res = fs::write(&tmp, bytes).and_then(|_| fs::rename(&tmp, path));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

struct FileMeta {
    etag: String,
    size: Option<u64>,
    /// Where to GET the bytes (CDN location or the resolve URL).
    location: String,
}

fn head_file(ctx: &Ctx, file: &str) -> Result<FileMeta, HubError> {
    let url = format!(
        "{}/{}/resolve/{}/{}",
        ctx.cfg.endpoint,
        ctx.opts.repo_id.trim(),
        ctx.commit,
        quote(file, true)
    );
    let (resp, final_url) = send_hub(
        &ctx.client,
        &ctx.cfg.endpoint,
        ctx.cfg.token.as_deref(),
        reqwest::Method::HEAD,
        &url,
    )?;
    let status = resp.status();
    if !(status.is_success() || status.is_redirection()) {
        return Err(status_error(
            &resp,
            &final_url,
            ctx.opts.repo_id.trim(),
            &ctx.cfg.endpoint,
            &ctx.commit,
            Some(file),
        ));
    }
    let h = resp.headers();
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let etag = get("x-linked-etag")
        .or_else(|| get("etag"))
        .map(|e| normalize_etag(&e))
        .filter(|e| !e.is_empty())
        .ok_or_else(|| HubError::Protocol {
            url: final_url.clone(),
            message: "no ETag in the file metadata".into(),
        })?;
    if etag.contains('/') || etag.contains('\\') || etag == "." || etag == ".." {
        return Err(HubError::Protocol {
            url: final_url,
            message: format!("unusable ETag {etag:?}"),
        });
    }
    let size = get("x-linked-size")
        .or_else(|| {
            if status.is_redirection() {
                None
            } else {
                get("content-length")
            }
        })
        .and_then(|s| s.trim().parse().ok());
    let location = if status.is_redirection() {
        let loc = get("location").ok_or_else(|| HubError::Protocol {
            url: final_url.clone(),
            message: "redirect without Location".into(),
        })?;
        reqwest::Url::parse(&final_url)
            .and_then(|b| b.join(&loc))
            .map(|u| u.to_string())
            .map_err(|e| net_err(&final_url, e))?
    } else {
        final_url
    };
    Ok(FileMeta {
        etag,
        size,
        location,
    })
}

/// Point `snapshots/<commit>/<file>` at `../../blobs/<etag>` (deeper for nested paths).
fn link_pointer(ctx: &Ctx, file: &str, etag: &str) -> Result<(), HubError> {
    let pointer = ctx.snapshot_dir.join(file);
    let depth = file.split('/').count();
    let target = format!("{}blobs/{}", "../".repeat(depth + 1), etag);
    if fs::read_link(&pointer).ok().as_deref() == Some(Path::new(&target)) {
        return Ok(());
    }
    if let Some(parent) = pointer.parent() {
        fs::create_dir_all(parent).map_err(|e| HubError::io(parent, e))?;
    }
    let mut tmp = pointer.as_os_str().to_owned();
    tmp.push(format!(".tanto-link-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    make_symlink(&target, &tmp).map_err(|e| HubError::io(&tmp, e))?;
    if pointer.is_dir() && !pointer.is_symlink() {
        let _ = fs::remove_file(&tmp);
        return Err(HubError::io(
            &pointer,
            io::Error::new(io::ErrorKind::AlreadyExists, "a directory is in the way"),
        ));
    }
    fs::rename(&tmp, &pointer).map_err(|e| HubError::io(&pointer, e))
}

#[cfg(unix)]
fn make_symlink(target: &str, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn make_symlink(_target: &str, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are required for the hub cache",
    ))
}

/// Expected digest of a blob: sha256 (LFS) or git blob sha1.
enum Expect {
    Sha256(String),
    GitSha1(String),
    None,
}

enum Hasher {
    Sha256(Sha256),
    GitSha1(Sha1),
    None,
}

impl Hasher {
    fn new(expect: &Expect, size: Option<u64>) -> Hasher {
        match (expect, size) {
            (Expect::Sha256(_), _) => Hasher::Sha256(Sha256::new()),
            (Expect::GitSha1(_), Some(n)) => {
                let mut h = Sha1::new();
                h.update(format!("blob {n}\0").as_bytes());
                Hasher::GitSha1(h)
            }
            _ => Hasher::None,
        }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::GitSha1(h) => h.update(b),
            Hasher::None => {}
        }
    }
    fn finish(self) -> Option<String> {
        match self {
            Hasher::Sha256(h) => Some(hex::encode(h.finalize())),
            Hasher::GitSha1(h) => Some(hex::encode(h.finalize())),
            Hasher::None => None,
        }
    }
}

fn fetch_file(ctx: &Ctx, f: &PlannedFile) -> Result<PulledFile, HubError> {
    let meta = head_file(ctx, &f.path)?;
    let size = meta.size.or(f.size);
    let blob = ctx.repo_dir.join("blobs").join(&meta.etag);
    let done = |status| PulledFile {
        path: f.path.clone(),
        etag: meta.etag.clone(),
        size: fs::metadata(&blob).map(|m| m.len()).unwrap_or(0),
        status,
    };
    if blob.is_file() {
        link_pointer(ctx, &f.path, &meta.etag)?;
        return Ok(done(FileStatus::Cached));
    }
    let lock_path = ctx.locks_dir.join(format!("{}.lock", meta.etag));
    let _lock = FileLock::acquire(&lock_path).map_err(|e| HubError::io(&lock_path, e))?;
    // Another process (or thread) may have finished it while we waited.
    if blob.is_file() {
        link_pointer(ctx, &f.path, &meta.etag)?;
        return Ok(done(FileStatus::Cached));
    }
    let etag_lc = meta.etag.to_ascii_lowercase();
    let is_hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let expect = match &f.lfs_sha256 {
        Some(s) => Expect::Sha256(s.clone()),
        None if is_hex(&etag_lc, 64) => Expect::Sha256(etag_lc.clone()),
        None if is_hex(&etag_lc, 40) => Expect::GitSha1(etag_lc.clone()),
        None => Expect::None,
    };
    let incomplete = {
        let mut s = blob.as_os_str().to_owned();
        s.push(".incomplete");
        PathBuf::from(s)
    };
    let status = download_to(ctx, f, &meta, size, &incomplete, &expect)?;
    fs::rename(&incomplete, &blob).map_err(|e| HubError::io(&blob, e))?;
    link_pointer(ctx, &f.path, &meta.etag)?;
    Ok(done(status))
}

/// Download (resuming) into `incomplete` and verify. On return the file is complete
/// and verified; on a hash mismatch it is deleted.
fn download_to(
    ctx: &Ctx,
    f: &PlannedFile,
    meta: &FileMeta,
    size: Option<u64>,
    incomplete: &Path,
    expect: &Expect,
) -> Result<FileStatus, HubError> {
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(incomplete)
        .map_err(|e| HubError::io(incomplete, e))?;
    let mut have = out
        .metadata()
        .map_err(|e| HubError::io(incomplete, e))?
        .len();
    if size.is_some_and(|n| have > n) {
        out.set_len(0).map_err(|e| HubError::io(incomplete, e))?;
        have = 0;
    }
    let resumed = have > 0;
    if let Some(p) = ctx.progress() {
        p.file_started(&f.path, size, have);
    }
    let mut attempts = 0u32;
    loop {
        if ctx.cancelled() {
            return Err(HubError::Cancelled);
        }
        match transfer(ctx, f, meta, size, &mut out, &mut have, incomplete) {
            Ok(()) => break,
            Err(HubError::Network { .. }) if attempts < ctx.opts.retries && !ctx.cancelled() => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(200 * u64::from(attempts)));
            }
            Err(e) => return Err(e),
        }
    }
    out.sync_all().map_err(|e| HubError::io(incomplete, e))?;
    drop(out);
    if let Some(n) = size {
        if have != n {
            let _ = fs::remove_file(incomplete);
            return Err(HubError::Protocol {
                url: meta.location.clone(),
                message: format!("{}: got {have} bytes, expected {n}", f.path),
            });
        }
    }
    // Verify: hash the whole file (a resumed prefix has to be read back anyway).
    let mut hasher = Hasher::new(expect, Some(have));
    if !matches!(hasher, Hasher::None) {
        let mut file = File::open(incomplete).map_err(|e| HubError::io(incomplete, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let k = file
                .read(&mut buf)
                .map_err(|e| HubError::io(incomplete, e))?;
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
        }
        let actual = hasher.finish().unwrap_or_default();
        let expected = match expect {
            Expect::Sha256(s) | Expect::GitSha1(s) => s.clone(),
            Expect::None => String::new(),
        };
        if actual != expected {
            let _ = fs::remove_file(incomplete);
            return Err(HubError::HashMismatch {
                file: f.path.clone(),
                expected,
                actual,
            });
        }
    }
    Ok(if resumed {
        FileStatus::Resumed
    } else {
        FileStatus::Downloaded
    })
}

/// One GET from `have` to the end, appending to `out`.
fn transfer(
    ctx: &Ctx,
    f: &PlannedFile,
    meta: &FileMeta,
    size: Option<u64>,
    out: &mut File,
    have: &mut u64,
    incomplete: &Path,
) -> Result<(), HubError> {
    if size == Some(*have) && *have > 0 {
        return Ok(());
    }
    let url = &meta.location;
    let range = (*have > 0).then(|| format!("bytes={}-", *have));
    let mut resp = send_following(ctx, url, range)?;
    let status = resp.status();
    if status == StatusCode::RANGE_NOT_SATISFIABLE {
        // Our partial file is at least as long as the blob: restart from zero.
        out.set_len(0).map_err(|e| HubError::io(incomplete, e))?;
        *have = 0;
        return Err(net_err(url, "range not satisfiable; restarting"));
    }
    if !status.is_success() {
        return Err(status_error(
            &resp,
            url,
            ctx.opts.repo_id.trim(),
            &ctx.cfg.endpoint,
            &ctx.commit,
            Some(&f.path),
        ));
    }
    if *have > 0 {
        let start = content_range_start(resp.headers());
        if status != StatusCode::PARTIAL_CONTENT || start != Some(*have) {
            // The server ignored the range: start over.
            out.set_len(0).map_err(|e| HubError::io(incomplete, e))?;
            *have = 0;
            if status == StatusCode::PARTIAL_CONTENT {
                return Err(net_err(url, "unexpected Content-Range; restarting"));
            }
        }
    }
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if ctx.cancelled() {
            return Err(HubError::Cancelled);
        }
        let k = match resp.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(net_err(url, e)),
        };
        out.write_all(&buf[..k])
            .map_err(|e| HubError::io(incomplete, e))?;
        *have += k as u64;
        *ctx.bytes.lock().unwrap() += k as u64;
        if let Some(p) = ctx.progress() {
            p.file_progress(&f.path, *have, size);
        }
        if size.is_some_and(|n| *have > n) {
            let _ = fs::remove_file(incomplete);
            return Err(HubError::Protocol {
                url: url.clone(),
                message: format!("{}: more bytes than announced", f.path),
            });
        }
    }
    if let Some(n) = size {
        if *have < n {
            return Err(net_err(
                url,
                format!("connection closed after {} of {n} bytes", *have),
            ));
        }
    }
    Ok(())
}

/// GET `url`, following redirects (absolute ones too: CDN). The token is sent only
/// to hub hosts ([`is_hub_host`]); the Range header is kept across redirects.
fn send_following(ctx: &Ctx, url: &str, range: Option<String>) -> Result<Response, HubError> {
    let mut cur = reqwest::Url::parse(url).map_err(|e| net_err(url, e))?;
    for _ in 0..10 {
        let mut rb = ctx
            .client
            .get(cur.clone())
            .header(header::ACCEPT_ENCODING, "identity");
        if is_hub_host(&ctx.cfg.endpoint, &cur) {
            rb = ctx.auth(rb);
        }
        if let Some(r) = &range {
            rb = rb.header(header::RANGE, r);
        }
        let resp = rb.send().map_err(|e| net_err(cur.as_str(), e))?;
        if resp.status().is_redirection() {
            if let Some(loc) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
            {
                cur = cur.join(loc).map_err(|e| net_err(cur.as_str(), e))?;
                continue;
            }
        }
        return Ok(resp);
    }
    Err(HubError::Protocol {
        url: url.to_string(),
        message: "too many redirects".into(),
    })
}

/// `Content-Range: bytes START-END/TOTAL` → START.
fn content_range_start(h: &HeaderMap) -> Option<u64> {
    let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    rest.split('-').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("abc"), "abc");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(quote("a b/c.json", true), "a%20b/c.json");
    }

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
    fn safe_paths() {
        assert!(safe_repo_path("a/b.json"));
        for p in ["", "/a", "a/../b", "a//b", "a\\b", "./a", ".."] {
            assert!(!safe_repo_path(p), "{p}");
        }
    }

    #[test]
    fn resume_command() {
        let p = PendingPull {
            repo_id: "o/n".into(),
            revision: "v 1".into(),
            commit: String::new(),
            files: vec![],
            include: vec!["*.json".into()],
            exclude: vec![],
            incomplete_blobs: vec![],
        };
        assert_eq!(
            p.resume_command(),
            "tanto pull o/n --revision 'v 1' --include '*.json'"
        );
    }

    #[test]
    fn content_range() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_RANGE, "bytes 10-99/100".parse().unwrap());
        assert_eq!(content_range_start(&h), Some(10));
    }
}
