//! tanto-server: `tanto serve`, an OpenAI-compatible HTTP server.
//!
//! Every request goes Resolve → Probe → Policy (tanto-core) before anything
//! is loaded or unloaded; refusals are typed and carry the status the core
//! decides ([`tanto_core::error::ErrorType::http_status`]). Generation runs on
//! one dedicated thread per loaded model, fed FIFO; deltas stream back to the
//! HTTP response, and a client that goes away stops its generation at the
//! next token.
//!
//! Entry points: [`serve`] (async, caller-supplied shutdown future),
//! [`run_blocking`] (builds the runtime, handles SIGINT/SIGTERM) and
//! [`Server`] (bind first, learn the port, then run: for tests and embedding).

mod conn;
mod error;
mod guard;
mod logging;
mod manager;
mod metrics;
mod openai;
mod routes;
mod sse;
mod upstream;
mod util;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tanto_core::resolve::Stores;

pub use logging::{init_logging, redact};
pub use manager::{EngineLoader, Loader};

/// Default request body limit: 8 MiB. A prompt that fills a 128k-token
/// context is about half a MiB of JSON; the limit leaves room for long
/// contexts and escaped non-ASCII text while bounding what one request costs.
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

pub use openai::audio::DEFAULT_AUDIO_LIMIT;

/// Default cap on open client connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Default idle timeout: a connection with no request in flight (including
/// one still sending its request headers) is closed after this long.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many prompt bytes per token of context are accepted before
/// tokenizing (real text runs 3–5 bytes per token), so a huge prompt is
/// refused in microseconds instead of costing seconds and gigabytes.
pub const MAX_PROMPT_BYTES_PER_TOKEN: usize = 16;

