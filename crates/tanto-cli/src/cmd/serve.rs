//! `tanto serve`: the OpenAI-compatible HTTP server (tanto-server).
//! Flags win over their `TANTO_*` environment variables.

use std::time::Duration;

use tanto_core::error::{ErrorType, TantoError};
use tanto_server::ServeConfig;

use crate::output::{self, CmdResult};

/// clap's value parser over core's one duration grammar.
fn parse_duration(s: &str) -> Result<Duration, String> {
    tanto_core::duration::parse_duration(s).map_err(|e| e.to_string())
}

fn parse_size(s: &str) -> Result<u64, String> {
    tanto_core::host::parse_size(s).ok_or_else(|| format!("'{s}' is not a size (e.g. 50M, 1G)"))
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model to load at start-up (any spec `run` accepts); also the default for requests without `model`
    #[arg(long, env = "TANTO_MODEL")]
    pub model: Option<String>,
    /// Never download the --model: an exact ORG/NAME that is not in the cache
    /// is an error (by default it is pulled before the server starts)
    #[arg(long)]
    pub no_pull: bool,
    /// Interface to bind
    #[arg(long, env = "TANTO_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port
    #[arg(long, env = "TANTO_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Default max_tokens for requests without one (always capped by the context)
    #[arg(long, env = "TANTO_MAX_TOKENS")]
    pub max_tokens: Option<usize>,
    /// Require `Authorization: Bearer KEY` on /v1/*
    #[arg(long, env = "TANTO_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Allowed CORS origin (repeatable; `*` for any)
    #[arg(
        long = "cors-origin",
        env = "TANTO_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origin: Vec<String>,
    /// Log level: error, warn, info, debug, trace
    #[arg(long, env = "TANTO_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log JSON lines instead of human lines (stderr)
    #[arg(long, env = "TANTO_LOG_JSON")]
    pub log_json: bool,
    /// Most models loaded at once (least recently used is unloaded first)
    #[arg(long, env = "TANTO_MAX_LOADED", default_value_t = 1)]
    pub max_loaded: usize,
    /// Unload a model after this long idle (e.g. 5m, 1h; 0 = never)
    #[arg(long, env = "TANTO_KEEP_ALIVE", default_value = "5m", value_parser = parse_duration)]
    pub keep_alive: Duration,
    /// Let requests name filesystem paths as the model
    #[arg(long, env = "TANTO_ALLOW_PATHS")]
    pub allow_paths: bool,
    /// Largest request body (e.g. 8M)
    #[arg(long, env = "TANTO_BODY_LIMIT", default_value = "8M", value_parser = parse_size)]
    pub body_limit: u64,
    /// Largest audio upload for /v1/audio/* (OpenAI's limit is 25M)
    #[arg(long, env = "TANTO_AUDIO_LIMIT", default_value = "25M", value_parser = parse_size)]
    pub audio_limit: u64,
    /// Largest image in a chat request (images also count toward --body-limit,
    /// base64 adds a third: raise it for large photos)
    #[arg(long, env = "TANTO_IMAGE_LIMIT", default_value = "20M", value_parser = parse_size)]
    pub image_limit: u64,
    /// Largest total of one chat request's images
    #[arg(long, env = "TANTO_IMAGES_TOTAL", default_value = "50M", value_parser = parse_size)]
    pub images_total: u64,
    /// Fetch http(s) image URLs in chat requests (off: a server that fetches
    /// URLs can be aimed at private hosts); 10 s and --image-limit per image
    #[arg(long)]
    pub allow_remote_images: bool,
    /// Host name accepted in the Host header besides IP literals and localhost (repeatable; `*` for any)
    #[arg(
        long = "allowed-host",
        env = "TANTO_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_host: Vec<String>,
    /// Most client connections open at once (idle ones are closed first beyond it)
    #[arg(long, env = "TANTO_MAX_CONNECTIONS", default_value_t = tanto_server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Close a connection with no request in flight after this long (e.g. 30s)
    #[arg(long, env = "TANTO_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// OpenAI-compatible server (vLLM, another tanto serve) for models this one
    /// does not have or whose memory gate refuses them (repeatable)
    #[arg(
        long = "upstream",
        env = "TANTO_UPSTREAMS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub upstream: Vec<String>,
    /// Longest wait for an upstream's response headers (then 504)
    #[arg(long, env = "TANTO_UPSTREAM_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,
    /// Bearer key for the upstreams (the clients' key is never forwarded)
    #[arg(long, env = "TANTO_UPSTREAM_KEY", hide_env_values = true)]
    pub upstream_key: Option<String>,
    /// Bytes of weights that may be loaded at once (e.g. 8G); default 70% of available memory
    #[arg(long, env = "TANTO_MEMORY_BUDGET", value_parser = parse_size)]
    pub memory_budget: Option<u64>,
    /// Engine threads per model
    #[arg(long, env = "TANTO_THREADS")]
    pub threads: Option<usize>,
}

pub fn run(a: Args) -> CmdResult {
    // main() restores the default SIGPIPE for `tanto list | head`; a server
    // must not die when a client resets its connection mid-write.
    tanto_server::ignore_sigpipe();
    if a.max_loaded == 0 {
        let e = TantoError::new(
            ErrorType::ValidationError,
            "--max-loaded must be at least 1",
        );
        return Err(e.into());
    }
    // An exact ORG/NAME that is not cached is pulled before binding, with
    // progress, as `tanto run` does; the server then finds it in the cache.
    if let Some(m) = &a.model {
        if !a.no_pull {
            let stores = tanto_core::resolve::Stores::from_env();
            if let Err(e) = crate::cmd::hub::resolve_or_pull(m, &stores, true, false, "serve") {
                if e.error.kind != ErrorType::ModelNotFound {
                    return Err(e);
                }
            }
        }
    }
    let cfg = ServeConfig {
        host: a.host,
        port: a.port,
        model: a.model,
        max_tokens: a.max_tokens,
        api_key: a.api_key.filter(|k| !k.is_empty()),
        cors_origins: a.cors_origin,
        log_json: a.log_json,
        log_level: a.log_level,
        max_loaded: a.max_loaded,
        keep_alive: a.keep_alive,
        allow_paths: a.allow_paths,
        body_limit: usize::try_from(a.body_limit).unwrap_or(usize::MAX),
        audio_limit: usize::try_from(a.audio_limit).unwrap_or(usize::MAX),
        image_limit: a.image_limit,
        images_total: a.images_total,
        allow_remote_images: a.allow_remote_images,
        threads: a.threads,
        memory_budget: a.memory_budget,
        allowed_hosts: a.allowed_host,
        max_connections: a.max_connections,
        idle_timeout: a.idle_timeout,
        upstreams: a.upstream,
        upstream_timeout: a.upstream_timeout,
        upstream_key: a.upstream_key.filter(|k| !k.is_empty()),
        ..ServeConfig::default()
    };
    match tanto_server::run_blocking(cfg) {
        Ok(()) => Ok(output::EXIT_OK),
        Err(e) => Err(match e.downcast_ref::<TantoError>() {
            Some(t) => t.clone(),
            None => output::internal(format!("{e:#}")),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_use_cores_duration_grammar() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
    }
}
