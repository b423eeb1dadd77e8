//! The HTTP surface: router, middleware (request id, Host check, auth,
//! shutdown gate, access log), handlers, and the serve loop with graceful
//! shutdown (connections themselves are handled in `conn.rs`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tanto_core::error::ErrorType;
use tanto_core::policy::{self, Request as PolicyRequest};
use tanto_core::probe::{self, Probe};
use tanto_core::resolve::{self, Location, Resolved};
use tanto_engine::audio::AudioError;
use tanto_engine::whisper::{Task, TranscribeOptions};
use tanto_engine::Prompt;
use tokio::sync::{mpsc, watch};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::conn;
use crate::error::{ApiError, PendingError};
use crate::guard::{self, HostPolicy, OriginPolicy};
use crate::manager::{self, Job, Loader, Manager};
use crate::openai::{self, Endpoint, Meta};
use crate::sse::{self, LogCtx};
use crate::util;
use crate::ServeConfig;

pub struct AppState {
    pub cfg: ServeConfig,
    pub manager: Arc<Manager>,
    hosts: HostPolicy,
    origins: OriginPolicy,
    shutting_down: Arc<AtomicBool>,
    shutdown_tx: watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
    started: Instant,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub upstreams: Arc<crate::upstream::Upstreams>,
}

impl AppState {
    pub fn new(cfg: ServeConfig, loader: Arc<dyn Loader>) -> anyhow::Result<Arc<Self>> {
        let shutting_down = Arc::new(AtomicBool::new(false));
        let manager = Arc::new(Manager::new(&cfg, loader, shutting_down.clone()));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let hosts = HostPolicy::new(&cfg.host, &cfg.allowed_hosts);
        let origins = OriginPolicy::new(&cfg.cors_origins);
        let upstreams = Arc::new(crate::upstream::Upstreams::new(
            &cfg.upstreams,
            cfg.upstream_timeout,
            cfg.upstream_key.clone(),
        )?);
        Ok(Arc::new(Self {
            cfg,
            manager,
            hosts,
            origins,
            shutting_down,
            shutdown_tx,
            shutdown_rx,
            started: Instant::now(),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            upstreams,
        }))
    }

    fn begin_shutdown(&self) {
        if !self.shutting_down.swap(true, Ordering::SeqCst) {
            tracing::info!("shutting down: no new requests; ending in-flight streams");
        }
        let _ = self.shutdown_tx.send(true);
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
pub struct RequestId(pub String);

type St = State<Arc<AppState>>;

fn router(state: Arc<AppState>) -> Router {
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{*id}", get(get_model).post(unload_model))
        .route("/api/ps", get(ps))
        .route("/metrics", get(metrics))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/v1/audio/translations", post(translations))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), gate));
    // Outside in: front (request id, error bodies, access log) → CORS → gate
    // (shutdown, API key) → routes. So preflights get a request id, and
    // refusals (401, 503) still carry CORS headers a browser can read.
    if let Some(cors) = cors_layer(&state.cfg.cors_origins) {
        app = app.layer(cors);
    }
    app.layer(middleware::from_fn_with_state(state.clone(), front))
        .with_state(state)
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o.trim().trim_end_matches('/')).ok())
            .collect();
        AllowOrigin::list(list)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([header::HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600)),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_auth(key: &str, req: &Request) -> Result<(), ApiError> {
    let Some(h) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            ErrorType::Unauthorized,
            "Missing API key: send the header 'Authorization: Bearer <key>' (the key given to tanto serve --api-key)",
        )
        .with_code("missing_api_key"));
    };
    let given = h
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), key.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorType::Unauthorized,
            "Invalid API key: check the key in 'Authorization: Bearer <key>'",
        )
        .with_code("invalid_api_key"))
    }
}

