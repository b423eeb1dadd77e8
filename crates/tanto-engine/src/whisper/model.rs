//! The Whisper encoder-decoder (`WhisperForConditionalGeneration`), in
//! Hugging Face's tensor names, with a self-attention KV cache in the decoder
//! and the cross-attention keys/values computed once per 30-s window.
//!
//! Pre-LayerNorm transformer blocks; the encoder is two GELU convolutions
//! (the second with stride 2: 3000 mel frames → 1500 positions) plus learned
//! sinusoidal positions; the decoder's output projection is the token
//! embedding (tied). Queries are scaled by `head_dim^-0.5`, keys have no bias.

use std::collections::HashMap;

use candle_core::{CpuStorage, DType, Device, Module, Result, Storage, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, Linear};
use rayon::prelude::*;
use serde::Deserialize;

/// Most rows of activations for which [`small_matmul`] replaces the GEMM.
const SMALL_M: usize = 4;

/// `x · wᵀ` for a few rows of `x` (`(…, k)`, at most [`SMALL_M`] rows) and an
/// f32 or f16 `w` (`(m, k)`, contiguous, on the CPU): the output rows are
/// split across the rayon pool. A decoder step is such a product; the GEMM
/// runs its matrix-vector case on one thread, which made the 51,865-row
/// vocabulary projection the decoder's bottleneck. `None`: not applicable,
/// use the GEMM.
fn small_matmul(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    if !w.device().is_cpu() || x.dtype() != DType::F32 {
        return Ok(None);
    }
    let (m, k) = w.dims2()?;
    let dims = x.dims().to_vec();
    let Some((&xk, lead)) = dims.split_last() else {
        return Ok(None);
    };
    let n: usize = lead.iter().product();
    if xk != k || n == 0 || n > SMALL_M {
        return Ok(None);
    }
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let (storage, layout) = w.storage_and_layout();
    let Some((o0, o1)) = layout.contiguous_offsets() else {
        return Ok(None);
    };
    let out = match &*storage {
        Storage::Cpu(CpuStorage::F32(data)) => {
            rows_dot(&data[o0..o1], m, k, n, &xs, crate::kernels::dot_f32)
        }
        Storage::Cpu(CpuStorage::F16(data)) => {
            rows_dot(&data[o0..o1], m, k, n, &xs, crate::kernels::dot_f16)
        }
        _ => return Ok(None),
    };
    drop(storage);
    let y = Tensor::from_vec(out, (m, n), x.device())?;
    let y = if n == 1 {
        y.reshape((1, m))?
    } else {
        y.t()?.contiguous()?
    };
    let mut shape = lead.to_vec();
    shape.push(m);
    Ok(Some(y.reshape(shape)?))
}

/// `out[r * n + t] = dot(w[r], x[t])`, in chunks of rows per rayon task.
fn rows_dot<T: Sync>(
    wd: &[T],
    m: usize,
    k: usize,
    n: usize,
    xs: &[f32],
    dot: fn(&[T], &[f32]) -> f32,
) -> Vec<f32> {
    const ROWS: usize = 256;
    let mut out = vec![0f32; m * n];
    out.par_chunks_mut(ROWS * n)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (i, o) in chunk.chunks_mut(n).enumerate() {
                let r = c * ROWS + i;
                let wr = &wd[r * k..(r + 1) * k];
                for (t, v) in o.iter_mut().enumerate() {
                    *v = dot(wr, &xs[t * k..(t + 1) * k]);
                }
            }
        });
    out
}

