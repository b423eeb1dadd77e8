//! The dispatch for every embedding architecture: BERT/XLM-RoBERTa on tanto's
//! own encoder (`bert.rs`), ModernBERT on candle-transformers', the decoders
//! on `decoder.rs`. Real repositories save
//! either the bare encoder (`embeddings.…`) or a task model around it
//! (`bert.…`, `roberta.…`, `model.…`); both load.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models as m;
use serde_json::Value;

use super::Backbone;
use crate::api::EngineError;

fn inval(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidModel {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Run candle code that may panic on malformed input; turn panics into errors.
pub(crate) fn guarded<T>(
    path: &Path,
    f: impl FnOnce() -> candle_core::Result<T>,
) -> Result<T, EngineError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(inval(path, e)),
        Err(_) => Err(inval(path, "model loader panicked (malformed weights?)")),
    }
}

/// A VarBuilder where `want` (the prefix candle asks for, may be empty) maps
/// onto whichever of `candidates` the files use.
fn with_prefix(
    vb: VarBuilder<'static>,
    probe: &str,
    want: &str,
    candidates: &[&str],
) -> VarBuilder<'static> {
    let asked = |p: &str| {
        if p.is_empty() {
            probe.to_string()
        } else {
            format!("{p}.{probe}")
        }
    };
    if vb.contains_tensor(&asked(want)) {
        return vb;
    }
    for c in candidates {
        if vb.contains_tensor(&asked(c)) {
            let (want, have) = (want.to_string(), c.to_string());
            return vb.rename_f(move |name: &str| {
                let rest = if want.is_empty() {
                    Some(name)
                } else {
                    name.strip_prefix(&format!("{want}.")).or(Some(name))
                };
                match (rest, have.is_empty()) {
                    (Some(r), true) => r.to_string(),
                    (Some(r), false) => format!("{have}.{r}"),
                    (None, _) => name.to_string(),
                }
            });
        }
    }
    vb
}

struct ModernBert(m::modernbert::ModernBert);

/// A backbone with its hidden size (read from config.json).
struct Sized<B> {
    inner: B,
    hidden: usize,
}

impl<B: Backbone> Backbone for Sized<B> {
    fn forward(&mut self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        self.inner.forward(ids, mask)
    }
    fn hidden_size(&self) -> usize {
        self.hidden
    }
}

impl Backbone for ModernBert {
    fn forward(&mut self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        self.0.forward(ids, mask)
    }
    fn hidden_size(&self) -> usize {
        0
    }
}

/// Load the backbone for `arch` (config.json `model_type`).
pub(crate) fn load(
    arch: &str,
    dir: &Path,
    files: &[PathBuf],
    cfg: &Value,
    threads: usize,
) -> Result<Box<dyn Backbone>, EngineError> {
    let cfg_path = dir.join("config.json");
    for f in files {
        if !f.is_file() {
            return Err(EngineError::Io {
                path: f.clone(),
                message: "weight file not found".into(),
            });
        }
    }
    let hidden = cfg
        .get("hidden_size")
        .and_then(Value::as_u64)
        .map(|h| h as usize)
        .filter(|h| *h > 0)
        .ok_or_else(|| inval(&cfg_path, "config.json has no hidden_size"))?;
    let parse = |e: serde_json::Error| inval(&cfg_path, e);
    let path = files[0].as_path();
    // Embedding models run in f32 (small, and exactness matters more than speed).
    // SAFETY: read-only mapping of files tanto does not modify while loaded.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(files, DType::F32, &Device::Cpu) }
        .map_err(|e| inval(path, e))?;
    let boxed = |b: Box<dyn Backbone>| -> Box<dyn Backbone> { b };
    Ok(match arch {
        "bert" | "xlm-roberta" => {
            let vb = with_prefix(
                vb,
                "embeddings.word_embeddings.weight",
                "",
                &["bert", "roberta", "xlm-roberta", "model"],
            );
            boxed(Box::new(guarded(path, || {
                super::bert::Bert::load(arch, cfg, vb, threads)
            })?))
        }
        "modernbert" => {
            // transformers names it `norm_eps`; candle's config reads `layer_norm_eps`.
            let mut cfg = cfg.clone();
            if let Some(o) = cfg.as_object_mut() {
                if !o.contains_key("layer_norm_eps") {
                    let eps = o.get("norm_eps").cloned().unwrap_or(1e-5.into());
                    o.insert("layer_norm_eps".into(), eps);
                }
            }
            let c: m::modernbert::Config = serde_json::from_value(cfg).map_err(parse)?;
            let vb = with_prefix(vb, "embeddings.tok_embeddings.weight", "model", &[""]);
            let model = guarded(path, || m::modernbert::ModernBert::load(vb, &c))?;
            boxed(Box::new(Sized {
                inner: ModernBert(model),
                hidden,
            }))
        }
        "qwen2" | "qwen3" => {
            let vb = with_prefix(vb, "embed_tokens.weight", "model", &[""]);
            boxed(Box::new(guarded(path, || {
                super::decoder::Decoder::load(arch, cfg, vb)
            })?))
        }
        other => return Err(EngineError::UnsupportedArchitecture(other.to_string())),
    })
}
