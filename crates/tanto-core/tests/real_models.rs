//! Probe real small models (scripts/fetch-test-models.sh) through a synthetic hub
//! cache whose blobs are symlinks to the real files (nothing is copied).
//!
//! Skipped, with a note, when the models are absent — unless `TANTO_REQUIRE_TEST_MODELS`
//! is set, in which case their absence fails the test.

mod common;

use std::path::{Path, PathBuf};

use common::Env;
use tanto_core::probe::{Format, ModelKind};
use tanto_testkit::Files;

const GGUF_DIR: &str = "smollm2-135m-instruct-gguf";
const GGUF_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const F32_DIR: &str = "smollm2-135m-instruct-f32";
const MINILM_DIR: &str = "all-MiniLM-L6-v2";

fn models_root() -> Option<PathBuf> {
    let root = std::env::var_os("TANTO_TEST_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tanto/test-models"))
        })?;
    let complete = root.join(GGUF_DIR).join(GGUF_FILE).is_file()
        && root.join(F32_DIR).join("model.safetensors").is_file()
        && root.join(MINILM_DIR).join("model.safetensors").is_file();
    if complete {
        return Some(root);
    }
    let msg = format!(
        "real test models not found under {} (run scripts/fetch-test-models.sh)",
        root.display()
    );
    if std::env::var_os("TANTO_REQUIRE_TEST_MODELS").is_some() {
        panic!("{msg}; TANTO_REQUIRE_TEST_MODELS is set");
    }
    eprintln!("skipping: {msg}");
    None
}

/// Every regular file under `dir` (recursively), as links to the real file.
fn external_files(dir: &Path) -> Files {
    let mut f = Files::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                f.insert_external(&rel, &p);
            }
        }
    }
    f
}

#[test]
fn real_models_in_a_linked_cache() {
    let Some(root) = models_root() else { return };
    let env = Env::new();
    env.cache.add(
        "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
        &Files::new().with_external(GGUF_FILE, root.join(GGUF_DIR).join(GGUF_FILE)),
    );
    env.cache.add(
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        &external_files(&root.join(F32_DIR)),
    );
    env.cache.add(
        "sentence-transformers/all-MiniLM-L6-v2",
        &external_files(&root.join(MINILM_DIR)),
    );

    // GGUF: llama, Q4_1, 8192 context, ~134.5M parameters, chat.
    let p = env.probe("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF");
    assert!(p.health.healthy, "{:?}", p.health.problems);
    assert_eq!(p.format, Format::Gguf);
    assert_eq!(p.architecture.as_deref(), Some("llama"));
    let q = p.quantization.clone().unwrap();
    assert_eq!(q.file_type.as_deref(), Some("Q4_1"));
    assert_eq!(q.bits, Some(4));
    assert_eq!(p.context_length, Some(8192));
    let params = p.parameters.unwrap();
    assert!((134_000_000..135_000_000).contains(&params), "{params}");
    assert_eq!(p.kind, ModelKind::Chat);
    assert!(p.has_tokenizer && p.has_chat_template);
    assert_eq!(
        p.weights_bytes,
        std::fs::metadata(root.join(GGUF_DIR).join(GGUF_FILE))
            .unwrap()
            .len()
    );

    // safetensors f32: llama chat.
    let p = env.probe("HuggingFaceTB/SmolLM2-135M-Instruct");
    assert!(p.health.healthy, "{:?}", p.health.problems);
    assert_eq!(p.format, Format::Safetensors);
    assert_eq!(p.config_model_type.as_deref(), Some("llama"));
    assert_eq!(p.kind, ModelKind::Chat);
    assert_eq!(p.capabilities, vec!["text-generation", "chat"]);
    assert_eq!(p.dtype.as_deref(), Some("float32"));
    assert_eq!(p.context_length, Some(8192));
    let params = p.parameters.unwrap();
    assert!((134_000_000..135_000_000).contains(&params), "{params}");

    // MiniLM: a bert embedder.
    let p = env.probe("all-MiniLM-L6-v2");
    assert!(p.health.healthy, "{:?}", p.health.problems);
    assert_eq!(p.kind, ModelKind::Embedding);
    assert_eq!(p.capabilities, vec!["embeddings"]);
    assert_eq!(p.config_model_type.as_deref(), Some("bert"));
    assert_eq!(p.context_length, Some(512));
}
