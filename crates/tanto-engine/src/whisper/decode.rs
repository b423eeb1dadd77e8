//! Decoding one 30-s window, and the long-form loop over windows, with
//! openai/whisper's semantics (which Hugging Face's `generate` and
//! faster-whisper follow):
//!
//! - logit filters: the blank and end-of-text are suppressed at the first
//!   sampled step, the model's suppress list at every step, then the timestamp
//!   rules (pairs, monotonic, first timestamp within 1 s, and "timestamps win
//!   when their total probability beats every text token");
//! - greedy at temperature 0, seeded sampling above; the fallback ladder
//!   re-decodes a window whose compression ratio (zlib, level 6) is over 2.4
//!   or whose average log-probability is under −1, unless the window is
//!   silence (no-speech probability over 0.6);
//! - segments are cut at consecutive timestamp tokens, and the next window
//!   starts at the last timestamp, so speech that crosses a 30-s boundary is
//!   decoded whole.

use std::io::Write;

use candle_core::Tensor;

use super::model::{CrossKv, KvCache, Whisper};
use super::tokens::SpecialTokens;
use super::Segment;
use crate::sampler::Rng;

/// Seconds per timestamp token.
pub const TIME_PRECISION: f64 = 0.02;
/// Mel frames per encoder position (the second convolution has stride 2).
pub const INPUT_STRIDE: usize = 2;
/// Seconds per mel frame.
pub const FRAME_SECS: f64 = 0.01;

pub const COMPRESSION_RATIO_THRESHOLD: f64 = 2.4;
pub const LOGPROB_THRESHOLD: f64 = -1.0;
pub const NO_SPEECH_THRESHOLD: f64 = 0.6;
/// OpenAI's `temperature=0` default: 0.0, 0.2, …, 1.0.
pub const TEMPERATURE_LADDER: [f32; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];

/// The result of decoding one window at one temperature.
#[derive(Debug, Clone)]
pub struct WindowResult {
    /// Sampled tokens (text and timestamps), without the prompt and the end-of-text.
    pub tokens: Vec<u32>,
    pub text: String,
    pub temperature: f32,
    pub avg_logprob: f64,
    pub compression_ratio: f64,
    pub no_speech_prob: f64,
}

/// What a window is decoded with.
pub struct WindowSpec<'a> {
    /// `<|startofprev|>` + previous text, then the start-of-transcript sequence.
    pub prompt: &'a [u32],
    /// Index of `<|startoftranscript|>` in `prompt` (its logits give the no-speech probability).
    pub sot_index: usize,
    pub timestamps: bool,
    /// At most this many sampled tokens.
    pub max_tokens: usize,
}

type R<T> = candle_core::Result<T>;

fn log_softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return vec![f32::NEG_INFINITY; x.len()];
    }
    let sum: f64 = x.iter().map(|v| ((v - max) as f64).exp()).sum();
    let lse = max as f64 + sum.ln();
    x.iter().map(|v| (*v as f64 - lse) as f32).collect()
}

fn logsumexp(x: &[f32]) -> f64 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = x.iter().map(|v| ((v - max) as f64).exp()).sum();
    max as f64 + sum.ln()
}

/// Suppression and timestamp rules on the logits of the next token, given
/// the tokens sampled so far in this window.
pub fn apply_filters(logits: &mut [f32], sampled: &[u32], sp: &SpecialTokens, timestamps: bool) {
    let ninf = f32::NEG_INFINITY;
    let kill = |id: u32, logits: &mut [f32]| {
        if let Some(v) = logits.get_mut(id as usize) {
            *v = ninf;
        }
    };
    if sampled.is_empty() {
        for &id in &sp.begin_suppress {
            kill(id, logits);
        }
    }
    for &id in &sp.suppress {
        kill(id, logits);
    }
    kill(sp.no_timestamps, logits);
    let tb = sp.timestamp_begin as usize;
    if !timestamps || tb >= logits.len() {
        for v in logits.iter_mut().skip(tb) {
            *v = ninf;
        }
        return;
    }
    let eot = sp.eot as usize;
    let n = logits.len();
    let is_ts = |t: u32| t >= sp.timestamp_begin;
    let last_was_ts = sampled.last().is_some_and(|t| is_ts(*t));
    let penultimate_was_ts = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
    if last_was_ts {
        if penultimate_was_ts {
            // A pair just closed: text (or end-of-text) comes next.
            logits[tb..].fill(ninf);
        } else {
            // An open timestamp: its partner or end-of-text, no text.
            logits[..eot.min(n)].fill(ninf);
        }
    }
    if let Some(&last) = sampled.iter().rev().find(|t| is_ts(**t)) {
        // Monotonic, and every segment has a non-zero length.
        let upto = if last_was_ts && !penultimate_was_ts {
            last as usize
        } else {
            last as usize + 1
        };
        logits[tb..upto.clamp(tb, n)].fill(ninf);
    }
    if sampled.is_empty() {
        // The window starts with a timestamp, at most 1 s in.
        logits[..tb].fill(ninf);
        let last_allowed = tb + sp.max_initial_timestamp_index as usize;
        if last_allowed + 1 < logits.len() {
            logits[last_allowed + 1..].fill(ninf);
        }
    }
    // Timestamps together more likely than any single text token: take one.
    let lp = log_softmax(logits);
    let ts_lp = logsumexp(&lp[tb..]);
    let max_text = lp[..tb].iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if ts_lp > max_text {
        logits[..tb].fill(ninf);
    }
}

