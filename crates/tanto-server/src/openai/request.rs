//! Request parsing for `POST /v1/chat/completions` and `POST /v1/completions`:
//! field by field, so every error names the bad field. Parameters OpenAI
//! defines but tanto does not implement are refused from one table
//! ([`UNSUPPORTED`]) instead of being silently ignored.

use serde_json::{Map, Value};
use tanto_core::policy::Request;
use tanto_engine::{ChatMessage, ContentPart, GenerationParams, Prompt};

use super::images::{image_part, ImageOpts};
use super::Endpoint;
use crate::error::ApiError;

/// A validated generation request.
#[derive(Debug, Clone)]
pub struct GenRequest {
    pub model: String,
    pub prompt: Prompt,
    /// What the policy is asked for: `Text` (completions), `Chat`, or the
    /// modality a chat's input parts ask for (images → `Vision`).
    pub request: Request,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<usize>,
    pub params: GenerationParams,
}

type Obj = Map<String, Value>;

fn present<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn opt_bool(o: &Obj, key: &str) -> Result<Option<bool>, ApiError> {
    match present(o, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(ApiError::invalid(
            key,
            format!("'{key}' must be a boolean, got {}", type_name(v)),
        )),
    }
}

fn opt_num(o: &Obj, key: &str, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
    match present(o, key) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            if !(lo..=hi).contains(&v) {
                return Err(ApiError::invalid(
                    key,
                    format!("'{key}' must be between {lo} and {hi}, got {v}"),
                ));
            }
            Ok(Some(v))
        }
        Some(v) => Err(ApiError::invalid(
            key,
            format!("'{key}' must be a number, got {}", type_name(v)),
        )),
    }
}

fn opt_int(o: &Obj, key: &str, lo: i64) -> Result<Option<i64>, ApiError> {
    present(o, key).map(|v| int_value(key, v, lo)).transpose()
}

fn int_value(key: &str, v: &Value, lo: i64) -> Result<i64, ApiError> {
    match v {
        Value::Number(n) => {
            let v = n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| {
                    ApiError::invalid(key, format!("'{key}' must be an integer, got {n}"))
                })?;
            if v < lo {
                return Err(ApiError::invalid(
                    key,
                    format!("'{key}' must be at least {lo}, got {v}"),
                ));
            }
            Ok(v)
        }
        v => Err(ApiError::invalid(
            key,
            format!("'{key}' must be an integer, got {}", type_name(v)),
        )),
    }
}

/// An OpenAI parameter tanto does not implement. A request that sets it to
/// anything but its "off" value is refused with 400 `unsupported_parameter`
/// rather than having it silently ignored.
struct Unsupported {
    /// The field; `a.b` names field `b` inside object `a`.
    param: &'static str,
    /// The endpoints whose API has the field (elsewhere it is ignored).
    on: &'static [Endpoint],
    /// Whether a present value means "off" and is accepted; an error for a
    /// value of the wrong type.
    off: fn(&str, &Value) -> Result<bool, ApiError>,
    /// What is missing, after "'{param}' is not supported by tanto serve: ".
    answer: &'static str,
}

const BOTH: &[Endpoint] = &[Endpoint::Chat, Endpoint::Completion];
const CHAT: &[Endpoint] = &[Endpoint::Chat];
const COMPLETION: &[Endpoint] = &[Endpoint::Completion];