/// Request id, error rendering, access log.
async fn front(State(st): St, mut req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let rid = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| util::sane_request_id(s))
        .map(str::to_string)
        .unwrap_or_else(util::new_request_id);
    req.extensions_mut().insert(RequestId(rid.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut resp = next.run(req).await;
    st.metrics.request(&path, resp.status().as_u16());
    if resp.status() == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }

    if let Some(PendingError(e)) = resp.extensions_mut().remove::<PendingError>() {
        // Keep the headers (CORS, …); replace the body with the one naming the request id.
        let status = resp.status();
        *resp.body_mut() = Body::from(e.body(&rid).to_string());
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status.is_server_error() {
            tracing::warn!(request_id = %rid, %method, %path, status = status.as_u16(), error = %e.message, "request failed");
        } else {
            tracing::info!(request_id = %rid, %method, %path, status = status.as_u16(), error = %e.message, "request refused");
        }
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let ms = t0.elapsed().as_millis() as u64;
    if path == "/health" {
        tracing::debug!(request_id = %rid, %method, %path, status = resp.status().as_u16(), ms, "request");
    } else {
        tracing::info!(request_id = %rid, %method, %path, status = resp.status().as_u16(), ms, "request");
    }
    resp
}

/// Inside CORS: the Host and Origin checks, the shutdown gate and the API key check.
async fn gate(State(st): St, req: Request, next: Next) -> Response {
    if let Err(e) = st.hosts.check(&req) {
        return e.into_response();
    }
    if let Err(e) = st.origins.check(&req) {
        return e.into_response();
    }
    let path = req.uri().path();
    // The key guards the API and what describes the loaded models.
    let is_v1 = path.starts_with("/v1/")
        || path == "/v1"
        || path.starts_with("/api/")
        || path == "/metrics";
    if st.is_shutting_down() && path != "/health" {
        return ApiError::shutting_down().into_response();
    }
    if let (true, false, Some(key)) = (
        is_v1,
        req.method() == Method::OPTIONS,
        st.cfg.api_key.as_deref(),
    ) {
        if let Err(e) = check_auth(key, &req) {
            return e.into_response();
        }
    }
    next.run(req).await
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        ErrorType::InvalidRequest,
        format!(
            "No route {} {}; tanto serve has GET /health, GET /v1/models, GET /v1/models/{{id}}, POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings, POST /v1/audio/transcriptions, POST /v1/audio/translations, GET /api/ps, POST /v1/models/{{id}}/unload, GET /metrics",
            req.method(),
            req.uri().path()
        ),
    )
    .with_code("not_found")
    .with_status(StatusCode::NOT_FOUND)
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        ErrorType::InvalidRequest,
        format!(
            "Method {} is not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    )
    .with_code("method_not_allowed")
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

async fn health(State(st): St) -> Response {
    let loaded: Vec<Value> = st
        .manager
        .loaded()
        .iter()
        .map(|l| json!({ "id": l.id, "queued": l.queued(), "context_length": l.info.context_length }))
        .collect();
    let status = if st.is_shutting_down() {
        "shutting_down"
    } else {
        "ok"
    };
    let body = json!({
        "status": status,
        "service": "tanto",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": st.started.elapsed().as_secs(),
        "loaded": loaded,
    });
    let code = if st.is_shutting_down() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A local refusal that an upstream may take instead: the model is not here
/// (404) or the memory gate refuses it (507). Other errors, and models no
/// upstream lists, keep the local answer.
async fn route_or(
    st: &AppState,
    e: ApiError,
    model: &str,
    path: &str,
    raw: Bytes,
    request_id: &str,
) -> Result<Response, ApiError> {
    let routable = matches!(
        e.kind,
        ErrorType::ModelNotFound | ErrorType::InsufficientMemory
    );
    if !routable || st.upstreams.is_empty() {
        return Err(e);
    }
    match st.upstreams.forward(model, path, raw, request_id).await {
        Some(r) => r,
        None => Err(e),
    }
}

/// A request's `keep_alive` (an Ollama extension): 400 when malformed.
fn keep_alive_of(body: &Value) -> Result<Option<manager::KeepAlive>, ApiError> {
    match body.get("keep_alive") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => manager::KeepAlive::parse(v)
            .map(Some)
            .map_err(|m| ApiError::new(ErrorType::InvalidRequest, m).with_param("keep_alive")),
    }
}

/// `GET /api/ps`: the loaded models, as Ollama's `/api/ps` lists them, plus
/// tanto's fields (queue, mode, capabilities, keep-alive).
async fn ps(State(st): St) -> Response {
    let server_keep = st.cfg.keep_alive;
    let now = time::OffsetDateTime::now_utc();
    let models: Vec<Value> = st
        .manager
        .loaded()
        .iter()
        .map(|l| {
            let expires_in = l.expires_in(server_keep);
            let expires_at = expires_in.and_then(|d| {
                (now + d)
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
            json!({
                "name": l.id,
                "model": l.id,
                "key": l.key,
                "size": l.memory_bytes,
                "size_vram": 0,
                "expires_at": expires_at,
                "expires_in_s": expires_in.map(|d| d.as_secs()),
                "pinned": l.pinned,
                "queued": l.queued(),
                "mode": "fifo",
                "slots": 1,
                "capabilities": l.capabilities,
                "context_length": l.info.context_length,
                "details": {"family": l.info.architecture},
            })
        })
        .collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "models": models }).to_string(),
    )
        .into_response()
}

/// `POST /v1/models/{id}/unload`: drop a loaded model now (a request in
/// flight finishes first). 404 when it is not loaded.
async fn unload_model(State(st): St, Path(id): Path<String>) -> Result<Response, ApiError> {
    let Some(id) = id.strip_suffix("/unload") else {
        return Err(ApiError::new(
            ErrorType::InvalidRequest,
            format!(
                "No route POST /v1/models/{id}; to unload a model: POST /v1/models/{id}/unload"
            ),
        )
        .with_status(StatusCode::METHOD_NOT_ALLOWED));
    };
    if !st.manager.unload(id) {
        return Err(ApiError::new(
            ErrorType::ModelNotFound,
            format!("Model '{id}' is not loaded; GET /api/ps lists the loaded models"),
        ));
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"id": id, "object": "model", "unloaded": true}).to_string(),
    )
        .into_response())
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(st): St) -> Response {
    let models: Vec<crate::metrics::ModelGauge> = st
        .manager
        .loaded()
        .iter()
        .map(|l| crate::metrics::ModelGauge {
            id: l.id.clone(),
            queued: l.queued(),
            bytes: l.memory_bytes,
        })
        .collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(&models),
    )
        .into_response()
}

