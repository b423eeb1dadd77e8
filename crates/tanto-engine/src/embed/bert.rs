//! tanto's own BERT-family encoder (BERT, XLM-RoBERTa): the same
//! arithmetic as transformers' `BertModel`, run without padding.
//!
//! The inputs of a batch are concatenated (`N = Σ len` rows): every linear
//! layer is one large matrix product over real tokens only, and attention runs
//! per input and head on its own rows, so no mask and no padded token ever
//! costs work. Bias, GELU, residual and LayerNorm are fused passes over rows.
//! Matrix products use the `gemm` crate (AVX-512/AVX2 chosen at run time),
//! the same kernels as candle's CPU matmul.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use gemm::Parallelism;
use rayon::prelude::*;
use serde_json::Value;

use super::Backbone;

#[derive(Clone, Copy)]
enum Act {
    GeluErf,
    GeluTanh,
    Relu,
}

struct Layer {
    /// Query, key and value stacked: (3H × H) and (3H).
    wqkv: Vec<f32>,
    bqkv: Vec<f32>,
    wo: Vec<f32>,
    bo: Vec<f32>,
    ln1: (Vec<f32>, Vec<f32>),
    wi: Vec<f32>,
    bi: Vec<f32>,
    wo2: Vec<f32>,
    bo2: Vec<f32>,
    ln2: (Vec<f32>, Vec<f32>),
}

pub struct Bert {
    word: Vec<f32>,
    pos: Vec<f32>,
    type0: Vec<f32>,
    emb_ln: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    hidden: usize,
    inter: usize,
    heads: usize,
    vocab: usize,
    n_pos: usize,
    eps: f32,
    act: Act,
    /// XLM-RoBERTa numbers positions from `padding_idx + 1`.
    pos_offset: usize,
    threads: usize,
}

fn get_usize(cfg: &Value, key: &str) -> candle_core::Result<usize> {
    cfg.get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .filter(|v| *v > 0)
        .ok_or_else(|| candle_core::Error::Msg(format!("config.json has no positive {key}")))
}

fn flat(vb: &VarBuilder, shape: &[usize], name: &str) -> candle_core::Result<Vec<f32>> {
    vb.get(shape, name)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()
}

fn ln(vb: &VarBuilder, h: usize) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
    // Old checkpoints name LayerNorm parameters gamma/beta.
    let w = flat(vb, &[h], "weight").or_else(|_| flat(vb, &[h], "gamma"))?;
    let b = flat(vb, &[h], "bias").or_else(|_| flat(vb, &[h], "beta"))?;
    Ok((w, b))
}

