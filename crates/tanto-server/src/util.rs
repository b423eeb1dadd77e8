//! Small helpers: ids, clocks, durations, signals.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 128 random-looking bits as 32 hex digits (SipHash with per-process random
/// keys over a counter and the clock: unique, unguessable enough for ids).
pub fn random_hex() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let mut a = RandomState::new().build_hasher();
    a.write_u64(n);
    a.write_u64(t);
    let mut b = RandomState::new().build_hasher();
    b.write_u64(t ^ 0x9e37_79b9_7f4a_7c15);
    b.write_u64(n);
    format!("{:016x}{:016x}", a.finish(), b.finish())
}

/// A fresh request id.
pub fn new_request_id() -> String {
    format!("req_{}", random_hex())
}

/// Accept a client's `X-Request-ID` if it is short and plain.
pub fn sane_request_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=')
        })
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `300`, `300s`, `5m`, `1h30m`, `1.5h`, `250ms`, `0` → a duration.
/// A bare number means seconds. Negative or malformed values are refused.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let s = raw.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    if let Ok(v) = s.parse::<f64>() {
        return (v >= 0.0 && v.is_finite()).then(|| Duration::from_secs_f64(v));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        let mult = match unit.as_str() {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" => 86400.0,
            _ => return None,
        };
        total += v * mult;
        any = true;
    }
    if !num.is_empty() || !any || !total.is_finite() {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits at once
/// (status 130). The handlers are installed when this is called (inside a
/// runtime), not when the future is first polled.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut sigs = Signals::install();
    async move {
        sigs.wait().await;
        tracing::info!(
            "shutdown signal received; finishing in-flight requests (signal again to exit now)"
        );
        tokio::spawn(async move {
            sigs.wait().await;
            eprintln!("tanto serve: second signal, exiting now");
            std::process::exit(130);
        });
    }
}

#[cfg(unix)]
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn wait(&mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.term) => {}
            _ = recv(&mut self.int) => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Self {
        Signals
    }
    async fn wait(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5m3"), None);
    }

    #[test]
    fn ids() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert!(sane_request_id(&a));
        assert!(!sane_request_id("a b"));
        assert!(!sane_request_id(""));
        assert!(!sane_request_id(&"x".repeat(200)));
    }
}
