//! Policy: one pure function from (probe, request, host memory, config) to a
//! decision. Every gate records its verdict, so `tanto show --explain` can print
//! the whole trail. No silent fallbacks: a block names its error type, HTTP
//! status and the fix.

use serde::Serialize;

pub mod host;
pub mod plan;

use crate::error::{ErrorType, TantoError};
use crate::limits;
use crate::policy::host::HostMemory;
use crate::policy::plan::{load_plan, Backend, LoadPlan};
use crate::probe::mlx::MlxPath;
use crate::probe::{self, ModelKind, Probe};
use crate::registry::{self, Modality};

/// What the caller wants to do with the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Text generation (completion; chat models serve it too).
    Text,
    /// Chat: text generation through the model's chat template.
    Chat,
    /// Text generation with images.
    Vision,
    /// Speech-to-text.
    Audio,
    /// Embedding vectors.
    Embeddings,
}

impl Request {
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Text => "text",
            Request::Chat => "chat",
            Request::Vision => "images",
            Request::Audio => "audio",
            Request::Embeddings => "embeddings",
        }
    }

    /// What the request asks of the engine (chat and completion are both text).
    pub fn modality(self) -> Modality {
        match self {
            Request::Text | Request::Chat => Modality::Text,
            Request::Vision => Modality::Vision,
            Request::Audio => Modality::Audio,
            Request::Embeddings => Modality::Embeddings,
        }
    }

    /// The capability a model needs for this request (one row per request).
    pub fn capability(self) -> &'static str {
        match self {
            Request::Text => probe::CAP_TEXT,
            Request::Chat => probe::CAP_CHAT,
            Request::Vision => probe::CAP_VISION,
            Request::Audio => probe::CAP_AUDIO,
            Request::Embeddings => probe::CAP_EMBEDDINGS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Warn,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateVerdict {
    Pass,
    Warn,
    Block,
    /// Not evaluated because an earlier gate blocked.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    pub gate: &'static str,
    pub verdict: GateVerdict,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub request: Request,
    pub backend: Option<Backend>,
    pub error: Option<TantoError>,
    pub warnings: Vec<String>,
    pub gates: Vec<GateResult>,
}

impl Decision {
    pub fn is_blocked(&self) -> bool {
        self.verdict == Verdict::Block
    }
    pub fn http_status(&self) -> u16 {
        self.error
            .as_ref()
            .map(TantoError::http_status)
            .unwrap_or(200)
    }
}

/// Tunables. `TANTO_MEMORY_THRESHOLD` sets the fraction (e.g. `0.7` or `70%`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PolicyConfig {
    pub memory_threshold: f64,
    /// A hard cap on the bytes a model needs (weights + KV cache; the server's
    /// `--memory-budget`): above it every request is blocked with
    /// `insufficient_memory` (507).
    pub memory_budget: Option<u64>,
    /// The most context tokens the caller will load the model with (None: the
    /// model's own). The memory gate sizes the KV cache for it and [`plan`]
    /// caps the load plan's context to it, so the two agree.
    pub max_context: Option<u64>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            memory_threshold: 0.70,
            memory_budget: None,
            max_context: None,
        }
    }
}

/// What loading a model costs in memory, as the memory gate counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryNeed {
    /// Weight files (what is mapped); for MLX checkpoints the bytes after
    /// repacking or dequantizing ([`crate::probe::mlx::MlxQuant::runtime_bytes`]).
    pub weights: u64,
    /// The KV cache at `context` tokens (0 when the attention shape is unknown).
    pub kv_cache: u64,
    /// The context the KV cache is sized for: the model's (else the engine's
    /// default of [`limits::DEFAULT_CONTEXT`]), capped by
    /// [`PolicyConfig::max_context`] and [`limits::MAX_CONTEXT`].
    pub context: u64,
    /// Bytes per KV element: 2 for GGUF (the native engine keeps an f16
    /// cache), else the compute dtype of the safetensors engine (f32 for
    /// weights up to 3 GiB, 2 bytes above).
    pub kv_dtype_bytes: u64,
    pub total: u64,
}

/// The context a model will be loaded with under `cfg`.
pub fn context_used(p: &Probe, cfg: &PolicyConfig) -> u64 {
    // MAX_CONTEXT >= 1, so the clamp's bounds are ordered.
    p.context_length
        .unwrap_or(limits::DEFAULT_CONTEXT)
        .min(cfg.max_context.unwrap_or(u64::MAX))
        .clamp(1, limits::MAX_CONTEXT)
}

