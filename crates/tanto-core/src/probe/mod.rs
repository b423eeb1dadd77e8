//! Probe: learn what a model is from metadata only (config.json, tokenizer
//! files, safetensors/GGUF headers, the file list). Never loads tensor data.
//!
//! The probe is the single authority on format, capabilities, health and
//! runtime compatibility; list, show, health, run and serve all ask it.

pub mod gguf;
pub mod safetensors;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::policy::plan::{Backend, LoadPlan, Weights};
use crate::registry;
use crate::resolve::store::{CacheRepo, SENTINEL_FILE};
use crate::resolve::{Location, Resolved};
use gguf::{GgufError, GgufHeader};
use safetensors::SafetensorsError;

/// Weight format, named consistently everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Gguf,
    Safetensors,
    MlxSafetensors,
    PytorchBin,
    Onnx,
    Unknown,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Gguf => "gguf",
            Format::Safetensors => "safetensors",
            Format::MlxSafetensors => "mlx-safetensors",
            Format::PytorchBin => "pytorch-bin",
            Format::Onnx => "onnx",
            Format::Unknown => "unknown",
        }
    }
    /// mlx-knife's `framework` field: MLX | GGUF | PyTorch | ONNX | Unknown.
    pub fn framework(self) -> &'static str {
        match self {
            Format::Gguf => "GGUF",
            Format::Safetensors | Format::PytorchBin => "PyTorch",
            Format::MlxSafetensors => "MLX",
            Format::Onnx => "ONNX",
            Format::Unknown => "Unknown",
        }
    }
}

/// mlx-knife's `model_type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Chat,
    Base,
    Embedding,
    Audio,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Chat => "chat",
            ModelKind::Base => "base",
            ModelKind::Embedding => "embedding",
            ModelKind::Audio => "audio",
        }
    }
}

pub const CAP_TEXT: &str = "text-generation";
pub const CAP_CHAT: &str = "chat";
pub const CAP_EMBEDDINGS: &str = "embeddings";
pub const CAP_VISION: &str = "vision";
pub const CAP_AUDIO: &str = "audio";
pub const CAP_AUDIO_TRANSLATE: &str = "audio-translate-en";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Quantization {
    /// Nominal bits per weight.
    pub bits: Option<u32>,
    pub group_size: Option<u32>,
    /// `gguf` (with `file_type`), `mlx`, or the HF `quant_method`.
    pub method: String,
    /// llama.cpp's file-type name (`Q4_K_M`, …) for GGUF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_type: Option<String>,
}

/// One health problem with a stable code and a specific reason.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub healthy: bool,
    /// The first problem's message (what `reason` shows), None when healthy.
    pub reason: Option<String>,
    pub problems: Vec<Problem>,
    /// What to run to fix the first problem, when there is one thing to run.
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Runtime {
    pub compatible: bool,
    pub backend: Option<Backend>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    /// Path relative to the model folder, `/`-separated.
    pub path: String,
    pub size: u64,
    pub kind: &'static str,
    pub symlink: bool,
    pub dangling: bool,
}

/// Everything the probe learned.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub name: String,
    pub dir: Option<PathBuf>,
    pub format: Format,
    pub architecture: Option<String>,
    /// config.json `model_type`, or the GGUF architecture.
    pub config_model_type: Option<String>,
    pub kind: ModelKind,
    pub capabilities: Vec<&'static str>,
    pub parameters: Option<u64>,
    pub quantization: Option<Quantization>,
    pub context_length: Option<u64>,
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
    #[serde(skip)]
    pub files: Vec<FileEntry>,
    #[serde(skip)]
    pub config: Option<Value>,
}

impl Probe {
    pub fn has(&self, cap: &str) -> bool {
        self.capabilities.contains(&cap)
    }

    /// The load plan for the backend the runtime check selected.
    pub fn load_plan(&self) -> Option<LoadPlan> {
        let backend = self.runtime.backend?;
        let dir = self.dir.clone()?;
        let weights = if self.format == Format::Gguf {
            Weights::Gguf {
                file: self.weight_files.first()?.clone(),
            }
        } else {
            Weights::Safetensors {
                files: self.weight_files.clone(),
            }
        };
        Some(LoadPlan {
            name: self.name.clone(),
            dir,
            backend,
            weights,
            architecture: self
                .config_model_type
                .clone()
                .or_else(|| self.architecture.clone())
                .unwrap_or_default()
                .to_ascii_lowercase(),
            context_length: self.context_length.map(|c| c as usize),
        })
    }
}

