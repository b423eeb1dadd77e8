//! sentence-transformers' Pooling, Dense and Normalize modules, over the
//! hidden states of one input (its real tokens only: padding never reaches
//! here).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use tanto_core::probe::embedding::{Activation, DenseLayer, Pooling};

use crate::api::EngineError;

/// Pool `rows` (`len × h`, row-major) with each mode in turn and concatenate,
/// as sentence-transformers does. The first `skip` tokens (the prompt, with
/// `include_prompt: false`) are left out of every mode but `cls`.
pub fn pool(modes: &[Pooling], rows: &[f32], h: usize, skip: usize) -> Vec<f32> {
    let len = rows.len().checked_div(h).unwrap_or(0);
    let skip = skip.min(len);
    let row = |t: usize| &rows[t * h..(t + 1) * h];
    let kept = skip..len;
    let count = (len - skip) as f32;
    let mut out = Vec::with_capacity(h * modes.len());
    let sum = || {
        let mut s = vec![0f32; h];
        for t in kept.clone() {
            for (a, x) in s.iter_mut().zip(row(t)) {
                *a += x;
            }
        }
        s
    };
    for m in modes {
        match m {
            Pooling::Cls => out.extend_from_slice(if len > 0 { row(0) } else { &[] }),
            Pooling::Mean => {
                let c = count.max(1e-9);
                out.extend(sum().into_iter().map(|x| x / c));
            }
            Pooling::MeanSqrtLen => {
                let c = count.max(1e-9).sqrt();
                out.extend(sum().into_iter().map(|x| x / c));
            }
            Pooling::Max => {
                // Masked positions count as -1e9, as in sentence-transformers.
                let mut mx = vec![
                    if kept.is_empty() {
                        -1e9
                    } else {
                        f32::NEG_INFINITY
                    };
                    h
                ];
                for t in kept.clone() {
                    for (a, x) in mx.iter_mut().zip(row(t)) {
                        *a = a.max(*x);
                    }
                }
                out.extend(mx);
            }
            Pooling::WeightedMean => {
                // Weights are positions 1..=len over the whole sequence.
                let mut s = vec![0f32; h];
                let mut wsum = 0f32;
                for t in kept.clone() {
                    let w = (t + 1) as f32;
                    wsum += w;
                    for (a, x) in s.iter_mut().zip(row(t)) {
                        *a += x * w;
                    }
                }
                let c = wsum.max(1e-9);
                out.extend(s.into_iter().map(|x| x / c));
            }
            Pooling::LastToken => {
                if len > 0 {
                    out.extend_from_slice(row(len - 1));
                }
            }
        }
    }
    out
}

/// Scale to unit length (a zero vector stays zero, as torch's normalize).
pub fn l2_normalize(v: &mut [f32]) {
    let n = v
        .iter()
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    let n = n.max(1e-12) as f32;
    for x in v {
        *x /= n;
    }
}

/// A loaded Dense module: `activation(x W^T + b)`.
pub struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
    activation: Activation,
}

impl Dense {
    pub fn load(model_dir: &Path, d: &DenseLayer) -> Result<Self, EngineError> {
        let path = model_dir.join(&d.path).join("model.safetensors");
        let inval = |m: String| EngineError::InvalidModel {
            path: path.clone(),
            message: m,
        };
        let mut ts = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| inval(e.to_string()))?;
        let weight = ts
            .remove("linear.weight")
            .ok_or_else(|| inval("no tensor linear.weight".into()))?
            .to_dtype(DType::F32)
            .map_err(|e| inval(e.to_string()))?;
        if weight.dims() != [d.out_features, d.in_features] {
            return Err(inval(format!(
                "linear.weight is {:?}, config.json says {} x {}",
                weight.dims(),
                d.out_features,
                d.in_features
            )));
        }
        let bias = if d.bias {
            let b = ts
                .remove("linear.bias")
                .ok_or_else(|| inval("no tensor linear.bias (config.json says bias)".into()))?
                .to_dtype(DType::F32)
                .map_err(|e| inval(e.to_string()))?;
            if b.dims() != [d.out_features] {
                return Err(inval(format!("linear.bias is {:?}", b.dims())));
            }
            Some(b)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            activation: d.activation,
        })
    }

    /// Apply to a `(n, in)` batch.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = x.matmul(&self.weight.t()?)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        match self.activation {
            Activation::Identity => Ok(y),
            Activation::Tanh => y.tanh(),
            Activation::Relu => y.relu(),
            Activation::Gelu => y.gelu_erf(),
            Activation::Sigmoid => candle_nn::ops::sigmoid(&y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two tokens, h = 2: rows [1, 2] and [3, 6].
    const ROWS: [f32; 4] = [1.0, 2.0, 3.0, 6.0];

    #[test]
    fn each_mode_follows_sentence_transformers() {
        assert_eq!(pool(&[Pooling::Cls], &ROWS, 2, 0), vec![1.0, 2.0]);
        assert_eq!(pool(&[Pooling::Mean], &ROWS, 2, 0), vec![2.0, 4.0]);
        assert_eq!(pool(&[Pooling::Max], &ROWS, 2, 0), vec![3.0, 6.0]);
        let s = 2f32.sqrt();
        assert_eq!(
            pool(&[Pooling::MeanSqrtLen], &ROWS, 2, 0),
            vec![4.0 / s, 8.0 / s]
        );
        // weights 1 and 2: (1*1 + 3*2) / 3, (2*1 + 6*2) / 3
        assert_eq!(
            pool(&[Pooling::WeightedMean], &ROWS, 2, 0),
            vec![7.0 / 3.0, 14.0 / 3.0]
        );
        assert_eq!(pool(&[Pooling::LastToken], &ROWS, 2, 0), vec![3.0, 6.0]);
        // Several modes concatenate in the order given.
        assert_eq!(
            pool(&[Pooling::Cls, Pooling::Mean], &ROWS, 2, 0),
            vec![1.0, 2.0, 2.0, 4.0]
        );
    }

    #[test]
    fn skipped_prompt_tokens_leave_the_pooling_but_not_cls() {
        assert_eq!(pool(&[Pooling::Mean], &ROWS, 2, 1), vec![3.0, 6.0]);
        assert_eq!(pool(&[Pooling::Cls], &ROWS, 2, 1), vec![1.0, 2.0]);
        // Weighted mean keeps absolute positions: only token 2 (weight 2) is left.
        assert_eq!(pool(&[Pooling::WeightedMean], &ROWS, 2, 1), vec![3.0, 6.0]);
    }

    #[test]
    fn normalize_gives_unit_length_and_keeps_zero() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut z = vec![0.0, 0.0];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }
}
