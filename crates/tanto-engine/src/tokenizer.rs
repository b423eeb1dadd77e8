//! Tokenizers: `tokenizer.json` through the `tokenizers` crate, or one built from a
//! GGUF file's `tokenizer.ggml.*` metadata (byte-level BPE `gpt2` and SentencePiece
//! `llama`). The GGUF tokenizer is assembled as a `tokenizer.json` document and parsed
//! by the same crate, so both paths share one implementation of the algorithms.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::{json, Value};

use crate::api::EngineError;
use crate::gguf::{md_bool, md_num_array, md_str, md_str_array, md_u32, Metadata};

/// A tokenizer plus the facts generation needs (special tokens, BOS policy).
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub unk_token: Option<String>,
    pub pad_token: Option<String>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

fn tk_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Tokenizer(e.to_string())
}

/// `tokenizers::Tokenizer::from_bytes` behind a panic guard: the crate's serde
/// code `expect`s on some malformed documents (a syntax error inside
/// `"decoder"` panics in tokenizers 0.22), and a damaged tokenizer.json must
/// be an error, not a crash. Found by the `tokenizer_json` fuzz target.
fn parse_tokenizer_json(bytes: &[u8]) -> Result<tokenizers::Tokenizer, EngineError> {
    std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(bytes))
        .map_err(|_| tk_err("malformed tokenizer.json"))?
        .map_err(tk_err)
}

