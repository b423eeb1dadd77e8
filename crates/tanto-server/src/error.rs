//! API errors in OpenAI's shape. Statuses come from tanto-core's
//! [`ErrorType::http_status`]; nothing here decides a status on its own.
//!
//! Handlers return [`ApiError`]; its response carries the error in an
//! extension and the request-id middleware renders the body, so every error
//! body names the request id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tanto_core::error::{ErrorType, TantoError};
use tanto_engine::EngineError;

use crate::logging::redact;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorType,
    /// More specific machine code (`context_length_exceeded`, …); defaults to the type.
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
    /// Only for transport-level answers (unknown route 404, 405) that no
    /// error type describes; everything else takes the type's status.
    pub status_override: Option<StatusCode>,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: None,
            message: redact(&message.into()),
            param: None,
            status_override: None,
        }
    }

    /// A validation error naming the offending field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorType::InvalidRequest, message).with_param(param)
    }

    pub fn with_param(mut self, p: impl Into<String>) -> Self {
        self.param = Some(p.into());
        self
    }

    pub fn with_code(mut self, c: &'static str) -> Self {
        self.code = Some(c);
        self
    }

    pub fn with_status(mut self, s: StatusCode) -> Self {
        self.status_override = Some(s);
        self
    }

    pub fn status(&self) -> StatusCode {
        if let Some(s) = self.status_override {
            return s;
        }
        StatusCode::from_u16(self.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The `{"message","type","code","param"}` object.
    pub fn object(&self) -> Value {
        json!({
            "message": self.message,
            "type": self.kind.as_str(),
            "code": self.code.unwrap_or(self.kind.as_str()),
            "param": self.param,
        })
    }

    /// The full body: `{"error":{…},"request_id":…}`.
    pub fn body(&self, request_id: &str) -> Value {
        json!({ "error": self.object(), "request_id": request_id })
    }

    pub fn shutting_down() -> Self {
        Self::new(
            ErrorType::ServerShutdown,
            "Server is shutting down; retry against another instance or after restart",
        )
    }

    /// An engine failure while loading. The type is the engine's
    /// ([`kind_of`]); only the wording is the server's.
    pub fn from_load(e: &EngineError, model: &str) -> Self {
        let kind = kind_of(e);
        let message = match e {
            EngineError::UnsupportedArchitecture(a) => format!("Model '{model}' cannot be loaded by this build's engine ({a}); pick a model `tanto list` shows as runnable"),
            _ if kind == ErrorType::UnhealthyModel => format!("Model '{model}' failed to load: {e}; run `tanto health {model}` and re-download it if needed"),
            _ => format!("Model '{model}' failed to load: {e}"),
        };
        Self::new(kind, message)
    }

    /// An engine failure while preparing or running a generation. The type is
    /// the engine's ([`kind_of`]); the wording, `param` and `code` are the server's.
    pub fn from_generation(e: &EngineError, prompt_param: &str) -> Self {
        let kind = kind_of(e);
        match e {
            EngineError::PromptTooLong { prompt, context } => Self::new(
                kind,
                format!("The prompt is {prompt} tokens but the model's context is {context} tokens; shorten the {prompt_param}"),
            )
            .with_param(prompt_param)
            .with_code("context_length_exceeded"),
            EngineError::NoChatTemplate => Self::new(
                kind,
                "This model has no chat template; use POST /v1/completions with a plain prompt",
            )
            .with_param("model"),
            EngineError::Template(m) => Self::new(
                kind,
                format!("The model's chat template rejected these messages: {m}"),
            )
            .with_param(prompt_param),
            EngineError::TemplateLimit { limit, message } => Self::new(
                kind,
                format!("The model's chat template ran past tanto's {limit} limit while rendering these messages ({message}); the template is at fault, not the request: use POST /v1/completions with a plain prompt, or pick another model"),
            )
            .with_param("model")
            .with_code("template_limit"),
            EngineError::Validation(m) => Self::new(kind, m.clone()).with_param(prompt_param),
            _ => Self::new(kind, format!("Generation failed: {e}")),
        }
    }
}

/// The error type of an engine error: [`EngineError::error_type`], the one
/// classification, with validation failures named as OpenAI names them
/// (`invalid_request_error`, the same status 400).
pub fn kind_of(e: &EngineError) -> ErrorType {
    match e.error_type() {
        ErrorType::ValidationError => ErrorType::InvalidRequest,
        t => t,
    }
}

impl From<TantoError> for ApiError {
    fn from(e: TantoError) -> Self {
        let message = match &e.hint {
            Some(h) => format!("{}; hint: {h}", e.message),
            None => e.message.clone(),
        };
        let mut a = ApiError::new(e.kind, message);
        if matches!(
            e.kind,
            ErrorType::ModelNotFound
                | ErrorType::AmbiguousMatch
                | ErrorType::RevisionNotFound
                | ErrorType::CapabilityMismatch
                | ErrorType::UnhealthyModel
                | ErrorType::MissingBackend
                | ErrorType::RuntimeIncompatible
                | ErrorType::InsufficientMemory
        ) {
            a.param = Some("model".into());
        }
        a
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.as_str())
    }
}

/// Marker carried by error responses until the middleware renders them.
#[derive(Clone)]
pub struct PendingError(pub ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            // Rendered again with the request id by the middleware; this body
            // only shows if the error escapes it.
            self.body("").to_string(),
        )
            .into_response();
        resp.extensions_mut().insert(PendingError(self));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use tanto_engine::TemplateLimit;

    fn every_engine_error() -> Vec<EngineError> {
        let p = || PathBuf::from("m.gguf");
        vec![
            EngineError::UnsupportedArchitecture("mamba".into()),
            EngineError::Io {
                path: p(),
                message: "gone".into(),
            },
            EngineError::InvalidModel {
                path: p(),
                message: "bad".into(),
            },
            EngineError::Tokenizer("x".into()),
            EngineError::Template("roles must alternate".into()),
            EngineError::TemplateLimit {
                limit: TemplateLimit::Fuel,
                message: "more than 5000000 instructions".into(),
            },
            EngineError::NoChatTemplate,
            EngineError::PromptTooLong {
                prompt: 9,
                context: 8,
            },
            EngineError::Inference("x".into()),
        ]
    }

    #[test]
    fn statuses_are_the_engines_own() {
        for e in every_engine_error() {
            let g = ApiError::from_generation(&e, "messages");
            assert_eq!(g.status().as_u16(), e.http_status(), "{e}");
            let l = ApiError::from_load(&e, "org/m");
            assert_eq!(l.status().as_u16(), e.http_status(), "{e}");
            if e.error_type() != ErrorType::ValidationError {
                assert_eq!(g.kind, e.error_type(), "{e}");
            } else {
                assert_eq!(g.kind, ErrorType::InvalidRequest, "{e}");
            }
        }
    }

    #[test]
    fn a_template_limit_is_422_and_names_the_limit_and_the_way_out() {
        let e = EngineError::TemplateLimit {
            limit: TemplateLimit::Output,
            message: "output over 67108864 bytes".into(),
        };
        let a = ApiError::from_generation(&e, "messages");
        assert_eq!(a.status().as_u16(), 422);
        assert_eq!(a.kind.as_str(), "unhealthy_model");
        assert_eq!(a.param.as_deref(), Some("model"));
        assert!(a.message.contains("output size limit"), "{}", a.message);
        assert!(a.message.contains("/v1/completions"), "{}", a.message);
    }
}
