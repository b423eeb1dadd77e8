//! Vision-language models: images + text in, text out.
//!
//! A [`VisionEngine`] is a [`TextModel`]: the CLI and the server drive it
//! exactly like a text model, with images riding in [`ChatMessage::parts`].
//! `encode` renders the chat template with content parts, expands every
//! `<image>` into the family's image prompt, tokenizes, and preprocesses the
//! images ([`PixelValues`]); `generate_encoded` runs the vision tower, hands
//! the features to the text model's embedding step, and generates with the
//! shared text loop (sampling, stop strings, streaming).
//!
//! Families: Idefics3 / SmolVLM ([`idefics3`]).

pub mod idefics3;
pub mod image;
pub mod metadata;
pub mod resample;
pub mod siglip;

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tanto_core::plan::{Backend, LoadPlan, Weights};

use crate::api::*;
use crate::engine::TextEngine;
use idefics3::{Idefics3Vision, Pending, ProcessorConfig};

/// `config.json` `model_type` values this engine loads.
pub const VISION_ARCHS: &[&str] = &["idefics3", "smolvlm"];

/// Special strings a user's text may not contain: they would move image features.
const RESERVED: &[&str] = &[
    idefics3::IMAGE_TOKEN,
    idefics3::FAKE_TOKEN,
    idefics3::GLOBAL_TOKEN,
];

pub struct VisionEngine {
    text: TextEngine,
    vision: Idefics3Vision,
    processor: ProcessorConfig,
    pending: Arc<Mutex<Pending>>,
    image_token: u32,
    /// Which implementation runs the model (for logs/benchmarks).
    pub backend_name: String,
}

impl std::fmt::Debug for VisionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisionEngine")
            .field("info", self.text.info())
            .field("backend", &self.backend_name)
            .finish_non_exhaustive()
    }
}

impl VisionEngine {
    pub fn load(plan: &LoadPlan, opts: &LoadOptions) -> Result<Self, EngineError> {
        let t0 = std::time::Instant::now();
        let files = match (&plan.backend, &plan.weights) {
            (Backend::Vision, Weights::Safetensors { files }) => files,
            (b, _) => {
                return Err(EngineError::UnsupportedArchitecture(format!(
                    "backend {} with these weights is not the vision backend",
                    b.as_str()
                )))
            }
        };
        if files.is_empty() {
            return Err(EngineError::InvalidModel {
                path: plan.dir.clone(),
                message: "no safetensors files".into(),
            });
        }
        let cfg_path = plan.dir.join("config.json");
        let cfg = crate::tokenizer::read_json_opt(&cfg_path)?.ok_or_else(|| EngineError::Io {
            path: cfg_path.clone(),
            message: "config.json not found".into(),
        })?;
        let model_type = cfg
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !VISION_ARCHS.contains(&model_type.as_str()) {
            return Err(EngineError::UnsupportedArchitecture(model_type));
        }
        let declared = cfg
            .get("text_config")
            .and_then(|t| t.get("max_position_embeddings"))
            .and_then(Value::as_u64)
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX));
        let context = crate::gguf::effective_context(declared, plan.context_length);
        let threads = crate::engine::threads_of(opts);
        let loaded = idefics3::load(&plan.dir, files, &cfg, threads, context)?;
        let pending = loaded.text.pending.clone();
        let backend_name = format!(
            "candle vision (SigLIP + llama, {}, {threads} threads)",
            crate::device::selected_name()
        );
        let mut text = TextEngine::over_backbone(
            plan,
            model_type,
            &cfg,
            context,
            Box::new(loaded.text),
            backend_name.clone(),
        )?;
        if text.template().is_none() {
            return Err(EngineError::InvalidModel {
                path: plan.dir.clone(),
                message: "a vision model needs its chat template (chat_template.json or .jinja)"
                    .into(),
            });
        }
        text.info_mut().load_time = t0.elapsed();
        Ok(Self {
            text,
            vision: loaded.vision,
            processor: loaded.processor,
            pending,
            image_token: loaded.image_token,
            backend_name,
        })
    }

    /// Logits after the prompt (fidelity tests): vision tower, merge, prefill.
    pub fn first_logits(&mut self, prompt: &EncodedPrompt) -> Result<Vec<f32>, EngineError> {
        self.stage(prompt)?;
        let out = self.text.debug_logits(&prompt.ids);
        self.clear_pending();
        out
    }

    /// Run the vision tower for the prompt's images and queue the features.
    fn stage(&mut self, prompt: &EncodedPrompt) -> Result<(), EngineError> {
        let mut p = Pending::default();
        if let Some(pv) = &prompt.pixels {
            let rows = self.vision.encode(pv)?;
            p.n = rows.len() / self.vision.text_hidden;
            p.rows = rows;
        }
        let wanted = prompt
            .ids
            .iter()
            .filter(|&&i| i == self.image_token)
            .count();
        if wanted != p.n {
            return Err(EngineError::Validation(format!(
                "the prompt has {wanted} image tokens but its images give {} features",
                p.n
            )));
        }
        // Cached positions may hold another image's features: start cold.
        if p.n > 0 {
            self.text.clear_cache();
        }
        *self.pending.lock().map_err(|_| poisoned())? = p;
        Ok(())
    }

    fn clear_pending(&mut self) {
        if let Ok(mut p) = self.pending.lock() {
            *p = Pending::default();
        }
    }

    /// The messages as the template sees them: `content` is a list of parts.
    fn template_messages(
        messages: &[ChatMessage],
    ) -> Result<(Value, usize, Vec<&Arc<image::DecodedImage>>), EngineError> {
        let mut out = Vec::with_capacity(messages.len());
        let mut images = Vec::new();
        let mut bytes = 0;
        for m in messages {
            bytes += m.role.len() + m.content.len();
            let parts: Vec<Value> = if m.parts.is_empty() {
                reject_reserved(&m.content)?;
                vec![json!({"type": "text", "text": m.content})]
            } else {
                let mut v = Vec::with_capacity(m.parts.len());
                for p in &m.parts {
                    match p {
                        ContentPart::Text(t) => {
                            reject_reserved(t)?;
                            v.push(json!({"type": "text", "text": t}));
                        }
                        ContentPart::Image(i) => {
                            images.push(i);
                            v.push(json!({"type": "image"}));
                        }
                    }
                }
                v
            };
            out.push(json!({"role": m.role, "content": parts}));
        }
        Ok((Value::Array(out), bytes, images))
    }

    /// The chat template over content parts, and the images in prompt order.
    fn render_chat<'a>(
        &self,
        messages: &'a [ChatMessage],
    ) -> Result<(String, Vec<&'a Arc<image::DecodedImage>>), EngineError> {
        let (msgs, bytes, images) = Self::template_messages(messages)?;
        let t = self.text.template().ok_or(EngineError::NoChatTemplate)?;
        Ok((t.render_json(&msgs, messages.len(), bytes, true)?, images))
    }
}

