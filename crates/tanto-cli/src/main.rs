//! tanto: manage, inspect, run and serve local AI models.
//!
//! A thin binary over the pipeline crates: argument parsing, output modes and
//! exit codes live here; every decision is tanto-core's.

mod cmd;
mod models;
mod output;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Serve models over an OpenAI-compatible HTTP API
    Serve(cmd::serve::Args),
    /// Download a model from the Hugging Face hub into the shared cache (resumable)
    Pull(cmd::hub::PullArgs),
    /// Copy a cached model into a self-contained workspace
    Clone(cmd::hub::CloneArgs),
    /// Write a repaired copy of a model (--repair-index)
    Convert(cmd::hub::ConvertArgs),
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
    std::process::exit(real_main());
}

fn real_main() -> i32 {
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
    match cli.command {
        None => {
            if cli.json {
                let e = tanto_core::error::TantoError::new(
                    tanto_core::error::ErrorType::ValidationError,
                    "No command specified",
                );
                return output::fail("tanto", true, &e);
            }
            let _ = Cli::command().print_help();
            output::EXIT_USAGE
        }
        Some(Command::List(a)) => cmd::list::run(a),
        Some(Command::Show(a)) => cmd::show::run(a),
        Some(Command::Health(a)) => cmd::health::run(a),
        Some(Command::Rm(a)) => cmd::rm::run(a),
        Some(Command::Run(a)) => cmd::run::run(a),
        Some(Command::Serve(a)) => cmd::serve::run(a),
        Some(Command::Pull(a)) => cmd::hub::pull(a),
        Some(Command::Clone(a)) => cmd::hub::clone(a),
        Some(Command::Convert(a)) => cmd::hub::convert(a),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "tanto", &mut std::io::stdout());
            output::EXIT_OK
        }
    }
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
            "error": {"type": "usage_error", "message": first},
        }));
    } else {
        let _ = e.print();
    }
    output::EXIT_USAGE
}