/// Every unsupported parameter, in the order they are checked.
const UNSUPPORTED: &[Unsupported] = &[
    Unsupported {
        param: "tools",
        on: CHAT,
        off: |_, v| Ok(v.as_array().is_some_and(Vec::is_empty)),
        answer: "tool/function calling is not implemented yet",
    },
    Unsupported {
        param: "functions",
        on: CHAT,
        off: |_, v| Ok(v.as_array().is_some_and(Vec::is_empty)),
        answer: "function calling is not implemented yet",
    },
    Unsupported {
        param: "response_format.type",
        on: CHAT,
        off: |_, v| Ok(v.as_str() != Some("json_schema")),
        answer: "json_schema (constrained decoding) is not implemented; use json_object and describe the schema in the prompt",
    },
    Unsupported {
        param: "echo",
        on: COMPLETION,
        off: |key, v| match v {
            Value::Bool(b) => Ok(!b),
            v => Err(ApiError::invalid(
                key,
                format!("'{key}' must be a boolean, got {}", type_name(v)),
            )),
        },
        answer: "only echo = false",
    },
    Unsupported {
        param: "suffix",
        on: COMPLETION,
        off: |_, v| Ok(v.as_str() == Some("")),
        answer: "fill-in-the-middle suffixes; put the text in the prompt",
    },
    Unsupported {
        param: "best_of",
        on: BOTH,
        off: |key, v| Ok(int_value(key, v, 1)? == 1),
        answer: "only best_of = 1",
    },
    Unsupported {
        param: "logprobs",
        on: BOTH,
        off: |_, v| Ok(v == &Value::Bool(false)),
        answer: "log probabilities are not returned yet",
    },
    Unsupported {
        param: "top_logprobs",
        on: BOTH,
        off: |_, v| Ok(v.as_u64() == Some(0)),
        answer: "log probabilities are not returned yet",
    },
    Unsupported {
        param: "logit_bias",
        on: BOTH,
        off: |_, v| Ok(v.as_object().is_some_and(Map::is_empty)),
        answer: "logit biases are not applied yet",
    },
];

/// The value at `a` or `a.b` (absent when `a` is not an object).
fn lookup<'a>(o: &'a Obj, param: &str) -> Option<&'a Value> {
    match param.split_once('.') {
        None => present(o, param),
        Some((outer, inner)) => present(o, outer)?
            .as_object()
            .and_then(|m| present(m, inner)),
    }
}

/// Refuse any [`UNSUPPORTED`] parameter this endpoint's request turns on.
fn refuse_unsupported(o: &Obj, endpoint: Endpoint) -> Result<(), ApiError> {
    for u in UNSUPPORTED.iter().filter(|u| u.on.contains(&endpoint)) {
        if let Some(v) = lookup(o, u.param) {
            if !(u.off)(u.param, v)? {
                return Err(ApiError::invalid(
                    u.param,
                    format!(
                        "'{}' is not supported by tanto serve: {}",
                        u.param, u.answer
                    ),
                )
                .with_code("unsupported_parameter"));
            }
        }
    }
    Ok(())
}

/// The fields both endpoints share, validated.
struct Common {
    model: String,
    params: GenerationParams,
    max_tokens: Option<usize>,
    stream: bool,
    include_usage: bool,
}

impl Common {
    fn into_request(self, prompt: Prompt, request: Request) -> GenRequest {
        GenRequest {
            model: self.model,
            prompt,
            request,
            stream: self.stream,
            include_usage: self.include_usage,
            max_tokens: self.max_tokens,
            params: self.params,
        }
    }
}

