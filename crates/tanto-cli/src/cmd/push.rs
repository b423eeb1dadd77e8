//! `tanto push DIR ORG/NAME`: publish a model folder to the hub in one commit
//! (tanto-hub's `push`). `--check-only` runs the health check and lists what
//! would go up, without the network; `--dry-run` asks the hub what would
//! change. An unhealthy folder is refused before anything is sent.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tanto_core::error::{ErrorType, TantoError};
use tanto_core::probe;
use tanto_core::resolve::{self, Stores};
use tanto_hub::{HubError, LocalFile, PushOptions, PushProgress};

use crate::output::{self, errln, human_size, outln, CliError, CmdResult};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model folder (or a workspace name under $TANTO_WORKSPACE_HOME)
    pub dir: PathBuf,
    /// The hub repository, ORG/NAME
    pub repo_id: String,
    /// Create the repository if it does not exist (private with --private)
    #[arg(long)]
    pub create: bool,
    /// Make a repository created by --create private
    #[arg(long)]
    pub private: bool,
    /// Branch to commit to (created with --create when missing)
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Commit message
    #[arg(long, visible_alias = "commit", value_name = "MESSAGE")]
    pub commit_message: Option<String>,
    /// Check the folder and list what would be uploaded; no network
    #[arg(long, conflicts_with = "dry_run")]
    pub check_only: bool,
    /// Ask the hub what would change; upload nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the JSON envelope
    #[arg(long)]
    pub json: bool,
}

fn hub_err(e: &HubError) -> TantoError {
    let mut t = TantoError::new(e.error_type(), e.to_string());
    t = match e {
        HubError::RepoNotFound { .. } => {
            t.with_hint("add --create to create it (with --private for a private repo)")
        }
        HubError::RevisionNotFound { .. } => t.with_hint("add --create to create the branch"),
        HubError::Unauthorized { .. } | HubError::MissingToken => {
            t.with_hint("use a token with write access to this repo: export HF_TOKEN=hf_…")
        }
        e if e.is_resumable() => {
            t.with_hint("run the same push again: what the hub already has is not sent twice")
        }
        _ => t,
    };
    t
}

/// DIR as given when it is a folder, else a workspace name.
fn locate(dir: &Path) -> Result<PathBuf, TantoError> {
    if dir.is_dir() {
        return Ok(dir.to_path_buf());
    }
    let name = dir.to_string_lossy();
    if !name.contains('/') {
        if let Some(home) = tanto_core::paths::workspace_home_configured() {
            let p = home.join(&*name);
            if p.is_dir() {
                return Ok(p);
            }
        }
    }
    Err(TantoError::new(
        ErrorType::ValidationError,
        format!("'{}' is not a folder", dir.display()),
    )
    .with_hint("push takes a model folder: tanto push ./my-model ORG/NAME"))
}

/// The folder's health, from the probe every command uses.
fn health(dir: &Path) -> (bool, Option<String>, Vec<serde_json::Value>) {
    let abs = std::fs::canonicalize(dir).unwrap_or(dir.to_path_buf());
    match resolve::resolve(&abs.display().to_string(), &Stores::from_env()) {
        Ok(r) => {
            let p = probe::probe_resolved(&r);
            let problems = p
                .health
                .problems
                .iter()
                .map(|pr| json!({"code": pr.code, "message": pr.message}))
                .collect();
            (p.health.healthy, p.health.reason.clone(), problems)
        }
        Err(e) => (false, Some(e.message), vec![]),
    }
}

