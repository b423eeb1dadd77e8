//! A fake Hugging Face hub on 127.0.0.1 for tests and the interop script.
//!
//! Serves, from in-memory repos:
//! * `GET /api/models/{org}/{name}/revision/{rev}[?blobs=true]` — repo info with
//!   siblings (`rfilename`, `size`, `blobId`, `lfs.sha256`);
//! * `HEAD|GET /{org}/{name}/resolve/{rev}/{path}` — git files answer 200 with
//!   `ETag: "<git sha1>"`; LFS files answer 302 to `/cdn/<sha256>` with
//!   `X-Linked-Etag`, `X-Linked-Size`; always `X-Repo-Commit`;
//! * `GET /cdn/{sha256}` — LFS bytes, with `Range` support;
//! * errors with `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`,
//!   `GatedRepo`), 401/403 for private/gated repos without the right token, 307
//!   relative redirects for renamed repos.
//!
//! Uploads, as huggingface_hub speaks them (`push`, `upload_folder`):
//! * `POST /api/repos/create` (409 when it exists);
//! * `POST /api/models/{repo}/preupload/{rev}` — `uploadMode` per file (`lfs`
//!   for weights and anything over 1 MiB, else `regular`) and the remote `oid`;
//! * `POST /{repo}.git/info/lfs/objects/batch` — no actions for objects already
//!   stored, `basic` (PUT) under the multipart threshold, else `multipart`
//!   (parts PUT to numbered URLs, ETags, a completion POST); a verify action;
//! * `POST /api/models/{repo}/commit/{rev}` — NDJSON `header`/`file`/`lfsFile`
//!   lines; a new commit that `refs/{rev}` then points at.
//!
//! Writes need `Authorization: Bearer` with `write_token` (when set).
//!
//! Faults: drop the connection after N body bytes (for the next K responses), serve
//! corrupted LFS bytes, ignore `Range`, redirect every request to another server,
//! endless git-file bodies, listings without sizes, etags that are not hashes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use sha1::Sha1;
use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct FakeFile {
    pub path: String,
    pub content: Arc<Vec<u8>>,
    pub lfs: bool,
}

impl FakeFile {
    pub fn git(path: &str, content: &[u8]) -> Self {
        FakeFile {
            path: path.into(),
            content: Arc::new(content.to_vec()),
            lfs: false,
        }
    }
    pub fn lfs(path: &str, content: Vec<u8>) -> Self {
        FakeFile {
            path: path.into(),
            content: Arc::new(content),
            lfs: true,
        }
    }
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&*self.content))
    }
    pub fn git_sha1(&self) -> String {
        let mut h = Sha1::new();
        h.update(format!("blob {}\0", self.content.len()).as_bytes());
        h.update(&*self.content);
        hex::encode(h.finalize())
    }
    /// The blob name huggingface_hub uses.
    pub fn etag(&self) -> String {
        if self.lfs {
            self.sha256()
        } else {
            self.git_sha1()
        }
    }
}

#[derive(Clone)]
pub struct FakeRepo {
    pub id: String,
    pub commit: String,
    /// Branch/tag → commit.
    pub refs: HashMap<String, String>,
    pub files: Vec<FakeFile>,
    /// Required bearer token (private or gated repo).
    pub token: Option<String>,
    pub gated: bool,
}

impl FakeRepo {
    pub fn new(id: &str, files: Vec<FakeFile>) -> Self {
        let commit = hex::encode(Sha1::digest(format!("commit of {id}").as_bytes()));
        let mut refs = HashMap::new();
        refs.insert("main".to_string(), commit.clone());
        FakeRepo {
            id: id.into(),
            commit,
            refs,
            files,
            token: None,
            gated: false,
        }
    }
}

