//! The text-generation engine: tokenizer + template + backbone + generation loop.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use tanto_core::plan::{Backend, LoadPlan, Weights};
use tanto_core::probe::mlx::MlxPath;

use crate::api::*;
use crate::gguf::{self, md_u32};
use crate::models::candle_models::{CandleModel, GGUF_ARCHS, SAFETENSORS_ARCHS};
use crate::models::llama_native::{NativeLlama, NativeRefusal};
use crate::models::Backbone;
use crate::sampler::Sampler;
use crate::stream::{
    prompt_opens_think, Channel, IncrementalDecoder, ReasoningSplitter, StopMatcher,
};
use crate::template::{find_template_in_dir, ChatTemplate};
use crate::tokenizer::{read_json_opt, TextTokenizer};

pub struct TextEngine {
    info: TextModelInfo,
    tokenizer: TextTokenizer,
    template: Option<ChatTemplate>,
    backbone: Box<dyn Backbone>,
    /// Ids whose keys/values are in the backbone's cache, in order.
    cached: Vec<u32>,
    /// How many leading `cached` ids were computed as prompt tokens (in
    /// prefill chunks of two or more): only those are reused, so a reused
    /// position holds the bits a cold prefill would compute (ADR 011).
    prompt_cached: usize,
    reasoning: bool,
    /// Which implementation runs the model (for logs/benchmarks).
    pub backend_name: String,
    ignore_eos: bool,
}

impl std::fmt::Debug for TextEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEngine")
            .field("info", &self.info)
            .field("backend", &self.backend_name)
            .finish_non_exhaustive()
    }
}

fn eos_ids_from(v: Option<&Value>, out: &mut Vec<u32>) {
    match v {
        Some(Value::Number(n)) => {
            if let Some(x) = n.as_u64().and_then(|x| u32::try_from(x).ok()) {
                out.push(x);
            }
        }
        Some(Value::Array(a)) => {
            for x in a {
                eos_ids_from(Some(x), out);
            }
        }
        _ => {}
    }
}

/// A tokenizer or chat template that fails while *loading* is a defect of the
/// model's files, not of any request: report it as `InvalidModel` naming the file.
fn at_load(path: &Path, e: EngineError) -> EngineError {
    match e {
        EngineError::Tokenizer(m) => EngineError::InvalidModel {
            path: path.to_path_buf(),
            message: format!("tokenizer: {m}"),
        },
        EngineError::Template(m) | EngineError::TemplateLimit { message: m, .. } => {
            EngineError::InvalidModel {
                path: path.to_path_buf(),
                message: format!("chat template: {m}"),
            }
        }
        other => other,
    }
}

/// A model folder's tokenizer, chat template source and end-of-sequence ids
/// (config.json's, its `text_config`'s for multimodal models, and
/// generation_config.json's).
fn folder_text_parts(
    plan: &LoadPlan,
    cfg: &Value,
) -> Result<(TextTokenizer, Option<String>, Vec<u32>), EngineError> {
    let tokenizer = TextTokenizer::from_dir(&plan.dir)
        .map_err(|e| at_load(&plan.dir.join("tokenizer.json"), e))?;
    let template_src = find_template_in_dir(&plan.dir)?;
    let mut eos = Vec::new();
    eos_ids_from(cfg.get("eos_token_id"), &mut eos);
    eos_ids_from(
        cfg.get("text_config").and_then(|t| t.get("eos_token_id")),
        &mut eos,
    );
    if let Some(gc) = read_json_opt(&plan.dir.join("generation_config.json"))? {
        eos_ids_from(gc.get("eos_token_id"), &mut eos);
    }
    Ok((tokenizer, template_src, eos))
}

pub(crate) fn threads_of(opts: &LoadOptions) -> usize {
    opts.threads
        .filter(|&t| t > 0)
        .unwrap_or_else(crate::threads::default_threads)
}

impl TextEngine {
    pub fn load(plan: &LoadPlan, opts: &LoadOptions) -> Result<Self, EngineError> {
        let t0 = Instant::now();
        let mut engine = match (&plan.backend, &plan.weights) {
            (Backend::GgufText, Weights::Gguf { file }) => Self::load_gguf(plan, file, opts)?,
            (Backend::SafetensorsText, Weights::Safetensors { files }) => {
                Self::load_safetensors(plan, files, opts, None)?
            }
            (Backend::SafetensorsText, Weights::Mlx { files, path, dtype }) => {
                Self::load_safetensors(plan, files, opts, Some((*path, dtype.as_deref())))?
            }
            (b, _) => {
                return Err(EngineError::UnsupportedArchitecture(format!(
                    "backend {} with these weights is not a text backend",
                    b.as_str()
                )))
            }
        };
        engine.info.load_time = t0.elapsed();
        Ok(engine)
    }

