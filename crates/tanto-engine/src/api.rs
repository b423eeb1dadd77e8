//! The engine's public contract, shared by `tanto run` and `tanto serve`.
//! Add fields freely; do not rename (the server maps them to OpenAI's shapes).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tanto_core::plan::LoadPlan;

/// One chat turn. `content` is plain text (content-part arrays are flattened by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
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

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unsupported architecture '{0}' for this backend")]
    UnsupportedArchitecture(String),
    #[error("failed to read {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("invalid model file {path}: {message}")]
    InvalidModel { path: PathBuf, message: String },
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("chat template error: {0}")]
    Template(String),
    #[error("model has no chat template; use plain completion (--no-chat-template)")]
    NoChatTemplate,
    #[error("prompt is {prompt} tokens but the context length is {context}")]
    PromptTooLong { prompt: usize, context: usize },
    #[error("inference error: {0}")]
    Inference(String),
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

/// A loaded text-generation model. One generation at a time (`&mut self`);
/// the server queues requests in front of it.
pub trait TextModel: Send {
    fn info(&self) -> &TextModelInfo;

    /// Render a prompt to the exact text fed to the tokenizer (for tests / --verbose).
    fn render(&self, prompt: &Prompt) -> Result<String, EngineError>;

    /// Token count of a prompt after rendering (for validation against context).
    fn count_tokens(&self, prompt: &Prompt) -> Result<usize, EngineError>;

    /// Generate, streaming deltas to `sink`; returning `Flow::Stop` cancels
    /// within one token.
    fn generate(
        &mut self,
        prompt: &Prompt,
        params: &GenerationParams,
        sink: &mut dyn FnMut(Delta<'_>) -> Flow,
    ) -> Result<GenerationOutput, EngineError>;
}

/// Load a text model as the policy planned it.
pub fn load_text_model(
    plan: &LoadPlan,
    opts: &LoadOptions,
) -> Result<Box<dyn TextModel>, EngineError> {
    Ok(Box::new(crate::engine::TextEngine::load(plan, opts)?))
}
