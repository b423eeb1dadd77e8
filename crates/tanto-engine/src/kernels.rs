//! Quantized matrix kernels for GGUF weights (Q4_0, Q4_1, Q8_0; F16/F32 as plain
//! floats), laid out exactly as in the file so weights stay memory-mapped.
//!
//! Activations are quantized per 32-value block to 8 bits first, as llama.cpp does
//! (Q8_0 for Q4_0/Q8_0 weights, Q8_1 — with the block sum — for Q4_1), so the dot
//! products are integer sums scaled per block. The AVX2 paths follow ggml's
//! arithmetic order (per-block FMA into 8 float lanes, the same horizontal sum),
//! which keeps greedy outputs aligned with llama.cpp. Dispatch is at run time;
//! the scalar code is the reference and the fallback.

use half::f16;

pub const QK: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q8_0,
}

impl WType {
    /// Bytes per block of 32 values (F32/F16: per 32 values too).
    pub fn block_bytes(self) -> usize {
        match self {
            WType::F32 => 128,
            WType::F16 => 64,
            WType::Q4_0 => 18,
            WType::Q4_1 => 20,
            WType::Q8_0 => 34,
        }
    }

    pub fn is_quantized(self) -> bool {
        matches!(self, WType::Q4_0 | WType::Q4_1 | WType::Q8_0)
    }
}

/// One quantized activation block. `d` and `s` hold values already rounded to
/// f16 (what ggml stores), `s = d * sum(qs)`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct BlockQ8 {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; QK],
}

impl Default for BlockQ8 {
    fn default() -> Self {
        Self {
            d: 0.0,
            s: 0.0,
            qs: [0; QK],
        }
    }
}

