//! Model backbones: given token ids at a position, produce next-token logits.

pub mod candle_models;
pub mod llama_native;

use crate::api::EngineError;

/// A causal LM with its own KV cache.
pub trait Backbone: Send {
    /// Run `ids` at positions `pos..pos+len` (positions before `pos` are cached)
    /// and return the logits of the last one.
    fn forward(&mut self, ids: &[u32], pos: usize) -> Result<Vec<f32>, EngineError>;

    /// Keep only the first `len` cached positions. Returns false when the model
    /// cannot truncate; the caller then calls [`Backbone::reset`] and re-runs.
    fn truncate(&mut self, _len: usize) -> bool {
        false
    }

    /// Forget all cached positions.
    fn reset(&mut self) -> Result<(), EngineError>;

    /// Largest chunk `forward` should get at once during prefill.
    fn prefill_chunk(&self) -> usize {
        512
    }
}
