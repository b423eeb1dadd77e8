//! Quantized matrix kernels for GGUF weights (Q4_0, Q4_1, Q8_0; F16/F32 as plain
//! floats), laid out exactly as in the file so weights stay memory-mapped, and
//! for MLX affine weights repacked at load (`mlx.rs`): 4-bit as Q4_1 blocks
//! with bf16 or f16 scale/offset, 8-bit as [`WType::Q8A`] blocks.
//!
//! Activations are quantized per 32-value block to 8 bits first, as llama.cpp does
//! (Q8_0 for Q4_0/Q8_0 weights, Q8_1 — with the block sum — for Q4_1), so the dot
//! products are integer sums scaled per block. The AVX2 paths follow ggml's
//! arithmetic order (per-block FMA into 8 float lanes, the same horizontal sum),
//! which keeps greedy outputs aligned with llama.cpp. Dispatch is at run time;
//! the scalar code is the reference and the fallback.
//!
//! Why tanto owns these kernels, and how they measure against llama.cpp
//! (`scripts/bench-llamacpp.sh`): docs/adr/004-own-quantized-kernels.md.

use half::f16;

pub const QK: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q8_0,
    /// Q4_1's layout with bf16 `d`/`m` (MLX 4-bit with bf16 scales, exact).
    Q4_1B,
    /// Affine 8-bit (MLX): f16 `d`, f16 `m`, 32 × `q - 128` as i8;
    /// `w = d·q + m` with `q` in 0..=255.
    Q8A,
    /// [`WType::Q8A`] with bf16 `d`/`m`.
    Q8AB,
}

impl WType {
    /// Bytes per block of 32 values (F32/F16: per 32 values too).
    pub fn block_bytes(self) -> usize {
        match self {
            WType::F32 => 128,
            WType::F16 => 64,
            WType::Q4_0 => 18,
            WType::Q4_1 | WType::Q4_1B => 20,
            WType::Q8_0 => 34,
            WType::Q8A | WType::Q8AB => 36,
        }
    }

    pub fn is_quantized(self) -> bool {
        !matches!(self, WType::F32 | WType::F16)
    }