/// Everything `tanto serve` can be told. Build with `ServeConfig::default()`
/// and override fields; the CLI maps flags and `TANTO_*` variables onto it.
#[derive(Clone)]
pub struct ServeConfig {
    /// Interface to bind (default `127.0.0.1`).
    pub host: String,
    /// Port (default 8000; 0 picks a free one, see [`Server::local_addr`]).
    pub port: u16,
    /// Model to load at start-up (start-up fails if it cannot); also the model
    /// used when a request omits `model`. Never unloaded for idleness.
    pub model: Option<String>,
    /// Default `max_tokens` for requests that set none (always capped by the
    /// room left in the model's context). None = the rest of the context.
    pub max_tokens: Option<usize>,
    /// When set, `/v1/*` requires `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Allowed CORS origins (`*` for any). Empty = no CORS headers.
    pub cors_origins: Vec<String>,
    /// JSON log lines (used by [`run_blocking`] when it sets up logging).
    pub log_json: bool,
    /// Log level for [`run_blocking`] (`error|warn|info|debug|trace` or an
    /// EnvFilter directive). `RUST_LOG` wins when set.
    pub log_level: String,
    /// Most models kept loaded at once (LRU eviction beyond). At least 1.
    pub max_loaded: usize,
    /// Unload a model after this long without requests. Zero = never.
    pub keep_alive: Duration,
    /// Let requests name filesystem paths as `model`.
    pub allow_paths: bool,
    /// Largest request body in bytes (413 beyond).
    pub body_limit: usize,
    /// Largest audio file for `/v1/audio/*` in bytes (413 beyond); default
    /// [`DEFAULT_AUDIO_LIMIT`], OpenAI's 25 MB.
    pub audio_limit: usize,
    /// Largest image in a chat request, in bytes (413 beyond).
    pub image_limit: u64,
    /// Largest total of a chat request's images, in bytes (413 beyond).
    pub images_total: u64,
    /// Fetch `http(s)` image URLs (off by default: SSRF), with
    /// `remote_image_timeout` and the per-image limit.
    pub allow_remote_images: bool,
    pub remote_image_timeout: Duration,
    /// Engine threads per model (None = the engine's default).
    pub threads: Option<usize>,
    /// Bytes of weights that may be loaded at once. None = 70% of the
    /// memory this process may use (`TANTO_MEMORY_THRESHOLD` changes the
    /// fraction); unknown host memory = no budget. A model larger than the
    /// whole budget is refused with 507.
    pub memory_budget: Option<u64>,
    /// Where models are looked up. None = from the environment (`HF_HOME`,
    /// `HF_HUB_CACHE`, `TANTO_WORKSPACE_HOME`, …) at start-up.
    pub stores: Option<Stores>,
    /// After a shutdown signal, how long to wait for connections to close
    /// before exiting anyway.
    pub shutdown_grace: Duration,
    /// Host names (besides IP literals and `localhost`) accepted in the
    /// `Host` header; `*` accepts any (DNS-rebinding protection off).
    pub allowed_hosts: Vec<String>,
    /// Most client connections open at once. Beyond it an idle connection is
    /// closed to make room, or, when all are busy, the new one is refused
    /// with 503. Lowered to fit the open-file limit.
    pub max_connections: usize,
    /// Close a connection with no request in flight after this long.
    pub idle_timeout: Duration,
    /// OpenAI-compatible servers (vLLM, another tanto) that take requests for
    /// models this one does not have or may not load.
    pub upstreams: Vec<String>,
    /// Longest wait for an upstream's response headers (then 504).
    pub upstream_timeout: Duration,
    /// Bearer key sent to the upstreams.
    pub upstream_key: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            model: None,
            max_tokens: None,
            api_key: None,
            cors_origins: Vec::new(),
            log_json: false,
            log_level: "info".into(),
            max_loaded: 1,
            keep_alive: Duration::from_secs(300),
            allow_paths: false,
            body_limit: DEFAULT_BODY_LIMIT,
            audio_limit: DEFAULT_AUDIO_LIMIT,
            image_limit: openai::images::DEFAULT_IMAGE_LIMIT,
            images_total: openai::images::DEFAULT_IMAGES_TOTAL,
            allow_remote_images: false,
            remote_image_timeout: Duration::from_secs(10),
            threads: None,
            memory_budget: None,
            stores: None,
            shutdown_grace: Duration::from_secs(10),
            allowed_hosts: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            upstreams: Vec::new(),
            upstream_timeout: Duration::from_secs(120),
            upstream_key: None,
        }
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("model", &self.model)
            .field("max_tokens", &self.max_tokens)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("upstreams", &self.upstreams)
            .field("upstream_timeout", &self.upstream_timeout)
            .field("cors_origins", &self.cors_origins)
            .field("log_json", &self.log_json)
            .field("log_level", &self.log_level)
            .field("max_loaded", &self.max_loaded)
            .field("keep_alive", &self.keep_alive)
            .field("allow_paths", &self.allow_paths)
            .field("body_limit", &self.body_limit)
            .field("audio_limit", &self.audio_limit)
            .field("image_limit", &self.image_limit)
            .field("images_total", &self.images_total)
            .field("allow_remote_images", &self.allow_remote_images)
            .field("threads", &self.threads)
            .field("memory_budget", &self.memory_budget)
            .field("stores", &self.stores)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl ServeConfig {
    /// The image limits chat requests are parsed under.
    pub fn image_opts(&self) -> openai::images::ImageOpts {
        openai::images::ImageOpts {
            per_image: self.image_limit,
            total: self.images_total,
            allow_remote: self.allow_remote_images,
            remote_timeout: self.remote_image_timeout,
        }
    }
}

/// A bound, ready server: the listener is open and `--model` is loaded.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<routes::AppState>,
    addr: SocketAddr,
}

impl Server {
    /// Validate the config, load `--model` (if any) and bind the port, with
    /// the engine's loader.
    pub async fn bind(cfg: ServeConfig) -> anyhow::Result<Server> {
        Self::bind_with_loader(cfg, Arc::new(EngineLoader)).await
    }

