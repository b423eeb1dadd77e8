//! `tanto run MODEL --audio FILE` end to end on the real Whisper test models
//! (see `scripts/fetch-test-models.sh`): plain text, subtitles, the JSON
//! envelope, translate refusals and hostile audio files. The expected text is
//! transformers' greedy transcript (`tests/fixtures/whisper/reference.json`).
//! Skips (passing) without the test models unless `TANTO_REQUIRE_TEST_MODELS`
//! is set.

use std::path::{Path, PathBuf};

mod common;

use common::{json, tanto};
const FOX: &str = "The quick brown fox jump over the lazy dog.";

fn model(test: &str, name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("TANTO_TEST_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/tanto/test-models"))
        })
        .unwrap_or_default()
        .join(name);
    if dir.is_dir() {
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

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/whisper")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn transcribes_to_text_srt_and_the_json_envelope() {
    let Some(m) = model("transcribes_to_text_srt", "whisper-tiny.en") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let m = m.to_str().unwrap();
    let wav = fixture("fox16k.wav");

    let out = tanto(tmp.path(), &["run", m, "--audio", &wav]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), FOX);

    let out = tanto(tmp.path(), &["run", m, "--audio", &wav, "--format", "srt"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let srt = String::from_utf8_lossy(&out.stdout);
    // One cue, timed by the model's own timestamp tokens (HF: 0.0 → 3.8 s).
    assert_eq!(srt, format!("1\n00:00:00,000 --> 00:00:03,800\n{FOX}\n\n"));

    let out = tanto(tmp.path(), &["run", m, "--audio", &wav, "--format", "vtt"]);
    let vtt = String::from_utf8_lossy(&out.stdout);
    assert!(
        vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:03.800\n"),
        "{vtt}"
    );

    let out = tanto(tmp.path(), &["run", m, "--audio", &wav, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert_eq!(v["status"], "success");
    assert_eq!(v["command"], "run");
    let d = &v["data"];
    assert_eq!(d["text"], FOX);
    assert_eq!(d["task"], "transcribe");
    assert_eq!(d["language"], "en");
    let dur = d["duration"].as_f64().unwrap();
    assert!((dur - 3.9).abs() < 0.6, "duration {dur}");
    let segs = d["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0]["start"].as_f64(), Some(0.0));
    assert!((segs[0]["end"].as_f64().unwrap() - 3.8).abs() < 1e-6);
}

#[test]
fn ctranslate2_folder_and_multilingual_language_detection() {
    let Some(ct2) = model("ctranslate2_folder", "faster-whisper-tiny.en") else {
        return;
    };
    let Some(base) = model("ctranslate2_folder", "whisper-base") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let wav = fixture("fox16k.wav");
    let out = tanto(tmp.path(), &["run", ct2.to_str().unwrap(), "--audio", &wav]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), FOX);

    let out = tanto(
        tmp.path(),
        &["run", base.to_str().unwrap(), "--audio", &wav, "--json"],
    );
    let v = json(&out);
    assert_eq!(v["data"]["language"], "en", "{v:#}");
    let p = v["data"]["language_probability"].as_f64().unwrap();
    assert!(p > 0.5 && p <= 1.0, "language probability {p}");
    assert_eq!(v["data"]["text"], FOX);
}

#[test]
fn refusals_are_typed_errors_not_transcripts() {
    let Some(m) = model("refusals_are_typed_errors", "whisper-tiny.en") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let m = m.to_str().unwrap();
    let wav = fixture("fox16k.wav");

    // An English-only model cannot translate.
    let out = tanto(
        tmp.path(),
        &["run", m, "--audio", &wav, "--translate", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["tanto_type"], "unsupported_task");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("English-only"));

    // Random bytes with a .wav name: refused by content, with the ffmpeg hint.
    let garbage = tmp.path().join("noise.wav");
    std::fs::write(
        &garbage,
        (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let out = tanto(
        tmp.path(),
        &["run", m, "--audio", garbage.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["error"]["tanto_type"], "unsupported_media_type");
    assert!(
        v["error"]["hint"].as_str().unwrap().contains("ffmpeg"),
        "{v:#}"
    );

    // A missing file names the path.
    let out = tanto(tmp.path(), &["run", m, "--audio", "/nonexistent/x.wav"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.wav"));
    assert!(out.stdout.is_empty());
}
