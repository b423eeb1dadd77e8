//! `POST /v1/embeddings`: OpenAI's request shape, validated before anything
//! loads, and the response (float or base64 vectors, token usage).
//!
//! `input` is a string, an array of strings, one token array or an array of
//! token arrays. Texts longer than the model's `max_seq_length` are truncated
//! there (as sentence-transformers does); token arrays are used as given.
//! Extensions, as mlx-knife: `input_type` (`query` | `document`) and
//! `instruct` (a task for Qwen3-Embedding-style models).

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use tanto_engine::embed::{EmbedInput, InputType};

use crate::error::ApiError;

/// Most inputs in one request (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Float,
    Base64,
}

/// A validated embeddings request.
#[derive(Debug)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub inputs: Vec<EmbedInput>,
    pub encoding: Encoding,
    pub dimensions: Option<usize>,
    pub input_type: InputType,
    pub instruct: Option<String>,
}

fn token_array(v: &[Value], at: &str) -> Result<Vec<u32>, ApiError> {
    v.iter()
        .map(|t| {
            t.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "input",
                        format!("{at} must hold non-negative integer token ids; found {t}"),
                    )
                })
        })
        .collect()
}

fn parse_input(v: &Value) -> Result<Vec<EmbedInput>, ApiError> {
    let empty_text = |at: String| {
        ApiError::invalid(
            "input",
            format!("{at} is an empty string; every input needs text"),
        )
    };
    match v {
        Value::String(s) if s.is_empty() => Err(empty_text("input".into())),
        Value::String(s) => Ok(vec![EmbedInput::Text(s.clone())]),
        Value::Array(a) if a.is_empty() => Err(ApiError::invalid(
            "input",
            "input is an empty array; send at least one string or token array",
        )),
        Value::Array(a) if a.len() > MAX_INPUTS => Err(ApiError::invalid(
            "input",
            format!(
                "input has {} items; at most {MAX_INPUTS} are accepted per request",
                a.len()
            ),
        )),
        Value::Array(a) if a.iter().all(Value::is_number) => {
            Ok(vec![EmbedInput::Tokens(token_array(a, "input")?)])
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) if s.is_empty() => Err(empty_text(format!("input[{i}]"))),
                Value::String(s) => Ok(EmbedInput::Text(s.clone())),
                Value::Array(t) if t.is_empty() => Err(ApiError::invalid(
                    "input",
                    format!("input[{i}] is an empty token array"),
                )),
                Value::Array(t) => Ok(EmbedInput::Tokens(token_array(t, &format!("input[{i}]"))?)),
                other => Err(ApiError::invalid(
                    "input",
                    format!(
                        "input[{i}] is {}; items must all be strings or all be token arrays",
                        kind(other)
                    ),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|items| {
                let texts = items
                    .iter()
                    .filter(|x| matches!(x, EmbedInput::Text(_)))
                    .count();
                if texts != 0 && texts != items.len() {
                    return Err(ApiError::invalid(
                        "input",
                        "input mixes strings and token arrays; send one kind per request",
                    ));
                }
                Ok(items)
            }),
        Value::Null => Err(ApiError::invalid("input", "input is required")),
        other => Err(ApiError::invalid(
            "input",
            format!(
                "input must be a string, an array of strings or token arrays; got {}",
                kind(other)
            ),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Validate the body. `default_model` serves requests without `model`.
pub fn parse_embeddings(
    body: &Value,
    default_model: Option<&str>,
) -> Result<EmbeddingsRequest, ApiError> {
    let Some(o) = body.as_object() else {
        return Err(ApiError::invalid(
            "body",
            "the request body must be a JSON object",
        ));
    };
    let model = match o.get("model") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        None | Some(Value::Null) => default_model
            .map(str::to_string)
            .ok_or_else(|| ApiError::invalid("model", "model is required"))?,
        Some(_) => {
            return Err(ApiError::invalid(
                "model",
                "model must be a non-empty string",
            ))
        }
    };
    let inputs = parse_input(o.get("input").unwrap_or(&Value::Null))?;
    let encoding = match o.get("encoding_format") {
        None | Some(Value::Null) => Encoding::Float,
        Some(Value::String(s)) if s == "float" => Encoding::Float,
        Some(Value::String(s)) if s == "base64" => Encoding::Base64,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("encoding_format must be \"float\" or \"base64\"; got {other}"),
            ))
        }
    };
    let dimensions = match o.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|d| *d > 0)
                .and_then(|d| usize::try_from(d).ok())
                .ok_or_else(|| {
                    ApiError::invalid("dimensions", "dimensions must be a positive integer")
                })?,
        ),
    };
    let input_type = match o.get("input_type") {
        None | Some(Value::Null) => InputType::Default,
        Some(Value::String(s)) if s == "query" => InputType::Query,
        Some(Value::String(s)) if s == "document" || s == "passage" => InputType::Document,
        Some(other) => {
            return Err(ApiError::invalid(
                "input_type",
                format!("input_type must be \"query\" or \"document\"; got {other}"),
            ))
        }
    };
    let instruct = match o.get("instruct") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                "instruct",
                "instruct must be a non-empty string",
            ))
        }
    };
    let input_type = if instruct.is_some() {
        InputType::Query
    } else {
        input_type
    };
    Ok(EmbeddingsRequest {
        model,
        inputs,
        encoding,
        dimensions,
        input_type,
        instruct,
    })
}

