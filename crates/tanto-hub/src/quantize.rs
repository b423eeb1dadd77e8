//! `convert --quantize`: MLX affine quantization of a Hugging Face safetensors
//! model, producing the folder `mlx_lm convert -q` writes (mlx-community
//! layout), with mlx's quantizer reproduced exactly so the tensors are
//! byte-identical to mlx's (mlx 0.32, CPU).
//!
//! - Every 2-D float `*.weight` whose row length is a multiple of the group
//!   size is quantized (mlx-lm quantizes every `Linear` and `Embedding` whose
//!   input dimension divides by the group size): `weight` becomes U32
//!   `[out, in·bits/32]` (an LSB-first bit stream per row), `scales` and
//!   `biases` `[out, in/group]` in the model dtype. Other tensors are cast to
//!   the model dtype and kept.
//! - As mlx-lm's loader does, a tied `lm_head.weight` and rotary
//!   `inv_freq` buffers are dropped.
//! - config.json gains `quantization` and `quantization_config`
//!   (`{group_size, bits, mode: "affine"}`), keys sorted, 4-space indent;
//!   shards of at most 5 GiB carry `{"format": "mlx"}` metadata; the index has
//!   a sorted `weight_map`, `total_size` (tensor bytes) and `total_parameters`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tanto_core::pycompat::python_json;
use tanto_core::safetensors::{read_header, SafetensorsHeader};
use tanto_core::workspace::{self, Sentinel, SENTINEL_FILE};

use crate::clone::TreeCopy;
use crate::convert::INDEX_FILE;
use crate::fsutil::{check_target, StagingDir};
use crate::HubError;

/// Bit widths mlx's affine quantizer supports.
pub const QUANTIZE_BITS: &[u32] = &[2, 3, 4, 5, 6, 8];
/// Group sizes mlx's affine quantizer supports.
pub const GROUP_SIZES: &[u32] = &[32, 64, 128];
/// mlx-lm's shard limit.
const MAX_SHARD_BYTES: u64 = 5 << 30;
/// Model types `convert --quantize` handles (text models tanto runs).
pub const QUANTIZE_MODEL_TYPES: &[&str] = tanto_core::registry::SAFETENSORS_TEXT_MODEL_TYPES;

/// The float dtype of the model (and of scales/biases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatType {
    BF16,
    F16,
    F32,
}

impl FloatType {
    fn from_st(dtype: &str) -> Option<Self> {
        match dtype {
            "BF16" => Some(FloatType::BF16),
            "F16" => Some(FloatType::F16),
            "F32" => Some(FloatType::F32),
            _ => None,
        }
    }

    fn from_torch(name: &str) -> Option<Self> {
        match name {
            "bfloat16" => Some(FloatType::BF16),
            "float16" => Some(FloatType::F16),
            "float32" => Some(FloatType::F32),
            _ => None,
        }
    }

    pub fn st_name(self) -> &'static str {
        match self {
            FloatType::BF16 => "BF16",
            FloatType::F16 => "F16",
            FloatType::F32 => "F32",
        }
    }

    fn size(self) -> usize {
        match self {
            FloatType::BF16 | FloatType::F16 => 2,
            FloatType::F32 => 4,
        }
    }

    fn read(self, b: &[u8], i: usize) -> f32 {
        match self {
            FloatType::BF16 => {
                bf16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32()
            }
            FloatType::F16 => f16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32(),
            FloatType::F32 => {
                f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
            }
        }
    }

    /// Round to this type (nearest, ties to even) and append its bytes.
    fn push(self, v: f32, out: &mut Vec<u8>) {
        match self {
            FloatType::BF16 => out.extend_from_slice(&bf16::from_f32(v).to_bits().to_le_bytes()),
            FloatType::F16 => out.extend_from_slice(&f16::from_f32(v).to_bits().to_le_bytes()),
            FloatType::F32 => out.extend_from_slice(&v.to_le_bytes()),
        }
    }

    /// `v` rounded to this type, as f32.
    fn round(self, v: f32) -> f32 {
        match self {
            FloatType::BF16 => bf16::from_f32(v).to_f32(),
            FloatType::F16 => f16::from_f32(v).to_f32(),
            FloatType::F32 => v,
        }
    }
}

