//! Shared fixtures: a temporary hub cache with small synthetic models, a fake
//! engine (deterministic, controllable speed, counts the tokens it makes), a
//! server on 127.0.0.1:0, and an SSE reader.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tanto_core::plan::LoadPlan;
use tanto_core::resolve::Stores;
use tanto_engine::{
    Delta, EncodedPrompt, EngineError, FinishReason, Flow, GenerationOutput, GenerationParams,
    LoadOptions, Prompt, TextModel, TextModelInfo, Timings, Usage,
};
use tanto_server::{Loader, ServeConfig, Server};

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

// ---------------------------------------------------------------------------
// Synthetic model files

fn gguf_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A tiny valid GGUF v3: metadata only (architecture, context length,
/// optional chat template, a 3-token vocabulary); `broken` adds a tensor
/// whose data is missing, so the file reads as truncated.
pub fn write_gguf(path: &Path, arch: &str, ctx: u32, template: bool, broken: bool) {
    let mut kv: Vec<u8> = Vec::new();
    let mut n_kv = 0u64;
    gguf_string(&mut kv, "general.architecture");
    kv.extend_from_slice(&8u32.to_le_bytes());
    gguf_string(&mut kv, arch);
    n_kv += 1;
    gguf_string(&mut kv, &format!("{arch}.context_length"));
    kv.extend_from_slice(&4u32.to_le_bytes());
    kv.extend_from_slice(&ctx.to_le_bytes());
    n_kv += 1;
    if template {
        gguf_string(&mut kv, "tokenizer.chat_template");
        kv.extend_from_slice(&8u32.to_le_bytes());
        gguf_string(
            &mut kv,
            "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>",
        );
        n_kv += 1;
    }
    gguf_string(&mut kv, "tokenizer.ggml.tokens");
    kv.extend_from_slice(&9u32.to_le_bytes());
    kv.extend_from_slice(&8u32.to_le_bytes());
    kv.extend_from_slice(&3u64.to_le_bytes());
    for t in ["<s>", "</s>", "a"] {
        gguf_string(&mut kv, t);
    }
    n_kv += 1;

    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(if broken { 1u64 } else { 0u64 }).to_le_bytes());
    out.extend_from_slice(&n_kv.to_le_bytes());
    out.extend_from_slice(&kv);
    if broken {
        gguf_string(&mut out, "token_embd.weight");
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&1024u64.to_le_bytes());
        out.extend_from_slice(&1024u64.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // f32
        out.extend_from_slice(&0u64.to_le_bytes());
    }
    // Pad to the 32-byte alignment plus a little "data".
    let pad = (32 - out.len() % 32) % 32 + 64;
    out.extend(std::iter::repeat_n(0u8, pad));
    fs::write(path, out).unwrap();
}

fn write_safetensors(path: &Path) {
    let header = b"{}      ";
    let mut f = fs::File::create(path).unwrap();
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(header).unwrap();
}

/// `hub/models--org--name/snapshots/<COMMIT>/` with `refs/main`.
pub fn snapshot_dir(hub: &Path, repo: &str) -> PathBuf {
    let dir = hub.join(format!("models--{}", repo.replace('/', "--")));
    let snap = dir.join("snapshots").join(COMMIT);
    fs::create_dir_all(&snap).unwrap();
    fs::create_dir_all(dir.join("refs")).unwrap();
    fs::write(dir.join("refs").join("main"), COMMIT).unwrap();
    snap
}

