//! Probe phase 3, weights: pick the weight files, name the format, and read
//! the GGUF / safetensors headers (never tensor data) for parameters, dtype
//! and quantization. Truncated or corrupt headers are health problems here.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::{str_field, Config};
use super::gguf::{self, GgufError, GgufHeader};
use super::health::{check_index, Findings};
use super::safetensors::{self, SafetensorsError};
use super::{FileEntry, Format, Probe, Quantization, Scan};

/// Weight files by format, top-level ones preferred over nested ones.
pub(crate) struct Candidates {
    pub ggufs: Vec<FileEntry>,
    pub sts: Vec<FileEntry>,
    pub bins: Vec<FileEntry>,
    pub onnx: Vec<FileEntry>,
    /// A CTranslate2 folder's `model.bin` (see [`super::ct2`]).
    pub ct2: Vec<FileEntry>,
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

pub(crate) fn candidates(files: &[FileEntry]) -> Candidates {
    let by_ext = |ext: &str| -> Vec<FileEntry> {
        let all: Vec<&FileEntry> = files
            .iter()
            .filter(|f| {
                f.path.to_ascii_lowercase().ends_with(ext) && !f.dangling && f.special.is_none()
            })
            .collect();
        let tops: Vec<&FileEntry> = all
            .iter()
            .copied()
            .filter(|f| !f.path.contains('/'))
            .collect();
        let pick = if tops.is_empty() { all } else { tops };
        pick.into_iter().cloned().collect()
    };
    let mut ggufs = by_ext(".gguf");
    ggufs.retain(|f| !base(&f.path).starts_with("mmproj"));
    let ct2: Vec<FileEntry> = if super::ct2::is_ct2(files) {
        files
            .iter()
            .filter(|f| f.path == "model.bin")
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let mut bins = by_ext(".bin");
    bins.retain(|f| {
        let n = base(&f.path);
        n.starts_with("pytorch_model") || n.starts_with("model")
    });
    Candidates {
        ggufs,
        sts: by_ext(".safetensors"),
        bins,
        onnx: by_ext(".onnx"),
        ct2,
    }
}

/// Name the format and record the weight files in `p`; returns the LFS pointers found.
pub(crate) fn select(
    s: &Scan,
    c: &Candidates,
    cfg: &Config,
    p: &mut Probe,
    f: &mut Findings,
) -> Vec<String> {
    p.format = if !c.sts.is_empty() {
        if cfg.cfg.get("quantization").is_some() {
            Format::MlxSafetensors
        } else {
            Format::Safetensors
        }
    } else if !c.ggufs.is_empty() {
        Format::Gguf
    } else if !c.ct2.is_empty() {
        Format::Ctranslate2
    } else if !c.bins.is_empty() {
        Format::PytorchBin
    } else if !c.onnx.is_empty() {
        Format::Onnx
    } else {
        Format::Unknown
    };
    if !cfg.exists && p.format != Format::Gguf {
        f.fail("config_missing", "config.json missing");
    }
    let weights: &[FileEntry] = match p.format {
        Format::Gguf => &c.ggufs,
        Format::Safetensors | Format::MlxSafetensors => &c.sts,
        Format::PytorchBin => &c.bins,
        Format::Onnx => &c.onnx,
        Format::Ctranslate2 => &c.ct2,
        Format::Unknown => &[],
    };
    if weights.is_empty() && s.dangling().is_empty() {
        f.fail("no_weights", "No model weights found");
    }
    p.weight_files = weights.iter().map(|w| s.dir.join(&w.path)).collect();
    p.weights_bytes = weights.iter().map(|w| w.size).sum();

    let lfs = super::files::lfs_pointers(s, f);
    let empty: Vec<&str> = weights
        .iter()
        .filter(|w| w.size == 0)
        .map(|w| w.path.as_str())
        .collect();
    if !empty.is_empty() {
        f.fail(
            "empty_weights",
            format!("Empty weight files: {}", empty.join(", ")),
        );
    }
    lfs
}

/// What the headers told: the GGUF header, or safetensors parameter and dtype totals.
#[derive(Default)]
pub(crate) struct Headers {
    pub gguf: Option<GgufHeader>,
    /// Bytes per safetensors dtype (the most common one names `dtype`).
    pub st_dtypes: BTreeMap<String, u64>,
    /// Every tensor of every shard (MLX checkpoints only: their quantized
    /// modules are checked across shards).
    pub tensors: BTreeMap<String, safetensors::TensorInfo>,
}

/// Read the headers of the selected weights (GGUF: the first file only).
pub(crate) fn read_headers(
    s: &Scan,
    c: &Candidates,
    cfg: &Config,
    lfs: &[String],
    p: &mut Probe,
    f: &mut Findings,
) -> Headers {
    let mut h = Headers::default();
    if p.format == Format::Gguf {
        if c.ggufs.len() > 1 {
            // Several quantisations in one repo: the first by name is the default.
            p.weight_files.truncate(1);
            p.weights_bytes = c.ggufs[0].size;
        }
        h.gguf = read_gguf(s, &c.ggufs[0], lfs, f);
    }
    if matches!(p.format, Format::Safetensors | Format::MlxSafetensors) {
        check_index(&s.dir, &s.files, &c.sts, f);
        let keep = (p.format == Format::MlxSafetensors).then_some(&mut h.tensors);
        let params = read_safetensors(s, &c.sts, cfg, lfs, &mut h.st_dtypes, keep, f);
        if params > 0 {
            p.parameters = Some(params);
        }
    }
    h
}

fn read_gguf(s: &Scan, first: &FileEntry, lfs: &[String], f: &mut Findings) -> Option<GgufHeader> {
    if first.size == 0 || lfs.contains(&first.path) {
        return None;
    }
    match gguf::read_header(&s.dir.join(&first.path)) {
        Ok(h) => Some(h),
        Err(e) => {
            let (code, msg) = match e {
                GgufError::TruncatedData { .. }
                | GgufError::Truncated
                | GgufError::TruncatedHeader(_) => (
                    "truncated_gguf",
                    format!("Truncated GGUF file {}: {e}", first.path),
                ),
                _ => (
                    "corrupt_gguf",
                    format!("Corrupt GGUF header in {}: {e}", first.path),
                ),
            };
            f.fail_maybe_fix(code, msg, s.pull_fix.as_deref());
            None
        }
    }
}

/// Sum parameters over all shards (MLX-packed U32 weights count `32 / bits` each;
/// scales and biases are not parameters) and bytes per dtype.
fn read_safetensors(
    s: &Scan,
    sts: &[FileEntry],
    cfg: &Config,
    lfs: &[String],
    dtypes: &mut BTreeMap<String, u64>,
    mut keep: Option<&mut BTreeMap<String, safetensors::TensorInfo>>,
    f: &mut Findings,
) -> u64 {
    let qbits = cfg
        .cfg
        .get("quantization")
        .and_then(|q| q.get("bits"))
        .and_then(Value::as_u64);
    let mut params = 0u64;
    for file in sts {
        if file.size == 0 || lfs.contains(&file.path) {
            continue;
        }
        match safetensors::read_header(&s.dir.join(&file.path)) {
            Ok(h) => {
                if let Some(k) = keep.as_deref_mut() {
                    k.extend(h.tensors.iter().map(|(n, t)| (n.clone(), t.clone())));
                }
                for (name, t) in &h.tensors {
                    let e = dtypes.entry(t.dtype.clone()).or_default();
                    *e = e.saturating_add(t.end - t.start);
                    let n = t.elements();
                    if qbits.is_some() && (name.ends_with(".scales") || name.ends_with(".biases")) {
                        continue;
                    }
                    params = params.saturating_add(match (qbits, t.dtype.as_str()) {
                        (Some(b), "U32") if b > 0 => n.saturating_mul(32 / b.min(32)),
                        _ => n,
                    });
                }
            }
            Err(e) => {
                let (code, msg) = match e {
                    SafetensorsError::Truncated { .. } => (
                        "truncated_safetensors",
                        format!("Truncated safetensors file {}: {e}", file.path),
                    ),
                    _ => (
                        "corrupt_safetensors",
                        format!("Corrupt safetensors header in {}: {e}", file.path),
                    ),
                };
                f.fail_maybe_fix(code, msg, s.pull_fix.as_deref());
            }
        }
    }
    params
}

/// Architecture, context, parameters, dtype and quantization from the GGUF header,
/// else dtype and quantization from config.json (or the safetensors dtypes).
pub(crate) fn describe(h: &Headers, cfg: &Value, p: &mut Probe) {
    if let Some(g) = &h.gguf {
        let arch = g.architecture().map(str::to_ascii_lowercase);
        p.architecture = arch.clone();
        p.config_model_type = p.config_model_type.clone().or(arch);
        p.context_length = g.context_length().or(p.context_length);
        p.parameters = Some(g.parameter_count());
        if let Some(ft) = g.file_type() {
            let (name, bits) = gguf::file_type_name(ft).unwrap_or(("unknown", 0));
            p.dtype = Some(name.to_string());
            p.quantization = Some(Quantization {
                bits: (bits > 0).then_some(bits),
                group_size: None,
                method: "gguf".into(),
                mode: None,
                file_type: Some(name.to_string()),
            });
        }
        return;
    }
    p.dtype = str_field(cfg, "torch_dtype")
        .or_else(|| str_field(cfg, "dtype"))
        .map(str::to_string)
        .or_else(|| {
            h.st_dtypes
                .iter()
                .max_by_key(|(_, b)| **b)
                .map(|(d, _)| torch_dtype_name(d))
        });
    let quant = |q: &Value, method: String| Quantization {
        mode: str_field(q, "mode").map(str::to_string),
        bits: q.get("bits").and_then(Value::as_u64).map(|b| b as u32),
        group_size: q
            .get("group_size")
            .and_then(Value::as_u64)
            .map(|g| g as u32),
        method,
        file_type: None,
    };
    if let Some(q) = cfg.get("quantization").filter(|q| q.is_object()) {
        p.quantization = Some(quant(q, "mlx".into()));
    } else if let Some(q) = cfg.get("quantization_config").filter(|q| q.is_object()) {
        let method = str_field(q, "quant_method")
            .unwrap_or("unknown")
            .to_string();
        p.quantization = Some(quant(q, method));
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
