//! MLX affine-quantized checkpoints (mlx-community 2–8 bit): reading the
//! packed tensors, dequantizing them exactly as `mx.dequantize` does, and
//! repacking 4-/8-bit modules into tanto's kernel blocks.
//!
//! Layout (mlx `quantize`): per quantized module `<p>`, `<p>.weight` is U32
//! `[out, in·bits/32]`, each row an LSB-first bit stream of `bits`-wide
//! unsigned values; `<p>.scales` and `<p>.biases` are `[out, in/group_size]`
//! in the model's float dtype T. A value is `w = T(T(scale·q) + bias)`: mlx's
//! CPU dequantize rounds the product to T before adding the bias, and this
//! module reproduces that bit for bit (tests compare with mlx's own output).
//!
//! Which path a checkpoint takes is the probe's decision
//! (`tanto_core::probe::mlx`); this module only carries it out.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};
use serde_json::Value;

use crate::api::EngineError;
use crate::kernels::{WType, QK};
use crate::models::llama_native::{Layer, LlamaConfig, NativeLlama, WeightBytes, W};

fn invalid(path: &Path, msg: impl Into<String>) -> EngineError {
    EngineError::InvalidModel {
        path: path.to_path_buf(),
        message: msg.into(),
    }
}

/// The float dtype of scales and biases (and of the dequantized values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleType {
    BF16,
    F16,
    F32,
}

impl ScaleType {
    fn size(self) -> usize {
        match self {
            ScaleType::BF16 | ScaleType::F16 => 2,
            ScaleType::F32 => 4,
        }
    }

    fn read(self, b: &[u8], i: usize) -> f32 {
        match self {
            ScaleType::BF16 => {
                bf16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32()
            }
            ScaleType::F16 => f16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32(),
            ScaleType::F32 => {
                f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
            }
        }
    }

    /// `T(T(s·q) + b)` as f32, the way mlx's CPU dequantize rounds.
    #[inline]
    fn affine(self, s: f32, q: f32, b: f32) -> f32 {
        match self {
            ScaleType::BF16 => {
                let p = bf16::from_f32(s * q).to_f32();
                bf16::from_f32(p + b).to_f32()
            }
            ScaleType::F16 => {
                let p = f16::from_f32(s * q).to_f32();
                f16::from_f32(p + b).to_f32()
            }
            ScaleType::F32 => {
                let p = s * q;
                p + b
            }
        }
    }
}

/// One quantized matrix, borrowed from the mapped file(s).
#[derive(Debug, Clone, Copy)]
pub struct QuantMatrix<'a> {
    pub bits: u32,
    pub group_size: usize,
    pub rows: usize,
    pub cols: usize,
    /// `rows * cols * bits / 8` bytes: the U32 words, little-endian.
    pub weight: &'a [u8],
    pub scales: &'a [u8],
    pub biases: &'a [u8],
    pub scale_type: ScaleType,
}