/// The fixture cache.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub hub: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let hub = dir.path().join("hub");
        fs::create_dir_all(&hub).unwrap();
        let f = Fixture { dir, hub };
        write_gguf(
            &f.snap("test/fake-chat").join("fake-chat.Q4_0.gguf"),
            "llama",
            256,
            true,
            false,
        );
        write_gguf(
            &f.snap("test/fake-chat-2").join("fake-chat-2.Q4_0.gguf"),
            "llama",
            256,
            true,
            false,
        );
        write_gguf(
            &f.snap("test/fake-tiny").join("fake-tiny.Q4_0.gguf"),
            "llama",
            16,
            true,
            false,
        );
        write_gguf(
            &f.snap("test/fake-base").join("fake-base.Q4_0.gguf"),
            "llama",
            256,
            false,
            false,
        );
        write_gguf(
            &f.snap("test/broken").join("broken.Q4_0.gguf"),
            "llama",
            256,
            true,
            true,
        );
        write_gguf(
            &f.snap("test/weird-arch").join("weird.Q4_0.gguf"),
            "mamba",
            256,
            true,
            false,
        );
        // An embedder (sentence-transformers layout).
        let e = f.snap("test/embedder");
        fs::write(
            e.join("config.json"),
            r#"{"model_type":"bert","architectures":["BertModel"]}"#,
        )
        .unwrap();
        fs::write(e.join("modules.json"), "[]").unwrap();
        fs::write(e.join("tokenizer.json"), "{}").unwrap();
        write_safetensors(&e.join("model.safetensors"));
        // An MLX quantization block over tensors without `.scales` (inconsistent).
        let m = f.snap("test/mlx-4bit");
        fs::write(
            m.join("config.json"),
            r#"{"model_type":"llama","architectures":["LlamaForCausalLM"],"quantization":{"bits":4,"group_size":64}}"#,
        )
        .unwrap();
        fs::write(m.join("tokenizer.json"), "{}").unwrap();
        fs::write(
            m.join("tokenizer_config.json"),
            r#"{"chat_template":"{% for m in messages %}{{ m.content }}{% endfor %}"}"#,
        )
        .unwrap();
        write_safetensors(&m.join("model.safetensors"));
        f
    }

    pub fn snap(&self, repo: &str) -> PathBuf {
        snapshot_dir(&self.hub, repo)
    }

    pub fn stores(&self) -> Stores {
        Stores {
            cache: self.hub.clone(),
            workspace_home: None,
        }
    }
}

// ---------------------------------------------------------------------------
// The fake engine

#[derive(Default)]
pub struct Counters {
    pub loads: AtomicUsize,
    pub generations: AtomicUsize,
    pub tokens: AtomicUsize,
    /// Calls to `encode` (the server's one tokenizing step per request).
    pub tokenized: AtomicUsize,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
}

pub struct FakeLoader(pub Arc<Counters>);

impl Loader for FakeLoader {
    /// A fake embedder (4-dimensional vectors), slowed by `delay=MS` in an
    /// input (queue tests).
    fn load_embedder(
        &self,
        plan: &LoadPlan,
        spec: &tanto_engine::embed::EmbeddingSpec,
        _opts: &LoadOptions,
    ) -> Result<Box<dyn tanto_engine::embed::EmbeddingModel>, EngineError> {
        self.0.loads.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(SlowEmbedder {
            info: tanto_engine::embed::EmbeddingModelInfo {
                name: plan.name.clone(),
                architecture: plan.architecture.clone(),
                dimensions: 4,
                max_seq_length: 64,
                vocab_size: 100,
                pooling: "mean".into(),
                normalize: true,
                matryoshka: false,
                backend: "fake".into(),
                load_time: Duration::from_millis(1),
            },
            spec: spec.clone(),
            delay_ms: Default::default(),
        }))
    }

    fn load(
        &self,
        plan: &LoadPlan,
        _opts: &LoadOptions,
    ) -> Result<Box<dyn TextModel>, EngineError> {
        self.0.loads.fetch_add(1, Ordering::SeqCst);
        let has_template = !plan.name.contains("base");
        Ok(Box::new(FakeModel {
            info: TextModelInfo {
                name: plan.name.clone(),
                architecture: plan.architecture.clone(),
                context_length: plan.context_length.unwrap_or(256),
                has_chat_template: has_template,
                eos_token_ids: vec![1],
                load_time: Duration::from_millis(1),
            },
            counters: self.0.clone(),
            vocab: Default::default(),
        }))
    }
}

/// An embedder that sleeps `delay=MS` (read from its inputs) before embedding.
pub struct SlowEmbedder {
    info: tanto_engine::embed::EmbeddingModelInfo,
    spec: tanto_engine::embed::EmbeddingSpec,
    delay_ms: std::sync::atomic::AtomicU64,
}

