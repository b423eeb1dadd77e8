//! Audio in for Whisper (issue 12): decoding any common file to 16 kHz mono,
//! and the log-mel spectrogram against Hugging Face's `WhisperFeatureExtractor`.
//!
//! Always run: the committed 16 kHz WAV clips, WAV and FLAC files written
//! here, hostile inputs, and `tests/fixtures/whisper/mel-ref.safetensors`.
//! With the test models (`$TANTO_TEST_MODELS/audio`, by default
//! `~/.cache/tanto/test-models/audio`): 44.1 kHz stereo FLAC and MP3 copies of
//! the clips; skipped with a note when absent unless
//! `TANTO_REQUIRE_TEST_MODELS=1`.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use tanto_engine::audio::decode::{decode, decode_file};
use tanto_engine::audio::mel::{LogMel, N_FRAMES, N_FREQ};
use tanto_engine::audio::{AudioError, Pcm, FFMPEG_HINT, SAMPLE_RATE};

const CLIPS: [&str; 2] = ["fox", "hello"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/whisper")
}

fn clip_path(name: &str) -> PathBuf {
    fixtures().join(format!("{name}16k.wav"))
}

/// The `data` chunk of a 16-bit PCM WAV, as `i16 / 32768`.
fn raw_wav_samples(bytes: &[u8]) -> Vec<f32> {
    let mut p = 12;
    while p + 8 <= bytes.len() {
        let id = &bytes[p..p + 4];
        let len = u32::from_le_bytes(bytes[p + 4..p + 8].try_into().unwrap()) as usize;
        if id == b"data" {
            let data = &bytes[p + 8..(p + 8 + len).min(bytes.len())];
            return data
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
                .collect();
        }
        p += 8 + len + (len & 1);
    }
    panic!("no data chunk");
}

fn clip(name: &str) -> Vec<f32> {
    raw_wav_samples(&std::fs::read(clip_path(name)).unwrap())
}