// ---------------------------------------------------------------------------
// Detection tables

/// Vision-language model types (config.json `model_type`).
const VISION_TYPES: &[&str] = &[
    "llava",
    "llava_next",
    "llava_onevision",
    "pixtral",
    "qwen2_vl",
    "qwen2_5_vl",
    "qwen3_vl",
    "phi3_v",
    "mllama",
    "paligemma",
    "idefics",
    "idefics2",
    "idefics3",
    "smolvlm",
    "gemma3",
    "mistral3",
    "moondream1",
];
/// Speech-to-text model types (substring).
const STT_TYPES: &[&str] = &["whisper", "voxtral", "vibevoice"];
/// Encoder embedders.
const ENCODER_EMBEDDER_TYPES: &[&str] = &[
    "bert",
    "xlm-roberta",
    "roberta",
    "modernbert",
    "nomic_bert",
    "distilbert",
    "mpnet",
    "nomic-bert",
    "jina_bert",
];
/// sentence-transformers marker files.
const ST_FILES: &[&str] = &[
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
];

fn file_kind(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower == "config.json" {
        "config"
    } else if lower.ends_with(".safetensors")
        || lower.ends_with(".bin")
        || lower.ends_with(".gguf")
        || lower.ends_with(".onnx")
        || lower.ends_with(".pt")
        || lower.ends_with(".pth")
    {
        "weights"
    } else if lower.contains("tokenizer")
        || lower == "vocab.txt"
        || lower == "vocab.json"
        || lower == "merges.txt"
    {
        "tokenizer"
    } else if lower.ends_with(".json") || lower.ends_with(".jinja") {
        "config"
    } else if lower == "readme.md" {
        "readme"
    } else {
        "other"
    }
}

