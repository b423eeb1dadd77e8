//! Any common audio file to 16 kHz mono `f32`.
//!
//! symphonia demuxes and decodes (WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC, ALAC,
//! ADTS AAC); every sample format goes through `SampleBuffer<f32>`; channels
//! are averaged to mono; rubato's `FftFixedIn` (an FFT-based synchronous
//! resampler with a long windowed-sinc anti-alias filter) brings any other
//! rate to 16 kHz, with its delay removed and its tail flushed so that the
//! output has `round(len · 16000 / rate)` samples, time-aligned with the
//! input. 16 kHz input is passed through untouched (bit-exact for mono).
//!
//! Hostile input is an error, never a panic: the container is recognised by
//! its magic bytes at the start (after any ID3v2 tags) before symphonia sees
//! it, so random bytes are refused rather than scanned for an MP3 sync word
//! (an MP3 with junk before its first frame is refused too); Opus and
//! WebM/Matroska, which symphonia 0.5 cannot decode, are refused with
//! [`FFMPEG_HINT`]. A decode error mid-stream is [`AudioError::Corrupt`],
//! except in the very last packet (a truncated file), whose loss is only
//! logged; a container that ends early ends the audio there. Absurd
//! headers (sample rates outside 1 kHz–768 kHz, no or over 32 channels,
//! packets of over 2^20 frames) are refused, decoding stops at
//! [`MAX_DECODED_SECS`] of audio, and a panic inside a decoder is caught and
//! reported as [`AudioError::Corrupt`].

use std::io::{Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CodecParameters, DecoderOptions, CODEC_TYPE_NULL, CODEC_TYPE_OPUS};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::{AudioError, Pcm, FFMPEG_HINT, SAMPLE_RATE};

/// The longest audio [`decode`] returns: 4 hours. Longer audio is refused
/// with [`AudioError::TooLarge`], whose `size` and `limit` are then counted
/// in bytes of decoded 16 kHz mono `f32` PCM (`limit` = 4 h · 16 000 · 4
/// bytes = 921.6 MB; `size` is where decoding stopped, just past it).
pub const MAX_DECODED_SECS: u64 = 4 * 3600;

/// [`MAX_DECODED_SECS`] in 16 kHz samples.
pub const MAX_DECODED_SAMPLES: u64 = MAX_DECODED_SECS * SAMPLE_RATE as u64;

/// The formats this build decodes, for error messages.
pub const SUPPORTED_FORMATS: &str = "WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC and ALAC";

const MIN_RATE: u32 = 1_000;
const MAX_RATE: u32 = 768_000;
const MAX_CHANNELS: usize = 32;
const MAX_FRAMES_PER_PACKET: u64 = 1 << 20;
/// About how many input frames the resampler filters at a time.
const RESAMPLE_BLOCK: usize = 1024;

/// Decodes a whole audio file held in memory. `name_hint` is the file name
/// or its extension (`"clip.mp3"`, `"mp3"`), a hint for the demuxer only:
/// the format is recognised by its content.
pub fn decode(bytes: &[u8], name_hint: Option<&str>) -> Result<Pcm, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    sniff(bytes)?;
    decode_owned(bytes.to_vec(), name_hint)
}

