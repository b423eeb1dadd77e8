//! Turning worker events into responses: an SSE stream (`data: {…}\n\n`,
//! ending `data: [DONE]\n\n`) or one JSON body. An error or a shutdown after
//! the stream began becomes a final `data: {"error":…}` event, then `[DONE]`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};
use tanto_engine::{FinishReason, GenerationOutput, Usage};
use tokio::sync::{mpsc, watch};

use crate::error::ApiError;
use crate::manager::Event;
use crate::openai::{finish_str, Endpoint, Meta};

/// What a finished request logs.
pub struct LogCtx {
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub request_id: String,
    pub model: String,
    pub t0: Instant,
    pub queued: Duration,
    pub prompt_tokens: usize,
}

impl LogCtx {
    fn done(&self, out: &GenerationOutput, ttft: Option<Duration>, stream: bool) {
        let total = self.t0.elapsed();
        self.metrics.generation(
            out.usage.prompt_tokens,
            out.usage.completion_tokens,
            ttft,
            out.timings.decode,
        );
        tracing::info!(
            request_id = %self.request_id,
            model = %self.model,
            stream,
            prompt_tokens = out.usage.prompt_tokens,
            completion_tokens = out.usage.completion_tokens,
            finish_reason = finish_str(out.finish_reason),
            queue_ms = self.queued.as_millis() as u64,
            ttft_ms = ttft.map(|d| d.as_millis() as u64),
            prefill_ms = out.timings.prefill.as_millis() as u64,
            decode_tps = %format!("{:.1}", out.timings.decode_tps(&out.usage)),
            total_ms = total.as_millis() as u64,
            "generation finished"
        );
    }

    fn failed(&self, e: &ApiError, stage: &str) {
        tracing::warn!(
            request_id = %self.request_id,
            model = %self.model,
            prompt_tokens = self.prompt_tokens,
            total_ms = self.t0.elapsed().as_millis() as u64,
            error = %e,
            stage,
            "generation failed"
        );
    }
}

fn frame(v: &Value) -> Bytes {
    let mut s = String::with_capacity(128);
    s.push_str("data: ");
    s.push_str(&v.to_string());
    s.push_str("\n\n");
    Bytes::from(s)
}

const DONE: &[u8] = b"data: [DONE]\n\n";

struct StreamState {
    meta: Meta,
    rx: mpsc::UnboundedReceiver<Event>,
    shutdown: watch::Receiver<bool>,
    include_usage: bool,
    log: LogCtx,
    ttft: Option<Duration>,
    out: VecDeque<Bytes>,
    finished: bool,
    param: &'static str,
}

impl StreamState {
    fn error_event(&mut self, e: &ApiError) {
        self.out.push_back(frame(
            &json!({ "error": e.object(), "request_id": self.log.request_id }),
        ));
        self.out.push_back(Bytes::from_static(DONE));
        self.finished = true;
    }

    fn on_event(&mut self, ev: Option<Event>) {
        match ev {
            Some(Event::Delta { reasoning, text }) => {
                if self.ttft.is_none() {
                    self.ttft = Some(self.log.t0.elapsed());
                }
                let chunk = match (self.meta.endpoint, reasoning) {
                    (Endpoint::Chat, false) => {
                        self.meta
                            .chunk(json!({ "content": text }), "", None, self.include_usage)
                    }
                    (Endpoint::Chat, true) => self.meta.chunk(
                        json!({ "reasoning_content": text }),
                        "",
                        None,
                        self.include_usage,
                    ),
                    (Endpoint::Completion, _) => {
                        self.meta
                            .chunk(Value::Null, &text, None, self.include_usage)
                    }
                };
                self.out.push_back(frame(&chunk));
            }
            Some(Event::Started { .. }) => {}
            Some(Event::Done(Ok(out))) => {
                let finish = finish_str(out.finish_reason);
                let last = self
                    .meta
                    .chunk(json!({}), "", Some(finish), self.include_usage);
                self.out.push_back(frame(&last));
                if self.include_usage {
                    self.out
                        .push_back(frame(&self.meta.usage_chunk(&out.usage)));
                }
                self.out.push_back(Bytes::from_static(DONE));
                self.finished = true;
                self.log.done(&out, self.ttft, true);
            }
            Some(Event::Done(Err(e))) => {
                let e = ApiError::from_generation(&e, self.param);
                self.log.failed(&e, "streaming");
                self.error_event(&e);
            }
            None => {
                let e = ApiError::new(
                    tanto_core::error::ErrorType::InternalError,
                    "the model worker stopped before finishing this request",
                );
                self.log.failed(&e, "streaming");
                self.error_event(&e);
            }
        }
    }

