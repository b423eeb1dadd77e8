//! tanto-core: the shared Resolve → Probe → Policy pipeline.
//!
//! This crate has no ML dependency. It answers "what is this model, is it
//! intact, can this build run it, does it fit?" from metadata alone, and every
//! caller (CLI, server, list/show) asks it rather than re-deciding. The folders
//! are the pipeline's stages:
//!
//! - [`resolve`]: model spec → one model on disk ([`resolve::store`], [`resolve::paths`],
//!   [`resolve::naming`]).
//! - [`probe`]: metadata-only inspection ([`probe::gguf`], [`probe::safetensors`] headers).
//! - [`policy`]: probe + request + host memory → allow / warn / block, and the
//!   [`policy::plan::LoadPlan`] handed to the engine.
//! - [`registry`]: what this build's engine runs; the one place that maps a
//!   model to a backend.
//! - [`limits`]: the bounds on everything a model file can make tanto
//!   allocate or read, and the capped reader for small files.
//!
//! The old flat paths (`tanto_core::store`, `tanto_core::gguf`, `tanto_core::plan`, …)
//! are kept as re-exports.

pub mod duration;
pub mod error;
pub mod fs_walk;
pub mod limits;
pub mod policy;
pub mod probe;
pub mod pycompat;
pub mod registry;
pub mod report;
pub mod resolve;
pub mod workspace;

pub use policy::{host, plan};
pub use probe::{gguf, safetensors};
pub use resolve::{naming, paths, store};
