//! The SigLIP vision transformer as Idefics3/SmolVLM uses it
//! (`Idefics3VisionTransformer`): patch embedding, position embedding with
//! transformers' bucketed position ids, pre-norm encoder layers, final norm.
//!
//! candle's `siglip` module numbers positions 0..n; Idefics3 maps each patch
//! to a bucket of fractional coordinates scaled by `1 - 1e-6`, which on a full
//! tile shifts every row and column index down by one after the first
//! (`[0, 0, 1, …, n-2]`). The model was trained that way, so tanto does the same.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{layer_norm, linear, Conv2dConfig, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

fn d_hidden() -> usize {
    768
}
fn d_inter() -> usize {
    3072
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_channels() -> usize {
    3
}
fn d_image() -> usize {
    224
}
fn d_patch() -> usize {
    32
}
fn d_eps() -> f64 {
    1e-6
}
fn d_act() -> candle_nn::Activation {
    candle_nn::Activation::GeluPytorchTanh
}

/// `vision_config` (Idefics3VisionConfig defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_inter")]
    pub intermediate_size: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_channels")]
    pub num_channels: usize,
    #[serde(default = "d_image")]
    pub image_size: usize,
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    #[serde(default = "d_act")]
    pub hidden_act: candle_nn::Activation,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
}

/// Position ids of a full `n x n` patch grid, as
/// `Idefics3VisionEmbeddings.forward` computes them in f32 with `torch.bucketize`.
pub fn position_ids(n: usize) -> Vec<u32> {
    // torch.arange(1/n, 1.0, 1/n): float32 values computed in double.
    let step = 1.0f64 / n as f64;
    let count = ((1.0 - step) / step).ceil().max(0.0) as usize;
    let bounds: Vec<f32> = (0..count)
        .map(|k| (step + k as f64 * step) as f32)
        .collect();
    let scale = (1.0f64 - 1e-6) as f32;
    let bucket = |i: usize| -> u32 {
        let x = (i as f32 / n as f32) * scale;
        // right=True: the number of boundaries <= x.
        bounds.iter().filter(|&&b| b <= x).count() as u32
    };
    let b: Vec<u32> = (0..n).map(bucket).collect();
    let mut out = Vec::with_capacity(n * n);
    for &h in &b {
        for &w in &b {
            out.push(h * n as u32 + w);
        }
    }
    out
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    head_dim: usize,
    scale: f64,
}

impl Attention {
    fn new(c: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let d = c.hidden_size;
        let head_dim = d / c.num_attention_heads;
        Ok(Self {
            q: linear(d, d, vb.pp("q_proj"))?,
            k: linear(d, d, vb.pp("k_proj"))?,
            v: linear(d, d, vb.pp("v_proj"))?,
            o: linear(d, d, vb.pp("out_proj"))?,
            heads: c.num_attention_heads,
            head_dim,
            scale: (head_dim as f64).powf(-0.5),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let shape = (b, n, self.heads, self.head_dim);
        let q = x
            .apply(&self.q)?
            .reshape(shape)?
            .transpose(1, 2)?
            .contiguous()?;
        let k = x
            .apply(&self.k)?
            .reshape(shape)?
            .transpose(1, 2)?
            .contiguous()?;
        let v = x
            .apply(&self.v)?
            .reshape(shape)?
            .transpose(1, 2)?
            .contiguous()?;
        let w = (q.matmul(&k.t()?)? * self.scale)?;
        let w = candle_nn::ops::softmax_last_dim(&w.to_dtype(DType::F32)?)?.to_dtype(v.dtype())?;
        w.matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, n, ()))?
            .apply(&self.o)
    }
}

struct Layer {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    act: candle_nn::Activation,
}

impl Layer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.attn.forward(&x.apply(&self.ln1)?)?;
        let x = (x + h)?;
        let h = x
            .apply(&self.ln2)?
            .apply(&self.fc1)?
            .apply(&self.act)?
            .apply(&self.fc2)?;
        x + h
    }
}

/// The vision tower: `[b, 3, S, S]` → `[b, (S/p)², hidden]`.
pub struct VisionTower {
    patch: candle_nn::Conv2d,
    pos: Tensor,
    layers: Vec<Layer>,
    post: LayerNorm,
    patch_size: usize,
    side: usize,
}

impl VisionTower {
    pub fn new(c: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let side = c.image_size / c.patch_size;
        let emb = vb.pp("embeddings");
        let patch = candle_nn::conv2d(
            c.num_channels,
            c.hidden_size,
            c.patch_size,
            Conv2dConfig {
                stride: c.patch_size,
                ..Default::default()
            },
            emb.pp("patch_embedding"),
        )?;
        let table = emb.get((side * side, c.hidden_size), "position_embedding.weight")?;
        let ids = Tensor::new(position_ids(side).as_slice(), vb.device())?;
        let pos = table.index_select(&ids, 0)?.unsqueeze(0)?;
        let enc = vb.pp("encoder.layers");
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = enc.pp(i);
            layers.push(Layer {
                ln1: layer_norm(c.hidden_size, c.layer_norm_eps, l.pp("layer_norm1"))?,
                attn: Attention::new(c, l.pp("self_attn"))?,
                ln2: layer_norm(c.hidden_size, c.layer_norm_eps, l.pp("layer_norm2"))?,
                fc1: linear(c.hidden_size, c.intermediate_size, l.pp("mlp.fc1"))?,
                fc2: linear(c.intermediate_size, c.hidden_size, l.pp("mlp.fc2"))?,
                act: c.hidden_act,
            });
        }
        let post = layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("post_layernorm"))?;
        Ok(Self {
            patch,
            pos,
            layers,
            post,
            patch_size: c.patch_size,
            side,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        if h != self.side * self.patch_size || w != self.side * self.patch_size {
            candle_core::bail!(
                "image tile is {h}x{w}, the vision tower takes {}x{}",
                self.side * self.patch_size,
                self.side * self.patch_size
            );
        }
        let x = x.apply(&self.patch)?.flatten_from(2)?.transpose(1, 2)?;
        let mut x = x.broadcast_add(&self.pos)?;
        for l in &self.layers {
            x = l.forward(&x)?;
        }
        x.apply(&self.post)
    }
}

impl Module for VisionTower {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        VisionTower::forward(self, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_ids_shift_like_transformers() {
        // Checked against torch 2.15 for n = 26, 27 and 32 as well.
        assert_eq!(&position_ids(32)[..4], &[0, 0, 1, 2]);
        assert_eq!(position_ids(32)[31], 30);
        assert_eq!(&position_ids(26)[..4], &[0, 0, 1, 2]);
        assert_eq!(position_ids(26)[25], 24);
        assert_eq!(position_ids(27)[26], 25);
        // torch: bucketize(arange(8)/8*(1-1e-6), arange(1/8, 1, 1/8), right=True)
        let ids = position_ids(8);
        let row: Vec<u32> = ids[..8].to_vec();
        assert_eq!(row, vec![0, 0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(ids[8], 0, "second row still maps to bucket 0");
        assert_eq!(ids[16], 8);
    }
}
