//! Request guards that keep web pages from reaching the server through the
//! user's browser: the `Host` check (DNS rebinding), the `Origin` check on
//! POST (a page's multipart form to `/v1/audio/*` needs no preflight), and the
//! JSON content type on the JSON routes (a form or `text/plain` post cannot
//! carry it without a CORS preflight, which tanto answers only for
//! `--cors-origin`).

use std::net::{Ipv4Addr, Ipv6Addr};

use axum::extract::Request;
use axum::http::{header, StatusCode};
use tanto_core::error::ErrorType;

use crate::error::ApiError;

/// Which `Host` header values are accepted.
///
/// An IP literal (`127.0.0.1:8000`, `[::1]`, `192.168.1.5`) and `localhost`
/// (with any `*.localhost`) are always accepted: a DNS-rebinding page runs
/// under a host *name* the attacker controls, and browsers resolve
/// `localhost` themselves. Other names must be listed (`--allowed-host`,
/// plus the `--host` name itself when it is not an IP); `*` accepts any.
/// A request without a Host header (HTTP/1.0) is accepted: browsers always
/// send one.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    any: bool,
    names: Vec<String>,
}

impl HostPolicy {
    pub fn new(bind_host: &str, allowed: &[String]) -> Self {
        let mut p = HostPolicy::default();
        for a in allowed.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
            if a == "*" {
                p.any = true;
            } else {
                p.names.push(normalize(a));
            }
        }
        let bind = normalize(bind_host);
        if !bind.is_empty() && !is_ip_literal(&bind) {
            p.names.push(bind);
        }
        p
    }

    /// Whether a `Host` header value (`name[:port]`) is accepted.
    pub fn allows(&self, host_header: &str) -> bool {
        if self.any {
            return true;
        }
        let host = normalize(strip_port(host_header.trim()));
        !host.is_empty()
            && (is_ip_literal(&host)
                || host == "localhost"
                || host.ends_with(".localhost")
                || self.names.contains(&host))
    }

    /// 403 unless the request's Host (or HTTP/2 authority) is accepted.
    pub fn check(&self, req: &Request) -> Result<(), ApiError> {
        let host = match req.headers().get(header::HOST) {
            Some(h) => Some(h.to_str().unwrap_or("\u{fffd}").to_string()),
            None => req.uri().authority().map(|a| a.as_str().to_string()),
        };
        match host {
            Some(h) if !self.allows(&h) => Err(ApiError::new(
                ErrorType::AccessDenied,
                format!(
                    "Host '{}' is not allowed by this server (DNS-rebinding protection); use http://127.0.0.1 or http://localhost, or start tanto serve with --allowed-host {}",
                    h.chars().take(100).collect::<String>(),
                    strip_port(&h).chars().take(100).collect::<String>()
                ),
            )
            .with_code("host_not_allowed")),
            _ => Ok(()),
        }
    }
}

fn normalize(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `name:8000` → `name`, `[::1]:8000` → `[::1]`, `::1` stays.
fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        return match h.find(']') {
            Some(i) => &h[..=i],
            None => h,
        };
    }
    match h.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => h,
    }
}

fn is_ip_literal(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    h.parse::<Ipv4Addr>().is_ok() || h.parse::<Ipv6Addr>().is_ok()
}

/// 415 unless the body is declared JSON (`application/json`, parameters
/// such as `; charset=utf-8` allowed).
pub fn require_json(req: &Request) -> Result<(), ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let is_json = ct.is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if is_json {
        return Ok(());
    }
    let got = match ct {
        Some(v) => format!("'{}'", v.chars().take(100).collect::<String>()),
        None => "no Content-Type".to_string(),
    };
    Err(ApiError::new(
        ErrorType::InvalidRequest,
        format!(
            "POST {} takes a JSON body: send the header 'Content-Type: application/json' (got {got})",
            req.uri().path()
        ),
    )
    .with_code("unsupported_media_type")
    .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE))
}

/// Which browser origins may POST. Browsers send `Origin` on every
/// cross-origin POST (and on same-origin ones); API clients (the SDKs, curl)
/// send none. A POST with an `Origin` that `--cors-origin` does not list, and
/// that is not the server's own origin, is a web page acting through the
/// user's browser: 403 before any work, whatever its content type.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    any: bool,
    list: Vec<String>,
}

impl OriginPolicy {
    pub fn new(cors_origins: &[String]) -> Self {
        let mut p = OriginPolicy::default();
        for o in cors_origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
        {
            if o == "*" {
                p.any = true;
            } else {
                p.list.push(o.trim_end_matches('/').to_ascii_lowercase());
            }
        }
        p
    }

    /// Whether `origin` may POST to a server reached as `host` (the request's
    /// `Host` header, when it has one).
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.any || self.list.contains(&o) {
            return true;
        }
        // Same origin: `http://HOST` where HOST is exactly the Host header.
        let authority = o
            .strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"));
        matches!((authority, host), (Some(a), Some(h)) if a == h.trim().to_ascii_lowercase())
    }

    /// 403 `origin_not_allowed` for a POST from a page this server does not allow.
    pub fn check(&self, req: &Request) -> Result<(), ApiError> {
        if req.method() != axum::http::Method::POST {
            return Ok(());
        }
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("\u{fffd}");
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if self.allows(origin, host) {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorType::AccessDenied,
            format!(
                "Requests from the web page at '{}' are not allowed (a page must not use your local models through your browser); start tanto serve with --cors-origin {} to allow it",
                origin.chars().take(100).collect::<String>(),
                origin.chars().take(100).collect::<String>()
            ),
        )
        .with_code("origin_not_allowed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let p = HostPolicy::new("127.0.0.1", &["Models.LAN".into()]);
        for ok in [
            "127.0.0.1:8000",
            "localhost:8000",
            "LOCALHOST",
            "app.localhost:1",
            "[::1]:8000",
            "192.168.1.5",
            "models.lan:8000",
            "models.lan.",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8000",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "",
            "[::1",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        // A --host name is allowed by itself; `*` allows everything.
        assert!(HostPolicy::new("myhost.local", &[]).allows("myhost.local:80"));
        assert!(HostPolicy::new("0.0.0.0", &["*".into()]).allows("evil.example"));
        assert!(!HostPolicy::new("0.0.0.0", &[]).allows("evil.example"));
    }

    #[test]
    fn origins() {
        let none = OriginPolicy::new(&[]);
        assert!(!none.allows("https://evil.example", Some("127.0.0.1:8000")));
        assert!(!none.allows("null", Some("127.0.0.1:8000")));
        // A page on another port of the same machine is another origin.
        assert!(!none.allows("http://127.0.0.1:3000", Some("127.0.0.1:8000")));
        assert!(none.allows("http://127.0.0.1:8000", Some("127.0.0.1:8000")));
        assert!(!none.allows("http://127.0.0.1:8000", None));
        let some = OriginPolicy::new(&["https://App.example/".into()]);
        assert!(some.allows("https://app.example", Some("127.0.0.1:8000")));
        assert!(!some.allows("https://app.example.evil", Some("127.0.0.1:8000")));
        assert!(OriginPolicy::new(&["*".into()]).allows("null", None));
    }
}
