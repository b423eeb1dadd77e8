//! `tanto … | head`: a reader that goes away ends the command quietly. The
//! CLI keeps the default SIGPIPE (so it stops at the first write to the
//! closed pipe) and never prints a panic or a "Broken pipe" error.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tanto");

#[test]
fn a_closed_stdout_ends_embed_quietly() {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/embed-tiny/bert-mean");
    assert!(model.join("config.json").is_file(), "{}", model.display());
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["embed", model.to_str().unwrap(), "--batch"])
        .env("HOME", tmp.path())
        .env("HF_HOME", tmp.path().join("hf"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Far more JSONL out than a pipe buffers (each record carries a vector).
    let mut input = String::new();
    for i in 0..3000 {
        input.push_str(&format!(
            "{{\"text\": \"the quick brown fox number {i}\"}}\n"
        ));
    }
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    out.read_exact(&mut first).unwrap();
    assert_eq!(first[0], b'{', "JSONL records");
    drop(out); // the reader goes away, like `| head -c 64`
    let status = child.wait().unwrap();
    let _ = feeder.join();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success() || status.signal() == Some(libc::SIGPIPE),
        "{status:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
}
