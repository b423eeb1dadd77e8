//! Backbones built on candle-transformers' model code: HF safetensors (f32, f16,
//! bf16) and the GGUF architectures tanto's own llama path does not cover.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models as m;
use memmap2::Mmap;

use super::Backbone;
use crate::api::EngineError;

/// GGUF `general.architecture` values loaded through candle's quantized models.
pub const GGUF_ARCHS: &[&str] = &["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3"];

/// `config.json` `model_type` values loaded from safetensors.
pub const SAFETENSORS_ARCHS: &[&str] = &[
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "phi3",
    "gemma",
    "gemma2",
    "gemma3_text",
];

pub(crate) fn inval(path: &Path, e: impl std::fmt::Display) -> EngineError {
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

fn last_logits(t: Tensor) -> candle_core::Result<Vec<f32>> {
    let vocab = *t.dims().last().unwrap_or(&0);
    let flat = t.to_dtype(DType::F32)?.flatten_all()?;
    let n = flat.dim(0)?;
    flat.narrow(0, n - vocab, vocab)?.to_vec1::<f32>()
}

enum Inner {
    Llama(
        Box<m::llama::Llama>,
        Box<m::llama::Cache>,
        m::llama::Config,
        DType,
    ),
    Qwen2(Box<m::qwen2::ModelForCausalLM>),
    Qwen3(Box<m::qwen3::ModelForCausalLM>),
    Mistral(Box<m::mistral::Model>),
    Phi3(Box<m::phi3::Model>),
    Gemma(Box<m::gemma::Model>),
    Gemma2(Box<m::gemma2::Model>),
    Gemma3(Box<m::gemma3::Model>),
    QLlama(Box<m::quantized_llama::ModelWeights>),
    QQwen2(Box<m::quantized_qwen2::ModelWeights>),
    QQwen3(Box<m::quantized_qwen3::ModelWeights>),
    QPhi3(Box<m::quantized_phi3::ModelWeights>),
    QGemma3(Box<m::quantized_gemma3::ModelWeights>),
}

pub struct CandleModel {
    inner: Inner,
    device: Device,
    pool: Option<rayon::ThreadPool>,
    /// For GGUF models without a cache reset: how to reload.
    reload: Option<GgufSource>,
}

impl CandleModel {
    fn install<R: Send>(&mut self, f: impl FnOnce(&mut Inner, &Device) -> R + Send) -> R {
        let (inner, device) = (&mut self.inner, &self.device);
        match &self.pool {
            Some(p) => p.install(|| f(inner, device)),
            None => f(inner, device),
        }
    }

    /// Load HF safetensors shards; `model_type` from config.json (`cfg`). The
    /// config's sizes are checked against the tensors in the files, and
    /// `max_position_embeddings` is replaced by the planned `context` (candle
    /// precomputes rotary tables for that many positions).
    pub fn load_safetensors(
        dir: &Path,
        files: &[PathBuf],
        cfg: serde_json::Value,
        model_type: &str,
        threads: usize,
        context: usize,
    ) -> Result<Self, EngineError> {
        let (n_tensors, max_dim) = safetensors_extent(files)?;
        check_config(&dir.join("config.json"), &cfg, n_tensors, max_dim)?;
        let device = crate::device::select();
        let dtype = compute_dtype(files);
        for f in files {
            if !f.is_file() {
                return Err(EngineError::Io {
                    path: f.clone(),
                    message: "weight file not found".into(),
                });
            }
        }
        // SAFETY: read-only mapping of files tanto does not modify while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(files, dtype, &device) }
            .map_err(|e| inval(&files[0], e))?;
        Self::from_varbuilder(
            dir, vb, cfg, model_type, threads, context, dtype, device, &files[0],
        )
    }

    /// The float engine over tensors already in memory (MLX checkpoints
    /// dequantized at load), on `device` in `dtype`.
    #[allow(clippy::too_many_arguments)]
    pub fn load_tensors(
        dir: &Path,
        tensors: std::collections::HashMap<String, Tensor>,
        cfg: serde_json::Value,
        model_type: &str,
        threads: usize,
        context: usize,
        dtype: DType,
        device: Device,
    ) -> Result<Self, EngineError> {
        let max_dim = tensors
            .values()
            .flat_map(|t| t.dims().to_vec())
            .max()
            .unwrap_or(0) as u64;
        let cfg_path = dir.join("config.json");
        check_config(&cfg_path, &cfg, tensors.len() as u64, max_dim)?;
        let vb = VarBuilder::from_tensors(tensors, dtype, &device);
        Self::from_varbuilder(
            dir, vb, cfg, model_type, threads, context, dtype, device, &cfg_path,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn from_varbuilder(
        dir: &Path,
        vb: VarBuilder<'static>,
        mut cfg: serde_json::Value,
        model_type: &str,
        threads: usize,
        context: usize,
        dtype: DType,
        device: Device,
        path: &Path,
    ) -> Result<Self, EngineError> {
        let cfg_path = dir.join("config.json");
        if let Some(o) = cfg.as_object_mut() {
            o.insert("max_position_embeddings".into(), context.into());
            // Phi-3's LongRoPE tables split at this length; below it nothing changes.
            if let Some(orig) = o
                .get("original_max_position_embeddings")
                .and_then(|v| v.as_u64())
            {
                let cut = orig.min(context as u64);
                o.insert("original_max_position_embeddings".into(), cut.into());
            }
        }
        let cfg_bytes = serde_json::to_vec(&cfg).map_err(|e| inval(&cfg_path, e))?;
        let parse = |e: serde_json::Error| inval(&cfg_path, e);
        let pool = crate::threads::rayon_pool(threads);
        let build = || -> Result<Inner, EngineError> {
            Ok(match model_type {
                "llama" => {
                    let c: m::llama::LlamaConfig =
                        serde_json::from_slice(&cfg_bytes).map_err(parse)?;
                    let c = c.into_config(false);
                    let model = guarded(path, || m::llama::Llama::load(vb, &c))?;
                    let cache = guarded(path, || m::llama::Cache::new(true, dtype, &c, &device))?;
                    Inner::Llama(Box::new(model), Box::new(cache), c, dtype)
                }
                "qwen2" => {
                    let c: m::qwen2::Config = serde_json::from_slice(&cfg_bytes).map_err(parse)?;
                    Inner::Qwen2(Box::new(guarded(path, || {
                        m::qwen2::ModelForCausalLM::new(&c, vb)
                    })?))
                }
                "qwen3" => {
                    let c: m::qwen3::Config = serde_json::from_slice(&cfg_bytes).map_err(parse)?;
                    Inner::Qwen3(Box::new(guarded(path, || {
                        m::qwen3::ModelForCausalLM::new(&c, vb)
                    })?))
                }
                "mistral" => {
                    let c: m::mistral::Config =
                        serde_json::from_slice(&cfg_bytes).map_err(parse)?;
                    Inner::Mistral(Box::new(guarded(path, || m::mistral::Model::new(&c, vb))?))
                }
                "phi3" => {
                    let c: m::phi3::Config = serde_json::from_slice(&cfg_bytes).map_err(parse)?;
                    Inner::Phi3(Box::new(guarded(path, || m::phi3::Model::new(&c, vb))?))
                }
                "gemma" => {
                    let c: m::gemma::Config = serde_json::from_slice(&cfg_bytes).map_err(parse)?;
                    Inner::Gemma(Box::new(guarded(path, || {
                        m::gemma::Model::new(false, &c, vb)
                    })?))
                }
                "gemma2" => {
                    let c: m::gemma2::Config = serde_json::from_slice(&cfg_bytes).map_err(parse)?;
                    Inner::Gemma2(Box::new(guarded(path, || {
                        m::gemma2::Model::new(false, &c, vb)
                    })?))
                }
                "gemma3_text" => {
                    let c: m::gemma3::Config = serde_json::from_slice(&cfg_bytes).map_err(parse)?;
                    Inner::Gemma3(Box::new(guarded(path, || {
                        m::gemma3::Model::new(false, &c, vb)
                    })?))
                }
                other => return Err(EngineError::UnsupportedArchitecture(other.to_string())),
            })
        };
        let inner = match &pool {
            Some(p) => p.install(build)?,
            None => build()?,
        };
        Ok(Self {
            inner,
            device,
            pool,
            reload: None,
        })
    }

    /// Load a GGUF through candle's quantized model code; `context` (bounded by
    /// the engine) replaces the file's `<arch>.context_length`.
    pub fn load_gguf(
        path: &Path,
        arch: &str,
        mmap: Arc<Mmap>,
        threads: usize,
        context: usize,
    ) -> Result<Self, EngineError> {
        let device = crate::device::select();
        let src = GgufSource {
            path: path.to_path_buf(),
            arch: arch.to_string(),
            mmap,
            context,
        };
        let inner = load_gguf_inner(&src, &device)?;
        let reload = matches!(inner, Inner::QPhi3(_) | Inner::QGemma3(_)).then_some(src);
        Ok(Self {
            inner,
            device,
            pool: crate::threads::rayon_pool(threads),
            reload,
        })
    }
}

/// What a GGUF model is (re)built from.
#[derive(Clone)]
struct GgufSource {
    path: PathBuf,
    arch: String,
    mmap: Arc<Mmap>,
    context: usize,
}

fn load_gguf_inner(src: &GgufSource, device: &Device) -> Result<Inner, EngineError> {
    let path = src.path.as_path();
    let mut ct = crate::gguf::parse(path, &src.mmap)?;
    crate::gguf::check_tensors(path, &ct, src.mmap.len() as u64)?;
    crate::gguf::check_hparams(path, &ct, &src.arch)?;
    crate::gguf::set_context(&mut ct.metadata, &src.arch, src.context);
    let mut cur = std::io::Cursor::new(&src.mmap[..]);
    Ok(match src.arch.as_str() {
        "llama" | "mistral" => Inner::QLlama(Box::new(guarded(path, || {
            m::quantized_llama::ModelWeights::from_gguf(ct, &mut cur, device)
        })?)),
        "qwen2" => Inner::QQwen2(Box::new(guarded(path, || {
            m::quantized_qwen2::ModelWeights::from_gguf(ct, &mut cur, device)
        })?)),
        "qwen3" => Inner::QQwen3(Box::new(guarded(path, || {
            m::quantized_qwen3::ModelWeights::from_gguf(ct, &mut cur, device)
        })?)),
        "phi3" => Inner::QPhi3(Box::new(guarded(path, || {
            m::quantized_phi3::ModelWeights::from_gguf(false, ct, &mut cur, device)
        })?)),
        "gemma3" => Inner::QGemma3(Box::new(guarded(path, || {
            m::quantized_gemma3::ModelWeights::from_gguf(ct, &mut cur, device)
        })?)),
        other => return Err(EngineError::UnsupportedArchitecture(other.to_string())),
    })
}

/// Tensor count and largest dimension over the safetensors headers.
pub(crate) fn safetensors_extent(files: &[PathBuf]) -> Result<(u64, u64), EngineError> {
    use std::io::Read;
    let (mut n, mut max_dim) = (0u64, 0u64);
    for f in files {
        let io = |e: std::io::Error| EngineError::Io {
            path: f.clone(),
            message: e.to_string(),
        };
        let mut file = std::fs::File::open(f).map_err(io)?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(io)?;
        let hlen = u64::from_le_bytes(len);
        let size = file.metadata().map_err(io)?.len();
        if hlen > 100 << 20 || hlen > size.saturating_sub(8) {
            return Err(inval(f, format!("implausible header length {hlen}")));
        }
        let mut hdr = vec![0u8; hlen as usize];
        file.read_exact(&mut hdr).map_err(io)?;
        let v: serde_json::Value = serde_json::from_slice(&hdr).map_err(|e| inval(f, e))?;
        for (k, t) in v.as_object().into_iter().flatten() {
            if k == "__metadata__" {
                continue;
            }
            n += 1;
            for d in t
                .get("shape")
                .and_then(|s| s.as_array())
                .into_iter()
                .flatten()
            {
                max_dim = max_dim.max(d.as_u64().unwrap_or(0));
            }
        }
    }
    Ok((n, max_dim))
}

/// config.json sizes that drive loops and allocations must fit the weights:
/// at most one layer per tensor, no width beyond the largest tensor dimension.
pub(crate) fn check_config(
    path: &Path,
    cfg: &serde_json::Value,
    n_tensors: u64,
    max_dim: u64,
) -> Result<(), EngineError> {
    let get = |k: &str| cfg.get(k).and_then(|v| v.as_u64());
    if let Some(n) = get("num_hidden_layers") {
        if n > n_tensors {
            return Err(inval(
                path,
                format!("num_hidden_layers is {n} but the weights hold {n_tensors} tensors"),
            ));
        }
    }
    for k in [
        "hidden_size",
        "intermediate_size",
        "vocab_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
    ] {
        if let Some(v) = get(k) {
            if v > max_dim {
                return Err(inval(
                    path,
                    format!("{k} is {v}, larger than any tensor dimension ({max_dim})"),
                ));
            }
        }
    }
    Ok(())
}

/// f32 compute on CPU unless the weights are large (then keep their dtype).
pub(crate) fn compute_dtype(files: &[PathBuf]) -> DType {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    if total <= 3 << 30 {
        return DType::F32;
    }
    match files.first().and_then(|f| safetensors_dtype(f)).as_deref() {
        Some("BF16") => DType::BF16,
        Some("F16") => DType::F16,
        _ => DType::F32,
    }
}

/// dtype of the first tensor in a safetensors header.
fn safetensors_dtype(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return None;
    }
    let mut hdr = vec![0u8; n as usize];
    f.read_exact(&mut hdr).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&hdr).ok()?;
    v.as_object()?
        .iter()
        .find(|(k, _)| k.as_str() != "__metadata__")
        .and_then(|(_, t)| t.get("dtype")?.as_str().map(String::from))
}

impl Backbone for CandleModel {
    fn forward(&mut self, ids: &[u32], pos: usize) -> Result<Vec<f32>, EngineError> {
        let ids = ids.to_vec();
        self.install(move |inner, device| -> Result<Vec<f32>, EngineError> {
            let x = Tensor::new(ids.as_slice(), device)?.unsqueeze(0)?;
            let out = match inner {
                Inner::Llama(model, cache, _, _) => model.forward(&x, pos, cache)?,
                Inner::Qwen2(model) => model.forward(&x, pos)?,
                Inner::Qwen3(model) => model.forward(&x, pos)?,
                Inner::Mistral(model) => model.forward(&x, pos)?,
                Inner::Phi3(model) => model.forward(&x, pos)?,
                Inner::Gemma(model) => model.forward(&x, pos)?,
                Inner::Gemma2(model) => model.forward(&x, pos)?,
                Inner::Gemma3(model) => model.forward(&x, pos)?,
                Inner::QLlama(model) => model.forward(&x, pos)?,
                Inner::QQwen2(model) => model.forward(&x, pos)?,
                Inner::QQwen3(model) => model.forward(&x, pos)?,
                Inner::QPhi3(model) => model.forward(&x, pos)?,
                Inner::QGemma3(model) => model.forward(&x, pos)?,
            };
            Ok(last_logits(out)?)
        })
    }

    fn reset(&mut self) -> Result<(), EngineError> {
        if let Some(src) = &self.reload {
            let inner = load_gguf_inner(src, &self.device)?;
            self.inner = inner;
            return Ok(());
        }
        self.install(|inner, device| -> Result<(), EngineError> {
            match inner {
                Inner::Llama(_, cache, cfg, dtype) => {
                    **cache = m::llama::Cache::new(true, *dtype, cfg, device)?;
                }
                Inner::Qwen2(model) => model.clear_kv_cache(),
                Inner::Qwen3(model) => model.clear_kv_cache(),
                Inner::Mistral(model) => model.clear_kv_cache(),
                Inner::Phi3(model) => model.clear_kv_cache(),
                Inner::Gemma(model) => model.clear_kv_cache(),
                Inner::Gemma2(model) => model.clear_kv_cache(),
                Inner::Gemma3(model) => model.clear_kv_cache(),
                Inner::QLlama(model) => model.clear_kv_cache(),
                Inner::QQwen2(model) => model.clear_kv_cache(),
                Inner::QQwen3(model) => model.clear_kv_cache(),
                Inner::QPhi3(_) | Inner::QGemma3(_) => {}
            }
            Ok(())
        })
    }
}
