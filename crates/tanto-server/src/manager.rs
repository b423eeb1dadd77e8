//! The model manager: resolve → probe → policy, then load (on the blocking
//! pool), keep several models under `max_loaded` and a memory budget with LRU
//! eviction, unload idle ones after `keep_alive`. Each loaded model owns one
//! worker thread fed by a FIFO channel, so requests to one model queue fairly.
//!
//! It decides nothing the core owns: what a request needs (and the 507 for
//! the budget) is the policy's verdict, identities are `Resolved::key`/`id`,
//! and a loaded model is re-asked through the same policy with its probe.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tanto_core::error::ErrorType;
use tanto_core::plan::LoadPlan;
use tanto_core::policy::{self, PolicyConfig, Request};
use tanto_core::probe::embedding::EmbeddingSpec;
use tanto_core::probe::{self, Probe};
use tanto_core::registry::Backend;
use tanto_core::resolve::{self, Resolved, Stores};
use tanto_engine::embed::{EmbedInput, EmbeddingModel, EmbeddingModelInfo, InputType};
use tanto_engine::whisper::{SpeechModel, SpeechModelInfo, TranscribeOptions, Transcript};
use tanto_engine::{
    Delta, EngineError, Flow, GenerationOutput, GenerationParams, LoadOptions, Prompt, TextModel,
    TextModelInfo,
};
use tokio::sync::{mpsc, watch};

use crate::error::ApiError;

/// Turns a load plan into a running model. The default is [`EngineLoader`].
pub trait Loader: Send + Sync + 'static {
    fn load(&self, plan: &LoadPlan, opts: &LoadOptions) -> Result<Box<dyn TextModel>, EngineError>;

    /// Load an embedding model with the probe's pipeline.
    fn load_embedder(
        &self,
        plan: &LoadPlan,
        spec: &EmbeddingSpec,
        opts: &LoadOptions,
    ) -> Result<Box<dyn EmbeddingModel>, EngineError> {
        tanto_engine::embed::load_embedding_model(plan, spec, opts)
    }

    /// Load a speech-to-text (Whisper) model.
    fn load_speech(
        &self,
        plan: &LoadPlan,
        opts: &LoadOptions,
    ) -> Result<Box<dyn SpeechModel>, EngineError> {
        tanto_engine::whisper::load_speech_model(plan, opts)
    }
}

/// tanto-engine's `load_text_model`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineLoader;

impl Loader for EngineLoader {
    fn load(&self, plan: &LoadPlan, opts: &LoadOptions) -> Result<Box<dyn TextModel>, EngineError> {
        tanto_engine::load_text_model(plan, opts)
    }
}

/// The requests this server routes to a model (others are refused as
/// `missing_backend` once the policy allows them).
pub const SERVED: &[Request] = &[
    Request::Text,
    Request::Chat,
    Request::Vision,
    Request::Embeddings,
    Request::Audio,
];

/// Embedding jobs queued or running per model before new ones get 429.
pub const MAX_EMBED_QUEUE: usize = 64;

/// Generations queued or running per model before new ones get 429: the
/// queue is bounded, never unbounded memory.
pub const MAX_TEXT_QUEUE: usize = 64;

/// Transcriptions queued or running per model before new ones get 429 (each
/// holds its decoded audio: up to ~230 MB for a 1-hour file).
pub const MAX_SPEECH_QUEUE: usize = 16;

/// Events from a worker to the request that queued the job.
pub enum Event {
    /// The job reached the front of the queue and the prompt fits.
    Started {
        prompt_tokens: usize,
    },
    Delta {
        reasoning: bool,
        text: String,
    },
    Done(Result<GenerationOutput, EngineError>),
}

/// Vectors in input order and the tokens fed to the model, or the failure.
pub type EmbedResult = Result<(Vec<Vec<f32>>, usize), EngineError>;

