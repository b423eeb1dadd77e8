//! Test fixtures for tanto.
//!
//! - [`Files`]: the content of one model folder (path → bytes, or a link to a real file).
//! - [`hub::HubCache`]: writes that content the way `huggingface_hub` lays out its cache
//!   (`models--org--name/{blobs,refs,snapshots}`, relative symlinks, `.locks/`).
//! - [`workspace`]: plain model folders, optionally with a `.mlxk_workspace.json` sentinel.
//! - [`safetensors`] and [`gguf`]: byte generators for valid files, and [`corrupt`] for
//!   the damaged variants the probe must report.
//! - [`presets`]: healthy models of every kind and [`presets::Broken`], one case per
//!   health rule, each with the problem code and file the probe is expected to name.
//!
//! The crate has no dependency on tanto itself, so it can be a dev-dependency of any
//! crate in the workspace.

pub mod corrupt;
pub mod files;
pub mod gguf;
pub mod hub;
pub mod presets;
pub mod safetensors;
pub mod workspace;

pub use files::{Content, Files};
pub use hub::{CachedRepo, HubCache};
pub use presets::Broken;
