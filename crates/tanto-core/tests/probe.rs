//! Probe: one test per health rule (specific problem code + a reason that names
//! the file), and the metadata of every healthy preset.

mod common;

use common::{codes, probe_path, Env};
use serde_json::json;
use tanto_core::plan::Backend;
use tanto_core::probe::{Format, ModelKind, Probe};
use tanto_core::registry;
use tanto_testkit::gguf::{ggml, GgufBuilder};
use tanto_testkit::presets::{self, Broken};
use tanto_testkit::safetensors::SafetensorsBuilder;
use tanto_testkit::{corrupt, hub, workspace, Files};

// ---------------------------------------------------------------------------
// Health rules

fn assert_broken(p: &Probe, code: &str, mentions: &str) {
    assert!(!p.health.healthy, "{} should be unhealthy", p.name);
    assert_eq!(
        p.health.problems.first().map(|x| x.code),
        Some(code),
        "{}: problems {:#?}",
        p.name,
        p.health.problems
    );
    let reason = p.health.reason.clone().expect("reason");
    assert_eq!(reason, p.health.problems[0].message);
    assert!(
        reason.contains(mentions),
        "{}: reason {reason:?} should mention {mentions:?}",
        p.name
    );
    // An unhealthy model is never runnable, and says why with the health reason.
    assert!(!p.runtime.compatible);
    assert_eq!(p.runtime.reason.as_deref(), Some(reason.as_str()));
}

/// In the hub cache, and (when the damage is not blob-level) as a plain folder too.
fn check(b: Broken) {
    let env = Env::new();
    b.install(&env.cache);
    let p = env.probe(&b.repo_id());
    assert_broken(&p, b.code(), b.mentions());
    if b.cache_only() {
        return;
    }
    let dir = env.tmp.path().join("folder").join(b.slug());
    workspace::write_folder(&dir, &b.files());
    if b == Broken::ConfigMissing {
        // By path, a folder needs config.json (or a .gguf / sentinel) to be a model at all.
        let err = tanto_core::resolve::resolve(dir.to_str().unwrap(), &env.stores()).unwrap_err();
        assert_eq!(err.kind, tanto_core::error::ErrorType::ModelNotFound);
        assert!(err.message.contains("config.json"), "{}", err.message);
        // As a workspace sentinel folder it is probed and reported.
        workspace::write_workspace(&dir, &b.files(), None);
    }
    let p = probe_path(&dir);
    assert_broken(&p, b.code(), b.mentions());
}

#[test]
fn rule_config_missing() {
    check(Broken::ConfigMissing);
}

#[test]
fn rule_config_invalid_json() {
    check(Broken::ConfigInvalid);
}

#[test]
fn rule_config_empty_object() {
    let env = Env::new();
    env.cache.add(
        "x/empty-config",
        &presets::hf_chat().with("config.json", "{}"),
    );
    assert_broken(
        &env.probe("x/empty-config"),
        "config_invalid",
        "config.json",
    );
}

#[test]
fn rule_no_weights() {
    check(Broken::NoWeights);
}

#[test]
fn rule_lfs_pointer() {
    check(Broken::LfsPointer);
    let p = {
        let env = Env::new();
        Broken::LfsPointer.install(&env.cache);
        env.probe(&Broken::LfsPointer.repo_id())
    };
    assert!(p.health.reason.unwrap().contains("git lfs pull"));
}

#[test]
fn rule_index_references_missing_shard() {
    check(Broken::MissingShard);
}

#[test]
fn rule_shard_not_in_index() {
    check(Broken::ShardNotInIndex);
    let env = Env::new();
    Broken::ShardNotInIndex.install(&env.cache);
    let p = env.probe(&Broken::ShardNotInIndex.repo_id());
    assert_eq!(
        p.health.fix.as_deref(),
        Some("tanto convert SRC DST --repair-index")
    );
}

#[test]
fn rule_index_mismatch_both_ways() {
    let env = Env::new();
    let f = presets::hf_sharded()
        .without("model-00002-of-00002.safetensors")
        .with(
            presets::STRAY_SHARD,
            SafetensorsBuilder::new().tensor("x", "F32", &[4]).build(),
        );
    env.cache.add("x/mismatch", &f);
    let p = env.probe("x/mismatch");
    assert_broken(&p, "index_mismatch", "model-00002-of-00002.safetensors");
    assert!(p.health.reason.unwrap().contains(presets::STRAY_SHARD));
}

