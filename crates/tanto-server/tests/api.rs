//! The HTTP API against a real server on 127.0.0.1:0 with a fake engine:
//! shapes, streaming, every error status, auth, limits, queueing,
//! disconnects, eviction and graceful shutdown. No model files needed.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const CHAT: &str = "test/fake-chat";

async fn post(s: &TestServer, path: &str, body: &Value) -> reqwest::Response {
    client().post(s.url(path)).json(body).send().await.unwrap()
}

async fn err_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    assert!(resp.headers().contains_key("x-request-id"));
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["error"]["type"].is_string(), "{v}");
    assert!(
        v["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{v}"
    );
    (status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_request_ids() {
    let s = TestServer::start(|_| {}).await;
    let r = client().get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(rid.starts_with("req_"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok");

    // A sane incoming id is honoured, an odd one replaced.
    let r = client()
        .get(s.url("/health"))
        .header("X-Request-ID", "my-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "my-trace-42");
    let r = client()
        .get(s.url("/health"))
        .header("X-Request-ID", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id with spaces");

    // Errors carry the same id in the body.
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("X-Request-ID", "trace-err-1")
        .json(&json!({"model": CHAT}))
        .send()
        .await
        .unwrap();
    let (st, v) = err_of(r).await;
    assert_eq!(st, 400);
    assert_eq!(v["request_id"], "trace-err-1");
    assert_eq!(v["error"]["param"], "messages");

    // Unknown route: JSON 404.
    let (st, v) = err_of(client().get(s.url("/v2/nothing")).send().await.unwrap()).await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["code"], "not_found");
    let (st, _) = err_of(
        client()
            .get(s.url("/v1/chat/completions"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_and_retrieve() {
    let s = TestServer::start(|_| {}).await;
    let (_, v) = s.get_json("/v1/models").await;
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    // Healthy, runnable models: text and embeddings.
    assert_eq!(
        ids,
        vec![
            "test/embedder",
            "test/fake-base",
            "test/fake-chat",
            "test/fake-chat-2",
            "test/fake-tiny"
        ]
    );
    let emb = data.iter().find(|m| m["id"] == "test/embedder").unwrap();
    assert_eq!(emb["capabilities"], json!(["embeddings"]));
    let chat = data.iter().find(|m| m["id"] == CHAT).unwrap();
    assert_eq!(chat["object"], "model");
    assert_eq!(chat["owned_by"], "test");
    assert_eq!(chat["context_length"], 256);
    assert_eq!(chat["capabilities"], json!(["text-generation", "chat"]));
    assert_eq!(chat["loaded"], false);
    assert!(chat["created"].as_u64().unwrap() > 0);
    let base = data.iter().find(|m| m["id"] == "test/fake-base").unwrap();
    assert_eq!(base["capabilities"], json!(["text-generation"]));

    // Retrieve: the id contains a slash.
    let r = client()
        .get(s.url("/v1/models/test/fake-chat"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["id"], CHAT);
    let (st, v) = err_of(
        client()
            .get(s.url("/v1/models/nope/missing"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["type"], "model_not_found");
    let (st, _) = err_of(
        client()
            .get(s.url("/v1/models/test/broken"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 422);

    // After a request the model shows as loaded.
    let r = post(&s, "/v1/chat/completions", &chat_body(CHAT, "hi", false)).await;
    assert_eq!(r.status(), 200);
    let (_, v) = s.get_json("/v1/models").await;
    let chat = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == CHAT)
        .unwrap()
        .clone();
    assert_eq!(chat["loaded"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_non_stream_shape() {
    let s = TestServer::start(|_| {}).await;
    let r = post(
        &s,
        "/v1/chat/completions",
        &chat_body(CHAT, "hello count=3", false),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let v: Value = r.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], CHAT);
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    let c = &v["choices"][0];
    assert_eq!(c["index"], 0);
    assert_eq!(c["message"]["role"], "assistant");
    assert_eq!(c["message"]["content"], "t0 t1 t2 ");
    assert_eq!(c["finish_reason"], "stop");
    assert!(c["message"].get("reasoning_content").is_none());
    let u = &v["usage"];
    assert_eq!(u["prompt_tokens"], 4);
    assert_eq!(u["completion_tokens"], 3);
    assert_eq!(u["total_tokens"], 7);

    // Another spelling resolves to the same model (an alias, no second load).
    let r = post(
        &s,
        "/v1/chat/completions",
        &chat_body("TEST/Fake-Chat", "again", false),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.counters.loads.load(Ordering::SeqCst), 1);

    // max_tokens → finish_reason length.
    let mut b = chat_body(CHAT, "count=10", false);
    b["max_tokens"] = json!(2);
    let (_, v) = s.post_json("/v1/chat/completions", &b).await;
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 2);

    // Reasoning goes to reasoning_content.
    let (_, v) = s
        .post_json(
            "/v1/chat/completions",
            &chat_body(CHAT, "think count=1", false),
        )
        .await;
    assert_eq!(v["choices"][0]["message"]["reasoning_content"], "pondering");
    assert_eq!(v["choices"][0]["message"]["content"], "t0 ");

    // Content-part arrays and the developer role are accepted.
    let b = json!({"model": CHAT, "messages": [
        {"role":"developer","content":"be brief"},
        {"role":"user","content":[{"type":"text","text":"count=1"}]}
    ]});
    let r = post(&s, "/v1/chat/completions", &b).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_shape() {
    let s = TestServer::start(|_| {}).await;
    let mut b = chat_body(CHAT, "think count=3", true);
    b["stream_options"] = json!({"include_usage": true});
    let r = post(&s, "/v1/chat/completions", &b).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert!(r.headers().contains_key("x-request-id"));
    let (events, done) = read_sse(r).await;
    assert!(done, "stream ends with [DONE]");
    let id = events[0]["id"].as_str().unwrap().to_string();
    for e in &events {
        assert_eq!(e["object"], "chat.completion.chunk");
        assert_eq!(e["id"], id.as_str());
        assert_eq!(e["model"], CHAT);
    }
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let mut content = String::new();
    let mut reasoning = String::new();
    for e in &events[1..] {
        if let Some(c) = e["choices"].get(0) {
            content.push_str(c["delta"]["content"].as_str().unwrap_or(""));
            reasoning.push_str(c["delta"]["reasoning_content"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(content, "t0 t1 t2 ");
    assert_eq!(reasoning, "pondering");
    let n = events.len();
    assert_eq!(events[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[n - 2]["choices"][0]["delta"], json!({}));
    let usage = &events[n - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    assert_eq!(
        usage["usage"]["total_tokens"],
        usage["usage"]["prompt_tokens"].as_u64().unwrap() + 3
    );

    // Without include_usage: no usage chunk, no usage field.
    let r = post(
        &s,
        "/v1/chat/completions",
        &chat_body(CHAT, "count=2", true),
    )
    .await;
    let (events, done) = read_sse(r).await;
    assert!(done);
    assert!(events.iter().all(|e| e.get("usage").is_none()));
    assert_eq!(
        events.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_stream_and_not() {
    let s = TestServer::start(|_| {}).await;
    let b = json!({"model": "test/fake-base", "prompt": "Once upon count=2", "max_tokens": 8});
    let r = post(&s, "/v1/completions", &b).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "t0 t1 ");
    assert_eq!(v["choices"][0]["logprobs"], Value::Null);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 2);

    let b = json!({"model": "test/fake-base", "prompt": ["count=3"], "stream": true,
                   "stream_options": {"include_usage": true}});
    let (events, done) = read_sse(post(&s, "/v1/completions", &b).await).await;
    assert!(done);
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"].get(0).and_then(|c| c["text"].as_str()))
        .collect();
    assert_eq!(text, "t0 t1 t2 ");
    assert!(events.iter().all(|e| e["object"] == "text_completion"));
    assert_eq!(events.last().unwrap()["usage"]["completion_tokens"], 3);

    // Chat models serve completions too.
    let r = post(
        &s,
        "/v1/completions",
        &json!({"model": CHAT, "prompt": "x count=1"}),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_name_the_field() {
    let s = TestServer::start(|_| {}).await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/v1/chat/completions",
            json!({"model": CHAT, "messages": "hi"}),
            "messages",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role":"user","content":"x"}]}),
            "model",
        ),
        (
            "/v1/chat/completions",
            json!({"model": CHAT, "messages": [{"role":"bot","content":"x"}]}),
            "messages[0].role",
        ),
        (
            "/v1/chat/completions",
            json!({"model": CHAT, "messages": [{"role":"user","content":"x"}], "temperature": "hot"}),
            "temperature",
        ),
        (
            "/v1/chat/completions",
            json!({"model": CHAT, "messages": [{"role":"user","content":"x"}], "n": 3}),
            "n",
        ),
        (
            "/v1/chat/completions",
            json!({"model": CHAT, "messages": [{"role":"user","content":"x"}], "max_tokens": -1}),
            "max_tokens",
        ),
        (
            "/v1/chat/completions",
            json!({"model": CHAT, "messages": [{"role":"user","content":"x"}], "top_p": 1.5}),
            "top_p",
        ),
        (
            "/v1/chat/completions",
            json!({"model": CHAT, "messages": [{"role":"user","content":"x"}], "response_format": {"type":"json_schema"}}),
            "response_format.type",
        ),
        (
            "/v1/completions",
            json!({"model": CHAT, "prompt": ["a", "b"]}),
            "prompt",
        ),
        (
            "/v1/completions",
            json!({"model": CHAT, "prompt": "a", "echo": true}),
            "echo",
        ),
    ];
    for (path, body, param) in cases {
        let (st, v) = err_of(post(&s, path, &body).await).await;
        assert_eq!(st, 400, "{body}");
        assert_eq!(v["error"]["param"], param, "{body} → {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    // Not JSON at all.
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (st, v) = err_of(r).await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["code"], "invalid_json");

    // Prompt longer than the context → 400 context_length_exceeded.
    let long = "w ".repeat(40);
    let (st, v) = err_of(
        post(
            &s,
            "/v1/chat/completions",
            &chat_body("test/fake-tiny", &long, false),
        )
        .await,
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(v["error"]["param"], "messages");
    // max_tokens is capped by the room left in the context (16 - 4 prompt).
    let mut b = chat_body("test/fake-tiny", "hi count=50", false);
    b["max_tokens"] = json!(1000);
    let (_, v) = s.post_json("/v1/chat/completions", &b).await;
    assert_eq!(v["usage"]["completion_tokens"], 12);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_error_statuses() {
    let s = TestServer::start(|_| {}).await;
    let check = |model: &'static str, status: u16, ty: &'static str| {
        let s = &s;
        async move {
            let (st, v) =
                err_of(post(s, "/v1/chat/completions", &chat_body(model, "hi", false)).await).await;
            assert_eq!(
                (st, v["error"]["type"].as_str().unwrap()),
                (status, ty),
                "{model}: {v}"
            );
            assert_eq!(v["error"]["param"], "model");
            v
        }
    };
    let v = check("nothing-like-this", 404, "model_not_found").await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains("tanto"),
        "says what to do: {v}"
    );
    check("test/broken", 422, "unhealthy_model").await;
    let v = check("test/fake-base", 400, "capability_mismatch").await;
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/completions"));
    check("test/embedder", 400, "capability_mismatch").await;
    check("test/weird-arch", 501, "runtime_incompatible").await;
    // An MLX config over tensors without scales: the probe finds them inconsistent.
    let v = check("test/mlx-4bit", 422, "unhealthy_model").await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains("scales"),
        "{v}"
    );
    // Ambiguous fuzzy name → 400 listing the candidates.
    let v = check("fake", 400, "ambiguous_match").await;
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("test/fake-chat-2"));
    // Images to a text-only model → capability mismatch.
    let b = json!({"model": CHAT, "messages": [{"role":"user","content":[
        {"type":"text","text":"what is this"},
        {"type":"image_url","image_url":{"url": png_data_url()}}]}]});
    let (st, v) = err_of(post(&s, "/v1/chat/completions", &b).await).await;
    assert_eq!(
        (st, v["error"]["type"].as_str().unwrap()),
        (400, "capability_mismatch")
    );
    // Paths are refused unless --allow-paths.
    let (st, v) =
        err_of(post(&s, "/v1/chat/completions", &chat_body("/etc", "hi", false)).await).await;
    assert_eq!(st, 403);
    assert_eq!(v["error"]["param"], "model");
    let (st, _) = err_of(client().get(s.url("/v1/models//etc")).send().await.unwrap()).await;
    assert_eq!(st, 403);
    // Nothing was loaded for any of these.
    assert_eq!(s.counters.loads.load(Ordering::SeqCst), 0);
}

/// A request is tokenized once (the length check and the generation share the
/// ids), and a model that is already loaded is refused by the same policy
/// verdict as one that is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tokenization_per_request_and_one_policy_for_loaded_models() {
    let s = TestServer::start(|_| {}).await;
    let base = "test/fake-base";
    let (st, v) = s
        .post_json(
            "/v1/completions",
            &json!({"model": base, "prompt": "Once upon count=2"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"][0]["text"], "t0 t1 ", "generated from the ids");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(s.counters.tokenized.load(Ordering::SeqCst), 1);
    assert_eq!(s.counters.generations.load(Ordering::SeqCst), 1);

    // By another name the request takes the slow path (resolve, probe,
    // policy): a chat to a base model is refused by the capability gate.
    let (st, v) = err_of(
        post(
            &s,
            "/v1/chat/completions",
            &chat_body("fake-base", "hi", false),
        )
        .await,
    )
    .await;
    assert_eq!(
        (st, v["error"]["type"].as_str()),
        (400, Some("capability_mismatch"))
    );
    let slow = v["error"]["message"].as_str().unwrap().to_string();
    // Loaded under this very spec: the fast path asks the policy with the
    // model's probe, and the answer is the same, word for word.
    let (st, v) =
        err_of(post(&s, "/v1/chat/completions", &chat_body(base, "hi", false)).await).await;
    assert_eq!(
        (st, v["error"]["type"].as_str()),
        (400, Some("capability_mismatch"))
    );
    assert_eq!(v["error"]["param"], "model");
    assert_eq!(v["error"]["message"].as_str().unwrap(), slow);
    assert!(slow.contains("/v1/completions"), "{slow}");
    assert_eq!(
        s.counters.loads.load(Ordering::SeqCst),
        1,
        "nothing reloaded"
    );
    assert_eq!(s.counters.tokenized.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_paths_loads_by_path() {
    let s = TestServer::start(|c| c.allow_paths = true).await;
    let file = s.fixture.snap(CHAT).join("fake-chat.Q4_0.gguf");
    let r = post(
        &s,
        "/v1/chat/completions",
        &chat_body(file.to_str().unwrap(), "count=1", false),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_memory_is_507() {
    let s = TestServer::start(|c| c.memory_budget = Some(16)).await;
    let (st, v) =
        err_of(post(&s, "/v1/chat/completions", &chat_body(CHAT, "hi", false)).await).await;
    assert_eq!(st, 507);
    assert_eq!(v["error"]["type"], "insufficient_memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_when_set() {
    let s = TestServer::start(|c| c.api_key = Some("sekrit".into())).await;
    let (st, v) =
        err_of(post(&s, "/v1/chat/completions", &chat_body(CHAT, "hi", false)).await).await;
    assert_eq!(st, 401);
    assert_eq!(v["error"]["code"], "missing_api_key");
    let r = client()
        .get(s.url("/v1/models"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let (st, v) = err_of(r).await;
    assert_eq!(st, 401);
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let r = client()
        .get(s.url("/v1/models"))
        .bearer_auth("sekrit")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // /health stays open for probes.
    let r = client().get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_is_413() {
    let s = TestServer::start(|c| c.body_limit = 1024).await;
    let big = chat_body(CHAT, &"x".repeat(4096), false);
    let (st, v) = err_of(post(&s, "/v1/chat/completions", &big).await).await;
    assert_eq!(st, 413);
    assert_eq!(v["error"]["type"], "payload_too_large");
    // Chunked (no Content-Length) bodies are limited too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; 800]), Ok(vec![b' '; 800])];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (st, _) = err_of(r).await;
    assert_eq!(st, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_stops_generation() {
    let s = TestServer::start(|_| {}).await;
    let r = post(
        &s,
        "/v1/chat/completions",
        &chat_body(CHAT, "count=100000 delay=5", true),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut rd = SseReader::new(r);
    for _ in 0..4 {
        rd.next().await.expect("event");
    }
    drop(rd);
    // The generation stops within a token or two of noticing.
    assert!(
        eventually(Duration::from_secs(5), || s
            .counters
            .running
            .load(Ordering::SeqCst)
            == 0)
        .await,
        "generation still running after the client left"
    );
    let made = s.counters.tokens.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        s.counters.tokens.load(Ordering::SeqCst),
        made,
        "no tokens after stopping"
    );
    assert!(made < 1000, "made {made} tokens");
    // The next request is served promptly.
    let t0 = Instant::now();
    let r = post(
        &s,
        "/v1/chat/completions",
        &chat_body(CHAT, "count=1", false),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_one_model_queue_fifo() {
    let s = TestServer::start(|_| {}).await;
    // Warm the model so the requests below race only for the queue.
    post(
        &s,
        "/v1/chat/completions",
        &chat_body(CHAT, "count=1", false),
    )
    .await;
    let mut handles = Vec::new();
    for i in 0..4 {
        let url = s.url("/v1/chat/completions");
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = client()
                .post(url)
                .json(&chat_body(CHAT, &format!("req{i} count=5 delay=10"), false))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            (
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                t0.elapsed(),
            )
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for h in handles {
        let (content, _) = h.await.unwrap();
        assert_eq!(content, "t0 t1 t2 t3 t4 ");
    }
    assert_eq!(
        s.counters.max_running.load(Ordering::SeqCst),
        1,
        "one generation at a time per model"
    );
    // /health answers while generations run.
    let url = s.url("/v1/chat/completions");
    let bg = tokio::spawn(async move {
        client()
            .post(url)
            .json(&chat_body(CHAT, "count=40 delay=10", false))
            .send()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    let r = client().get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t0.elapsed() < Duration::from_millis(300));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["loaded"][0]["id"], CHAT);
    bg.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lru_and_keep_alive_eviction() {
    let s = TestServer::start(|c| {
        c.max_loaded = 1;
        c.keep_alive = Duration::from_millis(300);
    })
    .await;
    let loaded = |s: &TestServer| {
        let url = s.url("/health");
        async move {
            let v: Value = client()
                .get(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["loaded"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    post(
        &s,
        "/v1/chat/completions",
        &chat_body(CHAT, "count=1", false),
    )
    .await;
    assert_eq!(loaded(&s).await, vec![CHAT.to_string()]);
    post(
        &s,
        "/v1/chat/completions",
        &chat_body("test/fake-chat-2", "count=1", false),
    )
    .await;
    assert_eq!(loaded(&s).await, vec!["test/fake-chat-2".to_string()]);
    assert_eq!(s.counters.loads.load(Ordering::SeqCst), 2);
    // A refused request never unloads the loaded model.
    post(
        &s,
        "/v1/chat/completions",
        &chat_body("test/broken", "x", false),
    )
    .await;
    assert_eq!(loaded(&s).await, vec!["test/fake-chat-2".to_string()]);
    // Idle past keep-alive → unloaded.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(loaded(&s).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preloaded_default_model() {
    let s = TestServer::start(|c| {
        c.model = Some(CHAT.into());
        c.keep_alive = Duration::from_millis(100);
    })
    .await;
    assert_eq!(s.counters.loads.load(Ordering::SeqCst), 1);
    // `model` may be omitted when --model is set.
    let r = post(
        &s,
        "/v1/chat/completions",
        &json!({"messages":[{"role":"user","content":"count=1"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, v) = s.get_json("/v1/models").await;
    assert_eq!(v["data"][0]["id"], CHAT, "preloaded model listed first");
    // Pinned: not unloaded for idleness.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, v) = s.get_json("/health").await;
    assert_eq!(v["loaded"][0]["id"], CHAT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preload_failure_fails_startup() {
    let fx = Fixture::new();
    let mut cfg = base_config(&fx);
    cfg.model = Some("test/broken".into());
    let counters = std::sync::Arc::new(Counters::default());
    let r = tanto_server::Server::bind_with_loader(cfg, std::sync::Arc::new(FakeLoader(counters)))
        .await;
    let msg = r.err().expect("must fail").to_string();
    assert!(msg.contains("unhealthy"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_error_mid_stream_is_a_final_event() {
    let s = TestServer::start(|_| {}).await;
    let r = post(
        &s,
        "/v1/chat/completions",
        &chat_body(CHAT, "count=5 fail=2", true),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (events, done) = read_sse(r).await;
    assert!(done, "[DONE] follows the error event");
    let last = events.last().unwrap();
    assert_eq!(last["error"]["type"], "execution_error", "{last}");
    assert!(last["request_id"].is_string());
    // Non-streaming: a plain 500 error body.
    let (st, v) = err_of(
        post(
            &s,
            "/v1/chat/completions",
            &chat_body(CHAT, "fail=0", false),
        )
        .await,
    )
    .await;
    assert_eq!(st, 500);
    assert_eq!(v["error"]["type"], "execution_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_cuts_streams_with_a_final_event() {
    let mut s = TestServer::start(|_| {}).await;
    let r = post(
        &s,
        "/v1/chat/completions",
        &chat_body(CHAT, "count=100000 delay=5", true),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut rd = SseReader::new(r);
    for _ in 0..3 {
        rd.next().await.expect("event");
    }
    let t0 = Instant::now();
    s.shutdown();
    let mut last = Vec::new();
    while let Some(ev) = rd.next().await {
        last.push(ev);
    }
    let n = last.len();
    assert!(n >= 2);
    assert_eq!(last[n - 1], "[DONE]");
    let err: Value = serde_json::from_str(&last[n - 2]).unwrap();
    assert_eq!(err["error"]["type"], "server_shutdown");
    let res = tokio::time::timeout(Duration::from_secs(5), s.handle.take().unwrap())
        .await
        .expect("server stops promptly")
        .unwrap();
    assert!(res.is_ok());
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(
        eventually(Duration::from_secs(2), || s
            .counters
            .running
            .load(Ordering::SeqCst)
            == 0)
        .await
    );
    // No longer accepting.
    assert!(client().get(s.url("/health")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_when_configured() {
    let s = TestServer::start(|c| {
        c.cors_origins = vec!["http://localhost:3000".into()];
        c.api_key = Some("k".into());
    })
    .await;
    let r = client()
        .request(reqwest::Method::OPTIONS, s.url("/v1/chat/completions"))
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    // Preflights need no key; the real request does, and its refusal is readable.
    let r = client()
        .get(s.url("/v1/models"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let (_, v) = err_of(r).await;
    assert_eq!(v["error"]["code"], "missing_api_key");
    let r = client()
        .get(s.url("/v1/models"))
        .header("Origin", "http://localhost:3000")
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let r = client()
        .get(s.url("/v1/models"))
        .header("Origin", "http://evil.example")
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // Without the option: no CORS headers at all.
    let s2 = TestServer::start(|_| {}).await;
    let r = client()
        .get(s2.url("/v1/models"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps_unload_keep_alive_and_metrics() {
    let s = TestServer::start(|c| c.keep_alive = Duration::from_secs(3600)).await;
    // Nothing loaded yet.
    let (st, v) = s.get_json("/api/ps").await;
    assert_eq!(st, 200);
    assert_eq!(v["models"], serde_json::json!([]));
    let (st, _) = s
        .post_json(
            "/v1/chat/completions",
            &chat_body(CHAT, "hi count=3", false),
        )
        .await;
    assert_eq!(st, 200);
    let (_, v) = s.get_json("/api/ps").await;
    let m = &v["models"][0];
    assert_eq!(m["name"], CHAT, "{v:#}");
    assert_eq!(m["mode"], "fifo");
    assert!(m["size"].as_u64().unwrap() > 0);
    let left = m["expires_in_s"].as_u64().unwrap();
    assert!((3590..=3600).contains(&left), "{left}");
    assert!(m["expires_at"].as_str().unwrap().contains('T'));

    // A request's keep_alive: -1 keeps it forever, a bad one is a 400 naming it.
    let mut body = chat_body(CHAT, "hi count=1", false);
    body["keep_alive"] = serde_json::json!(-1);
    assert_eq!(s.post_json("/v1/chat/completions", &body).await.0, 200);
    let (_, v) = s.get_json("/api/ps").await;
    assert!(v["models"][0]["expires_at"].is_null(), "{v:#}");
    body["keep_alive"] = serde_json::json!("soon");
    let (st, v) = s.post_json("/v1/chat/completions", &body).await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["param"], "keep_alive");
    // keep_alive 0: unloaded as soon as it is idle.
    body["keep_alive"] = serde_json::json!(0);
    assert_eq!(s.post_json("/v1/chat/completions", &body).await.0, 200);
    assert!(
        eventually(Duration::from_secs(5), || {
            futures_executor_ps_empty(&s.url("/api/ps"))
        })
        .await,
        "keep_alive 0 unloads"
    );

    // Explicit unload: 200, then 404 when it is not loaded.
    assert_eq!(
        s.post_json(
            "/v1/chat/completions",
            &chat_body(CHAT, "hi count=1", false)
        )
        .await
        .0,
        200
    );
    let (st, v) = s
        .post_json(&format!("/v1/models/{CHAT}/unload"), &serde_json::json!({}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["unloaded"], true);
    let (_, v) = s.get_json("/api/ps").await;
    assert_eq!(v["models"], serde_json::json!([]));
    let (st, v) = s
        .post_json(&format!("/v1/models/{CHAT}/unload"), &serde_json::json!({}))
        .await;
    assert_eq!(st, 404, "{v}");

    // /metrics: Prometheus text with what happened above.
    let r = client().get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains("tanto_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 4"),
        "{text}"
    );
    assert!(text.contains("tanto_requests_total{route=\"/v1/chat/completions\",status=\"400\"} 1"));
    assert!(text.contains("tanto_completion_tokens_total 6"), "{text}");
    assert!(text.contains("tanto_time_to_first_token_seconds_count 4"));
    assert!(text.contains("tanto_loaded_models 0"));
}

/// Blocking GET of `/api/ps`, true when no model is loaded.
fn futures_executor_ps_empty(url: &str) -> bool {
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let v: Value = client()
                .get(&url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["models"].as_array().is_some_and(|a| a.is_empty())
        })
    })
    .join()
    .unwrap()
}

/// Send 64 slow requests without waiting for them, then wait until the
/// model reports a full queue (64 queued or running).
async fn fill_queue(
    s: &TestServer,
    path: &str,
    body: Value,
) -> Vec<tokio::task::JoinHandle<reqwest::Result<u16>>> {
    let mut slow = Vec::new();
    for _ in 0..64 {
        let url = s.url(path);
        let b = body.clone();
        slow.push(tokio::spawn(async move {
            client()
                .post(url)
                .json(&b)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    let t0 = Instant::now();
    loop {
        let (_, h) = s.get_json("/health").await;
        if h["loaded"][0]["queued"].as_u64() == Some(64) {
            return slow;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "queue never filled: {h}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One more request to a full queue: 429 with Retry-After.
async fn assert_429(s: &TestServer, path: &str, body: &Value) {
    let r = client().post(s.url(path)).json(body).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_exceeded", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_generation_queue_is_429_with_retry_after() {
    let s = TestServer::start(|_| {}).await;
    // Warm the model, then fill its queue with slow requests.
    assert_eq!(
        s.post_json(
            "/v1/chat/completions",
            &chat_body(CHAT, "hi count=1", false)
        )
        .await
        .0,
        200
    );
    let slow = fill_queue(
        &s,
        "/v1/chat/completions",
        chat_body(CHAT, "hi count=1 delay=200", false),
    )
    .await;
    assert_429(
        &s,
        "/v1/chat/completions",
        &chat_body(CHAT, "hi count=1", false),
    )
    .await;
    for h in slow {
        let st = h.await.unwrap().unwrap();
        assert!(st == 200 || st == 429, "{st}");
    }
    assert_eq!(
        s.post_json(
            "/v1/chat/completions",
            &chat_body(CHAT, "hi count=1", false)
        )
        .await
        .0,
        200
    );
}

// ---------------------------------------------------------------------------
// Scale-out: a second tanto serve stands in for vLLM (same OpenAI surface).

/// A front server with no models of its own, routing to `ups`.
async fn front_to(
    ups: &[&TestServer],
    empty: &std::path::Path,
    tweak: impl FnOnce(&mut tanto_server::ServeConfig),
) -> TestServer {
    let urls: Vec<String> = ups.iter().map(|u| u.base.clone()).collect();
    let empty = empty.to_path_buf();
    TestServer::start(move |c| {
        c.stores = Some(tanto_core::resolve::Stores {
            cache: empty,
            workspace_home: None,
        });
        c.upstreams = urls;
        tweak(c);
    })
    .await
}

/// SSE events with the per-response fields (`id`, `created`) blanked.
fn normalized(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["id"] = Value::Null;
            e["created"] = Value::Null;
            e
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_takes_models_this_server_lacks() {
    let up = TestServer::start(|_| {}).await;
    let empty = tempfile::tempdir().unwrap();
    let front = front_to(&[&up], empty.path(), |_| {}).await;
    // Its /v1/models lists the upstream's, marked with where they run.
    let (st, v) = front.get_json("/v1/models").await;
    assert_eq!(st, 200);
    let m = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == CHAT)
        .cloned()
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(m["upstream"], up.base.as_str());
    // A streamed answer through the front is the direct one, event for event.
    let body = chat_body(CHAT, "hi count=4", true);
    let direct = client()
        .post(up.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (d_events, d_done) = read_sse(direct).await;
    let routed = client()
        .post(front.url("/v1/chat/completions"))
        .header("x-request-id", "trace-abc-123")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(routed.status(), 200);
    assert_eq!(routed.headers()["x-request-id"], "trace-abc-123");
    assert_eq!(routed.headers()["x-tanto-upstream"], up.base.as_str());
    assert!(routed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (r_events, r_done) = read_sse(routed).await;
    assert!(d_done && r_done);
    assert_eq!(normalized(&r_events), normalized(&d_events));
    // Non-streamed too; nothing was loaded on the front.
    let (st, v) = front
        .post_json(
            "/v1/chat/completions",
            &chat_body(CHAT, "hi count=2", false),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(front.counters.loads.load(Ordering::SeqCst), 0);
    assert!(up.counters.generations.load(Ordering::SeqCst) >= 3);
    // A model nobody has: the local 404, not an upstream error.
    let (st, v) = front
        .post_json(
            "/v1/chat/completions",
            &chat_body("nobody/has-this", "hi", false),
        )
        .await;
    assert_eq!(st, 404, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_slow_upstreams_are_502_and_504() {
    let mut up = TestServer::start(|_| {}).await;
    let empty = tempfile::tempdir().unwrap();
    let front = front_to(&[&up], empty.path(), |c| {
        c.upstream_timeout = Duration::from_millis(400)
    })
    .await;
    // Slow: no answer within the timeout.
    let (st, v) = front
        .post_json(
            "/v1/chat/completions",
            &chat_body(CHAT, "hi count=2 delay=1000", false),
        )
        .await;
    assert_eq!(st, 504, "{v}");
    assert_eq!(v["error"]["code"], "upstream_timeout");
    // Dead: listed at the last refresh, gone now.
    front.get_json("/v1/models").await;
    up.shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (st, v) = front
        .post_json("/v1/chat/completions", &chat_body(CHAT, "hi", false))
        .await;
    assert_eq!(st, 502, "{v}");
    assert_eq!(v["error"]["code"], "upstream_unavailable");
    // The front itself keeps serving.
    assert_eq!(front.get_json("/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_upstreams_share_the_load() {
    let a = TestServer::start(|_| {}).await;
    let b = TestServer::start(|_| {}).await;
    let empty = tempfile::tempdir().unwrap();
    let front = front_to(&[&a, &b], empty.path(), |_| {}).await;
    for _ in 0..40 {
        let (st, _) = front
            .post_json(
                "/v1/chat/completions",
                &chat_body(CHAT, "hi count=1", false),
            )
            .await;
        assert_eq!(st, 200);
    }
    let (na, nb) = (
        a.counters.generations.load(Ordering::SeqCst),
        b.counters.generations.load(Ordering::SeqCst),
    );
    assert_eq!(na + nb, 40);
    assert!((16..=24).contains(&na), "{na} / {nb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_the_memory_gate_refuses_goes_upstream() {
    let up = TestServer::start(|_| {}).await;
    let base = up.base.clone();
    // The front has the model but a budget it cannot fit in: 507 locally.
    let front = TestServer::start(move |c| {
        c.memory_budget = Some(1);
        c.upstreams = vec![base];
    })
    .await;
    let (st, v) = front
        .post_json(
            "/v1/chat/completions",
            &chat_body(CHAT, "hi count=2", false),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        front.counters.loads.load(Ordering::SeqCst),
        0,
        "nothing loaded on the front"
    );
    assert_eq!(up.counters.generations.load(Ordering::SeqCst), 1);
    // Without an upstream that lists it, the local 507 stands.
    let alone = TestServer::start(|c| c.memory_budget = Some(1)).await;
    let (st, _) = alone
        .post_json("/v1/chat/completions", &chat_body(CHAT, "hi", false))
        .await;
    assert_eq!(st, 507);
}

/// The committed 64x64 test PNG as a data URL.
fn png_data_url() -> String {
    use base64::Engine as _;
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/vlm-tiny/images/square.png");
    let b = std::fs::read(p).unwrap();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(b)
    )
}

fn image_chat(url: &str, detail: Option<&str>) -> Value {
    let mut iu = json!({"url": url});
    if let Some(d) = detail {
        iu["detail"] = json!(d);
    }
    json!({"model": CHAT, "messages": [{"role":"user","content":[
        {"type":"text","text":"what is this"},
        {"type":"image_url","image_url": iu}]}]})
}

/// Image parts are checked (scheme, type, base64, bytes, size) before any
/// model is looked at: every refusal is typed, names the part, loads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_parts_are_validated_before_any_load() {
    let s = TestServer::start(|c| c.image_limit = 4096).await;
    let param = "messages[0].content[1].image_url.url";
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            image_chat("http://169.254.169.254/latest/meta-data", None),
            400,
            "remote_image_refused",
        ),
        (
            image_chat("https://example.com/cat.png", None),
            400,
            "remote_image_refused",
        ),
        (
            image_chat("file:///etc/passwd", None),
            400,
            "invalid_request_error",
        ),
        (
            image_chat("data:image/png;base64,@@@@", None),
            400,
            "invalid_image",
        ),
        (
            image_chat("data:image/bmp;base64,Qk0=", None),
            415,
            "unsupported_media_type",
        ),
        (
            image_chat("data:image/png,rawbytes", None),
            400,
            "invalid_request_error",
        ),
        // Valid base64 of bytes that are no image.
        (
            image_chat("data:image/png;base64,aGVsbG8gd29ybGQ=", None),
            415,
            "unsupported_media_type",
        ),
        // A PNG signature and then garbage.
        (
            image_chat(
                "data:image/png;base64,iVBORw0KGgr/////////////////////",
                None,
            ),
            400,
            "invalid_image",
        ),
        // 8.6 kB over a 4 kB limit.
        (image_chat(&png_data_url(), None), 413, "image_too_large"),
    ];
    for (body, status, code) in cases {
        let (st, v) = err_of(post(&s, "/v1/chat/completions", &body).await).await;
        assert_eq!(
            (st, v["error"]["code"].as_str().unwrap()),
            (status, code),
            "{v}"
        );
        assert_eq!(v["error"]["param"], param, "{v}");
    }
    let (st, v) = err_of(
        post(
            &s,
            "/v1/chat/completions",
            &image_chat("data:image/png;base64,AAAA", Some("ultra")),
        )
        .await,
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(
        v["error"]["param"],
        "messages[0].content[1].image_url.detail"
    );
    assert_eq!(s.counters.loads.load(Ordering::SeqCst), 0);
}

/// Embeddings queue like generations: 64 queued or running per model, then
/// 429 with Retry-After, and the model serves again once the queue drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_embedding_queue_is_429_with_retry_after() {
    let s = TestServer::start(|_| {}).await;
    let body = |t: &str| json!({"model": "test/embedder", "input": t});
    let (st, v) = s.post_json("/v1/embeddings", &body("hello world")).await;
    assert_eq!(st, 200, "{v}");
    let slow = fill_queue(&s, "/v1/embeddings", body("slow delay=150")).await;
    assert_429(&s, "/v1/embeddings", &body("one more")).await;
    for h in slow {
        assert_eq!(h.await.unwrap().unwrap(), 200, "queued requests are served");
    }
    let (st, _) = s.post_json("/v1/embeddings", &body("hello again")).await;
    assert_eq!(st, 200);
}