/// Reads and decodes the file at `path`. With `limit`, a file over `limit`
/// bytes is refused with [`AudioError::TooLarge`] before any of it is read
/// (and a file that grows past it while being read is refused too). A file
/// that cannot be read is [`AudioError::Corrupt`].
pub fn decode_file(path: &Path, limit: Option<u64>) -> Result<Pcm, AudioError> {
    let unreadable =
        |e: std::io::Error| AudioError::Corrupt(format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if let Some(limit) = limit {
        if size > limit {
            return Err(AudioError::TooLarge { size, limit });
        }
    }
    let cap = limit.map_or(u64::MAX, |l| l.saturating_add(1));
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(cap).read_to_end(&mut bytes).map_err(unreadable)?;
    if let Some(limit) = limit {
        if bytes.len() as u64 > limit {
            return Err(AudioError::TooLarge {
                size: bytes.len() as u64,
                limit,
            });
        }
    }
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    sniff(&bytes)?;
    let name = path.file_name().and_then(|n| n.to_str());
    decode_owned(bytes, name)
}

fn unsupported(what: impl Into<String>) -> AudioError {
    AudioError::Unsupported {
        what: what.into(),
        hint: FFMPEG_HINT.to_string(),
    }
}

fn corrupt(msg: impl std::fmt::Display) -> AudioError {
    AudioError::Corrupt(msg.to_string())
}

/// Recognises the container by its first bytes (after any ID3v2 tags):
/// refuses Opus, WebM/Matroska and anything that is not a format symphonia
/// reads here, so that random bytes are not scanned for an MP3 sync word.
fn sniff(bytes: &[u8]) -> Result<(), AudioError> {
    let mut p = 0usize;
    let mut tagged = false;
    // ID3v2 tags (possibly several), each `ID3` + version + flags + a
    // synchsafe size, plus a 10-byte footer when flagged.
    while bytes.len() >= p + 10 && &bytes[p..p + 3] == b"ID3" {
        let s = &bytes[p + 6..p + 10];
        if s.iter().any(|b| b & 0x80 != 0) {
            return Err(corrupt("malformed ID3v2 tag"));
        }
        let size = s.iter().fold(0usize, |acc, &b| (acc << 7) | b as usize);
        let footer = if bytes[p + 5] & 0x10 != 0 { 10 } else { 0 };
        p = p.saturating_add(10 + size + footer);
        tagged = true;
    }
    if tagged {
        // Some taggers leave zero padding after the tag.
        while p < bytes.len() && bytes[p] == 0 {
            p += 1;
        }
    }
    let head = bytes.get(p..).unwrap_or(&[]);
    if head.is_empty() {
        return Err(AudioError::Empty);
    }
    let starts = |magic: &[u8]| head.starts_with(magic);
    let supported = format!("this build decodes {SUPPORTED_FORMATS}");
    if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return Err(unsupported(format!(
            "WebM/Matroska (.webm, .mkv, .mka); {supported}"
        )));
    }
    if starts(b"OggS") {
        let first_page = &head[..head.len().min(512)];
        if contains(first_page, b"OpusHead") {
            return Err(unsupported(format!(
                "Opus in Ogg (.opus, .ogg), which symphonia 0.5 has no decoder for; {supported}"
            )));
        }
        if contains(first_page, b"Speex   ") {
            return Err(unsupported(format!("Speex in Ogg; {supported}")));
        }
        return Ok(());
    }
    if starts(b"RIFF") && head.len() >= 12 {
        if &head[8..12] == b"WAVE" {
            return check_wav_fmt(head);
        }
        return Err(unsupported(format!(
            "a RIFF file that is not WAVE ({}); {supported}",
            String::from_utf8_lossy(&head[8..12]).escape_default()
        )));
    }
    if starts(b"fLaC") || (head.len() >= 8 && &head[4..8] == b"ftyp") {
        return Ok(());
    }
    if head.len() >= 4 && head[0] == 0xFF {
        let b1 = head[1];
        // ADTS AAC: 12-bit sync, layer 00.
        if b1 & 0xF6 == 0xF0 {
            return Ok(());
        }
        // MPEG audio: 11-bit sync, a real version, layer, bitrate and rate.
        let version = (b1 >> 3) & 3;
        let layer = (b1 >> 1) & 3;
        let bitrate = head[2] >> 4;
        let rate = (head[2] >> 2) & 3;
        if b1 & 0xE0 == 0xE0 && version != 1 && layer != 0 && bitrate != 15 && rate != 3 {
            return Ok(());
        }
    }
    let what = if starts(b"caff") {
        "Core Audio Format (.caf)".to_string()
    } else if starts(b"FORM") {
        "AIFF".to_string()
    } else if starts(b"RF64") || starts(b"RIFX") || starts(b"BW64") {
        "a 64-bit or big-endian RIFF variant".to_string()
    } else if starts(b"#!AMR") {
        "AMR".to_string()
    } else if starts(&[0x30, 0x26, 0xB2, 0x75]) {
        "ASF/WMA".to_string()
    } else {
        "unrecognised audio format".to_string()
    };
    Err(unsupported(format!("{what}; {supported}")))
}

