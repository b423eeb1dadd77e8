//! `tanto embed MODEL [TEXT…|-] [--batch] [--query|--instruct S] [--json]`:
//! one vector per input, in mlx-knife's record format.
//!
//! Each TEXT argument is one input; `-` reads standard input as one text;
//! `--batch` reads JSONL records with a `text` field (other fields pass
//! through to the output record). Output is JSONL (one record per input,
//! written as each chunk finishes), or with `--json` the envelope with
//! `data.records`. Resolve → probe → policy run before anything loads.

use std::io::{IsTerminal, Read, Write};

use serde_json::{json, Map, Value};
use tanto_core::error::{ErrorType, TantoError};
use tanto_core::policy::{self, PolicyConfig, Request};
use tanto_core::resolve::Stores;
use tanto_core::{host, probe, report};
use tanto_engine::embed::{self, EmbedInput, InputType};
use tanto_engine::LoadOptions;

use crate::output::{self, engine_err, CmdResult};

/// Inputs per call into the engine: progress granularity and the most
/// records held before they are written.
const CHUNK: usize = 256;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model spec: org/name, a unique fuzzy name, name@rev, a path or a workspace
    pub model: String,
    /// Texts to embed, one record each; `-` reads standard input as one text
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,
    /// Read JSONL from standard input: one object per line with a `text` field
    #[arg(long)]
    pub batch: bool,
    /// Embed as search queries (the model's query prompt, e.g. `query: `)
    #[arg(long)]
    pub query: bool,
    /// Embed as queries with this task instruction (Qwen3-Embedding style)
    #[arg(long, value_name = "TASK")]
    pub instruct: Option<String>,
    /// CPU threads for inference (default: the engine's choice)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the JSON envelope with `data.records` instead of JSONL
    #[arg(long)]
    pub json: bool,
    /// Never download: an exact ORG/NAME that is not in the cache is an error
    /// (by default it is pulled first; fuzzy names never are)
    #[arg(long)]
    pub no_pull: bool,
}

fn invalid(msg: impl Into<String>) -> TantoError {
    TantoError::new(ErrorType::ValidationError, msg)
}

/// One output record: passthrough fields first, then mlx-knife's fields. The
/// vector serializes as f32 (shortest round-trip form), not widened to f64.
#[derive(serde::Serialize)]
struct OutRecord<'a> {
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
    text: &'a str,
    embedding: Vec<f32>,
    metadata: &'a Value,
}

/// The `--json` envelope around the records.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    status: &'static str,
    command: &'static str,
    data: EnvelopeData<'a>,
    error: Option<()>,
}

#[derive(serde::Serialize)]
struct EnvelopeData<'a> {
    model: &'a str,
    dimensions: usize,
    count: usize,
    records: Vec<OutRecord<'a>>,
}

/// One input with the fields it passes through.
#[derive(Debug)]
struct Record {
    text: String,
    extra: Map<String, Value>,
}

/// Parse `--batch` JSONL (blank lines skipped).
fn parse_jsonl(input: &str) -> Result<Vec<Record>, TantoError> {
    let mut out = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| invalid(format!("Malformed JSONL on line {}: {e}", n + 1)))?;
        let Value::Object(mut o) = v else {
            return Err(invalid(format!(
                "Malformed JSONL on line {}: not a JSON object",
                n + 1
            )));
        };
        let text = match o.remove("text") {
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(invalid(format!(
                    "JSONL line {} has a 'text' field that is not a string",
                    n + 1
                )))
            }
            None => {
                return Err(invalid(format!(
                    "JSONL line {} missing 'text' field",
                    n + 1
                )))
            }
        };
        out.push(Record { text, extra: o });
    }
    if out.is_empty() {
        return Err(invalid("No input records found (--batch)"));
    }
    Ok(out)
}

fn read_stdin() -> Result<String, TantoError> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| invalid(format!("cannot read stdin: {e}")))?;
    Ok(s)
}

fn gather(a: &Args) -> Result<Vec<Record>, TantoError> {
    if a.batch {
        if !a.texts.is_empty() {
            return Err(invalid(
                "--batch reads JSONL from standard input; give no TEXT arguments",
            ));
        }
        return parse_jsonl(&read_stdin()?);
    }
    if a.texts.is_empty() {
        return Err(invalid("embed requires <text> or '-' to read stdin")
            .with_hint("tanto embed MODEL \"some text\", or: cat doc.txt | tanto embed MODEL -"));
    }
    let mut out = Vec::new();
    for t in &a.texts {
        let text = if t == "-" {
            read_stdin()?.trim_end_matches(['\n', '\r']).to_string()
        } else {
            t.clone()
        };
        out.push(Record {
            text,
            extra: Map::new(),
        });
    }
    Ok(out)
}

