//! `tanto pull`, `tanto clone`, `tanto convert --repair-index`: thin UI over tanto-hub.
//!
//! `pull` first looks in the cache (tanto-core's resolve + probe): a cached
//! snapshot the probe calls healthy is `already_exists`, an unhealthy one needs
//! `--force` (`requires_confirmation`), both without contacting the hub — as
//! mlx-knife 2.0.8 does. An interrupted pull is resumed without asking.
//! `--json` errors carry mlx-knife's `data` for each command.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use tanto_core::error::{ErrorType, TantoError};
use tanto_core::naming;
use tanto_core::probe;
use tanto_core::resolve::cache::PendingPull;
use tanto_core::resolve::{self, Location, Stores};
use tanto_hub::{FileStatus, HubError, PlannedFile, Progress, PullOptions};

use crate::models::Entry;
use crate::output::{self, errln, human_size, outln, CliError, CmdResult};

fn hub_err(e: &HubError, resume: Option<&str>) -> TantoError {
    let kind = e.error_type();
    let mut t = TantoError::new(kind, e.to_string());
    if let (true, Some(cmd)) = (e.is_resumable(), resume) {
        t = t.with_hint(format!("resume with: {cmd}"));
    }
    t
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Repository id ORG/NAME, optionally @REV (branch, tag or commit)
    pub model: String,
    /// Revision to download (branch, tag or commit); default main
    #[arg(long)]
    pub revision: Option<String>,
    /// Only files matching these globs (repeatable)
    #[arg(long)]
    pub include: Vec<String>,
    /// Skip files matching these globs (repeatable)
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Download even when the cached copy is unhealthy (re-fetches what is broken)
    #[arg(short, long, alias = "force-resume")]
    pub force: bool,
    /// Print the JSON envelope
    #[arg(long)]
    pub json: bool,
}

/// indicatif bars on a TTY; one quiet line per finished file otherwise.
struct Bars {
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    done: Mutex<HashMap<String, u64>>,
    quiet: bool,
}

impl Progress for Bars {
    fn pull_started(&self, commit: &str, files: &[PlannedFile]) {
        let sum: u64 = files.iter().filter_map(|f| f.size).sum();
        if let Some(t) = &self.total {
            t.set_length(sum);
            t.set_message(format!(
                "{} file(s) @ {}",
                files.len(),
                &commit[..commit.len().min(8)]
            ));
        } else if !self.quiet {
            errln(&format!(
                "pulling {} file(s), {} at {}",
                files.len(),
                human_size(sum),
                &commit[..commit.len().min(8)]
            ));
        }
    }
    fn file_started(&self, file: &str, total: Option<u64>, resumed_from: u64) {
        if let Some(m) = &self.multi {
            let pb = m.add(ProgressBar::new(total.unwrap_or(0)));
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg:30!} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.set_message(file.to_string());
            pb.set_position(resumed_from);
            if let Ok(mut b) = self.bars.lock() {
                b.insert(file.to_string(), pb);
            }
        } else if resumed_from > 0 && !self.quiet {
            errln(&format!(
                "resuming {file} from {}",
                human_size(resumed_from)
            ));
        }
    }
    fn file_progress(&self, file: &str, done: u64, _total: Option<u64>) {
        let prev = self
            .done
            .lock()
            .map(|mut d| d.insert(file.to_string(), done).unwrap_or(0))
            .unwrap_or(0);
        if let Some(t) = &self.total {
            t.inc(done.saturating_sub(prev));
        }
        if let Ok(b) = self.bars.lock() {
            if let Some(pb) = b.get(file) {
                pb.set_position(done);
            }
        }
    }
    fn file_finished(&self, file: &str, status: FileStatus) {
        if let Ok(mut b) = self.bars.lock() {
            if let Some(pb) = b.remove(file) {
                pb.finish_and_clear();
            }
        }
        if self.multi.is_none() && !self.quiet {
            let s = match status {
                FileStatus::Cached => "cached",
                FileStatus::Downloaded => "downloaded",
                FileStatus::Resumed => "resumed",
            };
            errln(&format!("  {s:<10} {file}"));
        }
    }
}

