//! Idefics3 / SmolVLM (`model_type` `idefics3`, `smolvlm`): the image
//! processor and prompt expansion of `Idefics3Processor`, and the model
//! (`Idefics3ForConditionalGeneration`): a SigLIP vision tower, the
//! pixel-shuffle connector, and a llama text model whose input embeddings
//! take the image features at the `<image>` positions.
//!
//! Preprocessing follows `Idefics3ImageProcessor` step by step (see the
//! comments below); every resize is [`super::resample::resize`], Pillow's
//! arithmetic, so `pixel_values` are bit-identical to transformers'.

use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models as m;
use serde_json::Value;

use super::resample::{resize, Filter, Rgb8};
use crate::api::{EngineError, PixelValues};
use crate::models::candle_models::{guarded, inval};
use crate::models::Backbone;

/// transformers' `MAX_IMAGE_SIZE` for Idefics3: no side beyond this after resizing.
const MAX_IMAGE_SIZE: usize = 4096;

/// `preprocessor_config.json` + `processor_config.json`, as the processor reads them.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub do_resize: bool,
    /// `size.longest_edge`: the image is first scaled so its longest side is this.
    pub longest_edge: usize,
    pub do_image_splitting: bool,
    /// `max_image_size.longest_edge`: the tile side (the vision tower's input).
    pub tile: usize,
    pub filter: Filter,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// `<image>` tokens per tile.
    pub image_seq_len: usize,
}

impl ProcessorConfig {
    /// Read the processor files of model folder `dir`; `image_seq_len` falls
    /// back to the model's own geometry when `processor_config.json` lacks it.
    pub fn from_dir(dir: &Path, derived_seq_len: usize) -> Result<Self, EngineError> {
        let pp = dir.join("preprocessor_config.json");
        let p = crate::tokenizer::read_json_opt(&pp)?
            .ok_or_else(|| inval(&pp, "preprocessor_config.json not found"))?;
        let proc_cfg = crate::tokenizer::read_json_opt(&dir.join("processor_config.json"))?
            .unwrap_or(Value::Null);
        Self::from_json(&p, &proc_cfg, derived_seq_len).map_err(|m| inval(&pp, m))
    }

    pub fn from_json(p: &Value, proc_cfg: &Value, derived_seq_len: usize) -> Result<Self, String> {
        let flag = |k: &str, d: bool| p.get(k).and_then(Value::as_bool).unwrap_or(d);
        let edge = |k: &str, d: usize| -> Result<usize, String> {
            match p.get(k) {
                None => Ok(d),
                Some(v) => v
                    .get("longest_edge")
                    .and_then(Value::as_u64)
                    .map(|x| x as usize)
                    .filter(|&x| (1..=MAX_IMAGE_SIZE).contains(&x))
                    .ok_or_else(|| {
                        format!("{k}.longest_edge must be an integer in 1..={MAX_IMAGE_SIZE}")
                    }),
            }
        };
        let triple = |k: &str| -> Result<[f32; 3], String> {
            match p.get(k) {
                None => Ok([0.5; 3]),
                Some(Value::Array(a)) if a.len() == 3 => {
                    let mut out = [0f32; 3];
                    for (o, v) in out.iter_mut().zip(a) {
                        *o = v.as_f64().ok_or_else(|| format!("{k} must hold numbers"))? as f32;
                    }
                    Ok(out)
                }
                Some(Value::Number(n)) => Ok([n.as_f64().unwrap_or(0.5) as f32; 3]),
                Some(_) => Err(format!("{k} must be three numbers")),
            }
        };
        let filter = match p.get("resample") {
            None => Filter::Lanczos,
            Some(v) => v
                .as_i64()
                .and_then(Filter::from_pil)
                .ok_or_else(|| format!("resample {v} is not a filter tanto implements (1 LANCZOS, 2 BILINEAR, 3 BICUBIC)"))?,
        };
        let std = triple("image_std")?;
        if std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return Err("image_std must be non-zero".into());
        }
        let image_seq_len = proc_cfg
            .get("image_seq_len")
            .and_then(Value::as_u64)
            .map(|x| x as usize)
            .unwrap_or(derived_seq_len);
        Ok(Self {
            do_resize: flag("do_resize", true),
            longest_edge: edge("size", 4 * 364)?,
            do_image_splitting: flag("do_image_splitting", true),
            tile: edge("max_image_size", 364)?,
            filter,
            do_rescale: flag("do_rescale", true),
            rescale_factor: p
                .get("rescale_factor")
                .and_then(Value::as_f64)
                .unwrap_or(1.0 / 255.0),
            do_normalize: flag("do_normalize", true),
            mean: triple("image_mean")?,
            std,
            image_seq_len,
        })
    }
}

