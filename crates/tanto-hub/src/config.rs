use std::path::PathBuf;

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where to talk to and where to write: resolved the way `huggingface_hub` resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// `HF_ENDPOINT` (trailing `/` removed), default [`DEFAULT_ENDPOINT`].
    pub endpoint: String,
    /// `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else `HUGGINGFACE_HUB_TOKEN`, else the
    /// token file (`$HF_TOKEN_PATH`, else `$HF_HOME/token`).
    pub token: Option<String>,
    /// The hub cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`, ...).
    pub cache_dir: PathBuf,
    /// `HF_HUB_OFFLINE` is `1`/`ON`/`YES`/`TRUE`.
    pub offline: bool,
}

/// `huggingface_hub`'s truthiness for env flags.
pub fn is_truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

impl HubConfig {
    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any key → value lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let endpoint = non_empty("HF_ENDPOINT")
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let token = non_empty("HF_TOKEN")
            .or_else(|| non_empty("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| non_empty("HUGGINGFACE_HUB_TOKEN"))
            .map(|t| t.trim().to_string())
            .or_else(|| {
                let path = non_empty("HF_TOKEN_PATH")
                    .map(|p| tanto_core::paths::expand_tilde(&p))
                    .unwrap_or_else(|| hf_home(&non_empty).join("token"));
                std::fs::read_to_string(path)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            });
        let cache_dir = non_empty("HF_HUB_CACHE")
            .or_else(|| non_empty("HUGGINGFACE_HUB_CACHE"))
            .map(|c| tanto_core::paths::expand_tilde(&c))
            .unwrap_or_else(|| hf_home(&non_empty).join("hub"));
        let offline = get("HF_HUB_OFFLINE").is_some_and(|v| is_truthy(&v));
        HubConfig {
            endpoint,
            token,
            cache_dir,
            offline,
        }
    }
}

fn hf_home(non_empty: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(h) = non_empty("HF_HOME") {
        return tanto_core::paths::expand_tilde(&h);
    }
    if let Some(x) = non_empty("XDG_CACHE_HOME") {
        return tanto_core::paths::expand_tilde(&x).join("huggingface");
    }
    non_empty("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("huggingface")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> HubConfig {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_precedence() {
        let c = cfg(&[("HOME", "/h")]);
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(c.cache_dir, PathBuf::from("/h/.cache/huggingface/hub"));
        assert!(!c.offline);
        let c = cfg(&[
            ("HF_ENDPOINT", "http://127.0.0.1:9/"),
            ("HF_HOME", "/x"),
            ("HUGGING_FACE_HUB_TOKEN", "old"),
            ("HUGGINGFACE_HUB_TOKEN", "older"),
            ("HF_HUB_OFFLINE", "yes"),
        ]);
        assert_eq!(c.endpoint, "http://127.0.0.1:9");
        assert_eq!(c.cache_dir, PathBuf::from("/x/hub"));
        assert_eq!(c.token.as_deref(), Some("old"));
        assert!(c.offline);
        let c = cfg(&[("HF_TOKEN", "new"), ("HUGGING_FACE_HUB_TOKEN", "old")]);
        assert_eq!(c.token.as_deref(), Some("new"));
        let c = cfg(&[("HF_HUB_CACHE", "/c"), ("HF_HUB_OFFLINE", "0")]);
        assert_eq!(c.cache_dir, PathBuf::from("/c"));
        assert!(!c.offline);
    }

    #[test]
    fn token_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("token"), "hf_abc\n").unwrap();
        let home = d.path().to_str().unwrap();
        let c = cfg(&[("HF_HOME", home)]);
        assert_eq!(c.token.as_deref(), Some("hf_abc"));
        let c = cfg(&[("HF_HOME", home), ("HF_TOKEN", "env")]);
        assert_eq!(c.token.as_deref(), Some("env"));
    }
}