/// mlx-knife's `download_status` for a failed pull.
fn download_status(kind: ErrorType) -> &'static str {
    match kind {
        ErrorType::ValidationError => "error",
        ErrorType::AccessDenied | ErrorType::ModelNotFound => "access_denied",
        _ => "failed",
    }
}

/// A pull error with mlx-knife's `data` (`model` — null for an invalid
/// name —, `download_status`, `message`, `expanded_name`).
fn pull_error(model: Option<&str>, e: TantoError) -> CliError {
    let data = json!({
        "model": model,
        "download_status": download_status(e.kind),
        "message": e.message,
        "expanded_name": null,
    });
    CliError::from(e).with_data(data)
}

/// A hub failure as [`pull_error`]; when the hub could not be reached
/// (network down, offline mode) `data.preflight_warning` says so, as
/// mlx-knife's pre-flight check does.
fn pull_hub_error(model: &str, e: &HubError, resume: &str) -> CliError {
    let mut err = pull_error(Some(model), hub_err(e, Some(resume)));
    if matches!(e, HubError::Network { .. } | HubError::Offline { .. }) {
        if let Some(d) = err.data.as_deref_mut().and_then(|d| d.as_object_mut()) {
            d.insert(
                "preflight_warning".into(),
                json!(format!("Cannot reach the hub: {e}")),
            );
        }
    }
    err
}

/// What the cache already holds for a pull, decided by tanto-core's probe.
enum Cached {
    /// Not cached (or only an interrupted pull, which the pull resumes).
    No,
    Healthy {
        commit: String,
    },
    Unhealthy {
        commit: String,
        reason: String,
    },
}

/// Look `repo[@rev]` up in the cache without fuzzy matching.
fn cached_state(repo_id: &str, revision: Option<&str>, stores: &Stores) -> Cached {
    let spec = match revision {
        Some(r) => format!("{repo_id}@{r}"),
        None => repo_id.to_string(),
    };
    let Ok(r) = resolve::resolve(&spec, stores) else {
        return Cached::No;
    };
    let commit = match &r.location {
        Location::Cache {
            repo,
            snapshot: Some(s),
            ..
        } if !r.fuzzy && repo.repo_id.eq_ignore_ascii_case(repo_id) => s.commit.clone(),
        _ => return Cached::No,
    };
    let p = probe::probe_resolved(&r);
    if p.health.healthy {
        Cached::Healthy { commit }
    } else if p
        .health
        .problems
        .iter()
        .any(|pr| pr.code == "partial_download")
    {
        // The probe's own fix for an interrupted pull is to pull again.
        Cached::No
    } else {
        Cached::Unhealthy {
            commit,
            reason: p.health.reason.unwrap_or_default(),
        }
    }
}

/// Answer a pull from the cache alone (`already_exists` / `requires_confirmation`).
fn pull_from_cache(base: &str, state: Cached, json: bool, expanded: Option<&str>) -> CmdResult {
    let (status, message, commit, healthy) = match state {
        Cached::No => return Err(output::internal("pull_from_cache without a cached model").into()),
        Cached::Healthy { commit } => (
            "already_exists",
            format!("Model {base} already exists in cache"),
            commit,
            true,
        ),
        Cached::Unhealthy { commit, reason } => (
            "requires_confirmation",
            format!("{reason}. Use --force to download again or 'tanto rm {base}' to delete."),
            commit,
            false,
        ),
    };
    if json {
        output::print_json(&output::envelope_ok(
            "pull",
            json!({
                "model": base,
                "download_status": status,
                "message": message,
                "expanded_name": expanded,
                "commit_hash": commit,
                "health": health_word(healthy),
            }),
        ));
    } else if healthy {
        outln(&format!(
            "pull: {base}@{} is already in the cache and healthy; nothing to download",
            &commit[..commit.len().min(8)]
        ));
    } else {
        outln(&format!(
            "pull: {base}@{} is in the cache but unhealthy: {message}",
            &commit[..commit.len().min(8)]
        ));
    }
    Ok(output::EXIT_OK)
}

