//! Probe phase 4, tokenizer: which tokenizer files and chat templates exist
//! (beside the weights or inside the GGUF header), and the problems a missing
//! or broken tokenizer causes.

use serde_json::Value;

use super::config::{read_json, too_large, JsonError};
use super::health::Findings;
use super::kind::Kind;
use super::weights::Headers;
use super::{Format, Probe, Scan};

/// Tokenizer and template files found beside the weights.
pub(crate) struct Tokenizer {
    /// tokenizer.json, tokenizer.model, vocab files or tekken.json.
    pub hf_tokenizer: bool,
    /// chat_template.{jinja,json} or a template in tokenizer_config.json.
    pub template_files: bool,
}

/// A non-empty `chat_template` (string, or a list of named templates).
fn has_template_value(v: &Value) -> bool {
    match v.get("chat_template") {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    }
}

pub(crate) fn read(s: &Scan, f: &mut Findings) -> Tokenizer {
    let lone = s.target.file.is_some();
    let mut tok_cfg_template = false;
    if !lone && s.exists("tokenizer_config.json") {
        match read_json(&s.dir.join("tokenizer_config.json")) {
            Ok(v) if v.is_object() => tok_cfg_template = has_template_value(&v),
            Ok(_) => f.fail(
                "tokenizer_invalid",
                "tokenizer_config.json exists but invalid",
            ),
            Err(JsonError::Unreadable) => {}
            Err(JsonError::TooLarge(n)) => too_large(f, "tokenizer_config.json", n),
            Err(JsonError::Parse(_)) => f.fail(
                "tokenizer_invalid",
                "tokenizer_config.json contains invalid JSON",
            ),
        }
    }
    Tokenizer {
        hf_tokenizer: s.exists("tokenizer.json")
            || s.exists("tokenizer.model")
            || s.exists("vocab.txt")
            || (s.exists("vocab.json") && s.exists("merges.txt"))
            || s.exists("tekken.json"),
        template_files: !lone
            && (s.exists("chat_template.jinja")
                || s.exists("chat_template.json")
                || tok_cfg_template),
    }
}

/// Set `has_tokenizer` / `has_chat_template`; a GGUF needs an embedded tokenizer or one beside it.
pub(crate) fn apply(h: &Headers, tok: &Tokenizer, p: &mut Probe, f: &mut Findings) {
    match &h.gguf {
        Some(g) => {
            p.has_chat_template = g.has_chat_template() || tok.template_files;
            p.has_tokenizer = g.has_tokenizer() || tok.hf_tokenizer;
            if !p.has_tokenizer {
                f.fail(
                    "tokenizer_missing",
                    "GGUF file has no embedded tokenizer (tokenizer.ggml.tokens) and no tokenizer.json beside it",
                );
            }
        }
        None => {
            p.has_chat_template = tok.template_files;
            p.has_tokenizer = tok.hf_tokenizer;
        }
    }
}

/// Text and embedding models need a tokenizer (checked once the kind is known).
pub(crate) fn check(
    s: &Scan,
    tok: &Tokenizer,
    k: &Kind,
    config_valid: bool,
    p: &Probe,
    f: &mut Findings,
) {
    if p.format != Format::Gguf && p.format != Format::Unknown && !p.has_tokenizer && config_valid {
        f.fail(
            "tokenizer_missing",
            "Tokenizer missing: no tokenizer.json, tokenizer.model or vocab files",
        );
    }
    // Only a problem when nothing else can tokenise.
    if s.exists("tokenizer_config.json")
        && !s.exists("tokenizer.json")
        && !s.exists("tokenizer.model")
        && !k.audio
        && !tok.hf_tokenizer
    {
        f.fail(
            "tokenizer_missing",
            "tokenizer_config.json present but tokenizer.json missing",
        );
    }
}
