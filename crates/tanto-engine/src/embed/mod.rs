//! Embeddings: text in, one vector per input out, exactly as
//! sentence-transformers computes it (tokenize with truncation at
//! `max_seq_length`, encoder, pooling, optional Dense, optional L2).
//!
//! The pipeline comes from the probe's [`EmbeddingSpec`], never from the model
//! name. Inputs are sorted by length and packed into batches under a token
//! budget that counts padding ([`batch::plan`]); attention masks keep padding
//! out of every result, so a text embedded alone or in a batch of 64 gives the
//! same vector (within float rounding; ADR 007).
//!
//! One file per architecture family: [`bert`] (tanto's own BERT/XLM-RoBERTa
//! encoder), [`encoders`] (candle's ModernBERT) and [`decoder`] (Qwen2/Qwen3
//! without a KV cache).

pub mod batch;
pub mod bert;
pub mod decoder;
pub mod encoders;
pub mod pooling;

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use tanto_core::plan::{LoadPlan, Weights};
pub use tanto_core::probe::embedding::{EmbeddingSpec, InputType, Pooling};
use tanto_core::registry::Backend;

use crate::api::{EngineError, LoadOptions};
use crate::tokenizer::TextTokenizer;

/// Padded tokens per forward pass (batch size × longest input). Bounds the
/// working set: attention scores are batch × heads × len² floats.
pub const DEFAULT_TOKEN_BUDGET: usize = 2_048;
/// Most inputs in one forward pass.
pub const MAX_BATCH: usize = 128;

/// One input: text, or token ids of the model's own vocabulary (used as given,
/// no special tokens added, truncated at `max_seq_length`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedInput {
    Text(String),
    Tokens(Vec<u32>),
}

/// An input ready for the encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedInput {
    pub ids: Vec<u32>,
    /// Leading tokens left out of the pooling (`include_prompt: false`).
    pub pooling_skip: usize,
    /// Tokens cut off by truncation at `max_seq_length`.
    pub truncated_tokens: usize,
}

/// Facts about a loaded embedding model.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingModelInfo {
    pub name: String,
    pub architecture: String,
    /// Length of every output vector.
    pub dimensions: usize,
    pub max_seq_length: usize,
    pub vocab_size: usize,
    pub pooling: String,
    pub normalize: bool,
    pub matryoshka: bool,
    /// The backbone and its threads, e.g. `tanto-native encoder (2 threads)`.
    pub backend: String,
    pub load_time: Duration,
}

/// A loaded embedding model. `&mut self`: one batch at a time; the server
/// queues requests in front of it.
pub trait EmbeddingModel: Send {
    fn info(&self) -> &EmbeddingModelInfo;

    /// The pipeline read by the probe.
    fn spec(&self) -> &EmbeddingSpec;

    /// Tokenize inputs with the prompt for `input_type` / `instruct`.
    fn encode(
        &self,
        inputs: &[EmbedInput],
        input_type: InputType,
        instruct: Option<&str>,
    ) -> Result<Vec<EncodedInput>, EngineError>;

    /// Vectors for encoded inputs, in input order (batched internally).
    fn embed_encoded(&mut self, inputs: &[EncodedInput]) -> Result<Vec<Vec<f32>>, EngineError>;

    /// [`encode`](EmbeddingModel::encode), then
    /// [`embed_encoded`](EmbeddingModel::embed_encoded).
    fn embed(
        &mut self,
        inputs: &[EmbedInput],
        input_type: InputType,
        instruct: Option<&str>,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let enc = self.encode(inputs, input_type, instruct)?;
        self.embed_encoded(&enc)
    }
}

/// A forward pass over a padded batch: ids and mask `(batch, len)` u32, hidden
/// states `(batch, len, hidden)` out.
pub(crate) trait Backbone: Send {
    fn forward(&mut self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor>;
    fn hidden_size(&self) -> usize;
    /// Padded tokens per forward pass that suit this backbone.
    fn token_budget(&self) -> usize {
        DEFAULT_TOKEN_BUDGET
    }
    /// Whose code runs the forward pass (for `info().backend`).
    fn engine_name(&self) -> &'static str {
        "candle"
    }
}

/// Load the embedding model the policy planned, with the probe's spec.
pub fn load_embedding_model(
    plan: &LoadPlan,
    spec: &EmbeddingSpec,
    opts: &LoadOptions,
) -> Result<Box<dyn EmbeddingModel>, EngineError> {
    Ok(Box::new(Embedder::load(plan, spec, opts)?))
}

/// The one implementation: tokenizer + backbone + pooling/Dense/Normalize.
pub struct Embedder {
    info: EmbeddingModelInfo,
    spec: EmbeddingSpec,
    tokenizer: tokenizers::Tokenizer,
    backbone: Box<dyn Backbone>,
    dense: Vec<pooling::Dense>,
    pad_id: u32,
    max_len: usize,
    pool: Option<rayon::ThreadPool>,
    token_budget: usize,
}