    /// Load a lone GGUF file (tokenizer and template from its metadata).
    pub fn load_gguf_file(path: &Path, opts: &LoadOptions) -> Result<Self, EngineError> {
        let plan = LoadPlan {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            backend: Backend::GgufText,
            weights: Weights::Gguf {
                file: path.to_path_buf(),
            },
            architecture: String::new(),
            context_length: None,
        };
        Self::load(&plan, opts)
    }

    fn load_gguf(plan: &LoadPlan, file: &Path, opts: &LoadOptions) -> Result<Self, EngineError> {
        let (mut ct, mmap) = gguf::read_gguf(file)?;
        let arch = gguf::arch_of(&ct.metadata);
        if !GGUF_ARCHS.contains(&arch.as_str()) {
            return Err(EngineError::UnsupportedArchitecture(arch));
        }
        gguf::check_hparams(file, &ct, &arch)?;
        let declared = md_u32(&ct.metadata, &format!("{arch}.context_length")).map(|c| c as usize);
        let context = gguf::effective_context(declared, plan.context_length);
        gguf::set_context(&mut ct.metadata, &arch, context);
        let md = &ct.metadata;
        let tokenizer = if md.contains_key("tokenizer.ggml.tokens") {
            TextTokenizer::from_gguf(md).map_err(|e| at_load(file, e))?
        } else {
            let path = plan.dir.join("tokenizer.json");
            TextTokenizer::from_dir(&plan.dir).map_err(|e| at_load(&path, e))?
        };
        let template_src = md
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .map(Ok)
            .or_else(|| find_template_in_dir(&plan.dir).transpose())
            .transpose()?;
        let mut eos = Vec::new();
        for k in [
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
        ] {
            if let Some(id) = md_u32(md, k) {
                eos.push(id);
            }
        }
        let threads = threads_of(opts);
        let (backbone, backend_name): (Box<dyn Backbone>, String) =
            match NativeLlama::load(file, &ct, &arch, mmap.clone(), threads, context) {
                Ok(m) => (
                    Box::new(m),
                    format!(
                        "tanto-native ({} kernels, {threads} threads)",
                        crate::kernels::kernel_name()
                    ),
                ),
                Err(NativeRefusal::Error(e)) => return Err(e),
                Err(NativeRefusal::Unsupported(why)) => {
                    tracing::debug!("native GGUF path unavailable ({why}); using candle");
                    (
                        Box::new(CandleModel::load_gguf(file, &arch, mmap, threads, context)?),
                        format!("candle quantized ({threads} threads)"),
                    )
                }
            };
        Self::finish(
            plan,
            arch,
            tokenizer,
            template_src,
            eos,
            context,
            backbone,
            backend_name,
        )
    }

