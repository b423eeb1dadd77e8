//! `tanto run` on the real SmolLM2 GGUF test model: mlx-knife's `--prompt`
//! spelling end to end, and Ctrl-C ending a one-shot answer with a note and
//! exit 130. Skips (passing) without the test models unless
//! `TANTO_REQUIRE_TEST_MODELS` is set.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

mod common;

use common::tanto_cmd as tanto;

fn gguf(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("TANTO_TEST_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/tanto/test-models"))
        })
        .unwrap_or_default()
        .join("smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf");
    if dir.is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("TANTO_REQUIRE_TEST_MODELS").is_none(),
        "{test}: {} missing and TANTO_REQUIRE_TEST_MODELS is set",
        dir.display()
    );
    eprintln!("SKIPPED {test}: {} missing", dir.display());
    None
}

#[test]
fn run_prompt_flag_answers_in_the_envelope() {
    let Some(model) = gguf("run_prompt_flag_answers_in_the_envelope") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tanto(tmp.path())
        .args([
            "run",
            model.to_str().unwrap(),
            "ignored words",
            "--prompt",
            "What is 2+2?",
            "--temperature",
            "0",
            "-n",
            "6",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON envelope");
    assert_eq!(v["command"], "run");
    assert_eq!(v["status"], "success");
    // --prompt wins over the positional words.
    assert_eq!(v["data"]["prompt"], "What is 2+2?");
    assert!(!v["data"]["response"].as_str().unwrap().is_empty(), "{v:#}");
    assert_eq!(v["data"]["finish_reason"], "length");
    assert_eq!(v["data"]["usage"]["completion_tokens"], 6);
}

#[cfg(unix)]
#[test]
fn ctrl_c_ends_a_one_shot_run_with_a_note() {
    let Some(model) = gguf("ctrl_c_ends_a_one_shot_run_with_a_note") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut child = tanto(tmp.path())
        .args([
            "run",
            model.to_str().unwrap(),
            "Tell me a very long story about a lighthouse keeper.",
            "--temperature",
            "0",
            "-n",
            "4000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first streamed bytes: generation has started, so the
    // interrupt handler is installed.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout
        .read_exact(&mut first)
        .expect("some output before Ctrl-C");
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sending SIGINT to the child we spawned.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("[Generation interrupted by user]"),
        "{stderr}"
    );
}
