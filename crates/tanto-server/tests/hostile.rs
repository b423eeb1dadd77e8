//! Hostile input never takes tanto serve down (issue 9). One test per
//! reported defect: each sends the hostile thing, asserts the typed refusal,
//! and then asserts the server still answers `/health` and a normal chat.
//! Loopback only; every loop and wait is bounded.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const CHAT: &str = "test/fake-chat";
const CHILD_ENV: &str = "TANTO_HOSTILE_CHILD";

/// The server is alive and well: `/health` is 200 and a chat completes.
async fn still_serving(base: &str) {
    let c = client();
    let r = c
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status(), 200, "/health after the hostile input");
    let r = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&chat_body(CHAT, "hi count=2", false))
        .send()
        .await
        .expect("chat");
    assert_eq!(r.status(), 200, "a normal chat after the hostile input");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "t0 t1 ");
}

async fn err_of(r: reqwest::Response) -> (u16, Value) {
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{st}: not JSON ({e}): {text}"));
    assert!(v["error"]["type"].is_string(), "typed error: {v}");
    assert!(v["request_id"].is_string(), "{v}");
    (st, v)
}

// ---------------------------------------------------------------------------
// Child servers (the fake engine, run through run_blocking like `tanto serve`)

#[test]
#[ignore = "helper: runs as a child process of the hostile tests"]
fn child_server() {
    let Some(mode) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    // Like `tanto`'s main(): the default SIGPIPE, so a write to a reset
    // connection kills the process unless serving ignores it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    if mode == "fdlimit" {
        // A host where the open-file limit is low and cannot be raised.
        let lim = libc::rlimit {
            rlim_cur: 256,
            rlim_max: 256,
        };
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    }
    let fx = Fixture::new();
    let mut cfg = base_config(&fx);
    cfg.log_level = "warn".into();
    let counters = Arc::new(Counters::default());
    let res = tanto_server::run_blocking_with_loader(cfg, Arc::new(FakeLoader(counters)));
    std::process::exit(if res.is_ok() { 0 } else { 1 });
}

struct Child {
    child: std::process::Child,
    port: u16,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Child {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the process ignores SIGPIPE (Linux: `SigIgn` in /proc).
    fn ignores_sigpipe(&self) -> Option<bool> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())?;
        Some(mask & (1 << (libc::SIGPIPE - 1)) != 0)
    }

    /// Peak resident memory of the process so far (Linux `VmHWM`), in bytes.
    fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    fn assert_alive(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!("the server process died: {st}");
        }
    }
}

/// Wait for `listening on http://127.0.0.1:PORT` on a child's stderr.
fn wait_port(mut child: std::process::Child) -> Child {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                    let _ = tx.send(rest.trim().parse::<u16>().unwrap());
                    sent = true;
                }
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server printed its listening line");
    Child { child, port }
}

fn spawn_child(mode: &str) -> Child {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_server",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_port(child)
}

// ---------------------------------------------------------------------------
// 1. SIGPIPE: a reset connection must not kill the process.

/// Stream a chat with `/health` pipelined behind it, read the first bytes,
/// then reset the connection (SO_LINGER 0) while the server keeps writing.
fn pipelined_reset(port: u16, model: &str, prompt: &str, wait_first_event: bool) {
    let body = json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": true,
        "max_tokens": 200,
    })
    .to_string();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        body.len()
    );
    let mut s = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let mut seen = String::new();
    if !wait_first_event {
        // Reset while the server is still reading and preparing.
        std::thread::sleep(Duration::from_millis(20));
        return reset(s);
    }
    while !seen.contains("data: ") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended before its first event: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    reset(s);
}

/// Close with SO_LINGER 0: the peer gets a RST, not a FIN.
fn reset(s: StdTcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `l` (of the size given) on our own open socket.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(s);
}

