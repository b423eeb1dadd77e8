//! The generation flags `run` and its interactive chat share, as one
//! `#[command(flatten)]` group with [`GenerationArgs::to_params`]: chat takes
//! this struct and needs nothing else from `run`.

use tanto_engine::GenerationParams;

#[derive(clap::Args, Debug, Clone)]
pub struct GenerationArgs {
    /// System prompt
    #[arg(long, short = 's')]
    pub system: Option<String>,
    /// Maximum tokens to generate (default: up to the context length)
    #[arg(long, short = 'n')]
    pub max_tokens: Option<usize>,
    /// Sampling temperature; 0 = greedy and deterministic [default: 0.7; with
    /// --audio: Whisper's fallback ladder 0.0, 0.2, …, 1.0]
    #[arg(long, short = 't')]
    pub temperature: Option<f32>,
    /// Nucleus sampling threshold
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    /// Sample only from the K most likely tokens
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Drop tokens below this fraction of the top token's probability
    #[arg(long)]
    pub min_p: Option<f32>,
    /// Penalise tokens repeated within the last 64 (1.0 = off)
    #[arg(long, default_value_t = 1.1)]
    pub repetition_penalty: f32,
    /// Random seed for reproducible sampling
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop when this string is generated (repeatable; never printed)
    #[arg(long)]
    pub stop: Vec<String>,
    /// Hide <think>…</think> reasoning
    #[arg(long)]
    pub no_reasoning: bool,
}

impl GenerationArgs {
    /// The engine's settings for these flags.
    pub fn to_params(&self) -> GenerationParams {
        GenerationParams {
            max_tokens: self.max_tokens,
            temperature: self.temperature.unwrap_or(0.7),
            top_p: Some(self.top_p),
            top_k: self.top_k,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            stop: self.stop.clone(),
            ..GenerationParams::default()
        }
    }
}