    /// `d`/`m` stored as bf16 rather than f16.
    fn bf16_scales(self) -> bool {
        matches!(self, WType::Q4_1B | WType::Q8AB)
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

#[inline]
fn rd_bf16(b: &[u8], off: usize) -> f32 {
    f32::from_bits((u16::from_le_bytes([b[off], b[off + 1]]) as u32) << 16)
}

/// A block's 2-byte scale at `off`, f16 or bf16.
#[inline]
fn rd_half(b: &[u8], off: usize, bf16: bool) -> f32 {
    if bf16 {
        rd_bf16(b, off)
    } else {
        rd_f16(b, off)
    }
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

fn dot_q4_1_scalar(w: &[u8], a: &[BlockQ8], bf16: bool) -> f32 {
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(20).zip(a) {
        let d = rd_half(wb, 0, bf16);
        let m = rd_half(wb, 2, bf16);
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

/// Affine 8-bit: `Σ (d·q + m)·a = d·da·Σ q·a + m·s` with `q = stored + 128`.
fn dot_q8a_scalar(w: &[u8], a: &[BlockQ8], bf16: bool) -> f32 {
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(36).zip(a) {
        let d = rd_half(wb, 0, bf16);
        let m = rd_half(wb, 2, bf16);
        let mut isum = 0i32;
        for j in 0..32 {
            isum += ((wb[4 + j] as i8) as i32 + 128) * ab.qs[j] as i32;
        }
        sum += d * ab.d * isum as f32 + m * ab.s;
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

/// The pairwise sum of 32 lanes (the fixed order [`dot_f32`] and
/// [`dot_f16`] share, so both give the same bits).
#[inline(always)]
fn reduce_lanes(mut acc: [f32; 32]) -> f32 {
    let mut width = acc.len();
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    acc[0]
}

/// `Σ w·x` in f32 over the shorter of the two slices.
pub fn dot_f32(w: &[f32], x: &[f32]) -> f32 {
    // 32 independent partial sums over exact chunks: no bounds checks in the
    // loop, so it compiles to packed FMAs (two zmm or four ymm chains), and
    // the summation order is fixed (run-to-run identical).
    const L: usize = 32;
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    let mut acc = [0f32; L];
    let (wc, xc) = (w.chunks_exact(L), x.chunks_exact(L));
    let (wr, xr) = (wc.remainder(), xc.remainder());
    for (a, b) in wc.zip(xc) {
        for l in 0..L {
            acc[l] = a[l].mul_add(b[l], acc[l]);
        }
    }
    let mut s = reduce_lanes(acc);
    for (a, b) in wr.iter().zip(xr) {
        s = a.mul_add(*b, s);
    }
    s
}

/// `Σ w·x` with f16 `w`, in the same order as [`dot_f32`] on the widened
/// weights (f16 → f32 is exact), so both give bit-identical sums.
pub fn dot_f16(w: &[f16], x: &[f32]) -> f32 {
    use half::slice::HalfFloatSliceExt;
    const L: usize = 32;
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    let mut acc = [0f32; L];
    let mut buf = [0f32; L];
    let (wc, xc) = (w.chunks_exact(L), x.chunks_exact(L));
    let (wr, xr) = (wc.remainder(), xc.remainder());
    for (a, b) in wc.zip(xc) {
        a.convert_to_f32_slice(&mut buf);
        for l in 0..L {
            acc[l] = buf[l].mul_add(b[l], acc[l]);
        }
    }
    let mut s = reduce_lanes(acc);
    for (a, b) in wr.iter().zip(xr) {
        s = a.to_f32().mul_add(*b, s);
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
    use super::{BlockQ8, WType};
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
    unsafe fn half_at<const BF: bool>(p: *const u8) -> f32 {
        let bits = u16::from_le_bytes([*p, *p.add(1)]);
        if BF {
            f32::from_bits((bits as u32) << 16)
        } else {
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
        }
    }

    #[inline(always)]
    unsafe fn nibbles(p: *const u8) -> __m256i {
        let tmp = _mm_loadu_si128(p as *const __m128i);
        let bytes = _mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp);
        _mm256_and_si256(_mm256_set1_epi8(0x0F), bytes)
    }

    /// Σ of four u8×i8 products per i32 lane, as f32. AVX-512 VNNI does it
    /// in one `vpdpbusd`; AVX2 as `maddubs` + `madd` (no saturation for the
    /// ranges used here), so both give the same integers and the same floats.
    #[inline(always)]
    unsafe fn us8_pairs<const V: bool>(ax: __m256i, sy: __m256i) -> __m256 {
        if V {
            _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy))
        } else {
            let dot = _mm256_maddubs_epi16(ax, sy);
            _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), dot))
        }
    }

    #[inline(always)]
    unsafe fn i8_pairs<const V: bool>(x: __m256i, y: __m256i) -> __m256 {
        let ax = _mm256_sign_epi8(x, x);
        let sy = _mm256_sign_epi8(y, x);
        us8_pairs::<V>(ax, sy)
    }

    /// The kernels for `ty`, compiled for the features of the caller.
    #[inline(always)]
    pub unsafe fn dispatch<const M: usize, const N: usize, const V: bool>(
        ty: WType,
        w: [*const u8; M],
        nb: usize,
        a: [*const BlockQ8; N],
    ) -> [[f32; N]; M] {
        match ty {
            WType::Q4_1 => dot_q4_1::<M, N, false, V>(w, nb, a),
            WType::Q4_1B => dot_q4_1::<M, N, true, V>(w, nb, a),
            WType::Q8A => dot_q8a::<M, N, false, V>(w, nb, a),
            WType::Q8AB => dot_q8a::<M, N, true, V>(w, nb, a),
            WType::Q4_0 => dot_q4_0::<M, N, V>(w, nb, a),
            _ => dot_q8_0::<M, N, V>(w, nb, a),
        }
    }

    /// `M` weight rows against `N` activation rows (`a[r]` each `nb` blocks).
    /// Every (row, token) pair keeps its own accumulator and block order, so a
    /// tile gives the same bits as `M * N` single dots; it only shares loads.
    #[inline(always)]
    pub unsafe fn dot_q4_1<const M: usize, const N: usize, const BF: bool, const V: bool>(
        w: [*const u8; M],
        nb: usize,
        a: [*const BlockQ8; N],
    ) -> [[f32; N]; M] {
        let mut acc = [[_mm256_setzero_ps(); N]; M];
        let mut summs = [[0f32; N]; M];
        for ib in 0..nb {
            for i in 0..M {
                let wb = w[i].add(ib * 20);
                let d0 = half_at::<BF>(wb);
                let m = half_at::<BF>(wb.add(2));
                let qx = nibbles(wb.add(4));
                for r in 0..N {
                    let y = &*a[r].add(ib);
                    summs[i][r] = m.mul_add(y.s, summs[i][r]);
                    let d0d1 = _mm256_mul_ps(_mm256_set1_ps(d0), _mm256_set1_ps(y.d));
                    let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                    let xy = us8_pairs::<V>(qx, qy);
                    acc[i][r] = _mm256_fmadd_ps(d0d1, xy, acc[i][r]);
                }
            }
        }
        let mut out = [[0f32; N]; M];
        for i in 0..M {
            for r in 0..N {
                out[i][r] = hsum(acc[i][r]) + summs[i][r];
            }
        }
        out
    }

    /// Affine 8-bit blocks (see `dot_q8a_scalar`). `q - 128` is stored, so
    /// `|q - 128| <= 128` and `maddubs` cannot saturate; the `128·Σa` part is a
    /// second `maddubs` against 0x80 bytes (`128·(a0 + a1) <= 32512`).
    #[inline(always)]
    pub unsafe fn dot_q8a<const M: usize, const N: usize, const BF: bool, const V: bool>(
        w: [*const u8; M],
        nb: usize,
        a: [*const BlockQ8; N],
    ) -> [[f32; N]; M] {
        let mut acc = [[_mm256_setzero_ps(); N]; M];
        let mut summs = [[0f32; N]; M];
        let ones = _mm256_set1_epi16(1);
        let k128 = _mm256_set1_epi8(-128);
        for ib in 0..nb {
            for i in 0..M {
                let wb = w[i].add(ib * 36);
                let d0 = half_at::<BF>(wb);
                let m = half_at::<BF>(wb.add(2));
                let qx = _mm256_loadu_si256(wb.add(4) as *const __m256i);
                let ax = _mm256_sign_epi8(qx, qx);
                // VNNI: the stored `q - 128` xor 0x80 is `q` as u8, and one
                // `vpdpbusd` gives Σ q·a, the same integer as the two-part sum.
                let qu = _mm256_xor_si256(qx, k128);
                for r in 0..N {
                    let y = &*a[r].add(ib);
                    summs[i][r] = m.mul_add(y.s, summs[i][r]);
                    let d0d1 = _mm256_mul_ps(_mm256_set1_ps(d0), _mm256_set1_ps(y.d));
                    let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                    let s32 = if V {
                        _mm256_dpbusd_epi32(_mm256_setzero_si256(), qu, qy)
                    } else {
                        let p1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx));
                        let p2 = _mm256_maddubs_epi16(k128, qy);
                        _mm256_add_epi32(_mm256_madd_epi16(ones, p1), _mm256_madd_epi16(ones, p2))
                    };
                    acc[i][r] = _mm256_fmadd_ps(d0d1, _mm256_cvtepi32_ps(s32), acc[i][r]);
                }
            }
        }
        let mut out = [[0f32; N]; M];
        for i in 0..M {
            for r in 0..N {
                out[i][r] = hsum(acc[i][r]) + summs[i][r];
            }
        }
        out
    }