fn owned_by(r: &Resolved) -> String {
    match &r.location {
        Location::Cache { .. } => r
            .name
            .split_once('/')
            .map(|(o, _)| o.to_string())
            .unwrap_or_else(|| "local".into()),
        Location::Folder { .. } => "workspace".into(),
        Location::File { .. } => "local".into(),
    }
}

fn model_json(r: &Resolved, p: &Probe, loaded: bool) -> Value {
    json!({
        "id": r.id(),
        "object": "model",
        "created": p.last_modified.map(util::unix_secs).unwrap_or(0),
        "owned_by": owned_by(r),
        "context_length": p.context_length,
        "capabilities": manager::served_capabilities(p),
        "loaded": loaded,
        "format": p.format.as_str(),
        "quantization": p.quantization.as_ref().and_then(|q| q.file_type.clone().or_else(|| q.bits.map(|b| format!("{b}bit")))),
        "size_bytes": p.weights_bytes,
    })
}

async fn list_models(State(st): St) -> Result<Response, ApiError> {
    let stores = st.manager.stores().clone();
    let loaded = st.manager.loaded();
    let loaded_keys: Vec<String> = loaded.iter().map(|l| l.key.clone()).collect();
    let default = st.manager.default_model.clone();
    let mut data: Vec<(bool, String, Value)> = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for r in resolve::all_models(&stores) {
            let p = probe::probe_resolved(&r);
            if !p.runnable() || manager::served_capabilities(&p).is_empty() {
                continue;
            }
            let key = r.key();
            let is_loaded = loaded_keys.contains(&key);
            out.push((is_loaded, key, model_json(&r, &p, is_loaded)));
        }
        out
    })
    .await
    .map_err(|e| ApiError::new(ErrorType::InternalError, format!("listing failed: {e}")))?;
    // Loaded models given by path (--allow-paths) are listed too.
    for l in &loaded {
        if !data.iter().any(|(_, k, _)| *k == l.key) {
            data.push((
                true,
                l.key.clone(),
                json!({
                    "id": l.id,
                    "object": "model",
                    "created": 0,
                    "owned_by": "local",
                    "context_length": l.info.context_length,
                    "capabilities": l.capabilities,
                    "loaded": true,
                }),
            ));
        }
    }
    let preloaded: Option<String> = default.and_then(|d| {
        loaded
            .iter()
            .find(|l| l.pinned && (l.id == d || l.key == d || l.id.ends_with(&d)))
            .map(|l| l.key.clone())
    });
    data.sort_by(|a, b| {
        let pa = preloaded.as_deref() == Some(a.1.as_str());
        let pb = preloaded.as_deref() == Some(b.1.as_str());
        pb.cmp(&pa)
            .then_with(|| a.2["id"].as_str().cmp(&b.2["id"].as_str()))
    });
    let mut list: Vec<Value> = data.into_iter().map(|(_, _, v)| v).collect();
    if !st.upstreams.is_empty() {
        st.upstreams.refresh().await;
        let local: Vec<String> = list
            .iter()
            .filter_map(|v| v["id"].as_str().map(str::to_string))
            .collect();
        list.extend(st.upstreams.models(&local));
    }
    let body = json!({ "object": "list", "data": list });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

