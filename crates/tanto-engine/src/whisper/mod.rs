//! Whisper speech-to-text: the encoder-decoder (HF safetensors and
//! CTranslate2 `model.bin` folders), greedy decoding with the temperature
//! fallback ladder, timestamp rules, seeking for audio longer than 30 s, and
//! language detection. Audio comes in as [`crate::audio::Pcm`].

use std::time::Duration;

use serde::Serialize;

use crate::api::EngineError;

pub mod decode;
mod engine;
pub mod model;
pub mod subtitles;
pub mod tokens;
pub mod weights;

pub use engine::{load_speech_model, WhisperEngine};

/// What to do with the speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    #[default]
    Transcribe,
    /// Any language in, English text out (multilingual, non-turbo models only).
    Translate,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Transcribe => "transcribe",
            Task::Translate => "translate",
        }
    }
}

/// Options of one transcription.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// ISO-639-1 code (`en`) or English name (`english`); None = detect
    /// (multilingual models) or English (`.en` models).
    pub language: Option<String>,
    pub task: Task,
    /// Text that conditions the first window (Whisper's `initial_prompt`).
    pub prompt: Option<String>,
    /// None = the fallback ladder 0.0, 0.2, …, 1.0 (OpenAI's `temperature=0`);
    /// Some(t) = that temperature only.
    pub temperature: Option<f32>,
    /// Seed for sampling at temperature > 0 (deterministic per request).
    pub seed: Option<u64>,
    /// Feed each window the text of the windows before it (openai/whisper,
    /// faster-whisper and mlx-whisper default; Hugging Face's is off).
    pub condition_on_previous_text: bool,
    /// Decode with `<|notimestamps|>`: one segment per window, no seeking by
    /// timestamps (Hugging Face's short-form default).
    pub without_timestamps: bool,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            language: None,
            task: Task::Transcribe,
            prompt: None,
            temperature: None,
            seed: None,
            condition_on_previous_text: true,
            without_timestamps: false,
        }
    }
}

/// One segment, as OpenAI's `verbose_json` carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub id: usize,
    /// Start of the 30-s window this segment was decoded in, in mel frames.
    pub seek: usize,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Token ids of the segment, its timestamp tokens included (as openai/whisper).
    pub tokens: Vec<u32>,
    pub temperature: f32,
    pub avg_logprob: f64,
    pub compression_ratio: f64,
    pub no_speech_prob: f64,
}

/// Where the time went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpeechTimings {
    pub mel: Duration,
    pub encode: Duration,
    pub decode: Duration,
}

/// A whole transcription.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub text: String,
    /// ISO-639-1 code of the spoken language (given or detected).
    pub language: String,
    /// Probability of `language` when it was detected (None when given).
    pub language_probability: Option<f64>,
    pub task: Task,
    /// Audio length in seconds.
    pub duration: f64,
    pub segments: Vec<Segment>,
    pub timings: SpeechTimings,
}

/// Facts about a loaded Whisper model.
#[derive(Debug, Clone, Serialize)]
pub struct SpeechModelInfo {
    pub name: String,
    /// `hf-safetensors` or `ctranslate2`.
    pub weights: String,
    pub multilingual: bool,
    /// Multilingual and not a turbo (`large-v3-turbo` was not trained to translate).
    pub can_translate: bool,
    pub n_mels: usize,
    /// Decoder positions (448 for every released Whisper): tokens per window.
    pub text_context: usize,
    /// Language codes the model knows (empty for `.en` models).
    pub languages: Vec<String>,
    pub load_time: Duration,
}

/// A loaded speech-to-text model. `&mut self`: one transcription at a time.
pub trait SpeechModel: Send {
    fn info(&self) -> &SpeechModelInfo;

    /// Transcribe (or translate) 16 kHz mono samples.
    fn transcribe(
        &mut self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, EngineError>;
}