impl Bert {
    /// `vb` points at the encoder's root (`embeddings.…`, `encoder.…`).
    pub fn load(
        arch: &str,
        cfg: &Value,
        vb: VarBuilder,
        threads: usize,
    ) -> candle_core::Result<Self> {
        let h = get_usize(cfg, "hidden_size")?;
        let inter = get_usize(cfg, "intermediate_size")?;
        let n_layers = get_usize(cfg, "num_hidden_layers")?;
        let heads = get_usize(cfg, "num_attention_heads")?;
        let vocab = get_usize(cfg, "vocab_size")?;
        let n_pos = get_usize(cfg, "max_position_embeddings")?;
        let n_types = get_usize(cfg, "type_vocab_size").unwrap_or(1);
        if h % heads != 0 {
            candle_core::bail!("hidden_size {h} is not a multiple of {heads} heads");
        }
        let eps = cfg
            .get("layer_norm_eps")
            .and_then(Value::as_f64)
            .unwrap_or(1e-12) as f32;
        let act = match cfg
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("gelu")
        {
            "gelu" => Act::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" | "gelu_approximate" => Act::GeluTanh,
            "relu" => Act::Relu,
            other => candle_core::bail!("hidden_act '{other}' is not supported"),
        };
        if let Some(t) = cfg.get("position_embedding_type").and_then(Value::as_str) {
            if t != "absolute" {
                candle_core::bail!("position_embedding_type '{t}' is not supported");
            }
        }
        let pos_offset = if arch == "xlm-roberta" {
            cfg.get("pad_token_id").and_then(Value::as_u64).unwrap_or(1) as usize + 1
        } else {
            0
        };
        let e = vb.pp("embeddings");
        let word = flat(&e, &[vocab, h], "word_embeddings.weight")?;
        let pos = flat(&e, &[n_pos, h], "position_embeddings.weight")?;
        let types = flat(&e, &[n_types, h], "token_type_embeddings.weight")?;
        let emb_ln = ln(&e.pp("LayerNorm"), h)?;
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            let s = a.pp("self");
            let mut wqkv = flat(&s, &[h, h], "query.weight")?;
            wqkv.extend(flat(&s, &[h, h], "key.weight")?);
            wqkv.extend(flat(&s, &[h, h], "value.weight")?);
            let mut bqkv = flat(&s, &[h], "query.bias")?;
            bqkv.extend(flat(&s, &[h], "key.bias")?);
            bqkv.extend(flat(&s, &[h], "value.bias")?);
            layers.push(Layer {
                wqkv,
                bqkv,
                wo: flat(&a, &[h, h], "output.dense.weight")?,
                bo: flat(&a, &[h], "output.dense.bias")?,
                ln1: ln(&a.pp("output.LayerNorm"), h)?,
                wi: flat(&l, &[inter, h], "intermediate.dense.weight")?,
                bi: flat(&l, &[inter], "intermediate.dense.bias")?,
                wo2: flat(&l, &[h, inter], "output.dense.weight")?,
                bo2: flat(&l, &[h], "output.dense.bias")?,
                ln2: ln(&l.pp("output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            word,
            pos,
            type0: types[..h].to_vec(),
            emb_ln,
            layers,
            hidden: h,
            inter,
            heads,
            vocab,
            n_pos,
            eps,
            act,
            pos_offset,
            threads: threads.max(1),
        })
    }

    fn par(&self) -> Parallelism {
        if self.threads > 1 {
            Parallelism::Rayon(self.threads)
        } else {
            Parallelism::None
        }
    }

    /// Hidden states of each input (rows of its real tokens), concatenated.
    pub fn encode(&self, inputs: &[&[u32]]) -> candle_core::Result<Vec<f32>> {
        let h = self.hidden;
        let n: usize = inputs.iter().map(|s| s.len()).sum();
        let mut x = vec![0f32; n * h];
        let mut row = 0;
        for s in inputs {
            for (i, &id) in s.iter().enumerate() {
                let id = id as usize;
                let p = i + self.pos_offset;
                if id >= self.vocab || p >= self.n_pos {
                    candle_core::bail!(
                        "token id {id} or position {p} is outside the model's tables"
                    );
                }
                let dst = &mut x[row * h..(row + 1) * h];
                let (w, pe) = (
                    &self.word[id * h..(id + 1) * h],
                    &self.pos[p * h..(p + 1) * h],
                );
                for j in 0..h {
                    dst[j] = w[j] + pe[j] + self.type0[j];
                }
                row += 1;
            }
        }
        layer_norm_rows(&mut x, h, &self.emb_ln, self.eps);
        let mut qkv = vec![0f32; n * 3 * h];
        let mut ctx = vec![0f32; n * h];
        let mut tmp = vec![0f32; n * h];
        let mut mid = vec![0f32; n * self.inter];
        let starts: Vec<usize> = inputs
            .iter()
            .scan(0, |acc, s| {
                let st = *acc;
                *acc += s.len();
                Some(st)
            })
            .collect();
        for l in &self.layers {
            self.linear(&x, n, h, &l.wqkv, 3 * h, &l.bqkv, &mut qkv);
            self.attention(&qkv, inputs, &starts, &mut ctx);
            self.linear(&ctx, n, h, &l.wo, h, &l.bo, &mut tmp);
            add_layer_norm(&mut x, &tmp, h, &l.ln1, self.eps);
            self.linear(&x, n, h, &l.wi, self.inter, &l.bi, &mut mid);
            activate(&mut mid, self.act);
            self.linear(&mid, n, self.inter, &l.wo2, h, &l.bo2, &mut tmp);
            add_layer_norm(&mut x, &tmp, h, &l.ln2, self.eps);
        }
        Ok(x)
    }

    /// `out (n × o) = x (n × k) · Wᵀ + b`, W row-major (o × k).
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &self,
        x: &[f32],
        n: usize,
        k: usize,
        w: &[f32],
        o: usize,
        b: &[f32],
        out: &mut [f32],
    ) {
        debug_assert!(x.len() >= n * k && w.len() == o * k && out.len() >= n * o);
        // SAFETY: the slices hold n×k, o×k and n×o elements (checked above in
        // debug builds, by construction of the buffers in `encode`), and the
        // strides describe exactly those row-major layouts.
        unsafe {
            gemm::gemm(
                n,
                o,
                k,
                out.as_mut_ptr(),
                1,
                o as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                k as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                self.par(),
            );
        }
        out[..n * o]
            .par_chunks_mut(o)
            .for_each(|r| r.iter_mut().zip(b).for_each(|(v, b)| *v += b));
    }

    /// Scaled dot-product attention per (input, head) over that input's rows.
    fn attention(&self, qkv: &[f32], inputs: &[&[u32]], starts: &[usize], ctx: &mut [f32]) {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let jobs: Vec<(usize, usize)> = (0..inputs.len())
            .flat_map(|s| (0..self.heads).map(move |hd| (s, hd)))
            .collect();
        let out = SendPtr(ctx.as_mut_ptr());
        jobs.par_iter().for_each(|&(s, hd)| {
            let out = &out;
            let len = inputs[s].len();
            let base = starts[s] * 3 * h;
            let q = &qkv[base + hd * d..];
            let k = &qkv[base + h + hd * d..];
            let v = &qkv[base + 2 * h + hd * d..];
            let mut p = vec![0f32; len * len];
            // SAFETY: q/k/v rows are 3h apart inside `qkv` (len rows from the
            // input's start); p is len × len; each (s, hd) job writes its own
            // columns hd*d..hd*d+d of its own rows of ctx, so writes never overlap.
            unsafe {
                gemm::gemm(
                    len,
                    len,
                    d,
                    p.as_mut_ptr(),
                    1,
                    len as isize,
                    false,
                    q.as_ptr(),
                    1,
                    (3 * h) as isize,
                    k.as_ptr(),
                    (3 * h) as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            for r in p.chunks_mut(len) {
                softmax(r);
            }
            unsafe {
                gemm::gemm(
                    len,
                    d,
                    len,
                    out.0.add(starts[s] * h + hd * d),
                    1,
                    h as isize,
                    false,
                    p.as_ptr(),
                    1,
                    len as isize,
                    v.as_ptr(),
                    1,
                    (3 * h) as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        });
    }
}

struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint output regions to rayon jobs (see `attention`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `e^x` for `x <= 0` (softmax after subtracting the row max): range
/// reduction by ln 2 and a degree-6 polynomial, within 2 ulp of `f32::exp`,
/// written so the compiler vectorizes the loops that call it.
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// `erf(x)` as a rational function of x² on [-4, 4] (Eigen's and PyTorch's
/// vectorized GELU use this form), within a few ulp of the exact value.
#[inline(always)]
fn erf_fast(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_6e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 - 2.133_740_5e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329e-3;
    q = q * x2 - 1.426_474e-2;
    x * p / q
}

fn softmax(r: &mut [f32]) {
    let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in r.iter_mut() {
        *v = exp_neg(*v - m);
    }
    let sum: f32 = r.iter().sum();
    let inv = 1.0 / sum;
    for v in r.iter_mut() {
        *v *= inv;
    }
}

fn layer_norm_row(x: &mut [f32], (w, b): &(Vec<f32>, Vec<f32>), eps: f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, w), b) in x.iter_mut().zip(w).zip(b) {
        *v = (*v - mean) * inv * w + b;
    }
}

fn layer_norm_rows(x: &mut [f32], h: usize, p: &(Vec<f32>, Vec<f32>), eps: f32) {
    x.par_chunks_mut(h).for_each(|r| layer_norm_row(r, p, eps));
}

/// `x = LayerNorm(x + y)`, row by row.
fn add_layer_norm(x: &mut [f32], y: &[f32], h: usize, p: &(Vec<f32>, Vec<f32>), eps: f32) {
    x.par_chunks_mut(h).zip(y.par_chunks(h)).for_each(|(r, y)| {
        r.iter_mut().zip(y).for_each(|(a, b)| *a += b);
        layer_norm_row(r, p, eps);
    });
}

fn activate(x: &mut [f32], act: Act) {
    x.par_chunks_mut(4096).for_each(|c| match act {
        Act::GeluErf => c
            .iter_mut()
            .for_each(|v| *v = 0.5 * *v * (1.0 + erf_fast(*v * std::f32::consts::FRAC_1_SQRT_2))),
        Act::GeluTanh => c.iter_mut().for_each(|v| {
            let x = *v;
            *v = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
        }),
        Act::Relu => c.iter_mut().for_each(|v| *v = v.max(0.0)),
    });
}

/// The [`Backbone`] view: padded `(batch, len)` in, padded `(batch, len, h)` out
/// (padding rows zero); [`Bert::encode`] itself never sees padding.
impl Backbone for Bert {
    fn forward(&mut self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, len) = ids.dims2()?;
        let ids = ids.to_vec2::<u32>()?;
        let mask = mask.to_vec2::<u32>()?;
        let rows: Vec<&[u32]> = ids
            .iter()
            .zip(&mask)
            .map(|(r, m)| &r[..m.iter().filter(|&&v| v != 0).count()])
            .collect();
        let x = self.encode(&rows)?;
        let h = self.hidden;
        let mut out = vec![0f32; b * len * h];
        let mut at = 0;
        for (i, r) in rows.iter().enumerate() {
            let n = r.len() * h;
            out[i * len * h..i * len * h + n].copy_from_slice(&x[at..at + n]);
            at += n;
        }
        Tensor::from_vec(out, (b, len, h), ids_device())
    }

    fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// No padding reaches the arithmetic and attention is per input, so
    /// large batches only make the matrix products more efficient.
    fn token_budget(&self) -> usize {
        16_384
    }

    fn engine_name(&self) -> &'static str {
        "tanto-native encoder"
    }
}

fn ids_device() -> &'static candle_core::Device {
    &candle_core::Device::Cpu
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_and_erf_match_the_exact_functions() {
        let mut worst_exp = 0f64;
        let mut worst_erf = 0f64;
        for i in 0..=200_000 {
            let x = -60.0 + i as f32 * 0.0003;
            let want = (x as f64).exp();
            let rel = ((exp_neg(x) as f64 - want) / want).abs();
            worst_exp = worst_exp.max(rel);
            let y = -5.0 + i as f32 * 0.00005;
            let e = libm::erf(y as f64);
            worst_erf = worst_erf.max((erf_fast(y) as f64 - e).abs());
        }
        assert!(worst_exp < 5e-7, "exp relative error {worst_exp:e}");
        assert!(worst_erf < 5e-7, "erf absolute error {worst_erf:e}");
    }
}
