//! What *this build's* engine can run, per backend. The probe reports runtime
//! compatibility from this table alone; tanto-engine has a test asserting that
//! every entry here really has a loader behind it (and vice versa).

use serde::Serialize;

/// The backend families this build knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Quantised GGUF text models (candle quantized kernels + tanto's own).
    GgufText,
    /// HF safetensors text models (f32/f16/bf16).
    SafetensorsText,
    /// Encoder embedders (BERT family) from safetensors.
    Embeddings,
    /// Whisper speech-to-text.
    Whisper,
    /// Vision-language models.
    Vision,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::GgufText => "gguf-text",
            Backend::SafetensorsText => "safetensors-text",
            Backend::Embeddings => "embeddings",
            Backend::Whisper => "whisper",
            Backend::Vision => "vision",
        }
    }
}

/// GGUF `general.architecture` values the GGUF text backend loads.
pub const GGUF_TEXT_ARCHITECTURES: &[&str] =
    &["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3"];

/// config.json `model_type` values the safetensors text backend loads (f32/f16/bf16).
pub const SAFETENSORS_TEXT_MODEL_TYPES: &[&str] = &[
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "phi3",
    "gemma",
    "gemma2",
    "gemma3_text",
];

/// Encoder embedders (config.json `model_type`).
pub const EMBEDDING_MODEL_TYPES: &[&str] = &[];

/// Speech-to-text models.
pub const AUDIO_MODEL_TYPES: &[&str] = &[];

/// Vision-language models.
pub const VISION_MODEL_TYPES: &[&str] = &[];

/// The architectures `backend` loads in this build (empty: no engine built).
pub fn architectures(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::GgufText => GGUF_TEXT_ARCHITECTURES,
        Backend::SafetensorsText => SAFETENSORS_TEXT_MODEL_TYPES,
        Backend::Embeddings => EMBEDDING_MODEL_TYPES,
        Backend::Whisper => AUDIO_MODEL_TYPES,
        Backend::Vision => VISION_MODEL_TYPES,
    }
}

/// Whether this build has any engine for `backend`.
pub fn is_built(backend: Backend) -> bool {
    !architectures(backend).is_empty()
}

/// Whether `backend` can run `arch` in this build.
pub fn supports(backend: Backend, arch: &str) -> bool {
    let arch = arch.to_ascii_lowercase();
    architectures(backend).contains(&arch.as_str())
}

/// The list for messages ("this build runs: …").
pub fn supported_list(backend: Backend) -> String {
    let table = architectures(backend);
    if table.is_empty() {
        "none yet".to_string()
    } else {
        table.join(", ")
    }
}
