//! tanto-core: the shared Resolve → Probe → Policy pipeline.
//!
//! This crate has no ML dependency. It answers "what is this model, is it
//! intact, can this build run it, does it fit?" from metadata alone, and every
//! caller (CLI, server, list/show) asks it rather than re-deciding.

pub mod plan;
