//! `push`: a local model folder → a hub repo, in one commit, over the hub's
//! own upload protocol (as huggingface_hub's `upload_folder` speaks it when
//! `hf_xet` is not installed, which the hub still accepts for Xet-backed repos):
//!
//! 1. list the folder (ignore rules below) and hash every file once (sha256
//!    for LFS, git sha1 for regular files);
//! 2. look the repo and branch up (`GET /api/models/{repo}/revision/{branch}`),
//!    creating them with `create` (`POST /api/repos/create`,
//!    `POST /api/models/{repo}/branch/{branch}`), and compare against the
//!    remote tree: unchanged files are not sent;
//! 3. `POST /api/models/{repo}/preupload/{branch}`: regular or LFS per file;
//! 4. `POST /{repo}.git/info/lfs/objects/batch`: objects the hub already has
//!    come back without actions (so a cut push, run again, uploads only what is
//!    missing); the others are PUT (`basic`) or PUT in numbered parts with a
//!    completion POST (`multipart`), sha256 re-checked on the way, then verified;
//! 5. `POST /api/models/{repo}/commit/{branch}` (NDJSON): one commit.
//!
//! Never sent: the workspace sentinel `.mlxk_workspace.json`, `.git/`,
//! `.cache/`, `.hf_cache/`, `__pycache__/`, `.venv/`/`venv/`, `*.pyc`,
//! `.DS_Store`, `.gitignore`, `.hfignore` itself, and what `.hfignore` lists
//! (fnmatch patterns, one per line, `#` comments; a trailing `/` means a
//! folder). The token goes only to the endpoint's origin and is never logged.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::Client;
use reqwest::header;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tanto_core::naming::validate_repo_id;
use tanto_core::pycompat::fnmatch;

use crate::config::HubConfig;
use crate::pull::api::{self, net_err};
use crate::HubError;

/// Files preuploaded and batched per request (huggingface_hub's limits).
const PREUPLOAD_CHUNK: usize = 256;
const LFS_BATCH_CHUNK: usize = 256;

/// Always left out, whatever `.hfignore` says.
const ALWAYS_IGNORED: &[&str] = &[
    ".mlxk_workspace.json",
    ".git/",
    ".cache/",
    ".hf_cache/",
    "__pycache__/",
    ".venv/",
    "venv/",
    "*.pyc",
    ".DS_Store",
    ".gitignore",
    ".hfignore",
];

/// Receives upload progress (bytes of one file sent so far).
pub trait PushProgress: Send + Sync {
    fn upload_started(&self, _files: &[LocalFile]) {}
    fn file_progress(&self, file: &str, sent: u64, total: u64);
}

impl<F: Fn(&str, u64, u64) + Send + Sync> PushProgress for F {
    fn file_progress(&self, file: &str, sent: u64, total: u64) {
        self(file, sent, total)
    }
}

/// What to push and how; fields left `None` come from the environment.
#[derive(Clone)]
pub struct PushOptions {
    pub dir: PathBuf,
    /// `org/name`.
    pub repo_id: String,
    /// Default `main`.
    pub branch: Option<String>,
    /// Create the repo (private when `private`) and the branch if missing.
    pub create: bool,
    pub private: bool,
    /// Default "Upload with tanto push".
    pub commit_message: Option<String>,
    /// Ask the hub what would change; upload nothing.
    pub dry_run: bool,
    pub endpoint: Option<String>,
    /// `Some("")`: no token.
    pub token: Option<String>,
    pub timeout: Duration,
    pub progress: Option<Arc<dyn PushProgress>>,
}

impl PushOptions {
    pub fn new(dir: impl Into<PathBuf>, repo_id: impl Into<String>) -> Self {
        PushOptions {
            dir: dir.into(),
            repo_id: repo_id.into(),
            branch: None,
            create: false,
            private: false,
            commit_message: None,
            dry_run: false,
            endpoint: None,
            token: None,
            timeout: Duration::from_secs(120),
            progress: None,
        }
    }
}