/// Checks a WAV's `fmt ` chunk before symphonia sees it (symphonia 0.5
/// panics on a 0 Hz WAV).
fn check_wav_fmt(wav: &[u8]) -> Result<(), AudioError> {
    let mut p = 12usize;
    for _ in 0..64 {
        let Some(chunk) = wav.get(p..p + 8) else {
            break;
        };
        let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]) as usize;
        if &chunk[..4] == b"fmt " {
            let Some(fmt) = wav
                .get(p + 8..p + 8 + len.min(16))
                .filter(|f| f.len() == 16)
            else {
                return Err(corrupt("wav: malformed fmt chunk"));
            };
            let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
            let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
            let block_align = u16::from_le_bytes([fmt[12], fmt[13]]);
            check_rate(rate)?;
            check_channels(channels as usize)?;
            if block_align == 0 {
                return Err(corrupt("wav: block align of 0"));
            }
            return Ok(());
        }
        if &chunk[..4] == b"data" {
            break;
        }
        p = p
            .saturating_add(8)
            .saturating_add(len)
            .saturating_add(len & 1);
    }
    Err(corrupt("wav: no fmt chunk before the data"))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn decode_owned(bytes: Vec<u8>, name_hint: Option<&str>) -> Result<Pcm, AudioError> {
    match catch_unwind(AssertUnwindSafe(|| decode_inner(bytes, name_hint))) {
        Ok(r) => r,
        Err(_) => Err(corrupt("the decoder failed on malformed input")),
    }
}

/// The extension in a file name, or the hint itself when it has no dot.
fn extension(name: &str) -> Option<String> {
    let ext = name.rsplit('.').next()?.trim().to_ascii_lowercase();
    (!ext.is_empty() && ext.len() <= 8 && ext.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some(ext)
}

fn check_params(p: &CodecParameters) -> Result<(), AudioError> {
    if let Some(rate) = p.sample_rate {
        check_rate(rate)?;
    }
    if let Some(ch) = p.channels {
        check_channels(ch.count())?;
    }
    if let Some(n) = p.max_frames_per_packet {
        if n > MAX_FRAMES_PER_PACKET {
            return Err(corrupt(format!(
                "implausible header: {n} frames per packet"
            )));
        }
    }
    Ok(())
}

fn check_rate(rate: u32) -> Result<(), AudioError> {
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(corrupt(format!("implausible sample rate: {rate} Hz")));
    }
    Ok(())
}

fn check_channels(n: usize) -> Result<(), AudioError> {
    if n == 0 || n > MAX_CHANNELS {
        return Err(corrupt(format!("implausible channel count: {n}")));
    }
    Ok(())
}

