//! Decoder embedders (Qwen3-Embedding, gte-Qwen2): the Qwen2/Qwen3 decoder
//! stack run once over the whole input, without a KV cache, returning the final
//! normed hidden states (no LM head). Attention is causal, as in transformers'
//! `Qwen2Model`/`Qwen3Model`, so right padding never reaches a real token: a
//! padded batch gives each input the states it has alone. The two differ only
//! in Qwen2's q/k/v biases and Qwen3's per-head q/k RMSNorm.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{linear_b, linear_no_bias, rms_norm, Linear, RmsNorm, VarBuilder};
use serde_json::Value;

use super::Backbone;

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    input_norm: RmsNorm,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

pub struct Decoder {
    embed: candle_nn::Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    hidden: usize,
    rope_theta: f64,
}

fn get_usize(cfg: &Value, key: &str) -> candle_core::Result<usize> {
    cfg.get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .filter(|v| *v > 0)
        .ok_or_else(|| candle_core::Error::Msg(format!("config.json has no positive {key}")))
}

impl Decoder {
    pub fn load(arch: &str, cfg: &Value, vb: VarBuilder) -> candle_core::Result<Self> {
        let qwen3 = arch == "qwen3";
        let hidden = get_usize(cfg, "hidden_size")?;
        let inter = get_usize(cfg, "intermediate_size")?;
        let n_layers = get_usize(cfg, "num_hidden_layers")?;
        let heads = get_usize(cfg, "num_attention_heads")?;
        let kv_heads = get_usize(cfg, "num_key_value_heads").unwrap_or(heads);
        let head_dim = get_usize(cfg, "head_dim").unwrap_or(hidden / heads);
        let vocab = get_usize(cfg, "vocab_size")?;
        let eps = cfg
            .get("rms_norm_eps")
            .and_then(Value::as_f64)
            .unwrap_or(1e-6);
        let rope_theta = cfg
            .get("rope_theta")
            .and_then(Value::as_f64)
            .unwrap_or(10_000.0);
        if heads % kv_heads != 0 || head_dim % 2 != 0 {
            candle_core::bail!(
                "config.json: {heads} heads over {kv_heads} KV heads, head_dim {head_dim}"
            );
        }
        let bias = cfg
            .get("attention_bias")
            .and_then(Value::as_bool)
            .unwrap_or(!qwen3);
        let vb_m = vb.pp("model");
        let embed = candle_nn::embedding(vocab, hidden, vb_m.pp("embed_tokens"))?;
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let l = vb_m.pp(format!("layers.{i}"));
            let a = l.pp("self_attn");
            let mlp = l.pp("mlp");
            layers.push(Layer {
                q: linear_b(hidden, heads * head_dim, bias, a.pp("q_proj"))?,
                k: linear_b(hidden, kv_heads * head_dim, bias, a.pp("k_proj"))?,
                v: linear_b(hidden, kv_heads * head_dim, bias, a.pp("v_proj"))?,
                o: linear_no_bias(heads * head_dim, hidden, a.pp("o_proj"))?,
                q_norm: if qwen3 {
                    Some(rms_norm(head_dim, eps, a.pp("q_norm"))?)
                } else {
                    None
                },
                k_norm: if qwen3 {
                    Some(rms_norm(head_dim, eps, a.pp("k_norm"))?)
                } else {
                    None
                },
                input_norm: rms_norm(hidden, eps, l.pp("input_layernorm"))?,
                post_norm: rms_norm(hidden, eps, l.pp("post_attention_layernorm"))?,
                gate: linear_no_bias(hidden, inter, mlp.pp("gate_proj"))?,
                up: linear_no_bias(hidden, inter, mlp.pp("up_proj"))?,
                down: linear_no_bias(inter, hidden, mlp.pp("down_proj"))?,
            });
        }
        Ok(Self {
            embed,
            layers,
            norm: rms_norm(hidden, eps, vb_m.pp("norm"))?,
            heads,
            kv_heads,
            head_dim,
            hidden,
            rope_theta,
        })
    }

    fn rope_tables(&self, len: usize, dev: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let half = self.head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / (self.rope_theta.powf(2.0 * i as f64 / self.head_dim as f64)) as f32)
            .collect();
        let inv = Tensor::from_vec(inv, (1, half), dev)?;
        let pos = Tensor::arange(0u32, len as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((len, 1))?;
        let freqs = pos.matmul(&inv)?;
        Ok((freqs.cos()?, freqs.sin()?))
    }
}

/// The causal mask for query rows `r0..r0 + rows` over keys `0..keys`.
fn causal_mask(r0: usize, rows: usize, keys: usize, dev: &Device) -> candle_core::Result<Tensor> {
    let m: Vec<f32> = (r0..r0 + rows)
        .flat_map(|i| (0..keys).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (rows, keys), dev)
}