    async fn step(&mut self) {
        let (rx, shutdown) = (&mut self.rx, &mut self.shutdown);
        let ev = tokio::select! {
            biased;
            ev = rx.recv() => Some(ev),
            _ = async { let _ = shutdown.wait_for(|v| *v).await; } => None,
        };
        match ev {
            Some(ev) => self.on_event(ev),
            None => {
                let e = ApiError::shutting_down();
                self.log.failed(&e, "shutdown");
                self.error_event(&e);
            }
        }
    }
}

/// The streaming response. The first chunk (chat: the assistant role) is sent
/// at once; the receiver is dropped when the client goes away, which stops
/// the generation at its next token.
pub fn stream_response(
    meta: Meta,
    rx: mpsc::UnboundedReceiver<Event>,
    shutdown: watch::Receiver<bool>,
    include_usage: bool,
    log: LogCtx,
) -> Response {
    let param = meta.endpoint.prompt_param();
    let mut st = StreamState {
        meta,
        rx,
        shutdown,
        include_usage,
        log,
        ttft: None,
        out: VecDeque::new(),
        finished: false,
        param,
    };
    if st.meta.endpoint == Endpoint::Chat {
        let first = st.meta.chunk(
            json!({ "role": "assistant", "content": "" }),
            "",
            None,
            include_usage,
        );
        st.out.push_back(frame(&first));
    }
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(b) = st.out.pop_front() {
                return Some((Ok::<Bytes, Infallible>(b), st));
            }
            if st.finished {
                return None;
            }
            st.step().await;
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// Wait for the whole generation and answer with one JSON body.
pub async fn collect_response(
    meta: Meta,
    mut rx: mpsc::UnboundedReceiver<Event>,
    mut shutdown: watch::Receiver<bool>,
    log: LogCtx,
) -> Result<Response, ApiError> {
    let param = meta.endpoint.prompt_param();
    let mut first_delta: Option<Duration> = None;
    loop {
        let ev = tokio::select! {
            biased;
            ev = rx.recv() => ev,
            _ = shutdown.wait_for(|v| *v) => {
                let e = ApiError::shutting_down();
                log.failed(&e, "shutdown");
                return Err(e);
            }
        };
        match ev {
            Some(Event::Delta { .. }) => {
                if first_delta.is_none() {
                    first_delta = Some(log.t0.elapsed());
                }
            }
            Some(Event::Started { .. }) => {}
            Some(Event::Done(Ok(out))) => {
                log.done(&out, first_delta, false);
                let (content, reasoning) = match meta.endpoint {
                    Endpoint::Chat => (out.content.clone(), out.reasoning.clone()),
                    Endpoint::Completion => {
                        let mut t = out.reasoning.clone().unwrap_or_default();
                        t.push_str(&out.content);
                        (t, None)
                    }
                };
                let usage = Usage {
                    prompt_tokens: out.usage.prompt_tokens,
                    completion_tokens: out.usage.completion_tokens,
                };
                let finish = if out.finish_reason == FinishReason::Cancelled {
                    FinishReason::Stop
                } else {
                    out.finish_reason
                };
                let body = meta.full(&content, reasoning.as_deref(), finish, &usage);
                return Ok((
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response());
            }
            Some(Event::Done(Err(e))) => {
                let e = ApiError::from_generation(&e, param);
                log.failed(&e, "generation");
                return Err(e);
            }
            None => {
                let e = ApiError::new(
                    tanto_core::error::ErrorType::InternalError,
                    "the model worker stopped before finishing this request",
                );
                log.failed(&e, "generation");
                return Err(e);
            }
        }
    }
}
