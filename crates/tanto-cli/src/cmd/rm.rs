//! `tanto rm MODEL[@REV] [-f] [--json]`
//!
//! `MODEL` removes the whole repo from the hub cache (and its lock folder);
//! `MODEL@REV` removes only that snapshot, the refs pointing at it, and the
//! blobs no other snapshot uses. Fuzzy matches and present lock files need
//! confirmation (a prompt on a TTY, else `-f`). Workspaces are never deleted.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use tanto_core::error::{ErrorType, TantoError};
use tanto_core::resolve::{self, Location, Stores};
use tanto_core::store::CacheRepo;

use crate::models::is_within;
use crate::output::{self, outln};

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

/// Blob files a snapshot's symlinks point to (canonical paths).
fn blobs_of(snapshot: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![snapshot.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            if m.file_type().is_symlink() {
                if let Ok(t) = fs::canonicalize(&p) {
                    out.insert(t);
                }
            } else if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// Remove one snapshot and what only it uses. Returns (removed blobs, removed refs).
fn remove_revision(repo: &CacheRepo, commit: &str) -> std::io::Result<(usize, Vec<String>)> {
    let snaps = repo.snapshots();
    let target = repo.dir.join("snapshots").join(commit);
    let mine = blobs_of(&target);
    let mut others = BTreeSet::new();
    for s in snaps.iter().filter(|s| s.commit != commit) {
        others.extend(blobs_of(&s.path));
    }
    let blobs_dir = fs::canonicalize(repo.dir.join("blobs")).ok();
    fs::remove_dir_all(&target)?;
    let mut removed = 0;
    for b in mine.difference(&others) {
        // Only ever delete inside this repo's blobs/ folder.
        if blobs_dir.as_ref().is_some_and(|bd| b.starts_with(bd)) {
            fs::remove_file(b)?;
            removed += 1;
        }
    }
    let mut refs = Vec::new();
    for (name, c) in repo.refs() {
        if c == commit {
            fs::remove_file(repo.dir.join("refs").join(&name))?;
            refs.push(name);
        }
    }
    Ok((removed, refs))
}

pub fn run(args: Args) -> i32 {
    let json = args.json;
    let stores = Stores::from_env();
    if !stores.cache.is_dir() {
        let e = TantoError::new(
            ErrorType::ModelNotFound,
            format!(
                "Hub cache not found at {}",
                tanto_core::paths::redact_home(&stores.cache)
            ),
        );
        return output::fail("rm", json, &e);
    }
    let resolved = match resolve::resolve(&args.model, &stores) {
        Ok(r) => r,
        Err(e) => return output::fail("rm", json, &e),
    };
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
            return output::fail("rm", json, &e);
        }
        Location::File { file } => {
            let e = TantoError::new(
                ErrorType::WorkspaceModel,
                format!(
                    "'{}' is a file outside the cache; tanto does not delete it",
                    file.display()
                ),
            );
            return output::fail("rm", json, &e);
        }
    };
    if !is_within(&repo.dir, &stores.cache) {
        let e = output::internal(format!(
            "refusing to delete {}: not inside the hub cache",
            repo.dir.display()
        ));
        return output::fail("rm", json, &e);
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
                return output::fail("rm", json, &e);
            }
        }
        if resolved.fuzzy {
            let q = format!("'{}' matched '{what}'. Delete it?", args.model);
            if json {
                output::print_json(&output::envelope_ok(
                    "rm",
                    json!({
                        "model": repo.repo_id,
                        "action": "requires_confirmation",
                        "message": format!("Would delete '{what}' (matched from '{}'); use -f to confirm", args.model),
                        "requires_confirmation": true,
                        "matches": [repo.repo_id],
                    }),
                ));
                return output::EXIT_OK;
            }
            if !confirm(&q) {
                let e = TantoError::new(
                    ErrorType::RequiresConfirmation,
                    format!(
                        "'{}' only matched '{what}' fuzzily; nothing deleted",
                        args.model
                    ),
                )
                .with_hint(format!("use the full name or -f: tanto rm {what} -f"));
                return output::fail("rm", json, &e);
            }
        }
    }

    let result = if pinned {
        let Some(s) = snapshot else {
            return output::fail(
                "rm",
                json,
                &output::internal("pinned revision without snapshot"),
            );
        };
        remove_revision(&repo, &s.commit).map(|(blobs, refs)| {
            // The repo goes entirely when its last snapshot is gone.
            let last = repo.snapshots().is_empty();
            if last {
                let _ = fs::remove_dir_all(&repo.dir);
            }
            json!({
                "model": repo.repo_id,
                "commit_hash": s.commit,
                "action": "deleted",
                "message": format!("Deleted {what} ({blobs} blob(s) freed{})", if last { "; no revisions left, repo removed" } else { "" }),
                "blobs_removed": blobs,
                "refs_removed": refs,
                "repo_removed": last,
            })
        })
    } else {
        fs::remove_dir_all(&repo.dir).map(|_| {
            let mut cleaned = Vec::new();
            if let Some(n) = repo.dir.file_name() {
                let ld = stores.cache.join(".locks").join(n);
                if ld.is_dir() && fs::remove_dir_all(&ld).is_ok() {
                    cleaned = locks.iter().map(|l| l.display().to_string()).collect();
                }
            }
            json!({
                "model": repo.repo_id,
                "action": "deleted",
                "message": format!("Deleted entire model {}", repo.repo_id),
                "lock_files_cleaned": cleaned,
            })
        })
    };
    match result {
        Ok(data) => {
            if json {
                output::print_json(&output::envelope_ok("rm", data));
            } else {
                outln(&format!(
                    "rm: {}",
                    data["message"].as_str().unwrap_or("deleted")
                ));
            }
            output::EXIT_OK
        }
        Err(e) => {
            let kind = if e.kind() == std::io::ErrorKind::PermissionDenied {
                ErrorType::PermissionDenied
            } else {
                ErrorType::InternalError
            };
            output::fail(
                "rm",
                json,
                &TantoError::new(kind, format!("Deletion failed: {e}")),
            )
        }
    }
}