impl<'a> QuantMatrix<'a> {
    /// Check the byte lengths against the shape; `what` names it in errors.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        what: &str,
        bits: u32,
        group_size: usize,
        rows: usize,
        cols: usize,
        weight: &'a [u8],
        scales: &'a [u8],
        biases: &'a [u8],
        scale_type: ScaleType,
    ) -> Result<Self, String> {
        if !(2..=8).contains(&bits) || bits == 7 {
            return Err(format!("{what}: {bits}-bit quantization is not supported"));
        }
        if group_size == 0 || cols % group_size != 0 || (cols * bits as usize) % 32 != 0 {
            return Err(format!(
                "{what}: {cols} columns do not split into groups of {group_size} at {bits} bits"
            ));
        }
        let wlen = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(bits as usize))
            .map(|n| n / 8);
        let slen = rows
            .checked_mul(cols / group_size)
            .and_then(|n| n.checked_mul(scale_type.size()));
        if wlen != Some(weight.len()) {
            return Err(format!(
                "{what}.weight has {} bytes, {rows}×{cols} at {bits} bits needs {wlen:?}",
                weight.len()
            ));
        }
        if slen != Some(scales.len()) || slen != Some(biases.len()) {
            return Err(format!(
                "{what}: scales/biases have {}/{} bytes, {rows}×{} groups need {slen:?}",
                scales.len(),
                biases.len(),
                cols / group_size
            ));
        }
        Ok(Self {
            bits,
            group_size,
            rows,
            cols,
            weight,
            scales,
            biases,
            scale_type,
        })
    }

    fn row_bytes(&self) -> usize {
        self.cols * self.bits as usize / 8
    }

    /// The unsigned quantized value at column `c` of a row's bit stream.
    #[inline]
    fn q(&self, row: &[u8], c: usize) -> u32 {
        let bit = c * self.bits as usize;
        let (byte, shift) = (bit / 8, bit % 8);
        let lo = row[byte] as u32;
        let hi = row.get(byte + 1).copied().unwrap_or(0) as u32;
        ((lo | (hi << 8)) >> shift) & ((1 << self.bits) - 1)
    }

    /// Row `r`, dequantized exactly as `mx.dequantize` (values of dtype T as f32).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        let row = &self.weight[r * rb..(r + 1) * rb];
        let ng = self.cols / self.group_size;
        for g in 0..ng {
            let s = self.scale_type.read(self.scales, r * ng + g);
            let b = self.scale_type.read(self.biases, r * ng + g);
            for c in g * self.group_size..(g + 1) * self.group_size {
                out[c] = self.scale_type.affine(s, self.q(row, c) as f32, b);
            }
        }
    }

    /// The whole matrix, dequantized (row-major `[rows, cols]`).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, o) in out.chunks_exact_mut(self.cols.max(1)).enumerate() {
            self.dequantize_row(r, o);
        }
        out
    }

    /// Repack into tanto's kernel blocks (32 values each; a group of 64 or
    /// 128 becomes 2 or 4 blocks that repeat its scale and offset, so nothing
    /// is rounded): 4-bit → Q4_1 (f16) / Q4_1B (bf16), 8-bit → Q8A / Q8AB.
    pub fn repack(&self) -> Result<(WType, Vec<u8>), String> {
        let bf = match self.scale_type {
            ScaleType::BF16 => true,
            ScaleType::F16 => false,
            ScaleType::F32 => return Err("f32 scales have no native block".into()),
        };
        let ty = match (self.bits, bf) {
            (4, false) => WType::Q4_1,
            (4, true) => WType::Q4_1B,
            (8, false) => WType::Q8A,
            (8, true) => WType::Q8AB,
            (b, _) => return Err(format!("{b}-bit modules have no native block")),
        };
        let nb = self.cols / QK;
        let ng = self.cols / self.group_size;
        let rb = self.row_bytes();
        let mut out = Vec::with_capacity(self.rows * nb * ty.block_bytes());
        for r in 0..self.rows {
            let row = &self.weight[r * rb..(r + 1) * rb];
            for b in 0..nb {
                let g = r * ng + b * QK / self.group_size;
                out.extend_from_slice(&self.scales[2 * g..2 * g + 2]);
                out.extend_from_slice(&self.biases[2 * g..2 * g + 2]);
                if self.bits == 4 {
                    // MLX: element 2k in the low nibble of byte k; Q4_1: element
                    // j in the low nibble of byte j, element j + 16 in the high.
                    let src = &row[b * 16..b * 16 + 16];
                    let e = |j: usize| (src[j / 2] >> (4 * (j % 2))) & 0x0F;
                    for j in 0..16 {
                        out.push(e(j) | (e(j + 16) << 4));
                    }
                } else {
                    for &q in &row[b * 32..b * 32 + 32] {
                        out.push(q ^ 0x80);
                    }
                }
            }
        }
        Ok((ty, out))
    }
}

/// The quantization settings of one module: the config's override, else global.
#[derive(Debug, Clone)]
pub struct QuantConfig {
    bits: u32,
    group_size: usize,
    overrides: BTreeMap<String, (u32, usize)>,
}

