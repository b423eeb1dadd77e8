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

fn causal_mask(len: usize, dev: &Device) -> candle_core::Result<Tensor> {
    let m: Vec<f32> = (0..len)
        .flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (len, len), dev)
}

impl Backbone for Decoder {
    fn forward(&mut self, ids: &Tensor, _mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let dev = ids.device().clone();
        let (cos, sin) = self.rope_tables(t, &dev)?;
        let mask = causal_mask(t, &dev)?;
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
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att
                .matmul(&v)?
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