/// Truncate to `dims` and re-normalise (Matryoshka), or refuse.
pub fn apply_dimensions(
    vecs: &mut [Vec<f32>],
    want: Option<usize>,
    native: usize,
    matryoshka: bool,
) -> Result<(), ApiError> {
    let Some(d) = want else { return Ok(()) };
    if d == native {
        return Ok(());
    }
    if d > native {
        return Err(ApiError::invalid(
            "dimensions",
            format!("dimensions {d} is larger than the model's native size {native}; omit dimensions or send {native}"),
        ));
    }
    if !matryoshka {
        return Err(ApiError::invalid(
            "dimensions",
            format!("dimensions {d} differs from the model's native size {native}, and this is not a Matryoshka model, so its vectors cannot be shortened; omit dimensions or send {native}"),
        ));
    }
    for v in vecs.iter_mut() {
        v.truncate(d);
        tanto_engine::embed::pooling::l2_normalize(v);
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize)]
struct Body<'a> {
    object: &'static str,
    data: Vec<Item>,
    model: &'a str,
    usage: Usage,
    system_fingerprint: &'a str,
}

/// Little-endian f32 bytes, standard base64 (what the SDKs decode).
pub fn to_base64(v: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The response body (f32 vectors keep their shortest form in JSON).
pub fn render(
    vecs: Vec<Vec<f32>>,
    encoding: Encoding,
    model: &str,
    tokens: usize,
    fingerprint: &str,
) -> String {
    let data = vecs
        .into_iter()
        .enumerate()
        .map(|(index, v)| Item {
            object: "embedding",
            index,
            embedding: match encoding {
                Encoding::Float => Vector::Float(v),
                Encoding::Base64 => Vector::Base64(to_base64(&v)),
            },
        })
        .collect();
    let body = Body {
        object: "list",
        data,
        model,
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
        system_fingerprint: fingerprint,
    };
    serde_json::to_string(&body).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<EmbeddingsRequest, ApiError> {
        parse_embeddings(&v, None)
    }

    #[test]
    fn every_input_shape_parses() {
        let r = parse(json!({"model": "m", "input": "hi"})).unwrap();
        assert_eq!(r.inputs, vec![EmbedInput::Text("hi".into())]);
        assert_eq!(r.encoding, Encoding::Float);
        let r =
            parse(json!({"model": "m", "input": ["a", "b"], "encoding_format": "base64"})).unwrap();
        assert_eq!(r.inputs.len(), 2);
        assert_eq!(r.encoding, Encoding::Base64);
        let r = parse(json!({"model": "m", "input": [1, 2, 3]})).unwrap();
        assert_eq!(r.inputs, vec![EmbedInput::Tokens(vec![1, 2, 3])]);
        let r = parse(json!({"model": "m", "input": [[1], [2, 3]]})).unwrap();
        assert_eq!(r.inputs.len(), 2);
        let r = parse(json!({"model": "m", "input": "q", "instruct": "find"})).unwrap();
        assert_eq!(r.input_type, InputType::Query);
    }

    #[test]
    fn bad_inputs_name_the_field() {
        for (body, needle) in [
            (json!({"model": "m", "input": ""}), "empty string"),
            (json!({"model": "m", "input": []}), "empty array"),
            (json!({"model": "m", "input": ["a", ""]}), "input[1]"),
            (
                json!({"model": "m", "input": ["a", 3]}),
                "input[1] is a number",
            ),
            (json!({"model": "m", "input": ["a", [1]]}), "mixes"),
            (json!({"model": "m", "input": [-1]}), "non-negative"),
            (json!({"model": "m", "input": [[]]}), "empty token array"),
            (json!({"model": "m", "input": {"a": 1}}), "an object"),
            (json!({"model": "m"}), "required"),
            (
                json!({"model": "m", "input": vec!["x"; 2049]}),
                "2049 items",
            ),
            (
                json!({"model": "m", "input": "x", "encoding_format": "int8"}),
                "encoding_format",
            ),
            (
                json!({"model": "m", "input": "x", "dimensions": 0}),
                "positive",
            ),
            (
                json!({"model": "m", "input": "x", "input_type": "code"}),
                "input_type",
            ),
            (json!({"input": "x"}), "model is required"),
        ] {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!(e.status().as_u16(), 400, "{body}");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
    }

    #[test]
    fn dimensions_truncate_only_matryoshka_models() {
        let mut v = vec![vec![3.0, 4.0, 12.0]];
        apply_dimensions(&mut v, Some(3), 3, false).unwrap();
        let e = apply_dimensions(&mut v, Some(2), 3, false).unwrap_err();
        assert!(e.message.contains("native size 3"), "{}", e.message);
        assert!(apply_dimensions(&mut v, Some(4), 3, true).is_err());
        apply_dimensions(&mut v, Some(2), 3, true).unwrap();
        assert_eq!(v[0], vec![0.6, 0.8]);
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let b = to_base64(&[1.0, -2.0]);
        let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        assert_eq!(bytes, [1f32.to_le_bytes(), (-2f32).to_le_bytes()].concat());
        let body: Value =
            serde_json::from_str(&render(vec![vec![0.5]], Encoding::Float, "m", 3, "ab.cpu"))
                .unwrap();
        assert_eq!(body["data"][0]["embedding"], json!([0.5]));
        assert_eq!(body["usage"]["prompt_tokens"], 3);
        assert_eq!(body["object"], "list");
    }
}
