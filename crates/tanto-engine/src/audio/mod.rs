//! Audio in: any common file format decoded to 16 kHz mono `f32`
//! ([`decode`]), and Whisper's log-mel spectrogram exactly as Hugging Face's
//! `WhisperFeatureExtractor` computes it ([`mel`]).

pub mod decode;
pub mod mel;

use tanto_core::error::ErrorType;

/// Whisper's input rate.
pub const SAMPLE_RATE: u32 = 16_000;

/// Decoded audio, resampled to [`SAMPLE_RATE`] and mixed down to mono.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    /// Mono samples in [-1, 1] at 16 kHz.
    pub samples: Vec<f32>,
    /// The file's own sample rate before resampling.
    pub source_rate: u32,
    /// The file's channel count before the mixdown.
    pub channels: usize,
    /// The codec as symphonia names it (`pcm_s16le`, `mp3`, `flac`, …).
    pub codec: String,
}

impl Pcm {
    /// Length in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / SAMPLE_RATE as f64
    }
}

/// Why audio could not be read. Every variant is the request's fault, never
/// the model's: 400, 413 or 415.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudioError {
    /// No bytes, or a container with no audio frames in it.
    #[error("the audio file is empty")]
    Empty,
    /// Larger than the configured limit.
    #[error("the audio file is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    /// A format or codec this build cannot decode (Opus, WebM, …); `hint`
    /// says how to convert it.
    #[error("unsupported audio format: {what}; {hint}")]
    Unsupported { what: String, hint: String },
    /// The bytes do not decode (truncated, corrupt, not audio at all).
    #[error("could not decode the audio: {0}")]
    Corrupt(String),
}

/// The conversion every unsupported format gets as its hint.
pub const FFMPEG_HINT: &str =
    "convert it first, e.g. `ffmpeg -i input.webm -ar 16000 -ac 1 output.wav`";

impl AudioError {
    /// 413 too large, 415 unsupported format, 400 otherwise.
    pub fn error_type(&self) -> ErrorType {
        match self {
            AudioError::TooLarge { .. } => ErrorType::PayloadTooLarge,
            AudioError::Unsupported { .. } => ErrorType::UnsupportedMediaType,
            AudioError::Empty | AudioError::Corrupt(_) => ErrorType::ValidationError,
        }
    }

    /// HTTP status of [`AudioError::error_type`].
    pub fn http_status(&self) -> u16 {
        self.error_type().http_status()
    }
}
