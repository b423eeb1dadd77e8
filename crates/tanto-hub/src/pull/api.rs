//! The hub's HTTP API as `pull` uses it: the repo listing, per-file metadata
//! (`HEAD …/resolve/…`), redirects and who gets the token, and the mapping of
//! hub answers (status + `X-Error-Code`) to [`HubError`]. Nothing here writes to disk.
//!
//! Redirects are followed by hand, and the token (`Authorization: Bearer`) goes
//! only to the endpoint's exact origin (scheme, host and port): never to a CDN,
//! another port or another scheme on the same host, whatever the redirect chain.

use reqwest::blocking::{Client, Response};
use reqwest::header;
use reqwest::StatusCode;
use serde::Deserialize;
use tanto_core::naming::is_commit_hash;

use super::PullCtx;
use crate::HubError;

/// `GET /api/models/{repo}/revision/{rev}?blobs=true`.
#[derive(Debug, Deserialize)]
pub(crate) struct ModelInfo {
    pub sha: Option<String>,
    #[serde(default)]
    pub siblings: Vec<Sibling>,
}

/// One file of the listing.
#[derive(Debug, Deserialize)]
pub(crate) struct Sibling {
    pub rfilename: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default, rename = "blobId")]
    pub blob_id: Option<String>,
    #[serde(default)]
    pub lfs: Option<LfsInfo>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LfsInfo {
    pub sha256: String,
    #[serde(default)]
    pub size: Option<u64>,
}

/// What `HEAD …/resolve/{commit}/{file}` says about a file.
pub(super) struct FileMeta {
    pub etag: String,
    pub size: Option<u64>,
    /// Where to GET the bytes (CDN location or the resolve URL).
    pub location: String,
}

pub(crate) fn net_err(url: &str, e: impl std::fmt::Display) -> HubError {
    HubError::Network {
        url: url.to_string(),
        message: e.to_string(),
    }
}

/// Percent-encode for a URL path; `/` kept when `keep_slash`.
pub(crate) fn quote(s: &str, keep_slash: bool) -> String {
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

/// Map a non-success hub response to a typed error.
pub(crate) fn status_error(
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

/// Same scheme, host and port (the scheme's default port when none is written).
fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme().eq_ignore_ascii_case(b.scheme())
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The token for a request to `url`: only when `url` is on the endpoint's origin.
pub(crate) fn token_for<'t>(
    endpoint: &str,
    token: Option<&'t str>,
    url: &reqwest::Url,
) -> Option<&'t str> {
    let ep = reqwest::Url::parse(endpoint).ok()?;
    token.filter(|_| same_origin(&ep, url))
}

/// Hosts that count as the hub: the public hub, its short domain, staging, and
/// the configured endpoint. API redirects between them are followed; any other
/// host (a CDN, a storage bucket) ends the chain for the caller to handle.
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
pub(crate) fn send_hub(
    client: &Client,
    endpoint: &str,
    token: Option<&str>,
    method: reqwest::Method,
    url: &str,
) -> Result<(Response, String), HubError> {
    let mut cur = reqwest::Url::parse(url).map_err(|e| net_err(url, e))?;
    for _ in 0..10 {
        let mut rb = client
            .request(method.clone(), cur.clone())
            .header(header::ACCEPT_ENCODING, "identity");
        if let Some(t) = token_for(endpoint, token, &cur) {
            rb = rb.bearer_auth(t);
        }
        let resp = rb.send().map_err(|e| net_err(cur.as_str(), e))?;
        if resp.status().is_redirection() {
            if let Some(loc) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
            {
                let next = cur.join(loc).map_err(|e| net_err(cur.as_str(), e))?;
                let same_host = next.host_str().map(str::to_ascii_lowercase)
                    == cur.host_str().map(str::to_ascii_lowercase);
                if same_host || is_hub_host(endpoint, &next) {
                    cur = next;
                    continue;
                }
            }
        }
        return Ok((resp, cur.to_string()));
    }
    Err(HubError::Protocol {
        url: cur.to_string(),
        message: "too many redirects".into(),
    })
}

/// Resolve `revision` of `repo` to a commit and list its files.
pub(crate) fn repo_info(
    client: &Client,
    endpoint: &str,
    token: Option<&str>,
    repo: &str,
    revision: &str,
) -> Result<(String, ModelInfo, String), HubError> {
    let info_url = format!(
        "{endpoint}/api/models/{repo}/revision/{}?blobs=true",
        quote(revision, false)
    );
    let (resp, final_url) = send_hub(client, endpoint, token, reqwest::Method::GET, &info_url)?;
    if !resp.status().is_success() {
        return Err(status_error(
            &resp, &final_url, repo, endpoint, revision, None,
        ));
    }
    let mut info: ModelInfo = resp.json().map_err(|e| HubError::Protocol {
        url: final_url.clone(),
        message: format!("bad repo info: {e}"),
    })?;
    let commit = info
        .sha
        .take()
        .filter(|s| is_commit_hash(s))
        .ok_or_else(|| HubError::Protocol {
            url: final_url.clone(),
            message: "repo info without a commit sha".into(),
        })?;
    Ok((commit, info, final_url))
}

/// One entry of `GET /api/models/{repo}/tree/{rev}?recursive=true`.
#[derive(Debug, Deserialize)]
struct TreeItem {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    lfs: Option<TreeLfs>,
}

