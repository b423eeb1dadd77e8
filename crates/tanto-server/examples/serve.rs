//! Run the server without the CLI (benchmarks, debugging):
//! `cargo run --release -p tanto-server --example serve -- [serve] [--host H] [--port P]
//!  [--model M] [--max-tokens N] [--max-loaded N] [--keep-alive DUR] [--api-key K]
//!  [--allow-paths] [--log-json] [--log-level L] [--threads N]`
//!
//! A leading `serve` is accepted, so the binary can stand in for `tanto` in
//! `TANTO_BIN=… pytest tests/python` until the CLI has the subcommand.

use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let mut cfg = tanto_server::ServeConfig::default();
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("serve") {
        args.next();
    }
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--host" => cfg.host = val()?,
            "--port" => cfg.port = val()?.parse()?,
            "--model" => cfg.model = Some(val()?),
            "--max-tokens" => cfg.max_tokens = Some(val()?.parse()?),
            "--max-loaded" => cfg.max_loaded = val()?.parse()?,
            "--keep-alive" => cfg.keep_alive = tanto_core::duration::parse_duration(&val()?)?,
            "--api-key" => cfg.api_key = Some(val()?),
            "--threads" => cfg.threads = Some(val()?.parse()?),
            "--log-level" => cfg.log_level = val()?,
            "--allow-paths" => cfg.allow_paths = true,
            "--log-json" => cfg.log_json = true,
            "-h" | "--help" => {
                println!("usage: serve [--host H] [--port P] [--model M] [--max-tokens N] [--max-loaded N] [--keep-alive DUR] [--api-key K] [--allow-paths] [--log-json] [--log-level L] [--threads N]");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    cfg.shutdown_grace = Duration::from_secs(10);
    tanto_server::run_blocking(cfg)
}
