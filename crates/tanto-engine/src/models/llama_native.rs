//! tanto's own llama-family forward pass (llama, mistral, smollm…) for GGUF
//! files whose matrices are Q4_0, Q4_1, Q8_0, F16 or F32, and for MLX
//! checkpoints repacked into tanto's blocks (`mlx.rs`: Q4_1/bf16, affine 8-bit).
//!
//! GGUF weights stay in the memory-mapped file; repacked MLX weights live in
//! one owned buffer. One forward pass runs on a
//! [`SpinPool`] team in lock-step: every thread takes a share of each operation
//! (rows of a matmul, tokens of a norm, heads of attention) and the team meets at
//! a barrier between dependent steps. The arithmetic follows llama.cpp's CPU
//! graph (Q8 activation quantization, f16 KV cache, RMS norm with a double sum,
//! iterated RoPE angles with ggml's FMA contraction, a KV window padded to 256,
//! llamafile's 8-lane f16 dots for multi-token batches and ggml's 4x8-lane dots
//! for single tokens) so logits are bit-identical to llama.cpp 0.3.36's CPU
//! build and greedy outputs agree with it.

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType};
use half::f16;
use memmap2::Mmap;

use super::Backbone;
use crate::api::EngineError;
use crate::gguf::{md_f32, md_u32};
use crate::kernels::{
    dot_f16_ggml, dot_f16_tiny, quantize_row_q8, Acts, BlockQ8, QMatRef, WType, QK,
};
use crate::threads::{SharedBuf, SpinPool, Team};

#[derive(Debug, Clone)]
pub struct LlamaConfig {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub eps: f32,
    pub rope_base: f32,
    pub rope_dim: usize,
    pub rope_neox: bool,
    pub vocab: usize,
    pub context: usize,
}

/// One weight matrix: its block type, shape and bytes in the model's buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct W {
    pub ty: WType,
    pub rows: usize,
    pub cols: usize,
    pub off: usize,
    pub len: usize,
}

pub(crate) struct Layer {
    pub attn_norm: Vec<f32>,
    pub ffn_norm: Vec<f32>,
    pub wq: W,
    pub wk: W,
    pub wv: W,
    pub wo: W,
    pub w_gate: W,
    pub w_up: W,
    pub w_down: W,
}

/// Where the weight bytes live: the mapped GGUF file or a repacked buffer.
pub(crate) type WeightBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

pub struct NativeLlama {
    data: WeightBytes,
    pub cfg: LlamaConfig,
    tok_embd: W,
    output: W,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    k_cache: Vec<Vec<f16>>,
    v_cache: Vec<Vec<f16>>,
    cache_cap: usize,
    cache_len: usize,
    pool: SpinPool,
}

fn invalid(path: &Path, msg: impl Into<String>) -> EngineError {
    EngineError::InvalidModel {
        path: path.to_path_buf(),
        message: msg.into(),
    }
}

fn wtype(t: GgmlDType) -> Option<WType> {
    Some(match t {
        GgmlDType::F32 => WType::F32,
        GgmlDType::F16 => WType::F16,
        GgmlDType::Q4_0 => WType::Q4_0,
        GgmlDType::Q4_1 => WType::Q4_1,
        GgmlDType::Q8_0 => WType::Q8_0,
        _ => return None,
    })
}

/// Architectures this implementation handles (llama-style blocks, no biases).
pub const ARCHS: &[&str] = &["llama", "mistral"];

/// Why this file cannot use the native path (so the caller falls back to candle).
#[derive(Debug)]
pub enum NativeRefusal {
    Unsupported(String),
    Error(EngineError),
}

