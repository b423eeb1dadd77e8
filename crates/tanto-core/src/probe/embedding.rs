//! Probe phase 5b, embeddings: how an embedding model turns token states into
//! one vector, read from the sentence-transformers files and never guessed
//! from the name while those files exist.
//!
//! - `modules.json`: the pipeline, Transformer → Pooling → Dense* → Normalize?
//!   (Normalize is detected from its `type`: the folder is usually absent);
//! - `<pooling dir>/config.json`: the pooling mode(s) and `include_prompt`;
//! - `<dense dir>/config.json`: in/out features, bias, activation;
//! - `sentence_bert_config.json`: `max_seq_length`, `do_lower_case`;
//! - `config_sentence_transformers.json`: `prompts`, `default_prompt_name`.
//!
//! Without `modules.json` tanto falls back to mlx-knife's rules: CLS and the
//! bge query prefix for `bge`/`mxbai` names, `query: `/`passage: ` for e5,
//! mean + L2 otherwise. [`EmbeddingSpec::source`] says which rule applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{read_json, too_large, JsonError};
use super::health::Findings;
use super::{Probe, Scan};

/// How token states become one vector (sentence-transformers' Pooling modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The first token's state.
    Cls,
    /// Mean over the attended tokens.
    Mean,
    /// Element-wise max over the attended tokens.
    Max,
    /// Sum over the attended tokens divided by the square root of their count.
    MeanSqrtLen,
    /// Mean weighted by position (1, 2, …, L).
    WeightedMean,
    /// The last attended token's state (decoder embedders).
    LastToken,
}

impl Pooling {
    /// `1_Pooling/config.json` flags in sentence-transformers' concatenation order.
    const FLAGS: &'static [(&'static str, Pooling)] = &[
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_max_tokens", Pooling::Max),
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
        ("pooling_mode_weightedmean_tokens", Pooling::WeightedMean),
        ("pooling_mode_lasttoken", Pooling::LastToken),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len_tokens",
            Pooling::WeightedMean => "weightedmean",
            Pooling::LastToken => "lasttoken",
        }
    }

    /// The `pooling_mode` string form.
    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "cls" => Pooling::Cls,
            "mean" => Pooling::Mean,
            "max" => Pooling::Max,
            "mean_sqrt_len_tokens" => Pooling::MeanSqrtLen,
            "weightedmean" => Pooling::WeightedMean,
            "lasttoken" => Pooling::LastToken,
            _ => return None,
        })
    }
}

/// A Dense module's activation (`activation_function`, a torch class path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Tanh,
    Relu,
    Gelu,
    Sigmoid,
}

impl Activation {
    fn from_torch(s: &str) -> Option<Self> {
        let last = s.rsplit('.').next().unwrap_or(s);
        Some(match last {
            "Identity" => Activation::Identity,
            "Tanh" => Activation::Tanh,
            "ReLU" => Activation::Relu,
            "GELU" => Activation::Gelu,
            "Sigmoid" => Activation::Sigmoid,
            _ => return None,
        })
    }
}

/// One `sentence_transformers.models.Dense` module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenseLayer {
    /// Its folder, relative to the model folder (`2_Dense`).
    pub path: String,
    pub in_features: usize,
    pub out_features: usize,
    pub bias: bool,
    pub activation: Activation,
}

/// Which rule produced the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecSource {
    /// `modules.json` and the module configs.
    SentenceTransformers,
    /// No `modules.json`; a `bge`/`mxbai` name: CLS + L2, bge query prefix.
    NameRuleBge,
    /// No `modules.json`; an `e5` name: mean + L2, `query: `/`passage: `.
    NameRuleE5,
    /// No `modules.json`: mean + L2.
    Default,
}

impl SpecSource {
    /// The sentence `show --explain` prints.
    pub fn describe(self) -> &'static str {
        match self {
            SpecSource::SentenceTransformers => "from the sentence-transformers files (modules.json)",
            SpecSource::NameRuleBge => {
                "no modules.json: mlx-knife's name rule for bge/mxbai (CLS pooling, L2, bge query prefix)"
            }
            SpecSource::NameRuleE5 => {
                "no modules.json: mlx-knife's name rule for e5 (mean pooling, L2, query:/passage: prefixes)"
            }
            SpecSource::Default => "no modules.json: default rule (mean pooling, L2)",
        }
    }
}

