//! `tanto health [MODEL] [--json]`

use serde_json::json;
use tanto_core::resolve::{self, Stores};

use crate::models::{gather, Entry};
use crate::output::{self, outln, Colors};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Check one model (any spec `show` accepts); all models when omitted
    pub model: Option<String>,
    /// Print the JSON envelope
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> i32 {
    let stores = Stores::from_env();
    let entries: Vec<Entry> = match &args.model {
        None => gather(&stores, None),
        Some(spec) => match resolve::resolve(spec, &stores) {
            Ok(r) => vec![Entry::new(r)],
            Err(e) => return output::fail("health", args.json, &e),
        },
    };
    let item = |e: &Entry| {
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
    };
    let healthy: Vec<_> = entries
        .iter()
        .filter(|e| e.probe.health.healthy)
        .map(item)
        .collect();
    let unhealthy: Vec<_> = entries
        .iter()
        .filter(|e| !e.probe.health.healthy)
        .map(item)
        .collect();
    if args.json {
        output::print_json(&output::envelope_ok(
            "health",
            json!({
                "healthy": healthy,
                "unhealthy": unhealthy,
                "summary": {"total": entries.len(), "healthy_count": healthy.len(), "unhealthy_count": unhealthy.len()},
            }),
        ));
        return output::EXIT_OK;
    }
    let c = Colors::stdout();
    if entries.len() != 1 {
        outln(&format!(
            "Summary: total {}, healthy {}, unhealthy {}",
            entries.len(),
            healthy.len(),
            unhealthy.len()
        ));
    }
    for e in &entries {
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
    output::EXIT_OK
}