impl TextTokenizer {
    /// Load `tokenizer.json`; special-token names come from `tokenizer_config.json`
    /// and `special_tokens_map.json` when present.
    pub fn from_dir(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join("tokenizer.json");
        let bytes = tanto_core::limits::read_capped(&path, tanto_core::limits::TOKENIZER_JSON_MAX)
            .map_err(|e| EngineError::Io {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let inner = parse_tokenizer_json(&bytes)?;
        let mut tok = Self {
            inner,
            bos_token: None,
            eos_token: None,
            unk_token: None,
            pad_token: None,
        };
        for name in ["special_tokens_map.json", "tokenizer_config.json"] {
            let Some(cfg) = read_json_opt(&dir.join(name))? else {
                continue;
            };
            let get = |k: &str| cfg.get(k).and_then(token_content);
            tok.bos_token = get("bos_token").or(tok.bos_token.take());
            tok.eos_token = get("eos_token").or(tok.eos_token.take());
            tok.unk_token = get("unk_token").or(tok.unk_token.take());
            tok.pad_token = get("pad_token").or(tok.pad_token.take());
        }
        Ok(tok)
    }

    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, EngineError> {
        let inner = parse_tokenizer_json(bytes)?;
        Ok(Self {
            inner,
            bos_token: None,
            eos_token: None,
            unk_token: None,
            pad_token: None,
        })
    }

    /// Build from GGUF metadata.
    pub fn from_gguf(md: &Metadata) -> Result<Self, EngineError> {
        let doc = gguf_tokenizer_json(md)?;
        let bytes = serde_json::to_vec(&doc.json).map_err(tk_err)?;
        let inner = parse_tokenizer_json(&bytes)?;
        Ok(Self {
            inner,
            bos_token: doc.bos,
            eos_token: doc.eos,
            unk_token: doc.unk,
            pad_token: doc.pad,
        })
    }

    /// Encode. `add_special_tokens` applies the post-processor (BOS etc.); chat
    /// prompts are rendered text that already carries its special tokens, so they
    /// are encoded without it (as `apply_chat_template(tokenize=True)` does).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, EngineError> {
        // Guarded like parsing: a post-processor template naming a special token
        // it does not define loads fine and then panics here (tokenizers 0.22).
        let enc = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.inner.encode_fast(text, add_special_tokens)
        }))
        .map_err(|_| tk_err("the tokenizer failed on this input (malformed tokenizer.json)"))?
        .map_err(tk_err)?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, EngineError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.inner.decode(ids, skip_special_tokens)
        }))
        .map_err(|_| tk_err("the tokenizer failed on these ids (malformed tokenizer.json)"))?
        .map_err(tk_err)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Ids of tokens that are registered as *special* added tokens.
    pub fn special_ids(&self) -> HashSet<u32> {
        self.inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| id)
            .collect()
    }

    /// End-of-turn markers that exist as single special tokens in this vocabulary.
    pub fn end_of_turn_ids(&self) -> Vec<u32> {
        const MARKERS: [&str; 7] = [
            "<|im_end|>",
            "<|eot_id|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<|eom_id|>",
            "</s>",
        ];
        let added = self.inner.get_added_tokens_decoder();
        let mut out = Vec::new();
        for m in MARKERS {
            if let Some((id, _)) = added.iter().find(|(_, t)| t.content == m) {
                out.push(*id);
            }
        }
        out.sort_unstable();
        out
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

pub(crate) fn read_json_opt(path: &Path) -> Result<Option<Value>, EngineError> {
    use tanto_core::limits::{read_capped, ReadError, JSON_MAX};
    // Capped, and only from a regular file: a fifo or a link to /dev/zero in a
    // stranger's model folder is an error, not a hang.
    match read_capped(path, JSON_MAX) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| EngineError::InvalidModel {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(ReadError::NotFound) => Ok(None),
        Err(e @ (ReadError::NotRegular(_) | ReadError::TooLarge { .. })) => {
            Err(EngineError::InvalidModel {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
        Err(e) => Err(EngineError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

/// `"<s>"` or `{"content": "<s>", ...}`.
pub(crate) fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

struct GgufTokenizerDoc {
    json: Value,
    bos: Option<String>,
    eos: Option<String>,
    unk: Option<String>,
    pad: Option<String>,
}

// Pre-tokenizer split expressions, as used for these `tokenizer.ggml.pre` families.
const RE_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn split_then_bytelevel(regex: &str) -> Value {
    json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
    ]})
}

/// The pre-tokenizer for a byte-level BPE vocabulary, keyed by `tokenizer.ggml.pre`.
fn bpe_pre_tokenizer(pre: &str) -> Value {
    match pre {
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
        ]}),
        "llama3" | "llama-bpe" | "llama-v3" | "falcon3" | "dbrx" | "smaug-bpe" | "pixtral" => {
            split_then_bytelevel(RE_LLAMA3)
        }
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "megrez" | "qwen35" => {
            split_then_bytelevel(RE_QWEN2)
        }
        "tekken" => split_then_bytelevel(RE_TEKKEN),
        // gpt-2, default, starcoder, olmo, refact, … : GPT-2's own expression.
        _ => {
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
        }
    }
}

fn uses_ignore_merges(pre: &str) -> bool {
    matches!(pre, "llama3" | "llama-bpe" | "llama-v3")
}

const TT_UNKNOWN: i64 = 2;
const TT_CONTROL: i64 = 3;
const TT_USER_DEFINED: i64 = 4;
const TT_BYTE: i64 = 6;

fn gguf_tokenizer_json(md: &Metadata) -> Result<GgufTokenizerDoc, EngineError> {
    let model = md_str(md, "tokenizer.ggml.model")
        .ok_or_else(|| tk_err("GGUF has no tokenizer.ggml.model"))?;
    let tokens = md_str_array(md, "tokenizer.ggml.tokens")
        .ok_or_else(|| tk_err("GGUF has no tokenizer.ggml.tokens"))?;
    let types: Vec<i64> = md_num_array(md, "tokenizer.ggml.token_type")
        .map(|v| v.into_iter().map(|x| x as i64).collect())
        .unwrap_or_else(|| vec![1; tokens.len()]);
    let name_of = |key: &str| -> Option<String> {
        md_u32(md, key).and_then(|id| tokens.get(id as usize).cloned())
    };
    let bos_id = md_u32(md, "tokenizer.ggml.bos_token_id");
    let bos = name_of("tokenizer.ggml.bos_token_id");
    let eos = name_of("tokenizer.ggml.eos_token_id");
    let unk = name_of("tokenizer.ggml.unknown_token_id");
    let pad = name_of("tokenizer.ggml.padding_token_id");

    let mut added = Vec::new();
    for (id, (tok, ty)) in tokens.iter().zip(types.iter()).enumerate() {
        let special = *ty == TT_CONTROL;
        if special || *ty == TT_USER_DEFINED || (*ty == TT_UNKNOWN && model == "llama") {
            added.push(json!({
                "id": id, "content": tok, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": special || *ty == TT_UNKNOWN,
            }));
        }
    }

    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    for (id, tok) in tokens.iter().enumerate() {
        vocab.entry(tok.clone()).or_insert(json!(id));
    }

    let (json_model, normalizer, pre_tokenizer, decoder, default_add_bos) = match model {
        "gpt2" => {
            let merges = md_str_array(md, "tokenizer.ggml.merges")
                .ok_or_else(|| tk_err("GGUF gpt2 tokenizer has no merges"))?;
            let merges: Vec<Value> = merges
                .iter()
                .filter_map(|m| m.split_once(' ').map(|(a, b)| json!([a, b])))
                .collect();
            let pre = md_str(md, "tokenizer.ggml.pre").unwrap_or("default");
            (
                json!({"type": "BPE", "dropout": null, "unk_token": null,
                       "continuing_subword_prefix": null, "end_of_word_suffix": null,
                       "fuse_unk": false, "byte_fallback": false,
                       "ignore_merges": uses_ignore_merges(pre),
                       "vocab": vocab, "merges": merges}),
                Value::Null,
                bpe_pre_tokenizer(pre),
                json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}),
                false,
            )
        }
        "llama" => {
            let scores = md_num_array(md, "tokenizer.ggml.scores").unwrap_or_default();
            let merges = spm_merges(&tokens, &types, &scores)?;
            let add_space_prefix = md_bool(md, "tokenizer.ggml.add_space_prefix").unwrap_or(true);
            let mut norms = Vec::new();
            if add_space_prefix {
                norms.push(json!({"type": "Prepend", "prepend": "\u{2581}"}));
            }
            norms.push(
                json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}),
            );
            let mut decs = vec![
                json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
                json!({"type": "ByteFallback"}),
                json!({"type": "Fuse"}),
            ];
            if add_space_prefix {
                decs.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
            }
            (
                json!({"type": "BPE", "dropout": null, "unk_token": unk,
                       "continuing_subword_prefix": null, "end_of_word_suffix": null,
                       "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                       "vocab": vocab, "merges": merges}),
                json!({"type": "Sequence", "normalizers": norms}),
                Value::Null,
                json!({"type": "Sequence", "decoders": decs}),
                true,
            )
        }
        other => {
            return Err(tk_err(format!(
                "GGUF tokenizer model '{other}' is not supported (gpt2 and llama are)"
            )))
        }
    };

    let add_bos = md_bool(md, "tokenizer.ggml.add_bos_token").unwrap_or(default_add_bos);
    let post_processor = match (add_bos, bos_id, &bos) {
        (true, Some(id), Some(name)) => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": name, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": name, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": name, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {name.clone(): {"id": name, "ids": [id], "tokens": [name]}}
        }),
        _ => Value::Null,
    };

    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": decoder,
        "model": json_model,
    });
    Ok(GgufTokenizerDoc {
        json,
        bos,
        eos,
        unk,
        pad,
    })
}