/// Everything the embeddings engine needs beyond the encoder itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingSpec {
    pub source: SpecSource,
    /// One mode, or several whose vectors are concatenated in this order.
    pub pooling: Vec<Pooling>,
    /// False: the prompt's tokens are left out of the pooling.
    pub include_prompt: bool,
    pub dense: Vec<DenseLayer>,
    pub normalize: bool,
    /// Inputs are truncated to this many tokens (special tokens included).
    pub max_seq_length: Option<usize>,
    pub do_lower_case: bool,
    /// Named prompt prefixes (`query`, `document`, …).
    pub prompts: BTreeMap<String, String>,
    pub default_prompt_name: Option<String>,
    /// The encoder's hidden size.
    pub hidden_size: Option<usize>,
    /// Length of the output vector.
    pub dimensions: Option<usize>,
    /// The model was trained for truncated (Matryoshka) vectors, so a smaller
    /// `dimensions` may be served by truncation and re-normalisation.
    pub matryoshka: bool,
}

/// What an embedding is for: selects the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    /// The model's default prompt (`default_prompt_name`), usually none.
    #[default]
    Default,
    Query,
    Document,
}

/// The instruction Qwen3-Embedding uses when none is given (mlx-knife's default too).
pub const DEFAULT_INSTRUCTION: &str =
    "Given a web search query, retrieve relevant passages that answer the query";

impl EmbeddingSpec {
    /// Whether the model's query prompt takes a task instruction
    /// (`Instruct: <task>\nQuery:`, the Qwen3-Embedding / gte-Qwen2 form).
    pub fn takes_instruction(&self) -> bool {
        self.prompts
            .get("query")
            .is_some_and(|q| q.trim_start().starts_with("Instruct:"))
    }

    /// The prompt prefix for an input, or an error sentence for an instruction
    /// the model has no place for.
    pub fn prompt(&self, input: InputType, instruct: Option<&str>) -> Result<String, String> {
        if let Some(task) = instruct {
            if !self.takes_instruction() {
                return Err(
                    "this model takes no task instruction (its query prompt has no `Instruct:` form); embed it as a query instead (`--query`, or `input_type: \"query\"`)"
                        .to_string(),
                );
            }
            return Ok(format!("Instruct: {}\nQuery:", task.trim()));
        }
        let named = |k: &str| self.prompts.get(k).cloned();
        Ok(match input {
            InputType::Query => named("query").unwrap_or_default(),
            InputType::Document => named("document")
                .or_else(|| named("passage"))
                .or_else(|| named("corpus"))
                .unwrap_or_default(),
            InputType::Default => self
                .default_prompt_name
                .as_deref()
                .and_then(named)
                .unwrap_or_default(),
        })
    }

    /// The pooling modes as `show` prints them (`mean`, `cls+mean`).
    pub fn pooling_label(&self) -> String {
        self.pooling
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }
}

fn usize_field(v: &Value, key: &str) -> Option<usize> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

/// A JSON module file: `Ok(None)` when absent; a problem when it is bad.
fn module_json(s: &Scan, rel: &str, f: &mut Findings) -> Result<Option<Value>, ()> {
    if !s.exists(rel) {
        return Ok(None);
    }
    match read_json(&s.dir.join(rel)) {
        Ok(v) if v.is_object() || v.is_array() => Ok(Some(v)),
        Ok(_) => {
            f.fail("config_invalid", format!("{rel} is not a JSON object"));
            Err(())
        }
        Err(JsonError::TooLarge(n)) => {
            too_large(f, rel, n);
            Err(())
        }
        Err(JsonError::Parse(e)) => {
            f.fail("config_invalid", format!("{rel} is not valid JSON: {e}"));
            Err(())
        }
        Err(JsonError::Unreadable) => Ok(None),
    }
}

/// A module folder from modules.json, checked to stay inside the model folder.
fn module_dir(entry: &Value) -> Option<String> {
    let p = entry.get("path").and_then(Value::as_str)?.trim_matches('/');
    let safe = !p.is_empty()
        && p.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'));
    safe.then(|| p.to_string())
}

fn fail_module(f: &mut Findings, msg: String) {
    f.fail("config_invalid", msg);
}

