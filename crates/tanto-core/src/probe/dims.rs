//! Probe phase 3b, dimensions: the numbers a loader would size memory by
//! (layers, context, hidden size, heads, vocabulary) from config.json or the
//! GGUF header, checked against the sane limits in [`crate::limits`] and
//! against the file itself (a GGUF cannot have more layers than tensors). An
//! out-of-range number makes the model unhealthy (`implausible_metadata`)
//! instead of reaching an allocation; in-range ones give the attention shape
//! the policy's KV-cache estimate needs.

use serde_json::Value;

use super::gguf::GgufHeader;
use super::health::Findings;
use super::{Attention, Probe};
use crate::limits::{MAX_CONTEXT, MAX_FFN, MAX_HEADS, MAX_HIDDEN, MAX_LAYERS, MAX_VOCAB};

/// One dimension: its value, where it came from, and its limit.
struct Dim {
    source: String,
    value: u64,
    limit: u64,
}

/// A config.json integer (top level, else `text_config`) under the first of `keys`.
fn cfg_u64(cfg: &Value, keys: &[&str]) -> Option<(String, u64)> {
    for scope in [Some(cfg), cfg.get("text_config")].into_iter().flatten() {
        for k in keys {
            if let Some(n) = scope.get(*k).and_then(Value::as_u64) {
                return Some((k.to_string(), n));
            }
        }
    }
    None
}

/// Check every dimension, report the out-of-range ones, and set `p.attention`
/// (and clear an implausible `p.context_length`).
pub(crate) fn check(
    gguf: Option<&GgufHeader>,
    gguf_file: &str,
    cfg: &Value,
    p: &mut Probe,
    f: &mut Findings,
) {
    let mut bad: Vec<String> = Vec::new();
    let mut take = |d: Option<Dim>| -> Option<u64> {
        let d = d?;
        if d.value > d.limit {
            bad.push(format!(
                "{} = {} is implausible (limit {})",
                d.source, d.value, d.limit
            ));
            return None;
        }
        Some(d.value)
    };
    let (layers, heads, kv_heads, hidden, head_dim, context);
    if let Some(g) = gguf {
        let arch = g.architecture().unwrap_or_default().to_string();
        let dim = |key: &str, limit: u64| {
            let k = format!("{arch}.{key}");
            g.get_u64(&k).map(|value| Dim {
                source: format!("{gguf_file}: {k}"),
                value,
                limit,
            })
        };
        layers = take(dim("block_count", MAX_LAYERS));
        context = take(dim("context_length", MAX_CONTEXT));
        hidden = take(dim("embedding_length", MAX_HIDDEN));
        heads = take(dim("attention.head_count", MAX_HEADS));
        kv_heads = take(dim("attention.head_count_kv", MAX_HEADS));
        head_dim = take(dim("attention.key_length", MAX_HIDDEN));
        take(dim("feed_forward_length", MAX_FFN));
        take(dim("vocab_size", MAX_VOCAB));
        take(g.array_lengths.get("tokenizer.ggml.tokens").map(|n| Dim {
            source: format!("{gguf_file}: tokenizer.ggml.tokens ({n} entries)"),
            value: *n,
            limit: MAX_VOCAB,
        }));
        // Every block has at least one tensor of its own.
        let n_tensors = g.tensors.len() as u64;
        if let Some(l) = layers.filter(|l| *l > n_tensors && n_tensors > 0) {
            bad.push(format!(
                "{gguf_file}: {arch}.block_count = {l} but the file has only {n_tensors} tensors"
            ));
        }
    } else {
        let dim = |keys: &[&str], limit: u64| {
            cfg_u64(cfg, keys).map(|(k, value)| Dim {
                source: format!("config.json {k}"),
                value,
                limit,
            })
        };
        layers = take(dim(
            &["num_hidden_layers", "n_layer", "num_layers"],
            MAX_LAYERS,
        ));
        context = take(dim(
            &[
                "max_position_embeddings",
                "n_positions",
                "max_sequence_length",
            ],
            MAX_CONTEXT,
        ));
        hidden = take(dim(&["hidden_size", "n_embd", "d_model"], MAX_HIDDEN));
        heads = take(dim(&["num_attention_heads", "n_head"], MAX_HEADS));
        kv_heads = take(dim(&["num_key_value_heads"], MAX_HEADS));
        head_dim = take(dim(&["head_dim"], MAX_HIDDEN));
        take(dim(&["intermediate_size", "n_inner"], MAX_FFN));
        take(dim(&["vocab_size"], MAX_VOCAB));
    }
    let _ = context;
    if let Some(c) = p
        .context_length
        .filter(|c| *c > MAX_CONTEXT && bad.is_empty())
    {
        bad.push(format!(
            "context length {c} is implausible (limit {MAX_CONTEXT})"
        ));
    }
    if !bad.is_empty() {
        p.context_length = None;
        f.fail(
            "implausible_metadata",
            format!("Implausible model dimensions: {}", bad.join("; ")),
        );
        return;
    }
    let head_dim = head_dim.or_else(|| match (hidden, heads) {
        (Some(h), Some(n)) if n > 0 => Some(h / n),
        _ => None,
    });
    if let (Some(layers), Some(kv_heads), Some(head_dim)) = (layers, kv_heads.or(heads), head_dim) {
        if layers > 0 && kv_heads > 0 && head_dim > 0 {
            p.attention = Some(Attention {
                layers,
                kv_heads,
                head_dim,
            });
        }
    }
}