/// Fields shared by both endpoints.
/// Unsupported parameters are refused first, then the shared fields are read.
fn common(o: &Obj, endpoint: Endpoint, default_model: Option<&str>) -> Result<Common, ApiError> {
    refuse_unsupported(o, endpoint)?;
    let model = match present(o, "model") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::String(_)) => return Err(ApiError::invalid("model", "'model' is empty")),
        Some(v) => {
            return Err(ApiError::invalid(
                "model",
                format!("'model' must be a string, got {}", type_name(v)),
            ))
        }
        None => match default_model {
            Some(m) => m.to_string(),
            None => {
                return Err(ApiError::invalid(
                    "model",
                    "'model' is required; GET /v1/models lists the ids",
                ))
            }
        },
    };

    if let Some(n) = opt_int(o, "n", 1)? {
        if n != 1 {
            return Err(ApiError::invalid(
                "n",
                format!("'n' must be 1 (tanto serve returns one choice per request), got {n}; send {n} requests instead"),
            ));
        }
    }

    let stream = opt_bool(o, "stream")?.unwrap_or(false);
    let include_usage = match present(o, "stream_options") {
        None => false,
        Some(Value::Object(so)) => match present(so, "include_usage") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(ApiError::invalid(
                    "stream_options.include_usage",
                    format!(
                        "'stream_options.include_usage' must be a boolean, got {}",
                        type_name(v)
                    ),
                ))
            }
        },
        Some(v) => {
            return Err(ApiError::invalid(
                "stream_options",
                format!("'stream_options' must be an object, got {}", type_name(v)),
            ))
        }
    };

    let mut max_tokens = None;
    for key in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = opt_int(o, key, 1)? {
            let v = usize::try_from(v).unwrap_or(usize::MAX);
            max_tokens = Some(max_tokens.map_or(v, |m: usize| m.min(v)));
        }
    }

    let mut p = GenerationParams::default();
    if let Some(t) = opt_num(o, "temperature", 0.0, 2.0)? {
        p.temperature = t as f32;
    }
    if let Some(v) = opt_num(o, "top_p", 0.0, 1.0)? {
        if v <= 0.0 {
            return Err(ApiError::invalid("top_p", "'top_p' must be greater than 0"));
        }
        p.top_p = if v >= 1.0 { None } else { Some(v as f32) };
    }
    if let Some(k) = opt_int(o, "top_k", 0)? {
        p.top_k = (k > 0).then_some(k as usize);
    }
    if let Some(m) = opt_num(o, "min_p", 0.0, 1.0)? {
        p.min_p = (m > 0.0).then_some(m as f32);
    }
    if let Some(f) = opt_num(o, "frequency_penalty", -2.0, 2.0)? {
        p.frequency_penalty = f as f32;
    }
    if let Some(f) = opt_num(o, "presence_penalty", -2.0, 2.0)? {
        p.presence_penalty = f as f32;
    }
    if let Some(r) = opt_num(o, "repetition_penalty", 0.0, 10.0)? {
        if r <= 0.0 {
            return Err(ApiError::invalid(
                "repetition_penalty",
                "'repetition_penalty' must be greater than 0 (1.0 = off)",
            ));
        }
        p.repetition_penalty = r as f32;
    }
    match present(o, "seed") {
        None => {}
        Some(Value::Number(n)) => {
            p.seed = Some(
                n.as_u64()
                    .or_else(|| n.as_i64().map(|i| i as u64))
                    .ok_or_else(|| ApiError::invalid("seed", "'seed' must be an integer"))?,
            )
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "seed",
                format!("'seed' must be an integer, got {}", type_name(v)),
            ))
        }
    }
    p.stop = match present(o, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            if a.len() > 16 {
                return Err(ApiError::invalid(
                    "stop",
                    "'stop' may hold at most 16 strings",
                ));
            }
            let mut out = Vec::new();
            for (i, v) in a.iter().enumerate() {
                match v {
                    Value::String(s) => out.push(s.clone()),
                    other => {
                        return Err(ApiError::invalid(
                            format!("stop[{i}]"),
                            format!("'stop[{i}]' must be a string, got {}", type_name(other)),
                        ))
                    }
                }
            }
            out
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "stop",
                format!(
                    "'stop' must be a string or an array of strings, got {}",
                    type_name(v)
                ),
            ))
        }
    };
    if p.stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "stop",
            "'stop' strings must not be empty",
        ));
    }
    p.stop.retain(|s| !s.is_empty());

    Ok(Common {
        model,
        params: p,
        max_tokens,
        stream,
        include_usage,
    })
}

fn body_object(body: &Value) -> Result<&Obj, ApiError> {
    body.as_object().ok_or_else(|| {
        ApiError::invalid(
            "body",
            format!(
                "the request body must be a JSON object, got {}",
                type_name(body)
            ),
        )
    })
}

/// Parse `POST /v1/chat/completions` with the default image limits.
#[cfg(test)]
pub fn parse_chat(body: &Value, default_model: Option<&str>) -> Result<GenRequest, ApiError> {
    parse_chat_with(body, default_model, &ImageOpts::default())
}