/// Bounds on the merges built from a SentencePiece vocabulary. Real vocabularies
/// give about two merges per piece (Llama 2: 61k for 32k pieces); a crafted one
/// (`a`, `aa`, `aaa`, …) gives one merge per split of every piece, quadratic in
/// the piece length, and gigabytes from a few-MB file.
pub const MAX_SPM_MERGES: usize = 2_000_000;
/// Bytes of merge text (both halves), the other quadratic quantity.
pub const MAX_SPM_MERGE_BYTES: usize = 128 << 20;

/// SentencePiece-BPE merges from piece scores: every split of a piece into two
/// pieces of the vocabulary is a merge, ranked by the merged piece's score (higher
/// first), which is how SentencePiece's BPE picks the next pair.
fn spm_merges(tokens: &[String], types: &[i64], scores: &[f64]) -> Result<Vec<Value>, EngineError> {
    let index: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut merges: Vec<(f64, usize, usize, &str, &str)> = Vec::new();
    let mut bytes = 0usize;
    for (id, tok) in tokens.iter().enumerate() {
        let ty = types.get(id).copied().unwrap_or(1);
        if ty == TT_CONTROL || ty == TT_BYTE || ty == TT_UNKNOWN || tok.chars().count() < 2 {
            continue;
        }
        let score = scores.get(id).copied().unwrap_or(0.0);
        for (pos, _) in tok.char_indices().skip(1) {
            let (l, r) = tok.split_at(pos);
            if let (Some(&li), Some(&ri)) = (index.get(l), index.get(r)) {
                merges.push((score, li, ri, l, r));
                bytes += tok.len();
                if merges.len() > MAX_SPM_MERGES || bytes > MAX_SPM_MERGE_BYTES {
                    return Err(tk_err(format!(
                        "SentencePiece vocabulary of {} pieces yields more than {} merges or {} MiB of merge text; the vocabulary is implausible",
                        tokens.len(),
                        MAX_SPM_MERGES,
                        MAX_SPM_MERGE_BYTES >> 20
                    )));
                }
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    Ok(merges
        .into_iter()
        .map(|(_, _, _, l, r)| json!([l, r]))
        .collect())
}
