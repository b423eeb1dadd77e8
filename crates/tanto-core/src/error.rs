//! The error taxonomy shared by the CLI (`--json` envelope) and the server
//! (HTTP status + OpenAI error body). One place decides the status of each type.

use serde::Serialize;

/// Stable, snake_case error types. Scripts match on these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    ModelNotFound,
    AmbiguousMatch,
    RevisionNotFound,
    CapabilityMismatch,
    MissingBackend,
    RuntimeIncompatible,
    UnhealthyModel,
    InsufficientMemory,
    ValidationError,
    WorkspaceModel,
    LocksPresent,
    RequiresConfirmation,
    PermissionDenied,
    AccessDenied,
    DownloadFailed,
    InvalidRequest,
    Unauthorized,
    PayloadTooLarge,
    /// A file format this build cannot decode (HTTP 415), e.g. Opus audio.
    UnsupportedMediaType,
    /// The model cannot do the task asked of it (HTTP 422), e.g. translate
    /// with an English-only Whisper.
    UnsupportedTask,
    /// The model's queue is full: retry later (HTTP 429).
    Overloaded,
    ServerShutdown,
    ExecutionError,
    InternalError,
}

impl ErrorType {
    /// mlx-knife 2.0.8's CLI `error.type` for this error in `command` (`None` =
    /// the CLI layer, before a command runs). The one place this mapping lives;
    /// the CLI's `--json` envelope puts tanto's own name in `tanto_type`.
    pub fn mlx_knife_name(self, command: Option<&str>) -> &'static str {
        use ErrorType as E;
        match (command, self) {
            (None, _) => "CommandError",
            // mlx-knife reports every run failure as one type.
            (Some("run"), _) => "execution_error",
            // An unknown @hash is a model that is not there (rm included).
            (_, E::RevisionNotFound) => "model_not_found",
            // mlx-knife's pre-flight answers a missing repo as access denied.
            (Some("pull"), E::ModelNotFound) => "access_denied",
            // convert: a missing mode is an invalid argument, a bad path a ValueError.
            (Some("convert"), E::InvalidRequest) => "InvalidArgumentError",
            (Some("convert"), E::ValidationError) => "ValueError",
            (Some("clone"), E::ValidationError) => "InvalidTargetError",
            (_, E::ValidationError) => "ValidationError",
            (_, E::MissingBackend) => "not_implemented",
            (Some("show"), E::InternalError) => "show_operation_failed",
            (Some("health"), E::InternalError) => "health_check_failed",
            (Some("rm"), E::InternalError) => "deletion_failed",
            (Some("pull"), E::InternalError) => "pull_operation_failed",
            (Some("clone"), E::InternalError) => "CloneOperationError",
            (_, E::InternalError) => "InternalError",
            (_, k) => k.as_str(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::ModelNotFound => "model_not_found",
            ErrorType::AmbiguousMatch => "ambiguous_match",
            ErrorType::RevisionNotFound => "revision_not_found",
            ErrorType::CapabilityMismatch => "capability_mismatch",
            ErrorType::MissingBackend => "missing_backend",
            ErrorType::RuntimeIncompatible => "runtime_incompatible",
            ErrorType::UnhealthyModel => "unhealthy_model",
            ErrorType::InsufficientMemory => "insufficient_memory",
            ErrorType::ValidationError => "validation_error",
            ErrorType::WorkspaceModel => "workspace_model",
            ErrorType::LocksPresent => "locks_present",
            ErrorType::RequiresConfirmation => "requires_confirmation",
            ErrorType::PermissionDenied => "permission_denied",
            ErrorType::AccessDenied => "access_denied",
            ErrorType::DownloadFailed => "download_failed",
            ErrorType::InvalidRequest => "invalid_request_error",
            ErrorType::Unauthorized => "authentication_error",
            ErrorType::PayloadTooLarge => "payload_too_large",
            ErrorType::UnsupportedMediaType => "unsupported_media_type",
            ErrorType::UnsupportedTask => "unsupported_task",
            ErrorType::Overloaded => "rate_limit_exceeded",
            ErrorType::ServerShutdown => "server_shutdown",
            ErrorType::ExecutionError => "execution_error",
            ErrorType::InternalError => "internal_error",
        }
    }

    /// The HTTP status the server answers with for this type.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorType::ModelNotFound | ErrorType::RevisionNotFound => 404,
            ErrorType::AmbiguousMatch
            | ErrorType::CapabilityMismatch
            | ErrorType::ValidationError
            | ErrorType::InvalidRequest
            | ErrorType::WorkspaceModel
            | ErrorType::RequiresConfirmation => 400,
            ErrorType::Unauthorized => 401,
            ErrorType::AccessDenied | ErrorType::PermissionDenied => 403,
            ErrorType::LocksPresent => 409,
            ErrorType::PayloadTooLarge => 413,
            ErrorType::UnsupportedMediaType => 415,
            ErrorType::UnsupportedTask => 422,
            ErrorType::Overloaded => 429,
            ErrorType::UnhealthyModel => 422,
            ErrorType::MissingBackend | ErrorType::RuntimeIncompatible => 501,
            ErrorType::DownloadFailed | ErrorType::ServerShutdown => 503,
            ErrorType::InsufficientMemory => 507,
            ErrorType::ExecutionError | ErrorType::InternalError => 500,
        }
    }
}

impl std::fmt::Display for ErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed error with a message that says what to do, plus optional structured detail.
#[derive(Debug, Clone, Serialize)]
pub struct TantoError {
    #[serde(rename = "type")]
    pub kind: ErrorType,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Structured extras (`matches`, `available_hashes`, …), flattened into the JSON.
    /// Boxed to keep `Result<_, TantoError>` small.
    #[serde(flatten)]
    pub details: Box<serde_json::Map<String, serde_json::Value>>,
}

impl TantoError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            details: Box::default(),
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }
}

impl std::fmt::Display for TantoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TantoError {}
