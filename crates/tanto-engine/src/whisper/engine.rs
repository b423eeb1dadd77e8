//! The one [`SpeechModel`]: a loaded Whisper, its tokenizer and special
//! tokens, and the long-form transcription loop.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use tanto_core::plan::{Backend, LoadPlan, Weights};

use super::decode::{self, WindowSpec, TEMPERATURE_LADDER};
use super::model::Whisper;
use super::tokens::{self, SpecialTokens};
use super::{
    weights, Segment, SpeechModel, SpeechModelInfo, SpeechTimings, Task, TranscribeOptions,
    Transcript,
};
use crate::api::{EngineError, LoadOptions};
use crate::audio::mel::{LogMel, HOP_LENGTH, N_FRAMES};
use crate::audio::SAMPLE_RATE;
use crate::sampler::Rng;
use crate::tokenizer::TextTokenizer;

/// Load the Whisper model the policy planned (HF safetensors or CTranslate2).
pub fn load_speech_model(
    plan: &LoadPlan,
    opts: &LoadOptions,
) -> Result<Box<dyn SpeechModel>, EngineError> {
    Ok(Box::new(WhisperEngine::load(plan, opts)?))
}

pub struct WhisperEngine {
    model: Whisper,
    tok: TextTokenizer,
    special: SpecialTokens,
    mel: LogMel,
    info: SpeechModelInfo,
    pool: Option<rayon::ThreadPool>,
}