    /// Same as [`Server::bind`] with another [`Loader`] (tests use a fake engine).
    pub async fn bind_with_loader(
        cfg: ServeConfig,
        loader: Arc<dyn Loader>,
    ) -> anyhow::Result<Server> {
        if cfg.max_loaded == 0 {
            anyhow::bail!("--max-loaded must be at least 1");
        }
        if cfg.audio_limit == 0 {
            anyhow::bail!("the audio upload limit must be at least 1 byte");
        }
        if cfg.image_limit == 0 || cfg.images_total == 0 {
            anyhow::bail!("the image limits must be at least 1 byte");
        }
        if cfg.body_limit == 0 {
            anyhow::bail!("the request body limit must be at least 1 byte");
        }
        if cfg.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            anyhow::bail!("--api-key is empty");
        }
        if cfg.max_connections == 0 {
            anyhow::bail!("--max-connections must be at least 1");
        }
        if cfg.idle_timeout.is_zero() {
            anyhow::bail!("--idle-timeout must be longer than 0");
        }
        let state = routes::AppState::new(cfg.clone(), loader)?;
        if let Some(spec) = &cfg.model {
            tracing::info!(model = %spec, "pre-loading model");
            state
                .manager
                .preload(spec)
                .await
                .map_err(|e| anyhow::anyhow!("cannot load --model '{spec}': {}", e.message))?;
        }
        let bind = format!("{}:{}", cfg.host, cfg.port);
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let addr = listener.local_addr()?;
        Ok(Server {
            listener,
            state,
            addr,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve until `shutdown` resolves; then stop accepting, end in-flight
    /// streams with a final event, and return.
    pub async fn run<F>(self, shutdown: F) -> anyhow::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let url_host = if self.addr.is_ipv6() {
            format!("[{}]", self.addr.ip())
        } else {
            self.addr.ip().to_string()
        };
        eprintln!(
            "tanto serve: listening on http://{url_host}:{}",
            self.addr.port()
        );
        tracing::info!(addr = %self.addr, "listening");
        routes::run(self.listener, self.state, shutdown).await
    }
}

/// Bind and serve until `shutdown` resolves. Prints
/// `tanto serve: listening on http://HOST:PORT` to stderr once listening.
pub async fn serve<F>(cfg: ServeConfig, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    Server::bind(cfg).await?.run(shutdown).await
}

/// Set up logging (unless already set up), build a multi-threaded tokio
/// runtime, serve, and shut down gracefully on SIGINT or SIGTERM (a second
/// signal exits at once with status 130). Returns Ok after a graceful stop.
pub fn run_blocking(cfg: ServeConfig) -> anyhow::Result<()> {
    run_blocking_with_loader(cfg, Arc::new(EngineLoader))
}

/// [`run_blocking`] with another [`Loader`].
///
/// It also sets up the process for serving: SIGPIPE is ignored (a client
/// that resets its connection must cost an error on that connection, not the
/// process) and the soft open-file limit is raised to the hard one.
pub fn run_blocking_with_loader(cfg: ServeConfig, loader: Arc<dyn Loader>) -> anyhow::Result<()> {
    ignore_sigpipe();
    let _ = init_logging(&cfg.log_level, cfg.log_json);
    conn::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tanto-serve")
        .build()
        .context("cannot start the async runtime")?;
    let res = rt.block_on(async move {
        let mut signal = Box::pin(util::shutdown_signal());
        // A signal while `--model` loads ends start-up quietly.
        let server = tokio::select! {
            s = Server::bind_with_loader(cfg, loader) => s?,
            _ = &mut signal => {
                eprintln!("tanto serve: interrupted during start-up");
                return Ok(());
            }
        };
        server.run(signal).await
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    res
}

/// Ignore SIGPIPE for the whole process, so a write to a connection the peer
/// reset fails with EPIPE instead of killing the server. `tanto` resets
/// SIGPIPE to its default for `tanto list | head`; `tanto serve` must undo
/// that before it serves (idempotent; [`run_blocking`] calls it too).
pub fn ignore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to SIG_IGN installs no handler
    // code and is async-signal-safe; it only changes what EPIPE costs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