#[test]
fn rule_index_invalid() {
    let env = Env::new();
    let f = presets::hf_sharded().with("model.safetensors.index.json", "{not json");
    env.cache.add("x/bad-index", &f);
    assert_broken(
        &env.probe("x/bad-index"),
        "index_invalid",
        "model.safetensors.index.json",
    );
}

#[test]
fn rule_shards_by_pattern_without_index() {
    let env = Env::new();
    // Both shards present but no index.
    env.cache.add(
        "x/no-index",
        &presets::hf_sharded().without("model.safetensors.index.json"),
    );
    assert_broken(&env.probe("x/no-index"), "index_missing", "index");
    // One of two shards, no index.
    env.cache.add(
        "x/gap",
        &presets::hf_sharded()
            .without("model.safetensors.index.json")
            .without("model-00002-of-00002.safetensors"),
    );
    assert_broken(&env.probe("x/gap"), "missing_shard", "1/2");
}

#[test]
fn rule_truncated_safetensors() {
    check(Broken::TruncatedSafetensors);
}

#[test]
fn rule_safetensors_header_length_past_eof_is_truncation() {
    let env = Env::new();
    let mut f = presets::hf_chat();
    f.map_bytes("model.safetensors", |b| {
        corrupt::safetensors_header_len_past_eof(&b)
    });
    env.cache.add("x/len-past-eof", &f);
    assert_broken(
        &env.probe("x/len-past-eof"),
        "truncated_safetensors",
        "model.safetensors",
    );
}

#[test]
fn rule_safetensors_header_length_implausible_is_corruption() {
    let env = Env::new();
    let mut f = presets::hf_chat();
    f.map_bytes("model.safetensors", |b| {
        corrupt::safetensors_header_len_implausible(&b)
    });
    env.cache.add("x/len-absurd", &f);
    assert_broken(
        &env.probe("x/len-absurd"),
        "corrupt_safetensors",
        "model.safetensors",
    );
}

#[test]
fn rule_safetensors_too_short() {
    let env = Env::new();
    env.cache.add(
        "x/short",
        &presets::hf_chat().with("model.safetensors", vec![1u8, 2, 3]),
    );
    assert_broken(
        &env.probe("x/short"),
        "corrupt_safetensors",
        "model.safetensors",
    );
}

/// A safetensors file whose header is `header` (JSON), with `data` bytes after it.
fn raw_safetensors(header: serde_json::Value, data: usize) -> Vec<u8> {
    let h = header.to_string().into_bytes();
    let mut v = (h.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(&h);
    v.resize(v.len() + data, 0);
    v
}

/// Found with the core_safetensors fuzz target (fuzz/core): an end offset near u64::MAX
/// overflowed `8 + header + end`, a panic in debug builds and, wrapped in
/// release, a small number that passed the truncation check.
#[test]
fn rule_safetensors_offset_near_u64_max_is_truncation() {
    let env = Env::new();
    let st = raw_safetensors(
        json!({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, u64::MAX]}}),
        4,
    );
    env.cache.add(
        "x/huge-end",
        &presets::hf_chat().with("model.safetensors", st),
    );
    assert_broken(
        &env.probe("x/huge-end"),
        "truncated_safetensors",
        "model.safetensors",
    );
}

