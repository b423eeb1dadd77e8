//! `tanto show MODEL [--files] [--config] [--explain] [--recalc-hash] [--json]`
//!
//! [`gather`] resolves and probes (and recalculates a workspace hash when
//! asked); [`render_json`] and [`render_human`] print the result.

use serde_json::{json, Map, Value};
use tanto_core::error::{ErrorType, TantoError};
use tanto_core::host;
use tanto_core::policy::{self, Decision, GateVerdict, PolicyConfig, Request, Verdict};
use tanto_core::probe::mlx::MlxPath;
use tanto_core::probe::{ModelKind, Probe};
use tanto_core::resolve::{self, Location, Stores};
use tanto_core::workspace;

use crate::models::Entry;
use crate::output::{
    self, human_age, human_params, human_size, mlx_size, outln, CmdResult, Colors,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model spec: org/name, a unique fuzzy name, name@rev, a path or a workspace name
    pub model: String,
    /// List the model's files
    #[arg(long)]
    pub files: bool,
    /// Print config.json
    #[arg(long)]
    pub config: bool,
    /// Print every policy gate and its verdict, in order
    #[arg(long)]
    pub explain: bool,
    /// With --explain: the memory budget `tanto serve --memory-budget` would apply (default: $TANTO_MEMORY_BUDGET)
    #[arg(long, value_parser = parse_size, requires = "explain")]
    pub memory_budget: Option<u64>,
    /// Recompute and store a managed workspace's content hash
    #[arg(long)]
    pub recalc_hash: bool,
    /// Print the JSON envelope
    #[arg(long)]
    pub json: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    host::parse_size(s).ok_or_else(|| format!("'{s}' is not a size (e.g. 512M, 4G)"))
}

/// The request the model's main modality implies (what `--explain` evaluates).
pub fn default_request(p: &Probe) -> Request {
    match p.kind {
        ModelKind::Embedding => Request::Embeddings,
        ModelKind::Audio => Request::Audio,
        _ if p.has(tanto_core::probe::CAP_VISION) => Request::Vision,
        _ => Request::Text,
    }
}

fn metadata(p: &Probe) -> Value {
    let mut m = Map::new();
    if let Some(cfg) = &p.config {
        if let Some(v) = cfg.get("model_type") {
            m.insert("model_type".into(), v.clone());
        }
        if let Some(a) = cfg
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            m.insert("architecture".into(), a.clone());
        }
        for k in [
            "vocab_size",
            "hidden_size",
            "num_attention_heads",
            "num_hidden_layers",
        ] {
            if let Some(v) = cfg.get(k) {
                m.insert(k.into(), v.clone());
            }
        }
    } else if let Some(a) = &p.architecture {
        m.insert("model_type".into(), json!(a));
        m.insert("architecture".into(), json!(a));
    }
    if let Some(q) = &p.quantization {
        if let Some(b) = q.bits {
            m.insert("quantization".into(), json!(format!("{b}bit")));
        }
    }
    if let Some(c) = p.context_length {
        m.insert("context_length".into(), json!(c));
    }
    if m.is_empty() {
        Value::Null
    } else {
        Value::Object(m)
    }
}

/// mlx-knife's `{name (basename), size ("1.6KB"), type}`, plus tanto's
/// relative `path`, `size_bytes` and link flags.
fn files_json(p: &Probe) -> Value {
    Value::Array(
        p.files
            .iter()
            .map(|f| {
                let base = f.path.rsplit('/').next().unwrap_or(&f.path);
                json!({
                    "name": base,
                    "size": mlx_size(f.size),
                    "path": f.path,
                    "size_bytes": f.size,
                    "type": f.kind,
                    "symlink": f.symlink,
                    "dangling": f.dangling,
                })
            })
            .collect(),
    )
}

pub fn decision_json(d: &Decision) -> Value {
    json!({
        "request": d.request,
        "verdict": d.verdict,
        "backend": d.backend.map(|b| b.as_str()),
        "http_status": d.error.as_ref().map(|e| e.http_status()),
        "error": d.error,
        "warnings": d.warnings,
        "gates": d.gates,
    })
}

pub fn print_decision(d: &Decision, c: &Colors) {
    outln(&format!(
        "Decision trail (request: {}):",
        d.request.as_str()
    ));
    for (i, g) in d.gates.iter().enumerate() {
        let v = match g.verdict {
            GateVerdict::Pass => c.green("pass   "),
            GateVerdict::Warn => c.yellow("warn   "),
            GateVerdict::Block => c.red("block  "),
            GateVerdict::Skipped => c.dim("skipped"),
        };
        outln(&format!("  {}. {:<11} {v} {}", i + 1, g.gate, g.detail));
    }
    match (&d.verdict, &d.error) {
        (Verdict::Block, Some(e)) => {
            outln(&format!(
                "Verdict: {} — {} (HTTP {})",
                c.red("block"),
                e.kind,
                e.http_status()
            ));
            outln(&format!("  {}", e.message));
            if let Some(h) = &e.hint {
                outln(&format!("  fix: {h}"));
            }
        }
        _ => outln(&format!(
            "Verdict: {} → backend {}",
            if d.verdict == Verdict::Warn {
                c.yellow("warn")
            } else {
                c.green("allow")
            },
            d.backend.map(|b| b.as_str()).unwrap_or("-")
        )),
    }
}

