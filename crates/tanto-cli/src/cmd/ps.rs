//! `tanto ps`: the models a running `tanto serve` has loaded (its `GET /api/ps`).

use serde_json::{json, Value};
use tanto_core::error::{ErrorType, TantoError};

use crate::output::{self, human_size, outln, CmdResult};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The server's address
    #[arg(long, env = "TANTO_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// The server's port
    #[arg(long, env = "TANTO_PORT", default_value_t = 8000)]
    pub port: u16,
    /// API key, when the server needs one
    #[arg(long, env = "TANTO_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print the JSON envelope
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> CmdResult {
    let host = if a.host.contains(':') && !a.host.starts_with('[') {
        format!("[{}]", a.host)
    } else {
        a.host.clone()
    };
    let url = format!("http://{host}:{}/api/ps", a.port);
    let unreachable = |e: String| {
        TantoError::new(
            ErrorType::ServerShutdown,
            format!("no tanto server answers at {url}: {e}"),
        )
        .with_hint("start one with: tanto serve (or pass --host/--port)")
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let mut rb = client.get(&url);
    if let Some(k) = a.api_key.as_deref().filter(|k| !k.is_empty()) {
        rb = rb.bearer_auth(k);
    }
    let resp = rb.send().map_err(|e| unreachable(e.to_string()))?;
    let status = resp.status();
    let v: Value = resp
        .json()
        .map_err(|e| unreachable(format!("not a tanto answer ({e})")))?;
    if !status.is_success() {
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or("refused")
            .to_string();
        let kind = if status.as_u16() == 401 {
            ErrorType::Unauthorized
        } else {
            ErrorType::InternalError
        };
        return Err(TantoError::new(kind, format!("{url}: {msg}"))
            .with_hint("pass the server's key with --api-key or TANTO_API_KEY")
            .into());
    }
    let models = v["models"].as_array().cloned().unwrap_or_default();
    if a.json {
        output::print_json(&output::envelope_ok(
            "ps",
            json!({ "server": url, "models": models }),
        ));
        return Ok(output::EXIT_OK);
    }
    if models.is_empty() {
        outln("no models loaded");
        return Ok(output::EXIT_OK);
    }
    let rows: Vec<[String; 5]> = models
        .iter()
        .map(|m| {
            let until = match (m["pinned"].as_bool(), m["expires_in_s"].as_u64()) {
                (Some(true), _) => "pinned".to_string(),
                (_, Some(s)) if s < 120 => format!("{s} s"),
                (_, Some(s)) => format!("{} min", s.div_ceil(60)),
                _ => "forever".to_string(),
            };
            [
                m["name"].as_str().unwrap_or("?").to_string(),
                human_size(m["size"].as_u64().unwrap_or(0)),
                m["queued"].as_u64().unwrap_or(0).to_string(),
                m["mode"].as_str().unwrap_or("?").to_string(),
                until,
            ]
        })
        .collect();
    let head = ["NAME", "SIZE", "QUEUED", "MODE", "UNTIL"];
    let w: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |c: [&str; 5]| {
        (0..5)
            .map(|i| format!("{:<w$}", c[i], w = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    outln(&line(head));
    for r in &rows {
        outln(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    Ok(output::EXIT_OK)
}
