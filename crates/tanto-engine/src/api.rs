//! The engine's public contract, shared by `tanto run` and `tanto serve`: request
//! and result types, the error enum with its one classification, and the
//! [`TextModel`] trait. A leaf: of the engine it uses only the decoded-image
//! type (`vision::image`).
//! Add fields freely; do not rename (the server maps them to OpenAI's shapes).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tanto_core::error::ErrorType;

/// One chat turn. `content` is its text (content-part arrays flattened);
/// `parts`, when not empty, is the turn in order with its images, for
/// vision models (a text model refuses a turn with images).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    #[serde(skip)]
    pub parts: Vec<ContentPart>,
}

impl ChatMessage {
    /// A text-only turn.
    pub fn text(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            parts: Vec::new(),
        }
    }

    /// The images of this turn, in order.
    pub fn images(
        &self,
    ) -> impl Iterator<Item = &std::sync::Arc<crate::vision::image::DecodedImage>> {
        self.parts.iter().filter_map(|p| match p {
            ContentPart::Image(i) => Some(i),
            ContentPart::Text(_) => None,
        })
    }
}

/// A piece of a chat turn.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    Text(String),
    /// A decoded, upright image (shared: the server keeps one copy per request).
    Image(std::sync::Arc<crate::vision::image::DecodedImage>),
}

/// The preprocessed images of one prompt: every tile's CHW `f32` values, in
/// prompt order (transformers' `pixel_values` for batch size 1).
#[derive(Debug, Clone, PartialEq)]
pub struct PixelValues {
    pub tiles: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: std::sync::Arc<Vec<f32>>,
}

/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Rendered with the model's chat template (`add_generation_prompt` = true).
    Chat(Vec<ChatMessage>),
    /// Raw text completion: no template, BOS added only if the tokenizer asks for it.
    Text(String),
}

/// Sampling and stopping. `temperature <= 0` means greedy and deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    /// None = up to the context length.
    pub max_tokens: Option<usize>,
    pub temperature: f32,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    /// 1.0 = off. Applied over the last `repeat_last_n` tokens.
    pub repetition_penalty: f32,
    pub repeat_last_n: usize,
    /// OpenAI-style additive penalties (0.0 = off).
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub seed: Option<u64>,
    /// Stop strings: never emitted, held back while they could still match.
    pub stop: Vec<String>,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            max_tokens: None,
            temperature: 0.7,
            top_p: Some(0.9),
            top_k: None,
            min_p: None,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: None,
            stop: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// EOS token or stop string.
    Stop,
    /// max_tokens or context length reached.
    Length,
    /// The caller's sink asked to stop (Ctrl-C, client disconnect).
    Cancelled,
}

/// Streamed pieces. Reasoning (`<think>…</think>`) is split out from content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta<'a> {
    Content(&'a str),
    Reasoning(&'a str),
}

/// What the sink tells the generator after each delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub prefill: Duration,
    pub decode: Duration,
}

impl Timings {
    pub fn prefill_tps(&self, usage: &Usage) -> f64 {
        rate(usage.prompt_tokens, self.prefill)
    }
    pub fn decode_tps(&self, usage: &Usage) -> f64 {
        rate(usage.completion_tokens.saturating_sub(1), self.decode)
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerationOutput {
    pub content: String,
    pub reasoning: Option<String>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// Generated token ids (fidelity tests compare these with references).
    pub token_ids: Vec<u32>,
    pub timings: Timings,
}

/// Facts about a loaded text model.
#[derive(Debug, Clone, Serialize)]
pub struct TextModelInfo {
    pub name: String,
    pub architecture: String,
    pub context_length: usize,
    /// False when the model has no chat template: `Prompt::Chat` is then refused.
    pub has_chat_template: bool,
    pub eos_token_ids: Vec<u32>,
    pub load_time: Duration,
}

/// Everything the engine can fail with. Load-time problems with the model's own
/// files (weights, config, tokenizer, chat template) are `Io` / `InvalidModel`;
/// `Tokenizer` and `Template` are failures while serving one request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unsupported architecture '{0}' for this backend")]
    UnsupportedArchitecture(String),
    #[error("failed to read {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("invalid model file {path}: {message}")]
    InvalidModel { path: PathBuf, message: String },
    /// Encoding or decoding one request's text failed (the tokenizer itself loaded).
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// The chat template rejected this request's messages (`raise_exception`, a
    /// type error on the given content).
    #[error("chat template error: {0}")]
    Template(String),
    /// Rendering the chat template ran past one of the engine's limits: the
    /// template, not the request, is at fault, and the model stays usable.
    #[error("chat template exceeded the {limit} limit: {message}")]
    TemplateLimit {
        limit: TemplateLimit,
        message: String,
    },
    #[error("model has no chat template; use plain completion (--no-chat-template)")]
    NoChatTemplate,
    #[error("prompt is {prompt} tokens but the context length is {context}")]
    PromptTooLong { prompt: usize, context: usize },
    /// The request itself is invalid for this model (an empty input, a token
    /// id outside the vocabulary, an instruction the model has no place for).
    #[error("{0}")]
    Validation(String),
    /// The model cannot do what the request asks (translate with an
    /// English-only or turbo Whisper): `unsupported_task`, 422.
    #[error("{0}")]
    UnsupportedTask(String),
    #[error("inference error: {0}")]
    Inference(String),
}

/// Which render limit a chat template hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateLimit {
    /// Instruction budget (minijinja fuel): runaway or nested loops.
    Fuel,
    /// Nesting depth of macros, includes and recursive loops.
    Recursion,
    /// Size of the rendered text or of a value built while rendering.
    Output,
    /// Wall-clock time of one render.
    Time,
}

