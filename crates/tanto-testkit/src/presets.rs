//! Ready-made models: one healthy preset per kind the probe distinguishes,
//! and [`Broken`], one case per health rule.

use serde_json::{json, Value};

use crate::corrupt;
use crate::files::Files;
use crate::gguf::{self, file_type, ggml, GgufBuilder};
use crate::hub::{commit_hash, CachedRepo, HubCache};
use crate::safetensors::SafetensorsBuilder;

/// A small Llama-style chat template (Jinja), as tokenizer_config.json carries it.
pub const CHAT_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

// ---------------------------------------------------------------------------
// GGUF chat model (llama)

pub const GGUF_CHAT_FILE: &str = "tiny-llama-chat.Q4_0.gguf";
pub const GGUF_CHAT_CONTEXT: u64 = 4096;
pub const GGUF_VOCAB: u64 = 96;

/// The GGUF builder behind [`gguf_chat`], for variants (other architecture, no tokenizer, …).
pub fn gguf_builder(arch: &str) -> GgufBuilder {
    let n = GGUF_VOCAB;
    GgufBuilder::new()
        .str("general.architecture", arch)
        .str("general.name", "tiny-llama-chat")
        .u32("general.file_type", file_type::Q4_0)
        .u32("general.quantization_version", 2)
        .u32(&format!("{arch}.context_length"), GGUF_CHAT_CONTEXT as u32)
        .u32(&format!("{arch}.embedding_length"), 64)
        .u32(&format!("{arch}.block_count"), 1)
        .u32(&format!("{arch}.feed_forward_length"), 128)
        .u32(&format!("{arch}.attention.head_count"), 4)
        .u32(&format!("{arch}.attention.head_count_kv"), 4)
        .f32(&format!("{arch}.rope.freq_base"), 10000.0)
        .f32(&format!("{arch}.attention.layer_norm_rms_epsilon"), 1e-5)
        .str("tokenizer.ggml.model", "llama")
        .strings("tokenizer.ggml.tokens", gguf::vocab(n as usize))
        .kv(
            "tokenizer.ggml.scores",
            gguf::Value::ArrF32((0..n).map(|i| -(i as f32)).collect()),
        )
        .kv(
            "tokenizer.ggml.token_type",
            gguf::Value::ArrI32((0..n).map(|i| if i < 3 { 3 } else { 1 }).collect()),
        )
        .u32("tokenizer.ggml.bos_token_id", 1)
        .u32("tokenizer.ggml.eos_token_id", 2)
        .str("tokenizer.chat_template", CHAT_TEMPLATE)
        .tensor("token_embd.weight", &[64, n], ggml::Q4_0)
        .tensor("blk.0.attn_norm.weight", &[64], ggml::F32)
        .tensor("blk.0.attn_q.weight", &[64, 64], ggml::Q4_0)
        .tensor("blk.0.attn_k.weight", &[64, 64], ggml::Q4_0)
        .tensor("blk.0.attn_v.weight", &[64, 64], ggml::Q4_0)
        .tensor("blk.0.attn_output.weight", &[64, 64], ggml::Q4_0)
        .tensor("blk.0.ffn_norm.weight", &[64], ggml::F32)
        .tensor("blk.0.ffn_gate.weight", &[64, 128], ggml::Q4_0)
        .tensor("blk.0.ffn_up.weight", &[64, 128], ggml::Q4_0)
        .tensor("blk.0.ffn_down.weight", &[128, 64], ggml::Q4_0)
        .tensor("output_norm.weight", &[64], ggml::F32)
        .tensor("output.weight", &[64, n], ggml::Q8_0)
}

/// Parameters of [`gguf_chat`] (sum of tensor elements).
pub fn gguf_chat_params() -> u64 {
    gguf_builder("llama").elements()
}

/// A quantized (Q4_0) llama chat model as a single GGUF with embedded tokenizer and template.
pub fn gguf_chat() -> Files {
    Files::new()
        .with(GGUF_CHAT_FILE, gguf_builder("llama").build())
        .with(
            "README.md",
            "---\nlicense: apache-2.0\n---\n# tiny llama chat (GGUF)\n",
        )
}

/// A GGUF of an architecture no engine supports (`general.architecture` = `arch`).
pub fn gguf_arch(arch: &str) -> Files {
    Files::new().with(
        &format!("tiny-{arch}.Q4_0.gguf"),
        gguf_builder(arch).build(),
    )
}