fn inval(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidModel {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn inference(e: candle_core::Error) -> EngineError {
    EngineError::Inference(e.to_string())
}

impl WhisperEngine {
    pub fn load(plan: &LoadPlan, opts: &LoadOptions) -> Result<Self, EngineError> {
        let t0 = Instant::now();
        let dev = crate::device::select();
        let threads = opts
            .threads
            .filter(|&t| t > 0)
            .unwrap_or_else(crate::threads::default_threads);
        let pool = crate::threads::rayon_pool(threads);
        let (config, tensors, weights_kind, src) = match (&plan.backend, &plan.weights) {
            (Backend::Whisper, Weights::Safetensors { files }) if !files.is_empty() => {
                let cfg_path = plan.dir.join("config.json");
                let cfg =
                    crate::tokenizer::read_json_opt(&cfg_path)?.ok_or_else(|| EngineError::Io {
                        path: cfg_path.clone(),
                        message: "config.json not found".into(),
                    })?;
                let c = weights::hf_config(&cfg, &cfg_path)?;
                let t = weights::load_safetensors(files, &dev)?;
                (c, t, "hf-safetensors", files[0].clone())
            }
            (Backend::Whisper, Weights::Ctranslate2 { file }) => {
                let (c, t) = weights::load_ct2(file, &dev)?;
                (c, t, "ctranslate2", file.clone())
            }
            (b, _) => {
                return Err(EngineError::UnsupportedArchitecture(format!(
                    "backend {} with these weights is not the whisper backend",
                    b.as_str()
                )))
            }
        };
        let vocab = config.vocab_size;
        let n_mels = config.num_mel_bins;
        let turbo = config.decoder_layers <= 4 && config.d_model >= 1280;
        let text_context = config.max_target_positions;
        let model = Whisper::new(config, tensors, &dev).map_err(|e| inval(&src, e))?;
        let tok = TextTokenizer::from_dir(&plan.dir).map_err(|e| match e {
            EngineError::Tokenizer(m) => inval(&plan.dir.join("tokenizer.json"), m),
            other => other,
        })?;
        let special = tokens::read(&plan.dir, &tok, vocab)?;
        if special.timestamp_begin as usize >= vocab {
            return Err(inval(
                &plan.dir.join("tokenizer.json"),
                format!(
                    "<|notimestamps|> is id {}, the model has {vocab} outputs",
                    special.no_timestamps
                ),
            ));
        }
        let multilingual = special.multilingual();
        let info = SpeechModelInfo {
            name: plan.name.clone(),
            weights: weights_kind.to_string(),
            multilingual,
            can_translate: multilingual && special.translate.is_some() && !turbo,
            n_mels,
            text_context,
            languages: special
                .languages
                .iter()
                .map(|(c, _)| c.to_string())
                .collect(),
            load_time: t0.elapsed(),
        };
        Ok(Self {
            model,
            tok,
            special,
            mel: LogMel::new(n_mels),
            info,
            pool,
        })
    }

    fn detok(&self, ids: &[u32]) -> String {
        self.tok.decode(ids, true).unwrap_or_default()
    }

    /// The language code to decode with: the one asked for, checked against
    /// what the model knows; None = detect.
    fn language(&self, opts: &TranscribeOptions) -> Result<Option<&'static str>, EngineError> {
        let Some(l) = opts.language.as_deref().filter(|l| !l.trim().is_empty()) else {
            return Ok(if self.info.multilingual {
                None
            } else {
                Some("en")
            });
        };
        let code = tokens::language_code(l).ok_or_else(|| {
            EngineError::Validation(format!(
                "unknown language '{l}': give an ISO-639-1 code (en, de, fr, …) or an English name"
            ))
        })?;
        if !self.info.multilingual && code != "en" {
            return Err(EngineError::Validation(format!(
                "{} is an English-only model; language '{code}' needs a multilingual Whisper",
                self.info.name
            )));
        }
        if self.info.multilingual && self.special.language_token(code).is_none() {
            return Err(EngineError::Validation(format!(
                "{} does not know language '{code}'",
                self.info.name
            )));
        }
        Ok(Some(code))
    }

    fn run(&self, samples: &[f32], opts: &TranscribeOptions) -> Result<Transcript, EngineError> {
        if samples.is_empty() {
            return Err(EngineError::Validation("the audio has no samples".into()));
        }
        if opts.task == Task::Translate && !self.info.can_translate {
            let why = if self.info.multilingual {
                "a turbo model, which was not trained to translate"
            } else {
                "an English-only model"
            };
            return Err(EngineError::UnsupportedTask(format!(
                "{} cannot translate: it is {why}; use a multilingual Whisper (tiny … large-v3)",
                self.info.name
            )));
        }
        if let Some(t) = opts.temperature {
            if !(0.0..=2.0).contains(&t) || !t.is_finite() {
                return Err(EngineError::Validation(format!(
                    "temperature must be between 0 and 2, got {t}"
                )));
            }
        }
        let mut language = self.language(opts)?;
        let sp = &self.special;
        let dev: &Device = self.model.device();
        let mut timings = SpeechTimings::default();

        let t = Instant::now();
        let (mel, n_frames) = self.mel.compute_long(samples);
        timings.mel = t.elapsed();
        let n_mels = self.mel.n_mels();
        let content_frames = (samples.len() / HOP_LENGTH).clamp(1, n_frames);
        let temperatures: Vec<f32> = match opts.temperature {
            Some(t) => vec![t],
            None => TEMPERATURE_LADDER.to_vec(),
        };
        let mut rng = Rng::new(opts.seed.unwrap_or(0));
        let timestamps = !opts.without_timestamps;
        let max_tokens = self.model.config.max_target_positions / 2;
        let detok = |ids: &[u32]| self.detok(ids);

        // Text before the first window (Whisper's `initial_prompt`).
        let mut all_tokens: Vec<u32> = match opts.prompt.as_deref().map(str::trim) {
            Some(p) if !p.is_empty() => self.tok.encode(&format!(" {p}"), false)?,
            _ => Vec::new(),
        };
        all_tokens.retain(|t| *t < sp.eot);
        let mut prompt_reset_since = 0;
        let mut language_probability = None;
        let mut segments: Vec<Segment> = Vec::new();
        let mut seek = 0usize;
        while seek < content_frames {
            let seg_frames = N_FRAMES.min(content_frames - seek);
            let t = Instant::now();
            // Every mel frame there is (under 30 s: the zero-padded short-form
            // features, as HF's short-form path), then zeros up to 3000.
            let win =
                decode::window(&mel, n_mels, n_frames, seek, N_FRAMES, dev).map_err(inference)?;
            let enc = self.model.encode(&win).map_err(inference)?;
            let cross = self.model.cross_kv(&enc).map_err(inference)?;
            timings.encode += t.elapsed();
            let t = Instant::now();
            if language.is_none() {
                let probs = decode::detect_language(&self.model, &cross, sp).map_err(inference)?;
                let (code, p) = probs.first().copied().unwrap_or(("en", 1.0));
                language = Some(code);
                language_probability = Some(p);
            }
            let sot_seq = sp.sot_sequence(language, opts.task, timestamps);
            let mut prompt = Vec::new();
            let prev = &all_tokens[prompt_reset_since..];
            if let (Some(sot_prev), false) = (sp.sot_prev, prev.is_empty()) {
                prompt.push(sot_prev);
                let keep = prev.len().min(max_tokens.saturating_sub(1));
                prompt.extend_from_slice(&prev[prev.len() - keep..]);
            }
            let sot_index = prompt.len();
            prompt.extend_from_slice(&sot_seq);
            let spec = WindowSpec {
                prompt: &prompt,
                sot_index,
                timestamps,
                max_tokens,
            };
            let r = decode::decode_with_fallback(
                &self.model,
                &cross,
                sp,
                &spec,
                &temperatures,
                &mut rng,
                &detok,
            )
            .map_err(inference)?;
            timings.decode += t.elapsed();
            // Silence: skip the window.
            if r.no_speech_prob > decode::NO_SPEECH_THRESHOLD
                && r.avg_logprob <= decode::LOGPROB_THRESHOLD
            {
                seek += seg_frames;
                continue;
            }
            let (segs, advance) = if timestamps {
                decode::split_segments(&r, sp, seek, seg_frames, &detok)
            } else {
                let mut s = decode::split_segments(&r, sp, seek, seg_frames, &detok);
                s.1 = seg_frames;
                s
            };
            for mut s in segs {
                // openai/whisper drops segments without text.
                if s.text.trim().is_empty() {
                    continue;
                }
                s.id = segments.len();
                segments.push(s);
            }
            all_tokens.extend_from_slice(&r.tokens);
            if !opts.condition_on_previous_text || r.temperature > 0.5 {
                prompt_reset_since = all_tokens.len();
            }
            seek += advance;
        }
        let duration = samples.len() as f64 / SAMPLE_RATE as f64;
        for s in &mut segments {
            s.end = s.end.min(duration.max(s.start));
        }
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>()
            .trim()
            .to_string();
        Ok(Transcript {
            text,
            language: language.unwrap_or("en").to_string(),
            language_probability,
            task: opts.task,
            duration,
            segments,
            timings,
        })
    }
}

impl SpeechModel for WhisperEngine {
    fn info(&self) -> &SpeechModelInfo {
        &self.info
    }

    fn transcribe(
        &mut self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, EngineError> {
        match &self.pool {
            Some(p) => p.install(|| self.run(samples, opts)),
            None => self.run(samples, opts),
        }
    }
}