/// Walk a model folder (following symlinks for sizes; skipping `.git`, `.hf_cache`, etc.).
fn scan_files(root: &Path) -> Vec<FileEntry> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            // The entry's type comes with the directory listing (no syscall);
            // one stat follows symlinks for the size.
            let Ok(ft) = e.file_type() else {
                continue;
            };
            let symlink = ft.is_symlink();
            match fs::metadata(e.path()) {
                Ok(m) if m.is_dir() => {
                    if name.starts_with('.') || name == "__pycache__" {
                        continue;
                    }
                    stack.push((e.path(), rel));
                }
                Ok(m) => out.push(FileEntry {
                    kind: file_kind(&name),
                    path: rel,
                    size: m.len(),
                    symlink,
                    dangling: false,
                }),
                Err(_) if symlink => out.push(FileEntry {
                    kind: file_kind(&name),
                    path: rel,
                    size: 0,
                    symlink: true,
                    dangling: true,
                }),
                Err(_) => {}
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn read_json(path: &Path) -> Option<Result<Value, String>> {
    let bytes = fs::read(path).ok()?;
    Some(serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn positive_int(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().filter(|n| *n > 0),
        Value::String(s) => s.trim().parse().ok().filter(|n: &u64| *n > 0),
        _ => None,
    }
}

/// First positive context-length field, top level then `text_config`.
pub fn context_length_from_config(cfg: &Value) -> Option<u64> {
    const KEYS: &[&str] = &[
        "max_position_embeddings",
        "n_positions",
        "context_length",
        "max_sequence_length",
        "seq_len",
    ];
    for scope in [Some(cfg), cfg.get("text_config")].into_iter().flatten() {
        for k in KEYS {
            if let Some(n) = scope.get(*k).and_then(positive_int) {
                return Some(n);
            }
        }
    }
    None
}

const LFS_MARKER: &[u8] = b"version https://git-lfs.github.com/spec/v1";

/// Could this file be a Git LFS pointer (~130 bytes: version, `oid sha256:<64 hex>`,
/// size)? Only files LFS would track are read — weights, tokenizer files and other
/// binaries, not JSON configs (parsed anyway) or READMEs — keeping `list` to a
/// handful of reads per model.
fn may_be_lfs_pointer(f: &FileEntry) -> bool {
    !f.dangling
        && (100..1024).contains(&f.size)
        && f.kind != "config"
        && f.kind != "readme"
        // Parsed (and reported as invalid JSON) on its own.
        && f.path != "tokenizer_config.json"
}

fn is_lfs_pointer(path: &Path, size: u64) -> bool {
    if size >= 1024 {
        return false;
    }
    fs::read(path)
        .map(|b| b.windows(LFS_MARKER.len()).any(|w| w == LFS_MARKER))
        .unwrap_or(false)
}

fn shard_pattern(name: &str) -> Option<(u32, u32)> {
    // model-00001-of-00003.safetensors
    let base = name.rsplit('/').next()?;
    let rest = base.strip_suffix(".safetensors")?;
    let (head, total) = rest.rsplit_once("-of-")?;
    let idx = head.rsplit('-').next()?;
    if idx.len() != 5 || total.len() != 5 {
        return None;
    }
    Some((idx.parse().ok()?, total.parse().ok()?))
}

/// A non-empty `chat_template` (string, or a list of named templates).
fn has_template_value(v: &Value) -> bool {
    match v.get("chat_template") {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    }
}

/// A safetensors dtype (`BF16`) under the name config.json's `torch_dtype` uses
/// (`bfloat16`), so `dtype` reads the same whichever source it came from.
fn torch_dtype_name(st: &str) -> String {
    match st {
        "F64" => "float64",
        "F32" => "float32",
        "F16" => "float16",
        "BF16" => "bfloat16",
        "I64" => "int64",
        "I32" => "int32",
        "I16" => "int16",
        "I8" => "int8",
        "U8" => "uint8",
        "BOOL" => "bool",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
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

/// Probe a resolved model.
pub fn probe_resolved(r: &Resolved) -> Probe {
    probe(&ProbeTarget::from(r))
}

struct Ctx {
    problems: Vec<Problem>,
    fix: Option<String>,
}

impl Ctx {
    fn fail(&mut self, code: &'static str, message: impl Into<String>) {
        self.problems.push(Problem {
            code,
            message: message.into(),
        });
    }
    fn fail_fix(&mut self, code: &'static str, message: impl Into<String>, fix: String) {
        if self.problems.is_empty() {
            self.fix = Some(fix);
        }
        self.fail(code, message);
    }
}

/// Probe a model folder or file.
pub fn probe(t: &ProbeTarget) -> Probe {
    let mut ctx = Ctx {
        problems: Vec::new(),
        fix: None,
    };
    let mut p = Probe {
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
        files: Vec::new(),
        config: None,
    };

    let pull_fix = t.repo.as_ref().map(|r| format!("tanto pull {}", r.repo_id));

    let Some(dir) = t.dir.clone() else {
        let msg = match &t.repo {
            Some(r) if !r.dir.join("snapshots").is_dir() => "No snapshots directory found",
            _ => "No snapshots found",
        };
        match pull_fix {
            Some(f) => ctx.fail_fix("no_snapshot", msg, f),
            None => ctx.fail("no_snapshot", msg),
        }
        return finish(p, ctx);
    };
    let dir_meta = match fs::metadata(&dir) {
        Ok(m) if m.is_dir() => m,
        _ => {
            ctx.fail("path_missing", "Model path does not exist");
            return finish(p, ctx);
        }
    };
    p.last_modified = dir_meta.modified().ok();

    // ---- files
    let mut files = scan_files(&dir);
    if let Some(f) = &t.file {
        // A lone GGUF: its folder may hold unrelated files; consider only it.
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.retain(|e| e.path == name);
    }
    p.size_bytes = files.iter().map(|f| f.size).sum();
    let exists = |n: &str| files.iter().any(|f| f.path == n && !f.dangling);

    // ---- partial downloads and dangling links
    if let Some(repo) = &t.repo {
        let inc = repo.incomplete_blobs();
        if !inc.is_empty() {
            let names: Vec<String> = inc
                .iter()
                .filter_map(|p| {
                    p.file_name()
                        .map(|n| format!("blobs/{}", n.to_string_lossy()))
                })
                .collect();
            ctx.fail_fix(
                "partial_download",
                format!(
                    "Partial download: {} incomplete file(s) ({}); resume with `tanto pull {}`",
                    inc.len(),
                    names.join(", "),
                    repo.repo_id
                ),
                format!("tanto pull {}", repo.repo_id),
            );
        }
    }
    let partial: Vec<&str> = files
        .iter()
        .filter(|f| {
            let l = f.path.to_ascii_lowercase();
            l.ends_with(".incomplete") || l.ends_with(".partial") || l.ends_with(".tmp")
        })
        .map(|f| f.path.as_str())
        .collect();
    if !partial.is_empty() {
        ctx.fail(
            "partial_download",
            format!("Partial download marker detected: {}", partial.join(", ")),
        );
    }
    let dangling: Vec<&str> = files
        .iter()
        .filter(|f| f.dangling)
        .map(|f| f.path.as_str())
        .collect();
    if !dangling.is_empty() {
        let msg = format!(
            "Dangling symlink(s), target blob missing: {}",
            dangling.join(", ")
        );
        match &pull_fix {
            Some(f) => ctx.fail_fix("dangling_symlink", msg, f.clone()),
            None => ctx.fail("dangling_symlink", msg),
        }
    }

    // ---- weights
    let top = |f: &&FileEntry| !f.path.contains('/');
    let by_ext = |ext: &str| -> Vec<&FileEntry> {
        let all: Vec<&FileEntry> = files
            .iter()
            .filter(|f| f.path.to_ascii_lowercase().ends_with(ext) && !f.dangling)
            .collect();
        let tops: Vec<&FileEntry> = all.iter().copied().filter(top).collect();
        if tops.is_empty() {
            all
        } else {
            tops
        }
    };
    let ggufs: Vec<&FileEntry> = by_ext(".gguf")
        .into_iter()
        .filter(|f| {
            !f.path
                .rsplit('/')
                .next()
                .unwrap_or("")
                .starts_with("mmproj")
        })
        .collect();
    let sts = by_ext(".safetensors");
    let bins: Vec<&FileEntry> = by_ext(".bin")
        .into_iter()
        .filter(|f| {
            let n = f.path.rsplit('/').next().unwrap_or("");
            n.starts_with("pytorch_model") || n.starts_with("model")
        })
        .collect();
    let onnx = by_ext(".onnx");

    // ---- config.json
    let cfg_path = dir.join("config.json");
    let config: Option<Value> = if t.file.is_some() || !exists("config.json") {
        None
    } else {
        match read_json(&cfg_path) {
            None => None,
            Some(Err(e)) => {
                ctx.fail(
                    "config_invalid",
                    format!("config.json contains invalid JSON ({e})"),
                );
                None
            }
            Some(Ok(v)) => {
                if v.as_object().is_some_and(|o| !o.is_empty()) {
                    Some(v)
                } else {
                    ctx.fail("config_invalid", "config.json is empty or invalid");
                    None
                }
            }
        }
    };
    let cfg_exists = exists("config.json") && t.file.is_none();
    let cfg = config.clone().unwrap_or(Value::Object(Map::new()));
    p.config = config.clone();
    let model_type = str_field(&cfg, "model_type").map(str::to_ascii_lowercase);
    p.config_model_type = model_type.clone();
    p.architecture = cfg
        .get("architectures")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .map(str::to_string);
    p.context_length = context_length_from_config(&cfg);

    // ---- format
    p.format = if !sts.is_empty() {
        if cfg.get("quantization").is_some() {
            Format::MlxSafetensors
        } else {
            Format::Safetensors
        }
    } else if !ggufs.is_empty() {
        Format::Gguf
    } else if !bins.is_empty() {
        Format::PytorchBin
    } else if !onnx.is_empty() {
        Format::Onnx
    } else {
        Format::Unknown
    };

    if !cfg_exists && p.format != Format::Gguf {
        ctx.fail("config_missing", "config.json missing");
    }

    let weights: Vec<&FileEntry> = match p.format {
        Format::Gguf => ggufs.clone(),
        Format::Safetensors | Format::MlxSafetensors => sts.clone(),
        Format::PytorchBin => bins.clone(),
        Format::Onnx => onnx.clone(),
        Format::Unknown => Vec::new(),
    };
    if weights.is_empty() && dangling.is_empty() {
        ctx.fail("no_weights", "No model weights found");
    }
    p.weight_files = weights.iter().map(|f| dir.join(&f.path)).collect();
    p.weights_bytes = weights.iter().map(|f| f.size).sum();

    // LFS pointers (any small file carrying the marker), empty weights.
    let lfs: Vec<&str> = files
        .iter()
        .filter(|f| may_be_lfs_pointer(f) && is_lfs_pointer(&dir.join(&f.path), f.size))
        .map(|f| f.path.as_str())
        .collect();
    if !lfs.is_empty() {
        ctx.fail(
            "lfs_pointer",
            format!(
                "Git LFS pointers instead of files: {} (the repo was cloned without `git lfs pull`)",
                lfs.join(", ")
            ),
        );
    }
    let empty: Vec<&str> = weights
        .iter()
        .filter(|f| f.size == 0)
        .map(|f| f.path.as_str())
        .collect();
    if !empty.is_empty() {
        ctx.fail(
            "empty_weights",
            format!("Empty weight files: {}", empty.join(", ")),
        );
    }

    // ---- GGUF header
    let mut gguf_header: Option<GgufHeader> = None;
    if p.format == Format::Gguf {
        if ggufs.len() > 1 {
            // Several quantisations in one repo: the first by name is the default.
            p.weight_files.truncate(1);
            p.weights_bytes = ggufs[0].size;
        }
        let first = &ggufs[0];
        if first.size > 0 && !lfs.contains(&first.path.as_str()) {
            match gguf::read_header(&dir.join(&first.path)) {
                Ok(h) => gguf_header = Some(h),
                Err(e) => {
                    let code = match e {
                        GgufError::TruncatedData { .. } | GgufError::Truncated => "truncated_gguf",
                        _ => "corrupt_gguf",
                    };
                    let msg = match e {
                        GgufError::TruncatedData { .. } | GgufError::Truncated => {
                            format!("Truncated GGUF file {}: {e}", first.path)
                        }
                        _ => format!("Corrupt GGUF header in {}: {e}", first.path),
                    };
                    match &pull_fix {
                        Some(f) => ctx.fail_fix(code, msg, f.clone()),
                        None => ctx.fail(code, msg),
                    }
                }
            }
        }
    }

    // ---- safetensors index and headers
    let mut st_params: u64 = 0;
    let mut st_dtypes: BTreeMap<String, u64> = BTreeMap::new();
    if matches!(p.format, Format::Safetensors | Format::MlxSafetensors) {
        check_index(&dir, &files, &sts, &mut ctx);
        let qbits = cfg
            .get("quantization")
            .and_then(|q| q.get("bits"))
            .and_then(Value::as_u64);
        for f in &sts {
            if f.size == 0 || lfs.contains(&f.path.as_str()) {
                continue;
            }
            match safetensors::read_header(&dir.join(&f.path)) {
                Ok(h) => {
                    for (name, t) in &h.tensors {
                        *st_dtypes.entry(t.dtype.clone()).or_default() += t.end - t.start;
                        let n = t.elements();
                        if qbits.is_some()
                            && (name.ends_with(".scales") || name.ends_with(".biases"))
                        {
                            continue;
                        }
                        st_params += match (qbits, t.dtype.as_str()) {
                            (Some(b), "U32") if b > 0 => n * (32 / b.min(32)),
                            _ => n,
                        };
                    }
                }
                Err(e) => {
                    let (code, msg) = match e {
                        SafetensorsError::Truncated { .. } => (
                            "truncated_safetensors",
                            format!("Truncated safetensors file {}: {e}", f.path),
                        ),
                        _ => (
                            "corrupt_safetensors",
                            format!("Corrupt safetensors header in {}: {e}", f.path),
                        ),
                    };
                    match &pull_fix {
                        Some(fx) => ctx.fail_fix(code, msg, fx.clone()),
                        None => ctx.fail(code, msg),
                    }
                }
            }
        }
        if st_params > 0 {
            p.parameters = Some(st_params);
        }
    }

    // ---- tokenizer files and templates
    let tok_cfg = dir.join("tokenizer_config.json");
    let mut tok_cfg_template = false;
    if t.file.is_none() && exists("tokenizer_config.json") {
        match read_json(&tok_cfg) {
            Some(Ok(v)) if v.is_object() => tok_cfg_template = has_template_value(&v),
            Some(Ok(_)) => ctx.fail(
                "tokenizer_invalid",
                "tokenizer_config.json exists but invalid",
            ),
            _ => ctx.fail(
                "tokenizer_invalid",
                "tokenizer_config.json contains invalid JSON",
            ),
        }
    }
    let hf_tokenizer = exists("tokenizer.json")
        || exists("tokenizer.model")
        || exists("vocab.txt")
        || (exists("vocab.json") && exists("merges.txt"))
        || exists("tekken.json");
    let template_files = t.file.is_none()
        && (exists("chat_template.jinja") || exists("chat_template.json") || tok_cfg_template);

    if let Some(h) = &gguf_header {
        let arch = h.architecture().map(str::to_ascii_lowercase);
        p.architecture = arch.clone();
        p.config_model_type = p.config_model_type.clone().or(arch);
        p.context_length = h.context_length().or(p.context_length);
        p.parameters = Some(h.parameter_count());
        p.has_chat_template = h.has_chat_template() || template_files;
        p.has_tokenizer = h.has_tokenizer() || hf_tokenizer;
        if let Some(ft) = h.file_type() {
            let (name, bits) = gguf::file_type_name(ft).unwrap_or(("unknown", 0));
            p.dtype = Some(name.to_string());
            p.quantization = Some(Quantization {
                bits: (bits > 0).then_some(bits),
                group_size: None,
                method: "gguf".into(),
                file_type: Some(name.to_string()),
            });
        }
        if !p.has_tokenizer {
            ctx.fail(
                "tokenizer_missing",
                "GGUF file has no embedded tokenizer (tokenizer.ggml.tokens) and no tokenizer.json beside it",
            );
        }
    } else {
        p.has_chat_template = template_files;
        p.has_tokenizer = hf_tokenizer;
        p.dtype = str_field(&cfg, "torch_dtype")
            .or_else(|| str_field(&cfg, "dtype"))
            .map(str::to_string)
            .or_else(|| {
                st_dtypes
                    .iter()
                    .max_by_key(|(_, b)| **b)
                    .map(|(d, _)| torch_dtype_name(d))
            });
        if let Some(q) = cfg.get("quantization").filter(|q| q.is_object()) {
            p.quantization = Some(Quantization {
                bits: q.get("bits").and_then(Value::as_u64).map(|b| b as u32),
                group_size: q
                    .get("group_size")
                    .and_then(Value::as_u64)
                    .map(|g| g as u32),
                method: "mlx".into(),
                file_type: None,
            });
        } else if let Some(q) = cfg.get("quantization_config").filter(|q| q.is_object()) {
            p.quantization = Some(Quantization {
                bits: q.get("bits").and_then(Value::as_u64).map(|b| b as u32),
                group_size: q
                    .get("group_size")
                    .and_then(Value::as_u64)
                    .map(|g| g as u32),
                method: str_field(q, "quant_method")
                    .unwrap_or("unknown")
                    .to_string(),
                file_type: None,
            });
        }
    }

    // ---- kind and capabilities
    let mt = p.config_model_type.clone().unwrap_or_default();
    let arch_l = p
        .architecture
        .clone()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let st_marker = ST_FILES.iter().any(|f| exists(f));
    let causal = arch_l.contains("forcausallm") || arch_l.contains("forconditionalgeneration");
    let is_embedder = st_marker
        || (ENCODER_EMBEDDER_TYPES.contains(&mt.as_str())
            && !arch_l.contains("formaskedlm")
            && !arch_l.contains("forsequenceclassification")
            && !causal)
        || (p.format == Format::Gguf
            && matches!(mt.as_str(), "bert" | "nomic-bert" | "jina-bert-v2"));
    let preproc = exists("preprocessor_config.json")
        .then(|| read_json(&dir.join("preprocessor_config.json")))
        .flatten()
        .and_then(Result::ok);
    let is_audio = STT_TYPES.iter().any(|s| mt.contains(s))
        || preproc
            .as_ref()
            .and_then(|v| str_field(v, "feature_extractor_type"))
            .is_some_and(|s| s.to_ascii_lowercase().contains("whisper"));
    let video_only = exists("video_preprocessor_config.json")
        || preproc.as_ref().is_some_and(|v| {
            str_field(v, "processor_class") == Some("AutoVideoProcessor")
                || v.get("temporal_patch_size").is_some()
        });
    let is_vision = !is_audio
        && (cfg
            .get("vision_config")
            .and_then(Value::as_object)
            .is_some_and(|o| !o.is_empty())
            || (p.format != Format::Gguf && VISION_TYPES.contains(&mt.as_str()))
            || ((exists("preprocessor_config.json")
                || exists("processor_config.json")
                || exists("image_processor_config.json"))
                && !video_only));
    let has_audio_input = !is_audio
        && cfg
            .get("audio_config")
            .and_then(Value::as_object)
            .is_some_and(|o| !o.is_empty());

    if is_embedder {
        p.kind = ModelKind::Embedding;
        p.capabilities = vec![CAP_EMBEDDINGS];
    } else if is_audio {
        p.kind = ModelKind::Audio;
        p.capabilities = vec![CAP_AUDIO];
        // English-only Whisper checkpoints have a 51864-token vocabulary.
        let multilingual = cfg
            .get("vocab_size")
            .and_then(Value::as_u64)
            .is_some_and(|v| v >= 51865);
        if mt.contains("whisper") && multilingual && !p.name.to_lowercase().contains("turbo") {
            p.capabilities.push(CAP_AUDIO_TRANSLATE);
        }
    } else {
        p.kind = if p.has_chat_template || is_vision {
            ModelKind::Chat
        } else {
            ModelKind::Base
        };
        p.capabilities = vec![CAP_TEXT];
        if p.kind == ModelKind::Chat {
            p.capabilities.push(CAP_CHAT);
        }
        if is_vision {
            p.capabilities.push(CAP_VISION);
        }
        if has_audio_input {
            p.capabilities.push(CAP_AUDIO);
        }
    }

    // Text and embedding models need a tokenizer.
    if p.format != Format::Gguf
        && p.format != Format::Unknown
        && !p.has_tokenizer
        && config.is_some()
    {
        ctx.fail(
            "tokenizer_missing",
            "Tokenizer missing: no tokenizer.json, tokenizer.model or vocab files",
        );
    }
    if exists("tokenizer_config.json")
        && !exists("tokenizer.json")
        && !exists("tokenizer.model")
        && !is_audio
    {
        // Only a problem when nothing else can tokenise.
        if !hf_tokenizer {
            ctx.fail(
                "tokenizer_missing",
                "tokenizer_config.json present but tokenizer.json missing",
            );
        }
    }
    if is_vision
        && !exists("preprocessor_config.json")
        && !exists("processor_config.json")
        && cfg.get("preprocessor_config").is_none()
    {
        ctx.fail(
            "vision_processor_missing",
            "Vision model missing preprocessor_config.json or processor_config.json",
        );
    }

    p.files = files;
    // A pull killed between files leaves a marker but no `.incomplete` blob;
    // the files it did not fetch already show up as problems above. Only then
    // is the marker worth a look (keeps `list` free of a failed open per repo).
    if let Some(repo) = &t.repo {
        if !ctx.problems.is_empty() && !ctx.problems.iter().any(|p| p.code == "partial_download") {
            if let Some((resume, n_files)) = pending_pull_marker(repo) {
                ctx.problems.insert(
                    0,
                    Problem {
                        code: "partial_download",
                        message: format!(
                            "Partial download: an interrupted pull of {n_files} file(s) did not finish; resume with `{resume}`"
                        ),
                    },
                );
                ctx.fix = Some(resume);
            }
        }
    }
    p = finish(p, ctx);
    p.runtime = runtime_compat(&p, is_vision);
    p
}

/// The marker `tanto pull` keeps in `.locks/models--org--name/tanto-pull.json`
/// while a pull is unfinished: (resume command, number of files).
fn pending_pull_marker(repo: &CacheRepo) -> Option<(String, usize)> {
    let cache = repo.dir.parent()?;
    let folder = repo.dir.file_name()?;
    let bytes = fs::read(cache.join(".locks").join(folder).join("tanto-pull.json")).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let mut cmd = format!("tanto pull {}", repo.repo_id);
    if let Some(rev) = str_field(&v, "revision").filter(|r| *r != "main") {
        cmd.push_str(&format!(" --revision {rev}"));
    }
    for (key, flag) in [("include", "--include"), ("exclude", "--exclude")] {
        for p in v.get(key).and_then(Value::as_array).into_iter().flatten() {
            if let Some(p) = p.as_str() {
                cmd.push_str(&format!(" {flag} '{p}'"));
            }
        }
    }
    let n = v.get("files").and_then(Value::as_array).map_or(0, Vec::len);
    Some((cmd, n))
}

fn check_index(dir: &Path, files: &[FileEntry], sts: &[&FileEntry], ctx: &mut Ctx) {
    let idx_path = dir.join("model.safetensors.index.json");
    let on_disk: BTreeSet<&str> = sts.iter().map(|f| f.path.as_str()).collect();
    let repair = "tanto convert SRC DST --repair-index".to_string();
    if files
        .iter()
        .any(|f| f.path == "model.safetensors.index.json" && !f.dangling)
    {
        let Some(Ok(idx)) = read_json(&idx_path) else {
            ctx.fail(
                "index_invalid",
                "Invalid index file model.safetensors.index.json",
            );
            return;
        };
        let Some(map) = idx
            .get("weight_map")
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
        else {
            ctx.fail("index_invalid", "Empty or invalid weight_map in index");
            return;
        };
        let referenced: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
        let missing: Vec<&str> = referenced
            .iter()
            .copied()
            .filter(|r| !on_disk.contains(r))
            .collect();
        let extra: Vec<&str> = on_disk
            .iter()
            .copied()
            .filter(|f| !referenced.contains(f) && !f.contains('/'))
            .collect();
        if !missing.is_empty() && !extra.is_empty() {
            ctx.fail_fix(
                "index_mismatch",
                format!(
                    "Index/shard mismatch: index references {} shard(s) not on disk ({}) while {} file(s) are not in the index ({}). Fix: tanto convert <model> <output> --repair-index",
                    missing.len(),
                    missing.join(", "),
                    extra.len(),
                    extra.join(", ")
                ),
                repair,
            );
        } else if !missing.is_empty() {
            ctx.fail(
                "missing_shard",
                format!("Index references missing shard(s): {}", missing.join(", ")),
            );
        } else if !extra.is_empty() {
            ctx.fail_fix(
                "shard_not_in_index",
                format!(
                    "Shard(s) not in index: {}. Fix: tanto convert <model> <output> --repair-index",
                    extra.join(", ")
                ),
                repair,
            );
        }
        return;
    }
    // No index: check the shard naming pattern.
    let shards: Vec<(u32, u32)> = sts.iter().filter_map(|f| shard_pattern(&f.path)).collect();
    if shards.is_empty() {
        return;
    }
    let totals: BTreeSet<u32> = shards.iter().map(|s| s.1).collect();
    if totals.len() > 1 {
        ctx.fail("shard_pattern", "Inconsistent shard totals detected");
        return;
    }
    let total = *totals.iter().next().unwrap_or(&0);
    let present: BTreeSet<u32> = shards.iter().map(|s| s.0).collect();
    if (present.len() as u32) < total {
        ctx.fail(
            "missing_shard",
            format!(
                "Missing shards by pattern: {}/{} present",
                present.len(),
                total
            ),
        );
    } else if total > 1 && !files.iter().any(|f| f.path.ends_with(".index.json")) {
        ctx.fail_fix(
            "index_missing",
            "Safetensors index missing for sharded model",
            repair,
        );
    }
}

fn finish(mut p: Probe, ctx: Ctx) -> Probe {
    p.health = Health {
        healthy: ctx.problems.is_empty(),
        reason: ctx.problems.first().map(|pr| pr.message.clone()),
        fix: ctx.fix,
        problems: ctx.problems,
    };
    p
}

fn runtime_compat(p: &Probe, is_vision: bool) -> Runtime {
    let no = |reason: String| Runtime {
        compatible: false,
        backend: None,
        reason: Some(reason),
    };
    if !p.health.healthy {
        return no(p.health.reason.clone().unwrap_or_default());
    }
    let mt = p.config_model_type.clone().unwrap_or_default();
    let ok = |backend: Backend, arch: &str, what: &str| {
        if registry::supports(backend, arch) {
            Runtime {
                compatible: true,
                backend: Some(backend),
                reason: None,
            }
        } else {
            Runtime {
                compatible: false,
                backend: None,
                reason: Some(format!(
                    "No engine built for {what} architecture '{}' (this build runs: {})",
                    if arch.is_empty() { "unknown" } else { arch },
                    registry::supported_list(backend)
                )),
            }
        }
    };
    match p.kind {
        ModelKind::Embedding => return ok(Backend::Embeddings, &mt, "embedding"),
        ModelKind::Audio => return ok(Backend::Whisper, &mt, "speech-to-text"),
        _ => {}
    }
    if is_vision {
        return ok(Backend::Vision, &mt, "vision-language");
    }
    match p.format {
        Format::Gguf => ok(Backend::GgufText, &mt, "GGUF"),
        Format::Safetensors => {
            if mt.is_empty() {
                return no("config.json has no model_type field".into());
            }
            ok(Backend::SafetensorsText, &mt, "safetensors")
        }
        Format::MlxSafetensors => no(
            "No engine built for MLX-quantized weights (they need Apple's MLX); use a GGUF or an unquantized safetensors copy of this model"
                .into(),
        ),
        Format::PytorchBin => no(
            "PyTorch .bin weights are not loaded (pickle); use a safetensors or GGUF copy of this model"
                .into(),
        ),
        Format::Onnx => no("No engine built for ONNX models".into()),
        Format::Unknown => no("Unknown weight format".into()),
    }
}

/// A workspace folder's sentinel file, if any (for callers that need the path).
pub fn sentinel_path(dir: &Path) -> PathBuf {
    dir.join(SENTINEL_FILE)
}
