//! What *this build's* engine can run, per backend, and the one function that
//! picks the backend for a model and a request ([`backend_for`]). The probe's
//! runtime check and the policy's backend gate both call it, so they cannot
//! disagree; tanto-engine has a test asserting that every entry here really
//! has a loader behind it (and vice versa).
//!
//! Adding a modality: a [`Modality`] row in [`backend_for`], its architecture
//! table in [`architectures`], kind detection in `probe/kind.rs` and its
//! request row in the policy.

use serde::{Deserialize, Serialize};

/// The backend families this build knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// Weight format, named consistently everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Gguf,
    Safetensors,
    MlxSafetensors,
    PytorchBin,
    Onnx,
    /// A CTranslate2 `model.bin` folder (faster-whisper's format).
    Ctranslate2,
    Unknown,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Gguf => "gguf",
            Format::Safetensors => "safetensors",
            Format::MlxSafetensors => "mlx-safetensors",
            Format::PytorchBin => "pytorch-bin",
            Format::Onnx => "onnx",
            Format::Ctranslate2 => "ctranslate2",
            Format::Unknown => "unknown",
        }
    }
    /// mlx-knife's `framework` field: MLX | GGUF | PyTorch | ONNX | Unknown,
    /// and CTranslate2 (which mlx-knife does not know).
    pub fn framework(self) -> &'static str {
        match self {
            Format::Gguf => "GGUF",
            Format::Safetensors | Format::PytorchBin => "PyTorch",
            Format::MlxSafetensors => "MLX",
            Format::Onnx => "ONNX",
            Format::Ctranslate2 => "CTranslate2",
            Format::Unknown => "Unknown",
        }
    }
}

/// mlx-knife's `model_type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Chat,
    Base,
    Embedding,
    Audio,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Chat => "chat",
            ModelKind::Base => "base",
            ModelKind::Embedding => "embedding",
            ModelKind::Audio => "audio",
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

/// Embedding models (config.json `model_type`) the embeddings backend loads
/// from safetensors: encoders (BERT family, XLM-RoBERTa, ModernBERT) and the
/// decoder embedders (Qwen3-Embedding, gte-Qwen2) with last-token pooling.
pub const EMBEDDING_MODEL_TYPES: &[&str] = &["bert", "xlm-roberta", "modernbert", "qwen3", "qwen2"];

/// Speech-to-text models.
pub const AUDIO_MODEL_TYPES: &[&str] = &["whisper"];

/// Vision-language models (HF safetensors): Idefics3 and SmolVLM.
pub const VISION_MODEL_TYPES: &[&str] = &["idefics3", "smolvlm"];

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

/// What is asked of a model, as far as choosing a backend goes. The policy's
/// `Request` maps onto it (chat and completion are both `Text`); the probe asks
/// for the model's own primary modality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    Text,
    Vision,
    Audio,
    Embeddings,
}

/// No backend family exists for this weight format at all (not just "not built").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct NoEngine {
    /// Short noun phrase for "this build has no engine for {what}".
    pub what: &'static str,
    /// The full sentence the probe reports as its runtime reason.
    pub reason: &'static str,
}