/// Text may not carry the model's image markers: they would move image features.
fn reject_reserved(t: &str) -> Result<(), EngineError> {
    match RESERVED.iter().find(|r| t.contains(**r)) {
        Some(r) => Err(EngineError::Validation(format!(
            "the text contains the model's reserved image marker {r}; remove it or send the image as an image part"
        ))),
        None => Ok(()),
    }
}

fn poisoned() -> EngineError {
    EngineError::Inference("vision state poisoned by an earlier panic".into())
}

impl TextModel for VisionEngine {
    fn info(&self) -> &TextModelInfo {
        self.text.info()
    }

    fn render(&self, prompt: &Prompt) -> Result<String, EngineError> {
        match prompt {
            Prompt::Text(t) => Ok(t.clone()),
            Prompt::Chat(messages) => Ok(self.render_chat(messages)?.0),
        }
    }

    fn encode(&self, prompt: &Prompt) -> Result<EncodedPrompt, EngineError> {
        let (rendered, images) = match prompt {
            Prompt::Text(t) => {
                reject_reserved(t)?;
                (t.clone(), Vec::new())
            }
            Prompt::Chat(messages) => self.render_chat(messages)?,
        };
        let rgb: Vec<&resample::Rgb8> = images.iter().map(|i| &i.rgb).collect();
        let (pixels, grids) = if rgb.is_empty() {
            (None, Vec::new())
        } else {
            let (pv, g) = self.processor.pixel_values(&rgb);
            (Some(pv), g)
        };
        let text = idefics3::expand_prompt(&rendered, &grids, self.processor.image_seq_len)?;
        // The processor tokenizes with add_special_tokens=True.
        let ids = self.text.tokenizer().encode(&text, true)?;
        Ok(EncodedPrompt {
            ids,
            opens_think: false,
            pixels,
        })
    }

    fn generate_encoded(
        &mut self,
        prompt: &EncodedPrompt,
        params: &GenerationParams,
        sink: &mut dyn FnMut(Delta<'_>) -> Flow,
    ) -> Result<GenerationOutput, EngineError> {
        self.stage(prompt)?;
        let out = self.text.generate_encoded(prompt, params, sink);
        self.clear_pending();
        out
    }
}

/// Load a vision-language model as the policy planned it.
pub fn load_vision_model(
    plan: &LoadPlan,
    opts: &LoadOptions,
) -> Result<Box<dyn TextModel>, EngineError> {
    Ok(Box::new(VisionEngine::load(plan, opts)?))
}

impl VisionEngine {
    /// Benchmarks and fidelity tests: keep generating through end-of-sequence.
    pub fn set_ignore_eos(&mut self, yes: bool) {
        self.text.set_ignore_eos(yes);
    }

    /// Preprocess images exactly as `encode` does (tests, benchmarks).
    pub fn pixel_values(&self, images: &[&resample::Rgb8]) -> (PixelValues, Vec<(usize, usize)>) {
        self.processor.pixel_values(images)
    }
}
