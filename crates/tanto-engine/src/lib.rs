//! tanto-engine: Load and Run. One trait per modality; the CLI and the server
//! share these types. Nothing here decides *whether* to load a model: that is
//! tanto-core's policy, which hands over a [`tanto_core::plan::LoadPlan`].

// Kernels index several arrays in lock-step on purpose; `is_multiple_of` is
// newer than the workspace's rust-version (1.80).
#![allow(clippy::needless_range_loop, clippy::manual_is_multiple_of)]

pub mod api;
pub mod engine;
pub mod kernels;
pub mod models;
pub mod sampler;
pub mod stream;
pub mod template;
pub mod threads;
pub mod tokenizer;

pub use api::*;
pub use engine::{supported_architectures, TextEngine};
