//! The hand-off between Policy and Load: what to load and with which backend.

use std::path::PathBuf;

use serde::Serialize;

pub use crate::registry::Backend;

/// Weight files to load, as found by the probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Weights {
    /// One GGUF file (tokenizer, template and hyper-parameters embedded).
    Gguf { file: PathBuf },
    /// One or more safetensors shards (config.json etc. live in `LoadPlan::dir`).
    Safetensors { files: Vec<PathBuf> },
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
