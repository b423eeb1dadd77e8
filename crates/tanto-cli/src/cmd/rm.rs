//! `tanto rm MODEL[@REV] [-f] [--json]`
//!
//! `MODEL` removes the whole repo from the hub cache (and its lock folder);
//! `MODEL@REV` removes only that snapshot, the refs pointing at it, and the
//! blobs no other snapshot uses. Fuzzy matches and present lock files need
//! confirmation (a prompt on a TTY, else `-f`). Workspaces are never deleted.
//!
//! `--json` answers carry mlx-knife's `data` fields on every outcome,
//! errors included (`action` `ambiguous` / `unknown`; `model` is the resolved
//! name, `null` when nothing resolved).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use tanto_core::error::{ErrorType, TantoError};
use tanto_core::resolve::{self, Location, Stores};

use crate::output::{self, outln, CliError, CmdResult};
use tanto_core::resolve::cache::is_within;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model spec (org/name, fuzzy name, or name@rev for one revision)
    pub model: String,
    /// Do not ask: delete even for fuzzy matches or when lock files are present
    #[arg(short, long)]
    pub force: bool,
    /// Print the JSON envelope
    #[arg(long)]
    pub json: bool,
}

fn confirm(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// mlx-knife's `data` fields, present on every answer (and on errors):
/// `model, action, message, requires_confirmation, matches, lock_files_cleaned`.
fn rm_data(model: Option<&str>, action: &str, message: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("model".into(), json!(model));
    m.insert("action".into(), json!(action));
    m.insert("message".into(), json!(message));
    m.insert("requires_confirmation".into(), json!(false));
    m.insert("matches".into(), json!([]));
    m.insert("lock_files_cleaned".into(), json!(0));
    m
}

/// Lock paths relative to the hub cache (`.locks/models--org--name/x.lock`).
fn rel_locks(locks: &[PathBuf], cache: &Path) -> Vec<String> {
    locks
        .iter()
        .map(|l| l.strip_prefix(cache).unwrap_or(l).display().to_string())
        .collect()
}

/// Give an error without data mlx-knife's error `data`: action `ambiguous`
/// (with the matches) or `unknown`, `model` null (nothing resolved).
fn with_error_data(e: CliError) -> CliError {
    if e.data.is_some() {
        return e;
    }
    let ambiguous = e.error.kind == ErrorType::AmbiguousMatch;
    let mut d = rm_data(
        None,
        if ambiguous { "ambiguous" } else { "unknown" },
        &e.error.message,
    );
    if let Some(m) = e.error.details.get("matches") {
        d.insert("matches".into(), m.clone());
    }
    let data = Value::Object(d);
    e.with_data(data)
}

pub fn run(args: Args) -> CmdResult {
    let data = execute(&args).map_err(with_error_data)?;
    if args.json {
        output::print_json(&output::envelope_ok("rm", data));
    } else {
        render_human(&data);
    }
    Ok(output::EXIT_OK)
}

pub fn render_human(data: &Value) {
    outln(&format!(
        "rm: {}",
        data["message"].as_str().unwrap_or("deleted")
    ));
}

/// Resolve, confirm and delete; the answer's `data`.
fn execute(args: &Args) -> Result<Value, CliError> {
    let json = args.json;
    let stores = Stores::from_env();
    if !stores.cache.is_dir() {
        return Err(TantoError::new(
            ErrorType::ModelNotFound,
            format!(
                "Hub cache not found at {}",
                tanto_core::paths::redact_home(&stores.cache)
            ),
        )
        .into());
    }
    let resolved = resolve::resolve(&args.model, &stores)?;
    let (repo, snapshot, pinned) = match &resolved.location {
        Location::Cache {
            repo,
            snapshot,
            pinned,
        } => (repo.clone(), snapshot.clone(), *pinned),
        Location::Folder { dir, .. } => {
            let e = TantoError::new(
                ErrorType::WorkspaceModel,
                format!(
                    "'{}' is a workspace, not a cache model; tanto never deletes workspaces",
                    resolved.display_name
                ),
            )
            .with_hint(format!(
                "delete the folder yourself: rm -rf {}",
                dir.display()
            ));
            let d = rm_data(Some(&dir.display().to_string()), "unknown", &e.message);
            return Err(CliError::from(e).with_data(Value::Object(d)));
        }
        Location::File { file } => {
            let e = TantoError::new(
                ErrorType::WorkspaceModel,
                format!(
                    "'{}' is a file outside the cache; tanto does not delete it",
                    file.display()
                ),
            );
            let d = rm_data(Some(&file.display().to_string()), "unknown", &e.message);
            return Err(CliError::from(e).with_data(Value::Object(d)));
        }
    };
    if !is_within(&repo.dir, &stores.cache) {
        return Err(output::internal(format!(
            "refusing to delete {}: not inside the hub cache",
            repo.dir.display()
        ))
        .into());
    }

    let locks = repo.lock_files(&stores.cache);
    let what = if pinned {
        let c = snapshot.as_ref().map(|s| s.commit.as_str()).unwrap_or("");
        format!("{}@{}", repo.repo_id, &c[..c.len().min(8)])
    } else {
        repo.repo_id.clone()
    };
    if !args.force {
        if !locks.is_empty() {
            let q = format!(
                "'{}' has {} lock file(s) (a download may be running). Delete anyway?",
                repo.repo_id,
                locks.len()
            );
            if json || !confirm(&q) {
                let e = TantoError::new(
                    ErrorType::LocksPresent,
                    format!("Model '{}' has active lock files", repo.repo_id),
                )
                .with_hint("wait for the download to finish, or use -f to delete anyway")
                .with_detail("locks_detected", true)
                .with_detail(
                    "lock_files",
                    locks
                        .iter()
                        .map(|l| l.display().to_string())
                        .collect::<Vec<_>>(),
                );
                let mut d = rm_data(Some(&repo.repo_id), "unknown", &e.message);
                d.insert("locks_detected".into(), json!(true));
                d.insert("lock_files".into(), json!(rel_locks(&locks, &stores.cache)));
                return Err(CliError::from(e).with_data(Value::Object(d)));
            }
        }
        if resolved.fuzzy {
            let q = format!("'{}' matched '{what}'. Delete it?", args.model);
            if json {
                let mut d = rm_data(
                    Some(&repo.repo_id),
                    "requires_confirmation",
                    &format!(
                        "Would delete '{what}' (matched from '{}'); use -f to confirm",
                        args.model
                    ),
                );
                // `matches` stays empty: mlx-knife lists candidates only for
                // ambiguous specs; the one match is `model`.
                d.insert("requires_confirmation".into(), json!(true));
                return Ok(Value::Object(d));
            }
            if !confirm(&q) {
                return Err(TantoError::new(
                    ErrorType::RequiresConfirmation,
                    format!(
                        "'{}' only matched '{what}' fuzzily; nothing deleted",
                        args.model
                    ),
                )
                .with_hint(format!("use the full name or -f: tanto rm {what} -f"))
                .into());
            }
        }
    }

    let result = if pinned {
        let Some(s) = snapshot else {
            return Err(output::internal("pinned revision without snapshot").into());
        };
        repo.remove_revision(&s.commit).map(|removed| {
            let (blobs, refs) = (removed.blobs, removed.refs);
            // The repo goes entirely when its last snapshot is gone, through
            // the cache owner (inside-cache check, its `.locks` folder too).
            let last = repo.snapshots().is_empty();
            if last {
                let _ = repo.remove_repo(&stores.cache);
            }
            let msg = format!(
                "Deleted {what} ({blobs} blob(s) freed{})",
                if last {
                    "; no revisions left, repo removed"
                } else {
                    ""
                }
            );
            let mut d = rm_data(Some(&repo.repo_id), "deleted", &msg);
            d.insert("commit_hash".into(), json!(s.commit));
            d.insert("blobs_removed".into(), json!(blobs));
            d.insert("refs_removed".into(), json!(refs));
            d.insert("repo_removed".into(), json!(last));
            d
        })
    } else {
        repo.remove_repo(&stores.cache).map(|cleaned| {
            let cleaned = rel_locks(&cleaned, &stores.cache);
            let mut d = rm_data(
                Some(&repo.repo_id),
                "deleted",
                &format!("Deleted entire model {}", repo.repo_id),
            );
            d.insert("lock_files_cleaned".into(), json!(cleaned.len()));
            d.insert("cleaned_lock_files".into(), json!(cleaned));
            d
        })
    };
    match result {
        Ok(d) => Ok(Value::Object(d)),
        Err(e) => {
            let kind = if e.kind() == std::io::ErrorKind::PermissionDenied {
                ErrorType::PermissionDenied
            } else {
                ErrorType::InternalError
            };
            Err(TantoError::new(kind, format!("Deletion failed: {e}")).into())
        }
    }
}
