//! Shared helpers: locate the real test models and the reference fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use tanto_core::plan::{Backend, LoadPlan, Weights};

/// `${TANTO_TEST_MODELS:-$HOME/.cache/tanto/test-models}`, or None (after printing
/// why) when absent and `TANTO_REQUIRE_TEST_MODELS` is unset. With the variable
/// set, a missing directory fails the test.
pub fn models_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("TANTO_TEST_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/tanto/test-models"))
        })
        .unwrap_or_default();
    if dir.join("smollm2-135m-instruct-gguf").is_dir() {
        return Some(dir);
    }
    if std::env::var_os("TANTO_REQUIRE_TEST_MODELS").is_some() {
        panic!(
            "{test}: test models not found in {} and TANTO_REQUIRE_TEST_MODELS is set; run scripts/fetch-test-models.sh",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED {test}: test models not found in {} (run scripts/fetch-test-models.sh)",
        dir.display()
    );
    None
}

pub fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()));
    serde_json::from_slice(&bytes).expect("fixture is JSON")
}

pub fn gguf_path(models: &Path) -> PathBuf {
    models.join("smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf")
}

pub fn gguf_plan(models: &Path) -> LoadPlan {
    let file = gguf_path(models);
    LoadPlan {
        name: "SmolLM2-135M-Instruct-Q4_1".into(),
        dir: file.parent().unwrap().to_path_buf(),
        backend: Backend::GgufText,
        weights: Weights::Gguf { file },
        architecture: "llama".into(),
        context_length: Some(8192),
    }
}

pub fn safetensors_plan(models: &Path, folder: &str) -> LoadPlan {
    let dir = models.join(folder);
    LoadPlan {
        name: folder.into(),
        dir: dir.clone(),
        backend: Backend::SafetensorsText,
        weights: Weights::Safetensors {
            files: vec![dir.join("model.safetensors")],
        },
        architecture: "llama".into(),
        context_length: Some(8192),
    }
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}