/// What `show` prints.
pub struct Data {
    pub entry: Entry,
    pub decision: Option<Decision>,
    pub hash_updated: bool,
}

pub fn gather(args: &Args) -> Result<Data, TantoError> {
    let stores = Stores::from_env();
    let resolved = resolve::resolve(&args.model, &stores)?;
    let mut hash_updated = false;
    if args.recalc_hash {
        match &resolved.location {
            Location::Folder { dir, managed: true } => {
                workspace::recalc_hash(dir).map_err(|e| {
                    output::internal(format!("could not recalculate the hash: {e}"))
                })?;
                hash_updated = true;
            }
            _ => {
                return Err(TantoError::new(
                    ErrorType::ValidationError,
                    "--recalc-hash applies to managed workspaces only (folders with .mlxk_workspace.json)",
                ))
            }
        }
    }
    let entry = Entry::new(resolved);
    let p = &entry.probe;
    let decision = args.explain.then(|| {
        policy::decide(
            p,
            default_request(p),
            &host::detect(),
            &PolicyConfig::from_env().with_memory_budget(args.memory_budget),
        )
    });
    Ok(Data {
        entry,
        decision,
        hash_updated,
    })
}

/// The model object as `show` prints it: `quantization` is mlx-knife's raw
/// config.json dict (`bits`, `group_size`, `mode`, …) merged over tanto's
/// normalised object (`method`, `file_type`), so both shapes' fields are
/// there; the raw dict also stays under `quantization_config`.
fn show_model_object(e: &Entry) -> Value {
    let mut model = e.object();
    let raw = e.probe.config.as_ref().and_then(|c| c.get("quantization"));
    if let (Some(o), Some(raw)) = (model.as_object_mut(), raw) {
        o.insert("quantization_config".into(), raw.clone());
        if let Some(raw_obj) = raw.as_object() {
            let mut merged = o
                .get("quantization")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (k, v) in raw_obj {
                merged.insert(k.clone(), v.clone());
            }
            o.insert("quantization".into(), Value::Object(merged));
        }
    }
    model
}

pub fn render_json(d: &Data, args: &Args) -> Value {
    let e = &d.entry;
    let p = &e.probe;
    let mut o = Map::new();
    o.insert("model".into(), show_model_object(e));
    o.insert(
        "workspace_metadata".into(),
        e.ws.as_ref()
            .and_then(|w| w.sentinel.as_ref())
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .unwrap_or(Value::Null),
    );
    if args.files {
        o.insert("files".into(), files_json(p));
        o.insert("metadata".into(), Value::Null);
    } else if args.config {
        o.insert("config".into(), p.config.clone().unwrap_or(Value::Null));
        o.insert("metadata".into(), Value::Null);
    } else {
        o.insert("metadata".into(), metadata(p));
    }
    if let Some(es) = &p.embedding {
        o.insert(
            "embedding".into(),
            serde_json::to_value(es).unwrap_or(Value::Null),
        );
    }
    if let Some(mq) = &p.mlx {
        o.insert(
            "mlx".into(),
            serde_json::to_value(mq).unwrap_or(Value::Null),
        );
    }
    if let Some(dec) = &d.decision {
        o.insert("explain".into(), decision_json(dec));
    }
    if d.hash_updated {
        o.insert("hash_updated".into(), json!(true));
    }
    Value::Object(o)
}

pub fn run(args: Args) -> CmdResult {
    let d = gather(&args)?;
    if args.json {
        output::print_json(&output::envelope_ok("show", render_json(&d, &args)));
    } else {
        render_human(&d, &args);
    }
    Ok(output::EXIT_OK)
}

