//! Model files whose header fields would size an allocation: the loaders must
//! answer with a typed error (or a bounded load), never an abort. Also a hostile
//! chat template embedded in an otherwise good file: that request fails with a
//! limit error and the loaded model keeps serving. Tiny crafted files only.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tanto_core::plan::{Backend, LoadPlan, Weights};
use tanto_engine::gguf::MAX_CONTEXT;
use tanto_engine::{
    ChatMessage, EngineError, Flow, GenerationParams, LoadOptions, Prompt, TemplateLimit,
    TextEngine, TextModel,
};
use tanto_testkit::gguf::GgufBuilder;
use tanto_testkit::presets;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gguf_plan(file: &Path, context: Option<usize>) -> LoadPlan {
    LoadPlan {
        name: "hostile".into(),
        dir: file.parent().unwrap().to_path_buf(),
        backend: Backend::GgufText,
        weights: Weights::Gguf {
            file: file.to_path_buf(),
        },
        architecture: "llama".into(),
        context_length: context,
    }
}

fn opts() -> LoadOptions {
    LoadOptions { threads: Some(1) }
}

fn load(b: &GgufBuilder, context: Option<usize>) -> Result<TextEngine, EngineError> {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "m.gguf", &b.build());
    TextEngine::load(&gguf_plan(&file, context), &opts())
}

fn invalid_mentioning(r: Result<TextEngine, EngineError>, what: &str) {
    match r {
        Err(e @ EngineError::InvalidModel { .. }) => {
            assert!(e.to_string().contains(what), "{e}");
            assert_eq!(e.error_type().as_str(), "unhealthy_model");
        }
        Err(e) => panic!("expected InvalidModel about {what}, got {e}"),
        Ok(_) => panic!("expected InvalidModel about {what}, but it loaded"),
    }
}

fn greedy(n: usize) -> GenerationParams {
    GenerationParams {
        max_tokens: Some(n),
        temperature: 0.0,
        ..GenerationParams::default()
    }
}

#[test]
fn the_tiny_gguf_loads_and_generates() {
    let mut m = load(&presets::gguf_builder("llama"), None).unwrap();
    assert_eq!(m.info().context_length, 4096);
    let out = m
        .generate(&Prompt::Text("tok5 tok6".into()), &greedy(2), &mut |_| {
            Flow::Continue
        })
        .unwrap();
    assert!(out.usage.completion_tokens <= 2);
}

#[test]
fn a_huge_block_count_is_an_invalid_model_not_an_abort() {
    let b = presets::gguf_builder("llama").u32("llama.block_count", u32::MAX);
    invalid_mentioning(load(&b, None), "block_count");
}

#[test]
fn huge_widths_are_checked_against_the_tensors() {
    let b = presets::gguf_builder("llama").u32("llama.embedding_length", u32::MAX);
    invalid_mentioning(load(&b, None), "embedding_length");
    let b = presets::gguf_builder("llama").u32("llama.feed_forward_length", 1 << 30);
    invalid_mentioning(load(&b, None), "feed_forward_length");
}

#[test]
fn a_huge_context_length_is_capped_and_the_request_wins() {
    let b = presets::gguf_builder("llama").u32("llama.context_length", u32::MAX);
    let m = load(&b, None).unwrap();
    assert_eq!(m.info().context_length, MAX_CONTEXT);
    let mut m = load(&b, Some(512)).unwrap();
    assert_eq!(m.info().context_length, 512);
    // The KV cache grows with the tokens actually run, not the declared context.
    let out = m
        .generate(&Prompt::Text("tok5".into()), &greedy(3), &mut |_| {
            Flow::Continue
        })
        .unwrap();
    assert!(out.usage.completion_tokens <= 3);
}

/// Rewrite the first dimension recorded for tensor `name` in GGUF bytes.
fn patch_dim(bytes: &mut [u8], name: &str, dim: u64) {
    let needle = name.as_bytes();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("tensor name in header");
    let dims = at + needle.len() + 4; // after the name: u32 n_dims, then u64 dims
    bytes[dims..dims + 8].copy_from_slice(&dim.to_le_bytes());
}

#[test]
fn a_tensor_shape_beyond_the_file_is_an_invalid_model() {
    let mut bytes = presets::gguf_builder("llama").build();
    patch_dim(&mut bytes, "blk.0.ffn_down.weight", 1 << 40);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "m.gguf", &bytes);
    invalid_mentioning(
        TextEngine::load(&gguf_plan(&file, None), &opts()),
        "ffn_down",
    );
    // Overflowing element counts too.
    patch_dim(&mut bytes, "blk.0.ffn_down.weight", u64::MAX / 2);
    let file = write(dir.path(), "m2.gguf", &bytes);
    invalid_mentioning(
        TextEngine::load(&gguf_plan(&file, None), &opts()),
        "ffn_down",
    );
}

#[test]
fn a_quadratic_sentencepiece_vocabulary_is_refused_quickly() {
    // "a", "aa", …: every split of every piece is a merge (about 2 MB of tokens).
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    tokens.extend((1..2000).map(|k| "a".repeat(k)));
    let b = presets::gguf_builder("llama").strings("tokenizer.ggml.tokens", tokens);
    let t0 = Instant::now();
    let r = load(&b, None);
    assert!(t0.elapsed() < Duration::from_secs(30));
    invalid_mentioning(r, "merges");
}