/// An embeddings request for the model's worker.
pub struct EmbedJob {
    pub inputs: Vec<EmbedInput>,
    pub input_type: InputType,
    pub instruct: Option<String>,
    /// Vectors in input order and the tokens fed to the model.
    pub reply: tokio::sync::oneshot::Sender<EmbedResult>,
}

/// A transcription (or translation) for a speech model's worker.
pub struct SpeechJob {
    /// 16 kHz mono samples.
    pub samples: Vec<f32>,
    pub opts: TranscribeOptions,
    pub reply: tokio::sync::oneshot::Sender<Result<Transcript, EngineError>>,
}

/// What a model's worker runs.
enum Work {
    Generate(Job),
    Embed(EmbedJob),
    Transcribe(SpeechJob),
}

/// A loaded model of any kind.
enum AnyModel {
    Text(Box<dyn TextModel>),
    Embed(Box<dyn EmbeddingModel>),
    Speech(Box<dyn SpeechModel>),
}

pub struct Job {
    pub prompt: Prompt,
    pub params: GenerationParams,
    /// Requested max_tokens (None = server default, else the rest of the context).
    pub max_tokens: Option<usize>,
    pub events: mpsc::UnboundedSender<Event>,
}

/// A loaded model and its queue.
pub struct Loaded {
    /// Identity: `org/name@commit`, or the path.
    pub key: String,
    /// The id clients see (`org/name`, workspace name, or path).
    pub id: String,
    pub info: TextModelInfo,
    /// Embedding models: dimensions, pooling, truncation.
    pub embed_info: Option<EmbeddingModelInfo>,
    /// Speech models: multilingual, can translate, languages.
    pub speech_info: Option<SpeechModelInfo>,
    pub capabilities: Vec<&'static str>,
    /// What the policy counts for it: weights plus the KV cache.
    pub memory_bytes: u64,
    pub pinned: bool,
    /// What the probe found when the model was admitted: later requests for
    /// the loaded model are decided by the policy from it.
    probe: Probe,
    jobs: Mutex<std_mpsc::Sender<Work>>,
    /// Jobs queued or running.
    active: Arc<AtomicUsize>,
    last_used: Arc<Mutex<Instant>>,
    /// A request's `keep_alive` for this model (None: the server's).
    keep_alive: Mutex<Option<KeepAlive>>,
}

/// How long an idle model stays loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Unload once idle for this long (zero: as soon as it is idle).
    For(Duration),
    Forever,
}

impl KeepAlive {
    /// A request's `keep_alive`: a duration string (`"10m"`, `"30s"`), a
    /// number of seconds, `0` (unload after this request) or a negative
    /// number (keep loaded), as Ollama takes it.
    pub fn parse(v: &serde_json::Value) -> Result<KeepAlive, String> {
        let secs = |s: f64| {
            if s < 0.0 {
                Ok(KeepAlive::Forever)
            } else if s.is_finite() && s < 1e9 {
                Ok(KeepAlive::For(Duration::from_secs_f64(s)))
            } else {
                Err(format!("keep_alive {s} is out of range"))
            }
        };
        match v {
            serde_json::Value::Number(n) => secs(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => {
                let t = s.trim();
                let bad =
                    || format!("keep_alive '{s}' is not a duration (e.g. \"10m\", \"30s\", 0, -1)");
                match t.strip_prefix('-') {
                    Some(neg) => tanto_core::duration::parse_duration(neg)
                        .map(|_| KeepAlive::Forever)
                        .map_err(|_| bad()),
                    None => tanto_core::duration::parse_duration(t)
                        .map(KeepAlive::For)
                        .map_err(|_| bad()),
                }
            }
            _ => Err("keep_alive must be a duration string or a number of seconds".into()),
        }
    }
}

impl Loaded {
    /// Queue a job (FIFO behind the model's other jobs); 429 when
    /// [`MAX_TEXT_QUEUE`] are waiting.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        self.send_bounded(Work::Generate(job), MAX_TEXT_QUEUE, "requests")
    }