pub fn pull(a: PullArgs) -> CmdResult {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition; no handler code runs. A download
    // outlives its reader: `tanto pull X | head` must not kill it half-way,
    // so writes to a closed pipe become errors that the printers ignore.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let json = a.json;
    let (base, at_rev) = resolve::split_revision(a.model.trim());
    if let Err(m) = naming::validate_repo_id(base) {
        return Err(pull_error(
            None,
            TantoError::new(ErrorType::ValidationError, m)
                .with_hint("pull takes a full repository id: tanto pull ORG/NAME"),
        ));
    }
    // A short name is expanded against the cache first (never sent to the
    // hub as it is): a unique cached match becomes its repo id.
    let mut expanded: Option<String> = None;
    if !base.contains('/') {
        match resolve::resolve(base, &Stores::from_env()) {
            Ok(r) => {
                if let Location::Cache { repo, .. } = &r.location {
                    expanded = Some(repo.repo_id.clone());
                }
            }
            Err(e) if e.kind == ErrorType::AmbiguousMatch => {
                return Err(pull_error(Some(base), e));
            }
            Err(_) => {}
        }
        if expanded.is_none() {
            return Err(pull_error(
                None,
                TantoError::new(
                    ErrorType::ValidationError,
                    format!("'{base}' is not a repository id, and no cached model matches it"),
                )
                .with_hint("pull takes a full repository id: tanto pull ORG/NAME"),
            ));
        }
    }
    let base = expanded.as_deref().unwrap_or(base);
    if let (Some(full), false) = (&expanded, json) {
        errln(&format!(
            "pull: '{}' matched {full}",
            resolve::split_revision(a.model.trim()).0
        ));
    }
    let revision = a.revision.clone().or(at_rev.map(str::to_string));
    // Filters may ask for files the cached snapshot lacks: then always ask the hub.
    if !a.force && a.include.is_empty() && a.exclude.is_empty() {
        let state = cached_state(base, revision.as_deref(), &Stores::from_env());
        if !matches!(state, Cached::No) {
            return pull_from_cache(base, state, json, expanded.as_deref());
        }
    }
    let report = download(base, revision.clone(), &a.include, &a.exclude, json)?;
    // Probe what arrived and report its health.
    let stores = Stores::from_env();
    let health = resolve::resolve(&format!("{base}@{}", report.commit), &stores)
        .ok()
        .map(|r| probe::probe_resolved(&r));
    let (healthy, reason) = health
        .as_ref()
        .map(|p| {
            (
                p.health.healthy,
                if p.health.healthy {
                    p.runtime.reason.clone()
                } else {
                    p.health.reason.clone()
                },
            )
        })
        .unwrap_or((
            false,
            Some("could not probe the downloaded snapshot".into()),
        ));
    if json {
        output::print_json(&output::envelope_ok(
            "pull",
            json!({
                "model": base,
                "download_status": "success",
                "message": format!("Downloaded {} file(s) ({})", report.files.len(), human_size(report.bytes_downloaded)),
                "expanded_name": expanded,
                "commit_hash": report.commit,
                "revision": report.revision,
                "files": report.files,
                "bytes_downloaded": report.bytes_downloaded,
                "health": if healthy { "healthy" } else { "unhealthy" },
                "runtime_compatible": health.as_ref().map(|p| p.runtime.compatible),
                "reason": reason,
            }),
        ));
    } else {
        outln(&format!(
            "pull: {base}@{} — {} file(s), {} downloaded; {}",
            &report.commit[..report.commit.len().min(8)],
            report.files.len(),
            human_size(report.bytes_downloaded),
            if healthy {
                match &reason {
                    Some(r) => format!("healthy (not runnable here: {r})"),
                    None => "healthy".to_string(),
                }
            } else {
                format!("unhealthy: {}", reason.unwrap_or_default())
            }
        ));
    }
    Ok(output::EXIT_OK)
}

