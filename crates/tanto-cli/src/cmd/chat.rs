//! The interactive chat of `tanto run`: history, multi-line input (`"""`),
//! slash commands, Ctrl-C stops the current answer; Ctrl-D, `/bye`, or
//! `exit` / `quit` alone on a line (mlx-knife's words) leave.

use std::io::Write;
use std::sync::atomic::Ordering;

use rustyline::error::ReadlineError;
use tanto_engine::{ChatMessage, Delta, FinishReason, Flow, GenerationParams, Prompt, TextModel};

use crate::cmd::generation::GenerationArgs;
use crate::cmd::interrupt::interrupt_flag;
use crate::output::{self, CmdResult, Colors};

const HELP: &str = "\
Commands:
  /set temperature X   sampling temperature (0 = greedy)
  /set top_p X | top_k N | min_p X | repetition_penalty X | max_tokens N | seed N
  /set system TEXT     replace the system prompt (clears the history)
  /show                print the current settings
  /clear               forget the conversation
  /bye                 exit (or exit, quit, Ctrl-D)
Start and end a message with \"\"\" to write several lines. Ctrl-C stops an answer.";

fn set(
    params: &mut GenerationParams,
    system: &mut Option<String>,
    key: &str,
    val: &str,
) -> Result<String, String> {
    let f = || {
        val.parse::<f32>()
            .map_err(|_| format!("'{val}' is not a number"))
    };
    let u = || {
        val.parse::<usize>()
            .map_err(|_| format!("'{val}' is not a whole number"))
    };
    match key {
        "temperature" | "temp" => params.temperature = f()?,
        "top_p" => params.top_p = Some(f()?),
        "top_k" => params.top_k = Some(u()?),
        "min_p" => params.min_p = Some(f()?),
        "repetition_penalty" | "repeat_penalty" => params.repetition_penalty = f()?,
        "max_tokens" => params.max_tokens = Some(u()?),
        "seed" => params.seed = Some(val.parse().map_err(|_| format!("'{val}' is not a seed"))?),
        "system" => {
            *system = (!val.is_empty()).then(|| val.to_string());
            return Ok("system prompt set; history cleared".into());
        }
        other => return Err(format!("unknown setting '{other}' (see /help)")),
    }
    Ok(format!("set {key} = {val}"))
}

/// `exit` / `quit` typed alone end the chat (mlx-knife's words), like `/bye`.
fn is_exit_word(s: &str) -> bool {
    s.eq_ignore_ascii_case("exit") || s.eq_ignore_ascii_case("quit")
}