/// Weights plus KV cache: layers × kv_heads × head_dim × context × 2 × dtype bytes.
pub fn memory_need(p: &Probe, cfg: &PolicyConfig) -> MemoryNeed {
    let context = context_used(p, cfg);
    // MLX checkpoints: what the engine holds after repacking or dequantizing.
    let weights = match (&p.mlx, p.kind, p.parameters) {
        (Some(q), _, _) => q.runtime_bytes,
        // Whisper and the embedders run in f32 whatever the file holds (bf16,
        // f16, int8 CTranslate2).
        (None, ModelKind::Audio | ModelKind::Embedding, Some(n)) => {
            n.saturating_mul(4).max(p.weights_bytes)
        }
        // Safetensors up to 3 GiB load in f32 (tanto-engine's compute dtype),
        // so a bf16 file takes twice its size.
        (None, _, Some(n))
            if p.format == probe::Format::Safetensors && p.weights_bytes <= 3 << 30 =>
        {
            n.saturating_mul(4).max(p.weights_bytes)
        }
        _ => p.weights_bytes,
    };
    let kv_dtype_bytes = match (p.format, &p.mlx) {
        (probe::Format::Gguf, _) => 2,
        (_, Some(q)) if q.path == MlxPath::Native => 2,
        (_, Some(q)) if q.dequantized_dtype.as_deref() == Some("float32") => 4,
        (_, Some(_)) => 2,
        _ if p.weights_bytes <= 3 << 30 => 4,
        _ => 2,
    };
    // Embedders keep no cache between requests; their batch working set is
    // bounded by the engine's token budget instead.
    let kv_cache = match p.kind {
        ModelKind::Embedding => 0,
        _ => p
            .attention
            .map_or(0, |a| a.kv_cache_bytes(context, kv_dtype_bytes)),
    };
    MemoryNeed {
        weights,
        kv_cache,
        context,
        kv_dtype_bytes,
        total: weights.saturating_add(kv_cache),
    }
}

impl PolicyConfig {
    pub fn from_env() -> Self {
        let mut c = Self::default();
        if let Ok(raw) = std::env::var("TANTO_MEMORY_THRESHOLD") {
            if let Some(v) = parse_threshold(&raw) {
                c.memory_threshold = v;
            }
        }
        // The same variable `tanto serve` reads, so `show --explain` answers
        // with the server's 507.
        if let Ok(raw) = std::env::var("TANTO_MEMORY_BUDGET") {
            c.memory_budget = crate::host::parse_size(&raw);
        }
        c
    }

    /// With a memory budget (`None` keeps whatever is set).
    pub fn with_memory_budget(mut self, budget: Option<u64>) -> Self {
        if budget.is_some() {
            self.memory_budget = budget;
        }
        self
    }
}

/// `0.7`, `70`, `70%` → 0.7. Out-of-range values are rejected.
pub fn parse_threshold(raw: &str) -> Option<f64> {
    let s = raw.trim();
    let (num, pct) = match s.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (s, false),
    };
    let v: f64 = num.parse().ok()?;
    let v = if pct || v > 1.0 { v / 100.0 } else { v };
    (v > 0.0 && v <= 1.0).then_some(v)
}

fn gib(b: u64) -> String {
    format!("{:.1} GB", b as f64 / (1024.0 * 1024.0 * 1024.0))
}

fn capability_mismatch(p: &Probe, req: Request) -> TantoError {
    let name = &p.name;
    let (msg, hint) = match (p.kind, req) {
        (ModelKind::Embedding, _) => (
            format!(
                "Model '{name}' is an embedding model and cannot do {}",
                req.as_str()
            ),
            "it produces vectors, not text: use `tanto embed` or `POST /v1/embeddings`, or pick a text model (`tanto list` shows their TYPE as chat or base)".to_string(),
        ),
        (ModelKind::Audio, _) => (
            format!(
                "Model '{name}' is a speech-to-text model and cannot do {}",
                req.as_str()
            ),
            "it transcribes audio, not text prompts: use `tanto run MODEL --audio FILE` or `POST /v1/audio/transcriptions`, or pick a text model (`tanto list`)".to_string(),
        ),
        (_, Request::Embeddings) => (
            format!("Model '{name}' is not an embedding model"),
            "pick an embedding model (e.g. a sentence-transformers model) for embeddings"
                .to_string(),
        ),
        (_, Request::Vision) => (
            format!("Model '{name}' does not support images (no vision capability detected)"),
            "use a vision-language model for image inputs".to_string(),
        ),
        (_, Request::Audio) => (
            format!("Model '{name}' does not support audio inputs (no audio capability detected)"),
            "use a speech-to-text model (e.g. Whisper) for audio".to_string(),
        ),
        (_, Request::Chat) => (
            format!("Model '{name}' has no chat template, so it cannot serve chat completions"),
            "use a plain completion (`POST /v1/completions` with a prompt), or pick an instruct/chat model".to_string(),
        ),
        (_, Request::Text) => (
            format!("Model '{name}' cannot generate text"),
            "check `tanto show MODEL` for its capabilities".to_string(),
        ),
    };
    TantoError::new(ErrorType::CapabilityMismatch, msg)
        .with_hint(hint)
        .with_detail("capabilities", p.capabilities.clone())
}