/// Parse `POST /v1/chat/completions`; image parts are decoded under `images`'
/// limits (CPU work: call it off the async threads).
pub fn parse_chat_with(
    body: &Value,
    default_model: Option<&str>,
    images: &ImageOpts,
) -> Result<GenRequest, ApiError> {
    let o = body_object(body)?;
    let mut image_bytes = 0u64;
    let msgs = match present(o, "messages") {
        None => {
            return Err(ApiError::invalid(
                "messages",
                "'messages' is required: an array of {role, content} objects",
            ))
        }
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(ApiError::invalid(
                "messages",
                "'messages' must not be empty",
            ))
        }
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(ApiError::invalid(
                "messages",
                format!("'messages' must be an array, got {}", type_name(v)),
            ))
        }
    };
    let mut media = Request::Chat;
    let mut messages = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let mo = m.as_object().ok_or_else(|| {
            ApiError::invalid(
                format!("messages[{i}]"),
                format!("'messages[{i}]' must be an object"),
            )
        })?;
        let role = match present(mo, "role") {
            Some(Value::String(r)) => r.as_str(),
            Some(v) => {
                return Err(ApiError::invalid(
                    format!("messages[{i}].role"),
                    format!(
                        "'messages[{i}].role' must be a string, got {}",
                        type_name(v)
                    ),
                ))
            }
            None => {
                return Err(ApiError::invalid(
                    format!("messages[{i}].role"),
                    format!("'messages[{i}].role' is required"),
                ))
            }
        };
        let role = match role {
            "system" | "user" | "assistant" | "tool" => role.to_string(),
            "developer" => "system".to_string(),
            "function" => "tool".to_string(),
            other => {
                return Err(ApiError::invalid(
                    format!("messages[{i}].role"),
                    format!("'messages[{i}].role' must be one of system, developer, user, assistant, tool; got '{other}'"),
                ))
            }
        };
        let mut parts: Vec<ContentPart> = Vec::new();
        let mut has_image = false;
        let content = match present(mo, "content") {
            None => {
                if role == "assistant" {
                    String::new()
                } else {
                    return Err(ApiError::invalid(
                        format!("messages[{i}].content"),
                        format!("'messages[{i}].content' is required"),
                    ));
                }
            }
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => {
                let mut texts = Vec::new();
                for (j, part) in items.iter().enumerate() {
                    let param = format!("messages[{i}].content[{j}]");
                    let po = part.as_object().ok_or_else(|| {
                        ApiError::invalid(&param, format!("'{param}' must be an object"))
                    })?;
                    match po.get("type").and_then(Value::as_str) {
                        Some("text") | Some("input_text") => match po.get("text") {
                            Some(Value::String(t)) => {
                                texts.push(t.clone());
                                parts.push(ContentPart::Text(t.clone()));
                            }
                            _ => {
                                return Err(ApiError::invalid(
                                    format!("{param}.text"),
                                    format!("'{param}.text' must be a string"),
                                ))
                            }
                        },
                        Some("refusal") => {}
                        Some("image_url") | Some("input_image") | Some("image") => {
                            media = Request::Vision;
                            has_image = true;
                            parts.push(ContentPart::Image(image_part(
                                po,
                                &param,
                                images,
                                &mut image_bytes,
                            )?));
                        }
                        Some("input_audio") | Some("audio") => {
                            if media == Request::Chat {
                                media = Request::Audio;
                            }
                        }
                        Some(t) => {
                            return Err(ApiError::invalid(
                                format!("{param}.type"),
                                format!(
                                "'{param}.type' must be text, image_url or input_audio; got '{t}'"
                            ),
                            ))
                        }
                        None => {
                            return Err(ApiError::invalid(
                                format!("{param}.type"),
                                format!("'{param}.type' is required"),
                            ))
                        }
                    }
                }
                texts.join("\n")
            }
            Some(v) => {
                return Err(ApiError::invalid(
                    format!("messages[{i}].content"),
                    format!(
                    "'messages[{i}].content' must be a string or an array of content parts, got {}",
                    type_name(v)
                ),
                ))
            }
        };
        if !has_image {
            parts.clear();
        }
        messages.push(ChatMessage {
            role,
            content,
            parts,
        });
    }

    match present(o, "response_format") {
        None => {}
        Some(Value::Object(rf)) => match rf.get("type").and_then(Value::as_str) {
            // json_schema is valid OpenAI; `common` refuses it as unsupported.
            Some("text") | Some("json_object") | Some("json_schema") => {}
            Some(t) => {
                return Err(ApiError::invalid(
                    "response_format.type",
                    format!("'response_format.type' must be text or json_object, got '{t}'"),
                ))
            }
            None => {
                return Err(ApiError::invalid(
                    "response_format.type",
                    "'response_format.type' is required",
                ))
            }
        },
        Some(v) => {
            return Err(ApiError::invalid(
                "response_format",
                format!("'response_format' must be an object, got {}", type_name(v)),
            ))
        }
    }

    Ok(common(o, Endpoint::Chat, default_model)?.into_request(Prompt::Chat(messages), media))
}