/// Pull `base` at `revision` into the hub cache with progress on stderr
/// (bars on a TTY, a line per file otherwise, nothing when `quiet`), Ctrl-C
/// leaving it resumable. Errors carry mlx-knife's pull `data`.
fn download(
    base: &str,
    revision: Option<String>,
    include: &[String],
    exclude: &[String],
    quiet: bool,
) -> Result<tanto_hub::PullReport, CliError> {
    let tty = std::io::stderr().is_terminal() && !quiet;
    let multi = tty.then(MultiProgress::new);
    let total = multi.as_ref().map(|m| {
        let pb = m.add(ProgressBar::new(0));
        pb.set_style(
            ProgressStyle::with_template("{msg:30!} {bar:30} {bytes}/{total_bytes} total")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    });
    let bars = Arc::new(Bars {
        multi,
        total,
        bars: Mutex::new(HashMap::new()),
        done: Mutex::new(HashMap::new()),
        quiet,
    });
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let c = cancel.clone();
        let _ = ctrlc::set_handler(move || c.store(true, Ordering::SeqCst));
    }
    let mut opts = PullOptions::new(base);
    opts.revision = revision.clone();
    opts.include = include.to_vec();
    opts.exclude = exclude.to_vec();
    opts.progress = Some(bars.clone());
    opts.cancel = Some(cancel);
    // The same command (and quoting) `list`/`health` print for the marker.
    let resume = PendingPull {
        repo_id: base.to_string(),
        revision: revision.clone().unwrap_or_else(|| "main".into()),
        commit: String::new(),
        files: Vec::new(),
        include: include.to_vec(),
        exclude: exclude.to_vec(),
        incomplete_blobs: Vec::new(),
    }
    .resume_command();
    let report = match tanto_hub::pull(&opts) {
        Ok(r) => r,
        Err(e) => {
            if let Some(t) = &bars.total {
                t.abandon();
            }
            return Err(pull_hub_error(base, &e, &resume));
        }
    };
    if let Some(t) = &bars.total {
        t.finish_and_clear();
    }
    Ok(report)
}

/// Resolve `spec`; when nothing in the cache or the workspaces matches, and
/// the spec is an exact `org/name[@rev]` (never a fuzzy name or a path), pull
/// it first, as `ollama run` does — unless `allow_pull` is off or the hub is
/// offline (`HF_HUB_OFFLINE`), which keep the not-found error. `cmd` names the
/// command in the one line that says a download starts.
pub fn resolve_or_pull(
    spec: &str,
    stores: &Stores,
    allow_pull: bool,
    quiet: bool,
    cmd: &str,
) -> Result<resolve::Resolved, CliError> {
    let err = match resolve::resolve(spec, stores) {
        Ok(r) => return Ok(r),
        Err(e) => e,
    };
    let (base, rev) = resolve::split_revision(spec.trim());
    let exact_id = base.matches('/').count() == 1
        && !base.starts_with(['.', '/', '~'])
        && naming::validate_repo_id(base).is_ok();
    if err.kind != ErrorType::ModelNotFound || !exact_id {
        return Err(err.into());
    }
    if !allow_pull {
        return Err(err
            .with_hint(format!(
                "pull it first: tanto pull {base} (--no-pull is set)"
            ))
            .into());
    }
    if tanto_hub::HubConfig::from_env().offline {
        return Err(err
            .with_hint(format!(
                "HF_HUB_OFFLINE is set, so tanto does not download it; unset it or run tanto pull {base} when online"
            ))
            .into());
    }
    if !quiet {
        errln(&format!(
            "tanto {cmd}: {base} is not in the cache; pulling it from the hub (--no-pull turns this off)"
        ));
    }
    let report = download(base, rev.map(str::to_string), &[], &[], quiet)?;
    Ok(resolve::resolve(
        &format!("{base}@{}", report.commit),
        stores,
    )?)
}

