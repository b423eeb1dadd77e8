//! `tanto list [PATTERN] [--all] [--verbose] [--health] [--json]`
//!
//! [`gather`] collects the models; [`render_json`] and [`render_human`] print them.

use serde_json::{json, Value};
use tanto_core::resolve::Stores;

use crate::models::Entry;
use crate::output::{self, human_age, human_params, human_size, outln, CmdResult, Colors, Table};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Case-insensitive substring of the model name, or a path (./dir, /abs) to list workspaces there
    pub pattern: Option<String>,
    /// Show every model, including unhealthy and not-runnable ones
    #[arg(long)]
    pub all: bool,
    /// More columns: format, quantization, parameters, context length
    #[arg(long, short)]
    pub verbose: bool,
    /// Add health columns (and the reason with --verbose)
    #[arg(long)]
    pub health: bool,
    /// Print the JSON envelope
    #[arg(long)]
    pub json: bool,
}

/// The short id column: commit prefix, else workspace content-hash prefix.
pub fn short_id(e: &Entry) -> String {
    if let Some(c) = e.resolved.commit() {
        return c.chars().take(7).collect();
    }
    if let Some(h) = e.ws.as_ref().and_then(|w| w.content_hash.as_deref()) {
        let hex = h.strip_prefix("sha256:").unwrap_or(h);
        return hex.chars().take(7).collect();
    }
    "-".into()
}

pub fn type_label(e: &Entry) -> String {
    let mut t = e.probe.kind.as_str().to_string();
    if e.probe.has("vision") {
        t.push_str("+vision");
    }
    if e.probe.has("audio") && e.probe.kind.as_str() != "audio" {
        t.push_str("+audio");
    }
    t
}

/// What `list` prints: the matching models and where they were looked for.
pub struct Data {
    pub entries: Vec<Entry>,
    pub stores: Stores,
}

pub fn gather(args: &Args) -> Data {
    let stores = Stores::from_env();
    let entries = crate::models::gather(&stores, args.pattern.as_deref(), args.json);
    Data { entries, stores }
}

/// mlx-knife's `{models, count, system}`; never filtered by the flags.
pub fn render_json(d: Data) -> Value {
    let models: Vec<_> = d.entries.into_iter().map(Entry::into_object).collect();
    json!({"models": models, "count": models.len(), "system": crate::cmd::version::system_json()})
}

pub fn run(args: Args) -> CmdResult {
    let d = gather(&args);
    if args.json {
        output::print_json(&output::envelope_ok("list", render_json(d)));
    } else {
        render_human(&d, &args);
    }
    Ok(output::EXIT_OK)
}

pub fn render_human(d: &Data, args: &Args) {
    let (entries, stores) = (&d.entries, &d.stores);
    let c = Colors::stdout();
    let mut headers = vec!["NAME", "ID", "SIZE", "MODIFIED", "SRC"];
    if args.verbose {
        headers.extend(["FORMAT", "QUANT", "PARAMS", "CONTEXT"]);
    }
    headers.push("TYPE");
    if args.health {
        headers.push("HEALTH");
        if args.verbose {
            headers.extend(["RUNTIME", "REASON"]);
        }
    }
    let mut t = Table::new(&headers);
    let mut hidden = 0usize;
    for e in entries {
        let p = &e.probe;
        let runnable = p.runnable();
        if !args.all && !runnable {
            hidden += 1;
            continue;
        }
        let plain = |s: String| (s.clone(), s);
        let name = e.resolved.display_name.clone();
        let mut row = vec![
            (name.clone(), c.bold(&name)),
            plain(short_id(e)),
            plain(human_size(p.size_bytes)),
            plain(human_age(p.last_modified)),
            plain(tanto_core::report::source_tag(&e.resolved, e.ws.as_ref()).to_string()),
        ];
        if args.verbose {
            row.push(plain(p.format.as_str().to_string()));
            row.push(plain(
                p.quantization
                    .as_ref()
                    .map(|q| {
                        q.file_type.clone().unwrap_or_else(|| {
                            q.bits
                                .map(|b| format!("{b}-bit"))
                                .unwrap_or_else(|| q.method.clone())
                        })
                    })
                    .or_else(|| p.dtype.clone())
                    .unwrap_or_else(|| "-".into()),
            ));
            row.push(plain(
                p.parameters.map(human_params).unwrap_or_else(|| "-".into()),
            ));
            row.push(plain(
                p.context_length
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
            ));
        }
        row.push(plain(type_label(e)));
        if args.health {
            let (h, styled) = if !p.health.healthy {
                ("unhealthy".to_string(), c.red("unhealthy"))
            } else if !p.runtime.compatible {
                ("healthy*".to_string(), c.yellow("healthy*"))
            } else {
                ("healthy".to_string(), c.green("healthy"))
            };
            row.push((h, styled));
            if args.verbose {
                row.push(plain(
                    if !p.health.healthy {
                        "-"
                    } else if p.runtime.compatible {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_string(),
                ));
                let reason = if p.health.healthy {
                    p.runtime.reason.clone()
                } else {
                    p.health.reason.clone()
                };
                let mut r = reason.unwrap_or_else(|| "-".into());
                if r.chars().count() > 80 {
                    r = r.chars().take(77).collect::<String>() + "...";
                }
                row.push(plain(r));
            }
        }
        t.row(row);
    }
    let rendered = t.render();
    if entries.len() > hidden {
        for line in rendered.lines() {
            outln(line);
        }
    } else if entries.is_empty() {
        eprintln!(
            "No models found in {}{}",
            tanto_core::paths::redact_home(&stores.cache),
            stores
                .workspace_home
                .as_deref()
                .map(|w| format!(" or {}", tanto_core::paths::redact_home(w)))
                .unwrap_or_default()
        );
    }
    if hidden > 0 {
        eprintln!(
            "{}",
            c.dim(&format!(
                "{hidden} model(s) hidden (unhealthy or not runnable by this build); use --all --health to see them"
            ))
        );
    }
}
