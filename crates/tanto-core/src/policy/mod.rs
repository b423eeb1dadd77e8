//! Policy: one pure function from (probe, request, host memory, config) to a
//! decision. Every gate records its verdict, so `tanto show --explain` can print
//! the whole trail. No silent fallbacks: a block names its error type, HTTP
//! status and the fix.

use serde::Serialize;

pub mod host;
pub mod plan;

use crate::error::{ErrorType, TantoError};
use crate::policy::host::HostMemory;
use crate::policy::plan::{Backend, LoadPlan};
use crate::probe::{self, Format, ModelKind, Probe};

/// What the caller wants to do with the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Text generation (chat or completion).
    Text,
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
            Request::Vision => "images",
            Request::Audio => "audio",
            Request::Embeddings => "embeddings",
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
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            memory_threshold: 0.70,
        }
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
        c
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

fn capability_for(req: Request) -> &'static str {
    match req {
        Request::Text => probe::CAP_TEXT,
        Request::Vision => probe::CAP_VISION,
        Request::Audio => probe::CAP_AUDIO,
        Request::Embeddings => probe::CAP_EMBEDDINGS,
    }
}

fn capability_mismatch(p: &Probe, req: Request) -> TantoError {
    let name = &p.name;
    let (msg, hint) = match (p.kind, req) {
        (ModelKind::Embedding, _) => (
            format!(
                "Model '{name}' is an embedding model and cannot do {}",
                req.as_str()
            ),
            "it produces vectors, not text; pick a text model (`tanto list` shows their TYPE as chat or base). This build has no embeddings engine yet".to_string(),
        ),
        (ModelKind::Audio, _) => (
            format!(
                "Model '{name}' is a speech-to-text model and cannot do {}",
                req.as_str()
            ),
            "it transcribes audio, not text prompts; pick a text model (`tanto list`). This build has no speech-to-text engine yet".to_string(),
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
        (_, Request::Text) => (
            format!("Model '{name}' cannot generate text"),
            "check `tanto show MODEL` for its capabilities".to_string(),
        ),
    };
    TantoError::new(ErrorType::CapabilityMismatch, msg)
        .with_hint(hint)
        .with_detail("capabilities", p.capabilities.clone())
}

/// The backend that serves `req` for this probe's format, if this build has one at all.
fn backend_for(p: &Probe, req: Request) -> Result<Backend, String> {
    match req {
        Request::Embeddings => Ok(Backend::Embeddings),
        Request::Audio => Ok(Backend::Whisper),
        Request::Vision => Ok(Backend::Vision),
        Request::Text => match p.format {
            Format::Gguf => Ok(Backend::GgufText),
            Format::Safetensors => Ok(Backend::SafetensorsText),
            Format::MlxSafetensors => {
                Err("MLX-quantized safetensors (needs Apple's MLX runtime)".into())
            }
            Format::PytorchBin => Err("PyTorch .bin (pickle) weights".into()),
            Format::Onnx => Err("ONNX models".into()),
            Format::Unknown => Err("an unknown weight format".into()),
        },
    }
}

/// Decide. Gates run in order: health → capability → backend → runtime → memory.
pub fn decide(p: &Probe, req: Request, host: &HostMemory, cfg: &PolicyConfig) -> Decision {
    let mut gates: Vec<GateResult> = Vec::new();
    let mut warnings = Vec::new();
    let names = ["health", "capability", "backend", "runtime", "memory"];
    let block = |gates: &mut Vec<GateResult>, err: TantoError| -> Decision {
        let done = gates.len();
        gates.push(GateResult {
            gate: names[done],
            verdict: GateVerdict::Block,
            detail: format!("{} ({} {})", err.message, err.http_status(), err.kind),
        });
        for n in &names[done + 1..] {
            gates.push(GateResult {
                gate: n,
                verdict: GateVerdict::Skipped,
                detail: "not evaluated".into(),
            });
        }
        Decision {
            verdict: Verdict::Block,
            request: req,
            backend: None,
            error: Some(err),
            warnings: Vec::new(),
            gates: std::mem::take(gates),
        }
    };

    // 1. health
    if !p.health.healthy {
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
        let err = TantoError::new(
            ErrorType::UnhealthyModel,
            format!("Model '{}' is unhealthy: {reason}", p.name),
        )
        .with_hint(hint);
        return block(&mut gates, err);
    }
    gates.push(GateResult {
        gate: "health",
        verdict: GateVerdict::Pass,
        detail: "files complete and consistent".into(),
    });

    // 2. capability
    let cap = capability_for(req);
    if !p.has(cap) {
        return block(&mut gates, capability_mismatch(p, req));
    }
    gates.push(GateResult {
        gate: "capability",
        verdict: GateVerdict::Pass,
        detail: format!(
            "{} requested; model has [{}]",
            req.as_str(),
            p.capabilities.join(", ")
        ),
    });

    // 3. backend
    let backend = match backend_for(p, req) {
        Ok(b) if crate::registry::is_built(b) => b,
        Ok(b) => {
            let err = TantoError::new(
                ErrorType::MissingBackend,
                format!(
                    "This build of tanto has no {} engine for '{}'",
                    b.as_str(),
                    p.name
                ),
            )
            .with_hint("this modality is not built into tanto yet; see `tanto --version --json` for the engines in this build");
            return block(&mut gates, err);
        }
        Err(what) => {
            let err = TantoError::new(
                ErrorType::MissingBackend,
                format!(
                    "This build of tanto has no engine for {what} ('{}')",
                    p.name
                ),
            )
            .with_hint(p.runtime.reason.clone().unwrap_or_else(|| {
                "use a GGUF or an unquantized safetensors copy of this model".into()
            }));
            return block(&mut gates, err);
        }
    };
    gates.push(GateResult {
        gate: "backend",
        verdict: GateVerdict::Pass,
        detail: format!("{} backend", backend.as_str()),
    });

    // 4. runtime compatibility
    if !p.runtime.compatible || p.runtime.backend != Some(backend) {
        let reason =
            p.runtime.reason.clone().unwrap_or_else(|| {
                format!("the {} backend cannot load this model", backend.as_str())
            });
        let err = TantoError::new(
            ErrorType::RuntimeIncompatible,
            format!("Model '{}' is not compatible: {reason}", p.name),
        )
        .with_hint("pick a model whose architecture this build supports (`tanto list --all --health` shows them)")
        .with_detail("architecture", p.config_model_type.clone().unwrap_or_default());
        return block(&mut gates, err);
    }
    gates.push(GateResult {
        gate: "runtime",
        verdict: GateVerdict::Pass,
        detail: format!(
            "architecture '{}' supported",
            p.config_model_type.clone().unwrap_or_default()
        ),
    });

    // 5. memory
    let need = p.weights_bytes;
    match host.available_bytes {
        None => gates.push(GateResult {
            gate: "memory",
            verdict: GateVerdict::Pass,
            detail: "available memory unknown on this host; gate not applied".into(),
        }),
        Some(avail) => {
            let limit = (avail as f64 * cfg.memory_threshold) as u64;
            let pct = (cfg.memory_threshold * 100.0).round();
            if need > limit {
                let msg = format!(
                    "Model size ({}) exceeds {pct}% of available memory ({})",
                    gib(need),
                    gib(avail)
                );
                if matches!(req, Request::Vision | Request::Audio) {
                    let err = TantoError::new(ErrorType::InsufficientMemory, msg)
                        .with_hint("free memory, pick a smaller or more quantized model, or raise TANTO_MEMORY_THRESHOLD")
                        .with_detail("required_bytes", need)
                        .with_detail("available_bytes", avail);
                    return block(&mut gates, err);
                }
                let w = format!("{msg}; expect heavy swapping or an out-of-memory kill");
                gates.push(GateResult {
                    gate: "memory",
                    verdict: GateVerdict::Warn,
                    detail: w.clone(),
                });
                warnings.push(w);
            } else {
                gates.push(GateResult {
                    gate: "memory",
                    verdict: GateVerdict::Pass,
                    detail: format!(
                        "needs {} of {} available (limit {pct}%)",
                        gib(need),
                        gib(avail)
                    ),
                });
            }
        }
    }

    Decision {
        verdict: if warnings.is_empty() {
            Verdict::Allow
        } else {
            Verdict::Warn
        },
        request: req,
        backend: Some(backend),
        error: None,
        warnings,
        gates,
    }
}

/// Convenience: decide and, when allowed, produce the load plan.
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
    let plan = p.load_plan().ok_or_else(|| {
        TantoError::new(
            ErrorType::InternalError,
            format!("no load plan for '{}'", p.name),
        )
    })?;
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
