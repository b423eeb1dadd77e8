//! `tanto run VLM --image FILE… [PROMPT]`: describe or ask about images.
//!
//! mlx-knife's semantics: the default prompt is "Describe the image."; each
//! file is read under a size limit; images go to the model 1–5 at a time
//! (`--chunk`), each call from a clean cache; images are numbered 1..N in
//! order and named by content hash; a collapsible metadata table (with EXIF
//! GPS, date and camera unless `--no-exif`) precedes each answer, and the
//! same EXIF facts are given to the model as context lines before the prompt.
//!
//! Resolve → probe → policy (the vision request) happen first: a model
//! without vision is refused with `capability_mismatch` before any image is
//! read or weight loaded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::json;
use tanto_core::error::{ErrorType, TantoError};
use tanto_core::limits::{read_capped, ReadError};
use tanto_core::policy::Request;
use tanto_engine::vision::image::{decode, DecodedImage, ImageError, ImageLimits};
use tanto_engine::vision::metadata::{augment_prompt, metadata_table, ImageRow};
use tanto_engine::{ChatMessage, ContentPart, FinishReason, Flow, LoadOptions, Prompt};

use crate::cmd::interrupt::interrupt_flag;
use crate::cmd::run_args::{gather_prompt, plan_for, Args};
use crate::output::{self, engine_err, CmdResult};

/// mlx-knife's default question.
pub const DEFAULT_PROMPT: &str = "Describe the image.";
/// Images per model call, at most.
pub const MAX_CHUNK: usize = 5;
/// Per-file size limit.
pub const IMAGE_FILE_LIMIT: u64 = 20 * 1024 * 1024;

