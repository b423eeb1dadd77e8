//! Image resizing bit-for-bit equal to Pillow's `Image.resize` on 8-bit RGB
//! images (libImaging/Resample.c), which is what the Hugging Face image
//! processors call: separable convolution, horizontal pass first into an 8-bit
//! intermediate, coefficients in double precision normalised to fixed point
//! with 22 fractional bits, and `clip8` rounding after each pass.

use rayon::prelude::*;

/// Pillow's resampling filters (`PIL.Image.Resampling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `BILINEAR` (2): triangle, support 1.
    Bilinear,
    /// `BICUBIC` (3): cubic with a = -0.5, support 2.
    Bicubic,
    /// `LANCZOS` (1): 3-lobed Lanczos, support 3.
    Lanczos,
}

impl Filter {
    /// From the integer a `preprocessor_config.json` stores in `resample`.
    pub fn from_pil(code: i64) -> Option<Self> {
        match code {
            1 => Some(Filter::Lanczos),
            2 => Some(Filter::Bilinear),
            3 => Some(Filter::Bicubic),
            _ => None,
        }
    }

    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                let a = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Fixed-point coefficients for one axis: per output index, the first input
/// index, the count, and `ksize` weights.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    k: Vec<i32>,
}

fn precompute(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
    // Pillow's box is float; the full box is (0, in_size).
    let scale = (in_size as f32 - 0.0f32) as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut k = vec![0i32; out_size * ksize];
    let mut w = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) cast truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for x in 0..n {
            let v = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            w[x] = v;
            ww += v;
        }
        let row = &mut k[xx * ksize..(xx + 1) * ksize];
        for x in 0..n {
            let v = if ww != 0.0 { w[x] / ww } else { w[x] };
            let f = v * (1u32 << PRECISION_BITS) as f64;
            row[x] = if v < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs { ksize, bounds, k }
}

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// An 8-bit RGB image, rows top to bottom, pixels interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Rgb8 {
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Self {
        debug_assert_eq!(data.len(), width * height * 3);
        Self {
            width,
            height,
            data,
        }
    }

    /// The rectangle `[x0, x0+w) x [y0, y0+h)` (Pillow's `crop`, numpy slicing).
    pub fn crop(&self, x0: usize, y0: usize, w: usize, h: usize) -> Rgb8 {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in y0..y0 + h {
            let row = &self.data[(y * self.width + x0) * 3..(y * self.width + x0 + w) * 3];
            data.extend_from_slice(row);
        }
        Rgb8::new(w, h, data)
    }
}

/// `Image.resize((width, height), resample=filter)` for an RGB image.
pub fn resize(img: &Rgb8, width: usize, height: usize, filter: Filter) -> Rgb8 {
    if width == img.width && height == img.height {
        return img.clone();
    }
    if width == 0 || height == 0 || img.width == 0 || img.height == 0 {
        return Rgb8::new(width, height, vec![0; width * height * 3]);
    }
    let need_h = width != img.width;
    let need_v = height != img.height;
    let kv = precompute(img.height, height, filter);
    let mut cur: std::borrow::Cow<'_, Rgb8> = std::borrow::Cow::Borrowed(img);
    let mut vbounds = kv.bounds.clone();
    if need_h {
        let kh = precompute(img.width, width, filter);
        // Only the rows the vertical pass reads.
        let (first, last) = if need_v {
            let (s, n) = kv.bounds[height - 1];
            (kv.bounds[0].0, s + n)
        } else {
            (0, img.height)
        };
        for b in vbounds.iter_mut() {
            b.0 -= first;
        }
        let rows = last - first;
        let mut out = vec![0u8; width * rows * 3];
        out.par_chunks_mut(width * 3)
            .enumerate()
            .for_each(|(r, o)| {
                let src = &img.data[(first + r) * img.width * 3..(first + r + 1) * img.width * 3];
                horizontal_row(src, o, &kh);
            });
        cur = std::borrow::Cow::Owned(Rgb8::new(width, rows, out));
    }
    if !need_v {
        return cur.into_owned();
    }
    let src = &*cur;
    let mut out = vec![0u8; width * height * 3];
    let row_len = width * 3;
    out.par_chunks_mut(row_len).enumerate().for_each(|(yy, o)| {
        let (ymin, n) = vbounds[yy];
        let k = &kv.k[yy * kv.ksize..yy * kv.ksize + n];
        let mut acc = vec![1i32 << (PRECISION_BITS - 1); row_len];
        for (y, &w) in k.iter().enumerate() {
            let r = &src.data[(ymin + y) * row_len..(ymin + y + 1) * row_len];
            for (a, &p) in acc.iter_mut().zip(r) {
                *a = a.wrapping_add(p as i32 * w);
            }
        }
        for (o, a) in o.iter_mut().zip(&acc) {
            *o = clip8(*a);
        }
    });
    Rgb8::new(width, height, out)
}

fn horizontal_row(src: &[u8], out: &mut [u8], c: &Coeffs) {
    for (xx, o) in out.chunks_exact_mut(3).enumerate() {
        let (xmin, n) = c.bounds[xx];
        let k = &c.k[xx * c.ksize..xx * c.ksize + n];
        let mut s = [1i32 << (PRECISION_BITS - 1); 3];
        let win = &src[xmin * 3..(xmin + n) * 3];
        for (p, &w) in win.chunks_exact(3).zip(k) {
            s[0] = s[0].wrapping_add(p[0] as i32 * w);
            s[1] = s[1].wrapping_add(p[1] as i32 * w);
            s[2] = s[2].wrapping_add(p[2] as i32 * w);
        }
        o[0] = clip8(s[0]);
        o[1] = clip8(s[1]);
        o[2] = clip8(s[2]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_a_copy_and_constant_images_stay_constant() {
        let img = Rgb8::new(5, 3, vec![77; 45]);
        assert_eq!(resize(&img, 5, 3, Filter::Lanczos), img);
        for f in [Filter::Lanczos, Filter::Bicubic, Filter::Bilinear] {
            for (w, h) in [(11, 7), (2, 2), (5, 9), (1, 1)] {
                let r = resize(&img, w, h, f);
                assert!(r.data.iter().all(|&v| v == 77), "{f:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn lanczos_weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(64, 128), (2048, 512), (300, 7), (7, 300)] {
            let c = precompute(i, o, Filter::Lanczos);
            for xx in 0..o {
                let (_, n) = c.bounds[xx];
                let s: i64 = c.k[xx * c.ksize..xx * c.ksize + n]
                    .iter()
                    .map(|&v| v as i64)
                    .sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= n as i64,
                    "{i}->{o} at {xx}"
                );
            }
        }
    }
}