/// A canonical WAV: 16-bit PCM (`format` 1) or 32-bit float (`format` 3).
fn wav(rate: u32, channels: u16, format: u16, data: &[u8]) -> Vec<u8> {
    let bits: u16 = if format == 3 { 32 } else { 16 };
    let block = channels.wrapping_mul(bits / 8);
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&rate.wrapping_mul(block as u32).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn s16_bytes(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|&s| ((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect()
}

/// A minimal FLAC encoder: 16-bit mono, 16 kHz, VERBATIM subframes.
mod flac {
    fn crc8(data: &[u8]) -> u8 {
        let mut crc = 0u8;
        for &b in data {
            crc ^= b;
            for _ in 0..8 {
                crc = if crc & 0x80 != 0 {
                    (crc << 1) ^ 0x07
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    fn crc16(data: &[u8]) -> u16 {
        let mut crc = 0u16;
        for &b in data {
            crc ^= (b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x8005
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    pub const BLOCK: usize = 4096;

    pub fn encode(samples: &[i16]) -> Vec<u8> {
        let mut v = b"fLaC".to_vec();
        // STREAMINFO, the last metadata block, 34 bytes.
        v.extend_from_slice(&[0x80, 0, 0, 34]);
        v.extend_from_slice(&(BLOCK as u16).to_be_bytes());
        v.extend_from_slice(&(BLOCK as u16).to_be_bytes());
        v.extend_from_slice(&[0; 6]); // frame sizes unknown
                                      // 20 bits rate, 3 bits channels - 1, 5 bits bps - 1, 36 bits total.
        let packed: u64 = (16_000u64 << 44) | (15u64 << 36) | samples.len() as u64;
        v.extend_from_slice(&packed.to_be_bytes());
        v.extend_from_slice(&[0; 16]); // MD5 unknown
        for (n, block) in samples.chunks(BLOCK).enumerate() {
            assert!(n < 128, "one-byte frame numbers only");
            let start = v.len();
            v.extend_from_slice(&[0xFF, 0xF8]);
            // Block size 0111 (16-bit size - 1 follows), rate 0101 (16 kHz);
            // mono, 16 bits.
            v.push(0x75);
            v.push(0x08);
            v.push(n as u8);
            v.extend_from_slice(&(block.len() as u16 - 1).to_be_bytes());
            let crc = crc8(&v[start..]);
            v.push(crc);
            v.push(0x02); // VERBATIM subframe, no wasted bits
            for s in block {
                v.extend_from_slice(&s.to_be_bytes());
            }
            let crc = crc16(&v[start..]);
            v.extend_from_slice(&crc.to_be_bytes());
        }
        v
    }
}

fn models_audio_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("TANTO_TEST_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/tanto/test-models"))
        })
        .unwrap_or_default()
        .join("audio");
    let complete = CLIPS.iter().all(|c| {
        dir.join(format!("{c}44k.flac")).is_file() && dir.join(format!("{c}44k.mp3")).is_file()
    });
    if complete {
        return Some(dir);
    }
    if std::env::var("TANTO_REQUIRE_TEST_MODELS").is_ok_and(|v| v == "1") {
        panic!(
            "{test}: 44.1 kHz clips not found in {} and TANTO_REQUIRE_TEST_MODELS=1",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED {test}: 44.1 kHz clips (fox44k.flac, …) not found in {}",
        dir.display()
    );
    None
}

/// The best normalised correlation of `a` against `b` shifted by up to
/// `max_lag` samples, and that shift.
fn aligned_correlation(a: &[f32], b: &[f32], max_lag: isize) -> (f64, isize) {
    let mut best = (f64::NEG_INFINITY, 0);
    for lag in -max_lag..=max_lag {
        let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
        for (i, &x) in a.iter().enumerate() {
            let j = i as isize + lag;
            if j < 0 || j as usize >= b.len() {
                continue;
            }
            let y = b[j as usize] as f64;
            ab += x as f64 * y;
            aa += x as f64 * x as f64;
            bb += y * y;
        }
        let c = ab / (aa * bb).sqrt().max(1e-30);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

// ---------------------------------------------------------------- log-mel

fn reference_tensors() -> Option<Vec<u8>> {
    let path = std::env::var_os("TANTO_MEL_REF")
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures().join("mel-ref.safetensors"));
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) => {
            assert!(
                std::env::var("TANTO_REQUIRE_TEST_MODELS").map_or(true, |v| v != "1"),
                "{}: {e}",
                path.display()
            );
            eprintln!("SKIPPED mel reference: {}: {e}", path.display());
            None
        }
    }
}

fn tensor_f32(st: &SafeTensors, name: &str) -> Option<(Vec<f32>, Vec<usize>)> {
    let t = st.tensor(name).ok()?;
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some((v, t.shape().to_vec()))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn log_mel_matches_hugging_face() {
    let Some(bytes) = reference_tensors() else {
        return;
    };
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for n_mels in [80usize, 128] {
        let mel = LogMel::new(n_mels);
        for name in CLIPS {
            let key = if n_mels == 80 {
                name.to_string()
            } else {
                format!("{name}_128")
            };
            let Some((want, shape)) = tensor_f32(&st, &key) else {
                assert!(n_mels != 80, "mel-ref has no tensor {key}");
                continue;
            };
            assert_eq!(shape, [n_mels, N_FRAMES], "{key}");
            let got = mel.compute(&clip(name));
            let d = max_abs_diff(&got, &want);
            eprintln!("{key}: max |Δ| = {d:e}");
            assert!(d < 1e-4, "{key}: max |Δ| = {d}");
        }
        // Long-form (truncation=False, padding="longest"), when present.
        let long_key = if n_mels == 80 {
            "long".to_string()
        } else {
            "long_128".to_string()
        };
        if let (Some((input, _)), Some((want, shape))) =
            (tensor_f32(&st, "long_in"), tensor_f32(&st, &long_key))
        {
            let (got, frames) = mel.compute_long(&input);
            assert_eq!(frames, input.len() / 160);
            assert_eq!(shape, [n_mels, frames], "{long_key}");
            let d = max_abs_diff(&got, &want);
            eprintln!("{long_key} ({frames} frames): max |Δ| = {d:e}");
            assert!(d < 1e-4, "{long_key}: max |Δ| = {d}");
        }
    }
}

#[test]
fn mel_filterbank_is_hugging_faces() {
    for (n_mels, lo, hi) in [(80usize, 0.9, 1.1), (128, 0.45, 1.75)] {
        let mel = LogMel::new(n_mels);
        let f = mel.filters();
        assert_eq!(f.len(), n_mels * N_FREQ);
        let mut last_peak = 0;
        for (m, row) in f.chunks(N_FREQ).enumerate() {
            assert!(row.iter().all(|&w| w >= 0.0), "row {m}");
            // Slaney normalisation: unit area over Hz, bins 40 Hz apart
            // (coarse for the narrow low filters of the 128-band bank).
            let area = row.iter().sum::<f64>() * 40.0;
            assert!(
                (lo..hi).contains(&area),
                "{n_mels} mels, row {m}: area {area}"
            );
            let peak = (0..N_FREQ)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            assert!(
                peak >= last_peak,
                "row {m} peaks at {peak}, before {last_peak}"
            );
            last_peak = peak;
        }
        assert!(last_peak > 190 && last_peak < N_FREQ);
    }
    // Values of transformers' mel_filter_bank(201, 80, 0, 8000, 16000,
    // norm="slaney", mel_scale="slaney"), as [mel, bin].
    let f = LogMel::new(80);
    let f = f.filters();
    for (m, k, want) in [
        (0, 1, 0.024862593984176087),
        (40, 43, 0.014735565741439168),
        (79, 195, 0.0022437951379453607),
    ] {
        let got = f[m * N_FREQ + k];
        assert!(
            (got - want).abs() < 1e-12 * want,
            "[{m}, {k}] = {got}, want {want}"
        );
    }
    assert_eq!(f[0], 0.0);
    assert_eq!(f[2], 0.0);
}

#[test]
fn log_mel_shapes_and_padding() {
    let mel = LogMel::new(80);
    let x = clip("fox");
    let short = mel.compute(&x);
    assert_eq!(short.len(), 80 * N_FRAMES);
    // Up to 30 s, long-form is short-form.
    assert_eq!(mel.compute_long(&x), (short.clone(), N_FRAMES));
    // Over 30 s, short-form trims and long-form keeps every 10 ms.
    let long: Vec<f32> = x.iter().cycle().take(16_000 * 45 + 99).copied().collect();
    assert_eq!(mel.compute(&long).len(), 80 * N_FRAMES);
    let (v, frames) = mel.compute_long(&long);
    assert_eq!(frames, long.len() / 160);
    assert_eq!(v.len(), 80 * frames);
    assert!(v.iter().all(|x| x.is_finite()));
}

// ---------------------------------------------------------------- decoding

fn assert_unsupported_with_hint(r: Result<Pcm, AudioError>, what: &str) {
    match r {
        Err(AudioError::Unsupported { hint, what: w }) => {
            assert_eq!(hint, FFMPEG_HINT, "{what}");
            assert!(w.contains("WAV, FLAC, MP3"), "{what}: {w}");
        }
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn sixteen_khz_wav_is_bit_exact() {
    for name in CLIPS {
        let bytes = std::fs::read(clip_path(name)).unwrap();
        let want = raw_wav_samples(&bytes);
        let pcm = decode(&bytes, Some(&format!("{name}16k.wav"))).unwrap();
        assert_eq!(pcm.source_rate, SAMPLE_RATE);
        assert_eq!(pcm.channels, 1);
        assert_eq!(pcm.codec, "pcm_s16le");
        assert!(pcm.samples == want, "{name}: samples differ");
        assert_eq!(
            decode_file(&clip_path(name), Some(bytes.len() as u64)).unwrap(),
            pcm
        );
        assert!((pcm.duration_secs() - want.len() as f64 / 16_000.0).abs() < 1e-12);
    }
}

#[test]
fn sixteen_khz_flac_is_bit_exact() {
    let x = clip("hello");
    let ints: Vec<i16> = x.iter().map(|&s| (s * 32768.0) as i16).collect();
    let bytes = flac::encode(&ints);
    let pcm = decode(&bytes, Some("hello.flac")).unwrap();
    assert_eq!(pcm.codec, "flac");
    assert_eq!((pcm.source_rate, pcm.channels), (16_000, 1));
    assert!(pcm.samples == x);

    // Truncated in the middle of a frame: the frames before it, or Corrupt.
    for cut in [bytes.len() - 1, bytes.len() / 2 + 3, 8 + 34 + 4 + 900] {
        match decode(&bytes[..cut], None) {
            Ok(p) => {
                assert!(p.samples.len() < x.len(), "cut {cut}");
                assert_eq!(p.samples.len() % flac::BLOCK, 0, "cut {cut}: whole frames");
                assert!(p.samples[..] == x[..p.samples.len()], "cut {cut}");
            }
            Err(AudioError::Corrupt(_)) | Err(AudioError::Empty) => {}
            Err(e) => panic!("cut {cut}: {e:?}"),
        }
    }
    // Truncated inside STREAMINFO.
    assert!(decode(&bytes[..20], None).is_err());
}

#[test]
fn other_rates_and_channels_are_resampled_and_mixed() {
    // 1.5 s of 440 Hz at 44.1 kHz, left 0.5, right 0.3: mono is 0.4.
    let rate = 44_100u32;
    let n = 66_150 + 17;
    let tone = |t: f64| (2.0 * std::f64::consts::PI * 440.0 * t).sin();
    let stereo: Vec<f32> = (0..n)
        .flat_map(|i| {
            let s = tone(i as f64 / rate as f64);
            [(0.5 * s) as f32, (0.3 * s) as f32]
        })
        .collect();
    let data: Vec<u8> = stereo.iter().flat_map(|s| s.to_le_bytes()).collect();
    let pcm = decode(&wav(rate, 2, 3, &data), Some("tone.wav")).unwrap();
    assert_eq!((pcm.source_rate, pcm.channels), (rate, 2));
    let want = ((n as f64) * 16_000.0 / rate as f64).round() as usize;
    assert_eq!(pcm.samples.len(), want);
    let err = (400..want - 400)
        .map(|i| (pcm.samples[i] as f64 - 0.4 * tone(i as f64 / 16_000.0)).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-3, "max error {err}");

    // Float WAV with NaN and infinities: zeros, not NaN.
    let bad: Vec<u8> = [0.25f32, f32::NAN, f32::INFINITY, -0.5]
        .iter()
        .cycle()
        .take(4000)
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let pcm = decode(&wav(16_000, 1, 3, &bad), None).unwrap();
    assert_eq!(&pcm.samples[..4], &[0.25, 0.0, 0.0, -0.5]);
}

#[test]
fn forty_four_khz_flac_and_mp3() {
    let Some(dir) = models_audio_dir("forty_four_khz_flac_and_mp3") else {
        return;
    };
    for name in CLIPS {
        let orig = clip(name);
        for (ext, tolerance, min_corr) in [("flac", 1usize, 0.99), ("mp3", 1200, 0.9)] {
            let path = dir.join(format!("{name}44k.{ext}"));
            let pcm =
                decode_file(&path, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(pcm.source_rate, 44_100, "{ext}");
            assert_eq!(pcm.channels, 2, "{ext}");
            assert_eq!(pcm.codec, ext, "{ext}");
            let d = pcm.samples.len().abs_diff(orig.len());
            let (corr, lag) = aligned_correlation(&orig, &pcm.samples, tolerance as isize + 50);
            eprintln!(
                "{name}44k.{ext}: {} samples (16 kHz original {}), correlation {corr:.5} at lag {lag}",
                pcm.samples.len(),
                orig.len()
            );
            assert!(
                d <= tolerance,
                "{name}.{ext}: {} samples, want {} ± {tolerance}",
                pcm.samples.len(),
                orig.len()
            );
            assert!(
                corr > min_corr,
                "{name}.{ext}: correlation {corr} at lag {lag}"
            );
        }
    }
}

// ---------------------------------------------------------------- hostile

/// xorshift64*: deterministic noise without a dependency.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[test]
fn empty_and_random_bytes() {
    assert_eq!(decode(&[], None), Err(AudioError::Empty));
    assert_eq!(decode(&[], Some("a.wav")), Err(AudioError::Empty));
    for seed in 0..64 {
        let bytes = noise(seed, 1 + (seed as usize * 977) % 70_000);
        match decode(&bytes, Some("x.mp3")) {
            Err(AudioError::Unsupported { .. }) | Err(AudioError::Corrupt(_)) => {}
            other => panic!("seed {seed}: {other:?}"),
        }
    }
    // Random bytes behind each supported magic: an error or some audio, never
    // a panic (decode catches decoder panics, so also count those).
    let mut caught = 0;
    let magics: [&[u8]; 7] = [
        b"RIFF\x24\x00\x10\x00WAVEfmt ",
        b"fLaC",
        b"OggS\x00\x02",
        b"\x00\x00\x00\x20ftypM4A ",
        b"ID3\x04\x00\x00\x00\x00\x00\x00",
        b"\xFF\xFB\x90\x64",
        b"\xFF\xF1\x50\x80",
    ];
    for (i, magic) in magics.iter().enumerate() {
        for seed in 0..24 {
            let mut bytes = magic.to_vec();
            bytes.extend(noise(1000 * i as u64 + seed, 64 + seed as usize * 531));
            if let Err(AudioError::Corrupt(m)) = decode(&bytes, None) {
                caught += m.contains("malformed input") as usize;
            }
        }
    }
    eprintln!("decoder panics caught on random input: {caught}");
}

#[test]
fn mutated_files_never_panic() {
    let wav_bytes = std::fs::read(clip_path("fox")).unwrap();
    let wav_bytes = &wav_bytes[..20_000];
    let ints: Vec<i16> = clip("hello")[..20_000]
        .iter()
        .map(|&s| (s * 32768.0) as i16)
        .collect();
    let flac_bytes = flac::encode(&ints);
    let mut caught = 0;
    for (name, base) in [("wav", wav_bytes), ("flac", &flac_bytes[..])] {
        for seed in 0..150u64 {
            let mut b = base.to_vec();
            let r = noise(seed, 16);
            for k in 0..(1 + r[0] % 6) as usize {
                // Mostly headers, sometimes anywhere.
                let span = if r[1].is_multiple_of(4) {
                    b.len()
                } else {
                    64.min(b.len())
                };
                let pos = (u16::from_le_bytes([r[2 + 2 * k], r[3 + 2 * k]]) as usize) % span;
                b[pos] = r[15 - k];
            }
            if let Err(AudioError::Corrupt(m)) = decode(&b, Some(name)) {
                caught += m.contains("malformed input") as usize;
            }
        }
    }
    eprintln!("decoder panics caught on mutated files: {caught}");
}

#[test]
fn truncated_wav() {
    let bytes = std::fs::read(clip_path("fox")).unwrap();
    let want = raw_wav_samples(&bytes);
    for cut in [44 + 2 * 10_001, 44 + 2 * 30_000 + 1, bytes.len() - 1] {
        let pcm = decode(&bytes[..cut], None).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let n = pcm.samples.len();
        assert!(n > 0 && n <= (cut - 44) / 2, "cut {cut}: {n} samples");
        assert!(pcm.samples[..] == want[..n], "cut {cut}");
    }
    // A header and no data; half a header.
    assert_eq!(decode(&bytes[..44], None), Err(AudioError::Empty));
    assert!(matches!(
        decode(&bytes[..30], None),
        Err(AudioError::Corrupt(_))
    ));
}

#[test]
fn absurd_wav_headers() {
    let data = s16_bytes(&clip("hello")[..16_000]);
    for rate in [0u32, 1, 999, 768_001, 1_000_000_000, u32::MAX] {
        match decode(&wav(rate, 1, 1, &data), None) {
            Err(AudioError::Corrupt(m)) => {
                assert!(m.contains("rate") || m.contains("wav"), "{rate} Hz: {m}")
            }
            other => panic!("{rate} Hz: {other:?}"),
        }
    }
    for channels in [0u16, 33, 1000, u16::MAX] {
        match decode(&wav(16_000, channels, 1, &data), None) {
            Err(AudioError::Corrupt(_)) | Err(AudioError::Unsupported { .. }) => {}
            other => panic!("{channels} channels: {other:?}"),
        }
    }
    // A plausible odd rate still decodes.
    let pcm = decode(&wav(22_222, 1, 1, &data), None).unwrap();
    assert_eq!(
        pcm.samples.len(),
        (16_000f64 * 16_000.0 / 22_222.0).round() as usize
    );
}

#[test]
fn opus_and_webm_are_unsupported_with_the_ffmpeg_hint() {
    // The first page of an Ogg Opus stream: 27-byte header, one segment of
    // 19 bytes holding OpusHead.
    let mut opus_head = b"OpusHead".to_vec();
    opus_head.extend_from_slice(&[1, 1, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
    let mut ogg = b"OggS".to_vec();
    ogg.extend_from_slice(&[0, 0x02]); // version, BOS
    ogg.extend_from_slice(&0u64.to_le_bytes()); // granule
    ogg.extend_from_slice(&0x1234u32.to_le_bytes()); // serial
    ogg.extend_from_slice(&0u32.to_le_bytes()); // sequence
    ogg.extend_from_slice(&0u32.to_le_bytes()); // CRC (not checked by the sniffer)
    ogg.push(1);
    ogg.push(opus_head.len() as u8);
    ogg.extend_from_slice(&opus_head);
    assert_unsupported_with_hint(decode(&ogg, Some("voice.opus")), "Ogg Opus");
    assert_unsupported_with_hint(decode(&ogg, None), "Ogg Opus, no hint");

    let mut webm = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01];
    webm.extend(b"webm");
    webm.extend(noise(7, 300));
    assert_unsupported_with_hint(decode(&webm, Some("rec.webm")), "WebM");

    for (what, bytes) in [
        ("text", b"hello, this is not audio at all".to_vec()),
        ("AIFF", b"FORM\0\0\0\x20AIFFCOMM".to_vec()),
        ("AVI", b"RIFF\0\0\0\x20AVI LIST".to_vec()),
    ] {
        assert_unsupported_with_hint(decode(&bytes, None), what);
    }
}

#[test]
fn too_large_and_unreadable_files() {
    let path = clip_path("fox");
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        decode_file(&path, Some(1000)),
        Err(AudioError::TooLarge { size, limit: 1000 })
    );
    assert_eq!(
        decode_file(&path, Some(1000)).unwrap_err().http_status(),
        413
    );
    assert!(decode_file(&path, Some(size)).is_ok());
    assert!(matches!(
        decode_file(Path::new("/nonexistent/clip.wav"), None),
        Err(AudioError::Corrupt(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(decode_file(&empty, Some(10)), Err(AudioError::Empty));
}
