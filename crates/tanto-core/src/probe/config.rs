//! Probe phase 2, config: read config.json (and the small JSON helpers the
//! other phases share) and take architecture, model_type and context length
//! from it.

use std::path::Path;

use serde_json::{Map, Value};

use super::health::Findings;
use super::{Probe, Scan};
use crate::limits::{self, ReadError};

/// Why a JSON file beside the weights gave no value.
pub(crate) enum JsonError {
    /// Missing, or not a regular file (the files phase reports those).
    Unreadable,
    /// Over [`limits::JSON_MAX`].
    TooLarge(u64),
    /// Not valid JSON.
    Parse(String),
}

/// Read and parse a small JSON file through the capped reader.
pub(crate) fn read_json(path: &Path) -> Result<Value, JsonError> {
    let bytes = match limits::read_capped(path, limits::JSON_MAX) {
        Ok(b) => b,
        Err(ReadError::TooLarge { size, .. }) => return Err(JsonError::TooLarge(size)),
        Err(_) => return Err(JsonError::Unreadable),
    };
    serde_json::from_slice(&bytes).map_err(|e| JsonError::Parse(e.to_string()))
}

/// The `file_too_large` problem for a JSON file over the cap.
pub(crate) fn too_large(f: &mut Findings, rel: &str, size: u64) {
    f.fail(
        "file_too_large",
        format!(
            "{rel} is {} (tanto reads at most {} of JSON metadata)",
            limits::human(size),
            limits::human(limits::JSON_MAX)
        ),
    );
}

pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn positive_int(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().filter(|n| *n > 0),
        Value::String(s) => s.trim().parse().ok().filter(|n: &u64| *n > 0),
        _ => None,
    }
}

/// First positive context-length field, top level then `text_config`.
pub fn context_length_from_config(cfg: &Value) -> Option<u64> {
    const KEYS: &[&str] = &[
        "max_position_embeddings",
        "n_positions",
        "context_length",
        "max_sequence_length",
        "seq_len",
    ];
    for scope in [Some(cfg), cfg.get("text_config")].into_iter().flatten() {
        for k in KEYS {
            if let Some(n) = scope.get(*k).and_then(positive_int) {
                return Some(n);
            }
        }
    }
    None
}

/// What the config phase found.
pub(crate) struct Config {
    /// Parsed config.json, `{}` when absent or invalid.
    pub cfg: Value,
    /// config.json parsed to a non-empty object.
    pub valid: bool,
    /// config.json is present (and this is not a lone GGUF file).
    pub exists: bool,
}

/// Read config.json into `p` (`config`, `config_model_type`, `architecture`, `context_length`).
pub(crate) fn read(s: &Scan, p: &mut Probe, f: &mut Findings) -> Config {
    let exists = s.exists("config.json") && s.target.file.is_none();
    let config: Option<Value> = if !exists {
        None
    } else {
        match read_json(&s.dir.join("config.json")) {
            Err(JsonError::Unreadable) => None,
            Err(JsonError::TooLarge(n)) => {
                too_large(f, "config.json", n);
                None
            }
            Err(JsonError::Parse(e)) => {
                f.fail(
                    "config_invalid",
                    format!("config.json contains invalid JSON ({e})"),
                );
                None
            }
            Ok(v) if v.as_object().is_some_and(|o| !o.is_empty()) => Some(v),
            Ok(_) => {
                f.fail("config_invalid", "config.json is empty or invalid");
                None
            }
        }
    };
    let cfg = config.clone().unwrap_or(Value::Object(Map::new()));
    p.config = config.clone();
    p.config_model_type = str_field(&cfg, "model_type").map(str::to_ascii_lowercase);
    p.architecture = cfg
        .get("architectures")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .map(str::to_string);
    p.context_length = context_length_from_config(&cfg);
    Config {
        cfg,
        valid: config.is_some(),
        exists,
    }
}