/// One total bar on a TTY: bytes of every file sent so far.
struct Bar {
    pb: ProgressBar,
    done: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl PushProgress for Bar {
    fn upload_started(&self, files: &[LocalFile]) {
        self.pb.set_length(files.iter().map(|f| f.size).sum());
    }
    fn file_progress(&self, file: &str, sent: u64, _total: u64) {
        let prev = self
            .done
            .lock()
            .map(|mut d| d.insert(file.to_string(), sent).unwrap_or(0))
            .unwrap_or(0);
        self.pb.inc(sent.saturating_sub(prev));
        self.pb.set_message(file.to_string());
    }
}

pub fn run(a: Args) -> CmdResult {
    let json = a.json;
    let dir = locate(&a.dir)?;
    let (healthy, reason, problems) = health(&dir);
    if a.check_only {
        let files = tanto_hub::local_files(&dir).map_err(|e| hub_err(&e))?;
        let total: u64 = files.iter().map(|f| f.size).sum();
        if json {
            output::print_json(&output::envelope_ok(
                "push",
                json!({
                    "repo_id": a.repo_id,
                    "branch": a.branch,
                    "check_only": true,
                    "local_dir": std::fs::canonicalize(&dir).unwrap_or(dir.clone()),
                    "workspace_health": {
                        "healthy": healthy,
                        "reason": reason,
                        "problems": problems,
                        "files_count": files.len(),
                        "total_bytes": total,
                    },
                    "files": files.iter().map(|f| json!({"path": f.path, "size": f.size, "sha256": f.sha256})).collect::<Vec<_>>(),
                    "message": "Check-only: no upload performed.",
                }),
            ));
        } else {
            outln(&format!(
                "push --check-only: {} — {} file(s), {}; {}",
                dir.display(),
                files.len(),
                human_size(total),
                if healthy {
                    "healthy".to_string()
                } else {
                    format!("unhealthy: {}", reason.clone().unwrap_or_default())
                }
            ));
            for f in &files {
                outln(&format!("  {:>10}  {}", human_size(f.size), f.path));
            }
        }
        return Ok(if healthy { output::EXIT_OK } else { 1 });
    }
    if !healthy {
        return Err(TantoError::new(
            ErrorType::UnhealthyModel,
            format!(
                "{} is not healthy: {}; nothing was uploaded",
                dir.display(),
                reason.unwrap_or_default()
            ),
        )
        .with_hint(format!(
            "see every problem with: tanto push {} {} --check-only",
            a.dir.display(),
            a.repo_id
        ))
        .into());
    }
    let mut opts = PushOptions::new(&dir, a.repo_id.trim());
    opts.branch = Some(a.branch.clone());
    opts.create = a.create;
    opts.private = a.private;
    opts.commit_message = a.commit_message.clone();
    opts.dry_run = a.dry_run;
    let bar = (std::io::stderr().is_terminal() && !json).then(|| {
        let pb = ProgressBar::new(0);
        pb.set_style(
            ProgressStyle::with_template(
                "{msg:30!} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    });
    if let Some(pb) = &bar {
        opts.progress = Some(Arc::new(Bar {
            pb: pb.clone(),
            done: Default::default(),
        }));
    }
    let report = tanto_hub::push(&opts);
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let r = report.map_err(|e| {
        CliError::from(hub_err(&e)).with_data(json!({
            "repo_id": a.repo_id, "branch": a.branch, "message": e.to_string(),
        }))
    })?;
    let summary = format!("+{} ~{}", r.added.len(), r.modified.len());
    let message = if r.dry_run {
        if r.added.is_empty() && r.modified.is_empty() {
            "Dry-run: no changes".to_string()
        } else {
            format!("Dry-run: {summary}")
        }
    } else if r.commit.is_none() {
        "No files changed; skipped empty commit.".to_string()
    } else {
        format!(
            "Committed {} file(s) ({summary}).",
            r.added.len() + r.modified.len()
        )
    };
    if json {
        output::print_json(&output::envelope_ok(
            "push",
            json!({
                "repo_id": r.repo_id,
                "branch": r.branch,
                "repo_url": format!("{}/{}", tanto_hub::HubConfig::from_env().endpoint, r.repo_id),
                "commit_sha": r.commit,
                "commit_url": r.commit_url,
                "dry_run": r.dry_run,
                "no_changes": r.added.is_empty() && r.modified.is_empty(),
                "uploaded_files_count": if r.dry_run { 0 } else { r.added.len() + r.modified.len() },
                "change_summary": {"added": r.added.len(), "modified": r.modified.len(), "deleted": 0},
                "added_files": r.added,
                "modified_files": r.modified,
                "remote_only_files": r.remote_only,
                "unchanged_files_count": r.unchanged,
                "local_files_count": r.local_files,
                "created_repo": r.created_repo,
                "created_branch": r.created_branch,
                "would_create_repo": r.would_create_repo,
                "would_create_branch": r.would_create_branch,
                "lfs_uploaded": r.lfs_uploaded,
                "lfs_already_present": r.lfs_already_present,
                "bytes_uploaded": r.bytes_uploaded,
                "message": message,
            }),
        ));
    } else {
        let what = match &r.commit {
            Some(c) => format!(
                "commit {} ({summary}, {} uploaded)",
                &c[..c.len().min(7)],
                human_size(r.bytes_uploaded)
            ),
            None if r.dry_run => format!(
                "dry-run: {summary}{}",
                if r.would_create_repo {
                    " (create repo)"
                } else if r.would_create_branch {
                    " (create branch)"
                } else {
                    ""
                }
            ),
            None => "no changes".to_string(),
        };
        outln(&format!("push: {}@{} — {what}", r.repo_id, r.branch));
        if !r.remote_only.is_empty() {
            errln(&format!(
                "push: note: {} file(s) on the hub are not in the folder and were left there",
                r.remote_only.len()
            ));
        }
    }
    Ok(output::EXIT_OK)
}
