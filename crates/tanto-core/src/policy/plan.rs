//! The hand-off between Policy and Load: what to load and with which backend.
//! [`load_plan`] builds it from a probe and the backend the policy chose.

use std::path::PathBuf;

use serde::Serialize;

use crate::probe::mlx::MlxPath;
use crate::probe::{Format, Probe};
pub use crate::registry::Backend;

/// Weight files to load, as found by the probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Weights {
    /// One GGUF file (tokenizer, template and hyper-parameters embedded).
    Gguf { file: PathBuf },
    /// One or more safetensors shards (config.json etc. live in `LoadPlan::dir`).
    Safetensors { files: Vec<PathBuf> },
    /// MLX affine-quantized safetensors shards, and how the probe decided to
    /// run them (repacked for the native kernels, or dequantized to `dtype`).
    Mlx {
        files: Vec<PathBuf>,
        path: MlxPath,
        /// The float dtype for [`MlxPath::Dequantize`] (`float32`/`bfloat16`).
        dtype: Option<String>,
    },
    /// A CTranslate2 `model.bin` (the folder's config.json, tokenizer.json and
    /// vocabulary file live in `LoadPlan::dir`).
    Ctranslate2 { file: PathBuf },
}

/// Everything the engine needs to load a model; produced by the policy when it allows.
#[derive(Debug, Clone, Serialize)]
pub struct LoadPlan {
    /// Display name of the model (org/name, or the workspace path).
    pub name: String,
    /// The model folder (snapshot or workspace): config.json, tokenizer files.
    pub dir: PathBuf,
    pub backend: Backend,
    pub weights: Weights,
    /// Architecture key as the registry spells it (`llama`, `qwen2`, `bert`, …).
    pub architecture: String,
    /// Context length from metadata, if known.
    pub context_length: Option<usize>,
}

/// The load plan for `backend`: the probe's folder and weight files (a GGUF
/// loads its first file only). `None` without a folder or weights.
pub fn load_plan(p: &Probe, backend: Backend) -> Option<LoadPlan> {
    let dir = p.dir.clone()?;
    let weights = if p.format == Format::Gguf {
        Weights::Gguf {
            file: p.weight_files.first()?.clone(),
        }
    } else if p.format == Format::Ctranslate2 {
        Weights::Ctranslate2 {
            file: p.weight_files.first()?.clone(),
        }
    } else if let (Format::MlxSafetensors, Some(q)) = (p.format, &p.mlx) {
        Weights::Mlx {
            files: p.weight_files.clone(),
            path: q.path,
            dtype: q.dequantized_dtype.clone(),
        }
    } else {
        Weights::Safetensors {
            files: p.weight_files.clone(),
        }
    };
    Some(LoadPlan {
        name: p.name.clone(),
        dir,
        backend,
        weights,
        architecture: p
            .config_model_type
            .clone()
            .or_else(|| p.architecture.clone())
            .unwrap_or_default()
            .to_ascii_lowercase(),
        context_length: p.context_length.map(|c| c as usize),
    })
}