    /// Set this model's keep-alive from a request (applies from now on).
    pub fn set_keep_alive(&self, k: KeepAlive) {
        if let Ok(mut g) = self.keep_alive.lock() {
            *g = Some(k);
        }
        self.touch();
    }

    /// The keep-alive in force: the last request's, else the server's
    /// (`server` zero: never unloaded when idle).
    pub fn keep_alive(&self, server: Duration) -> KeepAlive {
        match self.keep_alive.lock().ok().and_then(|g| *g) {
            Some(k) => k,
            None if server.is_zero() => KeepAlive::Forever,
            None => KeepAlive::For(server),
        }
    }

    /// When an idle model would be unloaded from now: `None` for pinned or
    /// kept-forever models.
    pub fn expires_in(&self, server: Duration) -> Option<Duration> {
        match (self.pinned, self.keep_alive(server)) {
            (false, KeepAlive::For(d)) => Some(d.saturating_sub(self.idle_for())),
            _ => None,
        }
    }

    /// Queue an embeddings job; 429 when [`MAX_EMBED_QUEUE`] are waiting.
    pub fn submit_embed(&self, job: EmbedJob) -> Result<(), ApiError> {
        self.send_bounded(Work::Embed(job), MAX_EMBED_QUEUE, "requests")
    }

    /// Queue a transcription; 429 when [`MAX_SPEECH_QUEUE`] are waiting.
    pub fn submit_speech(&self, job: SpeechJob) -> Result<(), ApiError> {
        self.send_bounded(Work::Transcribe(job), MAX_SPEECH_QUEUE, "transcriptions")
    }

    /// [`Loaded::send`] unless `max` jobs are queued or running: then 429
    /// naming the queue (`what`: "requests", "transcriptions").
    fn send_bounded(&self, work: Work, max: usize, what: &str) -> Result<(), ApiError> {
        if self.queued() >= max {
            return Err(ApiError::new(
                ErrorType::Overloaded,
                format!(
                    "Model '{}' has {} {what} queued; retry shortly",
                    self.id,
                    self.queued()
                ),
            ));
        }
        self.send(work)
    }

    fn send(&self, work: Work) -> Result<(), ApiError> {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.touch();
        let sent = self
            .jobs
            .lock()
            .map(|tx| tx.send(work).is_ok())
            .unwrap_or(false);
        if !sent {
            self.active.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::new(
                ErrorType::ServerShutdown,
                format!("Model '{}' was unloaded; retry the request", self.id),
            ));
        }
        Ok(())
    }

    pub fn queued(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }
}

type LoadResult = Option<Result<Arc<Loaded>, ApiError>>;

enum Slot {
    Loading(watch::Receiver<LoadResult>, u64),
    Ready(Arc<Loaded>),
}

#[derive(Default)]
struct Slots {
    map: HashMap<String, Slot>,
    /// Request spec → key, for the fast path of loaded models.
    aliases: HashMap<String, String>,
}

/// A model that passed resolve, probe and policy.
struct Admitted {
    key: String,
    id: String,
    plan: LoadPlan,
    probe: Probe,
}

pub struct Manager {
    stores: Stores,
    loader: Arc<dyn Loader>,
    opts: LoadOptions,
    allow_paths: bool,
    max_loaded: usize,
    /// The policy's tunables, with this server's memory budget: the policy
    /// refuses a model over it (507); the manager evicts to stay within it.
    policy: PolicyConfig,
    pub default_max_tokens: Option<usize>,
    pub default_model: Option<String>,
    pub shutting_down: Arc<AtomicBool>,
    slots: Arc<Mutex<Slots>>,
}

/// The capabilities this server can serve for a probe: those the policy asks
/// of the [`SERVED`] requests ([`Request::capability`]) that the model has.
pub fn served_capabilities(p: &Probe) -> Vec<&'static str> {
    SERVED
        .iter()
        .map(|r| r.capability())
        .filter(|c| p.has(c))
        .collect()
}