impl QuantConfig {
    pub fn from_config(cfg: &Value, path: &Path) -> Result<Self, EngineError> {
        let q = cfg
            .get("quantization")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(path, "no `quantization` object"))?;
        let num = |o: &serde_json::Map<String, Value>, k: &str| o.get(k).and_then(Value::as_u64);
        let (Some(bits), Some(gs)) = (num(q, "bits"), num(q, "group_size")) else {
            return Err(invalid(path, "`quantization` needs bits and group_size"));
        };
        let mut overrides = BTreeMap::new();
        for (k, v) in q {
            if let Some(o) = v.as_object() {
                overrides.insert(
                    k.clone(),
                    (
                        num(o, "bits").unwrap_or(bits) as u32,
                        num(o, "group_size").unwrap_or(gs) as usize,
                    ),
                );
            }
        }
        Ok(Self {
            bits: bits as u32,
            group_size: gs as usize,
            overrides,
        })
    }

    pub fn of(&self, module: &str) -> (u32, usize) {
        self.overrides
            .get(module)
            .copied()
            .unwrap_or((self.bits, self.group_size))
    }
}

/// The shards of an MLX checkpoint, mapped.
pub struct MlxCheckpoint {
    st: MmapedSafetensors,
    quant: QuantConfig,
    first: PathBuf,
}

fn scale_type(d: safetensors::Dtype) -> Option<ScaleType> {
    match d {
        safetensors::Dtype::BF16 => Some(ScaleType::BF16),
        safetensors::Dtype::F16 => Some(ScaleType::F16),
        safetensors::Dtype::F32 => Some(ScaleType::F32),
        _ => None,
    }
}

/// A float tensor's values as f32 (bf16/f16/f32 only).
fn floats(v: &safetensors::tensor::TensorView<'_>) -> Option<Vec<f32>> {
    let t = scale_type(v.dtype())?;
    let n = v.data().len() / t.size();
    Some((0..n).map(|i| t.read(v.data(), i)).collect())
}

impl MlxCheckpoint {
    pub fn open(files: &[PathBuf], cfg: &Value, dir: &Path) -> Result<Self, EngineError> {
        let first = files
            .first()
            .cloned()
            .ok_or_else(|| invalid(dir, "no safetensors files"))?;
        for f in files {
            if !f.is_file() {
                return Err(EngineError::Io {
                    path: f.clone(),
                    message: "weight file not found".into(),
                });
            }
        }
        // SAFETY: read-only mapping of files tanto does not modify while loaded.
        let st = unsafe { MmapedSafetensors::multi(files) }
            .map_err(|e| invalid(&first, e.to_string()))?;
        let quant = QuantConfig::from_config(cfg, &dir.join("config.json"))?;
        Ok(Self { st, quant, first })
    }