/// Parse `POST /v1/completions`.
pub fn parse_completion(body: &Value, default_model: Option<&str>) -> Result<GenRequest, ApiError> {
    let o = body_object(body)?;
    let prompt = match present(o, "prompt") {
        None => {
            return Err(ApiError::invalid(
                "prompt",
                "'prompt' is required (a string)",
            ));
        }
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => match a.as_slice() {
            [Value::String(s)] => s.clone(),
            [] => return Err(ApiError::invalid("prompt", "'prompt' must not be empty")),
            [_] => return Err(ApiError::invalid(
                "prompt",
                "'prompt' must be a string or a list of one string (token arrays are not accepted)",
            )),
            many => {
                return Err(ApiError::invalid(
                    "prompt",
                    format!(
                        "'prompt' holds {} prompts; tanto serve takes one prompt per request",
                        many.len()
                    ),
                ))
            }
        },
        Some(v) => {
            return Err(ApiError::invalid(
                "prompt",
                format!("'prompt' must be a string, got {}", type_name(v)),
            ))
        }
    };
    Ok(common(o, Endpoint::Completion, default_model)?
        .into_request(Prompt::Text(prompt), Request::Text))
}

/// Template markup allowed per chat message when sizing a prompt.
const MESSAGE_OVERHEAD_BYTES: usize = 16;