    /// HF safetensors, or (with `mlx`) an MLX checkpoint on the path the probe
    /// chose: repacked for the native kernels, or dequantized to the float engine.
    fn load_safetensors(
        plan: &LoadPlan,
        files: &[PathBuf],
        opts: &LoadOptions,
        mlx: Option<(MlxPath, Option<&str>)>,
    ) -> Result<Self, EngineError> {
        if files.is_empty() {
            return Err(EngineError::InvalidModel {
                path: plan.dir.clone(),
                message: "no safetensors files".into(),
            });
        }
        let cfg_path = plan.dir.join("config.json");
        let cfg = read_json_opt(&cfg_path)?.ok_or_else(|| EngineError::Io {
            path: cfg_path.clone(),
            message: "config.json not found".into(),
        })?;
        let model_type = cfg
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or(plan.architecture.as_str())
            .to_string();
        if !SAFETENSORS_ARCHS.contains(&model_type.as_str()) {
            return Err(EngineError::UnsupportedArchitecture(model_type));
        }
        let (tokenizer, template_src, eos) = folder_text_parts(plan, &cfg)?;
        let declared = cfg
            .get("max_position_embeddings")
            .and_then(|v| v.as_u64())
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX));
        let context = gguf::effective_context(declared, plan.context_length);
        let threads = threads_of(opts);
        let (backbone, name): (Box<dyn Backbone>, String) = match mlx {
            None => (
                Box::new(CandleModel::load_safetensors(
                    &plan.dir,
                    files,
                    cfg,
                    &model_type,
                    threads,
                    context,
                )?),
                format!(
                    "candle safetensors ({}, {threads} threads)",
                    crate::device::selected_name()
                ),
            ),
            Some((path, dtype)) => {
                let ck = crate::mlx::MlxCheckpoint::open(files, &cfg, &plan.dir)?;
                match path {
                    MlxPath::Native => {
                        let (m, summary) = crate::mlx::load_native(&ck, &cfg, threads, context)?;
                        (
                            Box::new(m),
                            format!(
                                "tanto-native MLX ({summary} modules repacked; {} kernels, {threads} threads)",
                                crate::kernels::kernel_name()
                            ),
                        )
                    }
                    MlxPath::Dequantize => {
                        let dt = match dtype {
                            Some("bfloat16") => candle_core::DType::BF16,
                            _ => candle_core::DType::F32,
                        };
                        let device = crate::device::select();
                        let tensors = ck.dequantized_tensors(dt, &device)?;
                        drop(ck);
                        let m = CandleModel::load_tensors(
                            &plan.dir,
                            tensors,
                            cfg,
                            &model_type,
                            threads,
                            context,
                            dt,
                            device,
                        )?;
                        (
                            Box::new(m),
                            format!(
                                "candle over MLX dequantized to {} ({}, {threads} threads)",
                                dtype.unwrap_or("float32"),
                                crate::device::selected_name()
                            ),
                        )
                    }
                }
            }
        };
        Self::finish(
            plan,
            model_type,
            tokenizer,
            template_src,
            eos,
            context,
            backbone,
            name,
        )
    }

    /// A text engine over a backbone built elsewhere (a vision model's text
    /// half): tokenizer and chat template from `plan.dir`, end-of-sequence ids
    /// from `cfg` (and its `text_config`) and `generation_config.json`.
    pub(crate) fn over_backbone(
        plan: &LoadPlan,
        arch: String,
        cfg: &Value,
        context: usize,
        backbone: Box<dyn Backbone>,
        backend_name: String,
    ) -> Result<Self, EngineError> {
        let (tokenizer, template_src, eos) = folder_text_parts(plan, cfg)?;
        Self::finish(
            plan,
            arch,
            tokenizer,
            template_src,
            eos,
            context,
            backbone,
            backend_name,
        )
    }

    pub(crate) fn template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    pub(crate) fn info_mut(&mut self) -> &mut TextModelInfo {
        &mut self.info
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        plan: &LoadPlan,
        arch: String,
        tokenizer: TextTokenizer,
        template_src: Option<String>,
        mut eos: Vec<u32>,
        context: usize,
        backbone: Box<dyn Backbone>,
        backend_name: String,
    ) -> Result<Self, EngineError> {
        if let Some(e) = tokenizer
            .eos_token
            .as_deref()
            .and_then(|t| tokenizer.token_to_id(t))
        {
            eos.push(e);
        }
        eos.extend(tokenizer.end_of_turn_ids());
        let think_id = tokenizer.token_to_id("<think>");
        // A reasoning model's end-of-reasoning marker is never an end of generation.
        if let Some(close) = tokenizer.token_to_id("</think>") {
            eos.retain(|&e| e != close);
        }
        eos.sort_unstable();
        eos.dedup();
        let template = match template_src {
            Some(src) => Some(
                ChatTemplate::new(src)
                    .map_err(|e| at_load(&plan.dir, e))?
                    .with_tokens(
                        tokenizer.bos_token.clone(),
                        tokenizer.eos_token.clone(),
                        tokenizer.unk_token.clone(),
                        tokenizer.pad_token.clone(),
                    ),
            ),
            None => None,
        };
        let reasoning = think_id.is_some()
            || template
                .as_ref()
                .is_some_and(|t| t.source.contains("<think>"));
        Ok(Self {
            info: TextModelInfo {
                name: plan.name.clone(),
                architecture: arch,
                context_length: context,
                has_chat_template: template.is_some(),
                eos_token_ids: eos,
                load_time: Default::default(),
            },
            tokenizer,
            template,
            backbone,
            cached: Vec::new(),
            prompt_cached: 0,
            reasoning,
            backend_name,
            ignore_eos: false,
        })
    }

    /// Benchmarks: keep generating through end-of-sequence tokens.
    pub fn set_ignore_eos(&mut self, yes: bool) {
        self.ignore_eos = yes;
    }

    /// Drop the KV cache (the next generation prefills its whole prompt).
    pub fn clear_cache(&mut self) {
        self.cached.clear();
        self.prompt_cached = 0;
        let _ = self.backbone.reset();
    }

    /// Logits after running `ids` from an empty cache (fidelity debugging).
    pub fn debug_logits(&mut self, ids: &[u32]) -> Result<Vec<f32>, EngineError> {
        self.clear_cache();
        let l = self.backbone.forward(ids, 0)?;
        self.clear_cache();
        Ok(l)
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Tokenize a prompt exactly as `generate` does.
    pub fn encode_prompt(&self, prompt: &Prompt) -> Result<(String, Vec<u32>), EngineError> {
        let rendered = self.render(prompt)?;
        let ids = match prompt {
            Prompt::Chat(_) => self.tokenizer.encode(&rendered, false)?,
            Prompt::Text(_) => self.tokenizer.encode(&rendered, true)?,
        };
        Ok((rendered, ids))
    }

    /// Generate from explicit prompt ids (benchmarks, fidelity tests).
    pub fn generate_ids(
        &mut self,
        ids: &[u32],
        params: &GenerationParams,
        sink: &mut dyn FnMut(Delta<'_>) -> Flow,
    ) -> Result<GenerationOutput, EngineError> {
        self.run(ids, false, params, sink)
    }

    fn run(
        &mut self,
        ids: &[u32],
        opens_think: bool,
        params: &GenerationParams,
        sink: &mut dyn FnMut(Delta<'_>) -> Flow,
    ) -> Result<GenerationOutput, EngineError> {
        let r = self.run_inner(ids, opens_think, params, sink);
        if r.is_err() {
            self.cached.clear();
            self.prompt_cached = 0;
            let _ = self.backbone.reset();
        }
        r
    }

    fn run_inner(
        &mut self,
        ids: &[u32],
        opens_think: bool,
        params: &GenerationParams,
        sink: &mut dyn FnMut(Delta<'_>) -> Flow,
    ) -> Result<GenerationOutput, EngineError> {
        let ctx = self.info.context_length;
        if ids.is_empty() {
            return Err(EngineError::Inference("empty prompt".into()));
        }
        if ids.len() >= ctx {
            return Err(EngineError::PromptTooLong {
                prompt: ids.len(),
                context: ctx,
            });
        }
        let t_start = Instant::now();
        // Reuse the cached prefix (multi-turn chat) so that the result is the
        // one a cold prefill gives (ADR 011): a token's arithmetic depends on
        // whether it runs alone (decode kernels) or in a chunk of two or more
        // (prefill kernels), so only positions computed as prompt tokens are
        // reused (not the previous answer), and at least the last two prompt
        // tokens are recomputed, in one chunk, never a chunk of one.
        let common = self
            .cached
            .iter()
            .zip(ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(self.prompt_cached)
            .min(ids.len().saturating_sub(2));
        let mut pos = if common > 0 && self.backbone.truncate(common) {
            common
        } else {
            self.backbone.reset()?;
            0
        };
        self.cached.truncate(pos);
        let chunk = self.backbone.prefill_chunk().max(1);
        let mut logits = Vec::new();
        while pos < ids.len() {
            let mut end = (pos + chunk).min(ids.len());
            // Never leave one token for a chunk of its own: take it along.
            if ids.len() - end == 1 {
                end += 1;
            }
            logits = self.backbone.forward(&ids[pos..end], pos)?;
            self.cached.extend_from_slice(&ids[pos..end]);
            pos = end;
        }
        // A one-token prompt ran alone (as it does cold): not a prefix to reuse.
        self.prompt_cached = if ids.len() >= 2 { ids.len() } else { 0 };

        let mut sampler = Sampler::new(params);
        let mut history: Vec<u32> = ids.to_vec();
        let mut generated: Vec<u32> = Vec::new();
        let mut decoder = IncrementalDecoder::new();
        let mut stops = StopMatcher::new(&params.stop);
        let mut splitter = ReasoningSplitter::new(self.reasoning, opens_think);
        let mut content = String::new();
        let mut reasoning = String::new();
        let mut pieces: Vec<(Channel, String)> = Vec::new();
        let max_new = params.max_tokens.unwrap_or(usize::MAX);
        let mut prefill_time = None;
        let mut finish = FinishReason::Length;
        let mut stop_string_hit = false;

        let mut emit = |pieces: &mut Vec<(Channel, String)>,
                        content: &mut String,
                        reasoning: &mut String|
         -> bool {
            let mut go_on = true;
            for (ch, text) in pieces.drain(..) {
                if !go_on {
                    break;
                }
                let flow = match ch {
                    Channel::Content => {
                        content.push_str(&text);
                        sink(Delta::Content(&text))
                    }
                    Channel::Reasoning => {
                        reasoning.push_str(&text);
                        sink(Delta::Reasoning(&text))
                    }
                };
                go_on = flow == Flow::Continue;
            }
            go_on
        };

        if max_new == 0 {
            prefill_time = Some(t_start.elapsed());
        }
        let mut t_decode = Instant::now();
        while generated.len() < max_new {
            let next = sampler.sample(&mut logits, &history, &generated);
            generated.push(next);
            history.push(next);
            if prefill_time.is_none() {
                prefill_time = Some(t_start.elapsed());
                t_decode = Instant::now();
            }
            if !self.ignore_eos && self.info.eos_token_ids.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            let text = decoder.push(&self.tokenizer, next)?;
            let out = stops.push(&text);
            splitter.push(&out.emit, &mut pieces);
            if !emit(&mut pieces, &mut content, &mut reasoning) {
                finish = FinishReason::Cancelled;
                break;
            }
            if out.stopped {
                stop_string_hit = true;
                finish = FinishReason::Stop;
                break;
            }
            if generated.len() >= max_new {
                finish = FinishReason::Length;
                break;
            }
            let p = self.cached.len();
            if p + 1 >= ctx {
                finish = FinishReason::Length;
                break;
            }
            logits = self.backbone.forward(&[next], p)?;
            self.cached.push(next);
        }
        if finish != FinishReason::Cancelled && !stop_string_hit {
            // Release held-back text (incomplete characters, partial stop strings).
            let tail = decoder.flush(&self.tokenizer)?;
            let mut rest = stops.push(&tail);
            if !rest.stopped {
                rest.emit.push_str(&stops.finish());
            }
            splitter.push(&rest.emit, &mut pieces);
            splitter.finish(&mut pieces);
            if !emit(&mut pieces, &mut content, &mut reasoning) {
                finish = FinishReason::Cancelled;
            }
        }
        let prefill = prefill_time.unwrap_or_else(|| t_start.elapsed());
        let decode = if generated.is_empty() {
            Default::default()
        } else {
            t_decode.elapsed()
        };
        Ok(GenerationOutput {
            content,
            reasoning: (!reasoning.is_empty()).then_some(reasoning),
            finish_reason: finish,
            usage: Usage {
                prompt_tokens: ids.len(),
                completion_tokens: generated.len(),
            },
            token_ids: generated,
            timings: Timings { prefill, decode },
        })
    }
}

impl TextModel for TextEngine {
    fn info(&self) -> &TextModelInfo {
        &self.info
    }

    fn render(&self, prompt: &Prompt) -> Result<String, EngineError> {
        match prompt {
            Prompt::Text(t) => Ok(t.clone()),
            Prompt::Chat(messages) => {
                let t = self.template.as_ref().ok_or(EngineError::NoChatTemplate)?;
                t.render(messages, true)
            }
        }
    }

    fn encode(&self, prompt: &Prompt) -> Result<EncodedPrompt, EngineError> {
        let (rendered, ids) = self.encode_prompt(prompt)?;
        Ok(EncodedPrompt {
            ids,
            opens_think: self.reasoning && prompt_opens_think(&rendered),
            pixels: None,
        })
    }

    fn generate_encoded(
        &mut self,
        prompt: &EncodedPrompt,
        params: &GenerationParams,
        sink: &mut dyn FnMut(Delta<'_>) -> Flow,
    ) -> Result<GenerationOutput, EngineError> {
        self.run(&prompt.ids, prompt.opens_think, params, sink)
    }
}

/// Architectures each backend loads: (`general.architecture` for GGUF,
/// `config.json` `model_type` for safetensors).
pub fn supported_architectures() -> (&'static [&'static str], &'static [&'static str]) {
    (GGUF_ARCHS, SAFETENSORS_ARCHS)
}