/// One image after preprocessing: its tiles (row-major, then the global
/// image) and the split grid (0 x 0: the image is a single tile).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedImage {
    pub rows: usize,
    pub cols: usize,
    /// Upright RGB tiles, `tile x tile` each.
    pub frames: Vec<Rgb8>,
}

/// `_resize_output_size_rescale_to_max_len` then `_scale_below_upper_bound`.
fn longest_edge_size(h: usize, w: usize, max_len: usize) -> (usize, usize) {
    let aspect = w as f64 / h as f64;
    let (mut h, mut w) = if w >= h {
        let mut nh = (max_len as f64 / aspect) as usize;
        if nh % 2 != 0 {
            nh += 1;
        }
        (nh, max_len)
    } else {
        let mut nw = (max_len as f64 * aspect) as usize;
        if nw % 2 != 0 {
            nw += 1;
        }
        (max_len, nw)
    };
    h = h.max(1);
    w = w.max(1);
    let aspect = w as f64 / h as f64;
    if w >= h && w > MAX_IMAGE_SIZE {
        w = MAX_IMAGE_SIZE;
        h = (w as f64 / aspect) as usize;
    } else if h > w && h > MAX_IMAGE_SIZE {
        h = MAX_IMAGE_SIZE;
        w = (h as f64 * aspect) as usize;
    }
    (h.max(1), w.max(1))
}

/// `resize_for_vision_encoder`: both sides up to a multiple of the tile.
fn tile_multiple_size(h: usize, w: usize, tile: usize) -> (usize, usize) {
    let aspect = w as f64 / h as f64;
    let up = |x: f64| ((x / tile as f64).ceil() as usize).max(1) * tile;
    if w >= h {
        let nw = up(w as f64);
        let nh = (nw as f64 / aspect) as usize;
        (up(nh as f64), nw)
    } else {
        let nh = up(h as f64);
        let nw = (nh as f64 * aspect) as usize;
        (nh, up(nw as f64))
    }
}