#[derive(clap::Args, Debug)]
pub struct CloneArgs {
    /// Model to copy (org/name, fuzzy name, name@rev); an exact org/name that
    /// is not in the cache is pulled into it first
    pub model: String,
    /// Target folder; default $TANTO_WORKSPACE_HOME/<name>
    pub target: Option<PathBuf>,
    /// Revision to clone (branch, tag or commit prefix)
    #[arg(long, visible_alias = "branch")]
    pub revision: Option<String>,
    /// Skip the health check of the written folder
    #[arg(long)]
    pub no_health_check: bool,
    /// Print only the target folder (or nothing with --json's errors)
    #[arg(short, long)]
    pub quiet: bool,
    /// Re-fetch what is broken when the cached copy is unhealthy, then clone
    #[arg(long)]
    pub force_resume: bool,
    /// Never download: clone only what the cache holds
    #[arg(long)]
    pub no_pull: bool,
    /// Print the JSON envelope
    #[arg(long)]
    pub json: bool,
}

fn default_target(name: &str) -> Result<PathBuf, TantoError> {
    let home = tanto_core::paths::workspace_home_configured().ok_or_else(|| {
        TantoError::new(
            ErrorType::ValidationError,
            "no target folder given and TANTO_WORKSPACE_HOME is not set",
        )
        .with_hint("pass a target: tanto clone MODEL ./my-model")
    })?;
    let short = name.rsplit('/').next().unwrap_or(name);
    Ok(home.join(short))
}

/// Health of a freshly written folder, as `(healthy, reason)`: mlx-knife's
/// `health`/`health_reason` of clone and `health_status`/`health_reason` of convert.
fn folder_health(dir: &Path, stores: &Stores) -> (bool, String) {
    let spec = std::fs::canonicalize(dir)
        .unwrap_or(dir.to_path_buf())
        .display()
        .to_string();
    match resolve::resolve(&spec, stores).ok().map(Entry::new) {
        Some(e) => (
            e.probe.health.healthy,
            e.probe
                .health
                .reason
                .clone()
                .unwrap_or_else(|| "Model is healthy".into()),
        ),
        None => (false, "could not probe the written folder".into()),
    }
}

fn health_word(healthy: bool) -> &'static str {
    if healthy {
        "healthy"
    } else {
        "unhealthy"
    }
}

/// mlx-knife's `clone_status` for a failed clone (a bad target is `error`).
fn clone_status(kind: ErrorType) -> &'static str {
    match kind {
        ErrorType::ModelNotFound | ErrorType::UnhealthyModel => "cache_not_found",
        ErrorType::PermissionDenied => "filesystem_error",
        _ => "error",
    }
}

pub fn clone(a: CloneArgs) -> CmdResult {
    clone_inner(&a).map_err(|e| {
        // A failed pull on the way is mlx-knife's `pull_failed`.
        let pulled = e
            .data
            .as_deref()
            .is_some_and(|d| d.get("download_status").is_some());
        if e.data.is_some() && !pulled {
            return e;
        }
        let data = json!({
            "model": a.model,
            "clone_status": if pulled { "pull_failed" } else { clone_status(e.error.kind) },
            "message": e.error.message,
            "target_dir": a.target.as_ref().map(|t| std::path::absolute(t).unwrap_or(t.clone())),
            "health_check": !a.no_health_check,
        });
        e.with_data(data)
    })
}

