//! tanto-engine: Load and Run. One trait per modality; the CLI and the server
//! share these types. Nothing here decides *whether* to load a model: that is
//! tanto-core's policy, which hands over a [`tanto_core::plan::LoadPlan`].

pub mod api;

pub use api::*;
