//! tanto-engine: Load and Run. One trait per modality; the CLI and the server
//! share these types. Nothing here decides *whether* to load a model: that is
//! tanto-core's policy, which hands over a [`tanto_core::plan::LoadPlan`].

// Kernels index several arrays in lock-step on purpose. `is_multiple_of` (Rust
// 1.87) stays unused so the engine builds with older toolchains than the newest;
// the code itself needs Rust 1.82 (`Option::is_none_or`).
#![allow(clippy::needless_range_loop, clippy::manual_is_multiple_of)]

pub mod api;
pub mod audio;
pub mod device;
pub mod embed;
pub mod engine;
pub mod gguf;
pub mod kernels;
pub mod mlx;
pub mod models;
pub mod sampler;
pub mod stream;
pub mod template;
pub mod threads;
pub mod tokenizer;
pub mod vision;
pub mod whisper;

pub use api::*;
pub use engine::{supported_architectures, TextEngine};
pub use vision::{load_vision_model, VisionEngine};

use tanto_core::plan::LoadPlan;

/// Load a model that generates text, as the policy planned it: the text
/// engine, or the vision engine for a vision-language model (which takes
/// images in [`ChatMessage::parts`] and plain text alike).
pub fn load_text_model(
    plan: &LoadPlan,
    opts: &LoadOptions,
) -> Result<Box<dyn TextModel>, EngineError> {
    match plan.backend {
        tanto_core::plan::Backend::Vision => vision::load_vision_model(plan, opts),
        _ => Ok(Box::new(TextEngine::load(plan, opts)?)),
    }
}