async fn get_model(State(st): St, Path(id): Path<String>) -> Result<Response, ApiError> {
    st.manager.check_spec(&id)?;
    let stores = st.manager.stores().clone();
    let (r, p) = tokio::task::spawn_blocking(move || {
        resolve::resolve(&id, &stores)
            .map(|r| {
                let p = probe::probe_resolved(&r);
                (r, p)
            })
            .map_err(ApiError::from)
    })
    .await
    .map_err(|e| ApiError::new(ErrorType::InternalError, format!("lookup failed: {e}")))??;
    let req = if p.kind == probe::ModelKind::Embedding {
        PolicyRequest::Embeddings
    } else {
        PolicyRequest::Text
    };
    let d = policy::decide(&p, req, &tanto_core::host::detect(), st.manager.policy());
    if let Some(e) = d.error {
        return Err(e.into());
    }
    let key = r.key();
    let loaded = st.manager.loaded().iter().any(|l| l.key == key);
    let body = model_json(&r, &p, loaded);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

/// The whole body must arrive within this long (a slow-drip body would
/// otherwise hold its connection and its memory forever).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Read and discard what is left of a refused body (bounded in bytes and
/// time, never stored), so the client reads the 413 instead of a reset
/// connection while it is still sending.
async fn drain(body: Body) {
    const MOST: usize = 64 * 1024 * 1024;
    let discard = async {
        let mut body = body;
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > MOST {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), discard).await;
}

/// Read the body as JSON within the size limit and [`BODY_READ_TIMEOUT`], with
/// its bytes (forwarded unchanged when an upstream takes the request).
async fn read_json_bytes(req: Request, limit: usize) -> Result<(Value, Bytes), ApiError> {
    guard::require_json(&req)?;
    let too_large = || {
        ApiError::new(
            ErrorType::PayloadTooLarge,
            format!("The request body exceeds this server's limit of {limit} bytes; send less, or raise the limit (tanto serve --body-limit)"),
        )
    };
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            drain(req.into_body()).await;
            return Err(too_large());
        }
    }
    let body: Body = req.into_body();
    let collected = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        http_body_util::Limited::new(body, limit).collect(),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            ErrorType::InvalidRequest,
            format!(
                "The request body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        )
        .with_code("body_timeout")
    })?;
    let bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(too_large());
            }
            return Err(ApiError::new(
                ErrorType::InvalidRequest,
                format!("Could not read the request body: {e}"),
            ));
        }
    };
    if bytes.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "The request body is empty; send a JSON object",
        ));
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            ErrorType::InvalidRequest,
            format!("The request body is not valid JSON: {e}"),
        )
        .with_code("invalid_json")
    })?;
    Ok((v, bytes))
}

async fn chat_completions(
    State(st): St,
    Extension(rid): Extension<RequestId>,
    req: Request,
) -> Result<Response, ApiError> {
    generate(st, rid.0, req, Endpoint::Chat).await
}

async fn completions(
    State(st): St,
    Extension(rid): Extension<RequestId>,
    req: Request,
) -> Result<Response, ApiError> {
    generate(st, rid.0, req, Endpoint::Completion).await
}

/// Refuse, before any tokenizing, a prompt too large for the context even
/// at [`crate::MAX_PROMPT_BYTES_PER_TOKEN`] bytes a token. Tokenizing cost
/// and memory grow with the prompt, so this bounds what one request costs.
fn check_prompt_size(prompt: &Prompt, context: usize, endpoint: Endpoint) -> Result<(), ApiError> {
    let bytes = openai::prompt_bytes(prompt);
    let most = context.saturating_mul(crate::MAX_PROMPT_BYTES_PER_TOKEN);
    if context == 0 || bytes <= most {
        return Ok(());
    }
    let param = endpoint.prompt_param();
    Err(ApiError::new(
        ErrorType::InvalidRequest,
        format!("The prompt is {bytes} bytes, more than the model's context of {context} tokens can hold (at most {most} bytes are tokenized for it); shorten the {param}"),
    )
    .with_param(param)
    .with_code("context_length_exceeded"))
}