/// A linear layer through [`small_matmul`] when it applies; a weight kept in
/// f16 (see [`compact_f16`]) is widened for the GEMM.
fn lin(l: &Linear, x: &Tensor) -> Result<Tensor> {
    let y = match small_matmul(x, l.weight())? {
        Some(y) => y,
        None if l.weight().dtype() != x.dtype() => {
            let w = l.weight().to_dtype(x.dtype())?;
            x.broadcast_matmul(&w.t()?)?
        }
        None => return l.forward(x),
    };
    match l.bias() {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// `w` in f16 when that loses nothing (every value is an f16, as in
/// CTranslate2 float16 and f16 safetensors checkpoints, which arrive widened
/// to f32), on the CPU only; else `w` as it is. The decoder is bound by
/// memory bandwidth (each step reads every weight once), so half the bytes
/// is nearly half the time, and [`crate::kernels::dot_f16`] sums in the
/// same order as the f32 kernel: the logits stay bit-identical.
fn compact_f16(w: Tensor) -> Result<Tensor> {
    if !w.device().is_cpu() || w.dtype() != DType::F32 || w.rank() != 2 {
        return Ok(w);
    }
    let h = w.to_dtype(DType::F16)?;
    let back = h.to_dtype(DType::F32)?;
    // Bit-exact round trip (NaN-free weights compare equal to themselves).
    let same = w.eq(&back)?.to_dtype(DType::U8)?.flatten_all()?.min(0)?;
    Ok(if same.to_scalar::<u8>()? == 1 { h } else { w })
}

fn compact_linear(l: Linear) -> Result<Linear> {
    let b = l.bias().cloned();
    Ok(Linear::new(compact_f16(l.weight().clone())?, b))
}

impl Attention {
    fn compact(self) -> Result<Self> {
        Ok(Self {
            q: compact_linear(self.q)?,
            k: compact_linear(self.k)?,
            v: compact_linear(self.v)?,
            out: compact_linear(self.out)?,
            ..self
        })
    }
}

/// The hyper-parameters, as HF's config.json spells them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WhisperConfig {
    pub vocab_size: usize,
    pub num_mel_bins: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_layers: usize,
    pub decoder_attention_heads: usize,
    #[serde(default = "default_source_positions")]
    pub max_source_positions: usize,
    #[serde(default = "default_target_positions")]
    pub max_target_positions: usize,
    #[serde(default)]
    pub encoder_ffn_dim: Option<usize>,
    #[serde(default)]
    pub decoder_ffn_dim: Option<usize>,
}

fn default_source_positions() -> usize {
    1500
}
fn default_target_positions() -> usize {
    448
}

/// Tensors by HF name, already in the compute dtype.
pub type TensorMap = HashMap<String, Tensor>;

fn take(w: &mut TensorMap, name: &str) -> Result<Tensor> {
    w.remove(name)
        .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor '{name}'")))
}

fn linear(w: &mut TensorMap, p: &str, bias: bool) -> Result<Linear> {
    let weight = take(w, &format!("{p}.weight"))?;
    let b = if bias {
        Some(take(w, &format!("{p}.bias"))?)
    } else {
        // HF checkpoints have no k_proj bias; tolerate one being present.
        w.remove(&format!("{p}.bias"))
    };
    Ok(Linear::new(weight, b))
}

fn layer_norm(w: &mut TensorMap, p: &str) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        take(w, &format!("{p}.weight"))?,
        take(w, &format!("{p}.bias"))?,
        1e-5,
    ))
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    scale: f64,
}

impl Attention {
    fn load(w: &mut TensorMap, p: &str, d: usize, heads: usize) -> Result<Self> {
        Ok(Self {
            q: linear(w, &format!("{p}.q_proj"), true)?,
            k: linear(w, &format!("{p}.k_proj"), false)?,
            v: linear(w, &format!("{p}.v_proj"), true)?,
            out: linear(w, &format!("{p}.out_proj"), true)?,
            heads,
            scale: ((d / heads) as f64).powf(-0.5),
        })
    }

    /// (1, T, D) → (1, H, T, hd)
    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        x.reshape((b, t, self.heads, d / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.split(&lin(&self.k, x)?)?,
            self.split(&lin(&self.v, x)?)?,
        ))
    }

    /// Attention of `x` over `k`/`v` (already split into heads).
    fn attend(&self, x: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let q = self.split(&(lin(&self.q, x)? * self.scale)?)?;
        let mut att = q.matmul(&k.t()?)?;
        if let Some(m) = mask {
            att = att.broadcast_add(m)?;
        }
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(v)?.transpose(1, 2)?.reshape((b, t, d))?;
        lin(&self.out, &y)
    }
}

struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn compact(self) -> Result<Self> {
        Ok(Self {
            fc1: compact_linear(self.fc1)?,
            fc2: compact_linear(self.fc2)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        lin(&self.fc2, &lin(&self.fc1, x)?.gelu_erf()?)
    }
}

struct EncoderLayer {
    attn_ln: LayerNorm,
    attn: Attention,
    mlp_ln: LayerNorm,
    mlp: Mlp,
}

impl EncoderLayer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.attn_ln.forward(x)?;
        let (k, v) = self.attn.keys_values(&h)?;
        let x = (x + self.attn.attend(&h, &k, &v, None)?)?;
        let h = self.mlp_ln.forward(&x)?;
        x + self.mlp.forward(&h)?
    }
}

struct DecoderLayer {
    self_ln: LayerNorm,
    self_attn: Attention,
    cross_ln: LayerNorm,
    cross_attn: Attention,
    mlp_ln: LayerNorm,
    mlp: Mlp,
}

