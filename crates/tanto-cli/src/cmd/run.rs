//! `tanto run MODEL [PROMPT…]`: one-shot streaming, Unix pipes, or an
//! interactive chat when no prompt is given on a TTY.
//!
//! Resolve → probe → policy happen before anything is loaded: a blocked
//! decision exits with its typed error and the fix, and loads nothing.
//! Ctrl-C during a one-shot answer stops it, prints what came and a one-line
//! note, and exits 130.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;
use tanto_core::error::{ErrorType, TantoError};
use tanto_core::policy::Request;
use tanto_engine::{
    ChatMessage, Delta, FinishReason, Flow, GenerationOutput, LoadOptions, Prompt, TextModel,
};

use crate::cmd::interrupt::interrupt_flag;

pub use crate::cmd::run_args::Args;
use crate::cmd::run_args::{gather_prompt, plan_for};
use crate::output::{self, engine_err, CmdResult, Colors};

/// Exit status of a one-shot run that Ctrl-C ended (128 + SIGINT).
const EXIT_INTERRUPTED: i32 = 130;

struct Printer {
    colors: Colors,
    no_reasoning: bool,
    in_reasoning: bool,
    stream: bool,
    broken: bool,
}

impl Printer {
    fn delta(&mut self, d: Delta<'_>) {
        if !self.stream || self.broken {
            return;
        }
        let mut out = std::io::stdout().lock();
        let r = match d {
            Delta::Content(s) => {
                if self.in_reasoning {
                    self.in_reasoning = false;
                    let _ = out.write_all(b"\n");
                }
                out.write_all(s.as_bytes())
            }
            Delta::Reasoning(s) => {
                if self.no_reasoning {
                    Ok(())
                } else {
                    self.in_reasoning = true;
                    out.write_all(self.colors.dim(s).as_bytes())
                }
            }
        };
        if r.and_then(|_| out.flush()).is_err() {
            self.broken = true;
        }
    }
}

fn verbose_report(model: &dyn TextModel, o: &GenerationOutput) {
    let u = &o.usage;
    eprintln!();
    eprintln!("load duration:        {:.2?}", model.info().load_time);
    eprintln!("prompt eval count:    {} token(s)", u.prompt_tokens);
    eprintln!("prompt eval duration: {:.2?}", o.timings.prefill);
    eprintln!(
        "prompt eval rate:     {:.2} tokens/s",
        o.timings.prefill_tps(u)
    );
    eprintln!("eval count:           {} token(s)", u.completion_tokens);
    eprintln!("eval duration:        {:.2?}", o.timings.decode);
    eprintln!(
        "eval rate:            {:.2} tokens/s",
        o.timings.decode_tps(u)
    );
    eprintln!("finish reason:        {:?}", o.finish_reason);
}

pub fn run(a: Args) -> CmdResult {
    if a.audio.is_some() {
        return crate::cmd::transcribe::run(&a);
    }
    if !a.image.is_empty() {
        return crate::cmd::vision::run(&a);
    }
    let json = a.json;

    // Resolve → probe → policy, before any load.
    let plan = plan_for(&a, Request::Text)?;

    let prompt_text = gather_prompt(&a)?;
    let interactive = a.chat || prompt_text.is_none();
    if interactive && json {
        return Err(TantoError::new(
            ErrorType::ValidationError,
            "interactive chat cannot print JSON; give a prompt (or pipe one) with --json",
        )
        .into());
    }
    if interactive && !std::io::stdin().is_terminal() {
        return Err(TantoError::new(
            ErrorType::ValidationError,
            "no prompt given and standard input is not a terminal",
        )
        .with_hint("pass a prompt: tanto run MODEL \"question\", or pipe one: echo question | tanto run MODEL")
        .into());
    }

    let t0 = Instant::now();
    let mut model = tanto_engine::load_text_model(&plan, &LoadOptions { threads: a.threads })
        .map_err(engine_err)?;
    if a.verbose {
        eprintln!("loaded {} in {:.2?}", plan.name, t0.elapsed());
    }
    let use_template = !a.no_chat_template && model.info().has_chat_template;
    if !a.no_chat_template && !model.info().has_chat_template {
        eprintln!(
            "tanto run: note: {} has no chat template; running as plain text completion",
            plan.name
        );
    }

    if interactive {
        return crate::cmd::chat::interactive(model.as_mut(), &a.gen, use_template);
    }
    let text = prompt_text.unwrap_or_default();
    let prompt = if use_template {
        let mut msgs = Vec::new();
        if let Some(s) = &a.gen.system {
            msgs.push(ChatMessage {
                role: "system".into(),
                content: s.clone(),
                parts: Vec::new(),
            });
        }
        msgs.push(ChatMessage {
            role: "user".into(),
            content: text.clone(),
            parts: Vec::new(),
        });
        Prompt::Chat(msgs)
    } else {
        let mut t = text.clone();
        if let Some(s) = &a.gen.system {
            t = format!("{s}\n\n{t}");
        }
        Prompt::Text(t)
    };
    let stream = !a.no_stream && !json;
    let mut printer = Printer {
        colors: Colors::stdout(),
        no_reasoning: a.gen.no_reasoning,
        in_reasoning: false,
        stream,
        broken: false,
    };
    // Ctrl-C from here on ends the answer, not the process.
    let interrupted = interrupt_flag();
    interrupted.store(false, Ordering::SeqCst);
    let result = model.generate(&prompt, &a.gen.to_params(), &mut |d| {
        printer.delta(d);
        if printer.broken || interrupted.load(Ordering::SeqCst) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    });
    let out = result.map_err(engine_err)?;
    if printer.broken {
        return Ok(output::EXIT_OK);
    }
    let cancelled = interrupted.load(Ordering::SeqCst);
    if json {
        output::print_json(&output::envelope_ok(
            "run",
            json!({
                "model": a.model,
                "resolved": plan.name,
                "prompt": text,
                "response": out.content,
                "reasoning": if a.gen.no_reasoning { None } else { out.reasoning.clone() },
                "finish_reason": match out.finish_reason { FinishReason::Stop => "stop", FinishReason::Length => "length", FinishReason::Cancelled => "cancelled" },
                "usage": {
                    "prompt_tokens": out.usage.prompt_tokens,
                    "completion_tokens": out.usage.completion_tokens,
                    "total_tokens": out.usage.prompt_tokens + out.usage.completion_tokens,
                },
                "timings": {
                    "load_s": model.info().load_time.as_secs_f64(),
                    "prefill_s": out.timings.prefill.as_secs_f64(),
                    "decode_s": out.timings.decode.as_secs_f64(),
                    "prefill_tokens_per_s": out.timings.prefill_tps(&out.usage),
                    "decode_tokens_per_s": out.timings.decode_tps(&out.usage),
                },
            }),
        ));
    } else {
        let mut so = std::io::stdout().lock();
        if !stream {
            if let (Some(r), false) = (&out.reasoning, a.gen.no_reasoning) {
                let _ = writeln!(so, "{}", Colors::stdout().dim(r));
            }
            let _ = so.write_all(out.content.as_bytes());
        }
        let _ = so.write_all(b"\n");
        let _ = so.flush();
    }
    if a.verbose {
        verbose_report(model.as_ref(), &out);
    }
    if cancelled {
        output::errln("[Generation interrupted by user]");
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(output::EXIT_OK)
}