/// The backend that serves `want` for a model of `format` and `kind`.
///
/// Embedding and speech-to-text models always use their own backend; text
/// (chat or completion) goes by weight format. Whether the backend is built,
/// and whether it runs the architecture, are [`is_built`] and [`check_arch`].
pub fn backend_for(format: Format, kind: ModelKind, want: Modality) -> Result<Backend, NoEngine> {
    match (kind, want) {
        (ModelKind::Embedding, _) | (_, Modality::Embeddings) => match format {
            Format::Safetensors => Ok(Backend::Embeddings),
            Format::Gguf => Err(NoEngine {
                what: "GGUF embedding models",
                reason: "No engine built for GGUF embedding models; use the safetensors (sentence-transformers) copy of this model",
            }),
            Format::MlxSafetensors => Err(NoEngine {
                what: "MLX-quantized embedding models",
                reason: "No engine built for MLX-quantized embedding models; use the unquantized safetensors copy of this model",
            }),
            Format::PytorchBin => Err(NoEngine {
                what: "PyTorch .bin (pickle) weights",
                reason: "PyTorch .bin weights are not loaded (pickle); use a safetensors copy of this model",
            }),
            Format::Onnx => Err(NoEngine {
                what: "ONNX embedding models",
                reason: "No engine built for ONNX embedding models; use the safetensors copy of this model",
            }),
            Format::Ctranslate2 => Err(NoEngine {
                what: "CTranslate2 embedding models",
                reason: "No engine built for CTranslate2 embedding models; use the safetensors copy of this model",
            }),
            Format::Unknown => Err(NoEngine {
                what: "an unknown weight format",
                reason: "Unknown weight format",
            }),
        },
        // Whisper loads from HF safetensors and from CTranslate2 folders.
        (ModelKind::Audio, _) | (_, Modality::Audio) => match format {
            Format::Safetensors | Format::Ctranslate2 => Ok(Backend::Whisper),
            Format::Gguf => Err(NoEngine {
                what: "GGUF speech-to-text models",
                reason: "No engine built for GGUF speech-to-text models; use the safetensors or CTranslate2 (faster-whisper) copy of this model",
            }),
            Format::MlxSafetensors => Err(NoEngine {
                what: "MLX-quantized speech-to-text models",
                reason: "No engine built for MLX-quantized speech-to-text models; use the safetensors or CTranslate2 (faster-whisper) copy of this model",
            }),
            Format::PytorchBin => Err(NoEngine {
                what: "PyTorch .bin (pickle) weights",
                reason: "PyTorch .bin weights are not loaded (pickle); use a safetensors or CTranslate2 (faster-whisper) copy of this model",
            }),
            Format::Onnx => Err(NoEngine {
                what: "ONNX speech-to-text models",
                reason: "No engine built for ONNX speech-to-text models; use the safetensors or CTranslate2 (faster-whisper) copy of this model",
            }),
            Format::Unknown => Err(NoEngine {
                what: "an unknown weight format",
                reason: "Unknown weight format",
            }),
        },
        (_, Modality::Vision) => match format {
            Format::Safetensors => Ok(Backend::Vision),
            Format::Gguf => Err(NoEngine {
                what: "GGUF vision-language models",
                reason: "No engine built for GGUF vision-language models (a text GGUF plus an mmproj file); use the safetensors copy of this model",
            }),
            Format::MlxSafetensors => Err(NoEngine {
                what: "MLX-quantized vision-language models",
                reason: "No engine built for MLX-quantized vision-language models; use the safetensors (bf16/f32) copy of this model",
            }),
            Format::PytorchBin => Err(NoEngine {
                what: "PyTorch .bin (pickle) weights",
                reason: "PyTorch .bin weights are not loaded (pickle); use a safetensors copy of this model",
            }),
            Format::Onnx | Format::Ctranslate2 | Format::Unknown => Err(NoEngine {
                what: "this vision-language weight format",
                reason: "No engine built for this vision-language weight format; use the safetensors copy of this model",
            }),
        },
        (_, Modality::Text) => match format {
            Format::Gguf => Ok(Backend::GgufText),
            // MLX affine-quantized checkpoints: repacked or dequantized at load
            // (probe/mlx.rs decides which).
            Format::Safetensors | Format::MlxSafetensors => Ok(Backend::SafetensorsText),
            Format::PytorchBin => Err(NoEngine {
                what: "PyTorch .bin (pickle) weights",
                reason: "PyTorch .bin weights are not loaded (pickle); use a safetensors or GGUF copy of this model",
            }),
            Format::Onnx => Err(NoEngine {
                what: "ONNX models",
                reason: "No engine built for ONNX models",
            }),
            Format::Ctranslate2 => Err(NoEngine {
                what: "CTranslate2 text models",
                reason: "No engine built for CTranslate2 text models (this build loads CTranslate2 Whisper folders only); use the GGUF or safetensors copy of this model",
            }),
            Format::Unknown => Err(NoEngine {
                what: "an unknown weight format",
                reason: "Unknown weight format",
            }),
        },
    }
}

