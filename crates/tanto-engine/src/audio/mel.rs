//! Whisper's log-mel spectrogram, numerically the same as Hugging Face's
//! `WhisperFeatureExtractor` (transformers' NumPy path, `spectrogram` in
//! `audio_utils.py`; its torch path agrees with that to ~5e-5).
//!
//! The recipe, in HF's order and precision:
//!
//! 1. pad (with zeros) or trim the 16 kHz signal to 30 s, 480 000 samples
//!    ([`LogMel::compute`]); long-form input is only padded up to 30 s
//!    ([`LogMel::compute_long`]);
//! 2. reflect-pad 200 samples each side (`center=True`), promote to `f64`;
//! 3. frames of 400 every 160 samples, times a periodic Hann window of 400,
//!    real FFT (`f64`); HF stores the spectrum as `complex64`, so each
//!    coefficient is rounded to `f32` before `|X|²` is taken in `f64`;
//! 4. `mel = filters · |X|²` (Slaney-scale, Slaney-normalised filterbank over
//!    0–8000 Hz, `f64`), `log10(max(mel, 1e-10))`, cast to `f32`;
//! 5. drop the last frame (a signal of `n` samples gives `n / 160 + 1` frames,
//!    `n / 160` are kept);
//! 6. `x = max(x, x.max() - 8)` with the maximum over the whole array, then
//!    `(x + 4) / 4`, in `f32`.
//!
//! Frames are independent, so they are computed in parallel (rayon) with one
//! FFT plan and one set of scratch buffers per task, none per frame.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// FFT length and window length.
pub const N_FFT: usize = 400;
/// Samples between frames (10 ms).
pub const HOP_LENGTH: usize = 160;
/// Frequency bins of the one-sided spectrum, `N_FFT / 2 + 1`.
pub const N_FREQ: usize = N_FFT / 2 + 1;
/// Samples in Whisper's 30-second window.
pub const N_SAMPLES: usize = 480_000;
/// Frames in Whisper's 30-second window, `N_SAMPLES / HOP_LENGTH`.
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;

/// Frames per parallel task (each task owns its scratch buffers).
const FRAMES_PER_TASK: usize = 64;

/// A Whisper log-mel extractor: the filterbank, the window and the FFT plan,
/// made once and reused for every call.
#[derive(Clone)]
pub struct LogMel {
    n_mels: usize,
    /// `[n_mels, N_FREQ]`, row-major, as HF's `mel_filters.T`.
    filters: Vec<f64>,
    /// Per mel row, the half-open range of bins where its filter is non-zero.
    bands: Vec<(usize, usize)>,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel")
            .field("n_mels", &self.n_mels)
            .finish_non_exhaustive()
    }
}