pub fn run(a: Args) -> CmdResult {
    let stores = Stores::from_env();
    let resolved =
        crate::cmd::hub::resolve_or_pull(&a.model, &stores, !a.no_pull, a.json, "embed")?;
    if resolved.fuzzy {
        eprintln!(
            "tanto embed: note: '{}' matched {}",
            a.model, resolved.display_name
        );
    }
    let probe = probe::probe_resolved(&resolved);
    let (plan, decision) = policy::plan(
        &probe,
        Request::Embeddings,
        &host::detect(),
        &PolicyConfig::from_env(),
    )?;
    for w in &decision.warnings {
        eprintln!("tanto embed: warning: {w}");
    }
    let spec = probe.embedding.clone().ok_or_else(|| {
        output::internal("the probe found an embedding model without its pipeline")
    })?;
    let records = gather(&a)?;
    if let Some(i) = records.iter().position(|r| r.text.is_empty()) {
        return Err(invalid(format!("input {} is an empty string", i + 1)).into());
    }
    let input_type = if a.query || a.instruct.is_some() {
        InputType::Query
    } else {
        InputType::Default
    };
    // An instruction the model has no place for fails before the load.
    spec.prompt(input_type, a.instruct.as_deref())
        .map_err(invalid)?;

    let mut model = embed::load_embedding_model(&plan, &spec, &LoadOptions { threads: a.threads })
        .map_err(engine_err)?;
    let (model_id, content_hash) = report::vector_identity(&resolved);
    let dims = model.info().dimensions;
    let metadata = json!({
        "model": model_id,
        "dimensions": dims,
        "content_hash": content_hash,
        "device": "cpu",
    });

    let progress = (records.len() > CHUNK && std::io::stderr().is_terminal()).then(|| {
        let pb = indicatif::ProgressBar::new(records.len() as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "embedding {bar:30} {pos}/{len} ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });
    let mut all: Vec<OutRecord> = Vec::new();
    let mut so = std::io::stdout().lock();
    for chunk in records.chunks(CHUNK) {
        let inputs: Vec<EmbedInput> = chunk
            .iter()
            .map(|r| EmbedInput::Text(r.text.clone()))
            .collect();
        let vecs = model
            .embed(&inputs, input_type, a.instruct.as_deref())
            .map_err(engine_err)?;
        for (r, v) in chunk.iter().zip(vecs) {
            let rec = OutRecord {
                extra: &r.extra,
                text: &r.text,
                embedding: v,
                metadata: &metadata,
            };
            if a.json {
                all.push(rec);
                continue;
            }
            let line = serde_json::to_string(&rec).map_err(|e| output::internal(e.to_string()))?;
            if writeln!(so, "{line}").is_err() {
                // A closed pipe (`| head`): stop quietly.
                return Ok(output::EXIT_OK);
            }
        }
        if let Some(pb) = &progress {
            pb.inc(chunk.len() as u64);
        }
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    if a.json {
        let env = Envelope {
            status: "success",
            command: "embed",
            data: EnvelopeData {
                model: &model_id,
                dimensions: dims,
                count: all.len(),
                records: all,
            },
            error: None,
        };
        let text =
            serde_json::to_string_pretty(&env).map_err(|e| output::internal(e.to_string()))?;
        let _ = writeln!(so, "{text}");
    }
    let _ = so.flush();
    Ok(output::EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_passes_fields_through_and_names_bad_lines() {
        let r = parse_jsonl("{\"id\": 7, \"text\": \"a\"}\n\n{\"text\": \"b\"}\n").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].text, "a");
        assert_eq!(r[0].extra.get("id"), Some(&json!(7)));
        let e = parse_jsonl("{\"text\": \"a\"}\n{oops\n").unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = parse_jsonl("{\"id\": 1}\n").unwrap_err();
        assert!(e.message.contains("missing 'text'"), "{}", e.message);
        let e = parse_jsonl("[1]\n").unwrap_err();
        assert!(e.message.contains("not a JSON object"), "{}", e.message);
        assert!(parse_jsonl("\n\n")
            .unwrap_err()
            .message
            .contains("No input records"));
    }
}