    #[inline(always)]
    pub unsafe fn dot_q4_0<const M: usize, const N: usize, const V: bool>(
        w: [*const u8; M],
        nb: usize,
        a: [*const BlockQ8; N],
    ) -> [[f32; N]; M] {
        let mut acc = [[_mm256_setzero_ps(); N]; M];
        for ib in 0..nb {
            for i in 0..M {
                let wb = w[i].add(ib * 18);
                let d0 = f16_at(wb);
                let qx = _mm256_sub_epi8(nibbles(wb.add(2)), _mm256_set1_epi8(8));
                for r in 0..N {
                    let y = &*a[r].add(ib);
                    let d = _mm256_set1_ps(d0 * y.d);
                    let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                    acc[i][r] = _mm256_fmadd_ps(d, i8_pairs::<V>(qx, qy), acc[i][r]);
                }
            }
        }
        let mut out = [[0f32; N]; M];
        for i in 0..M {
            for r in 0..N {
                out[i][r] = hsum(acc[i][r]);
            }
        }
        out
    }

    #[inline(always)]
    pub unsafe fn dot_q8_0<const M: usize, const N: usize, const V: bool>(
        w: [*const u8; M],
        nb: usize,
        a: [*const BlockQ8; N],
    ) -> [[f32; N]; M] {
        let mut acc = [[_mm256_setzero_ps(); N]; M];
        for ib in 0..nb {
            for i in 0..M {
                let wb = w[i].add(ib * 34);
                let d0 = f16_at(wb);
                let qx = _mm256_loadu_si256(wb.add(2) as *const __m256i);
                let ax = _mm256_sign_epi8(qx, qx);
                for r in 0..N {
                    let y = &*a[r].add(ib);
                    let d = _mm256_set1_ps(d0 * y.d);
                    let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                    let sy = _mm256_sign_epi8(qy, qx);
                    acc[i][r] = _mm256_fmadd_ps(d, us8_pairs::<V>(ax, sy), acc[i][r]);
                }
            }
        }
        let mut out = [[0f32; N]; M];
        for i in 0..M {
            for r in 0..N {
                out[i][r] = hsum(acc[i][r]);
            }
        }
        out
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16_ggml(a: *const half::f16, b: *const f32, n: usize) -> f32 {
        let np = n & !31;
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < np {
            for (k, s) in acc.iter_mut().enumerate() {
                let av = _mm256_cvtph_ps(_mm_loadu_si128(a.add(i + 8 * k) as *const __m128i));
                let bv = _mm256_loadu_ps(b.add(i + 8 * k));
                *s = _mm256_fmadd_ps(av, bv, *s);
            }
            i += 32;
        }
        // GGML_F32x8_REDUCE
        let x0 = _mm256_add_ps(acc[0], acc[2]);
        let x1 = _mm256_add_ps(acc[1], acc[3]);
        let x = _mm256_add_ps(x0, x1);
        let t0 = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
        let t1 = _mm_hadd_ps(t0, t0);
        let mut s = _mm_cvtss_f32(_mm_hadd_ps(t1, t1)) as f64;
        for k in np..n {
            s += ((*a.add(k)).to_f32() * *b.add(k)) as f64;
        }
        s as f32
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16_tiny(a: *const half::f16, b: *const f32, n: usize) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            let av = _mm256_cvtph_ps(_mm_loadu_si128(a.add(i) as *const __m128i));
            acc = _mm256_fmadd_ps(av, _mm256_loadu_ps(b.add(i)), acc);
            i += 8;
        }
        hsum(acc)
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

/// AVX-512 VNNI with VL on top of AVX2 (`TANTO_NO_VNNI` turns it off).
#[cfg(target_arch = "x86_64")]
fn has_vnni() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        has_avx2()
            && std::env::var_os("TANTO_NO_VNNI").is_none()
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx512vl")
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn has_vnni() -> bool {
    false
}

/// Which kernels run on this machine (for logs and the benchmark).
pub fn kernel_name() -> &'static str {
    if has_vnni() {
        "avx2+avx512-vnni"
    } else if has_avx2() {
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
            (ty, Acts::Q8 { blocks, per_row }) if ty.is_quantized() => {
                let nb = self.cols / QK;
                debug_assert_eq!(nb, *per_row);
                #[cfg(target_arch = "x86_64")]
                if has_avx2() {
                    self.tiles_avx2(blocks, *per_row, n_t, r0, r1, &mut write);
                    return;
                }
                for r in r0..r1 {
                    let w = self.row(r);
                    for t in 0..n_t {
                        let a = &blocks[t * per_row..(t + 1) * per_row];
                        let bf = self.ty.bf16_scales();
                        let v = match self.ty {
                            WType::Q4_1 | WType::Q4_1B => dot_q4_1_scalar(w, a, bf),
                            WType::Q8A | WType::Q8AB => dot_q8a_scalar(w, a, bf),
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

    /// AVX2 quantized matmul: tiles of 2 weight rows × 4 tokens (shared weight
    /// and activation loads), 2 × 1 for decode and leftover tokens. Results
    /// are bit-identical whatever the tiling.
    #[cfg(target_arch = "x86_64")]
    fn tiles_avx2(
        &self,
        blocks: &[BlockQ8],
        per_row: usize,
        n_t: usize,
        r0: usize,
        r1: usize,
        write: &mut impl FnMut(usize, usize, f32),
    ) {
        let nb = self.cols / QK;
        assert!(blocks.len() >= n_t * per_row && per_row >= nb && r1 <= self.rows);
        use avx2::dispatch;
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn tile_avx2<const M: usize, const N: usize>(
            ty: WType,
            w: [*const u8; M],
            nb: usize,
            a: [*const BlockQ8; N],
        ) -> [[f32; N]; M] {
            dispatch::<M, N, false>(ty, w, nb, a)
        }
        #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
        unsafe fn tile_vnni<const M: usize, const N: usize>(
            ty: WType,
            w: [*const u8; M],
            nb: usize,
            a: [*const BlockQ8; N],
        ) -> [[f32; N]; M] {
            dispatch::<M, N, true>(ty, w, nb, a)
        }
        fn tile<const M: usize, const N: usize>(
            ty: WType,
            w: [*const u8; M],
            nb: usize,
            a: [*const BlockQ8; N],
        ) -> [[f32; N]; M] {
            // SAFETY: AVX2/FMA/F16C (and, for the VNNI variant, AVX-512
            // VNNI/VL) were detected; each weight row holds `nb` blocks and
            // each activation row at least `nb` blocks (asserted above).
            unsafe {
                if has_vnni() {
                    tile_vnni::<M, N>(ty, w, nb, a)
                } else {
                    tile_avx2::<M, N>(ty, w, nb, a)
                }
            }
        }
        let act = |t: usize| blocks[t * per_row..].as_ptr();
        let n4 = if n_t >= 4 { n_t / 4 * 4 } else { 0 };
        let mut r = r0;
        while r < r1 {
            let m2 = n4 > 0 && r + 2 <= r1;
            let mut t = 0;
            while t < n4 {
                let a = [act(t), act(t + 1), act(t + 2), act(t + 3)];
                if m2 {
                    let w = [self.row(r).as_ptr(), self.row(r + 1).as_ptr()];
                    let v = tile::<2, 4>(self.ty, w, nb, a);
                    for (i, vi) in v.iter().enumerate() {
                        for (k, &val) in vi.iter().enumerate() {
                            write(t + k, r + i, val);
                        }
                    }
                } else {
                    let v = tile::<1, 4>(self.ty, [self.row(r).as_ptr()], nb, a);
                    for (k, &val) in v[0].iter().enumerate() {
                        write(t + k, r, val);
                    }
                }
                t += 4;
            }
            for tt in n4..n_t {
                if m2 {
                    let w = [self.row(r).as_ptr(), self.row(r + 1).as_ptr()];
                    let v = tile::<2, 1>(self.ty, w, nb, [act(tt)]);
                    write(tt, r, v[0][0]);
                    write(tt, r + 1, v[1][0]);
                } else {
                    let v = tile::<1, 1>(self.ty, [self.row(r).as_ptr()], nb, [act(tt)]);
                    write(tt, r, v[0][0]);
                }
            }
            r += if m2 { 2 } else { 1 };
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
            WType::Q4_1 | WType::Q4_1B => {
                let bf = self.ty.bf16_scales();
                for (b, ob) in w.chunks_exact(20).zip(out.chunks_exact_mut(QK)) {
                    let d = rd_half(b, 0, bf);
                    let m = rd_half(b, 2, bf);
                    for j in 0..16 {
                        ob[j] = (b[4 + j] & 0x0F) as f32 * d + m;
                        ob[j + 16] = (b[4 + j] >> 4) as f32 * d + m;
                    }
                }
            }
            WType::Q8A | WType::Q8AB => {
                let bf = self.ty.bf16_scales();
                for (b, ob) in w.chunks_exact(36).zip(out.chunks_exact_mut(QK)) {
                    let d = rd_half(b, 0, bf);
                    let m = rd_half(b, 2, bf);
                    for j in 0..QK {
                        ob[j] = ((b[4 + j] as i8) as i32 + 128) as f32 * d + m;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- attention dots
//
// Attention multiplies the f16 KV cache with f32 vectors whose values are already
// rounded to f16 (ggml converts Q and the softmax probabilities to f16). Two
// summation orders exist in llama.cpp's CPU build and both are reproduced:
// `ggml_vec_dot_f16` (single-token batches: 4x8 lanes, `GGML_F32x8_REDUCE`, a
// scalar f64 tail) and llamafile's tinyBLAS (multi-token batches: one 8-lane
// accumulator, `hsum`).

/// `ggml_vec_dot_f16` order: lane `i % 32` of four 8-wide accumulators.
pub fn dot_f16_ggml(a: &[f16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2/FMA/F16C checked; both slices hold `n` values.
        return unsafe { avx2::dot_f16_ggml(a.as_ptr(), b.as_ptr(), n) };
    }
    let np = n & !31;
    let mut acc = [0f32; 32];
    for i in (0..np).step_by(32) {
        for (l, s) in acc.iter_mut().enumerate() {
            *s = a[i + l].to_f32().mul_add(b[i + l], *s);
        }
    }
    let mut x = [0f32; 8];
    for l in 0..8 {
        x[l] = (acc[l] + acc[16 + l]) + (acc[8 + l] + acc[24 + l]);
    }
    let t0: [f32; 4] = std::array::from_fn(|l| x[l] + x[l + 4]);
    let mut s = ((t0[0] + t0[1]) + (t0[2] + t0[3])) as f64;
    for i in np..n {
        s += (a[i].to_f32() * b[i]) as f64;
    }
    s as f32
}

/// llamafile tinyBLAS order: lane `i % 8` of one accumulator, then `hsum`.
/// `a.len()` must be a multiple of 8 (tinyBLAS refuses other sizes).
pub fn dot_f16_tiny(a: &[f16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len()) & !7;
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2/FMA/F16C checked; both slices hold `n` values.
        return unsafe { avx2::dot_f16_tiny(a.as_ptr(), b.as_ptr(), n) };
    }
    let mut acc = [0f32; 8];
    for i in (0..n).step_by(8) {
        for (l, s) in acc.iter_mut().enumerate() {
            *s = a[i + l].to_f32().mul_add(b[i + l], *s);
        }
    }
    let t: [f32; 4] = std::array::from_fn(|l| acc[l + 4] + acc[l]);
    (t[0] + t[2]) + (t[1] + t[3])
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
        let half = |v: f32| {
            if ty.bf16_scales() {
                half::bf16::from_f32(v).to_bits().to_le_bytes()
            } else {
                f16::from_f32(v).to_bits().to_le_bytes()
            }
        };
        for _ in 0..rows * cols / QK {
            // Affine 8-bit spans 256 steps: the same weight range as 4-bit.
            let span = if matches!(ty, WType::Q8A | WType::Q8AB) {
                1.0 / 16.0
            } else {
                1.0
            };
            out.extend_from_slice(&half((lcg(seed).abs() * 0.05 + 0.001) * span));
            if !matches!(ty, WType::Q4_0 | WType::Q8_0) {
                out.extend_from_slice(&half(lcg(seed) * 0.1));
            }
            let nq = if matches!(ty, WType::Q4_0 | WType::Q4_1 | WType::Q4_1B) {
                16
            } else {
                32
            };
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
        for ty in [
            WType::Q4_0,
            WType::Q4_1,
            WType::Q8_0,
            WType::Q4_1B,
            WType::Q8A,
            WType::Q8AB,
        ] {
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
            // Tiling never changes bits: compare with one row × one token calls.
            for r in 0..rows {
                for t in 0..n_t {
                    let one = Acts::Q8 {
                        blocks: &blocks[t * cols / QK..(t + 1) * cols / QK],
                        per_row: cols / QK,
                    };
                    m.matmul_rows(&one, 1, r, r + 1, |_, _, v| {
                        assert_eq!(v.to_bits(), got[t * rows + r].to_bits(), "{ty:?} {r} {t}")
                    });
                }
            }
            for r in 0..rows {
                let mut wrow = vec![0f32; cols];
                m.dequantize_row(r, &mut wrow);
                for t in 0..n_t {
                    let a = &blocks[t * cols / QK..(t + 1) * cols / QK];
                    let bf = ty.bf16_scales();
                    let scalar = match ty {
                        WType::Q4_1 | WType::Q4_1B => dot_q4_1_scalar(m.row(r), a, bf),
                        WType::Q8A | WType::Q8AB => dot_q8a_scalar(m.row(r), a, bf),
                        WType::Q4_0 => dot_q4_0_scalar(m.row(r), a),
                        _ => dot_q8_0_scalar(m.row(r), a),
                    };
                    let exact: f32 = wrow.iter().zip(&x[t * cols..]).map(|(a, b)| a * b).sum();
                    let g = got[t * rows + r];
                    assert!(
                        (g - scalar).abs() <= 1e-4 * (1.0 + scalar.abs()),
                        "{ty:?} {g} vs {scalar} exact {exact} r {r} t {t}"
                    );
                    assert!(
                        (g - exact).abs() <= 0.05 * (1.0 + exact.abs()),
                        "{ty:?} {g} vs {exact}"
                    );
                }
            }
        }
    }

    /// The VNNI kernels give the same bits as the AVX2 ones for every type.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vnni_kernels_equal_avx2_bits() {
        if !(has_avx2()
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx512vl"))
        {
            eprintln!("skip: no AVX-512 VNNI on this CPU");
            return;
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn plain(
            ty: WType,
            w: [*const u8; 2],
            nb: usize,
            a: [*const BlockQ8; 4],
        ) -> [[f32; 4]; 2] {
            avx2::dispatch::<2, 4, false>(ty, w, nb, a)
        }
        #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
        unsafe fn vnni(
            ty: WType,
            w: [*const u8; 2],
            nb: usize,
            a: [*const BlockQ8; 4],
        ) -> [[f32; 4]; 2] {
            avx2::dispatch::<2, 4, true>(ty, w, nb, a)
        }
        let mut seed = 11u64;
        let (rows, cols, n_t) = (2, 256, 4);
        let x: Vec<f32> = (0..n_t * cols).map(|_| lcg(&mut seed) * 3.0).collect();
        let mut blocks = vec![BlockQ8::default(); n_t * cols / QK];
        for t in 0..n_t {
            quantize_row_q8(
                &x[t * cols..(t + 1) * cols],
                &mut blocks[t * cols / QK..(t + 1) * cols / QK],
            );
        }
        for ty in [
            WType::Q4_0,
            WType::Q4_1,
            WType::Q8_0,
            WType::Q4_1B,
            WType::Q8A,
            WType::Q8AB,
        ] {
            let data = random_q(ty, rows, cols, &mut seed);
            let m = QMatRef {
                ty,
                rows,
                cols,
                data: &data,
            };
            let w = [m.row(0).as_ptr(), m.row(1).as_ptr()];
            let a: [*const BlockQ8; 4] = std::array::from_fn(|t| blocks[t * cols / QK..].as_ptr());
            // SAFETY: features checked above; each row holds cols/QK blocks.
            let (p, v) = unsafe { (plain(ty, w, cols / QK, a), vnni(ty, w, cols / QK, a)) };
            for i in 0..2 {
                for t in 0..4 {
                    assert_eq!(
                        p[i][t].to_bits(),
                        v[i][t].to_bits(),
                        "{ty:?} row {i} token {t}"
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

    #[test]
    fn f16_dots_simd_equal_scalar_order() {
        let a: Vec<f16> = (0..96)
            .map(|i| f16::from_f32((i as f32 * 0.37).sin() * 3.0))
            .collect();
        let b: Vec<f32> = (0..96)
            .map(|i| f16::from_f32((i as f32 * 0.11).cos()).to_f32())
            .collect();
        for n in [8, 32, 64, 72, 96] {
            let (x, y) = (&a[..n], &b[..n]);
            let mut acc = [0f32; 8];
            for i in (0..n).step_by(8) {
                for l in 0..8 {
                    acc[l] = x[i + l].to_f32().mul_add(y[i + l], acc[l]);
                }
            }
            let t: [f32; 4] = std::array::from_fn(|l| acc[l + 4] + acc[l]);
            assert_eq!(dot_f16_tiny(x, y), (t[0] + t[2]) + (t[1] + t[3]));
            let exact: f64 = x.iter().zip(y).map(|(p, q)| p.to_f64() * *q as f64).sum();
            assert!((dot_f16_ggml(x, y) as f64 - exact).abs() < 1e-3);
        }
    }

    #[test]
    fn f32_and_f16_dots_agree_and_are_accurate() {
        // Lengths that hit no chunk, exact chunks and a remainder.
        for n in [0usize, 5, 32, 64, 100, 384] {
            let w16: Vec<f16> = (0..n)
                .map(|i| f16::from_f32((i as f32 * 0.29).sin() * 2.0))
                .collect();
            let w32: Vec<f32> = w16.iter().map(|v| v.to_f32()).collect();
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.13).cos()).collect();
            let a = dot_f32(&w32, &x);
            // Same order on widened weights: bit-identical.
            assert_eq!(a.to_bits(), dot_f16(&w16, &x).to_bits(), "n={n}");
            let exact: f64 = w32.iter().zip(&x).map(|(p, q)| *p as f64 * *q as f64).sum();
            assert!((a as f64 - exact).abs() < 1e-4, "n={n}: {a} vs {exact}");
        }
        // The shorter slice bounds the sum.
        assert_eq!(dot_f32(&[1.0, 2.0, 3.0], &[1.0, 1.0]), 3.0);
    }
}