fn decode_inner(bytes: Vec<u8>, name_hint: Option<&str>) -> Result<Pcm, AudioError> {
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = name_hint.and_then(extension) {
        hint.with_extension(&ext);
    }
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &format_opts, &MetadataOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(m) => {
                unsupported(format!("{m}; this build decodes {SUPPORTED_FORMATS}"))
            }
            SymError::IoError(e) => corrupt(format!("truncated or unreadable header ({e})")),
            e => corrupt(e),
        })?;
    let mut format = probed.format;
    let track = format
        .default_track()
        .filter(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .or_else(|| {
            format
                .tracks()
                .iter()
                .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        })
        .ok_or(AudioError::Empty)?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let registry = symphonia::default::get_codecs();
    let codec = registry
        .get_codec(params.codec)
        .map_or_else(|| format!("{}", params.codec), |d| d.short_name.to_string());
    if params.codec == CODEC_TYPE_OPUS {
        return Err(unsupported(format!(
            "Opus audio, which symphonia 0.5 has no decoder for; this build decodes {SUPPORTED_FORMATS}"
        )));
    }
    check_params(&params)?;
    let mut decoder = registry
        .make(&params, &DecoderOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => unsupported(format!(
                "the {codec} codec; this build decodes {SUPPORTED_FORMATS}"
            )),
            e => corrupt(e),
        })?;

    let mut sink: Option<Sink> = None;
    let mut channels = 0usize;
    let mut sample_buf: Option<SampleBuffer<f32>> = None;
    let mut mono: Vec<f32> = Vec::new();
    // A decode error is fatal unless the packet it came from was the last.
    let mut failed: Option<String> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(corrupt(e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        if let Some(msg) = failed.take() {
            return Err(corrupt(msg));
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(m)) => {
                failed = Some(format!("{codec}: {m}"));
                continue;
            }
            Err(SymError::IoError(e)) => {
                failed = Some(format!("{codec}: {e}"));
                continue;
            }
            Err(SymError::Unsupported(m)) => {
                return Err(unsupported(format!(
                    "{codec}: {m}; this build decodes {SUPPORTED_FORMATS}"
                )))
            }
            Err(e) => return Err(corrupt(format!("{codec}: {e}"))),
        };
        let spec = *decoded.spec();
        let frames = decoded.frames();
        if frames == 0 {
            continue;
        }
        let ch = spec.channels.count();
        check_channels(ch)?;
        check_rate(spec.rate)?;
        if sink.is_none() {
            channels = ch;
            sink = Some(Sink::new(spec.rate, params.n_frames)?);
        }
        let Some(sink) = sink.as_mut() else { continue };
        if sink.rate() != spec.rate {
            return Err(corrupt("the sample rate changes mid-stream"));
        }
        if sample_buf
            .as_ref()
            .is_none_or(|b| b.capacity() < frames * ch)
        {
            sample_buf = Some(SampleBuffer::new(decoded.capacity() as u64, spec));
        }
        let Some(buf) = sample_buf.as_mut() else {
            continue;
        };
        buf.copy_interleaved_ref(decoded);
        let interleaved = buf.samples();
        mono.clear();
        if ch == 1 {
            mono.extend(
                interleaved
                    .iter()
                    .map(|&s| if s.is_finite() { s } else { 0.0 }),
            );
        } else {
            let scale = 1.0 / ch as f32;
            mono.extend(interleaved.chunks_exact(ch).map(|f| {
                let s = f.iter().sum::<f32>() * scale;
                if s.is_finite() {
                    s
                } else {
                    0.0
                }
            }));
        }
        sink.push(&mono)?;
    }
    let Some(sink) = sink else {
        return Err(match failed {
            Some(msg) => corrupt(msg),
            None => AudioError::Empty,
        });
    };
    if let Some(msg) = failed {
        tracing::warn!("audio: the last packet did not decode ({msg}); keeping what did");
    }
    let source_rate = sink.rate();
    let samples = sink.finish()?;
    if samples.is_empty() {
        return Err(AudioError::Empty);
    }
    Ok(Pcm {
        samples,
        source_rate,
        channels,
        codec,
    })
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn too_long(samples: u64) -> AudioError {
    AudioError::TooLarge {
        size: samples.saturating_mul(4),
        limit: MAX_DECODED_SAMPLES * 4,
    }
}

/// Where mono samples at the source rate go: straight out at 16 kHz, or
/// through the resampler.
enum Sink {
    Pass(Vec<f32>),
    Resample(Box<Stream>),
}