impl std::fmt::Display for TemplateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TemplateLimit::Fuel => "instruction (fuel)",
            TemplateLimit::Recursion => "recursion",
            TemplateLimit::Output => "output size",
            TemplateLimit::Time => "time",
        })
    }
}

impl EngineError {
    /// The one classification of engine errors for every front-end (the CLI's
    /// `--json` `type`, the server's HTTP status via [`ErrorType::http_status`]).
    ///
    /// - the model's files are unreadable or malformed, including a tokenizer or
    ///   chat template that does not load, and a template that blows a render
    ///   limit: `unhealthy_model` (re-download or pick another model);
    /// - no chat template: `capability_mismatch` (the model cannot chat; plain
    ///   completion works);
    /// - the request does not fit (prompt too long, the template rejects these
    ///   messages): `validation_error` (the server words it as OpenAI's
    ///   `invalid_request_error`, same status 400);
    /// - no engine for this architecture: `runtime_incompatible`;
    /// - a failure while running: `execution_error`.
    pub fn error_type(&self) -> ErrorType {
        match self {
            EngineError::UnsupportedArchitecture(_) => ErrorType::RuntimeIncompatible,
            EngineError::Io { .. }
            | EngineError::InvalidModel { .. }
            | EngineError::TemplateLimit { .. } => ErrorType::UnhealthyModel,
            EngineError::NoChatTemplate => ErrorType::CapabilityMismatch,
            EngineError::PromptTooLong { .. }
            | EngineError::Template(_)
            | EngineError::Validation(_) => ErrorType::ValidationError,
            EngineError::UnsupportedTask(_) => ErrorType::UnsupportedTask,
            EngineError::Tokenizer(_) | EngineError::Inference(_) => ErrorType::ExecutionError,
        }
    }

    /// HTTP status of [`EngineError::error_type`].
    pub fn http_status(&self) -> u16 {
        self.error_type().http_status()
    }
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Inference(e.to_string())
    }
}

/// Options that are not part of the plan: threads, device.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// None = the engine's default, `min(available cores, 4)`. On a small host that
    /// is busy with other work, fewer threads (even 1) are often faster: inference
    /// threads spin briefly between steps and compete with the other load.
    pub threads: Option<usize>,
}

/// A prompt rendered and tokenized once ([`TextModel::encode`]), so a caller can
/// check its length and then generate from the same ids without tokenizing twice.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPrompt {
    /// The token ids fed to the model, as `generate` would make them.
    pub ids: Vec<u32>,
    /// The rendered prompt ends inside an open `<think>` block, so the first
    /// generated text is reasoning.
    pub opens_think: bool,
    /// The prompt's images, preprocessed (vision models only).
    pub pixels: Option<PixelValues>,
}

impl EncodedPrompt {
    /// Prompt length in tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A loaded text-generation model. One generation at a time (`&mut self`);
/// the server queues requests in front of it.
///
/// Implementors provide [`encode`](TextModel::encode) and
/// [`generate_encoded`](TextModel::generate_encoded); `count_tokens` and
/// `generate` are those two composed.
pub trait TextModel: Send {
    fn info(&self) -> &TextModelInfo;

    /// Render a prompt to the exact text fed to the tokenizer (for tests / --verbose).
    fn render(&self, prompt: &Prompt) -> Result<String, EngineError>;

    /// Render and tokenize a prompt exactly as `generate` does.
    fn encode(&self, prompt: &Prompt) -> Result<EncodedPrompt, EngineError>;

