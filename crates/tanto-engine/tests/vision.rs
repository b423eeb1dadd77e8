//! Vision against Hugging Face transformers (`tests/fixtures/vlm-tiny`, made
//! by `scripts/ref/make-tiny-vlm.py`): pixel_values, expanded prompt ids,
//! first-step logits and 16 greedy ids of a tiny random Idefics3 (SmolVLM
//! layout), through the real pipeline (probe → policy → load); the
//! preprocessing of SmolVLM-256M's own sizes; the EXIF facts and table.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tanto_core::policy::{self, PolicyConfig, Request};
use tanto_core::probe::{self, ProbeTarget};
use tanto_engine::vision::idefics3::ProcessorConfig;
use tanto_engine::vision::image::{decode, DecodedImage, ImageLimits};
use tanto_engine::vision::metadata::{metadata_table, ImageRow};
use tanto_engine::vision::VisionEngine;
use tanto_engine::{
    ChatMessage, ContentPart, Flow, GenerationParams, LoadOptions, Prompt, TextModel,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/vlm-tiny")
}

fn image(name: &str) -> Arc<DecodedImage> {
    let bytes = std::fs::read(root().join("images").join(name)).unwrap();
    Arc::new(decode(&bytes, ImageLimits::default()).unwrap())
}

fn reference() -> Value {
    common::fixture("vlm-tiny/idefics3-reference.json")
}

fn load() -> VisionEngine {
    let dir = root().join("idefics3");
    let p = probe::probe_uncached(&ProbeTarget {
        name: "tiny-idefics3".into(),
        dir: Some(dir.clone()),
        file: None,
        repo: None,
    });
    assert!(p.runnable(), "{:?} / {:?}", p.health, p.runtime);
    let (plan, _) = policy::plan(
        &p,
        Request::Vision,
        &tanto_core::host::detect(),
        &PolicyConfig::default(),
    )
    .unwrap_or_else(|e| panic!("policy refused: {e:?}"));
    VisionEngine::load(&plan, &LoadOptions { threads: Some(2) }).unwrap()
}

