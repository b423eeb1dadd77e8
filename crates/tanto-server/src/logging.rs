//! Logging: `tracing` to stderr, human or JSON lines, with Hugging Face
//! tokens (`hf_…`) and the user's home directory redacted from every line.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Replace `hf_` tokens (30+ alphanumerics, any case) with `[REDACTED_TOKEN]`
/// and the home directory (`$HOME`) with `~`.
pub fn redact(s: &str) -> String {
    let tokens = redact_tokens(s);
    match tanto_core::paths::home_dir() {
        Some(h) => {
            let h = h.to_string_lossy();
            let h = h.trim_end_matches('/');
            if h.len() > 1 {
                tokens.replace(h, "~")
            } else {
                tokens
            }
        }
        None => tokens,
    }
}

fn redact_tokens(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i + 3 <= b.len() {
        let at_start = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if at_start && b[i..i + 3].eq_ignore_ascii_case(b"hf_") {
            let mut j = i + 3;
            while j < b.len() && b[j].is_ascii_alphanumeric() {
                j += 1;
            }
            if j - (i + 3) >= 30 {
                out.push_str(&s[last..i]);
                out.push_str("[REDACTED_TOKEN]");
                last = j;
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&s[last..]);
    out
}

/// Buffers one log record and writes it, redacted, to stderr on drop.
pub struct RedactingWriter {
    buf: Vec<u8>,
}

impl Write for RedactingWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = redact(&String::from_utf8_lossy(&self.buf));
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

#[derive(Clone, Copy, Default)]
pub struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            buf: Vec::with_capacity(256),
        }
    }
}

/// Install the global subscriber: `level` (`info`, `debug`, or any EnvFilter
/// directive; `RUST_LOG` wins when set), human-readable or JSON lines on
/// stderr, redacted. Errors if a subscriber is already installed.
pub fn init_logging(level: &str, json: bool) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(v)?,
        _ => {
            let lvl = if level.trim().is_empty() {
                "info"
            } else {
                level.trim()
            };
            let lvl = match lvl.to_ascii_lowercase().as_str() {
                "warning" => "warn".to_string(),
                "critical" => "error".to_string(),
                other => other.to_string(),
            };
            EnvFilter::try_new(format!("{lvl},hyper=warn,h2=warn,tower=warn"))?
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_target(false);
    let res = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    res.map_err(|e| anyhow::anyhow!("logging already initialised: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted() {
        let tok = format!("hf_{}", "a1B2".repeat(9));
        let s = format!("token={tok} end");
        assert_eq!(redact_tokens(&s), "token=[REDACTED_TOKEN] end");
        let upper = format!("HF_{}", "Z".repeat(34));
        assert_eq!(redact_tokens(&upper), "[REDACTED_TOKEN]");
        // Too short, or glued to a word: left alone.
        assert_eq!(redact_tokens("hf_short"), "hf_short");
        let glued = format!("xhf_{}", "a".repeat(40));
        assert_eq!(redact_tokens(&glued), glued);
        assert_eq!(redact_tokens("héllo hf_"), "héllo hf_");
    }

    #[test]
    fn home_is_redacted() {
        if let Some(h) = tanto_core::paths::home_dir() {
            let h = h.to_string_lossy().to_string();
            if h.len() > 1 {
                let s = format!("loading {h}/.cache/x");
                assert_eq!(redact(&s), "loading ~/.cache/x");
            }
        }
    }
}
