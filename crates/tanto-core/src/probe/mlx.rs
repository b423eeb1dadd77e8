//! Probe phase 3b, MLX quantization: what an mlx-community checkpoint's
//! `quantization` block and tensor headers say, whether they agree, and how
//! this build runs it.
//!
//! The layout (mlx `quantize`, mlx-lm `load_model`): a module is quantized
//! exactly when `<module>.scales` exists. Its `weight` is U32, `[out, in·bits/32]`
//! (an LSB-first bit stream per row); `scales` and `biases` are in the model's
//! float dtype, `[out, in/group_size]`. `bits`/`group_size`/`mode` come from
//! `quantization[<module>]` when present, else the global values.
//!
//! The probe decides the engine path ([`MlxPath`]) and the bytes it will hold,
//! so the memory gate and `show --explain` tell the truth before anything loads:
//! - [`MlxPath::Native`]: llama-style models whose quantized modules are all
//!   4- or 8-bit with bf16/f16 scales. The engine repacks them at load into
//!   its own quantized blocks (4-bit: Q4_1 layout; 8-bit: an affine u8 block)
//!   and runs tanto's kernels: about the file's size in memory.
//! - [`MlxPath::Dequantize`]: every other case the engine runs (other bit
//!   widths, f32 scales, the other architectures). Weights are dequantized at
//!   load exactly as `mx.dequantize` does and handed to the float engine;
//!   memory is the dequantized size.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::health::Findings;
use super::safetensors::TensorInfo;

/// Bit widths mlx's affine quantizer produces.
pub const MLX_BITS: &[u32] = &[2, 3, 4, 5, 6, 8];
/// Group sizes mlx's affine quantizer produces.
pub const MLX_GROUP_SIZES: &[u32] = &[32, 64, 128];
/// Bit widths the native kernels run without dequantizing.
pub const NATIVE_BITS: &[u32] = &[4, 8];
/// config.json `model_type`s the native (llama-block) engine runs.
pub const NATIVE_MODEL_TYPES: &[&str] = &["llama", "mistral"];
/// Dequantized weights above this many bytes in f32 are kept in bf16 (the
/// float engine's own rule for large safetensors).
pub const DEQUANT_F32_LIMIT: u64 = 3 << 30;

/// How the engine runs an MLX checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlxPath {
    /// Repacked at load into tanto's quantized blocks (4/8-bit).
    Native,
    /// Dequantized at load (exactly as `mx.dequantize`) to the float engine.
    Dequantize,
}

impl MlxPath {
    pub fn as_str(self) -> &'static str {
        match self {
            MlxPath::Native => "native",
            MlxPath::Dequantize => "dequantize",
        }
    }
}

/// One module's quantization as the config gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleQuant {
    pub bits: u32,
    pub group_size: u32,
}

/// What the probe learned about an MLX-quantized checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlxQuant {
    /// The global settings (`quantization.bits` / `group_size`).
    pub bits: u32,
    pub group_size: u32,
    /// `affine` (also when the config has no `mode`), `mxfp4`, `nvfp4`, `mxfp8`, …
    pub mode: String,
    /// Per-module overrides from the config, by module path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, ModuleQuant>,
    /// How many modules carry `.scales`.
    pub quantized_modules: usize,
    /// Distinct bit widths of the quantized modules.
    pub bits_used: Vec<u32>,
    /// safetensors dtype of the scales/biases (`BF16`, `F16`, `F32`).
    pub scale_dtype: String,
    /// The engine path, and why (for `show --explain`).
    pub path: MlxPath,
    pub path_reason: String,
    /// Bytes the engine holds for the weights (what the memory gate counts).
    pub runtime_bytes: u64,
    /// For [`MlxPath::Dequantize`]: the float dtype the weights become.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dequantized_dtype: Option<String>,
    /// Why this build cannot run it (then the probe's runtime reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|x| u32::try_from(x).ok())
}