fn mlp(w: &mut TensorMap, p: &str) -> Result<Mlp> {
    Ok(Mlp {
        fc1: linear(w, &format!("{p}.fc1"), true)?,
        fc2: linear(w, &format!("{p}.fc2"), true)?,
    })
}

/// Self-attention keys/values of the tokens so far, per decoder layer.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    /// Tokens in the cache.
    pub len: usize,
}

/// Cross-attention keys/values of one window's encoder output, per layer.
pub struct CrossKv(Vec<(Tensor, Tensor)>);

pub struct Whisper {
    pub config: WhisperConfig,
    conv1: Conv1d,
    conv2: Conv1d,
    enc_pos: Tensor,
    enc_layers: Vec<EncoderLayer>,
    enc_ln: LayerNorm,
    embed: Tensor,
    dec_pos: Tensor,
    dec_layers: Vec<DecoderLayer>,
    dec_ln: LayerNorm,
    device: Device,
}

impl Whisper {
    /// Build from HF-named tensors (`model.encoder.*`, `model.decoder.*`).
    pub fn new(config: WhisperConfig, mut w: TensorMap, device: &Device) -> Result<Self> {
        let c = &config;
        let d = c.d_model;
        let conv = |w: &mut TensorMap, p: &str, stride: usize| -> Result<Conv1d> {
            Ok(Conv1d::new(
                take(w, &format!("{p}.weight"))?,
                Some(take(w, &format!("{p}.bias"))?),
                Conv1dConfig {
                    padding: 1,
                    stride,
                    dilation: 1,
                    groups: 1,
                    cudnn_fwd_algo: None,
                },
            ))
        };
        let conv1 = conv(&mut w, "model.encoder.conv1", 1)?;
        let conv2 = conv(&mut w, "model.encoder.conv2", 2)?;
        let enc_pos = take(&mut w, "model.encoder.embed_positions.weight")?;
        let mut enc_layers = Vec::with_capacity(c.encoder_layers);
        for i in 0..c.encoder_layers {
            let p = format!("model.encoder.layers.{i}");
            enc_layers.push(EncoderLayer {
                attn_ln: layer_norm(&mut w, &format!("{p}.self_attn_layer_norm"))?,
                attn: Attention::load(
                    &mut w,
                    &format!("{p}.self_attn"),
                    d,
                    c.encoder_attention_heads,
                )?,
                mlp_ln: layer_norm(&mut w, &format!("{p}.final_layer_norm"))?,
                mlp: mlp(&mut w, &p)?,
            });
        }
        let enc_ln = layer_norm(&mut w, "model.encoder.layer_norm")?;
        let embed = compact_f16(take(&mut w, "model.decoder.embed_tokens.weight")?)?;
        let dec_pos = take(&mut w, "model.decoder.embed_positions.weight")?;
        let mut dec_layers = Vec::with_capacity(c.decoder_layers);
        for i in 0..c.decoder_layers {
            let p = format!("model.decoder.layers.{i}");
            let h = c.decoder_attention_heads;
            dec_layers.push(DecoderLayer {
                self_ln: layer_norm(&mut w, &format!("{p}.self_attn_layer_norm"))?,
                self_attn: Attention::load(&mut w, &format!("{p}.self_attn"), d, h)?.compact()?,
                cross_ln: layer_norm(&mut w, &format!("{p}.encoder_attn_layer_norm"))?,
                cross_attn: Attention::load(&mut w, &format!("{p}.encoder_attn"), d, h)?
                    .compact()?,
                mlp_ln: layer_norm(&mut w, &format!("{p}.final_layer_norm"))?,
                mlp: mlp(&mut w, &p)?.compact()?,
            });
        }
        let dec_ln = layer_norm(&mut w, "model.decoder.layer_norm")?;
        let check = |t: &Tensor, want: &[usize], name: &str| -> Result<()> {
            if t.dims() != want {
                candle_core::bail!("'{name}' is {:?}, config.json says {:?}", t.dims(), want)
            }
            Ok(())
        };
        check(
            &embed,
            &[c.vocab_size, d],
            "model.decoder.embed_tokens.weight",
        )?;
        check(
            conv1.weight(),
            &[d, c.num_mel_bins, 3],
            "model.encoder.conv1.weight",
        )?;
        if enc_pos.dims() != [c.max_source_positions, d] {
            candle_core::bail!(
                "'model.encoder.embed_positions.weight' is {:?}, want [{}, {d}]",
                enc_pos.dims(),
                c.max_source_positions
            )
        }
        if dec_pos.dim(0)? < 2 || dec_pos.dim(1)? != d {
            candle_core::bail!(
                "'model.decoder.embed_positions.weight' is {:?}",
                dec_pos.dims()
            )
        }
        Ok(Self {
            config,
            conv1,
            conv2,
            enc_pos,
            enc_layers,
            enc_ln,
            embed,
            dec_pos,
            dec_layers,
            dec_ln,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Most tokens the decoder has positions for.
    pub fn max_tokens(&self) -> usize {
        self.dec_pos.dim(0).unwrap_or(448)
    }

    /// Encoder over one window: mel `(n_mels, 3000)` → `(1, 1500, d)`.
    pub fn encode(&self, mel: &Tensor) -> Result<Tensor> {
        let x = mel.unsqueeze(0)?;
        let x = self.conv1.forward(&x)?.gelu_erf()?;
        let x = self.conv2.forward(&x)?.gelu_erf()?;
        let x = x.transpose(1, 2)?;
        let t = x.dim(1)?;
        if t > self.enc_pos.dim(0)? {
            candle_core::bail!(
                "{t} encoder positions, the model has {}",
                self.enc_pos.dim(0)?
            )
        }
        let mut x = x.broadcast_add(&self.enc_pos.narrow(0, 0, t)?)?;
        for l in &self.enc_layers {
            x = l.forward(&x)?;
        }
        self.enc_ln.forward(&x)
    }

    /// The cross-attention keys and values of an encoder output, per layer.
    pub fn cross_kv(&self, enc: &Tensor) -> Result<CrossKv> {
        Ok(CrossKv(
            self.dec_layers
                .iter()
                .map(|l| l.cross_attn.keys_values(enc))
                .collect::<Result<_>>()?,
        ))
    }

    /// Run `tokens` through the decoder after the `cache.len` cached ones and
    /// return the logits of every new position, `(n, vocab)` f32.
    pub fn decode(&self, tokens: &[u32], cross: &CrossKv, cache: &mut KvCache) -> Result<Tensor> {
        let n = tokens.len();
        let start = cache.len;
        if start + n > self.max_tokens() {
            candle_core::bail!(
                "{} decoder tokens, the model has {} positions",
                start + n,
                self.max_tokens()
            )
        }
        if cache.layers.len() != self.dec_layers.len() {
            cache.layers = vec![None; self.dec_layers.len()];
        }
        let ids = Tensor::new(tokens, &self.device)?;
        let x = self.embed.index_select(&ids, 0)?.to_dtype(DType::F32)?;
        let x = (x + self.dec_pos.narrow(0, start, n)?)?;
        let mut x = x.unsqueeze(0)?;
        let mask = if n > 1 {
            let total = start + n;
            let m: Vec<f32> = (0..n)
                .flat_map(|i| {
                    (0..total).map(move |j| {
                        if j > start + i {
                            f32::NEG_INFINITY
                        } else {
                            0.0
                        }
                    })
                })
                .collect();
            Some(Tensor::from_vec(m, (n, total), &self.device)?)
        } else {
            None
        };
        for (i, l) in self.dec_layers.iter().enumerate() {
            let h = l.self_ln.forward(&x)?;
            let (k, v) = l.self_attn.keys_values(&h)?;
            let (k, v) = match cache.layers[i].take() {
                Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
                None => (k, v),
            };
            x = (x + l.self_attn.attend(&h, &k, &v, mask.as_ref())?)?;
            cache.layers[i] = Some((k, v));
            let h = l.cross_ln.forward(&x)?;
            let (ck, cv) = &cross.0[i];
            x = (x + l.cross_attn.attend(&h, ck, cv, None)?)?;
            let h = l.mlp_ln.forward(&x)?;
            x = (x + l.mlp.forward(&h)?)?;
        }
        cache.len = start + n;
        let x = self.dec_ln.forward(&x)?.squeeze(0)?;
        match small_matmul(&x, &self.embed)? {
            Some(y) => Ok(y),
            None => x
                .matmul(&self.embed.to_dtype(x.dtype())?.t()?)?
                .to_dtype(DType::F32),
        }
    }
}

/// Softmax-free helpers on logits rows.
pub fn row(logits: &Tensor, i: usize) -> Result<Vec<f32>> {
    logits.get(i)?.to_vec1::<f32>()
}

/// `(n, vocab)` → the last row.
pub fn last_row(logits: &Tensor) -> Result<Vec<f32>> {
    let n = logits.dim(0)?;
    row(logits, n - 1)
}