#[inline]
fn f16_round(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

#[inline]
fn rd_f16(b: &[u8], off: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// Quantize a row (length multiple of 32) to Q8 blocks: `d = amax/127`, values
/// `round_half_even(x * 127/amax)`.
pub fn quantize_row_q8(x: &[f32], out: &mut [BlockQ8]) {
    for (xb, y) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in y.qs.iter_mut().zip(xb) {
            let r = (v * id).round_ties_even() as i32;
            *q = r as i8;
            sum += r;
        }
        y.d = f16_round(d);
        y.s = f16_round(d * sum as f32);
    }
}

// ---------------------------------------------------------------- scalar reference

fn dot_q4_1_scalar(w: &[u8], a: &[BlockQ8]) -> f32 {
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(20).zip(a) {
        let d = rd_f16(wb, 0);
        let m = rd_f16(wb, 2);
        let qs = &wb[4..20];
        let mut isum = 0i32;
        for j in 0..16 {
            isum += (qs[j] & 0x0F) as i32 * ab.qs[j] as i32;
            isum += (qs[j] >> 4) as i32 * ab.qs[j + 16] as i32;
        }
        sum += d * ab.d * isum as f32 + m * ab.s;
    }
    sum
}

fn dot_q4_0_scalar(w: &[u8], a: &[BlockQ8]) -> f32 {
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(18).zip(a) {
        let d = rd_f16(wb, 0);
        let qs = &wb[2..18];
        let mut isum = 0i32;
        for j in 0..16 {
            isum += ((qs[j] & 0x0F) as i32 - 8) * ab.qs[j] as i32;
            isum += ((qs[j] >> 4) as i32 - 8) * ab.qs[j + 16] as i32;
        }
        sum += d * ab.d * isum as f32;
    }
    sum
}

fn dot_q8_0_scalar(w: &[u8], a: &[BlockQ8]) -> f32 {
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(34).zip(a) {
        let d = rd_f16(wb, 0);
        let mut isum = 0i32;
        for j in 0..32 {
            isum += (wb[2 + j] as i8) as i32 * ab.qs[j] as i32;
        }
        sum += d * ab.d * isum as f32;
    }
    sum
}

pub fn dot_f32(w: &[f32], x: &[f32]) -> f32 {
    // Eight independent partial sums (vectorizes; order fixed).
    let mut acc = [0f32; 8];
    let chunks = w.len() / 8;
    for i in 0..chunks {
        for l in 0..8 {
            acc[l] = w[i * 8 + l].mul_add(x[i * 8 + l], acc[l]);
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for i in chunks * 8..w.len() {
        s += w[i] * x[i];
    }
    s
}

fn dot_f16_bytes(w: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n = x.len();
    let chunks = n / 8;
    for i in 0..chunks {
        for l in 0..8 {
            let k = i * 8 + l;
            acc[l] = rd_f16(w, 2 * k).mul_add(x[k], acc[l]);
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for k in chunks * 8..n {
        s += rd_f16(w, 2 * k) * x[k];
    }
    s
}

fn dot_f32_bytes(w: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n = x.len();
    let rd = |k: usize| f32::from_le_bytes([w[4 * k], w[4 * k + 1], w[4 * k + 2], w[4 * k + 3]]);
    let chunks = n / 8;
    for i in 0..chunks {
        for l in 0..8 {
            let k = i * 8 + l;
            acc[l] = rd(k).mul_add(x[k], acc[l]);
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for k in chunks * 8..n {
        s += rd(k) * x[k];
    }
    s
}

// ---------------------------------------------------------------- AVX2

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::BlockQ8;
    use std::arch::x86_64::*;

    #[inline(always)]
    pub unsafe fn hsum(x: __m256) -> f32 {
        let mut r = _mm256_extractf128_ps(x, 1);
        r = _mm_add_ps(r, _mm256_castps256_ps128(x));
        r = _mm_add_ps(r, _mm_movehl_ps(r, r));
        r = _mm_add_ss(r, _mm_movehdup_ps(r));
        _mm_cvtss_f32(r)
    }

    #[inline(always)]
    unsafe fn f16_at(p: *const u8) -> f32 {
        let v = _mm_cvtsi32_si128(u16::from_le_bytes([*p, *p.add(1)]) as i32);
        _mm_cvtss_f32(_mm_cvtph_ps(v))
    }

    #[inline(always)]
    unsafe fn nibbles(p: *const u8) -> __m256i {
        let tmp = _mm_loadu_si128(p as *const __m128i);
        let bytes = _mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp);
        _mm256_and_si256(_mm256_set1_epi8(0x0F), bytes)
    }

    #[inline(always)]
    unsafe fn us8_pairs(ax: __m256i, sy: __m256i) -> __m256 {
        let dot = _mm256_maddubs_epi16(ax, sy);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), dot))
    }

    #[inline(always)]
    unsafe fn i8_pairs(x: __m256i, y: __m256i) -> __m256 {
        let ax = _mm256_sign_epi8(x, x);
        let sy = _mm256_sign_epi8(y, x);
        us8_pairs(ax, sy)
    }

    /// One weight row against `N` activation rows (`a[r]` each `nb` blocks).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1<const N: usize>(
        w: *const u8,
        nb: usize,
        a: [*const BlockQ8; N],
    ) -> [f32; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        let mut summs = [0f32; N];
        for ib in 0..nb {
            let wb = w.add(ib * 20);
            let d0 = f16_at(wb);
            let m = f16_at(wb.add(2));
            let qx = nibbles(wb.add(4));
            for r in 0..N {
                let y = &*a[r].add(ib);
                summs[r] = m.mul_add(y.s, summs[r]);
                let d0d1 = _mm256_mul_ps(_mm256_set1_ps(d0), _mm256_set1_ps(y.d));
                let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                let xy = us8_pairs(qx, qy);
                acc[r] = _mm256_fmadd_ps(d0d1, xy, acc[r]);
            }
        }
        let mut out = [0f32; N];
        for r in 0..N {
            out[r] = hsum(acc[r]) + summs[r];
        }
        out
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_0<const N: usize>(
        w: *const u8,
        nb: usize,
        a: [*const BlockQ8; N],
    ) -> [f32; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        for ib in 0..nb {
            let wb = w.add(ib * 18);
            let d0 = f16_at(wb);
            let qx = _mm256_sub_epi8(nibbles(wb.add(2)), _mm256_set1_epi8(8));
            for r in 0..N {
                let y = &*a[r].add(ib);
                let d = _mm256_set1_ps(d0 * y.d);
                let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                acc[r] = _mm256_fmadd_ps(d, i8_pairs(qx, qy), acc[r]);
            }
        }
        let mut out = [0f32; N];
        for r in 0..N {
            out[r] = hsum(acc[r]);
        }
        out
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0<const N: usize>(
        w: *const u8,
        nb: usize,
        a: [*const BlockQ8; N],
    ) -> [f32; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        for ib in 0..nb {
            let wb = w.add(ib * 34);
            let d0 = f16_at(wb);
            let qx = _mm256_loadu_si256(wb.add(2) as *const __m256i);
            let ax = _mm256_sign_epi8(qx, qx);
            for r in 0..N {
                let y = &*a[r].add(ib);
                let d = _mm256_set1_ps(d0 * y.d);
                let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                let sy = _mm256_sign_epi8(qy, qx);
                acc[r] = _mm256_fmadd_ps(d, us8_pairs(ax, sy), acc[r]);
            }
        }
        let mut out = [0f32; N];
        for r in 0..N {
            out[r] = hsum(acc[r]);
        }
        out
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::env::var_os("TANTO_NO_SIMD").is_none()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

/// Which kernels run on this machine (for logs and the benchmark).
pub fn kernel_name() -> &'static str {
    if has_avx2() {
        "avx2"
    } else {
        "scalar"
    }
}

/// Activations for one matmul: either quantized blocks or plain floats.
pub enum Acts<'a> {
    Q8 {
        blocks: &'a [BlockQ8],
        per_row: usize,
    },
    F32 {
        x: &'a [f32],
        cols: usize,
    },
}

/// A weight matrix `[rows, cols]` in GGUF layout.
#[derive(Clone, Copy)]
pub struct QMatRef<'a> {
    pub ty: WType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

impl QMatRef<'_> {
    pub fn row_bytes(&self) -> usize {
        self.cols / QK * self.ty.block_bytes()
    }

    fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// `out[t * out_stride + r] = dot(W[r], x[t])` for rows `r0..r1`, tokens `0..n_t`.
    ///
    /// # Safety-free contract
    /// `out` must have room for every written index; panics otherwise.
    pub fn matmul_rows(
        &self,
        acts: &Acts<'_>,
        n_t: usize,
        r0: usize,
        r1: usize,
        mut write: impl FnMut(usize, usize, f32),
    ) {
        match (self.ty, acts) {
            (WType::Q4_0 | WType::Q4_1 | WType::Q8_0, Acts::Q8 { blocks, per_row }) => {
                let nb = self.cols / QK;
                debug_assert_eq!(nb, *per_row);
                #[cfg(target_arch = "x86_64")]
                if has_avx2() {
                    for r in r0..r1 {
                        let w = self.row(r).as_ptr();
                        let mut t = 0;
                        while t + 4 <= n_t {
                            let a = [0, 1, 2, 3].map(|i| blocks[(t + i) * per_row..].as_ptr());
                            // SAFETY: AVX2/FMA/F16C checked above; the row holds `nb`
                            // blocks and each activation row `nb` blocks.
                            let v = unsafe {
                                match self.ty {
                                    WType::Q4_1 => avx2::dot_q4_1::<4>(w, nb, a),
                                    WType::Q4_0 => avx2::dot_q4_0::<4>(w, nb, a),
                                    _ => avx2::dot_q8_0::<4>(w, nb, a),
                                }
                            };
                            for (i, val) in v.into_iter().enumerate() {
                                write(t + i, r, val);
                            }
                            t += 4;
                        }
                        while t < n_t {
                            let a = [blocks[t * per_row..(t + 1) * per_row].as_ptr()];
                            // SAFETY: as above.
                            let v = unsafe {
                                match self.ty {
                                    WType::Q4_1 => avx2::dot_q4_1::<1>(w, nb, a),
                                    WType::Q4_0 => avx2::dot_q4_0::<1>(w, nb, a),
                                    _ => avx2::dot_q8_0::<1>(w, nb, a),
                                }
                            };
                            write(t, r, v[0]);
                            t += 1;
                        }
                    }
                    return;
                }
                for r in r0..r1 {
                    let w = self.row(r);
                    for t in 0..n_t {
                        let a = &blocks[t * per_row..(t + 1) * per_row];
                        let v = match self.ty {
                            WType::Q4_1 => dot_q4_1_scalar(w, a),
                            WType::Q4_0 => dot_q4_0_scalar(w, a),
                            _ => dot_q8_0_scalar(w, a),
                        };
                        write(t, r, v);
                    }
                }
            }
            (WType::F32 | WType::F16, Acts::F32 { x, cols }) => {
                for r in r0..r1 {
                    let w = self.row(r);
                    for t in 0..n_t {
                        let xr = &x[t * cols..(t + 1) * cols];
                        let v = if self.ty == WType::F16 {
                            dot_f16_bytes(w, xr)
                        } else {
                            dot_f32_bytes(w, xr)
                        };
                        write(t, r, v);
                    }
                }
            }
            _ => {
                // Mismatched activation kind: a programming error; produce zeros
                // rather than panicking inside a worker.
                for r in r0..r1 {
                    for t in 0..n_t {
                        write(t, r, 0.0);
                    }
                }
            }
        }
    }

    /// Dequantize row `r` into `out` (embedding lookup).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let w = self.row(r);
        match self.ty {
            WType::F32 => {
                for (k, o) in out.iter_mut().enumerate() {
                    *o = f32::from_le_bytes([w[4 * k], w[4 * k + 1], w[4 * k + 2], w[4 * k + 3]]);
                }
            }
            WType::F16 => {
                for (k, o) in out.iter_mut().enumerate() {
                    *o = rd_f16(w, 2 * k);
                }
            }
            WType::Q8_0 => {
                for (b, ob) in w.chunks_exact(34).zip(out.chunks_exact_mut(QK)) {
                    let d = rd_f16(b, 0);
                    for j in 0..QK {
                        ob[j] = (b[2 + j] as i8) as f32 * d;
                    }
                }
            }
            WType::Q4_0 => {
                for (b, ob) in w.chunks_exact(18).zip(out.chunks_exact_mut(QK)) {
                    let d = rd_f16(b, 0);
                    for j in 0..16 {
                        ob[j] = ((b[2 + j] & 0x0F) as i32 - 8) as f32 * d;
                        ob[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
                    }
                }
            }
            WType::Q4_1 => {
                for (b, ob) in w.chunks_exact(20).zip(out.chunks_exact_mut(QK)) {
                    let d = rd_f16(b, 0);
                    let m = rd_f16(b, 2);
                    for j in 0..16 {
                        ob[j] = (b[4 + j] & 0x0F) as f32 * d + m;
                        ob[j + 16] = (b[4 + j] >> 4) as f32 * d + m;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }

    fn random_q(ty: WType, rows: usize, cols: usize, seed: &mut u64) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..rows * cols / QK {
            let d = f16::from_f32(lcg(seed).abs() * 0.05 + 0.001)
                .to_bits()
                .to_le_bytes();
            out.extend_from_slice(&d);
            if ty == WType::Q4_1 {
                let m = f16::from_f32(lcg(seed) * 0.1).to_bits().to_le_bytes();
                out.extend_from_slice(&m);
            }
            let nq = if ty == WType::Q8_0 { 32 } else { 16 };
            for _ in 0..nq {
                out.push(((lcg(seed) + 1.0) * 127.9) as u8);
            }
        }
        out
    }

    #[test]
    fn simd_matches_scalar_and_dequantized() {
        let mut seed = 7u64;
        let (rows, cols, n_t) = (5, 128, 6);
        let x: Vec<f32> = (0..n_t * cols).map(|_| lcg(&mut seed)).collect();
        let mut blocks = vec![BlockQ8::default(); n_t * cols / QK];
        for t in 0..n_t {
            quantize_row_q8(
                &x[t * cols..(t + 1) * cols],
                &mut blocks[t * cols / QK..(t + 1) * cols / QK],
            );
        }
        for ty in [WType::Q4_0, WType::Q4_1, WType::Q8_0] {
            let data = random_q(ty, rows, cols, &mut seed);
            let m = QMatRef {
                ty,
                rows,
                cols,
                data: &data,
            };
            let acts = Acts::Q8 {
                blocks: &blocks,
                per_row: cols / QK,
            };
            let mut got = vec![0f32; n_t * rows];
            m.matmul_rows(&acts, n_t, 0, rows, |t, r, v| got[t * rows + r] = v);
            for r in 0..rows {
                let mut wrow = vec![0f32; cols];
                m.dequantize_row(r, &mut wrow);
                for t in 0..n_t {
                    let a = &blocks[t * cols / QK..(t + 1) * cols / QK];
                    let scalar = match ty {
                        WType::Q4_1 => dot_q4_1_scalar(m.row(r), a),
                        WType::Q4_0 => dot_q4_0_scalar(m.row(r), a),
                        _ => dot_q8_0_scalar(m.row(r), a),
                    };
                    let exact: f32 = wrow.iter().zip(&x[t * cols..]).map(|(a, b)| a * b).sum();
                    let g = got[t * rows + r];
                    assert!(
                        (g - scalar).abs() <= 1e-4 * (1.0 + scalar.abs()),
                        "{ty:?} {g} vs {scalar}"
                    );
                    assert!(
                        (g - exact).abs() <= 0.05 * (1.0 + exact.abs()),
                        "{ty:?} {g} vs {exact}"
                    );
                }
            }
        }
    }

    #[test]
    fn q8_quantization_rounds_half_even() {
        let mut x = vec![0f32; 32];
        x[0] = 127.0;
        x[1] = 0.5;
        x[2] = 1.5;
        x[3] = -2.5;
        let mut b = [BlockQ8::default()];
        quantize_row_q8(&x, &mut b);
        assert_eq!(&b[0].qs[..4], &[127, 0, 2, -2]);
        assert_eq!(b[0].d, 1.0);
        assert_eq!(b[0].s, 127.0);
    }
}
