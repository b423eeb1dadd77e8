//! SIGTERM / SIGINT during a stream, through the real signal handling of
//! `run_blocking`: this test binary re-runs itself as a child server (fake
//! engine), streams from it, signals it, and checks the stream ends with a
//! final event, the process exits 0 and nothing is left behind.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const CHILD_ENV: &str = "TANTO_SERVER_TEST_CHILD";

#[test]
#[ignore = "helper: runs as a child process of the signal tests"]
fn child_server() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
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

fn spawn_child() -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "child_server",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
        .recv_timeout(Duration::from_secs(30))
        .expect("child printed its listening line");
    Child { child, port }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

fn wait_exit(c: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = c.child.try_wait().unwrap() {
            return st;
        }
        assert!(
            t0.elapsed() < timeout,
            "server did not exit after the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal_mid_stream(sig: &str) {
    let mut c = spawn_child();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut resp = client
        .post(format!("http://127.0.0.1:{}/v1/chat/completions", c.port))
        .json(&chat_body("test/fake-chat", "count=1000000 delay=5", true))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Read a few events, then signal.
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("\n\n").count() < 3 {
        let n = resp.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended early");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    signal(c.child.id(), sig);
    let mut rest = String::new();
    resp.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    let (events, done) = parse_sse(&seen);
    assert!(done, "the cut stream still ends with [DONE]");
    assert_eq!(events.last().unwrap()["error"]["type"], "server_shutdown");
    let st = wait_exit(&mut c, Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "graceful exit status");
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", c.port)).is_err());
}

#[test]
fn sigterm_mid_stream_exits_zero() {
    signal_mid_stream("TERM");
}

#[test]
fn sigint_mid_stream_exits_zero() {
    signal_mid_stream("INT");
}