// ---------------------------------------------------------------------------
// HF safetensors chat model (llama)

pub const HF_CHAT_CONTEXT: u64 = 2048;

fn llama_config(extra: Value) -> Value {
    let mut c = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "num_hidden_layers": 1,
        "vocab_size": 128,
        "max_position_embeddings": HF_CHAT_CONTEXT,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": false,
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "transformers_version": "4.44.0",
    });
    if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
        o.extend(e);
    }
    c
}

/// Tensors of the tiny llama in HF naming.
pub fn llama_safetensors(dtype: &str) -> SafetensorsBuilder {
    SafetensorsBuilder::new()
        .metadata("format", "pt")
        .tensor("model.embed_tokens.weight", dtype, &[128, 64])
        .tensor("model.layers.0.input_layernorm.weight", dtype, &[64])
        .tensor("model.layers.0.self_attn.q_proj.weight", dtype, &[64, 64])
        .tensor("model.layers.0.self_attn.k_proj.weight", dtype, &[64, 64])
        .tensor("model.layers.0.self_attn.v_proj.weight", dtype, &[64, 64])
        .tensor("model.layers.0.self_attn.o_proj.weight", dtype, &[64, 64])
        .tensor(
            "model.layers.0.post_attention_layernorm.weight",
            dtype,
            &[64],
        )
        .tensor("model.layers.0.mlp.gate_proj.weight", dtype, &[128, 64])
        .tensor("model.layers.0.mlp.up_proj.weight", dtype, &[128, 64])
        .tensor("model.layers.0.mlp.down_proj.weight", dtype, &[64, 128])
        .tensor("model.norm.weight", dtype, &[64])
        .tensor("lm_head.weight", dtype, &[128, 64])
}

/// Parameters of [`hf_chat`].
pub fn hf_chat_params() -> u64 {
    llama_safetensors("BF16").elements()
}

/// A minimal but well-formed `tokenizer.json` (BPE).
pub fn tokenizer_json() -> Value {
    let vocab: serde_json::Map<String, Value> = gguf::vocab(128)
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, json!(i)))
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": []}
    })
}

