//! Shared by the CLI's end-to-end tests: the binary with a private HOME and
//! hub cache, and the JSON envelope of its output.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tanto");

/// `tanto` with HOME and HF_HOME under `tmp`, 16G of available memory, no
/// colour, none of the caller's cache, workspace or chunk settings, and
/// stdin closed.
pub fn tanto_cmd(tmp: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("HOME", tmp)
        .env("HF_HOME", tmp.join("hf"))
        .env("TANTO_MEMORY_AVAILABLE", "16G")
        .env("NO_COLOR", "1")
        .env_remove("HF_HUB_CACHE")
        .env_remove("TANTO_WORKSPACE_HOME")
        .env_remove("MLXK_WORKSPACE_HOME")
        .env_remove("TANTO_VISION_CHUNK")
        .stdin(Stdio::null());
    c
}

/// Run [`tanto_cmd`] with `args` to completion.
pub fn tanto(tmp: &Path, args: &[&str]) -> Output {
    tanto_cmd(tmp).args(args).output().unwrap()
}

/// The JSON envelope on stdout (the panic shows both streams).
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON envelope ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
