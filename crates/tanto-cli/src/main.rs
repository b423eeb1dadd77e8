//! tanto: manage, inspect, run and serve local AI models.
//!
//! A thin binary over the pipeline crates: argument parsing, output modes and
//! exit codes live here; every decision is tanto-core's.

mod cmd;
mod models;
mod output;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// mimalloc: `list` and the servers make many small allocations from several
/// threads, where glibc's malloc spends a good share of the time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Manage, inspect, run and serve local AI models.
#[derive(Parser, Debug)]
#[command(name = "tanto", disable_version_flag = true, max_term_width = 100)]
struct Cli {
    /// Print the version (with --json: the envelope with system facts)
    #[arg(short = 'V', long = "version", global = false)]
    version: bool,
    /// JSON output (with --version)
    #[arg(long, global = false)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List models in the hub cache and the workspace home
    #[command(alias = "ls")]
    List(cmd::list::Args),
    /// Show one model: format, capabilities, health, and (--explain) the policy trail
    Show(cmd::show::Args),
    /// Check model files for completeness and consistency
    Health(cmd::health::Args),
    /// Remove a model (or one revision) from the hub cache
    Rm(cmd::rm::Args),
    /// Run a model: one-shot prompt, piped input, or interactive chat
    Run(cmd::run::Args),
    /// Embed texts with an embedding model (JSONL records, or --json)
    Embed(cmd::embed::Args),
    /// Serve models over an OpenAI-compatible HTTP API
    #[command(alias = "server")]
    Serve(cmd::serve::Args),
    /// Download a model from the Hugging Face hub into the shared cache (resumable)
    Pull(cmd::hub::PullArgs),
    /// Copy a cached model into a self-contained workspace
    Clone(cmd::hub::CloneArgs),
    /// Write a repaired copy of a model (--repair-index)
    Convert(cmd::hub::ConvertArgs),
    /// Publish a model folder to the Hugging Face hub in one commit
    Push(cmd::push::Args),
    /// List the models a running `tanto serve` has loaded
    Ps(cmd::ps::Args),
    /// Write a deployment for another engine (vLLM) that serves a cached model
    #[command(subcommand)]
    Deploy(cmd::deploy::Target),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
}

fn main() {
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE disposition at start-up, before any
    // thread exists, so `tanto list | head` ends quietly like other Unix tools.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A panic is a bug, but scripts still get mlx-knife's envelope
    // (`InternalError`) and exit 1; the panic message stays on stderr.
    let code = std::panic::catch_unwind(real_main).unwrap_or_else(|_| {
        if std::env::args().any(|a| a == "--json") {
            let e = tanto_core::error::TantoError::new(
                tanto_core::error::ErrorType::InternalError,
                "internal error (a bug in tanto; details on stderr)",
            );
            output::print_json(&output::envelope_err(
                None,
                serde_json::json!({"type": "InternalError", "message": e.message, "tanto_type": e.kind.as_str()}),
                None,
            ));
        }
        output::EXIT_ERROR
    });
    std::process::exit(code);
}

impl Command {
    /// The envelope's `command` name and whether the user asked for JSON.
    fn meta(&self) -> (&'static str, bool) {
        match self {
            Command::List(a) => ("list", a.json),
            Command::Show(a) => ("show", a.json),
            Command::Health(a) => ("health", a.json),
            Command::Rm(a) => ("rm", a.json),
            Command::Run(a) => ("run", a.json),
            Command::Embed(a) => ("embed", a.json),
            Command::Serve(_) => ("serve", false),
            Command::Pull(a) => ("pull", a.json),
            Command::Clone(a) => ("clone", a.json),
            Command::Convert(a) => ("convert", a.json),
            Command::Push(a) => ("push", a.json),
            Command::Ps(a) => ("ps", a.json),
            Command::Deploy(cmd::deploy::Target::Vllm(a)) => ("deploy", a.json),
            Command::Completions { .. } => ("completions", false),
        }
    }
}

/// mlx-knife's variables, read where tanto has the same setting under a
/// `TANTO_*` name; the `TANTO_*` variable wins when both are set.
const ENV_FALLBACKS: &[(&str, &str)] = &[
    ("TANTO_HOST", "MLXK2_HOST"),
    ("TANTO_PORT", "MLXK2_PORT"),
    ("TANTO_LOG_LEVEL", "MLXK2_LOG_LEVEL"),
    ("TANTO_LOG_JSON", "MLXK2_LOG_JSON"),
    ("TANTO_MODEL", "MLXK2_PRELOAD_MODEL"),
    ("TANTO_MAX_TOKENS", "MLXK2_MAX_TOKENS"),
];

/// Copy each set `MLXK2_*` fallback onto its unset `TANTO_*` name. Runs
/// first in `main`, before any thread exists.
fn apply_env_fallbacks() {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    for (tanto, mlxk) in ENV_FALLBACKS {
        if !set(tanto) && set(mlxk) {
            if let Some(v) = std::env::var_os(mlxk) {
                std::env::set_var(tanto, v);
            }
        }
    }
}

fn real_main() -> i32 {
    apply_env_fallbacks();
    let argv: Vec<String> = std::env::args().collect();
    let wants_json = argv.iter().any(|a| a == "--json");
    let matches = match Cli::command().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => return usage_error(e, wants_json),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return usage_error(e, wants_json),
    };
    if cli.version {
        return cmd::version::run(cli.json);
    }
    let Some(command) = cli.command else {
        if cli.json {
            let e = tanto_core::error::TantoError::new(
                tanto_core::error::ErrorType::ValidationError,
                "No command specified",
            );
            return output::report(None, true, &e.into());
        }
        let _ = Cli::command().print_help();
        return output::EXIT_USAGE;
    };
    let (name, json) = command.meta();
    let result = match command {
        Command::List(a) => cmd::list::run(a),
        Command::Show(a) => cmd::show::run(a),
        Command::Health(a) => cmd::health::run(a),
        Command::Rm(a) => cmd::rm::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Embed(a) => cmd::embed::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Pull(a) => cmd::hub::pull(a),
        Command::Clone(a) => cmd::hub::clone(a),
        Command::Convert(a) => cmd::hub::convert(a),
        Command::Push(a) => cmd::push::run(a),
        Command::Ps(a) => cmd::ps::run(a),
        Command::Deploy(t) => cmd::deploy::run(t),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tanto", &mut std::io::stdout());
            Ok(output::EXIT_OK)
        }
    };
    result.unwrap_or_else(|e| output::report(Some(name), json, &e))
}

fn usage_error(e: clap::Error, json: bool) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return output::EXIT_OK;
    }
    if json {
        let msg = e.to_string();
        let first = msg
            .lines()
            .next()
            .unwrap_or("usage error")
            .trim_start_matches("error: ");
        output::print_json(&serde_json::json!({
            "status": "error",
            "command": null,
            "data": null,
            "error": {"type": "CommandError", "message": first, "tanto_type": "usage_error"},
        }));
    } else {
        let _ = e.print();
    }
    output::EXIT_USAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlxk2_variables_fill_unset_tanto_ones_only() {
        // The only test touching these two pairs.
        std::env::remove_var("TANTO_MAX_TOKENS");
        std::env::set_var("MLXK2_MAX_TOKENS", "77");
        std::env::set_var("TANTO_PORT", "9001");
        std::env::set_var("MLXK2_PORT", "9002");
        apply_env_fallbacks();
        assert_eq!(std::env::var("TANTO_MAX_TOKENS").as_deref(), Ok("77"));
        assert_eq!(std::env::var("TANTO_PORT").as_deref(), Ok("9001"));
    }
}