impl ProcessorConfig {
    /// Resize, split and add the global image, like `Idefics3ImageProcessor.preprocess`.
    pub fn process(&self, img: &Rgb8) -> ProcessedImage {
        use std::borrow::Cow;
        // Resizing to the same size is a copy in Pillow: skip it here.
        fn step<'a>(cur: Cow<'a, Rgb8>, w: usize, h: usize, f: Filter) -> Cow<'a, Rgb8> {
            if (w, h) == (cur.width, cur.height) {
                cur
            } else {
                Cow::Owned(resize(&cur, w, h, f))
            }
        }
        let mut cur: Cow<'_, Rgb8> = Cow::Borrowed(img);
        if self.do_resize {
            let (h, w) = longest_edge_size(cur.height, cur.width, self.longest_edge);
            cur = step(cur, w, h, self.filter);
        }
        if !self.do_image_splitting {
            let sq = step(cur, self.tile, self.tile, self.filter).into_owned();
            return ProcessedImage {
                rows: 0,
                cols: 0,
                frames: vec![sq],
            };
        }
        let (h, w) = tile_multiple_size(cur.height, cur.width, self.tile);
        cur = step(cur, w, h, self.filter);
        if h <= self.tile && w <= self.tile {
            return ProcessedImage {
                rows: 0,
                cols: 0,
                frames: vec![cur.into_owned()],
            };
        }
        let rows = h.div_ceil(self.tile);
        let cols = w.div_ceil(self.tile);
        let th = h.div_ceil(rows);
        let tw = w.div_ceil(cols);
        let mut frames = Vec::with_capacity(rows * cols + 1);
        for r in 0..rows {
            for c in 0..cols {
                let (x0, y0) = (c * tw, r * th);
                let (x1, y1) = ((x0 + tw).min(w), (y0 + th).min(h));
                frames.push(cur.crop(x0, y0, x1 - x0, y1 - y0));
            }
        }
        frames.push(resize(&cur, self.tile, self.tile, self.filter));
        ProcessedImage { rows, cols, frames }
    }

    /// Rescale and normalise one frame into CHW `f32`, in numpy's order of
    /// operations: `float32(u8 * float64 factor)`, then `(x - mean) / std` in f32.
    pub fn normalize_into(&self, f: &Rgb8, out: &mut Vec<f32>) {
        let plane = f.width * f.height;
        let start = out.len();
        out.resize(start + 3 * plane, 0.0);
        normalize_to(&self.table(), f, &mut out[start..]);
    }

    /// The value of each byte in each channel: a pure function of the byte.
    fn table(&self) -> [[f32; 256]; 3] {
        let mut t = [[0f32; 256]; 3];
        for (c, row) in t.iter_mut().enumerate() {
            for (b, v) in row.iter_mut().enumerate() {
                let mut x = if self.do_rescale {
                    (b as f64 * self.rescale_factor) as f32
                } else {
                    b as f32
                };
                if self.do_normalize {
                    x = (x - self.mean[c]) / self.std[c];
                }
                *v = x;
            }
        }
        t
    }

    /// Pixel values of several images, tiles in prompt order, and each
    /// image's grid.
    pub fn pixel_values(&self, images: &[&Rgb8]) -> (PixelValues, Vec<(usize, usize)>) {
        let processed: Vec<ProcessedImage> = {
            use rayon::prelude::*;
            images.par_iter().map(|i| self.process(i)).collect()
        };
        let frames: Vec<&Rgb8> = processed.iter().flat_map(|p| &p.frames).collect();
        let grids: Vec<(usize, usize)> = processed.iter().map(|p| (p.rows, p.cols)).collect();
        let n = frames.len();
        let per = 3 * self.tile * self.tile;
        // `process` makes every frame a tile (the global image too).
        debug_assert!(frames
            .iter()
            .all(|f| f.width == self.tile && f.height == self.tile));
        let mut data = vec![0f32; n * per];
        let table = self.table();
        {
            use rayon::prelude::*;
            data.par_chunks_mut(per)
                .zip(frames.par_iter())
                .for_each(|(dst, f)| normalize_to(&table, f, dst));
        }
        (
            PixelValues {
                tiles: n,
                channels: 3,
                height: self.tile,
                width: self.tile,
                data: Arc::new(data),
            },
            grids,
        )
    }
}

/// One frame through the per-byte table into CHW planes.
fn normalize_to(t: &[[f32; 256]; 3], f: &Rgb8, dst: &mut [f32]) {
    let plane = f.width * f.height;
    let (r, rest) = dst.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in f.data.chunks_exact(3).enumerate() {
        r[i] = t[0][px[0] as usize];
        g[i] = t[1][px[1] as usize];
        b[i] = t[2][px[2] as usize];
    }
}

pub const FAKE_TOKEN: &str = "<fake_token_around_image>";
pub const IMAGE_TOKEN: &str = "<image>";
pub const GLOBAL_TOKEN: &str = "<global-img>";

/// The text one `<image>` becomes: `_prompt_split_image` / `_prompt_single_image`.
pub fn image_prompt(rows: usize, cols: usize, seq_len: usize) -> String {
    let img = IMAGE_TOKEN.repeat(seq_len);
    if rows == 0 && cols == 0 {
        return format!("{FAKE_TOKEN}{GLOBAL_TOKEN}{img}{FAKE_TOKEN}");
    }
    let mut s = String::new();
    for r in 0..rows {
        for c in 0..cols {
            s.push_str(&format!("{FAKE_TOKEN}<row_{}_col_{}>{img}", r + 1, c + 1));
        }
        s.push('\n');
    }
    s.push_str(&format!("\n{FAKE_TOKEN}{GLOBAL_TOKEN}{img}{FAKE_TOKEN}"));
    s
}

