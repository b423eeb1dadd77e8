//! Response shapes: `chat.completion`, `chat.completion.chunk`,
//! `text_completion`, and the usage object. Request parsing is in `request.rs`.

use serde_json::{json, Value};
use tanto_engine::{FinishReason, Usage};

use super::Endpoint;

pub fn finish_str(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

pub fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

pub const FINGERPRINT: &str = concat!("tanto-", env!("CARGO_PKG_VERSION"));

/// The ids and timestamps of one response (shared by all its chunks).
#[derive(Debug, Clone)]
pub struct Meta {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub endpoint: Endpoint,
}

impl Meta {
    pub fn new(endpoint: Endpoint, model: String) -> Self {
        let prefix = match endpoint {
            Endpoint::Chat => "chatcmpl-",
            Endpoint::Completion => "cmpl-",
        };
        Self {
            id: format!("{prefix}{}", &crate::util::random_hex()[..24]),
            created: crate::util::unix_now(),
            model,
            endpoint,
        }
    }

    /// A whole (non-streamed) response.
    pub fn full(
        &self,
        content: &str,
        reasoning: Option<&str>,
        finish: FinishReason,
        usage: &Usage,
    ) -> Value {
        match self.endpoint {
            Endpoint::Chat => {
                let mut message =
                    json!({ "role": "assistant", "content": content, "refusal": null });
                if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
                    message["reasoning_content"] = Value::from(r);
                }
                json!({
                    "id": self.id,
                    "object": "chat.completion",
                    "created": self.created,
                    "model": self.model,
                    "system_fingerprint": FINGERPRINT,
                    "choices": [{
                        "index": 0,
                        "message": message,
                        "logprobs": null,
                        "finish_reason": finish_str(finish),
                    }],
                    "usage": usage_json(usage),
                })
            }
            Endpoint::Completion => json!({
                "id": self.id,
                "object": "text_completion",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": FINGERPRINT,
                "choices": [{
                    "index": 0,
                    "text": content,
                    "logprobs": null,
                    "finish_reason": finish_str(finish),
                }],
                "usage": usage_json(usage),
            }),
        }
    }

    /// A streamed chunk with one choice. `delta` is the chat delta object
    /// (ignored for completions, which use `text`).
    pub fn chunk(
        &self,
        delta: Value,
        text: &str,
        finish: Option<&str>,
        include_usage: bool,
    ) -> Value {
        let mut v = match self.endpoint {
            Endpoint::Chat => json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": FINGERPRINT,
                "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
            }),
            Endpoint::Completion => json!({
                "id": self.id,
                "object": "text_completion",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": FINGERPRINT,
                "choices": [{ "index": 0, "text": text, "logprobs": null, "finish_reason": finish }],
            }),
        };
        if include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    /// The final usage chunk (`stream_options.include_usage`): empty choices.
    pub fn usage_chunk(&self, usage: &Usage) -> Value {
        json!({
            "id": self.id,
            "object": match self.endpoint { Endpoint::Chat => "chat.completion.chunk", Endpoint::Completion => "text_completion" },
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [],
            "usage": usage_json(usage),
        })
    }
}