#[derive(Debug, Deserialize)]
struct TreeLfs {
    oid: String,
    #[serde(default)]
    size: Option<u64>,
}

/// Most pages and entries one tree listing may take (a loop or a runaway
/// server ends there with a protocol error).
const MAX_TREE_PAGES: usize = 10_000;
const MAX_TREE_ENTRIES: usize = tanto_core::limits::MAX_TENSORS as usize;

/// The `rel="next"` URL of a `Link` header (GitHub's format, which the hub uses).
pub(super) fn next_link(link: &str) -> Option<&str> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then_some(url)
    })
}

/// Every file of `repo` at `commit` from the paged tree listing, as
/// huggingface_hub's `snapshot_download` lists them (`list_repo_tree`,
/// recursive, following `Link: rel="next"`). `None` when the server has no
/// tree endpoint (a bare 404 on the first page): the repo info's siblings are
/// then the listing.
pub(crate) fn list_tree(
    client: &Client,
    endpoint: &str,
    token: Option<&str>,
    repo: &str,
    commit: &str,
) -> Result<Option<Vec<Sibling>>, HubError> {
    let mut url = format!("{endpoint}/api/models/{repo}/tree/{commit}?recursive=true&expand=false");
    let mut files = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for page in 0..MAX_TREE_PAGES {
        if !seen.insert(url.clone()) {
            return Err(HubError::Protocol {
                url,
                message: "the tree listing's next page repeats an earlier one".into(),
            });
        }
        let (resp, final_url) = send_hub(client, endpoint, token, reqwest::Method::GET, &url)?;
        if !resp.status().is_success() {
            let bare_404 = resp.status() == StatusCode::NOT_FOUND
                && !resp.headers().contains_key("x-error-code");
            if page == 0 && bare_404 {
                return Ok(None);
            }
            return Err(status_error(
                &resp, &final_url, repo, endpoint, commit, None,
            ));
        }
        let next = resp
            .headers()
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link)
            .map(str::to_string);
        let items: Vec<TreeItem> = resp.json().map_err(|e| HubError::Protocol {
            url: final_url.clone(),
            message: format!("bad tree listing: {e}"),
        })?;
        for it in items.into_iter().filter(|i| i.kind == "file") {
            files.push(Sibling {
                rfilename: it.path,
                size: it.size,
                blob_id: it.oid,
                lfs: it.lfs.map(|l| LfsInfo {
                    sha256: l.oid,
                    size: l.size,
                }),
            });
        }
        if files.len() > MAX_TREE_ENTRIES {
            return Err(HubError::Protocol {
                url: final_url,
                message: format!("the tree listing has more than {MAX_TREE_ENTRIES} files"),
            });
        }
        match next {
            // Relative links resolve against the page they came from.
            Some(n) => {
                url = reqwest::Url::parse(&final_url)
                    .and_then(|b| b.join(&n))
                    .map_err(|e| net_err(&final_url, e))?
                    .to_string()
            }
            None => return Ok(Some(files)),
        }
    }
    Err(HubError::Protocol {
        url,
        message: format!("the tree listing has more than {MAX_TREE_PAGES} pages"),
    })
}

/// `HEAD {endpoint}/{repo}/resolve/{commit}/{file}`: the blob's etag, its size and
/// where its bytes are.
pub(super) fn head_file(ctx: &PullCtx, file: &str) -> Result<FileMeta, HubError> {
    let url = format!(
        "{}/{}/resolve/{}/{}",
        ctx.cfg.endpoint,
        ctx.repo,
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
            &ctx.repo,
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

/// GET `url`, following redirects (absolute ones too: CDN). The token is sent only
/// to the endpoint's origin ([`token_for`]); the Range header is kept across redirects.
pub(super) fn get_following(
    ctx: &PullCtx,
    url: &str,
    range: Option<String>,
) -> Result<Response, HubError> {
    let mut cur = reqwest::Url::parse(url).map_err(|e| net_err(url, e))?;
    for _ in 0..10 {
        let mut rb = ctx
            .client
            .get(cur.clone())
            .header(header::ACCEPT_ENCODING, "identity");
        if let Some(t) = token_for(&ctx.cfg.endpoint, ctx.cfg.token.as_deref(), &cur) {
            rb = rb.bearer_auth(t);
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
    fn token_goes_only_to_the_endpoint_origin() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let ep = "https://huggingface.co";
        let t = Some("hf_x");
        assert_eq!(token_for(ep, t, &u("https://huggingface.co/api/x")), t);
        assert_eq!(token_for(ep, t, &u("https://HuggingFace.co:443/a")), t);
        for other in [
            "http://huggingface.co/a",
            "https://huggingface.co:8443/a",
            "https://cdn-lfs.huggingface.co/a",
            "https://hf.co/a",
            "https://evil.example/a",
        ] {
            assert_eq!(token_for(ep, t, &u(other)), None, "{other}");
        }
        let ep = "http://127.0.0.1:8000";
        assert_eq!(token_for(ep, t, &u("http://127.0.0.1:8000/x")), t);
        assert_eq!(token_for(ep, t, &u("http://127.0.0.1:8001/x")), None);
        assert_eq!(token_for(ep, t, &u("http://localhost:8000/x")), None);
        assert_eq!(token_for(ep, None, &u("http://127.0.0.1:8000/x")), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(quote("a b/c.json", true), "a%20b/c.json");
    }
}
