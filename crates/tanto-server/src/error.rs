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

    /// An engine failure while loading.
    pub fn from_load(e: &EngineError, model: &str) -> Self {
        match e {
            EngineError::UnsupportedArchitecture(a) => Self::new(
                ErrorType::RuntimeIncompatible,
                format!("Model '{model}' cannot be loaded by this build's engine ({a}); pick a model `tanto list` shows as runnable"),
            ),
            EngineError::Io { .. } | EngineError::InvalidModel { .. } | EngineError::Tokenizer(_) => Self::new(
                ErrorType::UnhealthyModel,
                format!("Model '{model}' failed to load: {e}; run `tanto health {model}` and re-download it if needed"),
            ),
            _ => Self::new(
                ErrorType::ExecutionError,
                format!("Model '{model}' failed to load: {e}"),
            ),
        }
    }

    /// An engine failure while preparing or running a generation.
    pub fn from_generation(e: &EngineError, prompt_param: &str) -> Self {
        match e {
            EngineError::PromptTooLong { prompt, context } => Self::new(
                ErrorType::InvalidRequest,
                format!("The prompt is {prompt} tokens but the model's context is {context} tokens; shorten the {prompt_param}"),
            )
            .with_param(prompt_param)
            .with_code("context_length_exceeded"),
            EngineError::NoChatTemplate => Self::new(
                ErrorType::CapabilityMismatch,
                "This model has no chat template; use POST /v1/completions with a plain prompt",
            )
            .with_param("model"),
            EngineError::Template(m) => Self::new(
                ErrorType::InvalidRequest,
                format!("The model's chat template rejected these messages: {m}"),
            )
            .with_param(prompt_param),
            _ => Self::new(ErrorType::ExecutionError, format!("Generation failed: {e}")),
        }
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
