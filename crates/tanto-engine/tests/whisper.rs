//! Whisper against Hugging Face transformers' greedy decoding
//! (`tests/fixtures/whisper/reference.json`, made by
//! `scripts/ref/whisper_reference.py`): token ids, timestamps, segments,
//! language detection and translation, for HF safetensors (f32, f16) and the
//! CTranslate2 folders the HF ones were converted from. Every model goes
//! through the real pipeline: probe → policy → load.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tanto_core::policy::{self, PolicyConfig, Request};
use tanto_core::probe::{self, ProbeTarget};
use tanto_engine::audio::{decode::decode_file, mel::LogMel};
use tanto_engine::whisper::{
    self, model::KvCache, SpeechModel, Task, TranscribeOptions, Transcript,
};
use tanto_engine::{EngineError, LoadOptions};

fn reference() -> Value {
    common::fixture("whisper/reference.json")
}

fn clip(name: &str) -> Vec<f32> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../tests/fixtures/whisper/{name}.wav"));
    decode_file(&p, None)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .samples
}

fn plan(dir: &Path) -> tanto_core::plan::LoadPlan {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let p = probe::probe_uncached(&ProbeTarget {
        name: name.clone(),
        dir: Some(dir.to_path_buf()),
        file: None,
        repo: None,
    });
    assert!(p.runnable(), "{name}: {:?} / {:?}", p.health, p.runtime);
    let (plan, _) = policy::plan(
        &p,
        Request::Audio,
        &tanto_core::host::detect(),
        &PolicyConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: policy refused: {e:?}"));
    plan
}

fn load(dir: &Path) -> Box<dyn SpeechModel> {
    whisper::load_speech_model(&plan(dir), &LoadOptions { threads: Some(2) })
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Hugging Face's settings: greedy, no fallback, no conditioning.
fn hf(task: Task, language: Option<&str>, timestamps: bool) -> TranscribeOptions {
    TranscribeOptions {
        language: language.map(String::from),
        task,
        temperature: Some(0.0),
        condition_on_previous_text: false,
        without_timestamps: !timestamps,
        ..Default::default()
    }
}

/// Text tokens only: below the first special token (`<|endoftext|>` is 50256
/// in the English-only vocabulary, 50257 in the multilingual one).
fn text_ids(t: &Transcript) -> Vec<u32> {
    t.segments
        .iter()
        .flat_map(|s| s.tokens.iter().copied())
        .filter(|id| *id < 50256)
        .collect()
}

fn all_tokens(t: &Transcript) -> Vec<u32> {
    t.segments
        .iter()
        .flat_map(|s| s.tokens.iter().copied())
        .collect()
}

fn models() -> Option<PathBuf> {
    common::models_dir("whisper")
}

/// The greedy ids with and without timestamps for both clips.
fn check_english(model: &mut dyn SpeechModel, reference_model: &str, language: Option<&str>) {
    let r = reference();
    for clip_name in ["fox16k", "hello16k"] {
        let want = &r["models"][reference_model]["clips"][clip_name];
        let samples = clip(clip_name);
        let t = model
            .transcribe(&samples, &hf(Task::Transcribe, language, false))
            .unwrap();
        assert_eq!(
            text_ids(&t),
            common::ids(&want["transcribe"]["ids"]),
            "{reference_model} {clip_name} ids"
        );
        assert_eq!(t.text, want["transcribe"]["text"].as_str().unwrap().trim());
        assert_eq!(t.language, "en");

        let t = model
            .transcribe(&samples, &hf(Task::Transcribe, language, true))
            .unwrap();
        assert_eq!(
            all_tokens(&t),
            common::ids(&want["timestamps"]["tokens"]),
            "{reference_model} {clip_name} timestamp tokens"
        );
        let segs = want["timestamps"]["segments"].as_array().unwrap();
        assert_eq!(t.segments.len(), segs.len(), "{clip_name} segments");
        for (s, w) in t.segments.iter().zip(segs) {
            assert!((s.start - w["start"].as_f64().unwrap()).abs() < 1e-6);
            assert!((s.end - w["end"].as_f64().unwrap()).abs() < 1e-6);
            assert_eq!(s.text, w["text"].as_str().unwrap());
        }
    }
}

#[test]
fn tiny_en_f32_matches_transformers() {
    let Some(m) = models() else { return };
    let mut model = load(&m.join("whisper-tiny.en"));
    assert!(!model.info().multilingual);
    assert!(!model.info().can_translate);
    check_english(model.as_mut(), "whisper-tiny.en", None);
}

#[test]
fn tiny_en_ctranslate2_matches_transformers() {
    // The HF folder was converted from this one (float16, losslessly), so the
    // same greedy ids are expected.
    let Some(m) = models() else { return };
    let mut model = load(&m.join("faster-whisper-tiny.en"));
    assert_eq!(model.info().weights, "ctranslate2");
    check_english(model.as_mut(), "whisper-tiny.en", Some("en"));
}

#[test]
fn tiny_en_f16_matches_transformers() {
    let Some(m) = models() else { return };
    let mut model = load(&m.join("whisper-tiny.en-f16"));
    check_english(model.as_mut(), "whisper-tiny.en-f16", None);
}

fn check_base(model: &mut dyn SpeechModel) {
    let r = reference();
    assert!(model.info().multilingual);
    assert!(model.info().can_translate);
    for clip_name in ["fox16k", "hello16k"] {
        let want = &r["models"]["whisper-base"]["clips"][clip_name];
        let samples = clip(clip_name);
        // Detected, not given.
        let t = model
            .transcribe(&samples, &hf(Task::Transcribe, None, false))
            .unwrap();
        assert_eq!(t.language, want["transcribe_auto"]["detected_language"]);
        assert!(t.language_probability.unwrap() > 0.5);
        assert_eq!(text_ids(&t), common::ids(&want["transcribe_auto"]["ids"]));
        let t = model
            .transcribe(&samples, &hf(Task::Transcribe, Some("en"), true))
            .unwrap();
        assert_eq!(all_tokens(&t), common::ids(&want["timestamps"]["tokens"]));
        if let Some(tr) = want.get("translate") {
            let t = model
                .transcribe(&samples, &hf(Task::Translate, Some("english"), false))
                .unwrap();
            assert_eq!(t.task, Task::Translate);
            assert_eq!(text_ids(&t), common::ids(&tr["ids"]));
        }
    }
}

#[test]
fn base_multilingual_matches_transformers() {
    let Some(m) = models() else { return };
    check_base(load(&m.join("whisper-base")).as_mut());
}

#[test]
fn base_ctranslate2_matches_transformers() {
    let Some(m) = models() else { return };
    check_base(load(&m.join("faster-whisper-base")).as_mut());
}

/// First-step logits against transformers' (top 5, same order, within 1e-3).
#[test]
fn first_step_logits_match_transformers() {
    let Some(m) = models() else { return };
    let r = reference();
    for (folder, clip_name) in [("whisper-tiny.en", "fox16k"), ("whisper-base", "hello16k")] {
        let dir = m.join(folder);
        let cfg: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let dev = candle_core::Device::Cpu;
        let c = whisper::weights::hf_config(&cfg, &dir).unwrap();
        let w = whisper::weights::load_safetensors(&[dir.join("model.safetensors")], &dev).unwrap();
        let model = whisper::model::Whisper::new(c.clone(), w, &dev).unwrap();
        let mel = LogMel::new(c.num_mel_bins).compute(&clip(clip_name));
        let mel = candle_core::Tensor::from_vec(mel, (c.num_mel_bins, 3000), &dev).unwrap();
        let enc = model.encode(&mel).unwrap();
        let cross = model.cross_kv(&enc).unwrap();
        let want = &r["models"][folder]["clips"][clip_name]["transcribe"];
        let prompt = common::ids(&want["prompt"]);
        let logits = model
            .decode(&prompt, &cross, &mut KvCache::default())
            .unwrap();
        let row = whisper::model::last_row(&logits).unwrap();
        for pair in want["first_step_top5"].as_array().unwrap() {
            let id = pair[0].as_u64().unwrap() as usize;
            let v = pair[1].as_f64().unwrap();
            assert!(
                (row[id] as f64 - v).abs() < 1e-3,
                "{folder}: logit of {id} is {}, transformers {v}",
                row[id]
            );
        }
        // The prefill and one-token-at-a-time (KV cache) paths agree.
        let mut cache = KvCache::default();
        let mut last = Vec::new();
        for t in &prompt {
            last = whisper::model::last_row(&model.decode(&[*t], &cross, &mut cache).unwrap())
                .unwrap();
        }
        let d = row
            .iter()
            .zip(&last)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-3, "{folder}: cached vs prefill differ by {d}");
    }
}

/// 62 s of speech: seeking by the last timestamp across three windows gives
/// transformers' long-form segments.
#[test]
fn long_form_matches_transformers() {
    let Some(m) = models() else { return };
    let r = reference();
    let lf = &r["long_form"];
    let samples = decode_file(&m.join("audio/long60.wav"), None)
        .unwrap()
        .samples;
    let mut model = load(&m.join("whisper-tiny.en"));
    let t = model
        .transcribe(&samples, &hf(Task::Transcribe, None, true))
        .unwrap();
    let want = lf["segments"].as_array().unwrap();
    let got: Vec<(f64, f64, &str)> = t
        .segments
        .iter()
        .map(|s| (s.start, s.end, s.text.as_str()))
        .collect();
    let exp: Vec<(f64, f64, &str)> = want
        .iter()
        .map(|s| {
            (
                s["start"].as_f64().unwrap(),
                s["end"].as_f64().unwrap(),
                s["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), exp.len(), "segments: {got:#?}");
    for (g, e) in got.iter().zip(&exp) {
        assert!(
            (g.0 - e.0).abs() < 1e-6 && (g.1 - e.1).abs() < 1e-6,
            "{g:?} vs {e:?}"
        );
        assert_eq!(g.2, e.2);
    }
    assert_eq!(t.text, lf["text"].as_str().unwrap().trim());
    assert!((t.duration - 61.877875).abs() < 1e-6);
}

#[test]
fn requests_the_model_cannot_do_are_validation_errors() {
    let Some(m) = models() else { return };
    let mut model = load(&m.join("faster-whisper-tiny.en"));
    let samples = clip("fox16k");
    // An English-only model cannot translate: its own error type (HTTP 422).
    match model.transcribe(&samples, &hf(Task::Translate, None, true)) {
        Err(e @ EngineError::UnsupportedTask(_)) => {
            assert_eq!(e.http_status(), 422);
            assert!(e.to_string().contains("English-only"), "{e}");
        }
        other => panic!("translate on .en: {other:?}"),
    }
    let cases = [
        hf(Task::Transcribe, Some("de"), true),
        hf(Task::Transcribe, Some("klingon"), true),
        TranscribeOptions {
            temperature: Some(-1.0),
            ..Default::default()
        },
    ];
    for o in cases {
        match model.transcribe(&samples, &o) {
            Err(EngineError::Validation(msg)) => assert!(!msg.is_empty()),
            other => panic!("{o:?}: {other:?}"),
        }
    }
    assert!(matches!(
        model.transcribe(&[], &TranscribeOptions::default()),
        Err(EngineError::Validation(_))
    ));
    // Silence transcribes to nothing, with the default ladder.
    let t = model
        .transcribe(&vec![0.0; 16000 * 3], &TranscribeOptions::default())
        .unwrap();
    assert!(t.text.split_whitespace().count() <= 3, "{:?}", t.text);
}