/// One file of the folder to push.
#[derive(Debug, Clone, Serialize)]
pub struct LocalFile {
    /// Repo path (`/`-separated).
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// The git blob id of its content.
    pub git_sha1: String,
    #[serde(skip)]
    pub abs: PathBuf,
}

/// The result of a push (or of a dry run).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    pub repo_id: String,
    pub branch: String,
    pub dry_run: bool,
    /// The new commit; `None` for a dry run or when nothing changed.
    pub commit: Option<String>,
    pub commit_url: Option<String>,
    pub created_repo: bool,
    pub created_branch: bool,
    pub would_create_repo: bool,
    pub would_create_branch: bool,
    /// Repo paths new on the hub / different there / the same there.
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub unchanged: usize,
    /// Files on the hub that the folder lacks (push never deletes them).
    pub remote_only: Vec<String>,
    /// LFS objects sent by this call, and those the hub already had.
    pub lfs_uploaded: usize,
    pub lfs_already_present: usize,
    pub bytes_uploaded: u64,
    pub local_files: usize,
}

/// The patterns of `.hfignore` (comments and blank lines dropped).
fn hfignore(dir: &Path) -> Vec<String> {
    tanto_core::limits::read_capped_string(&dir.join(".hfignore"), 1 << 20)
        .map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether repo path `p` matches one ignore pattern: a pattern with a `/`
/// at the end names a folder anywhere; one without a `/` matches the file
/// name in any folder; otherwise the whole path.
fn ignored(p: &str, patterns: &[String]) -> bool {
    let name = p.rsplit('/').next().unwrap_or(p);
    patterns.iter().any(|pat| {
        let pat = pat.trim_start_matches("**/").trim_start_matches('/');
        if let Some(folder) = pat.strip_suffix('/') {
            let folder = folder.trim_end_matches("/**");
            p.split('/')
                .collect::<Vec<_>>()
                .split_last()
                .map(|(_, dirs)| {
                    dirs.iter().any(|d| fnmatch(folder, d)) || p.starts_with(&format!("{folder}/"))
                })
                .unwrap_or(false)
        } else if pat.contains('/') {
            fnmatch(pat, p)
        } else {
            fnmatch(pat, name)
        }
    })
}

/// Hash one file in one pass: (size, sha256, git sha1).
fn hash_file(path: &Path) -> Result<(u64, String, String), HubError> {
    let (mut f, meta) =
        tanto_core::limits::open_regular(path).map_err(|e| HubError::UnsafeSourceEntry {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let size = meta.len();
    let mut s256 = Sha256::new();
    let mut s1 = crate::pull::download::git_blob_sha1(size);
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| HubError::io(path, e))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        s256.update(&buf[..n]);
        s1.update(&buf[..n]);
    }
    if read != size {
        return Err(HubError::UnsafeSourceEntry {
            path: path.to_path_buf(),
            reason: format!("changed while being read ({size} bytes announced, {read} read)"),
        });
    }
    Ok((
        size,
        hex::encode(s256.finalize()),
        hex::encode(s1.finalize()),
    ))
}

/// Every file of `dir` that push would send, sorted by path, hashed. Links
/// are followed only when they stay inside `dir`; other entries (fifos,
/// devices, links out) are refused, never uploaded.
pub fn local_files(dir: &Path) -> Result<Vec<LocalFile>, HubError> {
    let root = dir.canonicalize().map_err(|e| HubError::io(dir, e))?;
    if !root.is_dir() {
        return Err(HubError::SourceNotADirectory(dir.to_path_buf()));
    }
    let mut patterns: Vec<String> = ALWAYS_IGNORED.iter().map(|s| s.to_string()).collect();
    patterns.extend(hfignore(&root));
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| HubError::io(&d, e))?;
        for e in rd {
            let e = e.map_err(|e| HubError::io(&d, e))?;
            let p = e.path();
            let Ok(rel) = p.strip_prefix(&root) else {
                continue;
            };
            let Some(rel) = rel.to_str().map(|s| s.replace('\\', "/")) else {
                return Err(HubError::UnsafeSourceEntry {
                    path: p.clone(),
                    reason: "the file name is not UTF-8".into(),
                });
            };
            let real = p.canonicalize().map_err(|e| HubError::io(&p, e))?;
            if !real.starts_with(&root) {
                return Err(HubError::UnsafeSourceEntry {
                    path: p.clone(),
                    reason: format!("a link out of the folder (to {})", real.display()),
                });
            }
            if real.is_dir() {
                if !ignored(&format!("{rel}/x"), &patterns) {
                    stack.push(p);
                }
                continue;
            }
            if ignored(&rel, &patterns) {
                continue;
            }
            let (size, sha256, git_sha1) = hash_file(&p)?;
            out.push(LocalFile {
                path: rel,
                size,
                sha256,
                git_sha1,
                abs: p,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

struct Ctx<'a> {
    client: Client,
    endpoint: String,
    token: String,
    repo: String,
    branch: String,
    opts: &'a PushOptions,
}

impl Ctx<'_> {
    fn auth(
        &self,
        rb: reqwest::blocking::RequestBuilder,
        url: &str,
    ) -> reqwest::blocking::RequestBuilder {
        match reqwest::Url::parse(url)
            .ok()
            .and_then(|u| api::token_for(&self.endpoint, Some(&self.token), &u))
        {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// POST JSON to the hub, mapping a refusal to the typed error.
    fn post_json(&self, url: &str, body: &Value, content_type: &str) -> Result<Value, HubError> {
        let rb = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, content_type)
            .header(
                header::ACCEPT,
                if content_type.contains("git-lfs") {
                    content_type
                } else {
                    "application/json"
                },
            )
            .body(body.to_string());
        let resp = self.auth(rb, url).send().map_err(|e| net_err(url, e))?;
        if !resp.status().is_success() {
            return Err(api::status_error(
                &resp,
                url,
                &self.repo,
                &self.endpoint,
                &self.branch,
                None,
            ));
        }
        resp.json().map_err(|e| HubError::Protocol {
            url: url.to_string(),
            message: format!("bad JSON answer: {e}"),
        })
    }
}

/// Push `opts.dir` to `opts.repo_id` (see the module docs). Blocking.
pub fn push(opts: &PushOptions) -> Result<PushReport, HubError> {
    let repo = opts.repo_id.trim().to_string();
    validate_repo_id(&repo).map_err(HubError::InvalidRepoId)?;
    if !repo.contains('/') {
        return Err(HubError::InvalidRepoId(format!(
            "'{repo}' is not ORG/NAME; push needs the full repository id"
        )));
    }
    let branch = opts
        .branch
        .clone()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "main".into());
    crate::pull::validate_revision(&branch)?;
    let mut cfg = HubConfig::from_env();
    if let Some(e) = &opts.endpoint {
        cfg.endpoint = e.trim_end_matches('/').to_string();
    }
    if let Some(t) = &opts.token {
        cfg.token = Some(t.clone()).filter(|t| !t.is_empty());
    }
    if cfg.offline {
        return Err(HubError::Offline { repo });
    }
    let token = cfg.token.clone().ok_or(HubError::MissingToken)?;
    let files = local_files(&opts.dir)?;
    let client = crate::pull::hub_client(opts.timeout, &cfg.endpoint)?;
    let ctx = Ctx {
        client,
        endpoint: cfg.endpoint.clone(),
        token,
        repo: repo.clone(),
        branch: branch.clone(),
        opts,
    };
    let mut report = PushReport {
        repo_id: repo.clone(),
        branch: branch.clone(),
        dry_run: opts.dry_run,
        local_files: files.len(),
        ..Default::default()
    };

    // 2. The repo and the branch, and what the hub has there.
    let remote = match api::repo_info(&ctx.client, &ctx.endpoint, Some(&ctx.token), &repo, &branch)
    {
        Ok((commit, _, _)) => Some(commit),
        Err(HubError::RepoNotFound { .. }) if opts.create => {
            if opts.dry_run {
                report.would_create_repo = true;
                report.would_create_branch = branch != "main";
                None
            } else {
                create_repo(&ctx)?;
                report.created_repo = true;
                if branch != "main" {
                    create_branch(&ctx)?;
                    report.created_branch = true;
                }
                Some(
                    api::repo_info(&ctx.client, &ctx.endpoint, Some(&ctx.token), &repo, &branch)?.0,
                )
            }
        }
        Err(HubError::RevisionNotFound { .. }) if opts.create => {
            if opts.dry_run {
                report.would_create_branch = true;
                None
            } else {
                create_branch(&ctx)?;
                report.created_branch = true;
                Some(
                    api::repo_info(&ctx.client, &ctx.endpoint, Some(&ctx.token), &repo, &branch)?.0,
                )
            }
        }
        Err(e) => return Err(e),
    };
    let remote_files: BTreeMap<String, (Option<String>, Option<String>)> = match &remote {
        Some(commit) => {
            api::list_tree(&ctx.client, &ctx.endpoint, Some(&ctx.token), &repo, commit)?
                .unwrap_or_default()
                .into_iter()
                .map(|s| {
                    (
                        s.rfilename,
                        (s.blob_id, s.lfs.map(|l| l.sha256.to_ascii_lowercase())),
                    )
                })
                .collect()
        }
        None => BTreeMap::new(),
    };
    let mut changed = Vec::new();
    for f in &files {
        match remote_files.get(&f.path) {
            None => {
                report.added.push(f.path.clone());
                changed.push(f.clone());
            }
            Some((blob, lfs)) => {
                let same = match lfs {
                    Some(sha) => *sha == f.sha256,
                    None => blob.as_deref() == Some(f.git_sha1.as_str()),
                };
                if same {
                    report.unchanged += 1;
                } else {
                    report.modified.push(f.path.clone());
                    changed.push(f.clone());
                }
            }
        }
    }
    report.remote_only = remote_files
        .keys()
        .filter(|k| !files.iter().any(|f| &f.path == *k))
        .cloned()
        .collect();
    if opts.dry_run || changed.is_empty() {
        return Ok(report);
    }

    // 3. Regular or LFS, as the hub decides.
    let modes = preupload(&ctx, &changed)?;
    let lfs: Vec<&LocalFile> = changed
        .iter()
        .filter(|f| modes.get(&f.path).is_some_and(|m| m == "lfs"))
        .collect();
    if let Some(p) = &opts.progress {
        p.upload_started(&changed);
    }
    // 4. LFS objects.
    for chunk in lfs.chunks(LFS_BATCH_CHUNK) {
        upload_lfs(&ctx, chunk, &mut report)?;
    }
    // 5. One commit.
    let (oid, url) = commit(&ctx, &changed, &modes)?;
    report.commit = Some(oid);
    report.commit_url = url;
    Ok(report)
}

fn create_repo(ctx: &Ctx) -> Result<(), HubError> {
    let (org, name) = ctx.repo.split_once('/').unwrap_or(("", &ctx.repo));
    let url = format!("{}/api/repos/create", ctx.endpoint);
    let body =
        json!({"name": name, "organization": org, "private": ctx.opts.private, "type": "model"});
    post_create(ctx, &url, &body)
}

fn create_branch(ctx: &Ctx) -> Result<(), HubError> {
    let url = format!(
        "{}/api/models/{}/branch/{}",
        ctx.endpoint,
        ctx.repo,
        api::quote(&ctx.branch, false)
    );
    post_create(ctx, &url, &json!({}))
}

/// POST a create call; 409 (created meanwhile) counts as done.
fn post_create(ctx: &Ctx, url: &str, body: &Value) -> Result<(), HubError> {
    let rb = ctx.client.post(url).json(body);
    let resp = ctx.auth(rb, url).send().map_err(|e| net_err(url, e))?;
    if resp.status().is_success() || resp.status() == reqwest::StatusCode::CONFLICT {
        return Ok(());
    }
    Err(api::status_error(
        &resp,
        url,
        &ctx.repo,
        &ctx.endpoint,
        &ctx.branch,
        None,
    ))
}

/// The first 512 bytes, as the preupload call samples them.
fn sample(f: &LocalFile) -> Result<String, HubError> {
    let mut buf = Vec::with_capacity(512);
    File::open(&f.abs)
        .and_then(|h| h.take(512).read_to_end(&mut buf))
        .map_err(|e| HubError::io(&f.abs, e))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

fn preupload(ctx: &Ctx, files: &[LocalFile]) -> Result<BTreeMap<String, String>, HubError> {
    let url = format!(
        "{}/api/models/{}/preupload/{}",
        ctx.endpoint,
        ctx.repo,
        api::quote(&ctx.branch, false)
    );
    let mut modes = BTreeMap::new();
    for chunk in files.chunks(PREUPLOAD_CHUNK) {
        let list: Result<Vec<Value>, HubError> = chunk
            .iter()
            .map(|f| Ok(json!({"path": f.path, "sample": sample(f)?, "size": f.size})))
            .collect();
        let v = ctx.post_json(&url, &json!({"files": list?}), "application/json")?;
        for e in v["files"].as_array().into_iter().flatten() {
            if let (Some(p), Some(m)) = (e["path"].as_str(), e["uploadMode"].as_str()) {
                modes.insert(p.to_string(), m.to_string());
            }
        }
    }
    for f in files {
        match modes.get(&f.path).map(String::as_str) {
            // Empty files cannot go to LFS storage.
            Some("lfs") if f.size == 0 => {
                modes.insert(f.path.clone(), "regular".into());
            }
            Some("lfs" | "regular") => {}
            other => {
                return Err(HubError::Protocol {
                    url,
                    message: format!(
                        "preupload gave no usable upload mode for {} ({other:?})",
                        f.path
                    ),
                })
            }
        }
    }
    Ok(modes)
}

/// A reader over `len` bytes of a file from `offset`, hashing what it reads
/// and reporting progress.
struct Upload {
    file: File,
    left: u64,
    hasher: Arc<Mutex<Sha256>>,
    sent: u64,
    base: u64,
    total: u64,
    name: String,
    progress: Option<Arc<dyn PushProgress>>,
}

impl Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let cap = buf.len().min(self.left as usize);
        let n = self.file.read(&mut buf[..cap])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while being uploaded",
            ));
        }
        self.left -= n as u64;
        self.sent += n as u64;
        if let Ok(mut h) = self.hasher.lock() {
            h.update(&buf[..n]);
        }
        if let Some(p) = &self.progress {
            p.file_progress(&self.name, self.base + self.sent, self.total);
        }
        Ok(n)
    }
}

