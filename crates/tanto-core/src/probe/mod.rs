//! Probe: learn what a model is from metadata only (config.json, tokenizer
//! files, safetensors/GGUF headers, the file list). Never loads tensor data.
//!
//! The probe is the single authority on format, capabilities, health and
//! runtime compatibility; list, show, health, run and serve all ask it.
//! [`probe`] runs its phases in order, one file each: `files` (listing,
//! partial downloads), `config`, `weights` (format, GGUF/safetensors headers),
//! `tokenizer`, `kind` (kind and capabilities), `health` (whole-model checks,
//! the problem list) and `runtime` (the registry's verdict).
//!
//! [`probe_resolved`] consults the on-disk probe cache ([`cache`]) first: a
//! stored result is reused only while the file listing (paths, sizes, inodes,
//! mtimes, ctimes), the folder and the build are unchanged.

pub mod cache;
mod config;
pub mod ct2;
mod dims;
pub mod embedding;
mod files;
pub mod gguf;
mod health;
mod kind;
pub mod mlx;
mod runtime;
pub mod safetensors;
mod tokenizer;
mod weights;

pub use config::context_length_from_config;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::registry::Backend;
use crate::resolve::store::CacheRepo;
use crate::resolve::{Location, Resolved};
use crate::workspace::SENTINEL_FILE;
use health::Findings;

pub use crate::registry::{Format, ModelKind};

pub const CAP_TEXT: &str = "text-generation";
pub const CAP_CHAT: &str = "chat";
pub const CAP_EMBEDDINGS: &str = "embeddings";
pub const CAP_VISION: &str = "vision";
pub const CAP_AUDIO: &str = "audio";
pub const CAP_AUDIO_TRANSLATE: &str = "audio-translate-en";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Quantization {
    /// Nominal bits per weight.
    pub bits: Option<u32>,
    pub group_size: Option<u32>,
    /// `gguf` (with `file_type`), `mlx`, or the HF `quant_method`.
    pub method: String,
    /// MLX's `mode` (`affine`, `mxfp4`, …) when the config names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// llama.cpp's file-type name (`Q4_K_M`, …) for GGUF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_type: Option<String>,
}

/// Every problem code the probe can report (stable; documented in docs/SECURITY.md
/// and the health docs).
pub const PROBLEM_CODES: &[&str] = &[
    "no_snapshot",
    "path_missing",
    "partial_download",
    "dangling_symlink",
    "not_regular_file",
    "file_too_large",
    "config_missing",
    "config_invalid",
    "implausible_metadata",
    "no_weights",
    "empty_weights",
    "lfs_pointer",
    "truncated_gguf",
    "corrupt_gguf",
    "truncated_safetensors",
    "corrupt_safetensors",
    "truncated_ct2",
    "corrupt_ct2",
    "quantization_mismatch",
    "index_invalid",
    "index_mismatch",
    "missing_shard",
    "shard_not_in_index",
    "shard_pattern",
    "index_missing",
    "tokenizer_invalid",
    "tokenizer_missing",
    "vision_processor_missing",
];

/// Every capability name.
pub const CAPABILITIES: &[&str] = &[
    CAP_TEXT,
    CAP_CHAT,
    CAP_EMBEDDINGS,
    CAP_VISION,
    CAP_AUDIO,
    CAP_AUDIO_TRANSLATE,
];

/// A name from one of the probe's fixed tables (problem codes, capabilities,
/// file kinds). An alias so serde's derive reads it through the `de_*`
/// functions below instead of borrowing from the input.
pub type Name = &'static str;

/// `s` as the matching `&'static str` of `table` (reading a cached probe back).
fn intern<'de, D: Deserializer<'de>>(
    d: D,
    table: &'static [&'static str],
) -> Result<&'static str, D::Error> {
    let s = String::deserialize(d)?;
    table
        .iter()
        .copied()
        .find(|t| *t == s)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown name {s:?}")))
}

fn de_code<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    intern(d, PROBLEM_CODES)
}

fn de_kind<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    intern(d, files::FILE_KINDS)
}

fn de_special<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    match s {
        None => Ok(None),
        Some(s) => crate::limits::FILE_TYPE_NAMES
            .iter()
            .copied()
            .find(|t| *t == s)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown file type {s:?}"))),
    }
}

fn de_caps<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<&'static str>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.into_iter()
        .map(|s| {
            CAPABILITIES
                .iter()
                .copied()
                .find(|c| *c == s)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown capability {s:?}")))
        })
        .collect()
}

/// One health problem with a stable code and a specific reason.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(deserialize_with = "de_code")]
    pub code: Name,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub healthy: bool,
    /// The first problem's message (what `reason` shows), None when healthy.
    pub reason: Option<String>,
    pub problems: Vec<Problem>,
    /// What to run to fix the first problem, when there is one thing to run.
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Runtime {
    pub compatible: bool,
    pub backend: Option<Backend>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the model folder, `/`-separated.
    pub path: String,
    /// Bytes (0 for anything but a regular file).
    pub size: u64,
    #[serde(deserialize_with = "de_kind")]
    pub kind: Name,
    pub symlink: bool,
    pub dangling: bool,
    /// Not a regular file: what it is (`fifo`, `character device`, …). Never opened.
    #[serde(default, deserialize_with = "de_special")]
    pub special: Option<Name>,
    /// Identity and times of what the entry resolves to (the probe cache's key).
    #[serde(default)]
    pub stamp: cache::Stamp,
}

