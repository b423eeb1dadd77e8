//! Small helpers: ids, clocks, signals. (Durations are parsed by
//! `tanto_core::duration`, the one duration grammar.)

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
