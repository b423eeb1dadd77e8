//! `tanto health [MODEL] [--json]`
//!
//! As in mlx-knife, a spec that matches nothing is a successful check of
//! zero models (exit 0); an ambiguous one is an error that still carries the
//! (empty) lists.

use serde_json::{json, Value};
use tanto_core::error::ErrorType;
use tanto_core::resolve::{self, Stores};

use crate::models::{gather, Entry};
use crate::output::{self, outln, CliError, CmdResult, Colors};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Check one model (any spec `show` accepts); all models when omitted
    pub model: Option<String>,
    /// Print the JSON envelope
    #[arg(long)]
    pub json: bool,
}

/// The checked models; empty when a spec matched nothing.
pub fn gather_entries(args: &Args) -> Result<Vec<Entry>, CliError> {
    let stores = Stores::from_env();
    match &args.model {
        None => Ok(gather(&stores, None, false)),
        Some(spec) => match resolve::resolve(spec, &stores) {
            Ok(r) => Ok(vec![Entry::new(r)]),
            Err(e) if e.kind == ErrorType::ModelNotFound => Ok(Vec::new()),
            Err(e) => Err(CliError::from(e).with_data(render_json(&[]))),
        },
    }
}

fn item(e: &Entry) -> Value {
    let p = &e.probe;
    json!({
        "name": e.resolved.display_name,
        "status": if p.health.healthy { "healthy" } else { "unhealthy" },
        "reason": p.health.reason.clone().unwrap_or_else(|| "Model is healthy".into()),
        "runtime_compatible": p.runtime.compatible,
        "runtime_reason": p.runtime.reason,
        "problems": p.health.problems,
        "fix": p.health.fix,
    })
}

/// `{healthy[], unhealthy[], summary{total, healthy_count, unhealthy_count}}`.
pub fn render_json(entries: &[Entry]) -> Value {
    let (healthy, unhealthy): (Vec<&Entry>, Vec<&Entry>) =
        entries.iter().partition(|e| e.probe.health.healthy);
    json!({
        "healthy": healthy.iter().map(|e| item(e)).collect::<Vec<_>>(),
        "unhealthy": unhealthy.iter().map(|e| item(e)).collect::<Vec<_>>(),
        "summary": {"total": entries.len(), "healthy_count": healthy.len(), "unhealthy_count": unhealthy.len()},
    })
}

pub fn render_human(entries: &[Entry]) {
    let c = Colors::stdout();
    let healthy = entries.iter().filter(|e| e.probe.health.healthy).count();
    if entries.len() != 1 {
        outln(&format!(
            "Summary: total {}, healthy {}, unhealthy {}",
            entries.len(),
            healthy,
            entries.len() - healthy
        ));
    }
    for e in entries {
        let p = &e.probe;
        if p.health.healthy {
            let note = match &p.runtime.reason {
                Some(r) => format!("files OK; not runnable here: {r}"),
                None => "Model is healthy".into(),
            };
            outln(&format!(
                "{}   {} — {note}",
                c.green("healthy"),
                e.resolved.display_name
            ));
        } else {
            outln(&format!(
                "{} {} — {}",
                c.red("unhealthy"),
                e.resolved.display_name,
                p.health.reason.clone().unwrap_or_default()
            ));
            for pr in p.health.problems.iter().skip(1) {
                outln(&format!("          also: {}", pr.message));
            }
            if let Some(f) = &p.health.fix {
                outln(&format!("          fix: `{f}`"));
            }
        }
    }
}

pub fn run(args: Args) -> CmdResult {
    let entries = gather_entries(&args)?;
    if args.json {
        output::print_json(&output::envelope_ok("health", render_json(&entries)));
    } else {
        if entries.is_empty() {
            if let Some(spec) = &args.model {
                output::errln(&format!("tanto health: no model matches '{spec}'"));
            }
        }
        render_human(&entries);
    }
    Ok(output::EXIT_OK)
}