/// Pseudo-random bytes (xorshift), deterministic per seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A small model repo: config, tokenizer, two LFS shards, a nested file and a
/// duplicated-content file (two paths, one blob).
pub fn demo_repo(id: &str) -> FakeRepo {
    let st = |seed: u64, n: usize| {
        let header =
            format!(r#"{{"w{seed}":{{"dtype":"U8","shape":[{n}],"data_offsets":[0,{n}]}}}}"#);
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend(noise(n, seed));
        v
    };
    FakeRepo::new(
        id,
        vec![
            FakeFile::git(
                "config.json",
                br#"{"model_type":"llama","architectures":["LlamaForCausalLM"]}"#,
            ),
            FakeFile::git(
                "tokenizer.json",
                br#"{"version":"1.0","model":{"type":"BPE"}}"#,
            ),
            FakeFile::git("README.md", b"# demo\n"),
            FakeFile::git("docs/README.md", b"# demo\n"),
            FakeFile::git(
                ".gitattributes",
                b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
            ),
            FakeFile::lfs("model-00001-of-00002.safetensors", st(1, 300_000)),
            FakeFile::lfs("model-00002-of-00002.safetensors", st(2, 200_000)),
            FakeFile::lfs("nested/deeper/blob.bin", noise(70_000, 3)),
        ],
    )
}

#[derive(Default)]
pub struct Faults {
    /// Drop the connection after this many body bytes...
    pub drop_after: Option<u64>,
    /// ...for this many more responses (None: all).
    pub drop_times: Option<u32>,
    /// Flip the first byte of LFS content.
    pub corrupt_lfs: bool,
    /// Answer 200 with the full body to Range requests.
    pub ignore_range: bool,
    /// Throttle bodies to about this many bytes per second.
    pub rate: Option<u64>,
    /// Answer every request with a 307 to this base URL + the same path and query.
    pub redirect_to: Option<String>,
    /// Git files: no Content-Length, and a GET body that never ends (the content,
    /// then filler bytes forever).
    pub endless_body: bool,
    /// The listings (repo info and tree) carry no `size`.
    pub hide_sizes: bool,
    /// Tree listings in pages of this many entries, linked with
    /// `Link: <…&cursor=N>; rel="next"` as the hub pages them.
    pub tree_page: Option<usize>,
    /// The tree endpoint answers a bare 404 (a mirror without it).
    pub no_tree: bool,
    /// Git files' ETag is `"v-<sha1>"`, not a hash the client can verify.
    pub opaque_etags: bool,
    /// LFS uploads over this many bytes are multipart (parts of `part_size`).
    pub multipart_over: Option<usize>,
    pub part_size: usize,
    /// Fail (500) the next N LFS object uploads after the first `fail_after` succeed.
    pub fail_uploads_after: Option<(usize, usize)>,
}

#[derive(Default)]
pub struct HubState {
    pub repos: Mutex<HashMap<String, FakeRepo>>,
    /// Old repo id → new repo id (307 relative redirects).
    pub renamed: Mutex<HashMap<String, String>>,
    pub faults: Mutex<Faults>,
    /// "METHOD path[ range][ [auth]]" per request.
    pub log: Mutex<Vec<String>>,
    pub base_url: Mutex<String>,
    /// LFS objects uploaded (sha256 → bytes), and multipart parts in flight.
    pub objects: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    pub parts: Mutex<HashMap<(String, usize), Vec<u8>>>,
    /// The token uploads must carry (None: any or none).
    pub write_token: Mutex<Option<String>>,
    /// Completed LFS object uploads (basic PUTs and multipart completions).
    pub uploads: Mutex<usize>,
    /// Every commit payload received (NDJSON lines).
    pub commits: Mutex<Vec<Vec<serde_json::Value>>>,
}

pub struct FakeHub {
    pub url: String,
    pub state: Arc<HubState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHub {
    /// Start on 127.0.0.1:0 in a background thread with its own runtime.
    pub fn start(repos: Vec<FakeRepo>) -> FakeHub {
        Self::start_on(repos, 0)
    }

    pub fn start_on(repos: Vec<FakeRepo>, port: u16) -> FakeHub {
        let state = Arc::new(HubState::default());
        for r in repos {
            state.repos.lock().unwrap().insert(r.id.clone(), r);
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .fallback(handle)
                    .layer(axum::extract::DefaultBodyLimit::disable())
                    .with_state(st);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        let url = format!("http://{addr}");
        *state.base_url.lock().unwrap() = url.clone();
        FakeHub {
            url,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn set_drop_after(&self, bytes: Option<u64>, times: Option<u32>) {
        let mut f = self.state.faults.lock().unwrap();
        f.drop_after = bytes;
        f.drop_times = times;
    }

    pub fn set_corrupt_lfs(&self, on: bool) {
        self.state.faults.lock().unwrap().corrupt_lfs = on;
    }

    pub fn set_rate(&self, bytes_per_sec: Option<u64>) {
        self.state.faults.lock().unwrap().rate = bytes_per_sec;
    }

    pub fn set_ignore_range(&self, on: bool) {
        self.state.faults.lock().unwrap().ignore_range = on;
    }

    pub fn set_redirect_to(&self, base: Option<String>) {
        self.state.faults.lock().unwrap().redirect_to = base;
    }

    pub fn set_endless_body(&self, on: bool) {
        self.state.faults.lock().unwrap().endless_body = on;
    }

    pub fn set_hide_sizes(&self, on: bool) {
        self.state.faults.lock().unwrap().hide_sizes = on;
    }

    pub fn set_write_token(&self, t: Option<&str>) {
        *self.state.write_token.lock().unwrap() = t.map(str::to_string);
    }

    pub fn set_multipart(&self, over: Option<usize>, part_size: usize) {
        let mut f = self.state.faults.lock().unwrap();
        f.multipart_over = over;
        f.part_size = part_size.max(1);
    }

    /// Let `ok` more LFS uploads through, then fail the next `fail` with a 500.
    pub fn set_fail_uploads_after(&self, ok: usize, fail: usize) {
        self.state.faults.lock().unwrap().fail_uploads_after = Some((ok, fail));
    }

    pub fn repo(&self, id: &str) -> Option<FakeRepo> {
        self.state.repos.lock().unwrap().get(id).cloned()
    }

    pub fn set_tree_page(&self, n: Option<usize>) {
        self.state.faults.lock().unwrap().tree_page = n;
    }

    pub fn set_no_tree(&self, on: bool) {
        self.state.faults.lock().unwrap().no_tree = on;
    }

    pub fn set_opaque_etags(&self, on: bool) {
        self.state.faults.lock().unwrap().opaque_etags = on;
    }

    pub fn rename(&self, old: &str, new: &str) {
        self.state
            .renamed
            .lock()
            .unwrap()
            .insert(old.into(), new.into());
    }

    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// Block the calling thread until the server stops (for the example binary).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error(status: StatusCode, code: Option<&str>, msg: &str) -> Response {
    let mut r = Response::builder().status(status);
    if let Some(c) = code {
        r = r.header("X-Error-Code", c);
    }
    r.header("X-Error-Message", msg)
        .header("content-type", "application/json")
        .body(Body::from(format!(r#"{{"error":"{msg}"}}"#)))
        .unwrap()
}

/// Check repo access; `Some(response)` when refused.
fn refusal(repo: &FakeRepo, headers: &HeaderMap) -> Option<Response> {
    let Some(tok) = &repo.token else {
        return None;
    };
    let sent = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if sent == Some(tok.as_str()) {
        return None;
    }
    if repo.gated {
        let status = if sent.is_some() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        return Some(error(
            status,
            Some("GatedRepo"),
            "Access to this repo is restricted",
        ));
    }
    Some(error(
        StatusCode::UNAUTHORIZED,
        Some("RepoNotFound"),
        "Repository not found",
    ))
}

fn resolve_rev(repo: &FakeRepo, rev: &str) -> Option<String> {
    if let Some(c) = repo.refs.get(rev) {
        return Some(c.clone());
    }
    if rev.len() >= 7 && repo.commit.starts_with(rev) {
        return Some(repo.commit.clone());
    }
    None
}

async fn handle(
    State(st): State<Arc<HubState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let range = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let auth = if headers.contains_key("authorization") {
        " [auth]"
    } else {
        ""
    };
    st.log.lock().unwrap().push(format!(
        "{method} {}{}{auth}",
        uri.path(),
        range
            .as_deref()
            .map(|r| format!(" {r}"))
            .unwrap_or_default()
    ));
    let path = uri.path().to_string();
    if method == Method::POST || method == Method::PUT {
        if let Some(r) = upload::route(&st, &method, &path, &headers, &body) {
            return r;
        }
    }
    let redirect = st.faults.lock().unwrap().redirect_to.clone();
    if let Some(base) = redirect {
        let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("location", format!("{base}{pq}"))
            .body(Body::empty())
            .unwrap();
    }
    if let Some(rest) = path.strip_prefix("/api/models/") {
        return api_info(&st, rest, &uri, &headers);
    }
    if let Some(sha) = path.strip_prefix("/cdn/") {
        let file = {
            let repos = st.repos.lock().unwrap();
            repos
                .values()
                .flat_map(|r| r.files.iter())
                .find(|f| f.lfs && f.sha256() == sha)
                .cloned()
        };
        return match file {
            Some(f) => serve_bytes(&st, &method, &f, range.as_deref()),
            None => error(StatusCode::NOT_FOUND, None, "no such object"),
        };
    }
    // /{org}/{name}/resolve/{rev}/{path...}
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    if parts.len() == 5 && parts[2] == "resolve" {
        let repo_id = format!("{}/{}", pct_decode(parts[0]), pct_decode(parts[1]));
        if let Some(new) = st.renamed.lock().unwrap().get(&repo_id) {
            let loc = format!("/{new}/resolve/{}/{}", parts[3], parts[4]);
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header("location", loc)
                .body(Body::empty())
                .unwrap();
        }
        let rev = pct_decode(parts[3]);
        let file_path = pct_decode(parts[4]);
        let Some(repo) = st.repos.lock().unwrap().get(&repo_id).cloned() else {
            return error(
                StatusCode::NOT_FOUND,
                Some("RepoNotFound"),
                "Repository not found",
            );
        };
        if let Some(r) = refusal(&repo, &headers) {
            return r;
        }
        let Some(commit) = resolve_rev(&repo, &rev) else {
            return error(
                StatusCode::NOT_FOUND,
                Some("RevisionNotFound"),
                "Invalid rev id",
            );
        };
        let Some(file) = repo.files.iter().find(|f| f.path == file_path).cloned() else {
            return error(
                StatusCode::NOT_FOUND,
                Some("EntryNotFound"),
                "Entry not found",
            );
        };
        if file.lfs {
            // The "CDN" is this server under another host name, so clients treat
            // the redirect as leaving the hub (no token, metadata from the 302).
            let base = st
                .base_url
                .lock()
                .unwrap()
                .replace("127.0.0.1", "localhost");
            return Response::builder()
                .status(StatusCode::FOUND)
                .header("location", format!("{base}/cdn/{}", file.sha256()))
                .header("x-repo-commit", commit)
                .header("x-linked-etag", format!("\"{}\"", file.sha256()))
                .header("x-linked-size", file.content.len().to_string())
                .header("etag", format!("W/\"{}\"", file.git_sha1()))
                .header("content-length", "0")
                .body(Body::empty())
                .unwrap();
        }
        let mut resp = serve_bytes(&st, &method, &file, range.as_deref());
        let h = resp.headers_mut();
        h.insert("x-repo-commit", HeaderValue::from_str(&commit).unwrap());
        return resp;
    }
    error(StatusCode::NOT_FOUND, None, "not found")
}

fn api_info(st: &HubState, rest: &str, uri: &Uri, headers: &HeaderMap) -> Response {
    if let Some((repo_raw, rev)) = rest.split_once("/tree/") {
        return api_tree(st, &pct_decode(repo_raw), &pct_decode(rev), uri, headers);
    }
    let (repo_raw, rev) = match rest.split_once("/revision/") {
        Some((r, v)) => (r.to_string(), pct_decode(v)),
        None => (rest.trim_end_matches('/').to_string(), "main".to_string()),
    };
    let repo_id = pct_decode(&repo_raw);
    if let Some(new) = st.renamed.lock().unwrap().get(&repo_id) {
        let q = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(
                "location",
                format!(
                    "/api/models/{new}/revision/{}{q}",
                    rest.split_once("/revision/").map(|x| x.1).unwrap_or("main")
                ),
            )
            .body(Body::empty())
            .unwrap();
    }
    let Some(repo) = st.repos.lock().unwrap().get(&repo_id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            Some("RepoNotFound"),
            "Repository not found",
        );
    };
    if let Some(r) = refusal(&repo, headers) {
        return r;
    }
    let Some(commit) = resolve_rev(&repo, &rev) else {
        return error(
            StatusCode::NOT_FOUND,
            Some("RevisionNotFound"),
            "Invalid rev id",
        );
    };
    let blobs = uri.query().is_some_and(|q| q.contains("blobs=true"));
    let hide_sizes = st.faults.lock().unwrap().hide_sizes;
    let siblings: Vec<serde_json::Value> = repo
        .files
        .iter()
        .map(|f| {
            let mut v = serde_json::json!({ "rfilename": f.path });
            if blobs {
                if !hide_sizes {
                    v["size"] = f.content.len().into();
                }
                v["blobId"] = f.git_sha1().into();
                if f.lfs {
                    v["lfs"] = serde_json::json!({
                        "sha256": f.sha256(),
                        "size": f.content.len(),
                        "pointerSize": 134
                    });
                }
            }
            v
        })
        .collect();
    let body = serde_json::json!({
        "_id": "0123456789abcdef01234567",
        "id": repo.id,
        "modelId": repo.id,
        "sha": commit,
        "private": repo.token.is_some() && !repo.gated,
        "gated": if repo.gated { serde_json::json!("auto") } else { serde_json::json!(false) },
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "lastModified": "2025-01-01T00:00:00.000Z",
        "createdAt": "2025-01-01T00:00:00.000Z",
        "siblings": siblings,
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("x-repo-commit", commit)
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// `GET /api/models/{repo}/tree/{rev}?recursive=true` (huggingface_hub's
/// `list_repo_tree`, used by its `snapshot_download`): files and directories, one page.
fn api_tree(st: &HubState, repo_id: &str, rev: &str, uri: &Uri, headers: &HeaderMap) -> Response {
    let (page, no_tree, hide_sizes) = {
        let f = st.faults.lock().unwrap();
        (f.tree_page, f.no_tree, f.hide_sizes)
    };
    if no_tree {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("Not Found"))
            .unwrap();
    }
    if let Some(new) = st.renamed.lock().unwrap().get(repo_id) {
        let q = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("location", format!("/api/models/{new}/tree/{rev}{q}"))
            .body(Body::empty())
            .unwrap();
    }
    let Some(repo) = st.repos.lock().unwrap().get(repo_id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            Some("RepoNotFound"),
            "Repository not found",
        );
    };
    if let Some(r) = refusal(&repo, headers) {
        return r;
    }
    if resolve_rev(&repo, rev).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            Some("RevisionNotFound"),
            "Invalid rev id",
        );
    }
    let mut dirs = std::collections::BTreeSet::new();
    let mut entries = Vec::new();
    for f in &repo.files {
        let mut acc = String::new();
        let parts: Vec<&str> = f.path.split('/').collect();
        for p in &parts[..parts.len() - 1] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(p);
            dirs.insert(acc.clone());
        }
        let mut v = serde_json::json!({
            "type": "file", "oid": f.git_sha1(), "size": f.content.len(), "path": f.path,
        });
        if f.lfs {
            v["lfs"] = serde_json::json!({
                "oid": f.sha256(), "size": f.content.len(), "pointerSize": 134
            });
        }
        if hide_sizes {
            v.as_object_mut().unwrap().remove("size");
            if let Some(l) = v.get_mut("lfs").and_then(|l| l.as_object_mut()) {
                l.remove("size");
            }
        }
        entries.push(v);
    }
    for d in dirs {
        entries.push(serde_json::json!({
            "type": "directory", "oid": "0000000000000000000000000000000000000000", "size": 0, "path": d
        }));
    }
    let mut rb = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json");
    if let Some(n) = page {
        let cursor: usize = uri
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("cursor="))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let end = (cursor + n.max(1)).min(entries.len());
        if end < entries.len() {
            let base = st.base_url.lock().unwrap().clone();
            rb = rb.header(
                "link",
                format!(
                    "<{base}/api/models/{repo_id}/tree/{rev}?recursive=true&expand=false&cursor={end}>; rel=\"next\""
                ),
            );
        }
        entries = entries[cursor.min(end)..end].to_vec();
    }
    rb.body(Body::from(serde_json::Value::Array(entries).to_string()))
        .unwrap()
}

/// Serve file bytes (HEAD: headers only) with Range and the configured faults.
fn serve_bytes(st: &HubState, method: &Method, f: &FakeFile, range: Option<&str>) -> Response {
    let mut content: Vec<u8> = (*f.content).clone();
    let (drop_at, ignore_range, rate, endless, opaque) = {
        let faults = st.faults.lock().unwrap();
        if f.lfs && faults.corrupt_lfs && !content.is_empty() {
            content[0] ^= 0xff;
        }
        (
            faults.drop_after,
            faults.ignore_range,
            faults.rate,
            faults.endless_body && !f.lfs,
            faults.opaque_etags && !f.lfs,
        )
    };
    let total = content.len() as u64;
    let etag = if opaque {
        format!("\"v-{}\"", f.etag())
    } else {
        format!("\"{}\"", f.etag())
    };
    if endless {
        let rb = Response::builder()
            .status(StatusCode::OK)
            .header("etag", etag)
            .header("content-type", "application/octet-stream");
        if *method == Method::HEAD {
            // A body of unknown length, so that no Content-Length: 0 is added.
            let none = futures_util::stream::empty::<Result<Bytes, std::io::Error>>();
            return rb.body(Body::from_stream(none)).unwrap();
        }
        let head = Bytes::from(content);
        let filler = Bytes::from(vec![b'x'; 64 * 1024]);
        let stream = futures_util::stream::unfold(0u64, move |n| {
            let chunk = if n == 0 { head.clone() } else { filler.clone() };
            async move { Some((Ok::<Bytes, std::io::Error>(chunk), n + 1)) }
        });
        return rb.body(Body::from_stream(stream)).unwrap();
    }
    let mut start = 0u64;
    let mut status = StatusCode::OK;
    if let Some(r) = range.filter(|_| !ignore_range) {
        if let Some(s) = r
            .strip_prefix("bytes=")
            .and_then(|x| x.strip_suffix('-'))
            .and_then(|x| x.parse::<u64>().ok())
        {
            if s >= total {
                return Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header("content-range", format!("bytes */{total}"))
                    .body(Body::empty())
                    .unwrap();
            }
            start = s;
            status = StatusCode::PARTIAL_CONTENT;
        }
    }
    let body_bytes = Bytes::from(content).slice(start as usize..);
    let len = body_bytes.len() as u64;
    let mut rb = Response::builder()
        .status(status)
        .header("etag", etag)
        .header("accept-ranges", "bytes")
        .header("content-length", len.to_string())
        .header("content-type", "application/octet-stream");
    if status == StatusCode::PARTIAL_CONTENT {
        rb = rb.header(
            "content-range",
            format!("bytes {start}-{}/{total}", total - 1),
        );
    }
    if *method == Method::HEAD {
        return rb.body(Body::empty()).unwrap();
    }
    // Drop only when the cut falls inside this body, and count it.
    let drop_after = drop_at.filter(|&n| n < len).filter(|_| {
        let mut faults = st.faults.lock().unwrap();
        match faults.drop_times {
            None => true,
            Some(0) => false,
            Some(k) => {
                faults.drop_times = Some(k - 1);
                true
            }
        }
    });
    let body = match drop_after {
        Some(n) => {
            let head = body_bytes.slice(..n as usize);
            // Send the head, give it time to reach the client, then fail the body:
            // hyper aborts the connection short of Content-Length.
            let stream = futures_util::stream::unfold(0u8, move |step| {
                let head = head.clone();
                async move {
                    match step {
                        0 => Some((Ok::<Bytes, std::io::Error>(head), 1)),
                        1 => {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            Some((
                                Err(std::io::Error::new(
                                    std::io::ErrorKind::ConnectionReset,
                                    "fake hub: dropping the connection",
                                )),
                                2,
                            ))
                        }
                        _ => None,
                    }
                }
            });
            Body::from_stream(stream)
        }
        None => match rate {
            Some(rate) => {
                // 64 KiB chunks, each followed by the pause the rate asks for.
                let chunk = 64 * 1024usize;
                let pause = std::time::Duration::from_secs_f64(chunk as f64 / rate.max(1) as f64);
                let stream = futures_util::stream::unfold(0usize, move |off| {
                    let bytes = body_bytes.clone();
                    async move {
                        if off >= bytes.len() {
                            return None;
                        }
                        if off > 0 {
                            tokio::time::sleep(pause).await;
                        }
                        let end = (off + chunk).min(bytes.len());
                        Some((Ok::<Bytes, std::io::Error>(bytes.slice(off..end)), end))
                    }
                });
                Body::from_stream(stream)
            }
            None => Body::from(body_bytes),
        },
    };
    rb.body(body).unwrap()
}

/// The upload side of the fake hub.
mod upload {
    use super::*;
    use base64::Engine as _;

    fn json(status: StatusCode, v: serde_json::Value) -> Response {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap()
    }

    fn unauthorized(st: &HubState, headers: &HeaderMap) -> Option<Response> {
        let want = st.write_token.lock().unwrap().clone()?;
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent == Some(want.as_str()) {
            return None;
        }
        Some(error(
            StatusCode::UNAUTHORIZED,
            None,
            "Invalid credentials in Authorization header",
        ))
    }

    fn sha256_hex(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    /// Count an LFS upload against the failure fault: `true` to refuse it.
    fn should_fail(st: &HubState) -> bool {
        let mut f = st.faults.lock().unwrap();
        match f.fail_uploads_after {
            Some((0, 0)) | None => false,
            Some((0, n)) => {
                f.fail_uploads_after = Some((0, n - 1));
                true
            }
            Some((ok, n)) => {
                f.fail_uploads_after = Some((ok - 1, n));
                false
            }
        }
    }

    pub fn route(
        st: &HubState,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Option<Response> {
        let base = st.base_url.lock().unwrap().clone();
        if path == "/api/repos/create" && method == Method::POST {
            if let Some(r) = unauthorized(st, headers) {
                return Some(r);
            }
            let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let name = v["name"].as_str().unwrap_or("");
            let id = match v["organization"].as_str() {
                Some(o) => format!("{o}/{name}"),
                None => name.to_string(),
            };
            let mut repos = st.repos.lock().unwrap();
            if repos.contains_key(&id) {
                return Some(error(
                    StatusCode::CONFLICT,
                    None,
                    "You already created this model repo",
                ));
            }
            let mut r = FakeRepo::new(&id, vec![]);
            // An empty repo: its first commit is the initial one.
            r.commit = hex::encode(Sha1::digest(format!("initial {id}").as_bytes()));
            r.refs.insert("main".into(), r.commit.clone());
            repos.insert(id.clone(), r);
            return Some(json(
                StatusCode::OK,
                serde_json::json!({"url": format!("{base}/{id}"), "name": id}),
            ));
        }
        if let Some(rest) = path.strip_prefix("/api/models/") {
            if let Some((repo_raw, rev)) = rest.split_once("/preupload/") {
                return Some(preupload(
                    st,
                    &pct_decode(repo_raw),
                    &pct_decode(rev),
                    headers,
                    body,
                ));
            }
            if let Some((repo_raw, rev)) = rest.split_once("/commit/") {
                return Some(commit(
                    st,
                    &pct_decode(repo_raw),
                    &pct_decode(rev),
                    headers,
                    body,
                ));
            }
            return None;
        }
        if let Some(repo_raw) = path.strip_suffix(".git/info/lfs/objects/batch") {
            return Some(batch(
                st,
                &pct_decode(repo_raw.trim_start_matches('/')),
                headers,
                body,
                &base,
            ));
        }
        if let Some(rest) = path.strip_prefix("/lfs-upload/") {
            return Some(put_object(st, method, rest, body));
        }
        if let Some(oid) = path.strip_prefix("/lfs-verify/") {
            let ok = st.objects.lock().unwrap().contains_key(oid);
            return Some(if ok {
                json(StatusCode::OK, serde_json::json!({"success": true}))
            } else {
                error(StatusCode::NOT_FOUND, None, "object not found")
            });
        }
        None
    }

    fn preupload(
        st: &HubState,
        repo_id: &str,
        rev: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Response {
        if let Some(r) = unauthorized(st, headers) {
            return r;
        }
        let Some(repo) = st.repos.lock().unwrap().get(repo_id).cloned() else {
            return error(
                StatusCode::NOT_FOUND,
                Some("RepoNotFound"),
                "Repository not found",
            );
        };
        if resolve_rev(&repo, rev).is_none() {
            return error(
                StatusCode::NOT_FOUND,
                Some("RevisionNotFound"),
                "Invalid rev id",
            );
        }
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let files: Vec<serde_json::Value> = v["files"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|f| {
                let path = f["path"].as_str().unwrap_or("").to_string();
                let size = f["size"].as_u64().unwrap_or(0);
                let weights = [".safetensors", ".gguf", ".bin", ".npz"].iter().any(|e| path.ends_with(e));
                let mode = if (weights || size > 1 << 20) && size > 0 { "lfs" } else { "regular" };
                let oid = repo.files.iter().find(|r| r.path == path).map(|r| r.etag());
                serde_json::json!({"path": path, "uploadMode": mode, "shouldIgnore": false, "oid": oid})
            })
            .collect();
        json(
            StatusCode::OK,
            serde_json::json!({"files": files, "commitOid": repo.commit}),
        )
    }

    fn batch(
        st: &HubState,
        repo_id: &str,
        headers: &HeaderMap,
        body: &Bytes,
        base: &str,
    ) -> Response {
        if let Some(r) = unauthorized(st, headers) {
            return r;
        }
        if !st.repos.lock().unwrap().contains_key(repo_id) {
            return error(
                StatusCode::NOT_FOUND,
                Some("RepoNotFound"),
                "Repository not found",
            );
        }
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let (over, part) = {
            let f = st.faults.lock().unwrap();
            (f.multipart_over, f.part_size.max(1))
        };
        let mut multipart = false;
        let objects: Vec<serde_json::Value> = v["objects"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|o| {
                let oid = o["oid"].as_str().unwrap_or("").to_string();
                let size = o["size"].as_u64().unwrap_or(0) as usize;
                if st.objects.lock().unwrap().contains_key(&oid) {
                    return serde_json::json!({"oid": oid, "size": size});
                }
                let verify = serde_json::json!({"href": format!("{base}/lfs-verify/{oid}"), "header": {}});
                if over.is_some_and(|n| size > n) {
                    multipart = true;
                    let mut header = serde_json::Map::new();
                    header.insert("chunk_size".into(), part.to_string().into());
                    for i in 0..size.div_ceil(part) {
                        header.insert(
                            (i + 1).to_string(),
                            format!("{base}/lfs-upload/{oid}/part/{}", i + 1).into(),
                        );
                    }
                    serde_json::json!({"oid": oid, "size": size, "actions": {
                        "upload": {"href": format!("{base}/lfs-upload/{oid}/complete"), "header": header},
                        "verify": verify,
                    }})
                } else {
                    serde_json::json!({"oid": oid, "size": size, "actions": {
                        "upload": {"href": format!("{base}/lfs-upload/{oid}"), "header": {}},
                        "verify": verify,
                    }})
                }
            })
            .collect();
        json(
            StatusCode::OK,
            serde_json::json!({"transfer": if multipart { "multipart" } else { "basic" }, "objects": objects}),
        )
    }

    fn put_object(st: &HubState, method: &Method, rest: &str, body: &Bytes) -> Response {
        let parts: Vec<&str> = rest.split('/').collect();
        match (method.as_str(), parts.as_slice()) {
            ("PUT", [oid]) => {
                if should_fail(st) {
                    return error(StatusCode::INTERNAL_SERVER_ERROR, None, "upload failed");
                }
                if sha256_hex(body) != *oid {
                    return error(StatusCode::BAD_REQUEST, None, "sha256 mismatch");
                }
                st.objects
                    .lock()
                    .unwrap()
                    .insert(oid.to_string(), Arc::new(body.to_vec()));
                *st.uploads.lock().unwrap() += 1;
                Response::builder()
                    .status(StatusCode::OK)
                    .body(Body::empty())
                    .unwrap()
            }
            ("PUT", [oid, "part", n]) => {
                let n: usize = n.parse().unwrap_or(0);
                let etag = sha256_hex(body);
                st.parts
                    .lock()
                    .unwrap()
                    .insert((oid.to_string(), n), body.to_vec());
                Response::builder()
                    .status(StatusCode::OK)
                    .header("etag", format!("\"{etag}\""))
                    .body(Body::empty())
                    .unwrap()
            }
            ("POST", [oid, "complete"]) => {
                if should_fail(st) {
                    return error(StatusCode::INTERNAL_SERVER_ERROR, None, "upload failed");
                }
                let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                let mut all = Vec::new();
                let mut store = st.parts.lock().unwrap();
                for p in v["parts"].as_array().cloned().unwrap_or_default() {
                    let n = p["partNumber"].as_u64().unwrap_or(0) as usize;
                    let Some(bytes) = store.remove(&(oid.to_string(), n)) else {
                        return error(StatusCode::BAD_REQUEST, None, "missing part");
                    };
                    if p["etag"].as_str().map(|e| e.trim_matches('"')) != Some(&sha256_hex(&bytes))
                    {
                        return error(StatusCode::BAD_REQUEST, None, "part etag mismatch");
                    }
                    all.extend(bytes);
                }
                if sha256_hex(&all) != *oid {
                    return error(StatusCode::BAD_REQUEST, None, "sha256 mismatch");
                }
                st.objects
                    .lock()
                    .unwrap()
                    .insert(oid.to_string(), Arc::new(all));
                *st.uploads.lock().unwrap() += 1;
                json(StatusCode::OK, serde_json::json!({"success": true}))
            }
            _ => error(StatusCode::NOT_FOUND, None, "no such upload"),
        }
    }

    fn commit(
        st: &HubState,
        repo_id: &str,
        rev: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Response {
        if let Some(r) = unauthorized(st, headers) {
            return r;
        }
        let lines: Vec<serde_json::Value> = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        let mut repos = st.repos.lock().unwrap();
        let Some(repo) = repos.get_mut(repo_id) else {
            return error(
                StatusCode::NOT_FOUND,
                Some("RepoNotFound"),
                "Repository not found",
            );
        };
        if resolve_rev(repo, rev).is_none() {
            return error(
                StatusCode::NOT_FOUND,
                Some("RevisionNotFound"),
                "Invalid rev id",
            );
        }
        let mut files = repo.files.clone();
        for l in &lines {
            let v = &l["value"];
            let path = v["path"].as_str().unwrap_or("").to_string();
            let new = match l["key"].as_str() {
                Some("file") => {
                    let Ok(bytes) = base64::engine::general_purpose::STANDARD
                        .decode(v["content"].as_str().unwrap_or(""))
                    else {
                        return error(StatusCode::BAD_REQUEST, None, "bad base64");
                    };
                    FakeFile::git(&path, &bytes)
                }
                Some("lfsFile") => {
                    let oid = v["oid"].as_str().unwrap_or("");
                    let Some(b) = st.objects.lock().unwrap().get(oid).cloned() else {
                        return error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            None,
                            "LFS object not uploaded",
                        );
                    };
                    FakeFile {
                        path: path.clone(),
                        content: b,
                        lfs: true,
                    }
                }
                Some("deletedFile") => {
                    files.retain(|f| f.path != path);
                    continue;
                }
                _ => continue,
            };
            files.retain(|f| f.path != path);
            files.push(new);
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut h = Sha1::new();
        h.update(repo.commit.as_bytes());
        h.update(body);
        let oid = hex::encode(h.finalize());
        repo.files = files;
        repo.commit = oid.clone();
        repo.refs.insert(rev.to_string(), oid.clone());
        st.commits.lock().unwrap().push(lines);
        let base = st.base_url.lock().unwrap().clone();
        json(
            StatusCode::OK,
            serde_json::json!({"commitOid": oid, "commitUrl": format!("{base}/{repo_id}/commit/{oid}"), "success": true}),
        )
    }
}