/// Found with the same target: a shape whose element count overflows u64 (or needs less
/// than a bit per element) panicked in `TensorInfo::elements` during the probe.
#[test]
fn rule_safetensors_shape_larger_than_its_bytes_is_corruption() {
    for (name, shape) in [
        ("overflow", json!([1u64 << 32, 1u64 << 32])),
        ("too-many", json!([4, 5])),
    ] {
        let env = Env::new();
        let st = raw_safetensors(
            json!({"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 2]}}),
            2,
        );
        env.cache.add(
            &format!("x/{name}"),
            &presets::hf_chat().with("model.safetensors", st),
        );
        assert_broken(
            &env.probe(&format!("x/{name}")),
            "corrupt_safetensors",
            "model.safetensors",
        );
    }
}

#[test]
fn rule_corrupt_safetensors_header() {
    check(Broken::CorruptSafetensorsHeader);
}

#[test]
fn rule_empty_weights() {
    let env = Env::new();
    env.cache.add(
        "x/empty",
        &presets::hf_chat().with("model.safetensors", Vec::<u8>::new()),
    );
    assert_broken(&env.probe("x/empty"), "empty_weights", "model.safetensors");
}

#[test]
fn rule_truncated_gguf() {
    check(Broken::TruncatedGguf);
}

#[test]
fn rule_gguf_truncated_inside_header() {
    let env = Env::new();
    let mut f = presets::gguf_chat();
    f.map_bytes(presets::GGUF_CHAT_FILE, |b| corrupt::truncate(&b, 64));
    env.cache.add("x/gguf-short-header", &f);
    assert_broken(
        &env.probe("x/gguf-short-header"),
        "truncated_gguf",
        presets::GGUF_CHAT_FILE,
    );
}

#[test]
fn rule_corrupt_gguf_header() {
    check(Broken::CorruptGgufHeader);
    for (name, damage) in [
        (
            "counts",
            corrupt::gguf_implausible_counts as fn(&[u8]) -> Vec<u8>,
        ),
        ("version", corrupt::gguf_bad_version),
    ] {
        let env = Env::new();
        let mut f = presets::gguf_chat();
        f.map_bytes(presets::GGUF_CHAT_FILE, |b| damage(&b));
        env.cache.add(&format!("x/gguf-{name}"), &f);
        assert_broken(
            &env.probe(&format!("x/gguf-{name}")),
            "corrupt_gguf",
            presets::GGUF_CHAT_FILE,
        );
    }
}

#[test]
fn rule_dangling_symlink() {
    check(Broken::DanglingSymlink);
    let env = Env::new();
    Broken::DanglingSymlink.install(&env.cache);
    let p = env.probe(&Broken::DanglingSymlink.repo_id());
    assert_eq!(
        p.health.fix.as_deref(),
        Some("tanto pull broken/dangling-symlink --force")
    );
    assert!(p
        .files
        .iter()
        .any(|f| f.dangling && f.path == "model.safetensors"));
}

#[test]
fn rule_partial_download() {
    check(Broken::PartialDownload);
    let env = Env::new();
    Broken::PartialDownload.install(&env.cache);
    let p = env.probe(&Broken::PartialDownload.repo_id());
    assert_eq!(
        p.health.fix.as_deref(),
        Some("tanto pull broken/partial-download")
    );
    assert!(p.health.reason.unwrap().contains(presets::PARTIAL_ETAG));
}

#[test]
fn rule_partial_marker_in_folder() {
    let env = Env::new();
    let dir = env.tmp.path().join("partial-folder");
    workspace::write_folder(
        &dir,
        &presets::hf_chat().with("model.safetensors.part.tmp", "x"),
    );
    assert_broken(
        &probe_path(&dir),
        "partial_download",
        "model.safetensors.part.tmp",
    );
}

#[test]
fn rule_missing_tokenizer() {
    check(Broken::MissingTokenizer);
    // Without tokenizer_config.json either.
    let env = Env::new();
    env.cache.add(
        "x/no-tok",
        &presets::hf_chat()
            .without("tokenizer.json")
            .without("tokenizer_config.json"),
    );
    assert_broken(
        &env.probe("x/no-tok"),
        "tokenizer_missing",
        "tokenizer.json",
    );
}

#[test]
fn rule_gguf_without_tokenizer() {
    let env = Env::new();
    let g = GgufBuilder::new()
        .str("general.architecture", "llama")
        .u32("llama.context_length", 512)
        .tensor("token_embd.weight", &[64, 32], ggml::F16)
        .build();
    env.cache
        .add("x/gguf-notok", &Files::new().with("m.gguf", g));
    assert_broken(
        &env.probe("x/gguf-notok"),
        "tokenizer_missing",
        "tokenizer.ggml.tokens",
    );
}

#[test]
fn rule_tokenizer_config_invalid() {
    let env = Env::new();
    env.cache.add(
        "x/tokcfg",
        &presets::hf_chat().with("tokenizer_config.json", "{\"chat_template\": "),
    );
    assert_broken(
        &env.probe("x/tokcfg"),
        "tokenizer_invalid",
        "tokenizer_config.json",
    );
}

#[test]
fn rule_vision_processor_missing() {
    let env = Env::new();
    env.cache.add(
        "x/llava-noproc",
        &presets::llava()
            .without("preprocessor_config.json")
            .without("processor_config.json"),
    );
    assert_broken(
        &env.probe("x/llava-noproc"),
        "vision_processor_missing",
        "preprocessor_config.json",
    );
}

#[test]
fn rule_no_snapshot() {
    let env = Env::new();
    std::fs::create_dir_all(env.cache.root().join("models--x--empty/snapshots")).unwrap();
    std::fs::create_dir_all(env.cache.root().join("models--x--empty/blobs")).unwrap();
    let p = env.probe("x/empty");
    assert_eq!(codes(&p), vec!["no_snapshot"]);
    assert_eq!(p.health.fix.as_deref(), Some("tanto pull x/empty --force"));
}

#[test]
fn every_broken_case_has_a_distinct_repo_and_expected_code() {
    let env = Env::new();
    presets::standard_cache(&env.cache);
    for b in Broken::ALL {
        let p = env.probe(&b.repo_id());
        assert_eq!(p.health.problems[0].code, b.code(), "{b:?}");
    }
    for (id, _) in presets::healthy_presets() {
        let p = env.probe(id);
        assert!(p.health.healthy, "{id}: {:?}", p.health.problems);
    }
}

// ---------------------------------------------------------------------------
// Healthy presets: format / framework / kind / capabilities / params / quantization / context

fn healthy(spec: &str, files: &Files) -> Probe {
    let env = Env::new();
    env.cache.add(spec, files);
    let p = env.probe(spec);
    assert!(p.health.healthy, "{spec}: {:#?}", p.health.problems);
    assert!(p.health.reason.is_none() && p.health.problems.is_empty());
    assert_eq!(
        p.size_bytes,
        files.bytes_len(),
        "{spec}: size_bytes follows symlinks"
    );
    assert_eq!(p.last_modified, Some(hub::fixture_mtime()));
    p
}

fn assert_runtime(p: &Probe, backend: Backend, arch: &str) {
    if registry::supports(backend, arch) {
        assert!(p.runtime.compatible, "{}: {:?}", p.name, p.runtime.reason);
        assert_eq!(p.runtime.backend, Some(backend));
        assert!(p.runtime.reason.is_none());
    } else {
        assert!(!p.runtime.compatible);
        assert_eq!(p.runtime.backend, None);
        let r = p.runtime.reason.clone().expect("reason");
        assert!(
            r.contains(&format!("'{arch}'")),
            "{}: reason {r:?} should name {arch}",
            p.name
        );
        assert!(r.contains("No engine built"), "{r}");
    }
}

#[test]
fn preset_gguf_chat() {
    let p = healthy("org/tiny-GGUF", &presets::gguf_chat());
    assert_eq!(p.format, Format::Gguf);
    assert_eq!(p.format.as_str(), "gguf");
    assert_eq!(p.format.framework(), "GGUF");
    assert_eq!(p.architecture.as_deref(), Some("llama"));
    assert_eq!(p.config_model_type.as_deref(), Some("llama"));
    assert_eq!(p.kind, ModelKind::Chat);
    assert_eq!(p.capabilities, vec!["text-generation", "chat"]);
    assert_eq!(p.parameters, Some(presets::gguf_chat_params()));
    let q = p.quantization.clone().expect("quantization");
    assert_eq!(q.method, "gguf");
    assert_eq!(q.file_type.as_deref(), Some("Q4_0"));
    assert_eq!(q.bits, Some(4));
    assert_eq!(p.dtype.as_deref(), Some("Q4_0"));
    assert_eq!(p.context_length, Some(presets::GGUF_CHAT_CONTEXT));
    assert!(p.has_chat_template && p.has_tokenizer);
    assert_eq!(p.weight_files.len(), 1);
    assert!(p.weight_files[0].ends_with(presets::GGUF_CHAT_FILE));
    assert_runtime(&p, Backend::GgufText, "llama");
}

#[test]
fn preset_gguf_single_file_by_path() {
    let env = Env::new();
    let dir = env.tmp.path().join("loose");
    workspace::write_folder(&dir, &presets::gguf_chat().with("notes.txt", "unrelated"));
    let p = probe_path(&dir.join(presets::GGUF_CHAT_FILE));
    assert!(p.health.healthy, "{:?}", p.health.problems);
    assert_eq!(p.format, Format::Gguf);
    assert_eq!(p.files.len(), 1, "only the file itself counts");
    assert_eq!(p.kind, ModelKind::Chat);
}

#[test]
fn preset_gguf_alignment_and_v2() {
    let env = Env::new();
    let g = presets::gguf_builder("llama").alignment(64).build();
    env.cache.add("x/aligned", &Files::new().with("m.gguf", g));
    let p = env.probe("x/aligned");
    assert!(p.health.healthy, "{:?}", p.health.problems);
    assert_eq!(p.parameters, Some(presets::gguf_chat_params()));
    let g2 = presets::gguf_builder("llama").version(2).build();
    env.cache.add("x/v2", &Files::new().with("m.gguf", g2));
    assert!(env.probe("x/v2").health.healthy);
}

#[test]
fn preset_hf_safetensors_chat() {
    let p = healthy("org/tiny-llama", &presets::hf_chat());
    assert_eq!(p.format, Format::Safetensors);
    assert_eq!(p.format.framework(), "PyTorch");
    assert_eq!(p.architecture.as_deref(), Some("LlamaForCausalLM"));
    assert_eq!(p.config_model_type.as_deref(), Some("llama"));
    assert_eq!(p.kind, ModelKind::Chat);
    assert_eq!(p.capabilities, vec!["text-generation", "chat"]);
    assert_eq!(p.parameters, Some(presets::hf_chat_params()));
    assert_eq!(p.quantization, None);
    assert_eq!(p.dtype.as_deref(), Some("bfloat16"));
    assert_eq!(p.context_length, Some(presets::HF_CHAT_CONTEXT));
    assert_eq!(
        p.weights_bytes,
        presets::hf_chat().get("model.safetensors").unwrap().len() as u64
    );
    assert_runtime(&p, Backend::SafetensorsText, "llama");
}

#[test]
fn preset_hf_base_has_no_chat() {
    let p = healthy("org/tiny-llama-base", &presets::hf_base());
    assert_eq!(p.kind, ModelKind::Base);
    assert_eq!(p.capabilities, vec!["text-generation"]);
    assert!(!p.has_chat_template);
}

#[test]
fn preset_chat_template_file_makes_chat() {
    let f = presets::hf_base().with("chat_template.jinja", presets::CHAT_TEMPLATE);
    let p = healthy("org/jinja", &f);
    assert_eq!(p.kind, ModelKind::Chat);
}

#[test]
fn preset_hf_sharded() {
    let p = healthy("org/sharded", &presets::hf_sharded());
    assert_eq!(p.weight_files.len(), 2);
    assert_eq!(p.format, Format::Safetensors);
}

#[test]
fn preset_mlx_4bit() {
    let p = healthy("mlx-community/tiny-4bit", &presets::mlx_4bit());
    assert_eq!(p.format, Format::MlxSafetensors);
    assert_eq!(p.format.as_str(), "mlx-safetensors");
    assert_eq!(p.format.framework(), "MLX");
    assert_eq!(p.kind, ModelKind::Chat);
    assert_eq!(p.parameters, Some(presets::mlx_4bit_params()));
    let q = p.quantization.clone().expect("quantization");
    assert_eq!(
        (q.bits, q.group_size, q.method.as_str()),
        (Some(4), Some(64), "mlx")
    );
    assert!(p.runtime.compatible, "{:?}", p.runtime.reason);
}

#[test]
fn preset_sentence_transformers_embedder() {
    let p = healthy("sentence-transformers/tiny", &presets::st_embedder());
    assert_eq!(p.format, Format::Safetensors);
    assert_eq!(p.kind, ModelKind::Embedding);
    assert_eq!(p.capabilities, vec!["embeddings"]);
    assert_eq!(p.config_model_type.as_deref(), Some("bert"));
    assert_eq!(p.context_length, Some(presets::EMBEDDER_CONTEXT));
    assert_eq!(p.dtype.as_deref(), Some("float32"));
    assert!(p.files.iter().any(|f| f.path == "1_Pooling/config.json"));
    assert_runtime(&p, Backend::Embeddings, "bert");
}

#[test]
fn embeddings_are_decided_from_files_not_names() {
    // An embedder whose name says "chat-instruct" is still an embedder…
    let p = healthy("org/chat-instruct", &presets::st_embedder());
    assert_eq!(p.kind, ModelKind::Embedding);
    // …a bert config without sentence-transformers files too (BertModel)…
    let f = presets::st_embedder()
        .without("modules.json")
        .without("1_Pooling/config.json")
        .without("sentence_bert_config.json")
        .without("config_sentence_transformers.json");
    assert_eq!(healthy("org/plain-bert", &f).kind, ModelKind::Embedding);
    // …but a BertForMaskedLM is not, and a chat model named "embedding" is a chat model.
    let mut mlm = f.clone();
    mlm.update_json("config.json", |c| {
        c["architectures"] = json!(["BertForMaskedLM"])
    });
    assert_ne!(healthy("org/bert-mlm", &mlm).kind, ModelKind::Embedding);
    assert_eq!(
        healthy("org/my-embedding-model", &presets::hf_chat()).kind,
        ModelKind::Chat
    );
}

#[test]
fn preset_whisper() {
    let p = healthy("openai/whisper-tiny", &presets::whisper());
    assert_eq!(p.kind, ModelKind::Audio);
    assert_eq!(p.capabilities, vec!["audio", "audio-translate-en"]);
    assert_eq!(p.dtype.as_deref(), Some("float16"));
    assert_runtime(&p, Backend::Whisper, "whisper");
    // English-only (51864) checkpoints cannot translate.
    let mut en = presets::whisper();
    en.update_json("config.json", |c| c["vocab_size"] = json!(51864));
    assert_eq!(
        healthy("openai/whisper-tiny.en", &en).capabilities,
        vec!["audio"]
    );
}

#[test]
fn preset_llava_vision() {
    let p = healthy("llava-hf/tiny-llava", &presets::llava());
    assert_eq!(p.kind, ModelKind::Chat);
    assert_eq!(p.capabilities, vec!["text-generation", "chat", "vision"]);
    assert_eq!(p.context_length, Some(4096), "from text_config");
    assert_runtime(&p, Backend::Vision, "llava");
}

#[test]
fn unknown_gguf_architecture_is_named() {
    let p = healthy("org/tiny-mamba-GGUF", &presets::gguf_arch("mamba"));
    assert_eq!(p.architecture.as_deref(), Some("mamba"));
    assert!(!p.runtime.compatible);
    let r = p.runtime.reason.clone().unwrap();
    assert!(r.contains("'mamba'"), "{r}");
}

#[test]
fn workspace_folder_probes_like_the_cache() {
    let env = Env::new();
    let dir = env.ws_home().join("my-llama");
    workspace::write_workspace(&dir, &presets::hf_chat(), Some("org/tiny-llama"));
    let p = env.probe("my-llama");
    assert!(p.health.healthy, "{:?}", p.health.problems);
    assert_eq!(p.kind, ModelKind::Chat);
    assert_eq!(p.parameters, Some(presets::hf_chat_params()));
}

#[test]
fn pytorch_bin_and_onnx_are_named() {
    let base = presets::hf_chat().without("model.safetensors");
    let p = healthy(
        "org/bin",
        &base.clone().with("pytorch_model.bin", vec![0u8; 2048]),
    );
    assert_eq!(p.format, Format::PytorchBin);
    assert!(!p.runtime.compatible);
    let p = healthy("org/onnx", &base.with("model.onnx", vec![0u8; 2048]));
    assert_eq!(p.format, Format::Onnx);
    assert_eq!(p.format.framework(), "ONNX");
}

#[test]
fn interrupted_pull_marker_names_the_resume_command() {
    // A pull killed between files: only config.json arrived, no `.incomplete`
    // blob, but `tanto pull` left its marker in .locks/.
    let env = Env::new();
    let files = Files::new().with_json("config.json", &json!({"model_type": "llama"}));
    env.cache.add("org/half", &files);
    let p = env.probe("org/half");
    assert!(!p.health.healthy);
    assert_eq!(p.health.problems[0].code, "no_weights");

    let locks = env.cache.root().join(".locks").join("models--org--half");
    std::fs::create_dir_all(&locks).unwrap();
    std::fs::write(
        locks.join("tanto-pull.json"),
        json!({"repo_id": "org/half", "revision": "v2", "commit": "", "files": ["config.json", "model.safetensors"], "include": ["*.json"]})
            .to_string(),
    )
    .unwrap();
    let p = env.probe("org/half");
    assert_eq!(p.health.problems[0].code, "partial_download");
    let reason = p.health.reason.clone().unwrap();
    assert!(reason.contains("2 file(s)"), "{reason}");
    assert_eq!(
        p.health.fix.as_deref(),
        Some("tanto pull org/half --revision v2 --include '*.json'")
    );
    // The original problem is still reported after it.
    assert!(p.health.problems.iter().any(|x| x.code == "no_weights"));
}
