//! Probe phase 5, kind and capabilities: chat / base / embedding / audio, and
//! what the model can do (text, chat, vision, audio, embeddings). A new
//! modality starts here: its detection table, then a registry row.

use serde_json::Value;

use super::config::{read_json, str_field};
use super::health::Findings;
use super::{
    ModelKind, Probe, Scan, CAP_AUDIO, CAP_AUDIO_TRANSLATE, CAP_CHAT, CAP_EMBEDDINGS, CAP_TEXT,
    CAP_VISION,
};
use crate::registry::{Format, Modality};

/// Vision-language model types (config.json `model_type`).
const VISION_TYPES: &[&str] = &[
    "llava",
    "llava_next",
    "llava_onevision",
    "pixtral",
    "qwen2_vl",
    "qwen2_5_vl",
    "qwen3_vl",
    "phi3_v",
    "mllama",
    "paligemma",
    "idefics",
    "idefics2",
    "idefics3",
    "smolvlm",
    "gemma3",
    "mistral3",
    "moondream1",
];
/// Speech-to-text model types (substring).
const STT_TYPES: &[&str] = &["whisper", "voxtral", "vibevoice"];
/// Encoder embedders.
const ENCODER_EMBEDDER_TYPES: &[&str] = &[
    "bert",
    "xlm-roberta",
    "roberta",
    "modernbert",
    "nomic_bert",
    "distilbert",
    "mpnet",
    "nomic-bert",
    "jina_bert",
];
/// sentence-transformers marker files.
const ST_FILES: &[&str] = &[
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
];

/// What kind detection found, beyond `Probe::kind` and `capabilities`.
pub(crate) struct Kind {
    pub audio: bool,
    pub vision: bool,
}

impl Kind {
    /// The modality the model itself serves (what its runtime check asks the registry for).
    pub fn modality(&self, kind: ModelKind) -> Modality {
        match kind {
            ModelKind::Embedding => Modality::Embeddings,
            ModelKind::Audio => Modality::Audio,
            _ if self.vision => Modality::Vision,
            _ => Modality::Text,
        }
    }
}

fn non_empty_object(v: Option<&Value>) -> bool {
    v.and_then(Value::as_object).is_some_and(|o| !o.is_empty())
}

/// Set `p.kind` and `p.capabilities`.
pub(crate) fn detect(s: &Scan, cfg: &Value, p: &mut Probe) -> Kind {
    let mt = p.config_model_type.clone().unwrap_or_default();
    let arch_l = p
        .architecture
        .clone()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let st_marker = ST_FILES.iter().any(|f| s.exists(f));
    let causal = arch_l.contains("forcausallm") || arch_l.contains("forconditionalgeneration");
    let is_embedder = st_marker
        || (ENCODER_EMBEDDER_TYPES.contains(&mt.as_str())
            && !arch_l.contains("formaskedlm")
            && !arch_l.contains("forsequenceclassification")
            && !causal)
        || (p.format == Format::Gguf
            && matches!(mt.as_str(), "bert" | "nomic-bert" | "jina-bert-v2"));
    let preproc = s
        .exists("preprocessor_config.json")
        .then(|| read_json(&s.dir.join("preprocessor_config.json")).ok())
        .flatten();
    let audio = STT_TYPES.iter().any(|t| mt.contains(t))
        || preproc
            .as_ref()
            .and_then(|v| str_field(v, "feature_extractor_type"))
            .is_some_and(|t| t.to_ascii_lowercase().contains("whisper"));
    let video_only = s.exists("video_preprocessor_config.json")
        || preproc.as_ref().is_some_and(|v| {
            str_field(v, "processor_class") == Some("AutoVideoProcessor")
                || v.get("temporal_patch_size").is_some()
        });
    let vision = !audio
        && (non_empty_object(cfg.get("vision_config"))
            || (p.format != Format::Gguf && VISION_TYPES.contains(&mt.as_str()))
            || ((s.exists("preprocessor_config.json")
                || s.exists("processor_config.json")
                || s.exists("image_processor_config.json"))
                && !video_only));
    let audio_input = !audio && non_empty_object(cfg.get("audio_config"));

    if is_embedder {
        p.kind = ModelKind::Embedding;
        p.capabilities = vec![CAP_EMBEDDINGS];
    } else if audio {
        p.kind = ModelKind::Audio;
        p.capabilities = vec![CAP_AUDIO];
        // English-only Whisper checkpoints have a 51864-token vocabulary.
        let multilingual = cfg
            .get("vocab_size")
            .and_then(Value::as_u64)
            .or_else(|| p.ct2.as_ref().and_then(|c| c.vocab_size))
            .is_some_and(|v| v >= 51865);
        if mt.contains("whisper") && multilingual && !p.name.to_lowercase().contains("turbo") {
            p.capabilities.push(CAP_AUDIO_TRANSLATE);
        }
    } else {
        p.kind = if p.has_chat_template || vision {
            ModelKind::Chat
        } else {
            ModelKind::Base
        };
        p.capabilities = vec![CAP_TEXT];
        if p.kind == ModelKind::Chat {
            p.capabilities.push(CAP_CHAT);
        }
        if vision {
            p.capabilities.push(CAP_VISION);
        }
        if audio_input {
            p.capabilities.push(CAP_AUDIO);
        }
    }
    Kind { audio, vision }
}

/// A vision model needs its image processor config.
pub(crate) fn check_vision(s: &Scan, k: &Kind, cfg: &Value, f: &mut Findings) {
    if k.vision
        && !s.exists("preprocessor_config.json")
        && !s.exists("processor_config.json")
        && cfg.get("preprocessor_config").is_none()
    {
        f.fail(
            "vision_processor_missing",
            "Vision model missing preprocessor_config.json or processor_config.json",
        );
    }
}