async fn generate(
    st: Arc<AppState>,
    request_id: String,
    req: Request,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    let t0 = Instant::now();
    let (body, raw) = read_json_bytes(req, st.cfg.body_limit).await?;
    let keep_alive = keep_alive_of(&body)?;
    let default_model = st.manager.default_model.as_deref();
    let g = match endpoint {
        // Image parts are decoded while parsing: off the async threads.
        Endpoint::Chat => {
            let dm = default_model.map(String::from);
            let opts = st.cfg.image_opts();
            tokio::task::spawn_blocking(move || {
                openai::parse_chat_with(&body, dm.as_deref(), &opts)
            })
            .await
            .map_err(|_| ApiError::new(ErrorType::InternalError, "request parser failed"))??
        }
        Endpoint::Completion => {
            let g = openai::parse_completion(&body, default_model)?;
            drop(body);
            g
        }
    };
    let model = match st.manager.acquire(&g.model, g.request).await {
        Ok(m) => m,
        Err(e) => {
            let path = match endpoint {
                Endpoint::Chat => "/v1/chat/completions",
                Endpoint::Completion => "/v1/completions",
            };
            return route_or(&st, e, &g.model, path, raw, &request_id).await;
        }
    };
    if let Some(k) = keep_alive {
        model.set_keep_alive(k);
    }
    check_prompt_size(&g.prompt, model.info.context_length, endpoint)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    model.submit(Job {
        prompt: g.prompt,
        params: g.params,
        max_tokens: g.max_tokens.or(st.manager.default_max_tokens),
        events: tx,
    })?;
    let mut sd = st.shutdown_rx.clone();
    let first = tokio::select! {
        biased;
        ev = rx.recv() => ev,
        _ = sd.wait_for(|v| *v) => return Err(ApiError::shutting_down()),
    };
    let prompt_tokens = match first {
        Some(manager::Event::Started { prompt_tokens }) => prompt_tokens,
        Some(manager::Event::Done(Err(e))) => {
            return Err(ApiError::from_generation(&e, endpoint.prompt_param()))
        }
        _ => {
            return Err(ApiError::new(
                ErrorType::InternalError,
                "the model worker stopped before starting this request",
            ))
        }
    };
    let log = LogCtx {
        metrics: st.metrics.clone(),
        request_id,
        model: model.id.clone(),
        t0,
        queued: t0.elapsed(),
        prompt_tokens,
    };
    let meta = Meta::new(endpoint, model.id.clone());
    if g.stream {
        Ok(sse::stream_response(
            meta,
            rx,
            st.shutdown_rx.clone(),
            g.include_usage,
            log,
        ))
    } else {
        sse::collect_response(meta, rx, st.shutdown_rx.clone(), log).await
    }
}

/// `<hash8>.cpu`: which weights made a vector (mlx-knife's form). The
/// snapshot commit for cache models, else a hash of the model's key.
fn fingerprint(key: &str) -> String {
    let h = match key.rsplit_once('@') {
        Some((_, commit)) if commit.len() >= 8 => commit[..8].to_string(),
        _ => {
            // FNV-1a: stable across runs and builds.
            let mut x: u64 = 0xcbf29ce484222325;
            for b in key.bytes() {
                x = (x ^ b as u64).wrapping_mul(0x100000001b3);
            }
            format!("{:016x}", x)[..8].to_string()
        }
    };
    format!("{h}.cpu")
}