/// Most attention scores (f32) held at once per layer: 64 MiB. A long input
/// (Qwen3-Embedding takes 32k tokens: 69 GB of scores in one piece) is
/// attended in blocks of query rows instead; short inputs stay one block.
const ATTN_BLOCK_SCORES: usize = 1 << 24;

/// Causal softmax attention of `q` (b, h, t, d) over `k`, `v`, in blocks of
/// `rows` query rows; block `r0..` sees keys `0..r0 + rows` only. One block
/// (`rows >= t`) is the whole matrix at once.
fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    rows: usize,
) -> candle_core::Result<Tensor> {
    let t = q.dim(2)?;
    let dev = q.device();
    if rows >= t {
        let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&causal_mask(0, t, t, dev)?)?;
        return candle_nn::ops::softmax_last_dim(&att)?.matmul(v);
    }
    let mut parts = Vec::with_capacity(t.div_ceil(rows));
    for r0 in (0..t).step_by(rows) {
        let n = rows.min(t - r0);
        let keys = r0 + n;
        let kb = k.narrow(2, 0, keys)?;
        let att = (q.narrow(2, r0, n)?.matmul(&kb.t()?)? * scale)?
            .broadcast_add(&causal_mask(r0, n, keys, dev)?)?;
        parts.push(candle_nn::ops::softmax_last_dim(&att)?.matmul(&v.narrow(2, 0, keys)?)?);
    }
    Tensor::cat(&parts, 2)
}

/// Query rows per attention block for `lanes` (batch × heads) and `t` tokens.
fn attention_rows(lanes: usize, t: usize) -> usize {
    (ATTN_BLOCK_SCORES / (lanes * t).max(1)).clamp(1, t.max(1))
}

impl Backbone for Decoder {
    fn forward(&mut self, ids: &Tensor, _mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let dev = ids.device().clone();
        let (cos, sin) = self.rope_tables(t, &dev)?;
        let rows = attention_rows(b * self.heads, t);
        let groups = self.heads / self.kv_heads;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let mut x = self.embed.forward(ids)?;
        for l in &self.layers {
            let h = l.input_norm.forward(&x)?;
            let split = |lin: &Linear, n: usize| -> candle_core::Result<Tensor> {
                lin.forward(&h)?
                    .reshape((b, t, n, self.head_dim))?
                    .transpose(1, 2)
            };
            let mut q = split(&l.q, self.heads)?;
            let mut k = split(&l.k, self.kv_heads)?;
            let v = split(&l.v, self.kv_heads)?.contiguous()?;
            if let (Some(qn), Some(kn)) = (&l.q_norm, &l.k_norm) {
                q = qn.forward(&q.contiguous()?)?;
                k = kn.forward(&k.contiguous()?)?;
            }
            let q = candle_nn::rotary_emb::rope(&q.contiguous()?, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&k.contiguous()?, &cos, &sin)?;
            let k = candle_transformers::utils::repeat_kv(k, groups)?.contiguous()?;
            let v = candle_transformers::utils::repeat_kv(v, groups)?.contiguous()?;
            let y = causal_attention(&q, &k, &v, scale, rows)?;
            let y = y
                .transpose(1, 2)?
                .reshape((b, t, self.heads * self.head_dim))?;
            x = (x + l.o.forward(&y)?)?;
            let h = l.post_norm.forward(&x)?;
            let g = candle_nn::ops::silu(&l.gate.forward(&h)?)?;
            let mlp = l.down.forward(&(g * l.up.forward(&h)?)?)?;
            x = (x + mlp)?;
        }
        self.norm.forward(&x)
    }

    fn hidden_size(&self) -> usize {
        self.hidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_inputs_attend_in_bounded_blocks() {
        // Short inputs: one block, as before.
        assert_eq!(attention_rows(16, 512), 512);
        // Qwen3-Embedding at 32k tokens, 16 heads: blocks of 32 rows, 64 MiB each.
        let r = attention_rows(16, 32_768);
        assert_eq!(r, 32);
        assert!(16 * r * 32_768 <= ATTN_BLOCK_SCORES);
        assert_eq!(attention_rows(1 << 20, 1 << 20), 1);
    }

    #[test]
    fn blocked_attention_equals_one_block() {
        // The same scores, masked and softmaxed in row blocks, give the same
        // output as the whole (causal) matrix.
        let dev = Device::Cpu;
        let (h, t, d) = (2usize, 37usize, 8usize);
        let f = |s: f32| {
            Tensor::from_vec(
                (0..h * t * d)
                    .map(|i| ((i as f32) * s).sin())
                    .collect::<Vec<_>>(),
                (1, h, t, d),
                &dev,
            )
            .unwrap()
        };
        let (q, k, v) = (f(0.37), f(0.11), f(0.23));
        let whole = causal_attention(&q, &k, &v, 0.35, t).unwrap();
        let blocked = causal_attention(&q, &k, &v, 0.35, 5).unwrap();
        let diff = (whole - blocked)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
    }
}
