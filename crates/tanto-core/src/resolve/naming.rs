//! The mechanical bijection between repo ids and hub-cache folder names.
//!
//! `org/name` ↔ `models--org--name`. Corrupted entries convert visibly rather
//! than being hidden (`models--org----x` → `org//x`).

/// Prefix of every model folder in the hub cache.
pub const MODEL_PREFIX: &str = "models--";

/// `org/name` → `models--org--name` (input already prefixed is returned as is).
pub fn repo_to_cache_dir(repo: &str) -> String {
    if repo.starts_with(MODEL_PREFIX) {
        return repo.to_string();
    }
    format!("{MODEL_PREFIX}{}", repo.replace('/', "--"))
}

/// `models--org--name` → `org/name` (input without the prefix is returned as is).
pub fn cache_dir_to_repo(dir: &str) -> String {
    match dir.strip_prefix(MODEL_PREFIX) {
        Some(rest) => rest.replace("--", "/"),
        None => dir.to_string(),
    }
}

/// A full 40-hex git commit id.
pub fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Validate a repo id for hub operations: non-empty, ≤ 96 chars, no leading,
/// trailing or double slashes, and only the characters the hub allows.
pub fn validate_repo_id(repo: &str) -> Result<(), String> {
    let r = repo.trim();
    if r.is_empty() {
        return Err("invalid model name: empty".into());
    }
    if r.len() > 96 || r.starts_with('/') || r.ends_with('/') || r.contains("//") {
        return Err(
            "invalid model name: must be at most 96 characters, without leading, trailing or double slashes"
                .into(),
        );
    }
    if r.split('/').count() > 2 {
        return Err(format!("invalid model name '{r}': expected 'org/name'"));
    }
    if r.contains("..") || r.contains("--") {
        return Err(format!(
            "invalid model name '{r}': '..' and '--' are not allowed"
        ));
    }
    if !r
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
    {
        return Err(format!(
            "invalid model name '{r}': only letters, digits, '-', '_', '.' and one '/' are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bijection_round_trips() {
        for r in ["org/name", "a/b.c-d_e", "single"] {
            assert_eq!(cache_dir_to_repo(&repo_to_cache_dir(r)), r);
        }
        assert_eq!(repo_to_cache_dir("org/name"), "models--org--name");
        assert_eq!(repo_to_cache_dir("models--x--y"), "models--x--y");
        assert_eq!(cache_dir_to_repo("plain"), "plain");
        assert_eq!(cache_dir_to_repo("models--org----model"), "org//model");
        assert_eq!(cache_dir_to_repo("models--"), "");
    }

    #[test]
    fn commit_hash() {
        assert!(is_commit_hash(&"a".repeat(40)));
        assert!(!is_commit_hash(&"a".repeat(39)));
        assert!(!is_commit_hash(&"g".repeat(40)));
    }

    #[test]
    fn repo_validation() {
        assert!(validate_repo_id("org/name").is_ok());
        assert!(validate_repo_id("").is_err());
        assert!(validate_repo_id("/x").is_err());
        assert!(validate_repo_id("a//b").is_err());
        assert!(validate_repo_id(&"a".repeat(97)).is_err());
        assert!(validate_repo_id("a/b/c").is_err());
        assert!(validate_repo_id("../etc").is_err());
        assert!(validate_repo_id("a/b c").is_err());
    }
}