/// What a gate concluded.
enum Outcome {
    Pass(String),
    Warn(String),
    Block(TantoError),
}

/// What the gates read, and the backend the backend gate chose.
struct Inputs<'a> {
    p: &'a Probe,
    req: Request,
    host: &'a HostMemory,
    cfg: &'a PolicyConfig,
    backend: Option<Backend>,
}

type Gate = fn(&mut Inputs) -> Outcome;

/// The gates, in order. A new request kind adds a row to [`Request::capability`]
/// and [`Request::modality`], not a gate.
const GATES: &[(&str, Gate)] = &[
    ("health", gate_health),
    ("capability", gate_capability),
    ("backend", gate_backend),
    ("runtime", gate_runtime),
    ("memory", gate_memory),
];

fn gate_health(i: &mut Inputs) -> Outcome {
    let p = i.p;
    if p.health.healthy {
        return Outcome::Pass("files complete and consistent".into());
    }
    let reason = p.health.reason.clone().unwrap_or_default();
    let hint = p
        .health
        .fix
        .clone()
        .map(|f| format!("run `{f}`"))
        .unwrap_or_else(|| {
            format!(
                "run `tanto health {}` for details; re-download or repair the model",
                p.name
            )
        });
    Outcome::Block(
        TantoError::new(
            ErrorType::UnhealthyModel,
            format!("Model '{}' is unhealthy: {reason}", p.name),
        )
        .with_hint(hint),
    )
}

fn gate_capability(i: &mut Inputs) -> Outcome {
    if !i.p.has(i.req.capability()) {
        return Outcome::Block(capability_mismatch(i.p, i.req));
    }
    Outcome::Pass(format!(
        "{} requested; model has [{}]",
        i.req.as_str(),
        i.p.capabilities.join(", ")
    ))
}

fn gate_backend(i: &mut Inputs) -> Outcome {
    let p = i.p;
    // A vision-language model answers text-only prompts too, on its own
    // engine (its text half); the probe picked that engine for the model.
    let text_on_vision = p.has(probe::CAP_VISION) && i.req.modality() == Modality::Text;
    let want = if text_on_vision {
        Modality::Vision
    } else {
        i.req.modality()
    };
    match registry::backend_for(p.format, p.kind, want) {
        Ok(b) if registry::is_built(b) => {
            i.backend = Some(b);
            if text_on_vision {
                Outcome::Pass(format!(
                    "{} backend (text only: the vision model's text path)",
                    b.as_str()
                ))
            } else {
                Outcome::Pass(format!("{} backend", b.as_str()))
            }
        }
        Ok(b) => Outcome::Block(
            TantoError::new(
                ErrorType::MissingBackend,
                format!(
                    "This build of tanto has no {} engine for '{}'",
                    b.as_str(),
                    p.name
                ),
            )
            .with_hint("this modality is not built into tanto yet; see `tanto --version --json` for the engines in this build"),
        ),
        Err(no) => Outcome::Block(
            TantoError::new(
                ErrorType::MissingBackend,
                format!("This build of tanto has no engine for {} ('{}')", no.what, p.name),
            )
            .with_hint(no.reason),
        ),
    }
}

/// The probe's own verdict (for the model's modality) and the chosen backend's
/// architecture table, both from the registry.
fn gate_runtime(i: &mut Inputs) -> Outcome {
    let p = i.p;
    let arch = p.config_model_type.clone().unwrap_or_default();
    let check = match i.backend {
        Some(b) => registry::check_arch(b, &arch),
        None => Err("no backend chosen".into()),
    };
    let reason = match (&p.runtime.reason, check) {
        (_, Ok(())) if p.runtime.compatible => {
            return Outcome::Pass(format!("architecture '{arch}' supported"));
        }
        (Some(r), _) => r.clone(),
        (None, Err(r)) => r,
        (None, Ok(())) => "the probe found the model not runnable".into(),
    };
    Outcome::Block(
        TantoError::new(
            ErrorType::RuntimeIncompatible,
            format!("Model '{}' is not compatible: {reason}", p.name),
        )
        .with_hint("pick a model whose architecture this build supports (`tanto list --all --health` shows them)")
        .with_detail("architecture", arch),
    )
}

/// `12.3 GiB` / `512.0 MiB` (the server's wording for its budget).
fn human_bytes(b: u64) -> String {
    let gib = b as f64 / (1024.0 * 1024.0 * 1024.0);
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    }
}