impl NativeLlama {
    /// Build from a parsed GGUF whose `general.architecture` is `arch` (read once
    /// by the caller). `context` is the planned context (already bounded); the
    /// KV cache grows on demand up to it.
    pub fn load(
        path: &Path,
        ct: &gguf_file::Content,
        arch: &str,
        mmap: Arc<Mmap>,
        threads: usize,
        context: usize,
    ) -> Result<Self, NativeRefusal> {
        let md = &ct.metadata;
        if !ARCHS.contains(&arch) {
            return Err(NativeRefusal::Unsupported(format!("architecture {arch}")));
        }
        let err = |m: String| NativeRefusal::Error(invalid(path, m));
        let get = |k: &str| -> Result<u32, NativeRefusal> {
            md_u32(md, &format!("{arch}.{k}"))
                .ok_or_else(|| err(format!("missing or invalid {arch}.{k}")))
        };
        let getf = |k: &str| -> Option<f32> { md_f32(md, &format!("{arch}.{k}")) };
        if md.contains_key(&format!("{arch}.expert_count")) && get("expert_count").unwrap_or(0) > 1
        {
            return Err(NativeRefusal::Unsupported("mixture of experts".into()));
        }
        crate::gguf::check_hparams(path, ct, arch).map_err(NativeRefusal::Error)?;
        let n_layer = get("block_count")? as usize;
        let n_embd = get("embedding_length")? as usize;
        let n_head = get("attention.head_count")? as usize;
        let n_kv_head = get("attention.head_count_kv").unwrap_or(n_head as u32) as usize;
        let n_ff = get("feed_forward_length")? as usize;
        if n_head == 0 || n_kv_head == 0 || n_embd % n_head != 0 || n_head % n_kv_head != 0 {
            return Err(err("inconsistent head counts".into()));
        }
        let head_dim = n_embd / n_head;
        let rope_dim = get("rope.dimension_count").unwrap_or(head_dim as u32) as usize;
        if rope_dim > head_dim || rope_dim % 2 != 0 || n_embd % QK != 0 || n_ff % QK != 0 {
            return Err(err("unsupported dimensions".into()));
        }
        if md.contains_key(&format!("{arch}.rope.scaling.type"))
            || ct.tensor_infos.contains_key("rope_freqs.weight")
        {
            return Err(NativeRefusal::Unsupported("rope scaling".into()));
        }
        let cfg = LlamaConfig {
            n_layer,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            n_ff,
            eps: getf("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_base: getf("rope.freq_base").unwrap_or(10000.0),
            rope_dim,
            rope_neox: false,
            vocab: 0,
            context: context.max(1),
        };
        let base = ct.tensor_data_offset as usize;
        let file_len = mmap.len();
        let mmap: WeightBytes = mmap;
        let tensor = |name: &str, rows: usize, cols: Option<usize>| -> Result<W, NativeRefusal> {
            let info = ct
                .tensor_infos
                .get(name)
                .ok_or_else(|| err(format!("missing tensor {name}")))?;
            let ty = wtype(info.ggml_dtype).ok_or_else(|| {
                NativeRefusal::Unsupported(format!("{name}: {:?}", info.ggml_dtype))
            })?;
            let dims = info.shape.dims();
            let (r, c) = match dims {
                [c] => (1, *c),
                [r, c] => (*r, *c),
                _ => return Err(err(format!("{name}: unexpected rank {}", dims.len()))),
            };
            if (rows != 0 && r != rows) || cols.is_some_and(|cc| cc != c) || c % QK != 0 {
                return Err(err(format!("{name}: unexpected shape {dims:?}")));
            }
            let len = r
                .checked_mul(c / QK)
                .and_then(|n| n.checked_mul(ty.block_bytes()));
            let off = usize::try_from(info.offset)
                .ok()
                .and_then(|o| base.checked_add(o));
            let (Some(len), Some(off)) = (len, off) else {
                return Err(err(format!("{name}: size overflows")));
            };
            if off.checked_add(len).is_none_or(|end| end > file_len) {
                return Err(err(format!("{name}: data beyond end of file")));
            }
            Ok(W {
                ty,
                rows: r,
                cols: c,
                off,
                len,
            })
        };
        let vec_f32 = |w: W| -> Vec<f32> {
            let m = QMatRef {
                ty: w.ty,
                rows: w.rows,
                cols: w.cols,
                data: &(*mmap).as_ref()[w.off..w.off + w.len],
            };
            let mut v = vec![0f32; w.cols];
            m.dequantize_row(0, &mut v);
            v
        };
        let tok_embd = tensor("token_embd.weight", 0, Some(n_embd))?;
        let vocab = tok_embd.rows;
        let output = if ct.tensor_infos.contains_key("output.weight") {
            tensor("output.weight", vocab, Some(n_embd))?
        } else {
            tok_embd
        };
        let norm_t = tensor("output_norm.weight", 1, Some(n_embd))?;
        if norm_t.ty != WType::F32 && norm_t.ty != WType::F16 {
            return Err(NativeRefusal::Unsupported("quantized norm".into()));
        }
        let output_norm = vec_f32(norm_t);
        let kvd = n_kv_head * head_dim;
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            let an = tensor(&p("attn_norm"), 1, Some(n_embd))?;
            let fnm = tensor(&p("ffn_norm"), 1, Some(n_embd))?;
            layers.push(Layer {
                attn_norm: vec_f32(an),
                ffn_norm: vec_f32(fnm),
                wq: tensor(&p("attn_q"), n_embd, Some(n_embd))?,
                wk: tensor(&p("attn_k"), kvd, Some(n_embd))?,
                wv: tensor(&p("attn_v"), kvd, Some(n_embd))?,
                wo: tensor(&p("attn_output"), n_embd, Some(n_embd))?,
                w_gate: tensor(&p("ffn_gate"), n_ff, Some(n_embd))?,
                w_up: tensor(&p("ffn_up"), n_ff, Some(n_embd))?,
                w_down: tensor(&p("ffn_down"), n_embd, Some(n_ff))?,
            });
        }
        let cfg = LlamaConfig { vocab, ..cfg };
        Self::check_mixed(&layers)?;
        Ok(Self::from_parts(
            mmap,
            cfg,
            tok_embd,
            output,
            output_norm,
            layers,
            threads,
        ))
    }