impl Sink {
    fn new(rate: u32, n_frames: Option<u64>) -> Result<Self, AudioError> {
        // Reserve what the header announces, within reason.
        let expect = n_frames
            .map(|n| n.saturating_mul(SAMPLE_RATE as u64) / rate as u64)
            .unwrap_or(0)
            .min(30 * 60 * SAMPLE_RATE as u64) as usize;
        if rate == SAMPLE_RATE {
            return Ok(Sink::Pass(Vec::with_capacity(expect)));
        }
        // FftFixedIn filters blocks of `k · rate / gcd` input samples with a
        // windowed sinc of that length centred on sample `len / 2`, and
        // reports a delay of half an output block: the two agree exactly when
        // `k` is even. Blocks of about 1024 input samples.
        let min_block = (rate / gcd(rate, SAMPLE_RATE)) as usize;
        let mut k = RESAMPLE_BLOCK.div_ceil(min_block);
        k += k % 2;
        let chunk = k * min_block;
        let rs = FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE as usize, chunk, 1, 1)
            .map_err(|e| corrupt(format!("resampler: {e}")))?;
        let skip = rs.output_delay();
        let out_buf = rs.output_buffer_allocate(true);
        Ok(Sink::Resample(Box::new(Stream {
            rs,
            rate,
            chunk,
            pending: Vec::with_capacity(2 * chunk),
            out: Vec::with_capacity(expect),
            out_buf,
            skip,
            in_len: 0,
        })))
    }

    fn rate(&self) -> u32 {
        match self {
            Sink::Pass(_) => SAMPLE_RATE,
            Sink::Resample(s) => s.rate,
        }
    }

    fn push(&mut self, mono: &[f32]) -> Result<(), AudioError> {
        match self {
            Sink::Pass(v) => {
                if (v.len() + mono.len()) as u64 > MAX_DECODED_SAMPLES {
                    return Err(too_long((v.len() + mono.len()) as u64));
                }
                v.extend_from_slice(mono);
                Ok(())
            }
            Sink::Resample(s) => s.push(mono),
        }
    }

    fn finish(self) -> Result<Vec<f32>, AudioError> {
        match self {
            Sink::Pass(v) => Ok(v),
            Sink::Resample(s) => s.finish(),
        }
    }
}

/// Streaming resampling to 16 kHz, delay-compensated.
struct Stream {
    rs: FftFixedIn<f32>,
    rate: u32,
    /// Input frames per resampler call.
    chunk: usize,
    pending: Vec<f32>,
    out: Vec<f32>,
    out_buf: Vec<Vec<f32>>,
    /// Output samples still to drop (the resampler's delay).
    skip: usize,
    /// Input samples pushed so far.
    in_len: u64,
}

impl Stream {
    fn push(&mut self, mono: &[f32]) -> Result<(), AudioError> {
        self.in_len += mono.len() as u64;
        let out_len = self.target();
        if out_len > MAX_DECODED_SAMPLES {
            return Err(too_long(out_len));
        }
        self.pending.extend_from_slice(mono);
        let mut used = 0;
        while self.pending.len() - used >= self.chunk {
            let chunk = &self.pending[used..used + self.chunk];
            Self::run(
                &mut self.rs,
                &[chunk],
                &mut self.out_buf,
                &mut self.skip,
                &mut self.out,
            )?;
            used += self.chunk;
        }
        self.pending.drain(..used);
        Ok(())
    }

    /// `round(in_len · 16000 / rate)`.
    fn target(&self) -> u64 {
        let r = self.rate as u128;
        ((self.in_len as u128 * SAMPLE_RATE as u128 + r / 2) / r) as u64
    }