/// Replace the i-th `<image>` of `text` by the expansion of `grids[i]`.
pub fn expand_prompt(
    text: &str,
    grids: &[(usize, usize)],
    seq_len: usize,
) -> Result<String, EngineError> {
    let pieces: Vec<&str> = text.split(IMAGE_TOKEN).collect();
    if pieces.len() - 1 != grids.len() {
        return Err(EngineError::Validation(format!(
            "the prompt has {} image markers for {} images",
            pieces.len() - 1,
            grids.len()
        )));
    }
    let mut out = String::with_capacity(text.len() + grids.len() * seq_len * IMAGE_TOKEN.len() * 6);
    out.push_str(pieces[0]);
    for (g, rest) in grids.iter().zip(&pieces[1..]) {
        out.push_str(&image_prompt(g.0, g.1, seq_len));
        out.push_str(rest);
    }
    Ok(out)
}

/// Image features waiting to be placed at the `<image>` positions of the
/// next prefill, consumed in order.
#[derive(Default)]
pub struct Pending {
    /// `[n, hidden]` f32 rows.
    pub rows: Vec<f32>,
    pub n: usize,
    pub used: usize,
}

/// The vision tower and connector.
pub struct Idefics3Vision {
    tower: super::siglip::VisionTower,
    proj: candle_nn::Linear,
    scale: usize,
    device: Device,
    dtype: DType,
    pub text_hidden: usize,
}

impl Idefics3Vision {
    /// `pixel_values` → `[tiles * seq_len, text_hidden]` features (f32 on the host).
    pub fn encode(&self, pv: &PixelValues) -> Result<Vec<f32>, EngineError> {
        let mut out = Vec::new();
        // A few tiles at a time bounds the attention scratch.
        let per = pv.channels * pv.height * pv.width;
        let batch = 4;
        let mut t = 0;
        while t < pv.tiles {
            let n = batch.min(pv.tiles - t);
            let x = Tensor::from_slice(
                &pv.data[t * per..(t + n) * per],
                (n, pv.channels, pv.height, pv.width),
                &self.device,
            )?
            .to_dtype(self.dtype)?;
            let h = self.tower.forward(&x)?; // [n, patches, vh]
            let h = pixel_shuffle(&h, self.scale)?;
            let f = self.proj.forward(&h)?; // [n, seq, text_hidden]
            let f = f.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            out.extend_from_slice(&f);
            t += n;
        }
        Ok(out)
    }
}

/// Idefics3Connector.pixel_shuffle: `[b, s, d]` → `[b, s / r², d r²]`.
fn pixel_shuffle(x: &Tensor, r: usize) -> candle_core::Result<Tensor> {
    let (b, s, d) = x.dims3()?;
    let side = (s as f64).sqrt() as usize;
    let x = x.reshape((b, side, side, d))?;
    let x = x.reshape((b, side, side / r, d * r))?;
    let x = x.permute((0, 2, 1, 3))?;
    let x = x.reshape((b, side / r, side / r, d * r * r))?;
    let x = x.permute((0, 2, 1, 3))?;
    x.reshape((b, s / (r * r), d * r * r))
}

/// The llama text model with image features merged into its input embeddings.
pub struct Idefics3Text {
    llama: m::llama::Llama,
    cache: m::llama::Cache,
    cfg: m::llama::Config,
    device: Device,
    dtype: DType,
    hidden: usize,
    image_token: u32,
    vocab: usize,
    pub pending: Arc<Mutex<Pending>>,
    pool: Option<rayon::ThreadPool>,
}