fn put_bytes(
    ctx: &Ctx,
    f: &LocalFile,
    href: &str,
    offset: u64,
    len: u64,
    hasher: &Arc<Mutex<Sha256>>,
) -> Result<reqwest::blocking::Response, HubError> {
    let mut file = File::open(&f.abs).map_err(|e| HubError::io(&f.abs, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| HubError::io(&f.abs, e))?;
    let body = Upload {
        file,
        left: len,
        hasher: hasher.clone(),
        sent: 0,
        base: offset,
        total: f.size,
        name: f.path.clone(),
        progress: ctx.opts.progress.clone(),
    };
    // Presigned storage URLs take no token; the hub's own URLs get it.
    let rb = ctx
        .client
        .put(href)
        .header(header::CONTENT_LENGTH, len)
        .body(reqwest::blocking::Body::sized(body, len));
    let resp = ctx.auth(rb, href).send().map_err(|e| net_err(href, e))?;
    if !resp.status().is_success() {
        return Err(HubError::Protocol {
            url: href.to_string(),
            message: format!("upload of {} answered {}", f.path, resp.status()),
        });
    }
    Ok(resp)
}

fn upload_lfs(ctx: &Ctx, files: &[&LocalFile], report: &mut PushReport) -> Result<(), HubError> {
    let url = format!("{}/{}.git/info/lfs/objects/batch", ctx.endpoint, ctx.repo);
    let body = json!({
        "operation": "upload",
        "transfers": ["basic", "multipart"],
        "objects": files.iter().map(|f| json!({"oid": f.sha256, "size": f.size})).collect::<Vec<_>>(),
        "hash_algo": "sha256",
        "ref": {"name": ctx.branch},
    });
    let v = ctx.post_json(&url, &body, "application/vnd.git-lfs+json")?;
    let objects = v["objects"].as_array().ok_or_else(|| HubError::Protocol {
        url: url.clone(),
        message: "LFS batch answer without objects".into(),
    })?;
    for obj in objects {
        let oid = obj["oid"].as_str().unwrap_or("");
        let Some(f) = files.iter().find(|f| f.sha256 == oid) else {
            continue;
        };
        if let Some(err) = obj.get("error") {
            return Err(HubError::Protocol {
                url: url.clone(),
                message: format!(
                    "LFS batch refused {}: {}",
                    f.path,
                    err["message"].as_str().unwrap_or("?")
                ),
            });
        }
        let Some(upload) = obj.pointer("/actions/upload") else {
            // The hub has this object already.
            report.lfs_already_present += 1;
            continue;
        };
        let href = upload["href"].as_str().ok_or_else(|| HubError::Protocol {
            url: url.clone(),
            message: format!("no upload URL for {}", f.path),
        })?;
        let hdr = upload.get("header").cloned().unwrap_or(json!({}));
        let hasher = Arc::new(Mutex::new(Sha256::new()));
        match hdr.get("chunk_size").and_then(|c| {
            c.as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .or(c.as_u64())
        }) {
            Some(chunk) if chunk > 0 => {
                let mut parts: Vec<(usize, String)> = hdr
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.parse::<usize>().ok()?, v.as_str()?.to_string())))
                    .collect();
                parts.sort();
                if parts.len() as u64 != f.size.div_ceil(chunk) {
                    return Err(HubError::Protocol {
                        url: href.to_string(),
                        message: format!(
                            "{} parts offered for {} bytes in chunks of {chunk}",
                            parts.len(),
                            f.size
                        ),
                    });
                }
                let mut etags = Vec::new();
                for (i, (n, part_url)) in parts.iter().enumerate() {
                    let off = i as u64 * chunk;
                    let len = chunk.min(f.size - off);
                    let resp = put_bytes(ctx, f, part_url, off, len, &hasher)?;
                    let etag = resp
                        .headers()
                        .get(header::ETAG)
                        .and_then(|e| e.to_str().ok())
                        .filter(|e| !e.is_empty())
                        .ok_or_else(|| HubError::Protocol {
                            url: part_url.clone(),
                            message: format!("part {n} of {} answered without an ETag", f.path),
                        })?
                        .to_string();
                    etags.push(json!({"partNumber": n, "etag": etag}));
                }
                check_hash(f, hasher)?;
                ctx.post_json(
                    href,
                    &json!({"oid": f.sha256, "parts": etags}),
                    "application/vnd.git-lfs+json",
                )?;
            }
            _ => {
                put_bytes(ctx, f, href, 0, f.size, &hasher)?;
                check_hash(f, hasher)?;
            }
        }
        if let Some(verify) = obj.pointer("/actions/verify/href").and_then(Value::as_str) {
            ctx.post_json(
                verify,
                &json!({"oid": f.sha256, "size": f.size}),
                "application/vnd.git-lfs+json",
            )?;
        }
        report.lfs_uploaded += 1;
        report.bytes_uploaded += f.size;
    }
    Ok(())
}

