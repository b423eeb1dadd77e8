//! The OpenAI wire format: request parsing and validation ([`request`]) and
//! response shapes ([`response`]). A request goes routes → request → manager
//! → sse → response, so each half is visited once.

pub mod audio;
pub mod embeddings;
pub mod images;
mod request;
mod response;

pub use request::{parse_chat_with, parse_completion, prompt_bytes};
pub use response::{finish_str, Meta};

/// Which endpoint a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

impl Endpoint {
    /// The request field that holds the prompt.
    pub fn prompt_param(self) -> &'static str {
        match self {
            Endpoint::Chat => "messages",
            Endpoint::Completion => "prompt",
        }
    }
}