fn image_err(path: &Path, e: ImageError) -> TantoError {
    let hint = match &e {
        ImageError::Unsupported(_) => Some("convert it to PNG or JPEG first"),
        ImageError::TooLarge { .. } | ImageError::TooManyPixels { .. } => {
            Some("downscale it first, e.g. `magick in.jpg -resize 4096x4096 out.jpg`")
        }
        _ => None,
    };
    let err = TantoError::new(e.error_type(), format!("{}: {e}", path.display()));
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// Read one image file under the limit: only a regular file, never more
/// than the limit (a fifo or a huge file is refused, not read).
fn read_image(path: &Path) -> Result<DecodedImage, TantoError> {
    let bytes = read_capped(path, IMAGE_FILE_LIMIT).map_err(|e| match e {
        ReadError::TooLarge { size, cap } => {
            image_err(path, ImageError::TooLarge { size, limit: cap })
        }
        other => TantoError::new(
            ErrorType::ValidationError,
            format!("{}: {other}", path.display()),
        ),
    })?;
    let limits = ImageLimits {
        max_bytes: IMAGE_FILE_LIMIT,
        ..Default::default()
    };
    decode(&bytes, limits).map_err(|e| image_err(path, e))
}

/// `--chunk`, else `TANTO_VISION_CHUNK`, else 1; must be 1..=5.
fn chunk_size(a: &Args) -> Result<usize, TantoError> {
    let (v, from) = match a.chunk {
        Some(c) => (c.to_string(), "--chunk"),
        None => match std::env::var("TANTO_VISION_CHUNK") {
            Ok(v) if !v.trim().is_empty() => (v.trim().to_string(), "TANTO_VISION_CHUNK"),
            _ => ("1".into(), "default"),
        },
    };
    match v.parse::<usize>() {
        Ok(n) if (1..=MAX_CHUNK).contains(&n) => Ok(n),
        _ => Err(TantoError::new(
            ErrorType::ValidationError,
            format!("{from} must be between 1 and {MAX_CHUNK} (got {v})"),
        )),
    }
}

pub fn run(a: &Args) -> CmdResult {
    if a.chat {
        return Err(TantoError::new(
            ErrorType::ValidationError,
            "--image runs one question about the images; it cannot open an interactive chat",
        )
        .with_hint(
            "drop --chat, or use `tanto serve` and a chat client for a conversation about images",
        )
        .into());
    }
    let chunk = chunk_size(a)?;
    let plan = plan_for(a, Request::Vision)?;
    let question = gather_prompt(a)?.unwrap_or_else(|| DEFAULT_PROMPT.to_string());
    let images: Vec<(PathBuf, Arc<DecodedImage>)> = a
        .image
        .iter()
        .map(|p| read_image(p).map(|d| (p.clone(), Arc::new(d))))
        .collect::<Result<_, _>>()?;

    let mut model = tanto_engine::load_text_model(&plan, &LoadOptions { threads: a.threads })
        .map_err(engine_err)?;
    if a.verbose {
        eprintln!("loaded {} in {:.2?}", plan.name, model.info().load_time);
    }
    let exif = !a.no_exif;
    let params = a.gen.to_params();
    let stream = !a.no_stream && !a.json;
    let n_chunks = images.len().div_ceil(chunk);
    let interrupted = interrupt_flag();
    interrupted.store(false, Ordering::SeqCst);
    let mut answers = Vec::new();
    let mut usage = (0usize, 0usize);
    let mut finish = FinishReason::Stop;
    let mut broken = false;
    for (ci, group) in images.chunks(chunk).enumerate() {
        let first = ci * chunk + 1;
        let last = first + group.len() - 1;
        if a.verbose && n_chunks > 1 {
            eprintln!(
                "Processing images {first}-{last} (chunk {}/{n_chunks})...",
                ci + 1
            );
        }
        let names: Vec<String> = group
            .iter()
            .map(|(p, _)| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        let rows: Vec<ImageRow<'_>> = group
            .iter()
            .zip(&names)
            .enumerate()
            .map(|(k, ((_, img), name))| ImageRow {
                id: first + k,
                short_hash: img.short_id(),
                original: name,
                exif: if exif { img.exif.as_ref() } else { None },
            })
            .collect();
        let table = metadata_table(
            &rows,
            exif,
            (n_chunks > 1).then_some((ci + 1, n_chunks, first, last)),
        );
        let text = if exif {
            let ex: Vec<_> = group.iter().map(|(_, i)| i.exif.as_ref()).collect();
            augment_prompt(&question, &ex)
        } else {
            question.clone()
        };
        let mut parts: Vec<ContentPart> = group
            .iter()
            .map(|(_, i)| ContentPart::Image(i.clone()))
            .collect();
        parts.push(ContentPart::Text(text.clone()));
        let mut msgs = Vec::new();
        if let Some(s) = &a.gen.system {
            msgs.push(ChatMessage::text("system", s.clone()));
        }
        msgs.push(ChatMessage {
            role: "user".into(),
            content: text,
            parts,
        });
        if stream {
            let mut so = std::io::stdout().lock();
            if ci > 0 {
                let _ = so.write_all(b"\n\n");
            }
            broken |= so
                .write_all(table.as_bytes())
                .and_then(|_| so.flush())
                .is_err();
        }
        let out = model
            .generate(&Prompt::Chat(msgs), &params, &mut |d| {
                if let (true, tanto_engine::Delta::Content(s)) = (stream && !broken, d) {
                    let mut so = std::io::stdout().lock();
                    broken |= so.write_all(s.as_bytes()).and_then(|_| so.flush()).is_err();
                }
                if broken || interrupted.load(Ordering::SeqCst) {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            })
            .map_err(engine_err)?;
        usage.0 += out.usage.prompt_tokens;
        usage.1 += out.usage.completion_tokens;
        finish = out.finish_reason;
        if a.verbose {
            eprintln!(
                "\nchunk {}/{n_chunks}: {} prompt tokens in {:.2?} ({:.1} tok/s), {} tokens in {:.2?} ({:.1} tok/s)",
                ci + 1,
                out.usage.prompt_tokens,
                out.timings.prefill,
                out.timings.prefill_tps(&out.usage),
                out.usage.completion_tokens,
                out.timings.decode,
                out.timings.decode_tps(&out.usage)
            );
        }
        answers.push(format!("{table}{}", out.content));
        if broken || interrupted.load(Ordering::SeqCst) {
            break;
        }
    }
    if broken {
        return Ok(output::EXIT_OK);
    }
    let response = answers.join("\n\n");
    if a.json {
        output::print_json(&output::envelope_ok(
            "run",
            json!({
                "model": a.model,
                "resolved": plan.name,
                "prompt": question,
                "images": images.iter().enumerate().map(|(i, (p, img))| json!({
                    "id": i + 1,
                    "path": p.display().to_string(),
                    "sha256": img.sha256,
                    "format": img.format,
                    "width": img.rgb.width,
                    "height": img.rgb.height,
                })).collect::<Vec<_>>(),
                "response": response,
                "finish_reason": match finish { FinishReason::Stop => "stop", FinishReason::Length => "length", FinishReason::Cancelled => "cancelled" },
                "usage": {
                    "prompt_tokens": usage.0,
                    "completion_tokens": usage.1,
                    "total_tokens": usage.0 + usage.1,
                },
            }),
        ));
    } else {
        let mut so = std::io::stdout().lock();
        if !stream {
            let _ = so.write_all(response.as_bytes());
        }
        let _ = so.write_all(b"\n");
        let _ = so.flush();
    }
    if interrupted.load(Ordering::SeqCst) {
        output::errln("[Generation interrupted by user]");
        return Ok(130);
    }
    Ok(output::EXIT_OK)
}