/// Read the pipeline. `cfg` is config.json. Problems go to `f`.
pub(crate) fn read(s: &Scan, cfg: &Value, p: &Probe, f: &mut Findings) -> EmbeddingSpec {
    let hidden = usize_field(cfg, "hidden_size")
        .or_else(|| usize_field(cfg, "d_model"))
        .or_else(|| usize_field(cfg, "n_embd"));
    let mut spec = EmbeddingSpec {
        source: SpecSource::Default,
        pooling: vec![Pooling::Mean],
        include_prompt: true,
        dense: Vec::new(),
        normalize: true,
        max_seq_length: None,
        do_lower_case: false,
        prompts: BTreeMap::new(),
        default_prompt_name: None,
        hidden_size: hidden,
        dimensions: hidden,
        matryoshka: false,
    };
    match module_json(s, "modules.json", f) {
        Ok(Some(modules)) => read_modules(s, &modules, &mut spec, f),
        Ok(None) => name_rule(&p.name, &mut spec),
        Err(()) => {}
    }
    if let Ok(Some(sb)) = module_json(s, "sentence_bert_config.json", f) {
        spec.max_seq_length = usize_field(&sb, "max_seq_length").filter(|n| *n > 0);
        spec.do_lower_case = sb
            .get("do_lower_case")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    if let Ok(Some(st)) = module_json(s, "config_sentence_transformers.json", f) {
        if let Some(pr) = st.get("prompts").and_then(Value::as_object) {
            for (k, v) in pr {
                if let Some(t) = v.as_str() {
                    spec.prompts.insert(k.clone(), t.to_string());
                }
            }
        }
        if let Some(name) = st.get("default_prompt_name").and_then(Value::as_str) {
            spec.default_prompt_name = Some(name.to_string());
        }
        if st.get("truncate_dim").is_some_and(|v| !v.is_null()) {
            spec.matryoshka = true;
        }
    }
    if spec.max_seq_length.is_none() {
        spec.max_seq_length = fallback_max_len(s, cfg, p);
    }
    spec.matryoshka |= declares_matryoshka(s, &p.name);
    spec
}

fn read_modules(s: &Scan, modules: &Value, spec: &mut EmbeddingSpec, f: &mut Findings) {
    spec.source = SpecSource::SentenceTransformers;
    spec.normalize = false;
    let Some(list) = modules.as_array() else {
        fail_module(f, "modules.json is not a list of modules".into());
        return;
    };
    let mut pooling_seen = false;
    for entry in list {
        let ty = entry.get("type").and_then(Value::as_str).unwrap_or("");
        let short = ty.rsplit('.').next().unwrap_or(ty);
        match short {
            "Transformer" => {}
            "Normalize" => spec.normalize = true,
            "Pooling" => {
                pooling_seen = true;
                let Some(dir) = module_dir(entry) else {
                    fail_module(f, "modules.json: the Pooling module has no valid path".into());
                    continue;
                };
                let rel = format!("{dir}/config.json");
                match module_json(s, &rel, f) {
                    Ok(Some(pc)) => read_pooling(&rel, &pc, spec, f),
                    Ok(None) => fail_module(f, format!("{rel} is missing (modules.json lists it)")),
                    Err(()) => {}
                }
            }
            "Dense" => {
                let Some(dir) = module_dir(entry) else {
                    fail_module(f, "modules.json: a Dense module has no valid path".into());
                    continue;
                };
                read_dense(s, &dir, spec, f);
            }
            other => fail_module(
                f,
                format!(
                    "modules.json lists a `{}` module, which tanto does not run (it runs Transformer, Pooling, Dense, Normalize)",
                    if other.is_empty() { "(untyped)" } else { ty }
                ),
            ),
        }
    }
    if !pooling_seen {
        // sentence-transformers adds mean pooling to a bare Transformer.
        spec.pooling = vec![Pooling::Mean];
    }
    let pooled = spec.hidden_size.map(|h| h * spec.pooling.len());
    spec.dimensions = spec.dense.last().map(|d| d.out_features).or(pooled);
}

fn read_pooling(rel: &str, pc: &Value, spec: &mut EmbeddingSpec, f: &mut Findings) {
    let mut modes: Vec<Pooling> = Pooling::FLAGS
        .iter()
        .filter(|(k, _)| pc.get(*k).and_then(Value::as_bool) == Some(true))
        .map(|(_, m)| *m)
        .collect();
    if modes.is_empty() {
        if let Some(name) = pc.get("pooling_mode").and_then(Value::as_str) {
            match Pooling::from_name(name) {
                Some(m) => modes.push(m),
                None => {
                    fail_module(f, format!("{rel}: unknown pooling_mode '{name}'"));
                    return;
                }
            }
        }
    }
    if modes.is_empty() {
        fail_module(f, format!("{rel} enables no pooling mode"));
        return;
    }
    spec.pooling = modes;
    spec.include_prompt = pc
        .get("include_prompt")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if let (Some(h), Some(w)) = (
        spec.hidden_size,
        usize_field(pc, "word_embedding_dimension"),
    ) {
        if h != w {
            fail_module(
                f,
                format!(
                    "{rel}: word_embedding_dimension {w} differs from config.json hidden_size {h}"
                ),
            );
        }
    }
}

fn read_dense(s: &Scan, dir: &str, spec: &mut EmbeddingSpec, f: &mut Findings) {
    let rel = format!("{dir}/config.json");
    let dc = match module_json(s, &rel, f) {
        Ok(Some(v)) => v,
        Ok(None) => return fail_module(f, format!("{rel} is missing (modules.json lists it)")),
        Err(()) => return,
    };
    let (Some(inf), Some(outf)) = (
        usize_field(&dc, "in_features"),
        usize_field(&dc, "out_features"),
    ) else {
        return fail_module(f, format!("{rel} has no in_features/out_features"));
    };
    let act_name = dc
        .get("activation_function")
        .and_then(Value::as_str)
        .unwrap_or("torch.nn.modules.linear.Identity");
    let Some(activation) = Activation::from_torch(act_name) else {
        return fail_module(
            f,
            format!("{rel}: activation '{act_name}' is not supported"),
        );
    };
    let weights = format!("{dir}/model.safetensors");
    if !s.exists(&weights) {
        let why = if s.exists(&format!("{dir}/pytorch_model.bin")) {
            "has only pytorch_model.bin (pickle, not loaded)"
        } else {
            "has no model.safetensors"
        };
        f.fail("no_weights", format!("Dense module {dir} {why}"));
        return;
    }
    spec.dense.push(DenseLayer {
        path: dir.to_string(),
        in_features: inf,
        out_features: outf,
        bias: dc.get("bias").and_then(Value::as_bool).unwrap_or(true),
        activation,
    });
}

/// mlx-knife's name rules, for folders without modules.json.
fn name_rule(name: &str, spec: &mut EmbeddingSpec) {
    let n = name.to_ascii_lowercase();
    let base = n.rsplit('/').next().unwrap_or(&n);
    if base.contains("bge") || base.contains("mxbai") {
        spec.source = SpecSource::NameRuleBge;
        spec.pooling = vec![Pooling::Cls];
        spec.prompts.insert(
            "query".into(),
            "Represent this sentence for searching relevant passages: ".into(),
        );
    } else if base.contains("e5") {
        spec.source = SpecSource::NameRuleE5;
        spec.prompts.insert("query".into(), "query: ".into());
        spec.prompts.insert("document".into(), "passage: ".into());
        // e5 wants its prefix on every document: make it the default prompt.
        spec.default_prompt_name = Some("document".into());
    }
}

/// `tokenizer_config.json`'s `model_max_length` when sane, else the position
/// table (less RoBERTa's padding offset).
fn fallback_max_len(s: &Scan, cfg: &Value, p: &Probe) -> Option<usize> {
    if s.exists("tokenizer_config.json") {
        if let Ok(tc) = read_json(&s.dir.join("tokenizer_config.json")) {
            if let Some(n) = usize_field(&tc, "model_max_length").filter(|n| *n > 0 && *n < 1 << 20)
            {
                return Some(n);
            }
        }
    }
    let pos = usize_field(cfg, "max_position_embeddings")?;
    let roberta = matches!(
        p.config_model_type.as_deref(),
        Some("xlm-roberta" | "roberta")
    );
    Some(if roberta {
        pos.saturating_sub(2).max(1)
    } else {
        pos
    })
}

/// Families published as Matryoshka models, or a model card that says so.
fn declares_matryoshka(s: &Scan, name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let known = [
        "nomic-embed-text-v1.5",
        "qwen3-embedding",
        "mxbai-embed-large-v1",
        "jina-embeddings-v3",
    ];
    if known.iter().any(|k| n.contains(k)) {
        return true;
    }
    if !s.exists("README.md") {
        return false;
    }
    crate::limits::read_capped(&s.dir.join("README.md"), 256 * 1024)
        .map(|b| {
            let text = String::from_utf8_lossy(&b).to_ascii_lowercase();
            // The YAML front matter's tags, or the card's own wording.
            text.contains("matryoshka")
        })
        .unwrap_or(false)
}