/// The global settings and per-module overrides of a `quantization` block.
fn parse_block(
    q: &Value,
    f: &mut Findings,
) -> Option<(ModuleQuant, String, BTreeMap<String, ModuleQuant>)> {
    let Some(obj) = q.as_object() else {
        f.fail(
            "config_invalid",
            "config.json: `quantization` is not an object",
        );
        return None;
    };
    let mode = obj
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("affine")
        .to_string();
    let bits = obj.get("bits").and_then(as_u32);
    let gs = obj.get("group_size").and_then(as_u32);
    let (Some(bits), Some(group_size)) = (bits, gs) else {
        f.fail(
            "config_invalid",
            "config.json: `quantization` needs integer `bits` and `group_size`",
        );
        return None;
    };
    let mut overrides = BTreeMap::new();
    for (k, v) in obj {
        let Some(m) = v.as_object() else { continue };
        // A module entry: its own bits/group_size (missing ones inherit).
        let b = m.get("bits").map(as_u32);
        let g = m.get("group_size").map(as_u32);
        if matches!(b, Some(None)) || matches!(g, Some(None)) {
            f.fail(
                "config_invalid",
                format!("config.json: quantization override for '{k}' has a non-integer bits or group_size"),
            );
            return None;
        }
        overrides.insert(
            k.clone(),
            ModuleQuant {
                bits: b.flatten().unwrap_or(bits),
                group_size: g.flatten().unwrap_or(group_size),
            },
        );
    }
    Some((ModuleQuant { bits, group_size }, mode, overrides))
}

fn is_float(dtype: &str) -> bool {
    matches!(dtype, "BF16" | "F16" | "F32")
}

/// One quantized module, as its three tensors describe it.
struct Module<'a> {
    name: &'a str,
    q: ModuleQuant,
    out: u64,
    inp: u64,
}

/// Check one `<name>.scales` module; the problem message names the tensors.
fn check_module<'a>(
    name: &'a str,
    q: ModuleQuant,
    mode: &str,
    t: &BTreeMap<String, TensorInfo>,
) -> Result<Module<'a>, String> {
    let get = |s: &str| t.get(&format!("{name}.{s}"));
    let scales = get("scales").ok_or_else(|| format!("{name}: no scales"))?;
    let weight = get("weight").ok_or_else(|| format!("{name}.scales has no {name}.weight"))?;
    if weight.dtype != "U32" {
        return Err(format!(
            "{name}.weight is {} but a quantized weight is U32",
            weight.dtype
        ));
    }
    let [out, packed] = weight.shape[..] else {
        return Err(format!(
            "{name}.weight has shape {:?}, not 2-D",
            weight.shape
        ));
    };
    if !is_float(&scales.dtype) {
        return Err(format!(
            "{name}.scales is {}, not a float dtype",
            scales.dtype
        ));
    }
    let bits = u64::from(q.bits);
    let gs = u64::from(q.group_size);
    let inp = packed.saturating_mul(32) / bits.max(1);
    if packed.saturating_mul(32) % bits.max(1) != 0 || gs == 0 || inp % gs != 0 {
        return Err(format!(
            "{name}.weight packs {packed} words per row, which is no whole number of {gs}-value groups at {bits} bits"
        ));
    }
    let want = vec![out, inp / gs];
    if scales.shape != want {
        return Err(format!(
            "{name}.scales has shape {:?}, but {bits}-bit groups of {gs} over {name}.weight {:?} need {want:?}: the bits or group size in config.json do not match the tensors",
            scales.shape, weight.shape
        ));
    }
    if mode == "affine" {
        let biases = get("biases").ok_or_else(|| {
            format!("{name} has scales but no {name}.biases (affine quantization needs both)")
        })?;
        if biases.shape != scales.shape || biases.dtype != scales.dtype {
            return Err(format!(
                "{name}.biases ({} {:?}) does not match {name}.scales ({} {:?})",
                biases.dtype, biases.shape, scales.dtype, scales.shape
            ));
        }
    }
    Ok(Module { name, q, out, inp })
}

/// Block bytes per 32 values on the native path (see tanto-engine's kernels).
fn native_block_bytes(bits: u32) -> u64 {
    if bits == 4 {
        20
    } else {
        36
    }
}

/// Read the `quantization` block against the tensors of all shards. Problems
/// (code `quantization_mismatch`, or `config_invalid`) go into `f`; `None`
/// when the block itself is unreadable. Three phases: the tensors against
/// the block ([`check_tensors`]), what this build can run ([`unsupported`]),
/// and the path and bytes the engine will hold ([`runtime_bytes`]).
pub(crate) fn read(
    cfg: &Value,
    tensors: &BTreeMap<String, TensorInfo>,
    f: &mut Findings,
) -> Option<MlxQuant> {
    let q = cfg.get("quantization")?;
    let (global, mode, overrides) = parse_block(q, f)?;
    let (modules, scale_dtypes) = check_tensors(global, &mode, &overrides, tensors, f);
    let bits_used: Vec<u32> = modules
        .iter()
        .map(|m| m.q.bits)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let scale_dtype = scale_dtypes.iter().next().cloned().unwrap_or_default();
    let unsupported = unsupported(&mode, &modules, &scale_dtypes);
    let (path, path_reason) = choose_path(cfg, &modules, &scale_dtype, tensors);
    let (runtime_bytes, dequantized_dtype) = runtime_bytes(path, &modules, tensors);
    Some(MlxQuant {
        bits: global.bits,
        group_size: global.group_size,
        mode,
        overrides,
        quantized_modules: modules.len(),
        bits_used,
        scale_dtype,
        path,
        path_reason,
        runtime_bytes,
        dequantized_dtype,
        unsupported,
    })
}