    fn view(&self, name: &str) -> Option<safetensors::tensor::TensorView<'_>> {
        self.st.get(name).ok()
    }

    fn err(&self, msg: impl Into<String>) -> EngineError {
        invalid(&self.first, msg)
    }

    /// Whether `module` is quantized (has `.scales`).
    pub fn is_quantized(&self, module: &str) -> bool {
        self.view(&format!("{module}.scales")).is_some()
    }

    /// The quantized matrix of `module` (which must have `.scales`).
    pub fn quantized(&self, module: &str) -> Result<QuantMatrix<'_>, EngineError> {
        let get = |s: &str| {
            self.view(&format!("{module}.{s}"))
                .ok_or_else(|| self.err(format!("{module}.{s} is missing")))
        };
        let (w, sc, bi) = (get("weight")?, get("scales")?, get("biases")?);
        let st = scale_type(sc.dtype())
            .filter(|_| sc.dtype() == bi.dtype())
            .ok_or_else(|| {
                self.err(format!(
                    "{module}: scales/biases of dtype {:?}/{:?}",
                    sc.dtype(),
                    bi.dtype()
                ))
            })?;
        if w.dtype() != safetensors::Dtype::U32 || w.shape().len() != 2 {
            return Err(self.err(format!("{module}.weight is not a 2-D U32 tensor")));
        }
        let (bits, gs) = self.quant.of(module);
        let rows = w.shape()[0];
        let cols = w.shape()[1] * 32 / (bits.max(1) as usize);
        QuantMatrix::new(
            module,
            bits,
            gs,
            rows,
            cols,
            w.data(),
            sc.data(),
            bi.data(),
            st,
        )
        .map_err(|m| self.err(m))
    }

    /// A float tensor as f32 with its shape.
    pub fn float(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), EngineError> {
        let v = self
            .view(name)
            .ok_or_else(|| self.err(format!("{name} is missing")))?;
        let vals = floats(&v)
            .ok_or_else(|| self.err(format!("{name} has dtype {:?}, not a float", v.dtype())))?;
        Ok((vals, v.shape().to_vec()))
    }

    /// Every tensor name in the shards.
    fn names(&self) -> Vec<String> {
        self.st.tensors().into_iter().map(|(n, _)| n).collect()
    }

    /// All weights as candle tensors for the float engine: quantized modules
    /// dequantized (exactly, then widened to `dtype`), everything else converted.
    pub fn dequantized_tensors(
        &self,
        dtype: DType,
        device: &Device,
    ) -> Result<HashMap<String, Tensor>, EngineError> {
        let mut out = HashMap::new();
        let names = self.names();
        let ce = |e: candle_core::Error| self.err(e.to_string());
        for name in &names {
            if name.ends_with(".scales") || name.ends_with(".biases") {
                continue;
            }
            let module = name.strip_suffix(".weight");
            let t = match module.filter(|m| self.is_quantized(m)) {
                Some(m) => {
                    let q = self.quantized(m)?;
                    let vals = q.dequantize();
                    Tensor::from_vec(vals, (q.rows, q.cols), &Device::Cpu)
                        .and_then(|t| t.to_dtype(dtype))
                        .and_then(|t| t.to_device(device))
                        .map_err(ce)?
                }
                None => self
                    .st
                    .load(name, &Device::Cpu)
                    .and_then(|t| t.to_dtype(dtype))
                    .and_then(|t| t.to_device(device))
                    .map_err(ce)?,
            };
            out.insert(name.clone(), t);
        }
        Ok(out)
    }
}

/// Appends matrices to one buffer and hands out their [`W`] entries.
struct Packer<'a> {
    ck: &'a MlxCheckpoint,
    buf: Vec<u8>,
    /// Modules repacked per block type (for the load log).
    counts: BTreeMap<&'static str, usize>,
}

impl Packer<'_> {
    fn push(&mut self, ty: WType, rows: usize, cols: usize, bytes: &[u8]) -> W {
        let off = self.buf.len();
        self.buf.extend_from_slice(bytes);
        W {
            ty,
            rows,
            cols,
            off,
            len: bytes.len(),
        }
    }

    /// `module` (`…q_proj`) as a native matrix of shape `[rows, cols]`.
    fn matrix(&mut self, module: &str, rows: usize, cols: usize) -> Result<W, EngineError> {
        if self.ck.is_quantized(module) {
            let q = self.ck.quantized(module)?;
            if (q.rows, q.cols) != (rows, cols) {
                return Err(self.ck.err(format!(
                    "{module} is {}×{}, config.json implies {rows}×{cols}",
                    q.rows, q.cols
                )));
            }
            let (ty, bytes) = q
                .repack()
                .map_err(|m| self.ck.err(format!("{module}: {m}")))?;
            *self
                .counts
                .entry(if q.bits == 4 { "4-bit" } else { "8-bit" })
                .or_default() += 1;
            Ok(self.push(ty, rows, cols, &bytes))
        } else {
            let (vals, shape) = self.ck.float(&format!("{module}.weight"))?;
            if shape != [rows, cols] || cols % QK != 0 {
                return Err(self.ck.err(format!(
                    "{module}.weight has shape {shape:?}, expected [{rows}, {cols}]"
                )));
            }
            let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
            *self.counts.entry("float").or_default() += 1;
            Ok(self.push(WType::F32, rows, cols, &bytes))
        }
    }

    fn norm(&self, name: &str, n: usize) -> Result<Vec<f32>, EngineError> {
        let (v, shape) = self.ck.float(name)?;
        if shape != [n] {
            return Err(self
                .ck
                .err(format!("{name} has shape {shape:?}, expected [{n}]")));
        }
        Ok(v)
    }
}