/// The shape of the attention: what the KV cache costs per token.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attention {
    /// Transformer layers (`block_count`, `num_hidden_layers`).
    pub layers: u64,
    /// Key/value heads (grouped-query attention shares them).
    pub kv_heads: u64,
    /// Dimension of one head.
    pub head_dim: u64,
}

impl Attention {
    /// KV-cache bytes for `context` tokens: layers × kv_heads × head_dim ×
    /// context × 2 (K and V) × `dtype_bytes`. Saturates instead of overflowing.
    pub fn kv_cache_bytes(&self, context: u64, dtype_bytes: u64) -> u64 {
        [self.kv_heads, self.head_dim, context, 2, dtype_bytes]
            .iter()
            .fold(self.layers, |a, b| a.saturating_mul(*b))
    }
}

/// Everything the probe learned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub name: String,
    pub dir: Option<PathBuf>,
    pub format: Format,
    pub architecture: Option<String>,
    /// config.json `model_type`, or the GGUF architecture.
    pub config_model_type: Option<String>,
    pub kind: ModelKind,
    #[serde(deserialize_with = "de_caps")]
    pub capabilities: Vec<Name>,
    pub parameters: Option<u64>,
    pub quantization: Option<Quantization>,
    pub context_length: Option<u64>,
    /// Layers and KV heads, for the policy's KV-cache estimate (None when unknown).
    pub attention: Option<Attention>,
    pub dtype: Option<String>,
    pub health: Health,
    pub runtime: Runtime,
    /// All files (following symlinks).
    pub size_bytes: u64,
    /// Weight files only: what loading will map into memory.
    pub weights_bytes: u64,
    pub weight_files: Vec<PathBuf>,
    pub has_chat_template: bool,
    pub has_tokenizer: bool,
    pub last_modified: Option<SystemTime>,
    /// Embedding models: pooling, Dense/Normalize, truncation and prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<embedding::EmbeddingSpec>,
    /// MLX-quantized checkpoints: the quantization, its consistency with the
    /// tensors, and the engine path (see [`mlx`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlx: Option<mlx::MlxQuant>,
    /// CTranslate2 folders: what the `model.bin` header says (see [`ct2`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ct2: Option<ct2::Ct2Info>,
    #[serde(skip)]
    pub files: Vec<FileEntry>,
    #[serde(skip)]
    pub config: Option<Value>,
}

impl Probe {
    pub fn has(&self, cap: &str) -> bool {
        self.capabilities.contains(&cap)
    }

    /// Healthy and runnable by this build: what `list` shows without `--all`.
    pub fn runnable(&self) -> bool {
        self.health.healthy && self.runtime.compatible
    }

    /// Runnable and generates text: what the server lists under `/v1/models`.
    pub fn serves_text(&self) -> bool {
        self.runnable() && self.has(CAP_TEXT)
    }
}

/// Inputs of a probe: what resolution found.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub name: String,
    /// The model folder; None when a cache repo has no snapshot.
    pub dir: Option<PathBuf>,
    /// A single GGUF file picked by path.
    pub file: Option<PathBuf>,
    /// The cache repo (for partial-download and lock checks).
    pub repo: Option<CacheRepo>,
}

impl From<&Resolved> for ProbeTarget {
    fn from(r: &Resolved) -> Self {
        match &r.location {
            Location::Cache { repo, snapshot, .. } => ProbeTarget {
                name: r.name.clone(),
                dir: snapshot.as_ref().map(|s| s.path.clone()),
                file: None,
                repo: Some(repo.clone()),
            },
            Location::Folder { dir, .. } => ProbeTarget {
                name: r.name.clone(),
                dir: Some(dir.clone()),
                file: None,
                repo: None,
            },
            Location::File { file } => ProbeTarget {
                name: r.name.clone(),
                dir: file.parent().map(Path::to_path_buf),
                file: Some(file.clone()),
                repo: None,
            },
        }
    }
}

/// Probe a resolved model (through the default probe cache, see [`cache`]).
pub fn probe_resolved(r: &Resolved) -> Probe {
    probe(&ProbeTarget::from(r))
}

/// What every phase reads: the target, its folder and its file listing.
pub(crate) struct Scan<'a> {
    pub target: &'a ProbeTarget,
    pub dir: PathBuf,
    pub files: Vec<FileEntry>,
    /// `tanto pull org/name` for cache models: the fix for missing or broken files.
    pub pull_fix: Option<String>,
}