/// zlib (level 6, as Python's `zlib.compress`) compression ratio of the text.
pub fn compression_ratio(text: &str) -> f64 {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    if z.write_all(bytes).is_err() {
        return 0.0;
    }
    match z.finish() {
        Ok(c) if !c.is_empty() => bytes.len() as f64 / c.len() as f64,
        _ => 0.0,
    }
}

fn sample(logits: &[f32], temperature: f32, rng: &mut Rng) -> u32 {
    if temperature <= 0.0 {
        return crate::sampler::argmax(logits);
    }
    let scaled: Vec<f32> = logits.iter().map(|v| v / temperature).collect();
    let lp = log_softmax(&scaled);
    let r = rng.next_f64();
    let mut acc = 0.0f64;
    let mut last_finite = 0u32;
    for (i, v) in lp.iter().enumerate() {
        if v.is_finite() {
            acc += (*v as f64).exp();
            last_finite = i as u32;
            if acc > r {
                return i as u32;
            }
        }
    }
    last_finite
}

/// Decode one window at one temperature.
pub fn decode_window(
    model: &Whisper,
    cross: &CrossKv,
    sp: &SpecialTokens,
    spec: &WindowSpec<'_>,
    temperature: f32,
    rng: &mut Rng,
    detok: &dyn Fn(&[u32]) -> String,
) -> R<WindowResult> {
    let mut cache = KvCache::default();
    let logits = model.decode(spec.prompt, cross, &mut cache)?;
    let no_speech_prob = match sp.no_speech {
        Some(ns) => {
            let row = super::model::row(&logits, spec.sot_index)?;
            let lp = log_softmax(&row);
            lp.get(ns as usize).map_or(0.0, |v| (*v as f64).exp())
        }
        None => 0.0,
    };
    let mut next = super::model::last_row(&logits)?;
    let mut sampled: Vec<u32> = Vec::new();
    let mut sum_logprob = 0.0f64;
    let room = model.max_tokens().saturating_sub(spec.prompt.len());
    let limit = spec.max_tokens.min(room);
    loop {
        apply_filters(&mut next, &sampled, sp, spec.timestamps);
        let tok = sample(&next, temperature, rng);
        let lp = log_softmax(&next);
        sum_logprob += lp.get(tok as usize).copied().unwrap_or(f32::NEG_INFINITY) as f64;
        if tok == sp.eot {
            break;
        }
        sampled.push(tok);
        if sampled.len() >= limit {
            break;
        }
        let l = model.decode(&[tok], cross, &mut cache)?;
        next = super::model::last_row(&l)?;
    }
    let text_ids: Vec<u32> = sampled.iter().copied().filter(|t| *t < sp.eot).collect();
    let text = detok(&text_ids);
    Ok(WindowResult {
        avg_logprob: sum_logprob / (sampled.len() + 1) as f64,
        compression_ratio: compression_ratio(&text),
        tokens: sampled,
        text,
        temperature,
        no_speech_prob,
    })
}

/// Decode with the fallback ladder (or at the one given temperature).
#[allow(clippy::too_many_arguments)]
pub fn decode_with_fallback(
    model: &Whisper,
    cross: &CrossKv,
    sp: &SpecialTokens,
    spec: &WindowSpec<'_>,
    temperatures: &[f32],
    rng: &mut Rng,
    detok: &dyn Fn(&[u32]) -> String,
) -> R<WindowResult> {
    let mut result = None;
    for &t in temperatures {
        let r = decode_window(model, cross, sp, spec, t, rng, detok)?;
        let mut fallback =
            r.compression_ratio > COMPRESSION_RATIO_THRESHOLD || r.avg_logprob < LOGPROB_THRESHOLD;
        if r.no_speech_prob > NO_SPEECH_THRESHOLD && r.avg_logprob < LOGPROB_THRESHOLD {
            fallback = false; // silence: the low log-probability is expected
        }
        result = Some(r);
        if !fallback {
            break;
        }
    }
    result.ok_or_else(|| candle_core::Error::Msg("no temperature to decode at".into()))
}

