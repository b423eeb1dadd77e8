//! `tanto run MODEL [PROMPT…]`: one-shot streaming, Unix pipes, or an
//! interactive chat when no prompt is given on a TTY.
//!
//! Resolve → probe → policy happen before anything is loaded: a blocked
//! decision exits with its typed error and the fix, and loads nothing.
//! Ctrl-C during a one-shot answer stops it, prints what came and a one-line
//! note, and exits 130.

use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;
use tanto_core::error::{ErrorType, TantoError};
use tanto_core::policy::{self, PolicyConfig, Request};
use tanto_core::resolve::Stores;
use tanto_core::{host, probe};
use tanto_engine::{
    ChatMessage, Delta, EngineError, FinishReason, Flow, GenerationOutput, LoadOptions, Prompt,
    TextModel,
};

use crate::cmd::generation::GenerationArgs;
use crate::cmd::interrupt::interrupt_flag;

use crate::output::{self, CmdResult, Colors};

/// Exit status of a one-shot run that Ctrl-C ended (128 + SIGINT).
const EXIT_INTERRUPTED: i32 = 130;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model spec: org/name, a unique fuzzy name, name@rev, a path (folder or .gguf) or a workspace
    pub model: String,
    /// The prompt; `-` reads standard input (piped stdin is read without it too)
    #[arg(value_name = "PROMPT")]
    pub words: Vec<String>,
    /// The prompt as one argument (wins over positional words; joined after stdin)
    #[arg(long = "prompt", short = 'p', value_name = "TEXT")]
    pub prompt: Option<String>,
    /// Open an interactive chat even when a prompt or piped input is given
    #[arg(long)]
    pub chat: bool,
    #[command(flatten)]
    pub gen: GenerationArgs,
    /// Feed the prompt as raw text, without the model's chat template
    #[arg(long)]
    pub no_chat_template: bool,
    /// Print the answer at the end instead of token by token
    #[arg(long)]
    pub no_stream: bool,
    /// CPU threads for inference (default: the engine's choice; 1 can be faster on a busy 2-core box)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print load time, token counts and speeds to stderr
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Print the JSON envelope (response, reasoning, finish_reason, usage)
    #[arg(long)]
    pub json: bool,
    /// Never download: an exact ORG/NAME that is not in the cache is an error
    /// (by default it is pulled first, with progress; fuzzy names never are)
    #[arg(long)]
    pub no_pull: bool,
    /// Transcribe this audio file with a Whisper model (WAV, FLAC, MP3, OGG/Vorbis, M4A);
    /// the prompt, if any, becomes Whisper's initial prompt
    #[arg(long, value_name = "FILE")]
    pub audio: Option<std::path::PathBuf>,
    /// With --audio: the spoken language (ISO-639-1 code or English name; default: detect)
    #[arg(long, requires = "audio")]
    pub language: Option<String>,
    /// With --audio: translate the speech to English (multilingual, non-turbo models)
    #[arg(long, requires = "audio")]
    pub translate: bool,
    /// With --audio: text (default), srt, vtt, or verbose_json (segments with timings)
    #[arg(long, requires = "audio", value_enum, default_value_t = crate::cmd::transcribe::Format::Text)]
    pub format: crate::cmd::transcribe::Format,
}

/// An engine failure in the wire taxonomy: the engine classifies its own errors.
pub(crate) fn engine_err(e: EngineError) -> TantoError {
    TantoError::new(e.error_type(), e.to_string())
}

/// The prompt from arguments and stdin. `Ok(None)` = interactive.
pub(crate) fn gather_prompt(a: &Args) -> Result<Option<String>, TantoError> {
    let stdin_piped = !std::io::stdin().is_terminal();
    let dash = a.words.iter().any(|p| p == "-");
    let wants_stdin = dash || (stdin_piped && !a.chat);
    let text_args: Vec<&str> = match &a.prompt {
        // `--prompt` wins over positional words, as in mlx-knife.
        Some(p) => vec![p.as_str()],
        None => a
            .words
            .iter()
            .filter(|p| *p != "-")
            .map(String::as_str)
            .collect(),
    };
    let mut stdin_text = String::new();
    if wants_stdin {
        std::io::stdin()
            .read_to_string(&mut stdin_text)
            .map_err(|e| {
                TantoError::new(
                    ErrorType::ValidationError,
                    format!("cannot read stdin: {e}"),
                )
            })?;
    }
    let joined = text_args.join(" ");
    let stdin_text = stdin_text.trim_end_matches(['\n', '\r']).to_string();
    let prompt = match (stdin_text.is_empty(), joined.is_empty()) {
        (true, true) => {
            if dash {
                return Err(TantoError::new(
                    ErrorType::ValidationError,
                    "standard input was empty and no prompt was given",
                ));
            }
            return Ok(None);
        }
        (false, true) => stdin_text,
        (true, false) => joined,
        (false, false) => format!("{stdin_text}\n\n{joined}"),
    };
    Ok(Some(prompt))
}

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
    let json = a.json;

    // Resolve → probe → policy, before any load.
    let stores = Stores::from_env();
    let resolved = crate::cmd::hub::resolve_or_pull(&a.model, &stores, !a.no_pull, json, "run")?;
    if resolved.fuzzy {
        eprintln!(
            "tanto run: note: '{}' matched {}",
            a.model, resolved.display_name
        );
    }
    let probe = probe::probe_resolved(&resolved);
    let (plan, decision) = policy::plan(
        &probe,
        Request::Text,
        &host::detect(),
        &PolicyConfig::from_env(),
    )?;
    for w in &decision.warnings {
        eprintln!("tanto run: warning: {w}");
    }

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
            });
        }
        msgs.push(ChatMessage {
            role: "user".into(),
            content: text.clone(),
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