#[test]
fn sigpipe_reset_connection_does_not_kill_the_server() {
    let mut c = spawn_child("sigpipe");
    // The child starts with SIGPIPE at its default, as `tanto` does; serving
    // must have switched it to ignored. (Whether a reset kills a process
    // that does not depends on the kernel returning EPIPE rather than
    // ECONNRESET to the write, so the disposition is checked directly too.)
    if let Some(ignored) = c.ignores_sigpipe() {
        assert!(ignored, "the serving process must ignore SIGPIPE");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    for i in 0..6 {
        let port = c.port;
        std::thread::spawn(move || {
            pipelined_reset(port, CHAT, "count=100000 delay=20", i % 2 == 0)
        })
        .join()
        .unwrap();
        // Let the server write into the reset socket for a while.
        std::thread::sleep(Duration::from_millis(300));
        c.assert_alive();
    }
    rt.block_on(still_serving(&c.base()));
    c.assert_alive();
}

fn tanto_bin() -> Option<PathBuf> {
    if let Some(b) = std::env::var_os("TANTO_BIN") {
        return Some(PathBuf::from(b));
    }
    // target/<profile>/deps/hostile-… → target/<profile>/tanto
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("tanto");
    bin.is_file().then_some(bin)
}

fn test_model() -> Option<PathBuf> {
    let root = std::env::var_os("TANTO_TEST_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tanto/test-models"))
        })?;
    let f = root
        .join("smollm2-135m-instruct-gguf")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf");
    f.is_file().then_some(f)
}