fn gate_memory(i: &mut Inputs) -> Outcome {
    let m = memory_need(i.p, i.cfg);
    let need = m.total;
    let parts = format!(
        "{} of weights + {} of KV cache at {} tokens",
        human_bytes(m.weights),
        human_bytes(m.kv_cache),
        m.context
    );
    if let Some(budget) = i.cfg.memory_budget.filter(|b| need > *b) {
        return Outcome::Block(
            TantoError::new(
                ErrorType::InsufficientMemory,
                format!(
                    "Model '{}' needs {} ({parts}) but this server's memory budget is {}; pick a smaller or more quantized model, or raise --memory-budget",
                    i.p.name,
                    human_bytes(need),
                    human_bytes(budget)
                ),
            )
            .with_hint("pick a smaller or more quantized model, or raise --memory-budget")
            .with_detail("required_bytes", need)
            .with_detail("kv_cache_bytes", m.kv_cache)
            .with_detail("budget_bytes", budget),
        );
    }
    let Some(avail) = i.host.available_bytes else {
        return Outcome::Pass("available memory unknown on this host; gate not applied".into());
    };
    let limit = (avail as f64 * i.cfg.memory_threshold) as u64;
    let pct = (i.cfg.memory_threshold * 100.0).round();
    if need <= limit {
        return Outcome::Pass(format!(
            "needs {} ({parts}) of {} available (limit {pct}%)",
            gib(need),
            gib(avail)
        ));
    }
    let msg = format!(
        "Model size ({}: {parts}) exceeds {pct}% of available memory ({})",
        gib(need),
        gib(avail)
    );
    if matches!(i.req, Request::Vision | Request::Audio) {
        return Outcome::Block(
            TantoError::new(ErrorType::InsufficientMemory, msg)
                .with_hint("free memory, pick a smaller or more quantized model, or raise TANTO_MEMORY_THRESHOLD")
                .with_detail("required_bytes", need)
                .with_detail("kv_cache_bytes", m.kv_cache)
                .with_detail("available_bytes", avail),
        );
    }
    Outcome::Warn(format!(
        "{msg}; expect heavy swapping or an out-of-memory kill"
    ))
}

/// Decide. Gates run in order: health → capability → backend → runtime → memory
/// ([`GATES`]); the first block skips the rest.
pub fn decide(p: &Probe, req: Request, host: &HostMemory, cfg: &PolicyConfig) -> Decision {
    let mut i = Inputs {
        p,
        req,
        host,
        cfg,
        backend: None,
    };
    let mut gates = Vec::with_capacity(GATES.len());
    let mut warnings = Vec::new();
    let mut error = None;
    for (name, gate) in GATES {
        if error.is_some() {
            gates.push(GateResult {
                gate: name,
                verdict: GateVerdict::Skipped,
                detail: "not evaluated".into(),
            });
            continue;
        }
        let (verdict, detail) = match gate(&mut i) {
            Outcome::Pass(d) => (GateVerdict::Pass, d),
            Outcome::Warn(w) => {
                warnings.push(w.clone());
                (GateVerdict::Warn, w)
            }
            Outcome::Block(err) => {
                let d = format!("{} ({} {})", err.message, err.http_status(), err.kind);
                error = Some(err);
                (GateVerdict::Block, d)
            }
        };
        gates.push(GateResult {
            gate: name,
            verdict,
            detail,
        });
    }
    let verdict = match (&error, warnings.is_empty()) {
        (Some(_), _) => Verdict::Block,
        (None, true) => Verdict::Allow,
        (None, false) => Verdict::Warn,
    };
    Decision {
        verdict,
        request: req,
        backend: if error.is_some() { None } else { i.backend },
        warnings: if error.is_some() {
            Vec::new()
        } else {
            warnings
        },
        error,
        gates,
    }
}

/// Decide and, when allowed, produce the load plan for the decision's backend.
pub fn plan(
    p: &Probe,
    req: Request,
    host: &HostMemory,
    cfg: &PolicyConfig,
) -> Result<(LoadPlan, Decision), TantoError> {
    let d = decide(p, req, host, cfg);
    if let Some(e) = &d.error {
        return Err(e.clone());
    }
    let mut plan = d.backend.and_then(|b| load_plan(p, b)).ok_or_else(|| {
        TantoError::new(
            ErrorType::InternalError,
            format!("no load plan for '{}'", p.name),
        )
    })?;
    if cfg.max_context.is_some() {
        plan.context_length = Some(context_used(p, cfg) as usize);
    }
    Ok((plan, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(parse_threshold("0.7"), Some(0.7));
        assert_eq!(parse_threshold("70%"), Some(0.7));
        assert_eq!(parse_threshold("80"), Some(0.8));
        assert_eq!(parse_threshold("0"), None);
        assert_eq!(parse_threshold("abc"), None);
        assert_eq!(parse_threshold("150%"), None);
    }
}