impl Manager {
    pub fn new(
        cfg: &crate::ServeConfig,
        loader: Arc<dyn Loader>,
        shutting_down: Arc<AtomicBool>,
    ) -> Self {
        let from_env = PolicyConfig::from_env();
        let budget = cfg.memory_budget.or_else(|| {
            let host = tanto_core::host::detect();
            host.total_bytes
                .map(|t| (t as f64 * from_env.memory_threshold) as u64)
        });
        Self {
            stores: cfg.stores.clone().unwrap_or_else(Stores::from_env),
            loader,
            opts: LoadOptions {
                threads: cfg.threads,
            },
            allow_paths: cfg.allow_paths,
            max_loaded: cfg.max_loaded.max(1),
            policy: from_env.with_memory_budget(budget),
            default_max_tokens: cfg.max_tokens,
            default_model: cfg.model.clone(),
            shutting_down,
            slots: Arc::new(Mutex::new(Slots::default())),
        }
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The policy configuration every decision of this server uses.
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// Refuse filesystem paths unless allowed.
    pub fn check_spec(&self, spec: &str) -> Result<(), ApiError> {
        if resolve::is_explicit_path(spec.trim()) && !self.allow_paths {
            return Err(ApiError::new(
                ErrorType::AccessDenied,
                "This server does not accept filesystem paths as model names; use a model id from GET /v1/models, or start the server with --allow-paths",
            )
            .with_param("model"));
        }
        Ok(())
    }

    /// Keys of the loaded models (ready, not loading).
    pub fn loaded(&self) -> Vec<Arc<Loaded>> {
        let slots = self.slots.lock().expect("manager lock");
        slots
            .map
            .values()
            .filter_map(|s| match s {
                Slot::Ready(l) => Some(l.clone()),
                Slot::Loading(..) => None,
            })
            .collect()
    }

    /// Load `spec` at start-up and pin it against idle unloading.
    pub async fn preload(&self, spec: &str) -> Result<Arc<Loaded>, ApiError> {
        let admitted = self.admit(spec, None).await?;
        self.get_or_load(spec, admitted, true).await
    }

    /// The loaded model for `spec` and `req`, loading it if needed. A model
    /// already loaded under this spec is decided by the same policy, from the
    /// probe it was admitted with (a chat request to a base model is refused
    /// by the policy's capability gate either way).
    pub async fn acquire(&self, spec: &str, req: Request) -> Result<Arc<Loaded>, ApiError> {
        self.check_spec(spec)?;
        let fast = {
            let slots = self.slots.lock().expect("manager lock");
            slots
                .aliases
                .get(spec)
                .and_then(|k| slots.map.get(k))
                .and_then(|s| match s {
                    Slot::Ready(l) => Some(l.clone()),
                    Slot::Loading(..) => None,
                })
        };
        if let Some(l) = fast {
            let d = policy::decide(&l.probe, req, &tanto_core::host::detect(), &self.policy);
            if let Some(e) = d.error {
                return Err(e.into());
            }
            served(req)?;
            l.touch();
            return Ok(l);
        }
        let admitted = self.admit(spec, Some(req)).await?;
        self.get_or_load(spec, admitted, false).await
    }

    /// Resolve, probe and apply the policy (on the blocking pool: it reads files).
    /// `req` None: the model's own kind (embeddings for an embedder, else text).
    async fn admit(&self, spec: &str, req: Option<Request>) -> Result<Admitted, ApiError> {
        let stores = self.stores.clone();
        let spec_owned = spec.to_string();
        let (resolved, probe) =
            tokio::task::spawn_blocking(move || -> Result<(Resolved, Probe), ApiError> {
                let r = resolve::resolve(&spec_owned, &stores).map_err(ApiError::from)?;
                let p = probe::probe_resolved(&r);
                Ok((r, p))
            })
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorType::InternalError,
                    format!("resolver task failed: {e}"),
                )
            })??;
        let req = req.unwrap_or_else(|| default_request(&probe));
        let host = tanto_core::host::detect();
        let (plan, decision) = policy::plan(&probe, req, &host, &self.policy)?;
        for w in &decision.warnings {
            tracing::warn!(model = %resolved.name, "{w}");
        }
        served(req)?;
        Ok(Admitted {
            key: resolved.key(),
            id: resolved.id(),
            plan,
            probe,
        })
    }

    async fn get_or_load(
        &self,
        spec: &str,
        a: Admitted,
        pinned: bool,
    ) -> Result<Arc<Loaded>, ApiError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(ApiError::shutting_down());
        }
        let mut rx = {
            let mut slots = self.slots.lock().expect("manager lock");
            match slots.map.get(&a.key) {
                Some(Slot::Ready(l)) => {
                    let l = l.clone();
                    slots.aliases.insert(spec.to_string(), a.key.clone());
                    l.touch();
                    return Ok(l);
                }
                Some(Slot::Loading(rx, _)) => rx.clone(),
                None => {
                    self.make_room(
                        &mut slots,
                        policy::memory_need(&a.probe, &self.policy).total,
                    );
                    let (tx, rx) = watch::channel(None);
                    let gen = LOAD_GEN.fetch_add(1, Ordering::Relaxed) as u64;
                    slots
                        .map
                        .insert(a.key.clone(), Slot::Loading(rx.clone(), gen));
                    slots.aliases.insert(spec.to_string(), a.key.clone());
                    self.spawn_load(a, pinned, tx, gen);
                    rx
                }
            }
        };
        let res = rx
            .wait_for(Option::is_some)
            .await
            .map(|v| v.clone())
            .ok()
            .flatten();
        match res {
            Some(r) => r,
            None => Err(ApiError::new(
                ErrorType::InternalError,
                "model load was abandoned",
            )),
        }
    }

    /// Evict least-recently-used models until one more fits.
    fn make_room(&self, slots: &mut Slots, need: u64) {
        loop {
            let count = slots.map.len();
            let used: u64 = slots
                .map
                .values()
                .map(|s| match s {
                    Slot::Ready(l) => l.memory_bytes,
                    Slot::Loading(..) => 0,
                })
                .sum();
            let over_count = count >= self.max_loaded;
            let over_mem = self.policy.memory_budget.is_some_and(|b| used + need > b);
            if !over_count && !over_mem {
                return;
            }
            // Prefer idle models; among them (and then among busy ones) the LRU.
            let victim = slots
                .map
                .iter()
                .filter_map(|(k, s)| match s {
                    Slot::Ready(l) => Some((k.clone(), l.queued() > 0, l.idle_for())),
                    Slot::Loading(..) => None,
                })
                .max_by(|a, b| (!a.1, a.2).cmp(&(!b.1, b.2)))
                .map(|(k, ..)| k);
            let Some(k) = victim else { return };
            if let Some(Slot::Ready(l)) = slots.map.remove(&k) {
                tracing::info!(model = %l.id, queued = l.queued(), "unloading model (LRU) to make room");
            }
            slots.aliases.retain(|_, v| *v != k);
        }
    }

    fn spawn_load(&self, a: Admitted, pinned: bool, tx: watch::Sender<LoadResult>, gen: u64) {
        let memory_bytes = policy::memory_need(&a.probe, &self.policy).total;
        let loader = self.loader.clone();
        let opts = self.opts.clone();
        let shutting = self.shutting_down.clone();
        let key = a.key.clone();
        let id = a.id.clone();
        let slots_ref = self.slots.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            tracing::info!(model = %id, "loading model");
            let plan = a.plan.clone();
            let spec = a.probe.embedding.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                std::panic::catch_unwind(AssertUnwindSafe(|| match (plan.backend, &spec) {
                    (Backend::Embeddings, Some(spec)) => loader
                        .load_embedder(&plan, spec, &opts)
                        .map(AnyModel::Embed),
                    (Backend::Embeddings, None) => Err(EngineError::InvalidModel {
                        path: plan.dir.clone(),
                        message: "the probe found no embedding pipeline".into(),
                    }),
                    (Backend::Whisper, _) => loader.load_speech(&plan, &opts).map(AnyModel::Speech),
                    _ => loader.load(&plan, &opts).map(AnyModel::Text),
                }))
            })
            .await;
            let result: Result<Arc<Loaded>, ApiError> = match loaded {
                Ok(Ok(Ok(model))) => {
                    let (info, embed_info, speech_info) = match &model {
                        AnyModel::Text(m) => (m.info().clone(), None, None),
                        AnyModel::Speech(m) => {
                            let sp = m.info().clone();
                            (
                                TextModelInfo {
                                    name: sp.name.clone(),
                                    architecture: "whisper".into(),
                                    context_length: sp.text_context,
                                    has_chat_template: false,
                                    eos_token_ids: Vec::new(),
                                    load_time: sp.load_time,
                                },
                                None,
                                Some(sp),
                            )
                        }
                        AnyModel::Embed(m) => {
                            let e = m.info().clone();
                            (
                                TextModelInfo {
                                    name: e.name.clone(),
                                    architecture: e.architecture.clone(),
                                    context_length: e.max_seq_length,
                                    has_chat_template: false,
                                    eos_token_ids: Vec::new(),
                                    load_time: e.load_time,
                                },
                                Some(e),
                                None,
                            )
                        }
                    };
                    let active = Arc::new(AtomicUsize::new(0));
                    let last_used = Arc::new(Mutex::new(Instant::now()));
                    let (jtx, jrx) = std_mpsc::channel::<Work>();
                    let w_active = active.clone();
                    let w_last = last_used.clone();
                    let w_id = id.clone();
                    let spawned = std::thread::Builder::new()
                        .name(format!("tanto-model-{}", short(&id)))
                        .spawn(move || worker(model, jrx, w_active, w_last, shutting, w_id));
                    match spawned {
                        Ok(_) => {
                            tracing::info!(model = %id, load_ms = started.elapsed().as_millis() as u64, context = info.context_length, "model loaded");
                            Ok(Arc::new(Loaded {
                                key: a.key.clone(),
                                id: id.clone(),
                                info,
                                embed_info,
                                speech_info,
                                capabilities: served_capabilities(&a.probe),
                                memory_bytes,
                                pinned,
                                probe: a.probe.clone(),
                                jobs: Mutex::new(jtx),
                                active,
                                last_used,
                                keep_alive: Mutex::new(None),
                            }))
                        }
                        Err(e) => Err(ApiError::new(
                            ErrorType::InternalError,
                            format!("cannot start a worker thread: {e}"),
                        )),
                    }
                }
                Ok(Ok(Err(e))) => {
                    tracing::warn!(model = %id, error = %e, "model failed to load");
                    Err(ApiError::from_load(&e, &id).with_param("model"))
                }
                Ok(Err(_)) | Err(_) => Err(ApiError::new(
                    ErrorType::InternalError,
                    format!("the engine panicked while loading '{id}'"),
                )),
            };
            {
                let mut slots = slots_ref.lock().expect("manager lock");
                let ours = matches!(slots.map.get(&key), Some(Slot::Loading(_, g)) if *g == gen);
                if ours {
                    match &result {
                        Ok(l) => {
                            slots.map.insert(key.clone(), Slot::Ready(l.clone()));
                        }
                        Err(_) => {
                            slots.map.remove(&key);
                            slots.aliases.retain(|_, v| *v != key);
                        }
                    }
                }
            }
            let _ = tx.send(Some(result));
        });
    }

    /// Unload models idle for longer than their keep-alive (a request's, else
    /// `keep_alive`; pinned ones stay).
    pub fn reap_idle(&self, keep_alive: Duration) {
        let mut slots = self.slots.lock().expect("manager lock");
        let victims: Vec<String> = slots
            .map
            .iter()
            .filter_map(|(k, s)| match s {
                Slot::Ready(l) if !l.pinned && l.queued() == 0 => match l.keep_alive(keep_alive) {
                    KeepAlive::For(d) if l.idle_for() >= d => Some(k.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        for k in victims {
            if let Some(Slot::Ready(l)) = slots.map.remove(&k) {
                tracing::info!(model = %l.id, idle_s = l.idle_for().as_secs(), "unloading idle model");
            }
            slots.aliases.retain(|_, v| *v != k);
        }
    }

    /// Unload the loaded model whose id (or key) is `id`; false when none is.
    /// A request in flight finishes; the worker exits after it.
    pub fn unload(&self, id: &str) -> bool {
        let mut slots = self.slots.lock().expect("manager lock");
        let key = slots.map.iter().find_map(|(k, s)| match s {
            Slot::Ready(l) if l.id == id || l.key == id => Some(k.clone()),
            _ => None,
        });
        let key = key.or_else(|| slots.aliases.get(id).cloned());
        let Some(k) = key else { return false };
        let removed = matches!(slots.map.remove(&k), Some(Slot::Ready(_)));
        slots.aliases.retain(|_, v| *v != k);
        if removed {
            tracing::info!(model = %id, "unloading model on request");
        }
        removed
    }

    /// Drop every model (workers exit after their current job).
    pub fn unload_all(&self) {
        let mut slots = self.slots.lock().expect("manager lock");
        slots.map.clear();
        slots.aliases.clear();
    }
}

static LOAD_GEN: AtomicUsize = AtomicUsize::new(1);

fn short(id: &str) -> String {
    id.rsplit('/')
        .next()
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

/// What a model is loaded for when no request names it (preload).
fn default_request(p: &Probe) -> Request {
    match p.kind {
        tanto_core::probe::ModelKind::Embedding => Request::Embeddings,
        tanto_core::probe::ModelKind::Audio => Request::Audio,
        _ => Request::Text,
    }
}

/// Refuse a request the policy allowed but this server does not route yet.
fn served(req: Request) -> Result<(), ApiError> {
    if SERVED.contains(&req) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorType::MissingBackend,
        format!("tanto serve cannot run {} requests yet", req.as_str()),
    )
    .with_param("messages"))
}

/// The per-model worker: runs jobs one at a time, in arrival order.
fn worker(
    mut model: AnyModel,
    jobs: std_mpsc::Receiver<Work>,
    active: Arc<AtomicUsize>,
    last_used: Arc<Mutex<Instant>>,
    shutting: Arc<AtomicBool>,
    id: String,
) {
    while let Ok(work) = jobs.recv() {
        match (&mut model, work) {
            (AnyModel::Text(m), Work::Generate(job)) => run_job(m.as_mut(), job, &shutting),
            (AnyModel::Embed(m), Work::Embed(job)) => run_embed(m.as_mut(), job, &shutting),
            (AnyModel::Speech(m), Work::Transcribe(job)) => run_speech(m.as_mut(), job, &shutting),
            // The policy routes each request to a model of its kind; these
            // answer a mismatch that slipped past it, without panicking.
            (_, Work::Generate(job)) => {
                let _ = job
                    .events
                    .send(Event::Done(Err(EngineError::UnsupportedArchitecture(
                        "this model cannot generate text".into(),
                    ))));
            }
            (_, Work::Embed(job)) => {
                let _ = job.reply.send(Err(EngineError::UnsupportedArchitecture(
                    "this model cannot embed".into(),
                )));
            }
            (_, Work::Transcribe(job)) => {
                let _ = job.reply.send(Err(EngineError::UnsupportedArchitecture(
                    "this model cannot transcribe audio".into(),
                )));
            }
        }
        active.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut t) = last_used.lock() {
            *t = Instant::now();
        }
    }
    tracing::debug!(model = %id, "model worker exiting; weights released");
}

fn run_embed(model: &mut dyn EmbeddingModel, job: EmbedJob, shutting: &AtomicBool) {
    // The client left (or we are stopping) while this job waited in the queue.
    if job.reply.is_closed() || shutting.load(Ordering::SeqCst) {
        return;
    }
    let out = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let enc = model.encode(&job.inputs, job.input_type, job.instruct.as_deref())?;
        let tokens = enc.iter().map(|e| e.ids.len()).sum();
        Ok((model.embed_encoded(&enc)?, tokens))
    }));
    let res = out.unwrap_or_else(|_| {
        Err(EngineError::Inference(
            "the engine panicked while embedding".into(),
        ))
    });
    let _ = job.reply.send(res);
}

