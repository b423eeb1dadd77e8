//! `tanto run WHISPER --audio FILE`: speech to text (or to English with
//! `--translate`), as plain text, SubRip, WebVTT or verbose JSON.
//!
//! The same pipeline as text: resolve → probe → policy (the audio request)
//! before the file is decoded or the model loaded.

use std::io::Write;
use std::time::Instant;

use serde_json::json;
use tanto_core::error::TantoError;
use tanto_core::policy::Request;
use tanto_engine::audio::{decode::decode_file, AudioError, FFMPEG_HINT};
use tanto_engine::whisper::{self, subtitles, Task, TranscribeOptions};
use tanto_engine::LoadOptions;

use crate::cmd::run_args::{gather_prompt, plan_for, Args};
use crate::output::engine_err;
use crate::output::{self, CmdResult};

/// How the transcript is printed (without `--json`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Srt,
    Vtt,
    #[value(name = "verbose_json")]
    VerboseJson,
}

fn audio_err(path: &std::path::Path, e: AudioError) -> TantoError {
    let hint = match &e {
        AudioError::Unsupported { .. } => Some(FFMPEG_HINT.to_string()),
        AudioError::TooLarge { .. } => Some("split the file, e.g. with ffmpeg -f segment".into()),
        _ => None,
    };
    let err = TantoError::new(e.error_type(), format!("{}: {e}", path.display()));
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

pub fn run(a: &Args) -> CmdResult {
    let Some(path) = a.audio.as_deref() else {
        return Err(output::internal("transcribe without --audio").into());
    };
    let plan = plan_for(a, Request::Audio)?;
    // The prompt words (or piped text) condition the first window.
    let prompt = if a.words.is_empty() && a.prompt.is_none() {
        None
    } else {
        gather_prompt(a)?
    };

    let t0 = Instant::now();
    let pcm = decode_file(path, None).map_err(|e| audio_err(path, e))?;
    let decode_time = t0.elapsed();
    let mut model = whisper::load_speech_model(&plan, &LoadOptions { threads: a.threads })
        .map_err(engine_err)?;
    if a.verbose {
        eprintln!(
            "decoded {} ({}, {} Hz, {} ch, {:.2} s) in {:.2?}; loaded {} in {:.2?}",
            path.display(),
            pcm.codec,
            pcm.source_rate,
            pcm.channels,
            pcm.duration_secs(),
            decode_time,
            plan.name,
            model.info().load_time
        );
    }
    let opts = TranscribeOptions {
        language: a.language.clone(),
        task: if a.translate {
            Task::Translate
        } else {
            Task::Transcribe
        },
        prompt,
        temperature: a.gen.temperature,
        seed: a.gen.seed,
        ..TranscribeOptions::default()
    };
    let t = Instant::now();
    let tr = model.transcribe(&pcm.samples, &opts).map_err(engine_err)?;
    let wall = t.elapsed();
    if a.verbose {
        let tm = &tr.timings;
        eprintln!(
            "language {}{}; {:.2} s of audio in {:.2?} (mel {:.2?}, encode {:.2?}, decode {:.2?}): {:.1}x real time",
            tr.language,
            tr.language_probability
                .map(|p| format!(" (detected, p={p:.2})"))
                .unwrap_or_default(),
            tr.duration,
            wall,
            tm.mel,
            tm.encode,
            tm.decode,
            tr.duration / wall.as_secs_f64().max(1e-9)
        );
    }
    if a.json {
        output::print_json(&output::envelope_ok(
            "run",
            json!({
                "model": a.model,
                "resolved": plan.name,
                "audio": path.display().to_string(),
                "task": tr.task.as_str(),
                "language": tr.language,
                "language_probability": tr.language_probability,
                "duration": tr.duration,
                "text": tr.text,
                "response": tr.text,
                "segments": tr.segments,
                "timings": {
                    "load_s": model.info().load_time.as_secs_f64(),
                    "audio_decode_s": decode_time.as_secs_f64(),
                    "mel_s": tr.timings.mel.as_secs_f64(),
                    "encode_s": tr.timings.encode.as_secs_f64(),
                    "decode_s": tr.timings.decode.as_secs_f64(),
                    "total_s": wall.as_secs_f64(),
                },
            }),
        ));
        return Ok(output::EXIT_OK);
    }
    let body = match a.format {
        Format::Text => format!("{}\n", tr.text),
        Format::Srt => subtitles::srt(&tr.segments),
        Format::Vtt => subtitles::vtt(&tr.segments),
        Format::VerboseJson => {
            let mut s =
                serde_json::to_string_pretty(&subtitles::verbose_json(&tr)).unwrap_or_default();
            s.push('\n');
            s
        }
    };
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(body.as_bytes());
    let _ = so.flush();
    if tr.text.is_empty() {
        eprintln!("tanto run: note: no speech found in {}", path.display());
    }
    Ok(output::EXIT_OK)
}