/// One group through mlx's affine quantizer: `(scale, bias)` in f32 (not yet
/// rounded to the model dtype) and the unsigned values `0..=2^bits-1`.
///
/// The edge of larger magnitude maps exactly onto a grid point, so a zero
/// stays exactly representable; values are computed with the f32 scale and
/// only then is the scale rounded to the model dtype (as mlx does).
pub fn quantize_group(w: &[f32], bits: u32, q: &mut [u32]) -> (f32, f32) {
    let n_bins = ((1u32 << bits) - 1) as f32;
    let eps = 1e-7f32;
    let (mut w_min, mut w_max) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in w {
        w_min = w_min.min(v);
        w_max = w_max.max(v);
    }
    let mask = w_min.abs() > w_max.abs();
    let mut scale = ((w_max - w_min) / n_bins).max(eps);
    if !mask {
        scale = -scale;
    }
    let edge = if mask { w_min } else { w_max };
    let q0 = (edge / scale).round_ties_even();
    let bias = if q0 != 0.0 {
        scale = edge / q0;
        edge
    } else {
        0.0
    };
    for (o, &v) in q.iter_mut().zip(w) {
        *o = ((v - bias) / scale).round_ties_even().clamp(0.0, n_bins) as u32;
    }
    (scale, bias)
}

/// A quantized matrix: the U32 words (as little-endian bytes) and the
/// scales/biases in `ft`.
pub struct Quantized {
    pub weight: Vec<u8>,
    pub scales: Vec<u8>,
    pub biases: Vec<u8>,
}

/// Quantize a row-major `[rows, cols]` matrix of values already in `ft`.
pub fn quantize_matrix(
    vals: &[f32],
    rows: usize,
    cols: usize,
    bits: u32,
    group_size: usize,
    ft: FloatType,
) -> Quantized {
    let ng = cols / group_size;
    let mut weight = Vec::with_capacity(rows * cols * bits as usize / 8);
    let mut scales = Vec::with_capacity(rows * ng * ft.size());
    let mut biases = Vec::with_capacity(rows * ng * ft.size());
    let mut q = vec![0u32; group_size];
    for r in 0..rows {
        // LSB-first bit stream of the row.
        let (mut acc, mut nbits) = (0u64, 0u32);
        for g in 0..ng {
            let w = &vals[r * cols + g * group_size..r * cols + (g + 1) * group_size];
            let (s, b) = quantize_group(w, bits, &mut q);
            ft.push(s, &mut scales);
            ft.push(b, &mut biases);
            for &v in &q {
                acc |= (v as u64) << nbits;
                nbits += bits;
                while nbits >= 8 {
                    weight.push(acc as u8);
                    acc >>= 8;
                    nbits -= 8;
                }
            }
        }
        debug_assert_eq!(nbits, 0);
    }
    Quantized {
        weight,
        scales,
        biases,
    }
}

/// Options of [`quantize`].
#[derive(Debug, Clone, Copy)]
pub struct QuantizeOptions {
    pub bits: u32,
    pub group_size: u32,
}

/// Result of [`quantize`].
#[derive(Debug, Clone, Serialize)]
pub struct QuantizeReport {
    pub target: PathBuf,
    pub bits: u32,
    pub group_size: u32,
    /// The model dtype (scales, biases and float tensors).
    pub dtype: String,
    /// Matrices quantized / tensors written.
    pub quantized: usize,
    pub tensors: usize,
    pub shards: Vec<String>,
    pub total_size: u64,
    pub total_parameters: u64,
    /// Files copied besides weights, index and sentinel.
    pub files: usize,
    pub sentinel: Sentinel,
    pub hashed: bool,
}

fn cannot(reason: impl Into<String>) -> HubError {
    HubError::CannotQuantize(reason.into())
}

/// A source tensor: where its bytes are.
struct Src {
    shard: usize,
    dtype: FloatType,
    shape: Vec<usize>,
    /// Absolute byte range in the shard file.
    start: usize,
    end: usize,
}