fn chat(files: &[String], question: &str) -> Prompt {
    let mut parts: Vec<ContentPart> = files.iter().map(|f| ContentPart::Image(image(f))).collect();
    parts.push(ContentPart::Text(question.into()));
    Prompt::Chat(vec![ChatMessage {
        role: "user".into(),
        content: question.into(),
        parts,
    }])
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn sha_f32(v: &[f32]) -> String {
    let mut h = Sha256::new();
    for x in v {
        h.update(x.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// transformers' pixel_values, read from the committed safetensors.
fn hf_pixels(case: &str) -> Vec<f32> {
    let bytes = std::fs::read(root().join("idefics3-pixel_values.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(case).unwrap();
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn pixel_values_prompt_ids_logits_and_greedy_ids_match_transformers() {
    let r = reference();
    let mut m = load();
    m.set_ignore_eos(true);
    for (name, case) in r["cases"].as_object().unwrap() {
        let files = strings(&case["images"]);
        let prompt = chat(&files, case["question"].as_str().unwrap());
        assert_eq!(
            m.render(&prompt).unwrap(),
            case["rendered"].as_str().unwrap(),
            "{name}"
        );
        let enc = m.encode(&prompt).unwrap();
        // pixel_values: shape, values within 1e-6, and in fact the same bits.
        let pv = enc.pixels.as_ref().expect("pixels");
        let shape: Vec<usize> = case["pixel_values_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            vec![pv.tiles, pv.channels, pv.height, pv.width],
            shape,
            "{name}"
        );
        let want = hf_pixels(name);
        let worst = pv
            .data
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-6, "{name}: pixel_values differ by {worst}");
        assert_eq!(
            sha_f32(&pv.data),
            case["pixel_values_sha256"].as_str().unwrap(),
            "{name}"
        );
        // The expanded prompt, token for token.
        let ids = common::ids(&case["input_ids"]);
        assert_eq!(enc.ids, ids, "{name}: prompt ids");
        // First-step logits (f32).
        let logits = m.first_logits(&enc).unwrap();
        let hf: Vec<f32> = case["first_logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(logits.len(), hf.len());
        let worst = logits
            .iter()
            .zip(&hf)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-4, "{name}: first logits differ by {worst}");
        // 16 greedy ids.
        let params = GenerationParams {
            max_tokens: Some(16),
            temperature: 0.0,
            top_p: None,
            ..Default::default()
        };
        let out = m
            .generate_encoded(&enc, &params, &mut |_| Flow::Continue)
            .unwrap();
        let greedy = common::ids(&case["greedy_ids"]);
        assert_eq!(out.token_ids, greedy, "{name}: greedy ids");
        assert_eq!(out.usage.prompt_tokens, ids.len());
    }
}

#[test]
fn smolvlm_256m_processor_sizes_give_transformers_tiles_bit_for_bit() {
    let rec = common::fixture("vlm-tiny/smolvlm-real-processor.json");
    let pp = serde_json::json!({
        "size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512},
        "do_image_splitting": true, "resample": 1,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "rescale_factor": 1.0 / 255.0
    });
    let proc =
        ProcessorConfig::from_json(&pp, &serde_json::json!({"image_seq_len": 64}), 64).unwrap();
    for (file, want) in rec["images"].as_object().unwrap() {
        let img = image(file);
        let p = proc.process(&img.rgb);
        assert_eq!(p.rows as u64, want["rows"].as_u64().unwrap(), "{file}");
        assert_eq!(p.cols as u64, want["cols"].as_u64().unwrap(), "{file}");
        let hashes = strings(&want["tile_sha256"]);
        assert_eq!(p.frames.len(), hashes.len(), "{file}");
        for (i, (f, h)) in p.frames.iter().zip(&hashes).enumerate() {
            let mut v = Vec::new();
            proc.normalize_into(f, &mut v);
            assert_eq!(&sha_f32(&v), h, "{file}: tile {i}");
        }
    }
}

#[test]
fn exif_orientation_gps_camera_and_the_table() {
    let img = image("exif.jpg");
    // Stored 300x200 with orientation 6: upright it is 200 wide, 300 tall.
    assert_eq!(img.orientation, 6);
    assert_eq!((img.rgb.width, img.rgb.height), (200, 300));
    let e = img.exif.clone().expect("exif");
    assert!((e.gps_lat.unwrap() - (48.0 + 51.0 / 60.0 + 29.64 / 3600.0)).abs() < 1e-12);
    assert!((e.gps_lon.unwrap() - (2.0 + 17.0 / 60.0 + 40.2 / 3600.0)).abs() < 1e-12);
    assert_eq!(e.datetime.as_deref(), Some("2024-05-01T12:34:56"));
    assert_eq!(e.camera.as_deref(), Some("TC-1"));
    let png = image("square.png");
    assert_eq!(png.exif, None);
    let rows = [
        ImageRow {
            id: 1,
            short_hash: img.short_id(),
            original: "exif.jpg",
            exif: img.exif.as_ref(),
        },
        ImageRow {
            id: 2,
            short_hash: png.short_id(),
            original: "square.png",
            exif: None,
        },
    ];
    let want = format!(
        "<details>\n<summary>📸 Image Metadata (2 images)</summary>\n\n<!-- mlxk:filenames -->\n\
         | Image | Filename | Original | Location | Date | Camera |\n\
         |-------|----------|----------|----------|------|--------|\n\
         | 1 | image_{}.jpeg | exif.jpg | 📍 48.8582°N, 2.2945°E | 📅 2024-05-01 | TC-1 |\n\
         | 2 | image_{}.jpeg | square.png | - | - | - |\n\n</details>\n\n",
        img.short_id(),
        png.short_id()
    );
    assert_eq!(metadata_table(&rows, true, None), want);
}

#[test]
fn user_text_cannot_smuggle_image_markers_and_counts_must_agree() {
    let m = load();
    let p = Prompt::Chat(vec![ChatMessage::text("user", "look: <image> here")]);
    let e = m.encode(&p).unwrap_err();
    assert!(e.to_string().contains("<image>"), "{e}");
    assert_eq!(e.http_status(), 400);
    // Text only works, on the text path.
    let enc = m
        .encode(&Prompt::Chat(vec![ChatMessage::text(
            "user",
            "Describe the image.",
        )]))
        .unwrap();
    assert!(enc.pixels.is_none());
    assert!(!enc.ids.is_empty());
}