async fn embeddings(
    State(st): St,
    Extension(rid): Extension<RequestId>,
    req: Request,
) -> Result<Response, ApiError> {
    use openai::embeddings as emb;
    let t0 = Instant::now();
    let (body, raw) = read_json_bytes(req, st.cfg.body_limit).await?;
    let keep_alive = keep_alive_of(&body)?;
    let r = emb::parse_embeddings(&body, st.manager.default_model.as_deref())?;
    drop(body);
    let model = match st
        .manager
        .acquire(&r.model, PolicyRequest::Embeddings)
        .await
    {
        Ok(m) => m,
        Err(e) => return route_or(&st, e, &r.model, "/v1/embeddings", raw, &rid.0).await,
    };
    if let Some(k) = keep_alive {
        model.set_keep_alive(k);
    }
    let info = model.embed_info.clone().ok_or_else(|| {
        ApiError::new(
            ErrorType::InternalError,
            "the model was admitted for embeddings but loaded without an embedder",
        )
    })?;
    // A dimensions value the model cannot serve fails before any work.
    emb::apply_dimensions(&mut [], r.dimensions, info.dimensions, info.matryoshka)?;
    let n_inputs = r.inputs.len();
    let (tx, rx) = tokio::sync::oneshot::channel();
    model.submit_embed(manager::EmbedJob {
        inputs: r.inputs,
        input_type: r.input_type,
        instruct: r.instruct,
        reply: tx,
    })?;
    let mut sd = st.shutdown_rx.clone();
    let res = tokio::select! {
        biased;
        res = rx => res,
        _ = sd.wait_for(|v| *v) => return Err(ApiError::shutting_down()),
    };
    let (mut vecs, tokens) = res
        .map_err(|_| {
            ApiError::new(
                ErrorType::InternalError,
                "the model worker stopped before finishing this request",
            )
        })?
        .map_err(|e| ApiError::from_generation(&e, "input"))?;
    emb::apply_dimensions(&mut vecs, r.dimensions, info.dimensions, info.matryoshka)?;
    let text = emb::render(
        vecs,
        r.encoding,
        &model.id,
        tokens,
        &fingerprint(&model.key),
    );
    tracing::info!(
        request_id = %rid.0,
        model = %model.id,
        inputs = n_inputs,
        tokens,
        ms = t0.elapsed().as_millis() as u64,
        "embeddings"
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response())
}

/// How long an audio upload may take to arrive (25 MB at ~1 Mbit/s).
const AUDIO_READ_TIMEOUT: Duration = Duration::from_secs(300);

async fn transcriptions(
    State(st): St,
    Extension(rid): Extension<RequestId>,
    req: Request,
) -> Result<Response, ApiError> {
    speech(st, rid.0, req, Task::Transcribe).await
}

async fn translations(
    State(st): St,
    Extension(rid): Extension<RequestId>,
    req: Request,
) -> Result<Response, ApiError> {
    speech(st, rid.0, req, Task::Translate).await
}

/// An audio decoding failure as the API answers it: 413, 415 or 400, the
/// `file` field named.
fn audio_error(e: &AudioError) -> ApiError {
    let kind = match e.error_type() {
        ErrorType::ValidationError => ErrorType::InvalidRequest,
        k => k,
    };
    ApiError::new(kind, format!("The uploaded audio could not be used: {e}")).with_param("file")
}