pub fn render_human(d: &Data, args: &Args) {
    let (e, hash_updated) = (&d.entry, d.hash_updated);
    let p = &e.probe;
    let c = Colors::stdout();
    let kv = |k: &str, v: String| outln(&format!("{:<14}{v}", format!("{k}:")));
    let title = match e.resolved.commit() {
        Some(h) => format!("{}@{}", e.resolved.name, &h[..h.len().min(7)]),
        None => e.resolved.name.clone(),
    };
    kv("Model", c.bold(&title));
    if let Some(d) = &p.dir {
        kv("Path", tanto_core::paths::redact_home(d));
    }
    kv(
        "Format",
        format!("{} ({})", p.format.as_str(), p.format.framework()),
    );
    if let Some(a) = &p.architecture {
        kv("Architecture", a.clone());
    }
    kv("Type", crate::cmd::list::type_label(e));
    kv("Capabilities", p.capabilities.join(", "));
    if let Some(n) = p.parameters {
        kv("Parameters", human_params(n));
    }
    if let Some(q) = &p.quantization {
        let mut s = match (&q.file_type, q.bits) {
            (Some(ft), Some(b)) => format!("{ft} ({b}-bit)"),
            (Some(ft), None) => ft.clone(),
            (None, Some(b)) => format!("{b}-bit ({})", q.method),
            (None, None) => q.method.clone(),
        };
        if let Some(g) = q.group_size {
            s.push_str(&format!(", group_size={g}"));
        }
        if let Some(m) = &q.mode {
            s.push_str(&format!(", mode={m}"));
        }
        kv("Quantization", s);
        if let Some(mq) = &p.mlx {
            // How this build runs it, and what it holds in memory.
            let how = match mq.path {
                MlxPath::Native => {
                    format!("native kernels ({} held)", human_size(mq.runtime_bytes))
                }
                MlxPath::Dequantize => format!(
                    "dequantized to {} at load ({} held)",
                    mq.dequantized_dtype.as_deref().unwrap_or("float32"),
                    human_size(mq.runtime_bytes)
                ),
            };
            kv("MLX path", how);
            if args.explain {
                kv("MLX reason", mq.path_reason.clone());
            }
        }
    } else if let Some(d) = &p.dtype {
        kv("Dtype", d.clone());
    }
    if let Some(cl) = p.context_length {
        kv("Context", cl.to_string());
    }
    if let Some(es) = &p.embedding {
        let mut parts = Vec::new();
        if let Some(d) = es.dimensions {
            parts.push(format!("{d} dims"));
        }
        parts.push(format!("{} pooling", es.pooling_label()));
        if !es.dense.is_empty() {
            parts.push(format!("{} dense", es.dense.len()));
        }
        parts.push(
            if es.normalize {
                "normalized"
            } else {
                "not normalized"
            }
            .to_string(),
        );
        if let Some(m) = es.max_seq_length {
            parts.push(format!("max {m} tokens"));
        }
        if es.matryoshka {
            parts.push("matryoshka".into());
        }
        kv("Embedding", parts.join(", "));
        if !es.prompts.is_empty() {
            let names: Vec<&str> = es.prompts.keys().map(String::as_str).collect();
            kv("Prompts", names.join(", "));
        }
        if args.explain {
            kv("Pipeline", es.source.describe().to_string());
        }
    }
    kv("Size", human_size(p.size_bytes));
    kv("Modified", human_age(p.last_modified));
    let health = if !p.health.healthy {
        c.red("unhealthy")
    } else if !p.runtime.compatible {
        format!(
            "{} (files OK, not runnable by this build)",
            c.yellow("healthy")
        )
    } else {
        c.green("healthy")
    };
    kv("Health", health);
    if let Some(r) = if p.health.healthy {
        &p.runtime.reason
    } else {
        &p.health.reason
    } {
        kv("Reason", r.clone());
    }
    for extra in p.health.problems.iter().skip(1) {
        kv("Also", extra.message.clone());
    }
    if let Some(f) = &p.health.fix {
        kv("Fix", format!("`{f}`"));
    }
    if let Some(b) = p.runtime.backend {
        kv("Backend", b.as_str().to_string());
    }
    if let Some(ws) = &e.ws {
        if let Some(s) = &ws.sentinel {
            outln("Workspace:");
            if let Some(src) = &s.source_repo {
                outln(&format!("  Source:       {src}"));
            }
            if let Some(op) = &s.operation {
                outln(&format!("  Operation:    {op}"));
            }
            if let Some(cr) = &s.created_at {
                outln(&format!("  Created:      {cr}"));
            }
            outln(&format!(
                "  Clean:        {}",
                match ws.clean {
                    Some(true) => c.green("✓"),
                    Some(false) => c.red("✗ (modified since the hash was pinned)"),
                    None => "— (no v2 hash; run `tanto show MODEL --recalc-hash`)".into(),
                }
            ));
            if let Some(h) = &ws.content_hash {
                outln(&format!("  Content hash: {h}"));
            }
        }
    }
    if hash_updated {
        outln("Hash recalculated and stored (workspace now marked clean)");
    }
    if args.files {
        outln("Files:");
        for f in &p.files {
            let flag = if f.dangling { " [dangling]" } else { "" };
            outln(&format!(
                "  - {} ({}, {}){flag}",
                f.path,
                f.kind,
                human_size(f.size)
            ));
        }
    }
    if args.config {
        outln("Config:");
        let s = p
            .config
            .as_ref()
            .and_then(|v| serde_json::to_string_pretty(v).ok())
            .unwrap_or_else(|| "(no config.json)".into());
        for l in s.lines() {
            outln(&format!("  {l}"));
        }
    }
    if let Some(dec) = &d.decision {
        print_decision(dec, &c);
    }
}
