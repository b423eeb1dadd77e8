//! Whisper weights from either layout, as HF-named f32 tensors:
//! HF safetensors (`model.safetensors`, f32/f16/bf16) and CTranslate2
//! folders (`model.bin`: float32/float16/bfloat16, int8 with per-row scales).
//! The CTranslate2 → HF name table is the inverse of CTranslate2's own
//! Whisper converter (fused q/k/v and k/v projections are split; the key
//! projection has no bias).

use std::fs::File;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};
use serde_json::Value;
use tanto_core::probe::ct2::{self, Ct2DType, Ct2Header, Ct2Var};

use super::model::{TensorMap, WhisperConfig};
use crate::api::EngineError;

fn invalid(path: &Path, message: impl Into<String>) -> EngineError {
    EngineError::InvalidModel {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// HF safetensors shards → tensors in f32, keys with the `model.` prefix.
pub fn load_safetensors(
    files: &[std::path::PathBuf],
    dev: &Device,
) -> Result<TensorMap, EngineError> {
    let mut out = TensorMap::new();
    for f in files {
        let ts = candle_core::safetensors::load(f, dev).map_err(|e| invalid(f, e.to_string()))?;
        for (name, t) in ts {
            if name == "proj_out.weight" {
                continue; // tied to the token embedding
            }
            let name = if name.starts_with("model.") {
                name
            } else {
                format!("model.{name}")
            };
            let t = t
                .to_dtype(DType::F32)
                .map_err(|e| invalid(f, e.to_string()))?;
            out.insert(name, t);
        }
    }
    Ok(out)
}

/// The HF config from config.json.
pub fn hf_config(cfg: &Value, path: &Path) -> Result<WhisperConfig, EngineError> {
    let c: WhisperConfig =
        serde_json::from_value(cfg.clone()).map_err(|e| invalid(path, e.to_string()))?;
    check_config(&c, path)?;
    Ok(c)
}

fn check_config(c: &WhisperConfig, path: &Path) -> Result<(), EngineError> {
    let ok = c.d_model > 0
        && c.d_model <= 1 << 14
        && c.encoder_attention_heads > 0
        && c.decoder_attention_heads > 0
        && c.d_model % c.encoder_attention_heads == 0
        && c.d_model % c.decoder_attention_heads == 0
        && (1..=256).contains(&c.encoder_layers)
        && (1..=256).contains(&c.decoder_layers)
        && (1..=1 << 20).contains(&c.vocab_size)
        && (1..=512).contains(&c.num_mel_bins)
        && (1..=1 << 16).contains(&c.max_source_positions)
        && (2..=1 << 16).contains(&c.max_target_positions);
    if ok {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!("implausible Whisper hyper-parameters: {c:?}"),
        ))
    }
}

/// One CTranslate2 variable as an f32 tensor (int8 dequantized with its
/// `<name>_scale`: w = q / scale per row).
fn ct2_tensor(
    h: &Ct2Header,
    data: &[u8],
    v: &Ct2Var,
    path: &Path,
    dev: &Device,
) -> Result<Tensor, EngineError> {
    let start = v.offset as usize;
    let bytes = data
        .get(start..start + v.nbytes as usize)
        .ok_or_else(|| invalid(path, format!("'{}' lies outside the file", v.name)))?;
    let n = v.elements() as usize;
    let vals: Vec<f32> = match v.dtype {
        Ct2DType::Float32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Ct2DType::Float16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Ct2DType::Bfloat16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Ct2DType::Int8 | Ct2DType::Int16 => {
            let scale_name = format!("{}_scale", v.name);
            let s = h
                .get(&scale_name)
                .ok_or_else(|| invalid(path, format!("int8 '{}' has no '{scale_name}'", v.name)))?;
            let scales = ct2_tensor(h, data, s, path, dev)?
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| invalid(path, e.to_string()))?;
            let rows = v.shape.first().copied().unwrap_or(1) as usize;
            if rows == 0 || !(scales.len() == rows || scales.len() == 1) {
                return Err(invalid(
                    path,
                    format!("'{scale_name}' has {} values for {rows} rows", scales.len()),
                ));
            }
            let per_row = n / rows.max(1);
            let q: Vec<f32> = if v.dtype == Ct2DType::Int8 {
                bytes.iter().map(|b| *b as i8 as f32).collect()
            } else {
                bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
                    .collect()
            };
            q.iter()
                .enumerate()
                .map(|(i, x)| {
                    let sc = scales[if scales.len() == 1 {
                        0
                    } else {
                        i / per_row.max(1)
                    }];
                    x / sc
                })
                .collect()
        }
        Ct2DType::Int32 => bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
            .collect(),
    };
    let shape: Vec<usize> = v.shape.iter().map(|d| *d as usize).collect();
    Tensor::from_vec(vals, shape, dev).map_err(|e| invalid(path, e.to_string()))
}