    fn run(
        rs: &mut FftFixedIn<f32>,
        input: &[&[f32]],
        out_buf: &mut [Vec<f32>],
        skip: &mut usize,
        out: &mut Vec<f32>,
    ) -> Result<(), AudioError> {
        let (_, n) = rs
            .process_into_buffer(input, out_buf, None)
            .map_err(|e| corrupt(format!("resampler: {e}")))?;
        let produced = &out_buf[0][..n];
        let drop = (*skip).min(n);
        *skip -= drop;
        out.extend_from_slice(&produced[drop..]);
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<f32>, AudioError> {
        let target = self.target() as usize;
        let mut chunk = std::mem::take(&mut self.pending);
        chunk.resize(self.chunk, 0.0);
        // The delay plus what the resampler holds back is a few FFT blocks:
        // bounded, but guard the loop anyway.
        for _ in 0..1024 {
            if self.out.len() >= target {
                break;
            }
            Self::run(
                &mut self.rs,
                &[&chunk],
                &mut self.out_buf,
                &mut self.skip,
                &mut self.out,
            )?;
            chunk.fill(0.0);
        }
        self.out.truncate(target);
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resample(rate: u32, x: &[f32]) -> Vec<f32> {
        let mut s = Sink::new(rate, None).unwrap();
        // Odd-sized pushes, as packets come.
        for c in x.chunks(1153) {
            s.push(c).unwrap();
        }
        s.finish().unwrap()
    }

    #[test]
    fn resampling_is_time_aligned_and_the_right_length() {
        for rate in [
            8_000u32, 11_025, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000, 44_101,
        ] {
            let n = rate as usize * 3 / 2 + 7;
            let f = 440.0f64;
            let x: Vec<f32> = (0..n)
                .map(|i| {
                    (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / rate as f64).sin()) as f32
                })
                .collect();
            let y = resample(rate, &x);
            let want = ((n as u64 * 16_000 + rate as u64 / 2) / rate as u64) as usize;
            assert_eq!(y.len(), want, "{rate} Hz");
            // Away from the edges, the 16 kHz sine with no delay.
            let err = (800..y.len() - 800)
                .map(|i| {
                    let t = i as f64 / 16_000.0;
                    (y[i] as f64 - 0.5 * (2.0 * std::f64::consts::PI * f * t).sin()).abs()
                })
                .fold(0.0, f64::max);
            assert!(err < 1e-4, "{rate} Hz: max error {err}");
        }
    }

    #[test]
    fn decoded_length_is_capped() {
        let mut s = Sink::new(44_100, None).unwrap();
        if let Sink::Resample(st) = &mut s {
            st.in_len = MAX_DECODED_SECS * 44_100 - 5;
        }
        assert!(s.push(&[0.0; 5]).is_ok());
        assert_eq!(s.push(&[0.0; 3]), Err(too_long(MAX_DECODED_SAMPLES + 1)));
        assert_eq!(too_long(1).http_status(), 413);
    }

    #[test]
    fn sixteen_khz_passes_through() {
        let x: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 65536) as f32 / 65536.0 - 0.5)
            .collect();
        assert_eq!(resample(16_000, &x), x);
    }

    #[test]
    fn extension_hint() {
        assert_eq!(extension("clip.MP3").as_deref(), Some("mp3"));
        assert_eq!(extension("flac").as_deref(), Some("flac"));
        assert_eq!(extension("a.b/c d"), None);
    }

    #[test]
    fn sniffing() {
        assert!(matches!(
            sniff(b"\x1a\x45\xdf\xa3\x01\x02"),
            Err(AudioError::Unsupported { .. })
        ));
        assert!(matches!(
            sniff(b"hello world, not audio"),
            Err(AudioError::Unsupported { .. })
        ));
        assert!(sniff(b"fLaC\0\0\0\x22").is_ok());
        let fmt = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x80\x3e\0\0\0\x7d\0\0\x02\0\x10\0";
        assert!(sniff(fmt).is_ok());
        assert!(matches!(sniff(&fmt[..30]), Err(AudioError::Corrupt(_))));
        let mut zero_hz = fmt.to_vec();
        zero_hz[24..28].fill(0);
        assert!(matches!(sniff(&zero_hz), Err(AudioError::Corrupt(_))));
        assert!(sniff(b"\0\0\0\x20ftypM4A ").is_ok());
        assert!(sniff(&[0xFF, 0xFB, 0x90, 0x64]).is_ok());
        assert!(sniff(b"ID3\x04\0\0\0\0\0\x02ab\xFF\xFB\x90\x64").is_ok());
        assert!(matches!(
            sniff(b"ID3\x04\0\0\0\0\0\x02ab"),
            Err(AudioError::Empty)
        ));
    }
}