fn tokenizer_config(chat_template: bool) -> Value {
    let mut v = json!({
        "add_bos_token": true,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "model_max_length": HF_CHAT_CONTEXT,
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    if chat_template {
        v["chat_template"] = json!(CHAT_TEMPLATE);
    }
    v
}

fn text_tokenizer_files(f: &mut Files, chat_template: bool) {
    f.insert_json("tokenizer.json", &tokenizer_json());
    f.insert_json("tokenizer_config.json", &tokenizer_config(chat_template));
    f.insert_json(
        "special_tokens_map.json",
        &json!({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    );
}

/// An unquantized (bf16) llama chat model in HF layout: config.json, model.safetensors,
/// tokenizer.json and tokenizer_config.json with a chat template.
pub fn hf_chat() -> Files {
    let mut f = Files::new();
    f.insert_json("config.json", &llama_config(json!({})));
    f.insert_json(
        "generation_config.json",
        &json!({"bos_token_id": 1, "eos_token_id": 2, "transformers_version": "4.44.0"}),
    );
    f.insert("model.safetensors", llama_safetensors("BF16").build());
    text_tokenizer_files(&mut f, true);
    f.insert(
        "README.md",
        "---\nlibrary_name: transformers\n---\n# tiny llama chat\n",
    );
    f
}

/// The same model without a chat template: a base model.
pub fn hf_base() -> Files {
    let mut f = hf_chat();
    f.insert_json("tokenizer_config.json", &tokenizer_config(false));
    f
}

/// [`hf_chat`] split into two shards with `model.safetensors.index.json`.
pub fn hf_sharded() -> Files {
    let mut f = hf_chat().without("model.safetensors");
    let a = SafetensorsBuilder::new()
        .metadata("format", "pt")
        .tensor("model.embed_tokens.weight", "BF16", &[128, 64])
        .tensor("model.layers.0.self_attn.q_proj.weight", "BF16", &[64, 64]);
    let b = SafetensorsBuilder::new()
        .metadata("format", "pt")
        .tensor("model.norm.weight", "BF16", &[64])
        .tensor("lm_head.weight", "BF16", &[128, 64]);
    let s1 = "model-00001-of-00002.safetensors";
    let s2 = "model-00002-of-00002.safetensors";
    f.insert(s1, a.build());
    f.insert(s2, b.build());
    f.insert_json(
        "model.safetensors.index.json",
        &json!({
            "metadata": {"total_size": 2 * (a.elements() + b.elements())},
            "weight_map": {
                "model.embed_tokens.weight": s1,
                "model.layers.0.self_attn.q_proj.weight": s1,
                "model.norm.weight": s2,
                "lm_head.weight": s2,
            }
        }),
    );
    f
}

// ---------------------------------------------------------------------------
// MLX 4-bit

pub const MLX_BITS: u32 = 4;
pub const MLX_GROUP_SIZE: u32 = 64;

/// A llama quantized by mlx-lm: `quantization: {bits: 4, group_size: 64}`, U32-packed
/// weights with F16 scales/biases per group of 64.
pub fn mlx_4bit() -> Files {
    mlx_quantized(&MlxOpts::default())
}

/// How [`mlx_quantized`] builds its checkpoint (defaults: [`mlx_4bit`]).
#[derive(Debug, Clone)]
pub struct MlxOpts {
    pub bits: u32,
    pub group_size: u32,
    /// dtype of scales and biases.
    pub scale_dtype: &'static str,
    /// Extra config.json keys (override the llama defaults).
    pub config: Value,
    /// `quantization.mode`, when set.
    pub mode: Option<&'static str>,
    /// Per-module `(path, bits)` overrides: in the config and in the tensors.
    pub overrides: Vec<(&'static str, u32)>,
}

impl Default for MlxOpts {
    fn default() -> Self {
        Self {
            bits: MLX_BITS,
            group_size: MLX_GROUP_SIZE,
            scale_dtype: "F16",
            config: json!({"torch_dtype": "float16"}),
            mode: None,
            overrides: Vec::new(),
        }
    }
}

/// The modules of the tiny llama: (path, out, in).
pub const MLX_MODULES: &[(&str, u64, u64)] = &[
    ("model.embed_tokens", 128, 64),
    ("model.layers.0.self_attn.q_proj", 64, 64),
    ("model.layers.0.self_attn.k_proj", 64, 64),
    ("model.layers.0.self_attn.v_proj", 64, 64),
    ("model.layers.0.self_attn.o_proj", 64, 64),
    ("model.layers.0.mlp.gate_proj", 128, 64),
    ("model.layers.0.mlp.up_proj", 128, 64),
    ("model.layers.0.mlp.down_proj", 64, 128),
    ("lm_head", 128, 64),
];

/// A tiny llama quantized as mlx-lm lays it out, per [`MlxOpts`].
pub fn mlx_quantized(o: &MlxOpts) -> Files {
    let mut st = SafetensorsBuilder::new().metadata("format", "mlx");
    for &(name, out, inp) in MLX_MODULES {
        let bits = o
            .overrides
            .iter()
            .find(|(m, _)| *m == name)
            .map_or(o.bits, |(_, b)| *b) as u64;
        let g = o.group_size as u64;
        st = st
            .tensor(&format!("{name}.weight"), "U32", &[out, inp * bits / 32])
            .tensor(&format!("{name}.scales"), o.scale_dtype, &[out, inp / g]);
        if o.mode.is_none_or(|m| m == "affine") {
            st = st.tensor(&format!("{name}.biases"), o.scale_dtype, &[out, inp / g]);
        }
    }
    st = st
        .tensor("model.layers.0.input_layernorm.weight", "F16", &[64])
        .tensor(
            "model.layers.0.post_attention_layernorm.weight",
            "F16",
            &[64],
        )
        .tensor("model.norm.weight", "F16", &[64]);
    let mut quant = json!({"group_size": o.group_size, "bits": o.bits});
    if let Some(m) = o.mode {
        quant["mode"] = json!(m);
    }
    for (m, b) in &o.overrides {
        quant[*m] = json!({"group_size": o.group_size, "bits": b});
    }
    let mut extra = json!({"quantization": quant, "quantization_config": quant});
    if let (Some(e), Value::Object(c)) = (extra.as_object_mut(), o.config.clone()) {
        e.extend(c);
    }
    let mut f = Files::new();
    f.insert_json("config.json", &llama_config(extra));
    f.insert("model.safetensors", st.build());
    f.insert_json(
        "model.safetensors.index.json",
        &json!({"metadata": {"total_size": 0}, "weight_map": {"model.embed_tokens.weight": "model.safetensors"}}),
    );
    text_tokenizer_files(&mut f, true);
    f.insert(
        "README.md",
        "---\nlibrary_name: mlx\ntags:\n- mlx\n---\n# tiny llama (MLX)\n",
    );
    f
}

/// Parameters of [`mlx_4bit`] as the unpacked weight count (scales/biases excluded).
pub fn mlx_4bit_params() -> u64 {
    let lin = [
        (128, 64),
        (64, 64),
        (64, 64),
        (64, 64),
        (64, 64),
        (128, 64),
        (128, 64),
        (64, 128),
        (128, 64),
    ];
    lin.iter().map(|(o, i)| o * i).sum::<u64>() + 3 * 64
}

// ---------------------------------------------------------------------------
// sentence-transformers embedder (bert)

pub const EMBEDDER_CONTEXT: u64 = 512;

/// A sentence-transformers BERT embedder: config (BertModel), model.safetensors,
/// vocab.txt + tokenizer.json, modules.json and 1_Pooling/config.json.
pub fn st_embedder() -> Files {
    let mut f = Files::new();
    f.insert_json(
        "config.json",
        &json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "vocab_size": 128,
            "max_position_embeddings": EMBEDDER_CONTEXT,
            "type_vocab_size": 2,
            "layer_norm_eps": 1e-12,
            "hidden_act": "gelu",
            "torch_dtype": "float32",
        }),
    );
    f.insert(
        "model.safetensors",
        SafetensorsBuilder::new()
            .metadata("format", "pt")
            .tensor("embeddings.word_embeddings.weight", "F32", &[128, 32])
            .tensor("embeddings.position_embeddings.weight", "F32", &[512, 32])
            .tensor("embeddings.token_type_embeddings.weight", "F32", &[2, 32])
            .tensor(
                "encoder.layer.0.attention.self.query.weight",
                "F32",
                &[32, 32],
            )
            .tensor("pooler.dense.weight", "F32", &[32, 32])
            .build(),
    );
    let vocab: String = gguf::vocab(128).join("\n") + "\n";
    f.insert("vocab.txt", vocab);
    f.insert_json("tokenizer.json", &tokenizer_json());
    f.insert_json(
        "tokenizer_config.json",
        &json!({"do_lower_case": true, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}),
    );
    f.insert_json(
        "modules.json",
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]),
    );
    f.insert_json(
        "1_Pooling/config.json",
        &json!({"word_embedding_dimension": 32, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true,
                "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false}),
    );
    f.insert_json(
        "sentence_bert_config.json",
        &json!({"max_seq_length": 256, "do_lower_case": false}),
    );
    f.insert_json(
        "config_sentence_transformers.json",
        &json!({"__version__": {"sentence_transformers": "2.0.0"}}),
    );
    f
}

// ---------------------------------------------------------------------------
// Whisper

/// A multilingual Whisper checkpoint (vocab 51865): model_type whisper and a
/// WhisperFeatureExtractor preprocessor config.
pub fn whisper() -> Files {
    let mut f = Files::new();
    f.insert_json(
        "config.json",
        &json!({
            "architectures": ["WhisperForConditionalGeneration"],
            "model_type": "whisper",
            "d_model": 64,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "num_mel_bins": 80,
            "vocab_size": 51865,
            "max_source_positions": 1500,
            "max_target_positions": 448,
            "torch_dtype": "float16",
        }),
    );
    f.insert(
        "model.safetensors",
        SafetensorsBuilder::new()
            .metadata("format", "pt")
            .tensor("model.encoder.conv1.weight", "F16", &[64, 80, 3])
            .tensor("model.decoder.embed_tokens.weight", "F16", &[51865, 4])
            .build(),
    );
    f.insert_json(
        "preprocessor_config.json",
        &json!({"feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 80,
                "sampling_rate": 16000, "n_fft": 400, "hop_length": 160, "chunk_length": 30,
                "processor_class": "WhisperProcessor"}),
    );
    f.insert_json("tokenizer.json", &tokenizer_json());
    f.insert_json(
        "tokenizer_config.json",
        &json!({"tokenizer_class": "WhisperTokenizer"}),
    );
    f.insert_json("vocab.json", &json!({"<|endoftext|>": 0, "a": 1}));
    f.insert("merges.txt", "#version: 0.2\n");
    f
}

// ---------------------------------------------------------------------------
// llava-like vision model

/// A llava-style vision-language model: vision_config + text_config, an image
/// preprocessor config, tokenizer and chat template.
pub fn llava() -> Files {
    let mut f = Files::new();
    f.insert_json(
        "config.json",
        &json!({
            "architectures": ["LlavaForConditionalGeneration"],
            "model_type": "llava",
            "image_token_index": 32000,
            "vision_config": {"model_type": "clip_vision_model", "hidden_size": 32, "image_size": 336, "patch_size": 14},
            "text_config": {"model_type": "llama", "hidden_size": 64, "max_position_embeddings": 4096, "vocab_size": 128},
            "torch_dtype": "float16",
        }),
    );
    f.insert(
        "model.safetensors",
        SafetensorsBuilder::new()
            .metadata("format", "pt")
            .tensor(
                "vision_tower.vision_model.embeddings.patch_embedding.weight",
                "F16",
                &[32, 3, 14, 14],
            )
            .tensor("multi_modal_projector.linear_1.weight", "F16", &[64, 32])
            .tensor(
                "language_model.model.embed_tokens.weight",
                "F16",
                &[128, 64],
            )
            .tensor("language_model.lm_head.weight", "F16", &[128, 64])
            .build(),
    );
    f.insert_json(
        "preprocessor_config.json",
        &json!({"image_processor_type": "CLIPImageProcessor", "crop_size": {"height": 336, "width": 336},
                "image_mean": [0.481, 0.457, 0.408], "image_std": [0.268, 0.261, 0.275],
                "processor_class": "LlavaProcessor"}),
    );
    f.insert_json(
        "processor_config.json",
        &json!({"patch_size": 14, "processor_class": "LlavaProcessor"}),
    );
    text_tokenizer_files(&mut f, true);
    f
}

/// A SmolVLM-shaped Idefics3 folder: SigLIP vision tower, connector, llama text
/// model (tensor names as transformers saves them), the Idefics3 processor files.
pub fn smolvlm() -> Files {
    let mut f = Files::new();
    f.insert_json(
        "config.json",
        &json!({
            "architectures": ["Idefics3ForConditionalGeneration"],
            "model_type": "idefics3",
            "image_token_id": 3,
            "scale_factor": 2,
            "vision_config": {"model_type": "idefics3_vision", "hidden_size": 32, "intermediate_size": 64,
                              "num_hidden_layers": 1, "num_attention_heads": 4, "image_size": 64, "patch_size": 8},
            "text_config": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
                            "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
                            "max_position_embeddings": 2048, "vocab_size": 128, "rms_norm_eps": 1e-5},
            "torch_dtype": "float32",
        }),
    );
    f.insert(
        "model.safetensors",
        SafetensorsBuilder::new()
            .metadata("format", "pt")
            .tensor(
                "model.vision_model.embeddings.patch_embedding.weight",
                "F32",
                &[32, 3, 8, 8],
            )
            .tensor(
                "model.connector.modality_projection.proj.weight",
                "F32",
                &[64, 128],
            )
            .tensor("model.text_model.embed_tokens.weight", "F32", &[128, 64])
            .tensor("lm_head.weight", "F32", &[128, 64])
            .build(),
    );
    f.insert_json(
        "preprocessor_config.json",
        &json!({"image_processor_type": "Idefics3ImageProcessor", "size": {"longest_edge": 128},
                "max_image_size": {"longest_edge": 64}, "do_image_splitting": true, "resample": 1,
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                "processor_class": "Idefics3Processor"}),
    );
    f.insert_json(
        "processor_config.json",
        &json!({"image_seq_len": 16, "processor_class": "Idefics3Processor"}),
    );
    text_tokenizer_files(&mut f, true);
    f
}

// ---------------------------------------------------------------------------
// Broken models, one per health rule

/// One health failure each. [`Broken::code`] is the `problems[].code` the probe
/// must report first; [`Broken::mentions`] is a file (or phrase) its reason must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Broken {
    ConfigMissing,
    ConfigInvalid,
    NoWeights,
    LfsPointer,
    MissingShard,
    ShardNotInIndex,
    TruncatedSafetensors,
    CorruptSafetensorsHeader,
    TruncatedGguf,
    CorruptGgufHeader,
    DanglingSymlink,
    PartialDownload,
    MissingTokenizer,
}

/// The stray file [`Broken::ShardNotInIndex`] adds beside the indexed shards.
pub const STRAY_SHARD: &str = "consolidated.safetensors";
/// The blob name [`Broken::PartialDownload`] leaves as `blobs/<etag>.incomplete`.
pub const PARTIAL_ETAG: &str = "3f1c0f8e3d9a4c2b7e6d5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d";

impl Broken {
    pub const ALL: [Broken; 13] = [
        Broken::ConfigMissing,
        Broken::ConfigInvalid,
        Broken::NoWeights,
        Broken::LfsPointer,
        Broken::MissingShard,
        Broken::ShardNotInIndex,
        Broken::TruncatedSafetensors,
        Broken::CorruptSafetensorsHeader,
        Broken::TruncatedGguf,
        Broken::CorruptGgufHeader,
        Broken::DanglingSymlink,
        Broken::PartialDownload,
        Broken::MissingTokenizer,
    ];

    /// kebab-case name, also the repo name under `broken/`.
    pub fn slug(self) -> &'static str {
        match self {
            Broken::ConfigMissing => "config-missing",
            Broken::ConfigInvalid => "config-invalid",
            Broken::NoWeights => "no-weights",
            Broken::LfsPointer => "lfs-pointer",
            Broken::MissingShard => "missing-shard",
            Broken::ShardNotInIndex => "shard-not-in-index",
            Broken::TruncatedSafetensors => "truncated-safetensors",
            Broken::CorruptSafetensorsHeader => "corrupt-safetensors-header",
            Broken::TruncatedGguf => "truncated-gguf",
            Broken::CorruptGgufHeader => "corrupt-gguf-header",
            Broken::DanglingSymlink => "dangling-symlink",
            Broken::PartialDownload => "partial-download",
            Broken::MissingTokenizer => "missing-tokenizer",
        }
    }

    /// `broken/<slug>`.
    pub fn repo_id(self) -> String {
        format!("broken/{}", self.slug())
    }

    /// The first `problems[].code` the probe must report.
    pub fn code(self) -> &'static str {
        match self {
            Broken::ConfigMissing => "config_missing",
            Broken::ConfigInvalid => "config_invalid",
            Broken::NoWeights => "no_weights",
            Broken::LfsPointer => "lfs_pointer",
            Broken::MissingShard => "missing_shard",
            Broken::ShardNotInIndex => "shard_not_in_index",
            Broken::TruncatedSafetensors => "truncated_safetensors",
            Broken::CorruptSafetensorsHeader => "corrupt_safetensors",
            Broken::TruncatedGguf => "truncated_gguf",
            Broken::CorruptGgufHeader => "corrupt_gguf",
            Broken::DanglingSymlink => "dangling_symlink",
            Broken::PartialDownload => "partial_download",
            Broken::MissingTokenizer => "tokenizer_missing",
        }
    }

    /// What the reason must name: the offending file, or the missing thing.
    pub fn mentions(self) -> &'static str {
        match self {
            Broken::ConfigMissing | Broken::ConfigInvalid => "config.json",
            Broken::NoWeights => "weights",
            Broken::LfsPointer
            | Broken::TruncatedSafetensors
            | Broken::CorruptSafetensorsHeader
            | Broken::DanglingSymlink => "model.safetensors",
            Broken::MissingShard => "model-00002-of-00002.safetensors",
            Broken::ShardNotInIndex => STRAY_SHARD,
            Broken::TruncatedGguf | Broken::CorruptGgufHeader => GGUF_CHAT_FILE,
            Broken::PartialDownload => ".incomplete",
            Broken::MissingTokenizer => "tokenizer.json",
        }
    }

    /// True for the cases that exist only in the hub cache (blob-level damage).
    pub fn cache_only(self) -> bool {
        matches!(self, Broken::DanglingSymlink | Broken::PartialDownload)
    }

    /// The snapshot/folder content of this case (before any blob-level damage).
    pub fn files(self) -> Files {
        match self {
            Broken::ConfigMissing => hf_chat().without("config.json"),
            Broken::ConfigInvalid => {
                hf_chat().with("config.json", "{\"model_type\": \"llama\",, }")
            }
            Broken::NoWeights => hf_chat().without("model.safetensors"),
            Broken::LfsPointer => {
                let mut f = hf_chat();
                f.map_bytes("model.safetensors", |b| corrupt::lfs_pointer(&b));
                f
            }
            Broken::MissingShard => hf_sharded().without("model-00002-of-00002.safetensors"),
            Broken::ShardNotInIndex => {
                let stray = SafetensorsBuilder::new()
                    .tensor("model.embed_tokens.weight", "BF16", &[128, 64])
                    .build();
                hf_sharded().with(STRAY_SHARD, stray)
            }
            Broken::TruncatedSafetensors => {
                let mut f = hf_chat();
                f.map_bytes("model.safetensors", |b| corrupt::cut_tail(&b, 4096));
                f
            }
            Broken::CorruptSafetensorsHeader => {
                let mut f = hf_chat();
                f.map_bytes("model.safetensors", |b| corrupt::safetensors_bad_json(&b));
                f
            }
            Broken::TruncatedGguf => {
                let mut f = gguf_chat();
                f.map_bytes(GGUF_CHAT_FILE, |b| {
                    let keep = b.len() / 2;
                    corrupt::truncate(&b, keep)
                });
                f
            }
            Broken::CorruptGgufHeader => {
                let mut f = gguf_chat();
                f.map_bytes(GGUF_CHAT_FILE, |b| corrupt::gguf_bad_magic(&b));
                f
            }
            Broken::DanglingSymlink => hf_chat(),
            Broken::PartialDownload => hf_chat().without("model.safetensors"),
            Broken::MissingTokenizer => hf_chat().without("tokenizer.json"),
        }
    }

    /// Add this case to a hub cache as `broken/<slug>` (with blob-level damage applied).
    pub fn install(self, cache: &HubCache) -> CachedRepo {
        self.install_as(cache, &self.repo_id())
    }

    /// Like [`Broken::install`] under another repo id.
    pub fn install_as(self, cache: &HubCache, repo_id: &str) -> CachedRepo {
        let repo = cache.add(repo_id, &self.files());
        let commit = commit_hash(repo_id);
        match self {
            Broken::DanglingSymlink => {
                repo.delete_blob(&commit, "model.safetensors");
            }
            Broken::PartialDownload => {
                let partial = llama_safetensors("BF16").build();
                repo.add_incomplete(PARTIAL_ETAG, &partial[..partial.len() / 3]);
            }
            _ => {}
        }
        repo
    }
}