    /// Matmul inputs must be quantized the same way for all weights of a step.
    pub(crate) fn check_mixed(layers: &[Layer]) -> Result<(), NativeRefusal> {
        for l in layers {
            let q = l.wq.ty.is_quantized();
            for w in [l.wk, l.wv] {
                if w.ty.is_quantized() != q {
                    return Err(NativeRefusal::Unsupported("mixed q/k/v types".into()));
                }
            }
            if l.w_gate.ty.is_quantized() != l.w_up.ty.is_quantized() {
                return Err(NativeRefusal::Unsupported("mixed gate/up types".into()));
            }
        }
        Ok(())
    }

    /// Assemble a model whose matrices (`W` offsets into `data`) were checked
    /// by the caller against `cfg`.
    pub(crate) fn from_parts(
        data: WeightBytes,
        cfg: LlamaConfig,
        tok_embd: W,
        output: W,
        output_norm: Vec<f32>,
        layers: Vec<Layer>,
        threads: usize,
    ) -> Self {
        let n_layer = layers.len();
        Self {
            k_cache: vec![Vec::new(); n_layer],
            v_cache: vec![Vec::new(); n_layer],
            cache_cap: 0,
            cache_len: 0,
            data,
            cfg,
            tok_embd,
            output,
            output_norm,
            layers,
            pool: SpinPool::new(threads),
        }
    }

    fn mat(&self, w: W) -> QMatRef<'_> {
        QMatRef {
            ty: w.ty,
            rows: w.rows,
            cols: w.cols,
            data: &(*self.data).as_ref()[w.off..w.off + w.len],
        }
    }

    /// Grow the caches to hold `needed` positions. K is `[pos][kv_head][dim]`;
    /// V is stored transposed, `[kv_head][dim][pos]` (as llama.cpp does without
    /// flash attention), so the V product is a contiguous dot per output value.
    fn ensure_cache(&mut self, needed: usize) -> Result<(), EngineError> {
        if needed <= self.cache_cap {
            return Ok(());
        }
        let cap = needed.div_ceil(KV_PAD) * KV_PAD;
        let kvd = self.cfg.n_kv_head * self.cfg.head_dim;
        let old = self.cache_cap;
        let n = cap
            .checked_mul(kvd)
            .ok_or_else(|| EngineError::Inference("KV cache size overflows".into()))?;
        let oom =
            |_| EngineError::Inference(format!("out of memory for a KV cache of {cap} positions"));
        for c in self.k_cache.iter_mut() {
            c.try_reserve_exact(n - c.len()).map_err(oom)?;
            c.resize(n, f16::ZERO);
        }
        for c in self.v_cache.iter_mut() {
            let mut v = Vec::new();
            v.try_reserve_exact(n).map_err(oom)?;
            v.resize(n, f16::ZERO);
            for r in 0..kvd {
                v[r * cap..r * cap + old].copy_from_slice(&c[r * old..(r + 1) * old]);
            }
            *c = v;
        }
        self.cache_cap = cap;
        Ok(())
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

/// RMS norm as ggml computes it: double sum of squares, f32 scale, then weight.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let mut sum = 0f64;
    for &v in x {
        sum += (v * v) as f64;
    }
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0f32 / (mean + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
    }
}