impl tanto_engine::embed::EmbeddingModel for SlowEmbedder {
    fn info(&self) -> &tanto_engine::embed::EmbeddingModelInfo {
        &self.info
    }
    fn spec(&self) -> &tanto_engine::embed::EmbeddingSpec {
        &self.spec
    }
    fn encode(
        &self,
        inputs: &[tanto_engine::embed::EmbedInput],
        _input_type: tanto_engine::embed::InputType,
        _instruct: Option<&str>,
    ) -> Result<Vec<tanto_engine::embed::EncodedInput>, EngineError> {
        let mut out = Vec::new();
        for i in inputs {
            let ids: Vec<u32> = match i {
                tanto_engine::embed::EmbedInput::Text(t) => {
                    if let Some(ms) = t
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("delay=")?.parse().ok())
                    {
                        self.delay_ms.store(ms, Ordering::SeqCst);
                    }
                    (1..=t.split_whitespace().count() as u32).collect()
                }
                tanto_engine::embed::EmbedInput::Tokens(t) => t.clone(),
            };
            out.push(tanto_engine::embed::EncodedInput {
                ids,
                pooling_skip: 0,
                truncated_tokens: 0,
            });
        }
        Ok(out)
    }
    fn embed_encoded(
        &mut self,
        inputs: &[tanto_engine::embed::EncodedInput],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let ms = self.delay_ms.swap(0, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(ms));
        Ok(inputs.iter().map(|_| vec![0.5; 4]).collect())
    }
}

pub struct FakeModel {
    info: TextModelInfo,
    counters: Arc<Counters>,
    vocab: std::sync::Mutex<Vec<String>>,
}

/// The id of the template markup around a prompt (words are 1, 2, …).
const MARKUP: u32 = 0;

fn prompt_text(p: &Prompt) -> String {
    match p {
        Prompt::Chat(m) => m
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        Prompt::Text(t) => t.clone(),
    }
}

/// `key=value` words in the prompt steer the fake engine.
fn directive(text: &str, key: &str) -> Option<u64> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
}

impl TextModel for FakeModel {
    fn info(&self) -> &TextModelInfo {
        &self.info
    }

    fn render(&self, prompt: &Prompt) -> Result<String, EngineError> {
        match prompt {
            Prompt::Chat(_) if !self.info.has_chat_template => Err(EngineError::NoChatTemplate),
            p => Ok(prompt_text(p)),
        }
    }

    /// One id per word (interned in the model's vocabulary) between two
    /// markup ids, so a prompt is its word count + 2 tokens.
    fn encode(&self, prompt: &Prompt) -> Result<EncodedPrompt, EngineError> {
        self.counters.tokenized.fetch_add(1, Ordering::SeqCst);
        let text = self.render(prompt)?;
        let mut vocab = self.vocab.lock().unwrap();
        let mut ids = vec![MARKUP];
        for w in text.split_whitespace() {
            let id = match vocab.iter().position(|v| v == w) {
                Some(i) => i,
                None => {
                    vocab.push(w.to_string());
                    vocab.len() - 1
                }
            };
            ids.push(id as u32 + 1);
        }
        ids.push(MARKUP);
        Ok(EncodedPrompt {
            ids,
            opens_think: false,
            pixels: None,
        })
    }