/// Every quantized module (`.scales`) checked against its `.weight` and
/// `.biases`, and packed weights without scales found. At most three
/// mismatches are reported by name, then a count. Returns the modules that
/// check out and the scale dtypes seen.
fn check_tensors<'t>(
    global: ModuleQuant,
    mode: &str,
    overrides: &BTreeMap<String, ModuleQuant>,
    tensors: &'t BTreeMap<String, TensorInfo>,
    f: &mut Findings,
) -> (Vec<Module<'t>>, BTreeSet<String>) {
    let mut problems = 0usize;
    let mut fail = |f: &mut Findings, m: String| {
        problems += 1;
        if problems <= 3 {
            f.fail("quantization_mismatch", m);
        }
    };
    let mut modules = Vec::new();
    let mut scale_dtypes = BTreeSet::new();
    for name in tensors.keys() {
        if let Some(m) = name.strip_suffix(".scales") {
            let mq = overrides.get(m).copied().unwrap_or(global);
            match check_module(m, mq, mode, tensors) {
                Ok(module) => {
                    if let Some(s) = tensors.get(name) {
                        scale_dtypes.insert(s.dtype.clone());
                    }
                    modules.push(module);
                }
                Err(msg) => fail(f, msg),
            }
        } else if let Some(m) = name.strip_suffix(".biases") {
            if !tensors.contains_key(&format!("{m}.scales")) {
                fail(f, format!("{name} has no {m}.scales"));
            }
        } else if let Some(m) = name.strip_suffix(".weight") {
            let t = &tensors[name];
            if t.dtype == "U32" && !tensors.contains_key(&format!("{m}.scales")) {
                fail(
                    f,
                    format!("{name} is packed (U32) but {m}.scales is missing"),
                );
            }
        }
    }
    if problems > 3 {
        f.fail(
            "quantization_mismatch",
            format!(
                "… and {} more quantized tensors that do not match",
                problems - 3
            ),
        );
    }
    if modules.is_empty() && problems == 0 {
        f.fail(
            "quantization_mismatch",
            "config.json declares MLX quantization but no tensor has `.scales`",
        );
    }
    (modules, scale_dtypes)
}