// ---------------------------------------------------------------------------
// Whole caches

/// The healthy presets by repo id, as [`standard_cache`] installs them.
pub fn healthy_presets() -> Vec<(&'static str, Files)> {
    vec![
        ("tanto-test/tiny-llama-chat-GGUF", gguf_chat()),
        ("tanto-test/tiny-llama-chat", hf_chat()),
        ("mlx-community/tiny-llama-chat-4bit", mlx_4bit()),
        ("sentence-transformers/tiny-minilm", st_embedder()),
        ("openai/whisper-tiny-test", whisper()),
        ("llava-hf/tiny-llava", llava()),
        ("HuggingFaceTB/tiny-SmolVLM", smolvlm()),
    ]
}

/// Install every healthy preset and every [`Broken`] case.
pub fn standard_cache(cache: &HubCache) {
    for (id, files) in healthy_presets() {
        cache.add(id, &files);
    }
    for b in Broken::ALL {
        b.install(cache);
    }
}

/// A repo with two snapshots sharing their tokenizer blobs: `old` (refs `v1`) and
/// `new` (refs `main`); config.json and the weights differ. Returns (repo, old, new).
pub fn two_snapshots(cache: &HubCache, repo_id: &str) -> (CachedRepo, String, String) {
    let repo = cache.repo(repo_id);
    let old = commit_hash(&format!("{repo_id} old"));
    let new = commit_hash(&format!("{repo_id} new"));
    let v1 = hf_chat();
    let mut v2 = hf_chat();
    v2.update_json("config.json", |c| c["rope_theta"] = json!(500000.0));
    v2.insert("model.safetensors", llama_safetensors("F16").build());
    repo.add_snapshot(&old, &v1);
    repo.add_snapshot(&new, &v2);
    repo.set_snapshot_mtime(
        &old,
        crate::hub::fixture_mtime() - std::time::Duration::from_secs(86_400),
    );
    repo.set_ref("main", &new);
    repo.set_ref("v1", &old);
    (repo, old, new)
}