/// A CTranslate2 integer scalar (`encoder/num_heads`).
fn ct2_scalar(h: &Ct2Header, data: &[u8], name: &str) -> Option<usize> {
    let v = h.get(name)?;
    if !v.shape.is_empty() {
        return None;
    }
    let b = data.get(v.offset as usize..(v.offset + v.nbytes) as usize)?;
    Some(match v.dtype {
        Ct2DType::Int8 => b[0] as i8 as i64,
        Ct2DType::Int16 => i16::from_le_bytes([b[0], b[1]]) as i64,
        Ct2DType::Int32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
        _ => return None,
    })
    .filter(|n| *n > 0)
    .map(|n| n as usize)
}

/// A CTranslate2 Whisper `model.bin` → (config, HF-named f32 tensors).
pub fn load_ct2(path: &Path, dev: &Device) -> Result<(WhisperConfig, TensorMap), EngineError> {
    let h = ct2::read_header(path).map_err(|e| invalid(path, e.to_string()))?;
    if h.spec != "WhisperSpec" {
        return Err(EngineError::UnsupportedArchitecture(format!(
            "CTranslate2 {}",
            if h.spec.is_empty() { "model" } else { &h.spec }
        )));
    }
    let file = File::open(path).map_err(|e| EngineError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    // SAFETY: read-only map of a model file; tanto never writes model files
    // while they are loaded (the same contract as candle's safetensors mmap).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| EngineError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let data: &[u8] = &map;
    let get = |name: &str| -> Result<Tensor, EngineError> {
        let v = h
            .get(name)
            .ok_or_else(|| invalid(path, format!("missing variable '{name}'")))?;
        ct2_tensor(&h, data, v, path, dev)
    };
    let count = |prefix: &str| {
        (0..)
            .take_while(|n| {
                h.vars
                    .iter()
                    .any(|v| v.name.starts_with(&format!("{prefix}/layer_{n}/")))
            })
            .count()
    };
    let emb = get("decoder/embeddings/weight")?;
    let (vocab, d) = emb.dims2().map_err(|e| invalid(path, e.to_string()))?;
    let conv1 = get("encoder/conv1/weight")?;
    let n_mels = conv1.dim(1).map_err(|e| invalid(path, e.to_string()))?;
    let enc_pos = get("encoder/position_encodings/encodings")?;
    let dec_pos = get("decoder/position_encodings/encodings")?;
    let heads = |name: &str| {
        ct2_scalar(&h, data, name)
            .ok_or_else(|| invalid(path, format!("missing or invalid scalar '{name}'")))
    };
    let cfg = WhisperConfig {
        vocab_size: vocab,
        num_mel_bins: n_mels,
        d_model: d,
        encoder_layers: count("encoder"),
        encoder_attention_heads: heads("encoder/num_heads")?,
        decoder_layers: count("decoder"),
        decoder_attention_heads: heads("decoder/num_heads")?,
        max_source_positions: enc_pos.dim(0).unwrap_or(0),
        max_target_positions: dec_pos.dim(0).unwrap_or(0),
        encoder_ffn_dim: None,
        decoder_ffn_dim: None,
    };
    check_config(&cfg, path)?;

    let mut w = TensorMap::new();
    let e = |r: candle_core::Result<Tensor>| r.map_err(|e| invalid(path, e.to_string()));
    w.insert("model.decoder.embed_tokens.weight".into(), emb);
    w.insert("model.encoder.conv1.weight".into(), conv1);
    w.insert(
        "model.encoder.conv1.bias".into(),
        get("encoder/conv1/bias")?,
    );
    w.insert(
        "model.encoder.conv2.weight".into(),
        get("encoder/conv2/weight")?,
    );
    w.insert(
        "model.encoder.conv2.bias".into(),
        get("encoder/conv2/bias")?,
    );
    w.insert("model.encoder.embed_positions.weight".into(), enc_pos);
    w.insert("model.decoder.embed_positions.weight".into(), dec_pos);
    for side in ["encoder", "decoder"] {
        w.insert(
            format!("model.{side}.layer_norm.weight"),
            get(&format!("{side}/layer_norm/gamma"))?,
        );
        w.insert(
            format!("model.{side}.layer_norm.bias"),
            get(&format!("{side}/layer_norm/beta"))?,
        );
        let layers = if side == "encoder" {
            cfg.encoder_layers
        } else {
            cfg.decoder_layers
        };
        for i in 0..layers {
            let c = format!("{side}/layer_{i}");
            let hf = format!("model.{side}.layers.{i}");
            let lin = |ct: &str, hfn: &str, w: &mut TensorMap| -> Result<(), EngineError> {
                w.insert(
                    format!("{hf}.{hfn}.weight"),
                    get(&format!("{c}/{ct}/weight"))?,
                );
                w.insert(format!("{hf}.{hfn}.bias"), get(&format!("{c}/{ct}/bias"))?);
                Ok(())
            };
            let norm = |ct: &str, hfn: &str, w: &mut TensorMap| -> Result<(), EngineError> {
                w.insert(
                    format!("{hf}.{hfn}.weight"),
                    get(&format!("{c}/{ct}/gamma"))?,
                );
                w.insert(format!("{hf}.{hfn}.bias"), get(&format!("{c}/{ct}/beta"))?);
                Ok(())
            };
            // Self-attention: fused [q; k; v].
            let qkv = get(&format!("{c}/self_attention/linear_0/weight"))?;
            let qkv_b = get(&format!("{c}/self_attention/linear_0/bias"))?;
            for (j, name) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
                w.insert(
                    format!("{hf}.self_attn.{name}.weight"),
                    e(qkv.narrow(0, j * d, d))?,
                );
                if *name != "k_proj" {
                    w.insert(
                        format!("{hf}.self_attn.{name}.bias"),
                        e(qkv_b.narrow(0, j * d, d))?,
                    );
                }
            }
            lin("self_attention/linear_1", "self_attn.out_proj", &mut w)?;
            norm("self_attention/layer_norm", "self_attn_layer_norm", &mut w)?;
            if side == "decoder" {
                lin("attention/linear_0", "encoder_attn.q_proj", &mut w)?;
                let kv = get(&format!("{c}/attention/linear_1/weight"))?;
                let kv_b = get(&format!("{c}/attention/linear_1/bias"))?;
                w.insert(
                    format!("{hf}.encoder_attn.k_proj.weight"),
                    e(kv.narrow(0, 0, d))?,
                );
                w.insert(
                    format!("{hf}.encoder_attn.v_proj.weight"),
                    e(kv.narrow(0, d, d))?,
                );
                w.insert(
                    format!("{hf}.encoder_attn.v_proj.bias"),
                    e(kv_b.narrow(0, d, d))?,
                );
                lin("attention/linear_2", "encoder_attn.out_proj", &mut w)?;
                norm("attention/layer_norm", "encoder_attn_layer_norm", &mut w)?;
            }
            lin("ffn/linear_0", "fc1", &mut w)?;
            lin("ffn/linear_1", "fc2", &mut w)?;
            norm("ffn/layer_norm", "final_layer_norm", &mut w)?;
        }
    }
    // `narrow` views share the fused buffers; make each weight its own.
    for t in w.values_mut() {
        *t = e(t.contiguous())?;
    }
    Ok((cfg, w))
}