/// The bytes sent must be the bytes hashed at the start.
fn check_hash(f: &LocalFile, hasher: Arc<Mutex<Sha256>>) -> Result<(), HubError> {
    let got = match hasher.lock() {
        Ok(h) => hex::encode(h.clone().finalize()),
        Err(_) => String::new(),
    };
    if got != f.sha256 {
        return Err(HubError::HashMismatch {
            file: f.path.clone(),
            expected: f.sha256.clone(),
            actual: got,
        });
    }
    Ok(())
}

fn commit(
    ctx: &Ctx,
    files: &[LocalFile],
    modes: &BTreeMap<String, String>,
) -> Result<(String, Option<String>), HubError> {
    let summary = ctx
        .opts
        .commit_message
        .clone()
        .unwrap_or_else(|| "Upload with tanto push".into());
    let mut body =
        json!({"key": "header", "value": {"summary": summary, "description": ""}}).to_string();
    body.push('\n');
    for f in files {
        let line = if modes.get(&f.path).is_some_and(|m| m == "lfs") {
            json!({"key": "lfsFile", "value": {"path": f.path, "algo": "sha256", "oid": f.sha256, "size": f.size}})
        } else {
            let bytes = std::fs::read(&f.abs).map_err(|e| HubError::io(&f.abs, e))?;
            let sha: String = hex::encode(Sha256::digest(&bytes));
            if sha != f.sha256 {
                return Err(HubError::HashMismatch {
                    file: f.path.clone(),
                    expected: f.sha256.clone(),
                    actual: sha,
                });
            }
            json!({"key": "file", "value": {"content": base64::engine::general_purpose::STANDARD.encode(&bytes), "path": f.path, "encoding": "base64"}})
        };
        body.push_str(&line.to_string());
        body.push('\n');
    }
    let url = format!(
        "{}/api/models/{}/commit/{}",
        ctx.endpoint,
        ctx.repo,
        api::quote(&ctx.branch, false)
    );
    let rb = ctx
        .client
        .post(&url)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(body);
    let resp = ctx.auth(rb, &url).send().map_err(|e| net_err(&url, e))?;
    if !resp.status().is_success() {
        return Err(api::status_error(
            &resp,
            &url,
            &ctx.repo,
            &ctx.endpoint,
            &ctx.branch,
            None,
        ));
    }
    let v: Value = resp.json().map_err(|e| HubError::Protocol {
        url: url.clone(),
        message: format!("bad commit answer: {e}"),
    })?;
    let oid = v["commitOid"]
        .as_str()
        .filter(|s| tanto_core::naming::is_commit_hash(s))
        .ok_or_else(|| HubError::Protocol {
            url: url.clone(),
            message: "commit answer without a commit id".into(),
        })?;
    Ok((oid.to_string(), v["commitUrl"].as_str().map(str::to_string)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules() {
        let pats: Vec<String> = ALWAYS_IGNORED
            .iter()
            .map(|s| s.to_string())
            .chain([
                "*.log".to_string(),
                "scratch/".to_string(),
                "docs/draft.md".to_string(),
            ])
            .collect();
        for skip in [
            ".mlxk_workspace.json",
            ".git/config",
            "a/.git/x",
            ".cache/huggingface/x",
            "__pycache__/m.pyc",
            "x.pyc",
            "sub/.DS_Store",
            "run.log",
            "scratch/a.bin",
            "docs/draft.md",
            ".hfignore",
        ] {
            assert!(ignored(skip, &pats), "{skip}");
        }
        for keep in [
            "config.json",
            "model.safetensors",
            "docs/README.md",
            "scratchpad.txt",
            "logs.txt",
        ] {
            assert!(!ignored(keep, &pats), "{keep}");
        }
    }
}
