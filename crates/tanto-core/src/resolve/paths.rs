//! Where models live: the Hugging Face hub cache and the workspace home.
//!
//! Precedence follows huggingface_hub exactly: `HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `~/.cache/huggingface/hub` (with `XDG_CACHE_HOME`
//! honoured the way huggingface_hub honours it).

use std::env;
use std::path::{Path, PathBuf};

fn non_empty_env(key: &str) -> Option<String> {
    env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// The user's home directory (`$HOME`), if set.
pub fn home_dir() -> Option<PathBuf> {
    non_empty_env("HOME").map(PathBuf::from)
}

/// Expand a leading `~` or `~/`.
pub fn expand_tilde(p: &str) -> PathBuf {
    if p == "~" {
        return home_dir().unwrap_or_else(|| PathBuf::from(p));
    }
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(h) = home_dir() {
            return h.join(rest);
        }
    }
    PathBuf::from(p)
}

/// `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
pub fn hf_home() -> PathBuf {
    if let Some(h) = non_empty_env("HF_HOME") {
        return expand_tilde(&h);
    }
    if let Some(x) = non_empty_env("XDG_CACHE_HOME") {
        return expand_tilde(&x).join("huggingface");
    }
    home_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("huggingface")
}

/// The hub cache directory that holds `models--org--name` folders.
pub fn hub_cache() -> PathBuf {
    if let Some(c) = non_empty_env("HF_HUB_CACHE") {
        return expand_tilde(&c);
    }
    if let Some(c) = non_empty_env("HUGGINGFACE_HUB_CACHE") {
        return expand_tilde(&c);
    }
    hf_home().join("hub")
}

/// `TANTO_WORKSPACE_HOME`, else `MLXK_WORKSPACE_HOME`; only if it is an existing directory.
pub fn workspace_home() -> Option<PathBuf> {
    let raw =
        non_empty_env("TANTO_WORKSPACE_HOME").or_else(|| non_empty_env("MLXK_WORKSPACE_HOME"))?;
    let p = expand_tilde(&raw);
    p.is_dir().then_some(p)
}

/// Same as [`workspace_home`] but without requiring that it exists (clone targets).
pub fn workspace_home_configured() -> Option<PathBuf> {
    non_empty_env("TANTO_WORKSPACE_HOME")
        .or_else(|| non_empty_env("MLXK_WORKSPACE_HOME"))
        .map(|raw| expand_tilde(&raw))
}

/// Replace the user's home directory prefix with `~` (for logs and messages).
pub fn redact_home(p: &Path) -> String {
    if let Some(h) = home_dir() {
        if let Ok(rest) = p.strip_prefix(&h) {
            return format!("~/{}", rest.display());
        }
    }
    p.display().to_string()
}
