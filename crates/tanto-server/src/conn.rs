//! The connection layer under the router: accept TCP connections, serve each
//! with hyper (HTTP/1.1), and keep a flood of sockets from taking the server
//! down. Open connections are capped; at the cap the longest-idle connection
//! (no request in flight) is closed to make room, and only when every
//! connection is busy is the new one refused with a 503. A connection with
//! no request in flight, including one still trickling its request headers,
//! is closed after the idle timeout. So a thousand idle sockets cannot make
//! `/health` unreachable, and the process never runs out of file descriptors
//! for the models it loads.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tanto_core::error::ErrorType;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::error::ApiError;

/// Descriptors kept free for model files, logs and the listener when the
/// connection cap is fitted to the open-file limit.
const FD_RESERVE: u64 = 128;

/// One open connection, as the accept loop sees it.
struct ConnState {
    id: u64,
    /// Requests whose response has not finished (streams included).
    in_flight: AtomicUsize,
    last_active: Mutex<Instant>,
    evict: Notify,
}

impl ConnState {
    fn touch(&self) {
        if let Ok(mut t) = self.last_active.lock() {
            *t = Instant::now();
        }
    }

    /// How long the connection has had nothing in flight (zero while busy).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        self.last_active
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }
}

type Registry = Arc<Mutex<HashMap<u64, Arc<ConnState>>>>;

/// Marks a request in flight until its response body is dropped.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn begin(c: Arc<ConnState>) -> Self {
        c.in_flight.fetch_add(1, Ordering::SeqCst);
        c.touch();
        Self(c)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight.
struct Tracked {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Connection limits, fitted to the process's open-file limit.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn new(max_connections: usize, idle_timeout: Duration) -> Self {
        let max_connections = match fd_limit() {
            Some(n) if (n.saturating_sub(FD_RESERVE) as usize) < max_connections => {
                let fitted = (n.saturating_sub(FD_RESERVE) as usize).max(8);
                tracing::warn!(
                    requested = max_connections,
                    fitted,
                    open_file_limit = n,
                    "the open-file limit is low; capping connections to fit (raise `ulimit -n`)"
                );
                fitted
            }
            _ => max_connections,
        };
        Self {
            max_connections,
            idle_timeout,
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Accept and serve until `shutdown` turns true; then stop accepting, let
/// every connection finish its in-flight response, and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let registry: Registry = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: the cap should prevent them; back off.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        while tasks.try_join_next().is_some() {}
        if !make_room(&registry, limits.max_connections) {
            refuse(stream, limits.max_connections);
            continue;
        }
        let state = Arc::new(ConnState {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
            evict: Notify::new(),
        });
        if let Ok(mut r) = registry.lock() {
            r.insert(state.id, state.clone());
        }
        tasks.spawn(serve_conn(
            stream,
            router.clone(),
            state,
            limits.idle_timeout,
            shutdown.clone(),
            registry.clone(),
        ));
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// Resolves once the shutdown flag is set (the borrow ends inside, so the
/// future stays Send).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Below the cap: true. At it: close the longest-idle connection and return
/// true, or return false when every connection has a request in flight.
fn make_room(registry: &Registry, cap: usize) -> bool {
    let Ok(mut r) = registry.lock() else {
        return false;
    };
    if r.len() < cap {
        return true;
    }
    let victim = r
        .values()
        .filter(|c| c.in_flight.load(Ordering::SeqCst) == 0)
        .max_by_key(|c| c.idle_for())
        .map(|c| c.id);
    match victim.and_then(|id| r.remove(&id)) {
        Some(c) => {
            tracing::debug!(
                conn = c.id,
                "connection cap reached; closing an idle connection"
            );
            c.evict.notify_one();
            true
        }
        None => false,
    }
}

/// Answer 503 without reading the request, and close (best effort, never waits).
fn refuse(stream: TcpStream, cap: usize) {
    let rid = crate::util::new_request_id();
    let body = ApiError::new(
        ErrorType::InternalError,
        format!(
            "This server has {cap} connections busy (its limit, --max-connections); retry shortly"
        ),
    )
    .with_code("too_many_connections")
    .body(&rid)
    .to_string();
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nx-request-id: {rid}\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tracing::warn!(limit = cap, "connection refused: every connection is busy");
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            let _ = stream.write_all(resp.as_bytes()).await;
            let _ = stream.shutdown().await;
        })
        .await;
    });
}

async fn serve_conn(
    stream: TcpStream,
    router: Router,
    state: Arc<ConnState>,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    registry: Registry,
) {
    let _ = stream.set_nodelay(true);
    let svc_state = state.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let router = router.clone();
        let guard = InFlight::begin(svc_state.clone());
        async move {
            let resp = match router.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(resp.map(|inner| Tracked {
                inner,
                _guard: guard,
            }))
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(
        (idle_timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(5)),
    );
    let mut draining = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = state.evict.notified() => break,
            _ = stopped(&mut shutdown), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                if state.idle_for() >= idle_timeout {
                    break;
                }
            }
        }
    }
    if let Ok(mut r) = registry.lock() {
        r.remove(&state.id);
    }
}

/// The soft open-file limit, when the platform says.
fn fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass and nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            #[allow(clippy::unnecessary_cast)] // rlim_t is u32 on some 32-bit targets
            return Some(lim.rlim_cur as u64);
        }
    }
    None
}

/// Raise the soft open-file limit to the hard one (many systems start
/// servers at 1,024), so the connection cap, not the limit, decides.
pub fn raise_fd_limit() {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write only the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= lim.rlim_max {
                return;
            }
            let want = lim.rlim_max;
            lim.rlim_cur = want;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                // macOS refuses more than OPEN_MAX when the hard limit is unlimited.
                lim.rlim_cur = want.min(10_240);
                let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}