impl LogMel {
    /// An extractor with `n_mels` filters: 80 for Whisper tiny … large-v2, 128
    /// for large-v3 and large-v3-turbo.
    pub fn new(n_mels: usize) -> Self {
        let filters = mel_filter_bank(n_mels);
        let bands = filters
            .chunks(N_FREQ)
            .map(|row| {
                let start = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let end = row.iter().rposition(|&w| w != 0.0).map_or(start, |e| e + 1);
                (start, end)
            })
            .collect();
        Self {
            n_mels,
            filters,
            bands,
            window: hann_window(N_FFT),
            fft: RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT),
        }
    }

    /// The number of mel bands.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The filterbank, `[n_mels, N_FREQ]` row-major (HF's `mel_filters.T`).
    pub fn filters(&self) -> &[f64] {
        &self.filters
    }

    /// HF's short-form features: the first 30 s of `samples` (16 kHz mono),
    /// zero-padded to 30 s if shorter, as `[n_mels, N_FRAMES]` row-major.
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        let used = &samples[..samples.len().min(N_SAMPLES)];
        self.log_mel(used, N_SAMPLES)
    }

    /// HF's long-form features (`truncation=False, padding="longest"`) for
    /// audio of any length: nothing is trimmed, and audio shorter than 30 s is
    /// zero-padded to 30 s (where HF's `"longest"` would not pad at all and
    /// Whisper's `generate` then wants the short-form 3000 frames anyway), so
    /// under 30 s this equals [`LogMel::compute`]. Returns `[n_mels, n_frames]`
    /// row-major and `n_frames = max(len, 480 000) / 160` (HF's frame count:
    /// the STFT's `len / 160 + 1` frames less the last). The `-8` clamp is
    /// against the maximum of the whole array, as HF does.
    pub fn compute_long(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        let total = samples.len().max(N_SAMPLES);
        (self.log_mel(samples, total), total / HOP_LENGTH)
    }

    /// The log-mel of `samples` zero-padded to `total` (≥ `samples.len()`,
    /// ≥ `N_SAMPLES`), `[n_mels, total / HOP_LENGTH]`.
    fn log_mel(&self, samples: &[f32], total: usize) -> Vec<f32> {
        let n_mels = self.n_mels;
        let n_frames = total / HOP_LENGTH;
        if n_mels == 0 || n_frames == 0 {
            return Vec::new();
        }
        // Frame-major log10 mel, then clamp, scale and transpose.
        let mut frames = vec![0f32; n_frames * n_mels];
        let max = frames
            .par_chunks_mut(FRAMES_PER_TASK * n_mels)
            .enumerate()
            .map(|(task, out)| {
                let first = task * FRAMES_PER_TASK;
                self.task(samples, total, first, out)
            })
            .reduce(|| f32::NEG_INFINITY, f32::max);
        let floor = max - 8.0;
        let mut mel = vec![0f32; n_mels * n_frames];
        mel.par_chunks_mut(n_frames)
            .enumerate()
            .for_each(|(m, row)| {
                for (t, x) in row.iter_mut().enumerate() {
                    *x = (frames[t * n_mels + m].max(floor) + 4.0) / 4.0;
                }
            });
        mel
    }

    /// Log10 mel of the frames `first ..` into `out` (`[frames, n_mels]`),
    /// returning their maximum.
    fn task(&self, samples: &[f32], total: usize, first: usize, out: &mut [f32]) -> f32 {
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f64; N_FREQ];
        let mut max = f32::NEG_INFINITY;
        let avail = samples.len().min(total);
        for (i, out) in out.chunks_mut(self.n_mels).enumerate() {
            // Frame t covers padded samples [160 t, 160 t + 400), i.e. signal
            // samples [160 t - 200, 160 t + 200).
            let start = ((first + i) * HOP_LENGTH) as isize - (N_FFT / 2) as isize;
            if start >= 0 && start as usize + N_FFT <= avail {
                let frame = &samples[start as usize..start as usize + N_FFT];
                for ((x, &s), &w) in input.iter_mut().zip(frame).zip(&self.window) {
                    *x = s as f64 * w;
                }
            } else {
                for (k, (x, &w)) in input.iter_mut().zip(&self.window).enumerate() {
                    *x = reflected(samples, total, start + k as isize) as f64 * w;
                }
            }
            // A 400-point plan with buffers made by the plan cannot fail.
            if self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .is_err()
            {
                spectrum.fill(Complex::new(0.0, 0.0));
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                // HF keeps the spectrum as complex64.
                let (re, im) = (c.re as f32 as f64, c.im as f32 as f64);
                *p = re * re + im * im;
            }
            for ((o, row), &(lo, hi)) in out
                .iter_mut()
                .zip(self.filters.chunks(N_FREQ))
                .zip(&self.bands)
            {
                let mut acc = 0f64;
                for (w, p) in row[lo..hi].iter().zip(&power[lo..hi]) {
                    acc += w * p;
                }
                let v = acc.max(1e-10).log10() as f32;
                *o = v;
                max = max.max(v);
            }
        }
        max
    }
}

/// Sample `i` of `samples` zero-padded to `total`, with NumPy's `reflect`
/// padding outside `[0, total)` (the edge sample is not repeated).
fn reflected(samples: &[f32], total: usize, i: isize) -> f32 {
    let last = total as isize - 1;
    let mut j = i;
    // One reflection suffices when total > N_FFT / 2, which callers ensure;
    // the loop keeps any total in range.
    while j < 0 || j > last {
        if j < 0 {
            j = -j;
        }
        if j > last {
            j = 2 * last - j;
        }
        if last == 0 {
            j = 0;
        }
    }
    samples.get(j as usize).copied().unwrap_or(0.0)
}