/// The segments of one window's tokens and how far to seek (in mel frames).
/// `seek` is the window's first frame, `segment_frames` its content length.
pub fn split_segments(
    r: &WindowResult,
    sp: &SpecialTokens,
    seek: usize,
    segment_frames: usize,
    detok: &dyn Fn(&[u32]) -> String,
) -> (Vec<Segment>, usize) {
    let tb = sp.timestamp_begin;
    let toks = &r.tokens;
    let is_ts: Vec<bool> = toks.iter().map(|t| *t >= tb).collect();
    let n = toks.len();
    let single_ending = n >= 2 && !is_ts[n - 2] && is_ts[n - 1] || (n == 1 && is_ts[0]);
    let offset = seek as f64 * FRAME_SECS;
    let mut consecutive: Vec<usize> = (1..n).filter(|&i| is_ts[i - 1] && is_ts[i]).collect();
    // Times to the millisecond: 3.8, not 3.8000000000000003.
    let ms = |t: f64| (t * 1000.0).round() / 1000.0;
    let make = |slice: &[u32], start: f64, end: f64| {
        let (start, end) = (ms(start), ms(end));
        let text_ids: Vec<u32> = slice.iter().copied().filter(|t| *t < sp.eot).collect();
        Segment {
            id: 0,
            seek,
            start,
            end,
            text: detok(&text_ids),
            tokens: slice.to_vec(),
            temperature: r.temperature,
            avg_logprob: r.avg_logprob,
            compression_ratio: r.compression_ratio,
            no_speech_prob: r.no_speech_prob,
        }
    };
    let mut segments = Vec::new();
    if !consecutive.is_empty() {
        if single_ending {
            consecutive.push(n);
        }
        let mut last = 0;
        for &cur in &consecutive {
            let slice = &toks[last..cur];
            if let (Some(&a), Some(&b)) = (slice.first(), slice.last()) {
                let start = offset + a.saturating_sub(tb) as f64 * TIME_PRECISION;
                let end = offset + b.saturating_sub(tb) as f64 * TIME_PRECISION;
                segments.push(make(slice, start, end));
            }
            last = cur;
        }
        let advance = if single_ending {
            segment_frames
        } else {
            let pos = toks[last - 1].saturating_sub(tb) as usize;
            pos * INPUT_STRIDE
        };
        (segments, advance.max(1))
    } else {
        let mut duration = segment_frames as f64 * FRAME_SECS;
        if let Some(&t) = toks.iter().rev().find(|t| **t >= tb) {
            if t != tb {
                duration = (t - tb) as f64 * TIME_PRECISION;
            }
        }
        segments.push(make(toks, offset, offset + duration));
        (segments, segment_frames.max(1))
    }
}

/// Language detection: the most likely language token after `<|startoftranscript|>`,
/// with the probabilities of all languages (descending).
pub fn detect_language(
    model: &Whisper,
    cross: &CrossKv,
    sp: &SpecialTokens,
) -> R<Vec<(&'static str, f64)>> {
    let mut cache = KvCache::default();
    let logits = model.decode(&[sp.sot], cross, &mut cache)?;
    let row = super::model::last_row(&logits)?;
    let vals: Vec<f32> = sp
        .languages
        .iter()
        .map(|(_, id)| row.get(*id as usize).copied().unwrap_or(f32::NEG_INFINITY))
        .collect();
    let lp = log_softmax(&vals);
    let mut out: Vec<(&'static str, f64)> = sp
        .languages
        .iter()
        .zip(lp)
        .map(|((c, _), l)| (*c, (l as f64).exp()))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(out)
}

/// A window of the mel `[n_mels, n_frames]` from `seek`, `len` frames,
/// zero-padded to 3000 frames (as HF's long-form `generate` pads).
pub fn window(
    mel: &[f32],
    n_mels: usize,
    n_frames: usize,
    seek: usize,
    len: usize,
    dev: &candle_core::Device,
) -> R<Tensor> {
    let w = crate::audio::mel::N_FRAMES;
    let mut out = vec![0f32; n_mels * w];
    let len = len.min(w).min(n_frames.saturating_sub(seek));
    for m in 0..n_mels {
        let src = &mel[m * n_frames + seek..m * n_frames + seek + len];
        out[m * w..m * w + len].copy_from_slice(src);
    }
    Tensor::from_vec(out, (n_mels, w), dev)
}