impl Backbone for Idefics3Text {
    fn forward(&mut self, ids: &[u32], pos: usize) -> Result<Vec<f32>, EngineError> {
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.vocab) {
            return Err(EngineError::Validation(format!(
                "token id {bad} out of range"
            )));
        }
        let n_img = ids.iter().filter(|&&i| i == self.image_token).count();
        let merged: Option<Vec<f32>> = if n_img == 0 {
            None
        } else {
            let mut p = self
                .pending
                .lock()
                .map_err(|_| EngineError::Inference("vision state poisoned".into()))?;
            if p.used + n_img > p.n {
                return Err(EngineError::Validation(format!(
                    "the prompt has more <image> tokens than the images provide ({} features)",
                    p.n
                )));
            }
            let start = p.used;
            p.used += n_img;
            Some(p.rows[start * self.hidden..(start + n_img) * self.hidden].to_vec())
        };
        let pool = self.pool.take();
        let mut run = || -> candle_core::Result<Vec<f32>> {
            let x = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
            let mut emb = self.llama.embed(&x)?;
            if let Some(feat) = &merged {
                let mut rows = emb.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let mut k = 0;
                for (t, &id) in ids.iter().enumerate() {
                    if id == self.image_token {
                        rows[t * self.hidden..(t + 1) * self.hidden]
                            .copy_from_slice(&feat[k * self.hidden..(k + 1) * self.hidden]);
                        k += 1;
                    }
                }
                emb = Tensor::from_vec(rows, (1, ids.len(), self.hidden), &self.device)?
                    .to_dtype(self.dtype)?;
            }
            let logits = self.llama.forward_input_embed(&emb, pos, &mut self.cache)?;
            logits.flatten_all()?.to_vec1::<f32>()
        };
        let r = match &pool {
            Some(p) => p.install(run),
            None => run(),
        };
        self.pool = pool;
        Ok(r?)
    }

    fn reset(&mut self) -> Result<(), EngineError> {
        self.cache = m::llama::Cache::new(true, self.dtype, &self.cfg, &self.device)?;
        Ok(())
    }
}

/// What [`load`] builds.
pub struct Loaded {
    pub vision: Idefics3Vision,
    pub text: Idefics3Text,
    pub processor: ProcessorConfig,
    pub image_token: u32,
    pub vision_hidden: usize,
}

fn sub<'a>(cfg: &'a Value, k: &str, path: &Path) -> Result<&'a Value, EngineError> {
    cfg.get(k)
        .filter(|v| v.is_object())
        .ok_or_else(|| inval(path, format!("config.json has no {k}")))
}