/// The bytes a prompt hands the chat template and tokenizer: each message's
/// role and content plus an allowance for the template's markup. Cheap, so
/// the server can refuse a prompt that cannot fit before tokenizing it.
pub fn prompt_bytes(p: &Prompt) -> usize {
    match p {
        Prompt::Text(t) => t.len(),
        Prompt::Chat(m) => m
            .iter()
            .map(|m| m.role.len() + m.content.len() + MESSAGE_OVERHEAD_BYTES)
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn err_param(v: Value) -> String {
        parse_chat(&v, None).unwrap_err().param.unwrap_or_default()
    }

    #[test]
    fn chat_validation_names_fields() {
        assert_eq!(err_param(json!({"model":"m"})), "messages");
        assert_eq!(err_param(json!({"model":"m","messages":[]})), "messages");
        assert_eq!(
            err_param(json!({"messages":[{"role":"user","content":"x"}]})),
            "model"
        );
        assert_eq!(
            err_param(json!({"model":"m","messages":[{"role":"robot","content":"x"}]})),
            "messages[0].role"
        );
        assert_eq!(
            err_param(json!({"model":"m","messages":[{"role":"user","content":5}]})),
            "messages[0].content"
        );
        assert_eq!(
            err_param(
                json!({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3})
            ),
            "temperature"
        );
        assert_eq!(
            err_param(json!({"model":"m","messages":[{"role":"user","content":"x"}],"n":2})),
            "n"
        );
        assert_eq!(
            err_param(
                json!({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})
            ),
            "max_tokens"
        );
        assert_eq!(
            err_param(json!({"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]})),
            "stop[0]"
        );
        assert_eq!(
            err_param(
                json!({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}})
            ),
            "response_format.type"
        );
    }

    #[test]
    fn chat_parses() {
        let r = parse_chat(
            &json!({
                "model": "m",
                "messages": [
                    {"role":"developer","content":"be brief"},
                    {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
                    {"role":"assistant","content":null},
                    {"role":"tool","content":"42","tool_call_id":"x"}
                ],
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": 50, "max_completion_tokens": 20,
                "temperature": 0, "top_p": 1, "top_k": 5, "seed": 7, "stop": "END",
                "response_format": {"type":"json_object"}
            }),
            None,
        )
        .unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, Some(20));
        assert_eq!(r.params.temperature, 0.0);
        assert_eq!(r.params.top_p, None);
        assert_eq!(r.params.top_k, Some(5));
        assert_eq!(r.params.seed, Some(7));
        assert_eq!(r.params.stop, vec!["END".to_string()]);
        assert_eq!(r.request, Request::Chat, "a chat asks the policy for chat");
        match r.prompt {
            Prompt::Chat(m) => {
                assert_eq!(m[0].role, "system");
                assert_eq!(m[1].content, "a\nb");
                assert_eq!(m[2].content, "");
                assert_eq!(m[3].role, "tool");
            }
            _ => panic!(),
        }
        // A 1x1 PNG.
        let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGM4wcUFAAJ6AN1nJ0J9AAAAAElFTkSuQmCC";
        let img = parse_chat(
            &json!({"model":"m","messages":[{"role":"user","content":[
                {"type":"text","text":"what"},{"type":"image_url","image_url":{"url": png}}]}]}),
            None,
        )
        .unwrap();
        assert_eq!(img.request, Request::Vision);
        match img.prompt {
            Prompt::Chat(m) => {
                assert_eq!(m[0].content, "what");
                assert_eq!(m[0].parts.len(), 2);
                assert_eq!(m[0].images().count(), 1);
                let i = m[0].images().next().unwrap();
                assert_eq!((i.rgb.width, i.rgb.height), (1, 1));
            }
            _ => panic!(),
        }
        let bad = parse_chat(
            &json!({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:x"}}]}]}),
            None,
        )
        .unwrap_err();
        assert_eq!(
            bad.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
    }

    #[test]
    fn completion_validation() {
        let p = |v: Value| {
            parse_completion(&v, Some("d"))
                .unwrap_err()
                .param
                .unwrap_or_default()
        };
        assert_eq!(p(json!({})), "prompt");
        assert_eq!(p(json!({"prompt":["a","b"]})), "prompt");
        assert_eq!(p(json!({"prompt":[[1,2]]})), "prompt");
        assert_eq!(p(json!({"prompt":"a","echo":true})), "echo");
        let ok = parse_completion(&json!({"prompt":["hi"]}), Some("d")).unwrap();
        assert_eq!(ok.model, "d");
        assert_eq!(ok.request, Request::Text);
        assert!(matches!(ok.prompt, Prompt::Text(ref s) if s == "hi"));
    }

    #[test]
    fn unsupported_table_refuses_on_and_accepts_off() {
        let with = |base: Value, k: &str, v: Value| {
            let mut b = base;
            b[k] = v;
            b
        };
        let chat = json!({"model":"m","messages":[{"role":"user","content":"x"}]});
        let text = json!({"model":"m","prompt":"x"});
        let cases: Vec<(Endpoint, &str, Value, Value)> = vec![
            (
                Endpoint::Chat,
                "tools",
                json!([{"type":"function"}]),
                json!([]),
            ),
            (Endpoint::Chat, "functions", json!([{}]), json!([])),
            (Endpoint::Completion, "echo", json!(true), json!(false)),
            (Endpoint::Completion, "suffix", json!("end"), json!("")),
            (Endpoint::Chat, "best_of", json!(2), json!(1)),
            (Endpoint::Completion, "logprobs", json!(3), json!(false)),
            (Endpoint::Chat, "top_logprobs", json!(2), json!(0)),
            (
                Endpoint::Completion,
                "logit_bias",
                json!({"1": 5}),
                json!({}),
            ),
        ];
        for (ep, k, on, off) in cases {
            let parse = |b: &Value| match ep {
                Endpoint::Chat => parse_chat(b, None),
                Endpoint::Completion => parse_completion(b, None),
            };
            let base = if ep == Endpoint::Chat { &chat } else { &text };
            let e = parse(&with(base.clone(), k, on)).unwrap_err();
            assert_eq!(e.code, Some("unsupported_parameter"), "{k}");
            assert_eq!(e.param.as_deref(), Some(k));
            assert!(parse(&with(base.clone(), k, off)).is_ok(), "{k} off");
        }
        let e = parse_chat(
            &with(
                chat.clone(),
                "response_format",
                json!({"type":"json_schema"}),
            ),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, Some("unsupported_parameter"));
        assert_eq!(e.param.as_deref(), Some("response_format.type"));
        // A wrong type is a validation error, not "unsupported".
        let e = parse_completion(&with(text.clone(), "echo", json!("yes")), None).unwrap_err();
        assert_eq!((e.code, e.param.as_deref()), (None, Some("echo")));
        // Each endpoint refuses only its own API's fields.
        assert!(parse_chat(&with(chat.clone(), "echo", json!(true)), None).is_ok());
        assert!(parse_completion(&with(text.clone(), "tools", json!([{}])), None).is_ok());
    }
}