/// A llama-block MLX checkpoint on tanto's native kernels (the probe chose
/// this path: 4/8-bit, bf16/f16 scales, no biases, plain RoPE).
pub fn load_native(
    ck: &MlxCheckpoint,
    cfg: &Value,
    threads: usize,
    context: usize,
) -> Result<(NativeLlama, String), EngineError> {
    let num = |k: &str| cfg.get(k).and_then(Value::as_u64).map(|v| v as usize);
    let need = |k: &str| num(k).ok_or_else(|| ck.err(format!("config.json: missing {k}")));
    let n_layer = need("num_hidden_layers")?;
    let n_embd = need("hidden_size")?;
    let n_head = need("num_attention_heads")?;
    let n_kv_head = num("num_key_value_heads").unwrap_or(n_head);
    let n_ff = need("intermediate_size")?;
    if n_head == 0 || n_kv_head == 0 || n_embd % n_head != 0 || n_head % n_kv_head != 0 {
        return Err(ck.err("config.json: inconsistent head counts"));
    }
    let head_dim = n_embd / n_head;
    if num("head_dim").is_some_and(|h| h != head_dim) || head_dim % 2 != 0 {
        return Err(ck.err("config.json: head_dim differs from hidden_size / heads"));
    }
    if n_embd % QK != 0 || n_ff % QK != 0 {
        return Err(ck.err("config.json: hidden or intermediate size is not a multiple of 32"));
    }
    let f = |k: &str, d: f64| cfg.get(k).and_then(Value::as_f64).unwrap_or(d) as f32;
    let mut p = Packer {
        ck,
        buf: Vec::new(),
        counts: BTreeMap::new(),
    };
    let embed = "model.embed_tokens";
    let vocab = if ck.is_quantized(embed) {
        ck.quantized(embed)?.rows
    } else {
        ck.float(&format!("{embed}.weight"))?
            .1
            .first()
            .copied()
            .unwrap_or(0)
    };
    if vocab == 0 {
        return Err(ck.err("empty vocabulary"));
    }
    let tok_embd = p.matrix(embed, vocab, n_embd)?;
    let has_head = ck.view("lm_head.weight").is_some();
    let output = if has_head {
        p.matrix("lm_head", vocab, n_embd)?
    } else {
        tok_embd
    };
    let output_norm = p.norm("model.norm.weight", n_embd)?;
    let kvd = n_kv_head * head_dim;
    let mut layers = Vec::with_capacity(n_layer);
    for i in 0..n_layer {
        let m = |s: &str| format!("model.layers.{i}.{s}");
        layers.push(Layer {
            attn_norm: p.norm(&m("input_layernorm.weight"), n_embd)?,
            ffn_norm: p.norm(&m("post_attention_layernorm.weight"), n_embd)?,
            wq: p.matrix(&m("self_attn.q_proj"), n_embd, n_embd)?,
            wk: p.matrix(&m("self_attn.k_proj"), kvd, n_embd)?,
            wv: p.matrix(&m("self_attn.v_proj"), kvd, n_embd)?,
            wo: p.matrix(&m("self_attn.o_proj"), n_embd, n_embd)?,
            w_gate: p.matrix(&m("mlp.gate_proj"), n_ff, n_embd)?,
            w_up: p.matrix(&m("mlp.up_proj"), n_ff, n_embd)?,
            w_down: p.matrix(&m("mlp.down_proj"), n_embd, n_ff)?,
        });
    }
    NativeLlama::check_mixed(&layers).map_err(|e| match e {
        crate::models::llama_native::NativeRefusal::Error(e) => e,
        crate::models::llama_native::NativeRefusal::Unsupported(m) => ck.err(m),
    })?;
    let cfgn = LlamaConfig {
        n_layer,
        n_embd,
        n_head,
        n_kv_head,
        head_dim,
        n_ff,
        eps: f("rms_norm_eps", 1e-6),
        rope_base: f("rope_theta", 10000.0),
        rope_dim: head_dim,
        // HF/MLX q/k weights use the rotate-half RoPE layout.
        rope_neox: true,
        vocab,
        context: context.max(1),
    };
    let summary = p
        .counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let data: WeightBytes = Arc::new(std::mem::take(&mut p.buf));
    let model = NativeLlama::from_parts(data, cfgn, tok_embd, output, output_norm, layers, threads);
    Ok((model, summary))
}
