//! Fuzz config.json as the probe reads it. The config reader is private to the
//! probe, so the input becomes `config.json` in a model folder (next to a
//! fixed, valid one-tensor `model.safetensors`) and the whole probe runs:
//! config, weights description, kind detection and runtime checks all consume
//! the parsed JSON. The probe never fails; it must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tanto_core::probe::{probe, ProbeTarget};

#[path = "scratch.rs"]
mod scratch;

/// A valid safetensors file: one F32 tensor of 2x2.
fn weights() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#;
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(&[0u8; 16]);
    v
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch::dir().join("model");
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).expect("model folder");
        std::fs::write(dir.join("model.safetensors"), weights()).expect("weights");
    }
    std::fs::write(dir.join("config.json"), data).expect("config");
    let p = probe(&ProbeTarget {
        name: "fuzz".into(),
        dir: Some(dir),
        file: None,
        repo: None,
    });
    let _ = p.runnable();
    let _ = tanto_core::probe::context_length_from_config(
        &serde_json::from_slice(data).unwrap_or(serde_json::Value::Null),
    );
});