/// Whether `backend` runs architecture `arch` (config.json `model_type` or the
/// GGUF architecture) in this build; the error is the sentence to show.
pub fn check_arch(backend: Backend, arch: &str) -> Result<(), String> {
    if backend == Backend::SafetensorsText && arch.is_empty() {
        return Err("config.json has no model_type field".into());
    }
    if supports(backend, arch) {
        return Ok(());
    }
    let what = match backend {
        Backend::GgufText => "GGUF",
        Backend::SafetensorsText => "safetensors",
        Backend::Embeddings => "embedding",
        Backend::Whisper => "speech-to-text",
        Backend::Vision => "vision-language",
    };
    Err(format!(
        "No engine built for {what} architecture '{}' (this build runs: {})",
        if arch.is_empty() { "unknown" } else { arch },
        supported_list(backend)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_goes_by_format_other_modalities_by_kind() {
        let f = Format::Gguf;
        assert_eq!(
            backend_for(f, ModelKind::Chat, Modality::Text),
            Ok(Backend::GgufText)
        );
        assert_eq!(
            backend_for(Format::Safetensors, ModelKind::Base, Modality::Text),
            Ok(Backend::SafetensorsText)
        );
        assert_eq!(
            backend_for(Format::Safetensors, ModelKind::Embedding, Modality::Text),
            Ok(Backend::Embeddings)
        );
        assert!(backend_for(f, ModelKind::Audio, Modality::Text).is_err());
        for fmt in [Format::Safetensors, Format::Ctranslate2] {
            assert_eq!(
                backend_for(fmt, ModelKind::Audio, Modality::Text),
                Ok(Backend::Whisper)
            );
        }
        assert!(backend_for(Format::Ctranslate2, ModelKind::Base, Modality::Text).is_err());
        assert_eq!(
            backend_for(Format::Safetensors, ModelKind::Chat, Modality::Vision),
            Ok(Backend::Vision)
        );
        assert!(backend_for(f, ModelKind::Chat, Modality::Vision).is_err());
        assert_eq!(
            backend_for(Format::MlxSafetensors, ModelKind::Chat, Modality::Text),
            Ok(Backend::SafetensorsText)
        );
        for fmt in [Format::PytorchBin, Format::Onnx, Format::Unknown] {
            assert!(
                backend_for(fmt, ModelKind::Chat, Modality::Text).is_err(),
                "{fmt:?}"
            );
        }
        // Embeddings load from safetensors only; every other format names why not.
        for fmt in [
            Format::Gguf,
            Format::Onnx,
            Format::PytorchBin,
            Format::MlxSafetensors,
        ] {
            let e = backend_for(fmt, ModelKind::Embedding, Modality::Embeddings).unwrap_err();
            assert!(
                e.reason.contains("embedding") || e.reason.contains("pickle"),
                "{fmt:?}: {e}"
            );
        }
    }

    #[test]
    fn check_arch_names_the_table() {
        assert!(check_arch(Backend::GgufText, "LLaMA").is_ok());
        let e = check_arch(Backend::GgufText, "bloom").unwrap_err();
        assert!(e.contains("'bloom'") && e.contains("qwen2"), "{e}");
        let e = check_arch(Backend::SafetensorsText, "").unwrap_err();
        assert!(e.contains("model_type"), "{e}");
        let e = check_arch(Backend::Vision, "llava").unwrap_err();
        assert!(e.contains("'llava'") && e.contains("idefics3"), "{e}");
        assert!(check_arch(Backend::Vision, "smolvlm").is_ok());
    }
}