/// llama.cpp pads its KV window to a multiple of 256 (`llama_kv_cache::get_n_kv`):
/// softmax and the V product run over the whole window with masked slots at
/// exactly zero, so no scalar tail ever appears in ggml's f16 dot. We size the
/// cache in the same steps and skip the all-zero groups (same sums).
const KV_PAD: usize = 256;

/// Matmul input: quantized blocks for quantized weights, else the floats.
fn acts_for<'a>(
    w: W,
    xq: &'a SharedBuf<BlockQ8>,
    src: &'a SharedBuf<f32>,
    n_t: usize,
    width: usize,
) -> Acts<'a> {
    // SAFETY: both buffers are only read while a matmul step runs.
    unsafe {
        if w.ty.is_quantized() {
            Acts::Q8 {
                blocks: xq.slice(0, n_t * (width / QK)),
                per_row: width / QK,
            }
        } else {
            Acts::F32 {
                x: src.slice(0, n_t * width),
                cols: width,
            }
        }
    }
}

/// exp(x) as ggml's vectorised CPU code computes it (softmax, SiLU): a
/// range-reduced polynomial (max error ~1.5 ulp) with fused multiply-adds. Using
/// the same approximation keeps our activations bit-identical to llama.cpp's.
#[inline]
fn exp_ggml(x: f32) -> f32 {
    let f = f32::from_bits;
    let shift = f(0x4B40_0000); // 1.5 * 2^23: round-to-integer shifter
    let z = x.mul_add(f(0x3FB8_AA3B), shift); // x * log2(e) + shift
    let n = z - shift;
    let b = (-n).mul_add(f(0x35BF_BE8E), (-n).mul_add(f(0x3F31_7200), x)); // x - n*ln2 (hi, lo)
    let e = z.to_bits().wrapping_shl(23);
    let k = f(e.wrapping_add(1f32.to_bits()));
    let u = b * b;
    let j = f(0x3C07_2010)
        .mul_add(b, f(0x3D2B_9F17))
        .mul_add(u, f(0x3E2A_AF33).mul_add(b, f(0x3EFF_FEDB)))
        .mul_add(u, f(0x3F7F_FFF6) * b);
    if n.abs() <= 126.0 {
        return j.mul_add(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f(g.wrapping_add(0x7F00_0000));
    let s2 = f(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

#[inline]
fn silu(x: f32) -> f32 {
    x / (1.0 + exp_ggml(-x))
}

/// Softmax numerators and their sum the way ggml sums them: exp per value, a
/// float horizontal sum per group of 8, accumulated in f64.
fn softmax_exp_sum(sc: &mut [f32], mx: f32) -> f64 {
    let mut sum = 0f64;
    let n8 = sc.len() / 8 * 8;
    for ch in sc[..n8].chunks_exact_mut(8) {
        for v in ch.iter_mut() {
            *v = exp_ggml(*v - mx);
        }
        let t: [f32; 4] = std::array::from_fn(|l| ch[l + 4] + ch[l]);
        let s = (t[0] + t[2]) + (t[1] + t[3]);
        sum += s as f64;
    }
    for v in sc[n8..].iter_mut() {
        *v = (*v - mx).exp();
        sum += *v as f64;
    }
    sum
}

/// One forward pass's shapes and shared scratch, so that each step of the
/// layer loop is a named method. Every step runs on all team threads, each on
/// its own share of rows, tokens or heads; the team syncs between steps.
#[derive(Clone, Copy)]
struct Pass<'a> {
    m: &'a NativeLlama,
    c: &'a LlamaConfig,
    n_t: usize,
    pos: usize,
    d: usize,
    kvd: usize,
    qkv_w: usize,
    nb_d: usize,
    kv_len: usize,
    group: usize,
    max_kv: usize,
    gemm: bool,
    cap: usize,
    scale: f32,
    half: usize,
    rope: &'a [(f32, f32)],
    xb: &'a SharedBuf<f32>,
    xnb: &'a SharedBuf<f32>,
    xqb: &'a SharedBuf<BlockQ8>,
    qkvb: &'a SharedBuf<f32>,
    attb: &'a SharedBuf<f32>,
    gateb: &'a SharedBuf<f32>,
    hidb: &'a SharedBuf<f32>,
    logb: &'a SharedBuf<f32>,
    scb: &'a SharedBuf<f32>,
    kcb: &'a [SharedBuf<f16>],
    vcb: &'a [SharedBuf<f16>],
}

impl Pass<'_> {
    /// Quantize rows `t` of `src` (width `w`) into xq, or leave floats for F32/F16 weights.
    fn quantize(&self, team: &Team<'_>, src: &SharedBuf<f32>, w: usize) {
        let (t0, t1) = team.range(self.n_t, 1);
        for t in t0..t1 {
            // SAFETY: rows t0..t1 are this thread's; src is not written in this step.
            let row = unsafe { src.slice(t * w, w) };
            let out = unsafe { self.xqb.slice_mut(t * (w / QK), w / QK) };
            quantize_row_q8(row, out);
        }
    }

    /// 1. attention norm (+ quantize)
    fn attn_norm(&self, team: &Team<'_>, l: &Layer) {
        let Pass {
            c, n_t, d, xb, xnb, ..
        } = *self;
        let (t0, t1) = team.range(n_t, 1);
        for t in t0..t1 {
            let (xr, on) = unsafe { (xb.slice(t * d, d), xnb.slice_mut(t * d, d)) };
            rms_norm(xr, &l.attn_norm, c.eps, on);
        }
        if l.wq.ty.is_quantized() {
            self.quantize(team, xnb, d);
        }
        team.sync();
    }

    /// 2. q, k, v
    fn qkv(&self, team: &Team<'_>, l: &Layer) {
        let Pass {
            m: this,
            n_t,
            d,
            kvd,
            qkv_w,
            xnb,
            xqb,
            qkvb,
            ..
        } = *self;
        let (r0, r1) = team.range(qkv_w, 4);
        for (w, base) in [(l.wq, 0), (l.wk, d), (l.wv, d + kvd)] {
            let (s, e) = (r0.max(base), r1.min(base + w.rows));
            if s < e {
                let a = acts_for(w, xqb, xnb, n_t, d);
                this.mat(w)
                    .matmul_rows(&a, n_t, s - base, e - base, |t, r, v| unsafe {
                        qkvb.slice_mut(t * qkv_w + base + r, 1)[0] = v;
                    });
            }
        }
        team.sync();
    }

    /// 3a. RoPE on q and k; k, v into the f16 cache.
    fn rope_and_cache(&self, team: &Team<'_>, li: usize) {
        let Pass {
            c,
            n_t,
            pos,
            d,
            kvd,
            qkv_w,
            cap,
            half,
            rope,
            qkvb,
            kcb,
            vcb,
            ..
        } = *self;
        let units = n_t * (c.n_head + c.n_kv_head);
        let (u0, u1) = team.range(units, 1);
        for u in u0..u1 {
            let t = u / (c.n_head + c.n_kv_head);
            let h = u % (c.n_head + c.n_kv_head);
            let off = if h < c.n_head {
                t * qkv_w + h * c.head_dim
            } else {
                t * qkv_w + d + (h - c.n_head) * c.head_dim
            };
            let v = unsafe { qkvb.slice_mut(off, c.head_dim) };
            let ang = &rope[t * half..(t + 1) * half];
            for (i, &(co, si)) in ang.iter().enumerate() {
                let (a, b) = if c.rope_neox {
                    (i, i + half)
                } else {
                    (2 * i, 2 * i + 1)
                };
                let (x0, x1) = (v[a], v[b]);
                // ggml's C++ is built with FMA contraction: the first
                // product of each expression is fused, the second rounded.
                v[a] = x0.mul_add(co, -(x1 * si));
                v[b] = x0.mul_add(si, x1 * co);
            }
            if h >= c.n_head {
                let kh = h - c.n_head;
                let dst = (pos + t) * kvd + kh * c.head_dim;
                let kc = unsafe { kcb[li].slice_mut(dst, c.head_dim) };
                for (o, &s) in kc.iter_mut().zip(v.iter()) {
                    *o = f16::from_f32(s);
                }
                let vsrc = unsafe { qkvb.slice(t * qkv_w + d + kvd + kh * c.head_dim, c.head_dim) };
                for (e, &s) in vsrc.iter().enumerate() {
                    let at = (kh * c.head_dim + e) * cap + pos + t;
                    // SAFETY: one (position, kv head) per unit: disjoint.
                    unsafe { vcb[li].slice_mut(at, 1)[0] = f16::from_f32(s) };
                }
            }
        }
        team.sync();
    }

    /// 3b. attention per (token, head)
    fn attention(&self, team: &Team<'_>, li: usize) {
        let Pass {
            c,
            n_t,
            pos,
            d,
            kvd,
            qkv_w,
            kv_len,
            group,
            max_kv,
            gemm,
            cap,
            scale,
            qkvb,
            attb,
            scb,
            kcb,
            vcb,
            ..
        } = *self;
        let units = n_t * c.n_head;
        let (u0, u1) = team.range(units, 1);
        let sc = unsafe { scb.slice_mut(team.ith * max_kv, max_kv) };
        let mut qf = vec![0f32; c.head_dim];
        let mut pf = vec![0f32; max_kv];

        for u in u0..u1 {
            let t = u / c.n_head;
            let h = u % c.n_head;
            let kh = h / group;
            let n_ctx = pos + t + 1;
            // ggml converts Q to f16 for the K·Q product.
            let q = unsafe { qkvb.slice(t * qkv_w + h * c.head_dim, c.head_dim) };
            for (o, &s) in qf.iter_mut().zip(q) {
                *o = f16::from_f32(s).to_f32();
            }
            let kc = unsafe { kcb[li].slice(0, kv_len * kvd) };
            let mut mx = f32::NEG_INFINITY;
            for (j, s) in sc[..n_ctx].iter_mut().enumerate() {
                let kr = &kc[j * kvd + kh * c.head_dim..j * kvd + (kh + 1) * c.head_dim];
                let d = if gemm {
                    dot_f16_tiny(kr, &qf)
                } else {
                    dot_f16_ggml(kr, &qf)
                };
                *s = d * scale;
                mx = mx.max(*s);
            }
            // ggml's softmax runs over the whole padded window; masked
            // slots are exact zeros, so whole masked groups of 8 can be
            // skipped without changing the sum.
            let n_soft = n_ctx.div_ceil(8) * 8;
            for s in sc[n_ctx..n_soft].iter_mut() {
                *s = f32::NEG_INFINITY;
            }
            let sum = softmax_exp_sum(&mut sc[..n_soft], mx);
            let inv = (1.0 / sum) as f32;
            // V·P over the window rounded to the kernel's lane group:
            // probabilities (rounded to f16 like ggml) past n_ctx are 0.
            let n_v = n_ctx.div_ceil(if gemm { 8 } else { 32 }) * if gemm { 8 } else { 32 };
            for (o, &s) in pf[..n_ctx].iter_mut().zip(&sc[..n_ctx]) {
                *o = f16::from_f32(s * inv).to_f32();
            }
            pf[n_ctx..n_v].fill(0.0);
            let out = unsafe { attb.slice_mut(t * d + h * c.head_dim, c.head_dim) };
            for (e, o) in out.iter_mut().enumerate() {
                let vt = unsafe { vcb[li].slice((kh * c.head_dim + e) * cap, n_v) };
                *o = if gemm {
                    dot_f16_tiny(vt, &pf[..n_v])
                } else {
                    dot_f16_ggml(vt, &pf[..n_v])
                };
            }
        }
        team.sync();
    }

    /// 3c. quantize attention output, 4. output projection + residual
    fn out_proj(&self, team: &Team<'_>, l: &Layer) {
        let Pass {
            m: this,
            n_t,
            d,
            xb,
            xqb,
            attb,
            ..
        } = *self;
        if l.wo.ty.is_quantized() {
            self.quantize(team, attb, d);
            team.sync();
        }
        let (r0, r1) = team.range(d, 4);
        let a = acts_for(l.wo, xqb, attb, n_t, d);
        this.mat(l.wo)
            .matmul_rows(&a, n_t, r0, r1, |t, r, v| unsafe {
                xb.slice_mut(t * d + r, 1)[0] += v;
            });
        team.sync();
    }

    /// 5. ffn norm
    fn ffn_norm(&self, team: &Team<'_>, l: &Layer) {
        let Pass {
            c, n_t, d, xb, xnb, ..
        } = *self;
        let (t0, t1) = team.range(n_t, 1);
        for t in t0..t1 {
            let (xr, on) = unsafe { (xb.slice(t * d, d), xnb.slice_mut(t * d, d)) };
            rms_norm(xr, &l.ffn_norm, c.eps, on);
        }
        if l.w_gate.ty.is_quantized() {
            self.quantize(team, xnb, d);
        }
        team.sync();
    }

    /// 6. gate, up, silu(gate) * up
    fn gate_up(&self, team: &Team<'_>, l: &Layer) {
        let Pass {
            m: this,
            c,
            n_t,
            d,
            xnb,
            xqb,
            gateb,
            hidb,
            ..
        } = *self;
        let (r0, r1) = team.range(c.n_ff, 4);
        let a = acts_for(l.w_gate, xqb, xnb, n_t, d);
        this.mat(l.w_gate)
            .matmul_rows(&a, n_t, r0, r1, |t, r, v| unsafe {
                gateb.slice_mut(t * c.n_ff + r, 1)[0] = v;
            });
        this.mat(l.w_up)
            .matmul_rows(&a, n_t, r0, r1, |t, r, v| unsafe {
                let g = gateb.slice(t * c.n_ff + r, 1)[0];
                hidb.slice_mut(t * c.n_ff + r, 1)[0] = silu(g) * v;
            });
        team.sync();
    }

    /// 7. quantize hidden, 8. down projection + residual
    fn down_proj(&self, team: &Team<'_>, l: &Layer) {
        let Pass {
            m: this,
            c,
            n_t,
            d,
            xb,
            xqb,
            hidb,
            ..
        } = *self;
        if l.w_down.ty.is_quantized() {
            self.quantize(team, hidb, c.n_ff);
            team.sync();
        }
        let (r0, r1) = team.range(d, 4);
        let a = acts_for(l.w_down, xqb, hidb, n_t, c.n_ff);
        this.mat(l.w_down)
            .matmul_rows(&a, n_t, r0, r1, |t, r, v| unsafe {
                xb.slice_mut(t * d + r, 1)[0] += v;
            });
        team.sync();
    }

    /// Final norm of the last token, then the vocabulary projection.
    fn logits(&self, team: &Team<'_>) {
        let Pass {
            m: this,
            c,
            n_t,
            d,
            nb_d,
            xb,
            xnb,
            xqb,
            logb,
            ..
        } = *self;
        let last = n_t - 1;
        if team.ith == 0 {
            let (xr, on) = unsafe { (xb.slice(last * d, d), xnb.slice_mut(0, d)) };
            rms_norm(xr, &this.output_norm, c.eps, on);
            if this.output.ty.is_quantized() {
                let row = unsafe { xnb.slice(0, d) };
                quantize_row_q8(row, unsafe { xqb.slice_mut(0, nb_d) });
            }
        }
        team.sync();
        let (r0, r1) = team.range(c.vocab, 8);
        let a = if this.output.ty.is_quantized() {
            Acts::Q8 {
                blocks: unsafe { xqb.slice(0, nb_d) },
                per_row: nb_d,
            }
        } else {
            Acts::F32 {
                x: unsafe { xnb.slice(0, d) },
                cols: d,
            }
        };
        this.mat(this.output)
            .matmul_rows(&a, 1, r0, r1, |_, r, v| unsafe {
                logb.slice_mut(r, 1)[0] = v;
            });
    }
}

impl Backbone for NativeLlama {
    fn forward(&mut self, ids: &[u32], pos: usize) -> Result<Vec<f32>, EngineError> {
        let n_t = ids.len();
        if n_t == 0 {
            return Err(EngineError::Inference("empty input".into()));
        }
        if pos > self.cache_len {
            return Err(EngineError::Inference("position beyond cache".into()));
        }
        if pos + n_t > self.cfg.context {
            return Err(EngineError::Inference("context length exceeded".into()));
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.cfg.vocab) {
            return Err(EngineError::Inference(format!(
                "token id {bad} out of range"
            )));
        }
        self.ensure_cache(pos + n_t)?;
        let c = self.cfg.clone();
        let d = c.n_embd;
        let kvd = c.n_kv_head * c.head_dim;
        let qkv_w = d + 2 * kvd;
        let nb_d = d / QK;
        let nb_ff = c.n_ff / QK;
        let kv_len = pos + n_t;
        let group = c.n_head / c.n_kv_head;

        // Scratch (allocated per call; prefill chunks are few and decode is tiny).
        let mut x = vec![0f32; n_t * d];
        for (t, &id) in ids.iter().enumerate() {
            self.mat(self.tok_embd)
                .dequantize_row(id as usize, &mut x[t * d..(t + 1) * d]);
        }
        let mut xn = vec![0f32; n_t * d];
        let mut xq = vec![BlockQ8::default(); n_t * nb_d.max(nb_ff)];
        let mut qkv = vec![0f32; n_t * qkv_w];
        let mut att = vec![0f32; n_t * d];
        let mut gate = vec![0f32; n_t * c.n_ff];
        let mut hid = vec![0f32; n_t * c.n_ff];
        let mut logits = vec![0f32; c.vocab];
        let max_kv = kv_len.div_ceil(32) * 32;
        // llama.cpp multiplies K·Q and V·P with llamafile's tinyBLAS for batches
        // of two or more tokens (one 8-lane accumulator per output), and with
        // ggml_vec_dot_f16 (4x8 accumulators) for a single token.
        let gemm = n_t >= 2 && c.head_dim % 8 == 0;
        let n_threads = self.pool.threads();
        let mut scores = vec![0f32; n_threads * max_kv];

        // RoPE angles for the positions of this chunk, iterated like ggml.
        let half = c.rope_dim / 2;
        let mut rope = vec![(0f32, 0f32); n_t * half];
        let theta_scale = c.rope_base.powf(-2.0 / c.rope_dim as f32);
        for t in 0..n_t {
            let mut theta = (pos + t) as f32;
            for i in 0..half {
                rope[t * half + i] = (theta.cos(), theta.sin());
                theta *= theta_scale;
            }
        }

        let xb = SharedBuf::new(&mut x);
        let xnb = SharedBuf::new(&mut xn);
        let xqb = SharedBuf::new(&mut xq);
        let qkvb = SharedBuf::new(&mut qkv);
        let attb = SharedBuf::new(&mut att);
        let gateb = SharedBuf::new(&mut gate);
        let hidb = SharedBuf::new(&mut hid);
        let logb = SharedBuf::new(&mut logits);
        let scb = SharedBuf::new(&mut scores);
        let cap = self.cache_cap;
        let kcb: Vec<SharedBuf<f16>> = self.k_cache.iter_mut().map(|v| SharedBuf::new(v)).collect();
        let vcb: Vec<SharedBuf<f16>> = self.v_cache.iter_mut().map(|v| SharedBuf::new(v)).collect();
        let this = &*self;
        let scale = 1.0f32 / (c.head_dim as f32).sqrt();

        let pass = Pass {
            m: this,
            c: &c,
            n_t,
            pos,
            d,
            kvd,
            qkv_w,
            nb_d,
            kv_len,
            group,
            max_kv,
            gemm,
            cap,
            scale,
            half,
            rope: &rope,
            xb: &xb,
            xnb: &xnb,
            xqb: &xqb,
            qkvb: &qkvb,
            attb: &attb,
            gateb: &gateb,
            hidb: &hidb,
            logb: &logb,
            scb: &scb,
            kcb: &kcb,
            vcb: &vcb,
        };
        let run = self.pool.run(|team| {
            for (li, l) in this.layers.iter().enumerate() {
                pass.attn_norm(team, l);
                pass.qkv(team, l);
                pass.rope_and_cache(team, li);
                pass.attention(team, li);
                pass.out_proj(team, l);
                pass.ffn_norm(team, l);
                pass.gate_up(team, l);
                pass.down_proj(team, l);
            }
            pass.logits(team);
        });
        run.map_err(EngineError::Inference)?;
        self.cache_len = pos + n_t;
        Ok(logits)
    }

    fn truncate(&mut self, len: usize) -> bool {
        self.cache_len = self.cache_len.min(len);
        true
    }

    fn reset(&mut self) -> Result<(), EngineError> {
        self.cache_len = 0;
        Ok(())
    }
}