/// Where an output tensor's bytes come from.
enum Out {
    /// A source tensor, cast to the model dtype.
    Float(String),
    /// One of the three parts (`weight`/`scales`/`biases`) of the quantized
    /// source matrix named here.
    Part(String),
}

/// Quantize the model at `src_dir` into a new workspace `dst_dir` (absent or
/// empty). `progress(done, total, tensor)` is called per source tensor.
pub fn quantize(
    src_dir: &Path,
    dst_dir: &Path,
    opts: QuantizeOptions,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<QuantizeReport, HubError> {
    if !src_dir.is_dir() {
        return Err(HubError::SourceNotADirectory(src_dir.to_path_buf()));
    }
    if !QUANTIZE_BITS.contains(&opts.bits) {
        return Err(cannot(format!(
            "--quantize must be one of {QUANTIZE_BITS:?} (got {})",
            opts.bits
        )));
    }
    if !GROUP_SIZES.contains(&opts.group_size) {
        return Err(cannot(format!(
            "--group-size must be one of {GROUP_SIZES:?} (got {})",
            opts.group_size
        )));
    }
    check_target(dst_dir)?;
    let cfg_path = src_dir.join("config.json");
    let cfg_bytes = tanto_core::limits::read_capped(&cfg_path, tanto_core::limits::JSON_MAX)
        .map_err(|e| cannot(format!("config.json: {e}")))?;
    let mut cfg: Map<String, Value> = serde_json::from_slice(&cfg_bytes)
        .map_err(|e| cannot(format!("config.json is not a JSON object: {e}")))?;
    if let Some(q) = cfg.get("quantization").or(cfg.get("quantization_config")) {
        return Err(cannot(format!(
            "the source is already quantized ({q}); quantize an unquantized copy"
        )));
    }
    let model_type = cfg.get("model_type").and_then(Value::as_str).unwrap_or("");
    if !QUANTIZE_MODEL_TYPES.contains(&model_type) {
        return Err(cannot(format!(
            "model_type '{model_type}' is not a text model tanto quantizes (supported: {})",
            QUANTIZE_MODEL_TYPES.join(", ")
        )));
    }

    // The source tensors, over all top-level shards.
    let mut shard_files: Vec<String> = fs::read_dir(src_dir)
        .map_err(|e| HubError::io(src_dir, e))?
        .flatten()
        .filter(|e| fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    shard_files.sort();
    if shard_files.is_empty() {
        return Err(cannot("the source has no safetensors weights"));
    }
    let mut maps = Vec::new();
    let mut tensors: BTreeMap<String, Src> = BTreeMap::new();
    for (i, name) in shard_files.iter().enumerate() {
        let path = src_dir.join(name);
        let h: SafetensorsHeader = read_header(&path).map_err(|e| HubError::BadShard {
            file: name.clone(),
            message: e.to_string(),
        })?;
        let file = File::open(&path).map_err(|e| HubError::io(&path, e))?;
        // SAFETY: read-only mapping of a source tanto does not modify.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| HubError::io(&path, e))?;
        let base = 8 + h.header_len;
        for (t, info) in &h.tensors {
            let bad = |m: String| HubError::BadShard {
                file: name.clone(),
                message: format!("{t}: {m}"),
            };
            let dtype = FloatType::from_st(&info.dtype)
                .ok_or_else(|| bad(format!("dtype {} is not a float type", info.dtype)))?;
            let shape: Vec<usize> = info.shape.iter().map(|&d| d as usize).collect();
            let n: usize = shape.iter().product();
            let (start, end) = ((base + info.start) as usize, (base + info.end) as usize);
            if end - start != n * dtype.size() || end > map.len() {
                return Err(bad("byte range does not match its shape".into()));
            }
            if tensors.contains_key(t) {
                return Err(HubError::DuplicateTensor {
                    tensor: t.clone(),
                    first: String::new(),
                    second: name.clone(),
                });
            }
            tensors.insert(
                t.clone(),
                Src {
                    shard: i,
                    dtype,
                    shape,
                    start,
                    end,
                },
            );
        }
        maps.push(map);
    }
    // What mlx-lm's loader drops.
    let tied = cfg
        .get("tie_word_embeddings")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    tensors.retain(|k, _| !(k.ends_with("rotary_emb.inv_freq") || (tied && k == "lm_head.weight")));

    let ft = cfg
        .get("torch_dtype")
        .or(cfg.get("dtype"))
        .and_then(Value::as_str)
        .and_then(FloatType::from_torch)
        .or_else(|| tensors.values().next().map(|t| t.dtype))
        .unwrap_or(FloatType::F32);
    let gs = opts.group_size as usize;

    // The output tensors (sorted), their dtype, shape and size.
    let mut plan: Vec<(String, &'static str, Vec<usize>, u64, Out)> = Vec::new();
    let mut total_parameters = 0u64;
    let mut quantized = 0usize;
    for (name, t) in &tensors {
        total_parameters += t.shape.iter().product::<usize>() as u64;
        let module = name.strip_suffix(".weight");
        match (module, t.shape.as_slice()) {
            (Some(m), &[rows, cols]) if cols % gs == 0 && cols > 0 => {
                let words = cols * opts.bits as usize / 32;
                let groups = cols / gs;
                plan.push((
                    format!("{m}.weight"),
                    "U32",
                    vec![rows, words],
                    (rows * words * 4) as u64,
                    Out::Part(name.clone()),
                ));
                for part in ["scales", "biases"] {
                    plan.push((
                        format!("{m}.{part}"),
                        ft.st_name(),
                        vec![rows, groups],
                        (rows * groups * ft.size()) as u64,
                        Out::Part(name.clone()),
                    ));
                }
                quantized += 1;
            }
            _ => plan.push((
                name.clone(),
                ft.st_name(),
                t.shape.clone(),
                (t.shape.iter().product::<usize>() * ft.size()) as u64,
                Out::Float(name.clone()),
            )),
        }
    }
    if quantized == 0 {
        return Err(cannot(format!(
            "no matrix has rows that divide into groups of {gs}"
        )));
    }
    plan.sort_by(|a, b| a.0.cmp(&b.0));

    // Shards as mlx-lm cuts them (a new one when the next tensor would pass 5 GiB).
    let mut shard_of: Vec<usize> = Vec::with_capacity(plan.len());
    let (mut shard, mut size) = (0usize, 0u64);
    for p in &plan {
        if size > 0 && size + p.3 > MAX_SHARD_BYTES {
            shard += 1;
            size = 0;
        }
        shard_of.push(shard);
        size += p.3;
    }
    let n_shards = shard + 1;
    let shard_name = |i: usize| {
        if n_shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", i + 1, n_shards)
        }
    };

    let staging = StagingDir::next_to(dst_dir)?;
    // Everything but weights, index and sentinel, as the source has it.
    let skip = |rel: &str, is_dir: bool| {
        let lower = rel.to_ascii_lowercase();
        !is_dir
            && (rel == SENTINEL_FILE
                || rel == INDEX_FILE
                || rel == "config.json"
                || [
                    ".safetensors",
                    ".bin",
                    ".gguf",
                    ".onnx",
                    ".pt",
                    ".pth",
                    ".h5",
                    ".msgpack",
                    ".ckpt",
                ]
                .iter()
                .any(|e| lower.ends_with(e)))
            || (is_dir && (rel.starts_with('.') || rel.contains("/.")))
    };
    let mut tree = TreeCopy::new(src_dir, &skip)?;
    tree.copy(src_dir, staging.path(), "")?;
    let files = tree.stats.files;

    // Weights, streamed shard by shard: the quantized parts of a matrix are
    // computed once and written as their three tensors come up in order.
    let total = tensors.len();
    let mut done = 0usize;
    let mut pending: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut weight_map = BTreeMap::new();
    let mut total_size = 0u64;
    for s in 0..n_shards {
        let name = shard_name(s);
        let path = staging.path().join(&name);
        let idx: Vec<usize> = (0..plan.len()).filter(|&i| shard_of[i] == s).collect();
        let mut header = Map::new();
        header.insert("__metadata__".into(), json!({"format": "mlx"}));
        let mut off = 0u64;
        for &i in &idx {
            let (n, dt, shape, bytes, _) = &plan[i];
            header.insert(
                n.clone(),
                json!({"dtype": dt, "shape": shape, "data_offsets": [off, off + bytes]}),
            );
            off += bytes;
            weight_map.insert(n.clone(), name.clone());
        }
        total_size += off;
        let mut hbytes = serde_json::to_vec(&Value::Object(header)).unwrap_or_default();
        while hbytes.len() & 7 != 0 {
            hbytes.push(b' ');
        }
        let f = File::create(&path).map_err(|e| HubError::io(&path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let io = |e: std::io::Error| HubError::io(&path, e);
        w.write_all(&(hbytes.len() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(&hbytes).map_err(io)?;
        for &i in &idx {
            let (n, _, _, _, out) = &plan[i];
            let bytes = match out {
                Out::Float(src) => {
                    let t = &tensors[src];
                    let raw = &maps[t.shard][t.start..t.end];
                    let count = (t.end - t.start) / t.dtype.size();
                    done += 1;
                    progress(done, total, src);
                    if t.dtype == ft {
                        raw.to_vec()
                    } else {
                        let mut v = Vec::with_capacity(count * ft.size());
                        for k in 0..count {
                            ft.push(t.dtype.read(raw, k), &mut v);
                        }
                        v
                    }
                }
                Out::Part(src) => {
                    // The first part of a module to come up quantizes it (sorted
                    // order: biases, scales, weight); the others are held until
                    // their turn.
                    if !pending.contains_key(n) {
                        let t = &tensors[src];
                        let raw = &maps[t.shard][t.start..t.end];
                        let (rows, cols) = (t.shape[0], t.shape[1]);
                        let vals: Vec<f32> = (0..rows * cols)
                            .map(|k| ft.round(t.dtype.read(raw, k)))
                            .collect();
                        let q = quantize_matrix(&vals, rows, cols, opts.bits, gs, ft);
                        let m = src.strip_suffix(".weight").unwrap_or(src);
                        pending.insert(format!("{m}.weight"), q.weight);
                        pending.insert(format!("{m}.scales"), q.scales);
                        pending.insert(format!("{m}.biases"), q.biases);
                        done += 1;
                        progress(done, total, src);
                    }
                    pending
                        .remove(n)
                        .ok_or_else(|| cannot(format!("internal: {n} was not computed")))?
                }
            };
            w.write_all(&bytes).map_err(io)?;
        }
        w.flush().map_err(io)?;
    }

    // config.json: quantization added, keys sorted (serde_json's map order).
    cfg.remove("_name_or_path");
    cfg.remove("vision_config");
    let q = json!({"group_size": opts.group_size, "bits": opts.bits, "mode": "affine"});
    cfg.insert("quantization".into(), q.clone());
    cfg.insert("quantization_config".into(), q);
    let cpath = staging.path().join("config.json");
    workspace::write_atomic(&cpath, &python_json(&Value::Object(cfg), 4))
        .map_err(|e| HubError::io(&cpath, e))?;
    let index = json!({
        "metadata": {"total_size": total_size, "total_parameters": total_parameters},
        "weight_map": weight_map,
    });
    let ipath = staging.path().join(INDEX_FILE);
    workspace::write_atomic(&ipath, &python_json(&index, 4))
        .map_err(|e| HubError::io(&ipath, e))?;

    let mut sentinel = crate::convert::convert_sentinel(src_dir);
    sentinel.mode = Some("quantize".into());
    sentinel.extra.insert(
        "quantization".into(),
        json!({"bits": opts.bits, "group_size": opts.group_size}),
    );
    let hashed = workspace::pin_content_hash(staging.path(), &mut sentinel);
    workspace::write_sentinel(staging.path(), &sentinel)?;
    check_target(dst_dir)?;
    staging.commit(dst_dir)?;
    Ok(QuantizeReport {
        target: dst_dir.to_path_buf(),
        bits: opts.bits,
        group_size: opts.group_size,
        dtype: ft.st_name().to_string(),
        quantized,
        tensors: plan.len(),
        shards: (0..n_shards).map(shard_name).collect(),
        total_size,
        total_parameters,
        files,
        sentinel,
        hashed,
    })
}