pub fn interactive(model: &mut dyn TextModel, a: &GenerationArgs, use_template: bool) -> CmdResult {
    let c = Colors::stdout();
    let mut rl = rustyline::DefaultEditor::new()
        .map_err(|e| output::internal(format!("cannot open the terminal: {e}")))?;
    let mut params = a.to_params();
    let mut system = a.system.clone();
    let mut history: Vec<ChatMessage> = Vec::new();
    let flag = interrupt_flag();
    eprintln!(
        "{}",
        c.dim(&format!(
            "Chatting with {}. /help for commands, exit, /bye or Ctrl-D to leave.{}",
            model.info().name,
            if use_template {
                ""
            } else {
                " (no chat template: each message is a plain completion without history)"
            }
        ))
    );
    loop {
        let line = match rl.readline(">>> ") {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                eprintln!("{}", c.dim("(exit, /bye or Ctrl-D to leave)"));
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(output::internal(e.to_string()).into()),
        };
        let mut text = line.clone();
        if line.trim_start().starts_with("\"\"\"") {
            text = line.trim_start().trim_start_matches("\"\"\"").to_string();
            let mut closed = text.trim_end().ends_with("\"\"\"") && !text.trim().is_empty();
            while !closed {
                match rl.readline("... ") {
                    Ok(l) => {
                        closed = l.trim_end().ends_with("\"\"\"");
                        text.push('\n');
                        text.push_str(&l);
                    }
                    Err(ReadlineError::Interrupted) => {
                        text.clear();
                        break;
                    }
                    Err(_) => return Ok(output::EXIT_OK),
                }
            }
            text = text
                .trim_end()
                .trim_end_matches("\"\"\"")
                .trim()
                .to_string();
        }
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(trimmed);
        if is_exit_word(trimmed) {
            break;
        }
        if let Some(cmd) = trimmed.strip_prefix('/') {
            let mut parts = cmd.splitn(3, char::is_whitespace);
            match parts.next().unwrap_or("") {
                "bye" | "exit" | "quit" => break,
                "clear" => {
                    history.clear();
                    eprintln!("{}", c.dim("history cleared"));
                }
                "help" | "?" => eprintln!("{HELP}"),
                "show" => eprintln!(
                    "temperature {} · top_p {:?} · top_k {:?} · min_p {:?} · repetition_penalty {} · max_tokens {:?} · seed {:?}\nsystem: {}",
                    params.temperature, params.top_p, params.top_k, params.min_p, params.repetition_penalty, params.max_tokens, params.seed,
                    system.as_deref().unwrap_or("(template default)")
                ),
                "set" => {
                    let key = parts.next().unwrap_or("");
                    let val = parts.next().unwrap_or("").trim();
                    match set(&mut params, &mut system, key, val) {
                        Ok(msg) => {
                            if key == "system" {
                                history.clear();
                            }
                            eprintln!("{}", c.dim(&msg));
                        }
                        Err(e) => eprintln!("{e}"),
                    }
                }
                other => eprintln!("unknown command '/{other}' (see /help)"),
            }
            continue;
        }

        history.push(ChatMessage {
            role: "user".into(),
            content: trimmed.to_string(),
            parts: Vec::new(),
        });
        let build = |h: &[ChatMessage]| {
            if use_template {
                let mut msgs = Vec::new();
                if let Some(s) = &system {
                    msgs.push(ChatMessage {
                        role: "system".into(),
                        content: s.clone(),
                        parts: Vec::new(),
                    });
                }
                msgs.extend_from_slice(h);
                Prompt::Chat(msgs)
            } else {
                Prompt::Text(trimmed.to_string())
            }
        };
        // Keep the conversation inside the context: drop the oldest turns.
        let ctx = model.info().context_length;
        while history.len() > 1 {
            match model.count_tokens(&build(&history)) {
                Ok(n) if n + 256 > ctx => {
                    history.drain(..2.min(history.len() - 1));
                }
                _ => break,
            }
        }
        flag.store(false, Ordering::SeqCst);
        let mut in_reasoning = false;
        let result = model.generate(&build(&history), &params, &mut |d| {
            let mut out = std::io::stdout().lock();
            match d {
                Delta::Content(s) => {
                    if in_reasoning {
                        in_reasoning = false;
                        let _ = out.write_all(b"\n");
                    }
                    let _ = out.write_all(s.as_bytes());
                }
                Delta::Reasoning(s) if !a.no_reasoning => {
                    in_reasoning = true;
                    let _ = out.write_all(c.dim(s).as_bytes());
                }
                Delta::Reasoning(_) => {}
            }
            let _ = out.flush();
            if flag.load(Ordering::SeqCst) {
                Flow::Stop
            } else {
                Flow::Continue
            }
        });
        println!();
        match result {
            Ok(o) => {
                if o.finish_reason == FinishReason::Cancelled {
                    eprintln!("{}", c.dim("[stopped]"));
                }
                if use_template {
                    history.push(ChatMessage {
                        role: "assistant".into(),
                        content: o.content,
                        parts: Vec::new(),
                    });
                } else {
                    history.clear();
                }
            }
            Err(e) => {
                history.pop();
                eprintln!("tanto run: error: {e}");
            }
        }
    }
    Ok(output::EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_words_end_the_chat_only_alone() {
        assert!(is_exit_word("exit"));
        assert!(is_exit_word("QUIT"));
        assert!(!is_exit_word("exit now"));
        assert!(!is_exit_word("q"));
    }
}