    /// Generates from the ids alone: the words (and so the directives) are
    /// read back from the vocabulary.
    fn generate_encoded(
        &mut self,
        prompt: &EncodedPrompt,
        params: &GenerationParams,
        sink: &mut dyn FnMut(Delta<'_>) -> Flow,
    ) -> Result<GenerationOutput, EngineError> {
        let text = {
            let vocab = self.vocab.lock().unwrap();
            prompt
                .ids
                .iter()
                .filter(|&&id| id != MARKUP)
                .filter_map(|&id| vocab.get(id as usize - 1).cloned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let prompt_tokens = prompt.len();
        self.counters.generations.fetch_add(1, Ordering::SeqCst);
        let now = self.counters.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.counters.max_running.fetch_max(now, Ordering::SeqCst);
        let _guard = RunningGuard(self.counters.clone());

        let n = directive(&text, "count").unwrap_or(5) as usize;
        let delay = Duration::from_millis(directive(&text, "delay").unwrap_or(0));
        let fail_at = directive(&text, "fail").map(|v| v as usize);
        let max = params.max_tokens.unwrap_or(usize::MAX);
        let t0 = Instant::now();
        let mut reasoning = None;
        if text.contains("think") {
            reasoning = Some("pondering".to_string());
            if sink(Delta::Reasoning("pondering")) == Flow::Stop {
                return Ok(out(
                    String::new(),
                    reasoning,
                    FinishReason::Cancelled,
                    prompt_tokens,
                    0,
                    t0,
                ));
            }
        }
        let mut content = String::new();
        let mut made = 0;
        let mut finish = FinishReason::Stop;
        for i in 0..n {
            if made >= max {
                finish = FinishReason::Length;
                break;
            }
            if fail_at == Some(i) {
                return Err(EngineError::Inference("fake engine failure".into()));
            }
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            let piece = format!("t{i} ");
            self.counters.tokens.fetch_add(1, Ordering::SeqCst);
            made += 1;
            content.push_str(&piece);
            if sink(Delta::Content(&piece)) == Flow::Stop {
                finish = FinishReason::Cancelled;
                break;
            }
        }
        Ok(out(content, reasoning, finish, prompt_tokens, made, t0))
    }
}

struct RunningGuard(Arc<Counters>);
impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn out(
    content: String,
    reasoning: Option<String>,
    finish: FinishReason,
    prompt_tokens: usize,
    completion_tokens: usize,
    t0: Instant,
) -> GenerationOutput {
    GenerationOutput {
        content,
        reasoning,
        finish_reason: finish,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
        },
        token_ids: Vec::new(),
        timings: Timings {
            prefill: Duration::from_millis(1),
            decode: t0.elapsed(),
        },
    }
}

// ---------------------------------------------------------------------------
// A server on a loopback port

pub struct TestServer {
    pub base: String,
    pub counters: Arc<Counters>,
    pub fixture: Fixture,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn base_config(fx: &Fixture) -> ServeConfig {
    ServeConfig {
        port: 0,
        stores: Some(fx.stores()),
        memory_budget: Some(u64::MAX / 4),
        ..ServeConfig::default()
    }
}

impl TestServer {
    pub async fn start(tweak: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let fixture = Fixture::new();
        let mut cfg = base_config(&fixture);
        tweak(&mut cfg);
        let counters = Arc::new(Counters::default());
        let server = Server::bind_with_loader(cfg, Arc::new(FakeLoader(counters.clone())))
            .await
            .expect("bind");
        let base = format!("http://{}", server.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            base,
            counters,
            fixture,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET `path`: the status and the JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        json_of(client().get(self.url(path)).send().await.unwrap()).await
    }

    /// POST `body` as JSON to `path`: the status and the JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        json_of(
            client()
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Trigger the shutdown future.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, v)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub fn chat_body(model: &str, text: &str, stream: bool) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    })
}

/// Read an SSE body to the end: the JSON events and whether `[DONE]` came last.
pub async fn read_sse(resp: reqwest::Response) -> (Vec<Value>, bool) {
    let text = resp.text().await.unwrap();
    parse_sse(&text)
}

pub fn parse_sse(text: &str) -> (Vec<Value>, bool) {
    let mut events = Vec::new();
    let mut done = false;
    for block in text.split("\n\n") {
        let block = block.trim();
        if block.is_empty() {
            continue;
        }
        let data = block
            .strip_prefix("data: ")
            .expect("every event is a data: line");
        assert!(!done, "nothing may follow [DONE]");
        if data == "[DONE]" {
            done = true;
        } else {
            events.push(serde_json::from_str(data).expect("event is JSON"));
        }
    }
    (events, done)
}

/// Incremental SSE reader for tests that stop midway.
pub struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            resp,
            buf: String::new(),
        }
    }

    /// The next event's data (`[DONE]` included), or None at the end.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                return Some(block.trim().trim_start_matches("data: ").to_string());
            }
            match self.resp.chunk().await {
                Ok(Some(b)) => self.buf.push_str(&String::from_utf8_lossy(&b)),
                _ => return None,
            }
        }
    }
}

/// Poll until `f` holds or the timeout passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// The real engine's server (`Server::bind`) over the hub cache `root/hub`,
/// on a free loopback port, 2 engine threads: its base URL, the stop
/// trigger and the task.
pub async fn start_engine_server(
    root: &Path,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let cfg = ServeConfig {
        port: 0,
        stores: Some(Stores {
            cache: root.join("hub"),
            workspace_home: None,
        }),
        threads: Some(2),
        ..ServeConfig::default()
    };
    let server = Server::bind(cfg).await.expect("bind");
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    (base, tx, h)
}

/// The content deltas of a streamed chat, joined.
pub fn streamed_content(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| {
            e["choices"]
                .get(0)
                .and_then(|c| c["delta"]["content"].as_str())
        })
        .collect()
}