    /// Generate from an already encoded prompt, streaming deltas to `sink`;
    /// returning `Flow::Stop` cancels within one token.
    fn generate_encoded(
        &mut self,
        prompt: &EncodedPrompt,
        params: &GenerationParams,
        sink: &mut dyn FnMut(Delta<'_>) -> Flow,
    ) -> Result<GenerationOutput, EngineError>;

    /// Token count of a prompt after rendering (for validation against context).
    fn count_tokens(&self, prompt: &Prompt) -> Result<usize, EngineError> {
        Ok(self.encode(prompt)?.len())
    }

    /// Encode, then generate: [`encode`](TextModel::encode) +
    /// [`generate_encoded`](TextModel::generate_encoded).
    fn generate(
        &mut self,
        prompt: &Prompt,
        params: &GenerationParams,
        sink: &mut dyn FnMut(Delta<'_>) -> Flow,
    ) -> Result<GenerationOutput, EngineError> {
        let encoded = self.encode(prompt)?;
        self.generate_encoded(&encoded, params, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<EngineError> {
        let p = || PathBuf::from("m.gguf");
        vec![
            EngineError::UnsupportedArchitecture("mamba".into()),
            EngineError::Io {
                path: p(),
                message: "gone".into(),
            },
            EngineError::InvalidModel {
                path: p(),
                message: "bad".into(),
            },
            EngineError::Tokenizer("x".into()),
            EngineError::Template("roles must alternate".into()),
            EngineError::TemplateLimit {
                limit: TemplateLimit::Fuel,
                message: "x".into(),
            },
            EngineError::NoChatTemplate,
            EngineError::PromptTooLong {
                prompt: 9,
                context: 8,
            },
            EngineError::Validation("x".into()),
            EngineError::Inference("x".into()),
        ]
    }

    #[test]
    fn missing_chat_template_is_a_capability_problem() {
        assert_eq!(
            EngineError::NoChatTemplate.error_type(),
            ErrorType::CapabilityMismatch
        );
        assert_eq!(EngineError::NoChatTemplate.http_status(), 400);
    }

    #[test]
    fn broken_model_files_are_unhealthy_and_request_problems_are_validation() {
        let p = PathBuf::from("tokenizer.json");
        let bad_tok = EngineError::InvalidModel {
            path: p,
            message: "tokenizer: eof".into(),
        };
        assert_eq!(bad_tok.error_type(), ErrorType::UnhealthyModel);
        assert_eq!(bad_tok.http_status(), 422);
        let long = EngineError::PromptTooLong {
            prompt: 9,
            context: 8,
        };
        assert_eq!(long.error_type(), ErrorType::ValidationError);
        assert_eq!(
            EngineError::Template("no".into()).error_type(),
            ErrorType::ValidationError
        );
        let limit = EngineError::TemplateLimit {
            limit: TemplateLimit::Output,
            message: "x".into(),
        };
        assert_eq!(limit.error_type(), ErrorType::UnhealthyModel);
        assert!(limit.to_string().contains("output size"));
        assert_eq!(EngineError::Tokenizer("x".into()).http_status(), 500);
        assert_eq!(
            EngineError::UnsupportedArchitecture("x".into()).http_status(),
            501
        );
    }

    /// Encodes each word as one id and counts its encodes.
    struct Words {
        info: TextModelInfo,
        encodes: std::cell::Cell<usize>,
        seen: Vec<u32>,
    }

    impl TextModel for Words {
        fn info(&self) -> &TextModelInfo {
            &self.info
        }
        fn render(&self, prompt: &Prompt) -> Result<String, EngineError> {
            match prompt {
                Prompt::Text(t) => Ok(t.clone()),
                Prompt::Chat(_) => Err(EngineError::NoChatTemplate),
            }
        }
        fn encode(&self, prompt: &Prompt) -> Result<EncodedPrompt, EngineError> {
            self.encodes.set(self.encodes.get() + 1);
            let text = self.render(prompt)?;
            Ok(EncodedPrompt {
                ids: (0..text.split_whitespace().count() as u32).collect(),
                opens_think: false,
                pixels: None,
            })
        }
        fn generate_encoded(
            &mut self,
            prompt: &EncodedPrompt,
            _params: &GenerationParams,
            _sink: &mut dyn FnMut(Delta<'_>) -> Flow,
        ) -> Result<GenerationOutput, EngineError> {
            self.seen = prompt.ids.clone();
            Ok(GenerationOutput {
                content: String::new(),
                reasoning: None,
                finish_reason: FinishReason::Stop,
                usage: Usage {
                    prompt_tokens: prompt.len(),
                    completion_tokens: 0,
                },
                token_ids: Vec::new(),
                timings: Timings::default(),
            })
        }
    }

    #[test]
    fn count_tokens_and_generate_are_encode_composed_with_generate_encoded() {
        let mut m = Words {
            info: TextModelInfo {
                name: "w".into(),
                architecture: "llama".into(),
                context_length: 16,
                has_chat_template: false,
                eos_token_ids: vec![],
                load_time: Duration::ZERO,
            },
            encodes: Default::default(),
            seen: Vec::new(),
        };
        let p = Prompt::Text("a b c".into());
        assert_eq!(m.count_tokens(&p).unwrap(), 3);
        let out = m
            .generate(&p, &GenerationParams::default(), &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(out.usage.prompt_tokens, 3);
        assert_eq!(m.seen, vec![0, 1, 2]);
        assert_eq!(m.encodes.get(), 2, "one encode per call");
        // An encode error surfaces from both, untouched.
        let chat = Prompt::Chat(vec![]);
        assert!(matches!(
            m.count_tokens(&chat),
            Err(EngineError::NoChatTemplate)
        ));
        assert!(matches!(
            m.generate(&chat, &GenerationParams::default(), &mut |_| Flow::Continue),
            Err(EngineError::NoChatTemplate)
        ));
    }

    #[test]
    fn status_always_follows_the_error_type() {
        for e in all() {
            assert_eq!(e.http_status(), e.error_type().http_status(), "{e}");
        }
    }
}
