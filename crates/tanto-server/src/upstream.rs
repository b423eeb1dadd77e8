//! Scale-out: requests for models this server cannot or should not run
//! (not present, or refused by the memory gate) go to an OpenAI-compatible
//! upstream that lists them (vLLM, another `tanto serve`). The body is
//! forwarded unchanged, the answer (SSE included) streams back byte for
//! byte, `X-Request-ID` is kept. The upstream with the fewest outstanding
//! requests wins (ties rotate). An upstream that cannot be reached is a 502
//! `upstream_unavailable`, one that does not answer in time a 504
//! `upstream_timeout`; both before any byte of the answer is sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::Value;
use tanto_core::error::ErrorType;

use crate::error::ApiError;

struct Upstream {
    /// `http://host:port` (a trailing `/v1` is dropped).
    base: String,
    /// Its `/v1/models` entries, from the last refresh.
    models: RwLock<Vec<Value>>,
    outstanding: Arc<AtomicUsize>,
}

pub struct Upstreams {
    list: Vec<Upstream>,
    client: reqwest::Client,
    rotate: AtomicUsize,
    /// Longest wait for an upstream's response headers.
    timeout: Duration,
    /// Sent as `Authorization: Bearer` to upstreams (the client's own key is
    /// never forwarded).
    key: Option<String>,
}

/// Decrements an upstream's outstanding count when the answer is done.
struct Outstanding(Arc<AtomicUsize>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn normalize(url: &str) -> String {
    let u = url.trim().trim_end_matches('/');
    u.strip_suffix("/v1").unwrap_or(u).to_string()
}

impl Upstreams {
    pub fn new(urls: &[String], timeout: Duration, key: Option<String>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Upstreams {
            list: urls
                .iter()
                .map(|u| u.trim())
                .filter(|u| !u.is_empty())
                .map(|u| Upstream {
                    base: normalize(u),
                    models: RwLock::new(Vec::new()),
                    outstanding: Arc::new(AtomicUsize::new(0)),
                })
                .collect(),
            client,
            rotate: AtomicUsize::new(0),
            timeout,
            key,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Ask every upstream for its models; one that does not answer lists none.
    pub async fn refresh(&self) {
        for u in &self.list {
            let mut rb = self
                .client
                .get(format!("{}/v1/models", u.base))
                .timeout(Duration::from_secs(5));
            if let Some(k) = &self.key {
                rb = rb.bearer_auth(k);
            }
            let models = match rb.send().await {
                Ok(r) if r.status().is_success() => r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["data"].as_array().cloned())
                    .unwrap_or_default(),
                Ok(r) => {
                    tracing::warn!(upstream = %u.base, status = r.status().as_u16(), "upstream refused /v1/models");
                    Vec::new()
                }
                Err(e) => {
                    tracing::warn!(upstream = %u.base, error = %e, "upstream unreachable");
                    Vec::new()
                }
            };
            if let Ok(mut m) = u.models.write() {
                *m = models;
            }
        }
    }

    /// The upstreams' models for `/v1/models`, each once, marked with where it runs.
    pub fn models(&self, skip: &[String]) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        for u in &self.list {
            for m in u.models.read().map(|m| m.clone()).unwrap_or_default() {
                let Some(id) = m["id"].as_str() else { continue };
                if skip.iter().any(|s| s == id) || out.iter().any(|o| o["id"] == id) {
                    continue;
                }
                let mut m = m.clone();
                m["upstream"] = Value::String(u.base.clone());
                out.push(m);
            }
        }
        out
    }

    fn lists(u: &Upstream, model: &str) -> bool {
        u.models
            .read()
            .map(|m| m.iter().any(|v| v["id"].as_str() == Some(model)))
            .unwrap_or(false)
    }

    /// The upstream to send `model` to: those that list it, fewest
    /// outstanding requests first, ties in rotation.
    fn pick(&self, model: &str) -> Option<&Upstream> {
        let n = self.list.len();
        let start = self.rotate.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.list[(start + i) % n])
            .filter(|u| Self::lists(u, model))
            .min_by_key(|u| u.outstanding.load(Ordering::SeqCst))
    }

    /// Send `body` for `model` to `path` on an upstream that lists it (after
    /// one refresh if none does); `None` when no upstream has it.
    pub async fn forward(
        &self,
        model: &str,
        path: &str,
        body: Bytes,
        request_id: &str,
    ) -> Option<Result<Response, ApiError>> {
        if self.list.is_empty() {
            return None;
        }
        let u = match self.pick(model) {
            Some(u) => u,
            None => {
                self.refresh().await;
                self.pick(model)?
            }
        };
        u.outstanding.fetch_add(1, Ordering::SeqCst);
        let guard = Outstanding(u.outstanding.clone());
        let url = format!("{}{path}", u.base);
        let mut rb = self
            .client
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", request_id)
            .body(body);
        if let Some(k) = &self.key {
            rb = rb.bearer_auth(k);
        }
        tracing::info!(request_id, model, upstream = %u.base, "routing to upstream");
        let resp = match tokio::time::timeout(self.timeout, rb.send()).await {
            Err(_) => {
                return Some(Err(ApiError::new(
                    ErrorType::InternalError,
                    format!(
                        "Upstream {} did not answer within {} s",
                        u.base,
                        self.timeout.as_secs_f32()
                    ),
                )
                .with_code("upstream_timeout")
                .with_status(StatusCode::GATEWAY_TIMEOUT)))
            }
            Ok(Err(e)) => {
                return Some(Err(ApiError::new(
                    ErrorType::InternalError,
                    format!("Upstream {} cannot be reached: {e}", u.base),
                )
                .with_code("upstream_unavailable")
                .with_status(StatusCode::BAD_GATEWAY)))
            }
            Ok(Ok(r)) => r,
        };
        let status =
            StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
        let stream = resp.bytes_stream().map(move |chunk| {
            let _keep = &guard;
            chunk.map_err(std::io::Error::other)
        });
        let mut out = Response::builder().status(status);
        if let Some(ct) = content_type {
            out = out.header(header::CONTENT_TYPE, ct);
        }
        out = out.header("x-tanto-upstream", u.base.as_str());
        Some(out.body(Body::from_stream(stream)).map_err(|e| {
            ApiError::new(
                ErrorType::InternalError,
                format!("cannot relay the upstream answer: {e}"),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_normalize() {
        assert_eq!(normalize("http://h:8000/v1/"), "http://h:8000");
        assert_eq!(normalize(" http://h:8000 "), "http://h:8000");
    }
}