fn run_speech(model: &mut dyn SpeechModel, job: SpeechJob, shutting: &AtomicBool) {
    if job.reply.is_closed() || shutting.load(Ordering::SeqCst) {
        return;
    }
    let out = std::panic::catch_unwind(AssertUnwindSafe(|| {
        model.transcribe(&job.samples, &job.opts)
    }));
    let res = out.unwrap_or_else(|_| {
        Err(EngineError::Inference(
            "the engine panicked while transcribing".into(),
        ))
    });
    let _ = job.reply.send(res);
}

fn run_job(model: &mut dyn TextModel, job: Job, shutting: &AtomicBool) {
    let Job {
        prompt,
        mut params,
        max_tokens,
        events,
    } = job;
    // The client left (or we are stopping) while this job waited in the queue.
    if events.is_closed() || shutting.load(Ordering::SeqCst) {
        return;
    }
    let ctx = model.info().context_length;
    // Tokenize once: the length check and the generation use the same ids.
    let encoded = std::panic::catch_unwind(AssertUnwindSafe(|| model.encode(&prompt)));
    drop(prompt);
    let encoded = match encoded {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => {
            let _ = events.send(Event::Done(Err(e)));
            return;
        }
        Err(_) => {
            let _ = events.send(Event::Done(Err(EngineError::Inference(
                "the engine panicked while rendering or tokenizing the prompt".into(),
            ))));
            return;
        }
    };
    let prompt_tokens = encoded.len();
    if ctx > 0 && prompt_tokens >= ctx {
        let _ = events.send(Event::Done(Err(EngineError::PromptTooLong {
            prompt: prompt_tokens,
            context: ctx,
        })));
        return;
    }
    let room = if ctx > 0 {
        ctx - prompt_tokens
    } else {
        usize::MAX
    };
    let max = max_tokens.or(params.max_tokens).unwrap_or(room).min(room);
    params.max_tokens = Some(max);
    if events.send(Event::Started { prompt_tokens }).is_err() {
        return;
    }
    let mut sink = |d: Delta<'_>| -> Flow {
        if shutting.load(Ordering::SeqCst) {
            return Flow::Stop;
        }
        let (reasoning, text) = match d {
            Delta::Content(t) => (false, t),
            Delta::Reasoning(t) => (true, t),
        };
        if text.is_empty() {
            return if events.is_closed() {
                Flow::Stop
            } else {
                Flow::Continue
            };
        }
        match events.send(Event::Delta {
            reasoning,
            text: text.to_string(),
        }) {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    };
    let out = std::panic::catch_unwind(AssertUnwindSafe(|| {
        model.generate_encoded(&encoded, &params, &mut sink)
    }));
    let res = match out {
        Ok(r) => r,
        Err(_) => Err(EngineError::Inference(
            "the engine panicked during generation".into(),
        )),
    };
    let _ = events.send(Event::Done(res));
}