/// Why this build cannot run the checkpoint at all (mode, bits, group size,
/// mixed scale dtypes), or `None`.
fn unsupported(
    mode: &str,
    modules: &[Module<'_>],
    scale_dtypes: &BTreeSet<String>,
) -> Option<String> {
    if mode != "affine" {
        Some(format!(
            "MLX quantization mode '{mode}' is not supported yet (this build runs mode 'affine')"
        ))
    } else if let Some(m) = modules.iter().find(|m| !MLX_BITS.contains(&m.q.bits)) {
        Some(format!(
            "{}: {}-bit MLX quantization is not supported (bits: {:?})",
            m.name, m.q.bits, MLX_BITS
        ))
    } else if let Some(m) = modules
        .iter()
        .find(|m| !MLX_GROUP_SIZES.contains(&m.q.group_size))
    {
        Some(format!(
            "{}: MLX group size {} is not supported (group sizes: {:?})",
            m.name, m.q.group_size, MLX_GROUP_SIZES
        ))
    } else if scale_dtypes.len() > 1 {
        Some(format!(
            "MLX scales in several dtypes ({}) are not supported",
            scale_dtypes.iter().cloned().collect::<Vec<_>>().join(", ")
        ))
    } else {
        None
    }
}

/// The bytes the engine holds on `path`, and the float dtype when it
/// dequantizes: native blocks plus f32 float tensors, or every element in
/// f32 (bf16 above [`DEQUANT_F32_LIMIT`]).
fn runtime_bytes(
    path: MlxPath,
    modules: &[Module<'_>],
    tensors: &BTreeMap<String, TensorInfo>,
) -> (u64, Option<String>) {
    // Float tensors (norms, unquantized layers): f32 on the native path.
    let quantized: BTreeSet<&str> = modules.iter().map(|m| m.name).collect();
    let mut float_elems = 0u64;
    for (name, t) in tensors {
        let module = name.rsplit_once('.').map_or(name.as_str(), |(m, _)| m);
        if !quantized.contains(module) && is_float(&t.dtype) {
            float_elems = float_elems.saturating_add(t.elements());
        }
    }
    let quant_elems: u64 = modules
        .iter()
        .fold(0u64, |a, m| a.saturating_add(m.out.saturating_mul(m.inp)));
    match path {
        MlxPath::Native => {
            let q: u64 = modules.iter().fold(0u64, |a, m| {
                a.saturating_add(
                    m.out
                        .saturating_mul(m.inp / 32)
                        .saturating_mul(native_block_bytes(m.q.bits)),
                )
            });
            (q.saturating_add(float_elems.saturating_mul(4)), None)
        }
        MlxPath::Dequantize => {
            let elems = quant_elems.saturating_add(float_elems);
            let f32_bytes = elems.saturating_mul(4);
            if f32_bytes <= DEQUANT_F32_LIMIT {
                (f32_bytes, Some("float32".to_string()))
            } else {
                (elems.saturating_mul(2), Some("bfloat16".to_string()))
            }
        }
    }
}

/// Native when the architecture is a plain llama block and every quantized
/// module is 4/8-bit with half-precision scales; else dequantize, with why.
fn choose_path(
    cfg: &Value,
    modules: &[Module<'_>],
    scale_dtype: &str,
    tensors: &BTreeMap<String, TensorInfo>,
) -> (MlxPath, String) {
    let deq = |why: String| (MlxPath::Dequantize, why);
    let mt = cfg.get("model_type").and_then(Value::as_str).unwrap_or("");
    if !NATIVE_MODEL_TYPES.contains(&mt) {
        return deq(format!(
            "model_type '{mt}' runs on the float engine (native kernels: {})",
            NATIVE_MODEL_TYPES.join(", ")
        ));
    }
    if let Some(m) = modules.iter().find(|m| !NATIVE_BITS.contains(&m.q.bits)) {
        return deq(format!(
            "{}-bit modules ({}) have no native kernel (native: 4 and 8 bits)",
            m.q.bits, m.name
        ));
    }
    if !matches!(scale_dtype, "BF16" | "F16") {
        return deq(format!(
            "{scale_dtype} scales do not fit the native blocks exactly"
        ));
    }
    let flag = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
    if flag("attention_bias") || flag("mlp_bias") {
        return deq("linear biases are not in the native llama block".into());
    }
    if cfg.get("rope_scaling").is_some_and(|v| !v.is_null()) {
        return deq("rope scaling is not in the native llama block".into());
    }
    if cfg.get("sliding_window").is_some_and(|v| !v.is_null()) {
        return deq("sliding-window attention is not in the native llama block".into());
    }
    let act = cfg
        .get("hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("silu");
    if act != "silu" {
        return deq(format!(
            "activation '{act}' is not in the native llama block"
        ));
    }
    let num = |k: &str| cfg.get(k).and_then(Value::as_u64);
    if let (Some(h), Some(n)) = (num("hidden_size"), num("num_attention_heads")) {
        if let Some(hd) = num("head_dim") {
            if n == 0 || hd * n != h {
                return deq("head_dim × heads differs from hidden_size".into());
            }
        }
    }
    // q/k/v (and gate/up) must be all quantized or all float: they share one
    // quantized activation.
    let quantized: BTreeSet<&str> = modules.iter().map(|m| m.name).collect();
    for (name, _) in tensors.range("model.layers.".to_string()..) {
        let Some(layer) = name
            .strip_prefix("model.layers.")
            .and_then(|r| r.split_once('.'))
            .map(|(i, _)| i)
        else {
            break;
        };
        for group in [
            &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"][..],
            &["mlp.gate_proj", "mlp.up_proj"][..],
        ] {
            let qs: BTreeSet<bool> = group
                .iter()
                .map(|g| quantized.contains(format!("model.layers.{layer}.{g}").as_str()))
                .collect();
            if qs.len() > 1 {
                return deq(format!(
                    "layer {layer} mixes quantized and float projections"
                ));
            }
        }
    }
    let bits: BTreeSet<u32> = modules.iter().map(|m| m.q.bits).collect();
    let kernels: Vec<String> = bits.iter().map(|b| format!("{b}-bit")).collect();
    (
        MlxPath::Native,
        format!(
            "repacked at load into tanto's quantized blocks ({} kernels)",
            kernels.join(" + ")
        ),
    )
}