/// Both audio endpoints: form → decode (blocking pool) → policy and load →
/// the model's queue → the requested format.
async fn speech(
    st: Arc<AppState>,
    rid: String,
    req: Request,
    task: Task,
) -> Result<Response, ApiError> {
    use openai::audio;
    let t0 = Instant::now();
    let limit = st.cfg.audio_limit;
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        // The form's other fields and boundaries get 1 MiB on top of the file.
        if len > limit as u64 + (1 << 20) {
            drain(req.into_body()).await;
            return Err(ApiError::new(
                ErrorType::PayloadTooLarge,
                format!("The upload is {len} bytes, over this server's audio limit of {limit} bytes; split the file or raise the limit (tanto serve --audio-limit)"),
            )
            .with_param("file"));
        }
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let r = tokio::time::timeout(
        AUDIO_READ_TIMEOUT,
        audio::parse(
            ct.as_deref(),
            req.into_body(),
            limit,
            st.manager.default_model.as_deref(),
        ),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            ErrorType::InvalidRequest,
            format!(
                "The upload did not arrive within {} s",
                AUDIO_READ_TIMEOUT.as_secs()
            ),
        )
        .with_code("body_timeout")
    })??;
    // The model first: an unknown or non-audio model fails before any decoding.
    let model = st.manager.acquire(&r.model, PolicyRequest::Audio).await?;
    let info = model.speech_info.clone().ok_or_else(|| {
        ApiError::new(
            ErrorType::InternalError,
            "the model was admitted for audio but loaded without a speech engine",
        )
    })?;
    if task == Task::Translate && !info.can_translate {
        let why = if info.multilingual {
            "a turbo model, which was not trained to translate"
        } else {
            "an English-only model"
        };
        return Err(ApiError::new(
            ErrorType::UnsupportedTask,
            format!("Model '{}' cannot translate: it is {why}; use POST /v1/audio/transcriptions, or a multilingual Whisper (tiny … large-v3) for translations", model.id),
        )
        .with_param("model"));
    }
    if let Some(l) = &r.language {
        match tanto_engine::whisper::tokens::language_code(l) {
            None => {
                return Err(ApiError::invalid(
                    "language",
                    format!("unknown language '{l}': give an ISO-639-1 code (en, de, fr, …)"),
                ))
            }
            Some(c) if !info.multilingual && c != "en" => {
                return Err(ApiError::new(
                    ErrorType::UnsupportedTask,
                    format!("Model '{}' is English-only and cannot transcribe language '{c}'; use a multilingual Whisper", model.id),
                )
                .with_param("language"))
            }
            Some(_) => {}
        }
    }
    let file = r.file;
    let name = r.filename.clone();
    let t_dec = Instant::now();
    let pcm = tokio::task::spawn_blocking(move || {
        tanto_engine::audio::decode::decode(&file, name.as_deref())
    })
    .await
    .map_err(|e| {
        ApiError::new(
            ErrorType::InternalError,
            format!("audio decoding failed: {e}"),
        )
    })?
    .map_err(|e| audio_error(&e))?;
    let decode_ms = t_dec.elapsed().as_millis() as u64;
    let audio_s = pcm.duration_secs();
    let (tx, rx) = tokio::sync::oneshot::channel();
    model.submit_speech(manager::SpeechJob {
        samples: pcm.samples,
        opts: TranscribeOptions {
            language: r.language.clone(),
            task,
            prompt: r.prompt.clone(),
            temperature: r.temperature,
            ..TranscribeOptions::default()
        },
        reply: tx,
    })?;
    let mut sd = st.shutdown_rx.clone();
    let res = tokio::select! {
        biased;
        res = rx => res,
        _ = sd.wait_for(|v| *v) => return Err(ApiError::shutting_down()),
    };
    let tr = res
        .map_err(|_| {
            ApiError::new(
                ErrorType::InternalError,
                "the model worker stopped before finishing this request",
            )
        })?
        .map_err(|e| match e {
            tanto_engine::EngineError::UnsupportedTask(_) => {
                ApiError::new(ErrorType::UnsupportedTask, e.to_string()).with_param("model")
            }
            e => ApiError::from_generation(&e, "file"),
        })?;
    let ms = t0.elapsed().as_millis() as u64;
    tracing::info!(
        request_id = %rid,
        model = %model.id,
        task = task.as_str(),
        language = %tr.language,
        audio_s,
        decode_ms,
        segments = tr.segments.len(),
        ms,
        "audio"
    );
    Ok(audio::render(&tr, r.format))
}

/// Serve until `shutdown` resolves, then drain.
pub async fn run<F>(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = router(state.clone());
    let st = state.clone();
    let signal = async move {
        shutdown.await;
        st.begin_shutdown();
    };
    let keep_alive = state.cfg.keep_alive;
    let reaper = {
        let m = state.manager.clone();
        // Often enough for a request's `keep_alive: 0` to unload promptly.
        let tick = (keep_alive / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(tick);
            loop {
                iv.tick().await;
                m.reap_idle(keep_alive);
            }
        })
    };
    let mut rx = state.shutdown_rx.clone();
    let grace = state.cfg.shutdown_grace;
    let deadline = async move {
        let _ = rx.wait_for(|v| *v).await;
        tokio::time::sleep(grace).await;
    };
    let limits = conn::Limits::new(state.cfg.max_connections, state.cfg.idle_timeout);
    let signal = tokio::spawn(signal);
    let server = conn::serve(listener, app, limits, state.shutdown_rx.clone());
    tokio::select! {
        _ = server => {}
        _ = deadline => {
            tracing::warn!(grace_s = grace.as_secs_f64(), "connections still open after the grace period; closing them");
        }
    };
    signal.abort();
    reaper.abort();
    state.begin_shutdown();
    state.manager.unload_all();
    tracing::info!("tanto serve stopped");
    Ok(())
}