impl Scan<'_> {
    /// A (non-dangling) file at this relative path.
    pub fn exists(&self, rel: &str) -> bool {
        self.files.iter().any(|f| f.path == rel && !f.dangling)
    }
    pub fn dangling(&self) -> Vec<&str> {
        self.files
            .iter()
            .filter(|f| f.dangling)
            .map(|f| f.path.as_str())
            .collect()
    }
}

impl Probe {
    /// A probe that has learned nothing yet.
    fn empty(t: &ProbeTarget) -> Self {
        Probe {
            name: t.name.clone(),
            dir: t.dir.clone(),
            format: Format::Unknown,
            architecture: None,
            config_model_type: None,
            kind: ModelKind::Base,
            capabilities: Vec::new(),
            parameters: None,
            quantization: None,
            context_length: None,
            attention: None,
            dtype: None,
            health: Health {
                healthy: false,
                reason: None,
                problems: Vec::new(),
                fix: None,
            },
            runtime: Runtime {
                compatible: false,
                backend: None,
                reason: None,
            },
            size_bytes: 0,
            weights_bytes: 0,
            weight_files: Vec::new(),
            has_chat_template: false,
            has_tokenizer: false,
            last_modified: None,
            embedding: None,
            mlx: None,
            ct2: None,
            files: Vec::new(),
            config: None,
        }
    }
}

/// Probe a model folder or file through the default probe cache
/// ([`cache::ProbeCache::default_cache`]; none when disabled).
pub fn probe(t: &ProbeTarget) -> Probe {
    probe_with(t, cache::ProbeCache::default_cache())
}

/// Probe without any cache: every phase runs.
pub fn probe_uncached(t: &ProbeTarget) -> Probe {
    probe_with(t, None)
}

/// Probe a model folder or file: the phases in order, each in its own file.
/// With a cache, a stored result whose key still matches is returned instead,
/// and a fresh result is stored.
pub fn probe_with(t: &ProbeTarget, cache: Option<&cache::ProbeCache>) -> Probe {
    let mut p = Probe::empty(t);
    let mut f = Findings::default();
    let Some((dir, dir_stamp)) = health::model_dir(t, &mut p, &mut f) else {
        return health::finish(p, f);
    };
    if let Some(hit) = cache.and_then(|c| c.lookup_unlisted(t, &dir, dir_stamp)) {
        return hit;
    }
    let files = files::list(&dir, t.file.as_deref());
    let key = cache.map(|c| c.key(t, &dir, dir_stamp, &files));
    if let (Some(c), Some(k)) = (cache, &key) {
        if let Some(hit) = c.lookup(k, &files) {
            return hit;
        }
    }
    let p = probe_files(t, p, f, dir, files);
    if let (Some(c), Some(k)) = (cache, key) {
        c.store(k, &p);
    }
    p
}

/// The phases after the listing.
fn probe_files(
    t: &ProbeTarget,
    mut p: Probe,
    mut f: Findings,
    dir: PathBuf,
    files: Vec<FileEntry>,
) -> Probe {
    p.size_bytes = files.iter().map(|e| e.size).sum();
    let s = Scan {
        target: t,
        dir,
        files,
        pull_fix: t
            .repo
            .as_ref()
            .map(|r| format!("tanto pull {} --force", r.repo_id)),
    };
    files::check_downloads(&s, &mut f);

    let candidates = weights::candidates(&s.files);
    let cfg = config::read(&s, &mut p, &mut f);
    let lfs = weights::select(&s, &candidates, &cfg, &mut p, &mut f);
    let headers = weights::read_headers(&s, &candidates, &cfg, &lfs, &mut p, &mut f);
    let tok = tokenizer::read(&s, &mut f);
    weights::describe(&headers, &cfg.cfg, &mut p);
    if p.format == Format::Ctranslate2 && !lfs.iter().any(|l| l == "model.bin") {
        ct2::read(&s, &mut p, &mut f);
    }
    if p.format == Format::MlxSafetensors {
        p.mlx = mlx::read(&cfg.cfg, &headers.tensors, &mut f);
    }
    let gguf_name = candidates.ggufs.first().map_or("", |g| g.path.as_str());
    dims::check(headers.gguf.as_ref(), gguf_name, &cfg.cfg, &mut p, &mut f);
    tokenizer::apply(&headers, &tok, &mut p, &mut f);

    let k = kind::detect(&s, &cfg.cfg, &mut p);
    if p.kind == ModelKind::Embedding {
        p.embedding = Some(embedding::read(&s, &cfg.cfg, &p, &mut f));
    }
    tokenizer::check(&s, &tok, &k, cfg.valid, &p, &mut f);
    kind::check_vision(&s, &k, &cfg.cfg, &mut f);

    health::interrupted_pull(t, &mut f);
    p.files = s.files;
    let mut p = health::finish(p, f);
    p.runtime = runtime::compat(&p, k.modality(p.kind));
    p
}

/// A workspace folder's sentinel file, if any (for callers that need the path).
pub fn sentinel_path(dir: &Path) -> PathBuf {
    dir.join(SENTINEL_FILE)
}
