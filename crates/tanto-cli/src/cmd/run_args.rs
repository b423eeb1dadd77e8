//! `tanto run`'s arguments, the prompt they make (words, `--prompt`,
//! standard input) and the plan they resolve to, shared by the text, the
//! `--audio` and the `--image` paths.

use std::io::{IsTerminal, Read};

use tanto_core::error::{ErrorType, TantoError};
use tanto_core::plan::LoadPlan;
use tanto_core::policy::{self, PolicyConfig, Request};
use tanto_core::resolve::Stores;
use tanto_core::{host, probe};

use crate::cmd::generation::GenerationArgs;
use crate::output::CliError;

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
    /// Ask a vision-language model about these images (PNG, JPEG, GIF, WebP; 20 MiB each);
    /// the prompt defaults to "Describe the image."
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "audio")]
    pub image: Vec<std::path::PathBuf>,
    /// With --image: images per model call, 1-5 (default: TANTO_VISION_CHUNK or 1)
    #[arg(long, requires = "image")]
    pub chunk: Option<usize>,
    /// With --image: leave EXIF (GPS, date, camera) out of the prompt and the metadata table
    #[arg(long, requires = "image")]
    pub no_exif: bool,
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

/// Resolve → probe → policy for `req`, before anything is read or loaded: a
/// pull of an exact `ORG/NAME` the cache lacks (unless `--no-pull`), the
/// fuzzy-match note and the policy's warnings on stderr; a block is the error.
pub(crate) fn plan_for(a: &Args, req: Request) -> Result<LoadPlan, CliError> {
    let stores = Stores::from_env();
    let resolved = crate::cmd::hub::resolve_or_pull(&a.model, &stores, !a.no_pull, a.json, "run")?;
    if resolved.fuzzy {
        eprintln!(
            "tanto run: note: '{}' matched {}",
            a.model, resolved.display_name
        );
    }
    let probe = probe::probe_resolved(&resolved);
    let (plan, decision) = policy::plan(&probe, req, &host::detect(), &PolicyConfig::from_env())?;
    for w in &decision.warnings {
        eprintln!("tanto run: warning: {w}");
    }
    Ok(plan)
}