fn hf_dir(edit: impl FnOnce(&mut serde_json::Value)) -> (tempfile::TempDir, LoadPlan) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = presets::hf_chat();
    files.update_json("config.json", edit);
    files.write_to(dir.path()).unwrap();
    let plan = LoadPlan {
        name: "hostile-hf".into(),
        dir: dir.path().to_path_buf(),
        backend: Backend::SafetensorsText,
        weights: Weights::Safetensors {
            files: vec![dir.path().join("model.safetensors")],
        },
        architecture: "llama".into(),
        context_length: None,
    };
    (dir, plan)
}

#[test]
fn a_huge_max_position_embeddings_is_capped() {
    let (_d, plan) = hf_dir(|c| c["max_position_embeddings"] = serde_json::json!(u64::MAX));
    let m = TextEngine::load(
        &LoadPlan {
            context_length: Some(256),
            ..plan.clone()
        },
        &opts(),
    )
    .unwrap();
    assert_eq!(m.info().context_length, 256);
    let m = TextEngine::load(&plan, &opts()).unwrap();
    assert_eq!(m.info().context_length, MAX_CONTEXT);
}

#[test]
fn a_huge_layer_count_in_config_json_is_an_invalid_model() {
    let (_d, plan) = hf_dir(|c| c["num_hidden_layers"] = serde_json::json!(u32::MAX));
    invalid_mentioning(TextEngine::load(&plan, &opts()), "num_hidden_layers");
    let (_d, plan) = hf_dir(|c| c["intermediate_size"] = serde_json::json!(1u64 << 40));
    invalid_mentioning(TextEngine::load(&plan, &opts()), "intermediate_size");
}

#[test]
fn a_hostile_chat_template_fails_its_request_and_the_model_keeps_serving() {
    let src = "{% set s = 'x' %}{% for m in messages %}{% for i in range(64) %}{% set s = s ~ s %}{% endfor %}{% endfor %}{{ s }}";
    let b = presets::gguf_builder("llama").str("tokenizer.chat_template", src);
    let mut m = load(&b, None).unwrap();
    assert!(m.info().has_chat_template);
    let chat = Prompt::Chat(vec![ChatMessage {
        role: "user".into(),
        content: "tok5".into(),
        parts: Vec::new(),
    }]);
    let err = m
        .generate(&chat, &greedy(1), &mut |_| Flow::Continue)
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::TemplateLimit {
                limit: TemplateLimit::Output,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.error_type().as_str(), "unhealthy_model");
    // Plain completion on the same loaded model still works.
    m.generate(&Prompt::Text("tok5".into()), &greedy(1), &mut |_| {
        Flow::Continue
    })
    .unwrap();
}

#[test]
fn a_chat_template_that_does_not_compile_is_an_invalid_model() {
    let b = presets::gguf_builder("llama").str("tokenizer.chat_template", "{% for %}");
    invalid_mentioning(load(&b, None), "chat template");
}

/// Found by the `tokenizer_json` fuzz target: a syntax error inside
/// `"decoder"` made the tokenizers crate panic (an `expect` in its serde code)
/// instead of returning an error; from a model folder that took the load down.
#[test]
fn a_malformed_tokenizer_decoder_is_an_error_not_a_panic() {
    let bad = br#"{"version": "1.0", "decoder": {"type": "CTC", "cleanup" 1}, "model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"}}"#;
    let err = tanto_engine::tokenizer::TextTokenizer::from_json_bytes(bad)
        .expect_err("a malformed tokenizer.json must not load");
    assert!(matches!(err, EngineError::Tokenizer(_)), "{err:?}");

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tokenizer.json", bad);
    let err = tanto_engine::tokenizer::TextTokenizer::from_dir(dir.path())
        .expect_err("a malformed tokenizer.json must not load");
    assert!(matches!(err, EngineError::Tokenizer(_)), "{err:?}");
}

/// Found by the `tokenizer_json` fuzz target: a `TemplateProcessing`
/// post-processor naming a special token it does not define loads, then
/// panicked in the tokenizers crate on the first encode with special tokens.
#[test]
fn a_post_processor_naming_an_unknown_special_token_fails_encode_not_the_process() {
    let doc = br#"{"version": "1.0", "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "[CRS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [0], "tokens": ["[CLS]"]}}},
        "model": {"type": "WordLevel", "vocab": {"[CLS]": 0, "hello": 1}, "unk_token": "[CLS]"}}"#;
    let tok = tanto_engine::tokenizer::TextTokenizer::from_json_bytes(doc)
        .expect("the document itself parses");
    // Without special tokens the post-processor template is not applied.
    assert_eq!(tok.encode("hello", false).unwrap(), vec![1]);
    let err = tok
        .encode("hello", true)
        .expect_err("the undefined special token must be an error");
    assert!(matches!(err, EngineError::Tokenizer(_)), "{err:?}");
}