/// Load an Idefics3/SmolVLM folder. `context` bounds the text model's positions.
pub fn load(
    dir: &Path,
    files: &[std::path::PathBuf],
    cfg: &Value,
    threads: usize,
    context: usize,
) -> Result<Loaded, EngineError> {
    use crate::models::candle_models::{check_config, compute_dtype, safetensors_extent};
    let cfg_path = dir.join("config.json");
    let vcfg_v = sub(cfg, "vision_config", &cfg_path)?;
    let mut tcfg_v = sub(cfg, "text_config", &cfg_path)?.clone();
    let (n_tensors, max_dim) = safetensors_extent(files)?;
    check_config(&cfg_path, &tcfg_v, n_tensors, max_dim)?;
    check_config(&cfg_path, vcfg_v, n_tensors, max_dim)?;
    let vcfg: super::siglip::VisionConfig = serde_json::from_value(vcfg_v.clone())
        .map_err(|e| inval(&cfg_path, format!("vision_config: {e}")))?;
    if vcfg.patch_size == 0
        || vcfg.num_attention_heads == 0
        || vcfg.image_size % vcfg.patch_size != 0
        || vcfg.hidden_size % vcfg.num_attention_heads != 0
    {
        return Err(inval(&cfg_path, "vision_config sizes are inconsistent"));
    }
    let scale = cfg.get("scale_factor").and_then(Value::as_u64).unwrap_or(2) as usize;
    let side = vcfg.image_size / vcfg.patch_size;
    if scale == 0 || side % scale != 0 {
        return Err(inval(
            &cfg_path,
            format!("scale_factor {scale} does not divide the {side}x{side} patch grid"),
        ));
    }
    let seq_len = side * side / (scale * scale);
    if let Some(o) = tcfg_v.as_object_mut() {
        o.insert("max_position_embeddings".into(), context.into());
        o.entry("rms_norm_eps").or_insert(1e-5.into());
    }
    let lcfg: m::llama::LlamaConfig = serde_json::from_value(tcfg_v.clone())
        .map_err(|e| inval(&cfg_path, format!("text_config: {e}")))?;
    let tie = cfg
        .get("tie_word_embeddings")
        .and_then(Value::as_bool)
        .or(lcfg.tie_word_embeddings)
        .unwrap_or(false);
    let hidden = lcfg.hidden_size;
    let vocab = lcfg.vocab_size;
    let mut lc = lcfg.into_config(false);
    lc.tie_word_embeddings = tie;
    let image_token = cfg
        .get("image_token_id")
        .and_then(Value::as_u64)
        .map(|v| v as u32)
        .ok_or_else(|| inval(&cfg_path, "config.json has no image_token_id"))?;
    if image_token as usize >= vocab {
        return Err(inval(&cfg_path, "image_token_id is outside the vocabulary"));
    }
    let processor = ProcessorConfig::from_dir(dir, seq_len)?;
    if processor.tile != vcfg.image_size {
        return Err(inval(
            &dir.join("preprocessor_config.json"),
            format!(
                "max_image_size {} differs from the vision tower's image_size {}",
                processor.tile, vcfg.image_size
            ),
        ));
    }
    if processor.image_seq_len != seq_len {
        return Err(inval(
            &dir.join("processor_config.json"),
            format!(
                "image_seq_len {} but the model makes {seq_len} tokens per tile",
                processor.image_seq_len
            ),
        ));
    }
    for f in files {
        if !f.is_file() {
            return Err(EngineError::Io {
                path: f.clone(),
                message: "weight file not found".into(),
            });
        }
    }
    let device = crate::device::select();
    let dtype = compute_dtype(files);
    let pool = crate::threads::rayon_pool(threads);
    let first = &files[0];
    let build = || -> Result<Loaded, EngineError> {
        // SAFETY: read-only mapping of files tanto does not modify while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(files, dtype, &device) }
            .map_err(|e| inval(first, e))?;
        let tower = guarded(first, || {
            super::siglip::VisionTower::new(&vcfg, vb.pp("model.vision_model"))
        })?;
        let proj = guarded(first, || {
            candle_nn::linear_no_bias(
                vcfg.hidden_size * scale * scale,
                hidden,
                vb.pp("model.connector.modality_projection.proj"),
            )
        })?;
        let tvb = vb
            .clone()
            .rename_f(|n: &str| match n.strip_prefix("model.") {
                Some(rest) => format!("model.text_model.{rest}"),
                None => n.to_string(),
            });
        let llama = guarded(first, || m::llama::Llama::load(tvb, &lc))?;
        let cache = guarded(first, || m::llama::Cache::new(true, dtype, &lc, &device))?;
        Ok(Loaded {
            vision: Idefics3Vision {
                tower,
                proj,
                scale,
                device: device.clone(),
                dtype,
                text_hidden: hidden,
            },
            text: Idefics3Text {
                llama,
                cache,
                cfg: lc.clone(),
                device: device.clone(),
                dtype,
                hidden,
                image_token,
                vocab,
                pending: Arc::new(Mutex::new(Pending::default())),
                pool: None,
            },
            processor: processor.clone(),
            image_token,
            vision_hidden: vcfg.hidden_size,
        })
    };
    let mut loaded = match &pool {
        Some(p) => p.install(build)?,
        None => build()?,
    };
    loaded.text.pool = pool;
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_the_processor() {
        // Landscape and portrait, even rounding, the 4096 bound.
        assert_eq!(longest_edge_size(200, 300, 2048), (1366, 2048));
        assert_eq!(longest_edge_size(300, 200, 2048), (2048, 1366));
        assert_eq!(longest_edge_size(64, 64, 128), (128, 128));
        assert_eq!(tile_multiple_size(1366, 2048, 512), (1536, 2048));
        assert_eq!(tile_multiple_size(2048, 1366, 512), (2048, 1536));
        assert_eq!(tile_multiple_size(10, 512, 512), (512, 512));
    }

    #[test]
    fn prompts_expand_with_grid_tokens() {
        let s = image_prompt(1, 2, 2);
        assert_eq!(
            s,
            "<fake_token_around_image><row_1_col_1><image><image><fake_token_around_image><row_1_col_2><image><image>\n\n<fake_token_around_image><global-img><image><image><fake_token_around_image>"
        );
        assert_eq!(
            image_prompt(0, 0, 1),
            "<fake_token_around_image><global-img><image><fake_token_around_image>"
        );
        assert!(expand_prompt("a<image>b", &[], 1).is_err());
        assert_eq!(
            expand_prompt("a<image>b", &[(0, 0)], 1).unwrap(),
            format!("a{}b", image_prompt(0, 0, 1))
        );
    }
}