/// An explicit clone target needs an existing parent folder (a typo in the
/// path should not create a tree of folders); the default target's parent,
/// the workspace home, is created.
fn check_target_parent(target: &Path) -> Result<(), TantoError> {
    let abs = std::path::absolute(target).unwrap_or(target.to_path_buf());
    match abs.parent() {
        Some(p) if !p.is_dir() => Err(TantoError::new(
            ErrorType::ValidationError,
            format!("Parent directory does not exist: {}", p.display()),
        )
        .with_hint(format!("create it first: mkdir -p {}", p.display()))),
        _ => Ok(()),
    }
}

fn clone_inner(a: &CloneArgs) -> CmdResult {
    let json = a.json;
    let spec = match &a.revision {
        Some(r) => format!("{}@{r}", resolve::split_revision(&a.model).0),
        None => a.model.clone(),
    };
    let stores = Stores::from_env();
    let quiet = json || a.quiet;
    let mut r = resolve_or_pull(&spec, &stores, !a.no_pull, quiet, "clone")?;
    // --force-resume: an unhealthy cached copy is repaired from the hub first.
    if a.force_resume && !a.no_pull {
        if let Location::Cache { repo, .. } = &r.location {
            if !probe::probe_resolved(&r).health.healthy {
                let (_, rev) = resolve::split_revision(&spec);
                let id = repo.repo_id.clone();
                let report = download(&id, rev.map(str::to_string), &[], &[], quiet)?;
                r = resolve::resolve(&format!("{id}@{}", report.commit), &stores)?;
            }
        }
    }
    let (repo_id, snapshot) = match &r.location {
        Location::Cache {
            repo,
            snapshot: Some(s),
            ..
        } => (repo.repo_id.clone(), s.clone()),
        Location::Cache { repo, .. } => {
            return Err(TantoError::new(
                ErrorType::UnhealthyModel,
                format!("'{}' has no snapshot to clone", repo.repo_id),
            )
            .with_hint(format!("tanto pull {}", repo.repo_id))
            .into())
        }
        _ => {
            return Err(TantoError::new(
                ErrorType::ValidationError,
                format!(
                    "'{}' is not a cache model; clone copies from the hub cache",
                    r.display_name
                ),
            )
            .with_hint("copy a folder with cp -r, or use tanto convert")
            .into())
        }
    };
    let target = match a.target.clone() {
        Some(t) => {
            check_target_parent(&t)?;
            t
        }
        None => default_target(&repo_id)?,
    };
    let rev_label = a
        .revision
        .clone()
        .or_else(|| resolve::split_revision(&a.model).1.map(str::to_string))
        .unwrap_or_else(|| snapshot.commit.clone());
    let rep = tanto_hub::clone_snapshot(&snapshot.path, &target, &repo_id, Some(&rev_label))
        .map_err(|e| hub_err(&e, None))?;
    let health = (!a.no_health_check).then(|| folder_health(&rep.target, &stores));
    let target_dir = std::fs::canonicalize(&rep.target).unwrap_or(rep.target.clone());
    if json {
        output::print_json(&output::envelope_ok(
            "clone",
            json!({
                "model": repo_id,
                "clone_status": "success",
                "message": format!("Cloned to {}", target_dir.display()),
                "target_dir": target_dir,
                "health_check": health.is_some(),
                "health": health.as_ref().map(|h| health_word(h.0)),
                "health_reason": health.as_ref().map(|h| h.1.clone()),
                "commit_hash": snapshot.commit,
                "target": rep.target,
                "files": rep.files,
                "bytes": rep.bytes,
                "reflinked": rep.reflinked,
                "copied": rep.copied,
                "content_hash": rep.sentinel.content_hash,
                "clean": if rep.hashed { Some(true) } else { None },
            }),
        ));
    } else if a.quiet {
        outln(&target_dir.display().to_string());
    } else {
        let health = match &health {
            Some((true, _)) => " (healthy)".to_string(),
            Some((false, why)) => format!(" (unhealthy: {why})"),
            None => String::new(),
        };
        outln(&format!(
            "clone: {repo_id}@{} → {} ({} file(s), {}; {} reflinked, {} copied){}{health}",
            &snapshot.commit[..snapshot.commit.len().min(8)],
            rep.target.display(),
            rep.files,
            human_size(rep.bytes),
            rep.reflinked,
            rep.copied,
            if rep.hashed {
                ""
            } else {
                "; content hash not computed (workspace state unknown)"
            }
        ));
    }
    Ok(output::EXIT_OK)
}

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// Source model (any spec)
    pub source: String,
    /// Target folder (a bare name goes under $TANTO_WORKSPACE_HOME)
    pub target: PathBuf,
    /// Rebuild model.safetensors.index.json from the shard headers
    #[arg(long, conflicts_with = "quantize")]
    pub repair_index: bool,
    /// MLX affine quantization to BITS (2, 3, 4, 5, 6 or 8), as `mlx_lm convert -q`
    #[arg(long, value_name = "BITS")]
    pub quantize: Option<u32>,
    /// Values per quantization group (32, 64 or 128)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 64,
        alias = "q-group-size",
        requires = "quantize"
    )]
    pub group_size: u32,
    /// Skip the health check of the written folder
    #[arg(long)]
    pub skip_health: bool,
    /// Print the JSON envelope
    #[arg(long)]
    pub json: bool,
}