fn inval(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidModel {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl Embedder {
    pub fn load(
        plan: &LoadPlan,
        spec: &EmbeddingSpec,
        opts: &LoadOptions,
    ) -> Result<Self, EngineError> {
        let t0 = Instant::now();
        let files = match (&plan.backend, &plan.weights) {
            (Backend::Embeddings, Weights::Safetensors { files }) if !files.is_empty() => files,
            (b, _) => {
                return Err(EngineError::UnsupportedArchitecture(format!(
                    "backend {} with these weights is not the embeddings backend",
                    b.as_str()
                )))
            }
        };
        let cfg_path = plan.dir.join("config.json");
        let cfg = crate::tokenizer::read_json_opt(&cfg_path)?.ok_or_else(|| EngineError::Io {
            path: cfg_path.clone(),
            message: "config.json not found".into(),
        })?;
        let threads = opts
            .threads
            .filter(|&t| t > 0)
            .unwrap_or_else(crate::threads::default_threads);
        let pool = crate::threads::rayon_pool(threads);
        let arch = plan.architecture.clone();
        let build = || encoders::load(&arch, &plan.dir, files, &cfg, threads);
        let backbone = match &pool {
            Some(p) => p.install(build)?,
            None => build()?,
        };
        let hidden = backbone.hidden_size();
        let backbone_budget = backbone.token_budget();
        let mut dense = Vec::new();
        let mut width = hidden * spec.pooling.len().max(1);
        for d in &spec.dense {
            let layer = pooling::Dense::load(&plan.dir, d)?;
            if d.in_features != width {
                return Err(inval(
                    &plan.dir.join(&d.path).join("config.json"),
                    format!(
                        "Dense in_features is {} but the pooled vector has {width} values",
                        d.in_features
                    ),
                ));
            }
            width = d.out_features;
            dense.push(layer);
        }
        let tok = TextTokenizer::from_dir(&plan.dir).map_err(|e| match e {
            EngineError::Tokenizer(m) => inval(&plan.dir.join("tokenizer.json"), m),
            other => other,
        })?;
        let mut tokenizer = tok.inner().clone();
        let positions = cfg
            .get("max_position_embeddings")
            .and_then(|v| v.as_u64())
            .map(|v| v as usize);
        let max_len = spec
            .max_seq_length
            .or(positions)
            .unwrap_or(512)
            .min(positions.unwrap_or(usize::MAX))
            .max(1);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| inval(&plan.dir.join("tokenizer.json"), e))?;
        tokenizer.with_padding(None);
        let pad_id = cfg
            .get("pad_token_id")
            .and_then(|v| v.as_u64())
            .map(|v| v as u32)
            .unwrap_or(0);
        let vocab_size = tokenizer
            .get_vocab_size(true)
            .max(cfg.get("vocab_size").and_then(|v| v.as_u64()).unwrap_or(0) as usize);
        let info = EmbeddingModelInfo {
            name: plan.name.clone(),
            architecture: arch,
            dimensions: width,
            max_seq_length: max_len,
            vocab_size: cfg
                .get("vocab_size")
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .unwrap_or(vocab_size),
            pooling: spec.pooling_label(),
            normalize: spec.normalize,
            matryoshka: spec.matryoshka,
            backend: format!("{} ({threads} threads)", backbone.engine_name()),
            load_time: t0.elapsed(),
        };
        Ok(Self {
            info,
            spec: spec.clone(),
            tokenizer,
            backbone,
            dense,
            pad_id,
            max_len,
            pool,
            token_budget: backbone_budget,
        })
    }

    /// Padded tokens per forward pass (tests and benchmarks vary it).
    pub fn set_token_budget(&mut self, budget: usize) {
        self.token_budget = budget.max(1);
    }

    fn tokenize(&self, texts: Vec<String>) -> Result<Vec<tokenizers::Encoding>, EngineError> {
        let tok = &self.tokenizer;
        let run = || tok.encode_batch(texts, true);
        let out = match &self.pool {
            Some(p) => p.install(run),
            None => run(),
        };
        out.map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    fn run_batch(&mut self, batch: &[&EncodedInput]) -> candle_core::Result<Vec<Vec<f32>>> {
        let len = batch.iter().map(|e| e.ids.len()).max().unwrap_or(0).max(1);
        let n = batch.len();
        let mut ids = vec![self.pad_id; n * len];
        let mut mask = vec![0u32; n * len];
        for (r, e) in batch.iter().enumerate() {
            ids[r * len..r * len + e.ids.len()].copy_from_slice(&e.ids);
            for m in &mut mask[r * len..r * len + e.ids.len()] {
                *m = 1;
            }
        }
        let dev = Device::Cpu;
        let ids_t = Tensor::from_vec(ids, (n, len), &dev)?;
        let mask_t = Tensor::from_vec(mask, (n, len), &dev)?;
        let hidden = self.backbone.forward(&ids_t, &mask_t)?;
        let hidden = hidden.to_dtype(DType::F32)?;
        let h = hidden.dim(2)?;
        let flat = hidden.flatten_all()?.to_vec1::<f32>()?;
        let mut pooled = Vec::with_capacity(n);
        for (r, e) in batch.iter().enumerate() {
            let rows = &flat[r * len * h..r * len * h + e.ids.len() * h];
            pooled.push(pooling::pool(&self.spec.pooling, rows, h, e.pooling_skip));
        }
        if !self.dense.is_empty() {
            let width = pooled.first().map_or(0, Vec::len);
            let mut x = Tensor::from_vec(pooled.concat(), (n, width), &dev)?;
            for d in &self.dense {
                x = d.forward(&x)?;
            }
            pooled = x.to_vec2::<f32>()?;
        }
        if self.spec.normalize {
            for v in &mut pooled {
                pooling::l2_normalize(v);
            }
        }
        let out = pooled;
        Ok(out)
    }
}

impl EmbeddingModel for Embedder {
    fn info(&self) -> &EmbeddingModelInfo {
        &self.info
    }

    fn spec(&self) -> &EmbeddingSpec {
        &self.spec
    }

    fn encode(
        &self,
        inputs: &[EmbedInput],
        input_type: InputType,
        instruct: Option<&str>,
    ) -> Result<Vec<EncodedInput>, EngineError> {
        let prompt = self
            .spec
            .prompt(input_type, instruct)
            .map_err(EngineError::Validation)?;
        let lower = |s: String| {
            if self.spec.do_lower_case {
                s.to_lowercase()
            } else {
                s
            }
        };
        // sentence-transformers masks `len(tokenize(prompt)) - 1` leading
        // tokens (the prompt and the CLS, not the trailing SEP/EOS).
        let pooling_skip = if !self.spec.include_prompt && !prompt.is_empty() {
            let enc = self.tokenize(vec![lower(prompt.clone())])?;
            enc.first()
                .map_or(0, |e| e.get_ids().len().saturating_sub(1))
        } else {
            0
        };
        let mut out: Vec<Option<EncodedInput>> = vec![None; inputs.len()];
        let mut texts = Vec::new();
        let mut text_at = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            match input {
                EmbedInput::Text(t) => {
                    texts.push(lower(format!("{prompt}{t}")));
                    text_at.push(i);
                }
                EmbedInput::Tokens(ids) => {
                    if ids.is_empty() {
                        return Err(EngineError::Validation(format!(
                            "input {i} is an empty token array"
                        )));
                    }
                    if let Some(bad) = ids.iter().find(|&&t| t as usize >= self.info.vocab_size) {
                        return Err(EngineError::Validation(format!(
                            "input {i}: token id {bad} is outside the vocabulary (size {})",
                            self.info.vocab_size
                        )));
                    }
                    let keep = ids.len().min(self.max_len);
                    out[i] = Some(EncodedInput {
                        ids: ids[..keep].to_vec(),
                        pooling_skip: 0,
                        truncated_tokens: ids.len() - keep,
                    });
                }
            }
        }
        if !texts.is_empty() {
            for (enc, i) in self.tokenize(texts)?.into_iter().zip(text_at) {
                let cut: usize = enc.get_overflowing().iter().map(|o| o.len()).sum();
                let ids = enc.get_ids().to_vec();
                if ids.is_empty() {
                    return Err(EngineError::Validation(format!("input {i} has no tokens")));
                }
                out[i] = Some(EncodedInput {
                    pooling_skip: pooling_skip.min(ids.len()),
                    ids,
                    truncated_tokens: cut,
                });
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn embed_encoded(&mut self, inputs: &[EncodedInput]) -> Result<Vec<Vec<f32>>, EngineError> {
        let lens: Vec<usize> = inputs.iter().map(|e| e.ids.len()).collect();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); inputs.len()];
        for b in batch::plan(&lens, self.token_budget, MAX_BATCH) {
            let rows: Vec<&EncodedInput> = b.iter().map(|&i| &inputs[i]).collect();
            let pool = self.pool.take();
            let res = match &pool {
                Some(p) => p.install(|| self.run_batch(&rows)),
                None => self.run_batch(&rows),
            };
            self.pool = pool;
            let vecs = res.map_err(|e| EngineError::Inference(e.to_string()))?;
            for (i, v) in b.into_iter().zip(vecs) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}
