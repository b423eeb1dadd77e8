//! One module per subcommand, plus the pieces `run` and chat share.

pub mod chat;
pub mod deploy;
pub mod embed;
pub mod generation;
pub mod health;
pub mod hub;
pub mod interrupt;
pub mod list;
pub mod ps;
pub mod push;
pub mod rm;
pub mod run;
pub mod run_args;
pub mod serve;
pub mod show;
pub mod transcribe;
pub mod version;
pub mod vision;
