//! tanto-core: the shared Resolve → Probe → Policy pipeline.
//!
//! This crate has no ML dependency. It answers "what is this model, is it
//! intact, can this build run it, does it fit?" from metadata alone, and every
//! caller (CLI, server, list/show) asks it rather than re-deciding.
//!
//! - [`resolve`]: model spec → one model on disk ([`store`], [`paths`], [`naming`]).
//! - [`probe`]: metadata-only inspection ([`gguf`], [`safetensors`] headers).
//! - [`policy`]: probe + request + host memory → allow / warn / block.
//! - [`plan`]: the hand-off to the engine.

pub mod error;
pub mod gguf;
pub mod host;
pub mod naming;
pub mod paths;
pub mod plan;
pub mod policy;
pub mod probe;
pub mod registry;
pub mod report;
pub mod resolve;
pub mod safetensors;
pub mod store;
pub mod workspace;