fn skip(reason: &str) {
    if std::env::var_os("TANTO_REQUIRE_TEST_MODELS").is_some_and(|v| !v.is_empty()) {
        panic!("TANTO_REQUIRE_TEST_MODELS is set but {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

const REAL_ID: &str = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF";

/// The same reset against the real `tanto serve` binary and the real model.
#[test]
fn sigpipe_real_binary_survives_a_reset_stream() {
    // A missing or older binary is not a failure of this crate (the shared
    // target dir may hold another checkout's build): say so and stop.
    let Some(bin) = tanto_bin() else {
        return eprintln!("SKIPPED: no tanto binary (set TANTO_BIN or build the tanto crate)");
    };
    let help = Command::new(&bin)
        .args(["serve", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !help.contains("--allowed-host") {
        return eprintln!(
            "SKIPPED: {} predates this change set (rebuild it: cargo build -p tanto)",
            bin.display()
        );
    }
    let Some(model) = test_model() else {
        return skip("the SmolLM2 test model is absent");
    };
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot_dir(&dir.path().join("hub"), REAL_ID);
    std::os::unix::fs::symlink(&model, snap.join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let child = Command::new(&bin)
        .args([
            "serve",
            "--port",
            "0",
            "--model",
            REAL_ID,
            "--threads",
            "1",
            "--log-level",
            "warn",
        ])
        .env("HF_HUB_CACHE", dir.path().join("hub"))
        .env_remove("TANTO_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut c = wait_port(child);
    if let Some(ignored) = c.ignores_sigpipe() {
        assert!(ignored, "tanto serve must ignore SIGPIPE");
    }
    for _ in 0..2 {
        pipelined_reset(c.port, REAL_ID, "Count from one to one hundred.", true);
        std::thread::sleep(Duration::from_millis(500));
        c.assert_alive();
    }
    let r = reqwest::blocking::get(format!("{}/health", c.base())).unwrap();
    assert_eq!(r.status(), 200);
    c.assert_alive();
}

// ---------------------------------------------------------------------------
// 4. Prompt size: refused before any tokenizing, and big bodies by the limit.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_prompts_are_refused_cheaply() {
    let s = TestServer::start(|_| {}).await;
    assert_eq!(
        tanto_server::DEFAULT_BODY_LIMIT,
        8 * 1024 * 1024,
        "documented default"
    );
    // Over the default body limit (the 20 MiB of the report): 413 at once.
    let t0 = Instant::now();
    let big = chat_body(CHAT, &"a ".repeat(10 << 20), false);
    let (st, v) = err_of(
        client()
            .post(s.url("/v1/chat/completions"))
            .json(&big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 413);
    assert_eq!(v["error"]["type"], "payload_too_large");
    drop(big);
    // Under the body limit but far beyond what the context (256 tokens) can
    // hold: 400 context_length_exceeded, and the tokenizer never runs.
    for endpoint in ["/v1/chat/completions", "/v1/completions"] {
        let text = "a ".repeat(3 << 20);
        let body = if endpoint == "/v1/completions" {
            json!({"model": CHAT, "prompt": text})
        } else {
            chat_body(CHAT, &text, false)
        };
        let (st, v) = err_of(
            client()
                .post(s.url(endpoint))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 400, "{v}");
        assert_eq!(v["error"]["code"], "context_length_exceeded");
        let param = if endpoint == "/v1/completions" {
            "prompt"
        } else {
            "messages"
        };
        assert_eq!(v["error"]["param"], param);
    }
    // Many tiny messages count too (the template adds markup to each).
    let many: Vec<Value> = (0..20_000)
        .map(|_| json!({"role": "user", "content": ""}))
        .collect();
    let (st, v) = err_of(
        client()
            .post(s.url("/v1/chat/completions"))
            .json(&json!({"model": CHAT, "messages": many}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(
        s.counters.tokenized.load(Ordering::SeqCst),
        0,
        "refused before tokenizing"
    );
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    still_serving(&s.base).await;
}

/// The real tokenizer: a prompt just under the body limit is refused in
/// well under a second instead of being tokenized.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_prompt_real_model_is_refused_fast() {
    let Some(model) = test_model() else {
        return skip("the SmolLM2 test model is absent");
    };
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot_dir(&dir.path().join("hub"), REAL_ID);
    std::os::unix::fs::symlink(&model, snap.join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let cfg = tanto_server::ServeConfig {
        port: 0,
        model: Some(REAL_ID.into()),
        threads: Some(1),
        stores: Some(tanto_core::resolve::Stores {
            cache: dir.path().join("hub"),
            workspace_home: None,
        }),
        ..tanto_server::ServeConfig::default()
    };
    let server = tanto_server::Server::bind(cfg).await.expect("bind");
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let text = "lorem ipsum ".repeat(600_000); // ~7 MiB
    let t0 = Instant::now();
    let (st, v) = err_of(
        client()
            .post(format!("{base}/v1/chat/completions"))
            .json(&chat_body(REAL_ID, &text, false))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let took = t0.elapsed();
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert!(took < Duration::from_secs(15), "refusal took {took:?}");
    let r = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": REAL_ID, "messages": [{"role":"user","content":"Hi"}], "max_tokens": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
}

// ---------------------------------------------------------------------------
// 5. Host header (DNS rebinding) and the JSON content type.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_header_is_403() {
    let s = TestServer::start(|c| c.allowed_hosts = vec!["models.lan".into()]).await;
    let port = s.base.rsplit(':').next().unwrap().to_string();
    for path in ["/health", "/v1/models"] {
        let r = client()
            .get(s.url(path))
            .header("Host", format!("evil.example:{port}"))
            .send()
            .await
            .unwrap();
        let (st, v) = err_of(r).await;
        assert_eq!(st, 403, "{path}");
        assert_eq!(v["error"]["type"], "access_denied");
        assert_eq!(v["error"]["code"], "host_not_allowed");
    }
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("Host", "attacker.example")
        .json(&chat_body(CHAT, "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(s.counters.loads.load(Ordering::SeqCst), 0, "nothing loaded");
    for ok in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("models.lan:{port}"),
    ] {
        let r = client()
            .get(s.url("/health"))
            .header("Host", ok.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{ok}");
    }
    still_serving(&s.base).await;
    // `*` turns the check off.
    let any = TestServer::start(|c| c.allowed_hosts = vec!["*".into()]).await;
    let r = client()
        .get(any.url("/health"))
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_from_foreign_web_pages_are_403() {
    // A page's multipart form needs no CORS preflight, so only the Origin
    // check keeps it from loading models through /v1/audio/*.
    let s = TestServer::start(|_| {}).await;
    let port = s.base.rsplit(':').next().unwrap().to_string();
    for (path, multipart) in [
        ("/v1/audio/transcriptions", true),
        ("/v1/audio/translations", true),
        ("/v1/chat/completions", false),
        ("/v1/embeddings", false),
    ] {
        for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
            let rb = client().post(s.url(path)).header("Origin", origin);
            let rb = if multipart {
                rb.header("content-type", "multipart/form-data; boundary=XX")
                    .body("--XX\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--XX--\r\n")
            } else {
                rb.json(&chat_body(CHAT, "hi", false))
            };
            let (st, v) = err_of(rb.send().await.unwrap()).await;
            assert_eq!(st, 403, "{path} {origin}: {v}");
            assert_eq!(v["error"]["code"], "origin_not_allowed", "{path}");
            assert_eq!(v["error"]["type"], "access_denied");
        }
    }
    assert_eq!(s.counters.loads.load(Ordering::SeqCst), 0, "nothing loaded");
    // The server's own origin and clients without Origin are served.
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("Origin", format!("http://127.0.0.1:{port}"))
        .json(&chat_body(CHAT, "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    still_serving(&s.base).await;
    // --cors-origin lists the pages that may.
    let cors = TestServer::start(|c| c.cors_origins = vec!["https://app.example".into()]).await;
    let r = client()
        .post(cors.url("/v1/chat/completions"))
        .header("Origin", "https://app.example")
        .json(&chat_body(CHAT, "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_routes_need_a_json_content_type() {
    let s = TestServer::start(|_| {}).await;
    let body = chat_body(CHAT, "hi count=1", false).to_string();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        for path in ["/v1/chat/completions", "/v1/completions"] {
            let mut rb = client().post(s.url(path)).body(body.clone());
            if let Some(ct) = ct {
                rb = rb.header("content-type", ct);
            }
            let (st, v) = err_of(rb.send().await.unwrap()).await;
            assert_eq!(st, 415, "{ct:?} {path}");
            assert_eq!(v["error"]["type"], "invalid_request_error");
            assert_eq!(v["error"]["code"], "unsupported_media_type");
        }
    }
    assert_eq!(s.counters.loads.load(Ordering::SeqCst), 0);
    for ct in ["application/json; charset=utf-8", "Application/JSON"] {
        let r = client()
            .post(s.url("/v1/chat/completions"))
            .header("content-type", ct)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{ct}");
    }
    still_serving(&s.base).await;
}

// ---------------------------------------------------------------------------
// 6. Connection exhaustion.

fn idle_sockets(port: u16, n: usize) -> Vec<StdTcpStream> {
    (0..n)
        .filter_map(|_| StdTcpStream::connect(("127.0.0.1", port)).ok())
        .collect()
}

fn port_of(base: &str) -> u16 {
    base.rsplit(':').next().unwrap().parse().unwrap()
}

/// Whether the server closed this socket within `within`.
fn closed_by_server(mut s: &StdTcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_socket_flood_leaves_health_reachable() {
    let s = TestServer::start(|c| {
        c.max_connections = 32;
        c.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let port = port_of(&s.base);
    let held = tokio::task::spawn_blocking(move || idle_sockets(port, 200))
        .await
        .unwrap();
    assert!(held.len() >= 150, "opened {} sockets", held.len());
    let t0 = Instant::now();
    let r = client().get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    still_serving(&s.base).await;
    // The oldest idle sockets were closed to make room.
    let closed = tokio::task::spawn_blocking(move || {
        held.iter()
            .take(5)
            .filter(|s| closed_by_server(s, Duration::from_secs(3)))
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 5, "idle sockets beyond the cap are closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_time_out() {
    let s = TestServer::start(|c| c.idle_timeout = Duration::from_millis(500)).await;
    let port = port_of(&s.base);
    let (slow, silent, kept) = tokio::task::spawn_blocking(move || {
        let mut slow = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
        let silent = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
        // A keep-alive connection after one answered request.
        let mut kept = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
        kept.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let t0 = Instant::now();
        let r = (
            closed_by_server(&slow, Duration::from_secs(5)),
            closed_by_server(&silent, Duration::from_secs(5)),
            closed_by_server(&kept, Duration::from_secs(5)),
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
        r
    })
    .await
    .unwrap();
    assert!(slow, "a connection trickling its headers is closed");
    assert!(silent, "a connection that sends nothing is closed");
    assert!(kept, "an idle keep-alive connection is closed");
    still_serving(&s.base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_connections_busy_refuses_with_503() {
    let s = TestServer::start(|c| {
        c.max_connections = 2;
        c.max_loaded = 2;
    })
    .await;
    let mut streams = Vec::new();
    // Two models, so both streams run at once (one model's queue is FIFO);
    // each runs for its whole context (~250 tokens × 50 ms) unless dropped.
    for model in [CHAT, "test/fake-chat-2"] {
        // One client per stream, so each holds its own connection.
        let c = client();
        let r = c
            .post(s.url("/v1/chat/completions"))
            .json(&chat_body(model, "count=100000 delay=50", true))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut rd = SseReader::new(r);
        rd.next().await.expect("first event");
        streams.push((c, rd));
    }
    let t0 = Instant::now();
    let r = client().get(s.url("/health")).send().await;
    match r {
        Ok(r) => {
            let (st, v) = err_of(r).await;
            assert_eq!(st, 503);
            assert_eq!(v["error"]["code"], "too_many_connections");
        }
        // The refusal may race the request; a prompt close is acceptable.
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(15), "refused promptly");
    drop(streams);
    assert!(
        eventually(Duration::from_secs(5), || s
            .counters
            .running
            .load(Ordering::SeqCst)
            == 0)
        .await
    );
    still_serving(&s.base).await;
}

/// The reported setting: a low open-file limit that cannot be raised, and
/// more idle sockets than it allows.
#[test]
fn low_fd_limit_survives_more_idle_sockets_than_descriptors() {
    let mut c = spawn_child("fdlimit");
    let held = idle_sockets(c.port, 300);
    assert!(held.len() >= 280, "opened {}", held.len());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t0 = Instant::now();
    rt.block_on(still_serving(&c.base()));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    c.assert_alive();
    drop(held);
}

// ---------------------------------------------------------------------------
// 7. A model whose own chat template is hostile (the real engine, a tiny
//    synthetic GGUF): that request gets a typed 422 quickly; the server and
//    the same loaded model keep serving plain completions.

/// (name, template, words the error message must contain)
const HOSTILE_TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "doubling",
        "{% set s = 'x' %}{% for m in messages %}{% for i in range(64) %}{% set s = s ~ s %}{% endfor %}{% endfor %}{{ s }}",
        "output size",
    ),
    (
        "tojson-indent",
        "{{ messages | tojson(indent=1000000000) }}",
        "output size",
    ),
    (
        "nested-loops",
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ '' }}{% endfor %}{% endfor %}",
        "instruction",
    ),
    (
        "recursion",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "recursion",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_chat_template_fails_its_request_and_the_model_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hub");
    for (name, template, _) in HOSTILE_TEMPLATES {
        let snap = snapshot_dir(&hub, &format!("test/hostile-{name}"));
        let bytes = tanto_testkit::presets::gguf_builder("llama")
            .str("tokenizer.chat_template", template)
            .build();
        std::fs::write(snap.join("hostile.Q4_0.gguf"), bytes).unwrap();
    }
    let cfg = tanto_server::ServeConfig {
        port: 0,
        threads: Some(1),
        max_loaded: HOSTILE_TEMPLATES.len(),
        stores: Some(tanto_core::resolve::Stores {
            cache: hub,
            workspace_home: None,
        }),
        ..tanto_server::ServeConfig::default()
    };
    let server = tanto_server::Server::bind(cfg).await.expect("bind");
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let c = client();
    for (name, _, limit) in HOSTILE_TEMPLATES {
        let model = format!("test/hostile-{name}");
        let t0 = Instant::now();
        let (st, v) = err_of(
            c.post(format!("{base}/v1/chat/completions"))
                .json(&chat_body(&model, "tok5", false))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let took = t0.elapsed();
        assert_eq!(st, 422, "{name}: {v}");
        assert_eq!(v["error"]["type"], "unhealthy_model", "{name}: {v}");
        assert_eq!(v["error"]["param"], "model", "{name}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(limit), "{name}: names the limit: {msg}");
        assert!(
            msg.contains("/v1/completions"),
            "{name}: the way out: {msg}"
        );
        assert!(took < Duration::from_secs(20), "{name}: took {took:?}");

        let r = c.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}: /health after the hostile render");
        let health: Value = r.json().await.unwrap();
        assert!(
            health["loaded"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == model.as_str()),
            "{name}: the model stays loaded: {health}"
        );
        let r = c
            .post(format!("{base}/v1/completions"))
            .json(
                &json!({"model": model, "prompt": "tok5 tok6", "max_tokens": 2, "temperature": 0}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{name}: a plain completion on the same model"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "text_completion", "{name}: {v}");
        assert!(
            v["usage"]["completion_tokens"].as_u64().unwrap() <= 2,
            "{v}"
        );
    }
    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
}

// ---------------------------------------------------------------------------
// Memory: the hostile requests above, against a server process whose peak
// resident memory is measured before and after.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_keep_the_server_memory_bounded() {
    use base64::Engine as _;
    let mut child = spawn_child("plain");
    let base = child.base();
    still_serving(&base).await;
    let Some(before) = child.peak_rss() else {
        eprintln!("SKIPPED: no /proc/PID/status on this system");
        return;
    };
    let c = client();
    let post = |body: Vec<u8>| {
        c.post(format!("{base}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // 1. 20 MiB of body: refused by the limit while reading.
    let big = serde_json::to_vec(&chat_body(CHAT, &"a ".repeat(10 << 20), false)).unwrap();
    assert_eq!(post(big).await.unwrap().status(), 413);
    // 2. A prompt just under the body limit: refused before tokenizing.
    let under = serde_json::to_vec(&chat_body(CHAT, &"a ".repeat(3_900_000), false)).unwrap();
    assert_eq!(post(under).await.unwrap().status(), 400);
    // 3. A PNG header claiming 100000 x 100000 pixels (30 GB decoded).
    const BOMB: &str = "89504e470d0a1a0a0000000d49484452000186a0000186a0080200000027309c9f0000000c49444154789c6360a00c000000400001b7347cef0000000049454e44ae426082";
    let bomb: Vec<u8> = (0..BOMB.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&BOMB[i..i + 2], 16).unwrap())
        .collect();
    let url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bomb)
    );
    let img = |url: &str| {
        serde_json::to_vec(
            &json!({"model": CHAT, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is it"},
            {"type": "image_url", "image_url": {"url": url}}]}]}),
        )
        .unwrap()
    };
    assert_eq!(post(img(&url)).await.unwrap().status(), 413);
    // 4. 5 MiB (6.7 MiB of base64) that is no image.
    let junk = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; 5 << 20])
    );
    let st = post(img(&junk)).await.unwrap().status().as_u16();
    assert!(st == 415 || st == 400, "{st}");
    child.assert_alive();
    still_serving(&base).await;
    let after = child.peak_rss().unwrap();
    let grew = after.saturating_sub(before);
    eprintln!("peak RSS {} MB -> {} MB", before >> 20, after >> 20);
    assert!(
        grew < 200 << 20,
        "peak RSS grew by {} MB on hostile requests",
        grew >> 20
    );
}

// ---------------------------------------------------------------------------
// 2 and 7 over HTTP: hostile model folders in the cache the server reads.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_model_folders_neither_hang_nor_kill_the_server() {
    let s = TestServer::start(|_| {}).await;
    // A snapshot whose files link to each other, and a folder linking to its parent.
    let l = s.fixture.snap("evil/link-loop");
    std::os::unix::fs::symlink(l.join("b.gguf"), l.join("a.gguf")).unwrap();
    std::os::unix::fs::symlink(l.join("a.gguf"), l.join("b.gguf")).unwrap();
    std::fs::create_dir_all(l.join("sub")).unwrap();
    std::os::unix::fs::symlink("..", l.join("sub/up")).unwrap();
    std::fs::write(l.join("config.json"), r#"{"model_type":"llama"}"#).unwrap();
    // config.json is /dev/zero: an endless read if followed blindly.
    let z = s.fixture.snap("evil/dev-zero");
    std::os::unix::fs::symlink("/dev/zero", z.join("config.json")).unwrap();
    write_gguf(&z.join("m.Q4_0.gguf"), "llama", 256, true, false);
    // A GGUF that claims a context of 4 billion tokens.
    let h = s.fixture.snap("evil/huge-context");
    write_gguf(&h.join("m.Q4_0.gguf"), "llama", u32::MAX, true, false);

    let t0 = Instant::now();
    let (st, v) = s.get_json("/v1/models").await;
    assert_eq!(st, 200, "{v}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "listing took {:?}",
        t0.elapsed()
    );
    // Each is refused by the probe as unhealthy (a loop, a non-regular
    // config.json, an implausible context), fast, before any load.
    for model in ["evil/link-loop", "evil/dev-zero", "evil/huge-context"] {
        let t0 = Instant::now();
        let r = client()
            .post(s.url("/v1/chat/completions"))
            .json(&chat_body(model, "hi count=1", false))
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{model}: {:?}",
            t0.elapsed()
        );
        assert_eq!(
            (st, v["error"]["type"].as_str()),
            (422, Some("unhealthy_model")),
            "{model}: {v}"
        );
    }
    assert_eq!(
        s.counters.loads.load(Ordering::SeqCst),
        0,
        "nothing was loaded"
    );
    still_serving(&s.base).await;
}