/// NumPy's `hanning(n + 1)[:-1]`, the periodic Hann window, in NumPy's form
/// `0.5 + 0.5 cos(pi k / n)` for `k = -n, -n + 2, …`.
fn hann_window(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let k = 2.0 * i as f64 - n as f64;
            0.5 + 0.5 * (std::f64::consts::PI * k / n as f64).cos()
        })
        .collect()
}

/// transformers' `hertz_to_mel(f, mel_scale="slaney")`.
fn hertz_to_mel(freq: f64) -> f64 {
    if freq >= 1000.0 {
        15.0 + (freq / 1000.0).ln() * (27.0 / 6.4f64.ln())
    } else {
        3.0 * freq / 200.0
    }
}

/// transformers' `mel_to_hertz(m, mel_scale="slaney")`.
fn mel_to_hertz(mel: f64) -> f64 {
    if mel >= 15.0 {
        1000.0 * ((6.4f64.ln() / 27.0) * (mel - 15.0)).exp()
    } else {
        200.0 * mel / 3.0
    }
}

/// NumPy's `linspace(start, stop, num)`: `start + i * step`, the last point
/// exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let div = num.saturating_sub(1).max(1) as f64;
    let step = (stop - start) / div;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        if num > 1 {
            *last = stop;
        }
    }
    v
}

/// transformers' `mel_filter_bank(num_frequency_bins=201, num_mel_filters=
/// n_mels, min_frequency=0, max_frequency=8000, sampling_rate=16000,
/// norm="slaney", mel_scale="slaney")`, transposed to `[n_mels, 201]`.
fn mel_filter_bank(n_mels: usize) -> Vec<f64> {
    let mel_freqs = linspace(hertz_to_mel(0.0), hertz_to_mel(8000.0), n_mels + 2);
    let filter_freqs: Vec<f64> = mel_freqs.iter().map(|&m| mel_to_hertz(m)).collect();
    let fft_freqs = linspace(0.0, 8000.0, N_FREQ);
    let diff: Vec<f64> = filter_freqs.windows(2).map(|w| w[1] - w[0]).collect();
    let mut bank = vec![0f64; n_mels * N_FREQ];
    for m in 0..n_mels {
        let enorm = 2.0 / (filter_freqs[m + 2] - filter_freqs[m]);
        for (j, &f) in fft_freqs.iter().enumerate() {
            let down = -(filter_freqs[m] - f) / diff[m];
            let up = (filter_freqs[m + 2] - f) / diff[m + 1];
            bank[m * N_FREQ + j] = 0f64.max(down.min(up)) * enorm;
        }
    }
    bank
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        // np.pad([1, 2, 3, 4], 2, mode="reflect") == [3, 2, 1, 2, 3, 4, 3, 2]
        let x = [1.0, 2.0, 3.0, 4.0];
        let got: Vec<f32> = (-2..6).map(|i| reflected(&x, 4, i)).collect();
        assert_eq!(got, [3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]);
        // Zero-padded to 6 first: [1, 2, 3, 4, 0, 0] reflected.
        let got: Vec<f32> = (4..8).map(|i| reflected(&x, 6, i)).collect();
        assert_eq!(got, [0.0, 0.0, 0.0, 4.0]);
    }

    #[test]
    fn shapes() {
        let mel = LogMel::new(80);
        assert_eq!(mel.compute(&[]).len(), 80 * N_FRAMES);
        assert_eq!(mel.compute(&vec![0.1; 700_000]).len(), 80 * N_FRAMES);
        let (v, n) = mel.compute_long(&vec![0.0; 480_159 + 160]);
        assert_eq!(n, 3001);
        assert_eq!(v.len(), 80 * 3001);
        // Silence: log10(1e-10) = -10 everywhere, max - 8 clamps nothing.
        assert!(v.iter().all(|&x| x == (-10.0 + 4.0) / 4.0));
    }

    #[test]
    fn silence_and_short_long_form_agree() {
        let mel = LogMel::new(128);
        let x: Vec<f32> = (0..20_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let (long, n) = mel.compute_long(&x);
        assert_eq!(n, N_FRAMES);
        assert_eq!(long, mel.compute(&x));
    }
}