/// A bare target name goes under the workspace home.
fn convert_target(target: &Path) -> PathBuf {
    if target.components().count() == 1 && !target.starts_with(".") {
        if let Some(h) = tanto_core::paths::workspace_home_configured() {
            return h.join(target);
        }
    }
    target.to_path_buf()
}

pub fn convert(a: ConvertArgs) -> CmdResult {
    if !a.repair_index && a.quantize.is_none() {
        // mlx-knife: InvalidArgumentError, no data.
        return Err(TantoError::new(
            ErrorType::InvalidRequest,
            "convert needs a mode: --repair-index or --quantize BITS",
        )
        .with_hint("tanto convert SRC DST --quantize 4 (or --repair-index)")
        .into());
    }
    let mode = if a.quantize.is_some() {
        "quantize"
    } else {
        "repair-index"
    };
    let run = if a.quantize.is_some() {
        convert_quantize(&a)
    } else {
        convert_inner(&a)
    };
    run.map_err(|e| {
        if e.data.is_some() {
            return e;
        }
        let target = convert_target(&a.target);
        let data = json!({
            "source": a.source,
            "target": std::path::absolute(&target).unwrap_or(target),
            "mode": mode,
            "health_check": !a.skip_health,
        });
        e.with_data(data)
    })
}

/// `convert SRC DST --quantize BITS`: tanto_hub::quantize, then the health check.
fn convert_quantize(a: &ConvertArgs) -> CmdResult {
    let json = a.json;
    let bits = a.quantize.unwrap_or(4);
    let stores = Stores::from_env();
    let r = resolve::resolve(&a.source, &stores)?;
    let Some(src) = r.model_dir() else {
        return Err(
            TantoError::new(ErrorType::UnhealthyModel, "the source has no snapshot").into(),
        );
    };
    let target = convert_target(&a.target);
    let tty = std::io::stderr().is_terminal() && !json;
    let bar = tty.then(|| {
        let pb = ProgressBar::new(0);
        pb.set_style(
            ProgressStyle::with_template("quantizing {bar:30} {pos}/{len} tensors  {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    });
    let opts = tanto_hub::QuantizeOptions {
        bits,
        group_size: a.group_size,
    };
    let res = tanto_hub::quantize(Path::new(&src), &target, opts, &mut |done, total, name| {
        if let Some(pb) = &bar {
            pb.set_length(total as u64);
            pb.set_position(done as u64);
            pb.set_message(name.to_string());
        }
    });
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let rep = res.map_err(|e| hub_err(&e, None))?;
    let message = format!("Quantized to {bits}-bit successfully");
    let (healthy, reason) = if a.skip_health {
        (true, String::new())
    } else {
        folder_health(&rep.target, &stores)
    };
    if !healthy {
        let data = json!({
            "source": r.name,
            "target": rep.target,
            "mode": "quantize",
            "health_check": true,
            "health_status": "unhealthy",
            "health_reason": reason,
            "bits": bits,
            "group_size": a.group_size,
        });
        let e: crate::output::CliError = TantoError::new(
            ErrorType::UnhealthyModel,
            format!("Output workspace failed health check: {reason}"),
        )
        .into();
        return Err(e.with_data(data));
    }
    if json {
        let mut d = json!({
            "source": r.name,
            "target": rep.target,
            "mode": "quantize",
            "health_check": !a.skip_health,
            "message": message,
            "bits": bits,
            "group_size": a.group_size,
            "content_hash": rep.sentinel.content_hash,
            "dtype": rep.dtype,
            "quantized_tensors": rep.quantized,
            "shards": rep.shards,
            "total_size": rep.total_size,
            "total_parameters": rep.total_parameters,
        });
        if !a.skip_health {
            d["health_status"] = json!("healthy");
            d["health_reason"] = json!(reason);
        }
        output::print_json(&output::envelope_ok("convert", d));
    } else {
        outln(&format!(
            "convert: {} → {}",
            r.display_name,
            rep.target.display()
        ));
        outln("  Mode: quantize");
        outln(&format!(
            "  {message} (group size {}, {} matrices, {} scales, {})",
            a.group_size,
            rep.quantized,
            rep.dtype,
            human_bytes_total(rep.total_size)
        ));
        if !a.skip_health {
            outln("  ✓ Health check: passed");
        }
    }
    Ok(output::EXIT_OK)
}

fn human_bytes_total(b: u64) -> String {
    let mb = b as f64 / 1e6;
    if mb >= 1000.0 {
        format!("{:.2} GB", mb / 1000.0)
    } else {
        format!("{mb:.1} MB")
    }
}

fn convert_inner(a: &ConvertArgs) -> CmdResult {
    let json = a.json;
    let stores = Stores::from_env();
    let r = resolve::resolve(&a.source, &stores)?;
    let Some(src) = r.model_dir() else {
        return Err(
            TantoError::new(ErrorType::UnhealthyModel, "the source has no snapshot").into(),
        );
    };
    let target = convert_target(&a.target);
    let rep = tanto_hub::repair_index(Path::new(&src), &target).map_err(|e| hub_err(&e, None))?;
    let (healthy, reason) = folder_health(&rep.target, &stores);
    if json {
        let message = if rep.index_written {
            "Index rebuilt successfully"
        } else {
            "No index to rebuild (single-file model or no safetensors found)"
        };
        output::print_json(&output::envelope_ok(
            "convert",
            json!({
                "source": r.name,
                "target": rep.target,
                "mode": "repair-index",
                "health_check": true,
                "health_status": health_word(healthy),
                "health_reason": reason,
                "message": message,
                "content_hash": rep.sentinel.content_hash,
                "shards": rep.shards,
                "tensors": rep.tensors,
                "total_size": rep.total_size,
                "index_written": rep.index_written,
                "health": health_word(healthy),
                "reason": if healthy { None } else { Some(&reason) },
            }),
        ));
    } else {
        outln(&format!(
            "convert: {} → {} ({} shard(s), {} tensors, index {}); {}",
            r.display_name,
            rep.target.display(),
            rep.shards.len(),
            rep.tensors,
            if rep.index_written {
                "rebuilt"
            } else {
                "not needed"
            },
            if healthy {
                "healthy".to_string()
            } else {
                format!("still unhealthy: {reason}")
            }
        ));
    }
    Ok(output::EXIT_OK)
}
