//! Resolve: a model spec becomes exactly one model on disk, or a typed error.
//!
//! Order: explicit path → exact workspace name → exact repo id → fuzzy
//! (case-insensitive substring over workspace names and repo ids; one match
//! resolves, several are ambiguous). `name@rev` pins a cache snapshot by
//! commit prefix or ref name.

use std::path::{Path, PathBuf};

pub mod cache;
pub mod naming;
pub mod paths;
pub mod store;

use crate::error::{ErrorType, TantoError};
use store::{CacheRepo, Snapshot};

/// Where a resolved model lives.
#[derive(Debug, Clone)]
pub enum Location {
    /// A hub-cache snapshot (or a repo with no usable snapshot: `snapshot` None).
    Cache {
        repo: CacheRepo,
        snapshot: Option<Snapshot>,
        /// True when the user pinned a revision with `@rev`.
        pinned: bool,
    },
    /// A folder under the workspace home or given by path (with or without sentinel).
    Folder { dir: PathBuf, managed: bool },
    /// A single weights file given by path (a lone .gguf).
    File { file: PathBuf },
}

/// The outcome of resolution.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// `org/name` for cache models; the absolute path for folders and files.
    pub name: String,
    /// The name as listed (workspace folder name for workspace-home entries).
    pub display_name: String,
    pub location: Location,
    /// True when a fuzzy match (not an exact name) picked the model.
    pub fuzzy: bool,
}

impl Resolved {
    /// The folder whose files describe the model (snapshot, workspace, or the file's folder).
    pub fn model_dir(&self) -> Option<PathBuf> {
        match &self.location {
            Location::Cache { snapshot, .. } => snapshot.as_ref().map(|s| s.path.clone()),
            Location::Folder { dir, .. } => Some(dir.clone()),
            Location::File { file } => file.parent().map(Path::to_path_buf),
        }
    }
    /// The model's identity: aliases of one model share it (`org/name@commit`
    /// for cache snapshots, `org/name` for a repo without one, the path otherwise).
    pub fn key(&self) -> String {
        match &self.location {
            Location::Cache { repo, snapshot, .. } => match snapshot {
                Some(s) => format!("{}@{}", repo.repo_id, s.commit),
                None => repo.repo_id.clone(),
            },
            Location::Folder { dir, .. } => dir.display().to_string(),
            Location::File { file } => file.display().to_string(),
        }
    }

    /// The id clients see: the repo id for cache models, the listed name otherwise.
    pub fn id(&self) -> String {
        match &self.location {
            Location::Cache { .. } => self.name.clone(),
            Location::Folder { .. } | Location::File { .. } => self.display_name.clone(),
        }
    }

    /// A cache repo at its default snapshot, as `list` shows it.
    pub fn from_cache_repo(repo: CacheRepo) -> Self {
        let snapshot = repo.default_snapshot();
        Resolved {
            name: repo.repo_id.clone(),
            display_name: repo.repo_id.clone(),
            location: Location::Cache {
                repo,
                snapshot,
                pinned: false,
            },
            fuzzy: false,
        }
    }

    /// A model folder listed as `display` (managed when it has the sentinel).
    pub fn from_folder(dir: PathBuf, display: String) -> Self {
        let managed = store::is_workspace(&dir);
        Resolved {
            name: dir.display().to_string(),
            display_name: display,
            location: Location::Folder { dir, managed },
            fuzzy: false,
        }
    }

    pub fn is_cache(&self) -> bool {
        matches!(self.location, Location::Cache { .. })
    }
    pub fn commit(&self) -> Option<&str> {
        match &self.location {
            Location::Cache {
                snapshot: Some(s), ..
            } => Some(&s.commit),
            _ => None,
        }
    }
}

/// Where to search. Built from the environment by [`Stores::from_env`]; tests build it directly.
#[derive(Debug, Clone)]
pub struct Stores {
    pub cache: PathBuf,
    pub workspace_home: Option<PathBuf>,
}

impl Stores {
    pub fn from_env() -> Self {
        Self {
            cache: paths::hub_cache(),
            workspace_home: paths::workspace_home(),
        }
    }
}

/// Every model in the stores, as `tanto list` and `GET /v1/models` see them:
/// workspace-home folders (listed by folder name) first, then cache repos by id.
pub fn all_models(stores: &Stores) -> Vec<Resolved> {
    all_candidates(stores)
        .into_iter()
        .map(Candidate::resolve)
        .collect()
}

/// One model [`all_models`] would list, before any of its files are read:
/// the listed name is known from the folder name alone, so callers can
/// filter first and resolve (read `refs/main`, stat the snapshot, check the
/// sentinel) in parallel, with the probe.
#[derive(Debug, Clone)]
pub enum Candidate {
    /// A model folder under the workspace home, listed as its folder name.
    Folder(PathBuf, String),
    /// A hub-cache repo, at its default snapshot.
    Cache(CacheRepo),
}

impl Candidate {
    /// The name it is listed as (no I/O).
    pub fn display_name(&self) -> &str {
        match self {
            Candidate::Folder(_, display) => display,
            Candidate::Cache(repo) => &repo.repo_id,
        }
    }

    /// The model it stands for, as [`all_models`] returns it.
    pub fn resolve(self) -> Resolved {
        match self {
            Candidate::Folder(dir, display) => Resolved::from_folder(dir, display),
            Candidate::Cache(repo) => Resolved::from_cache_repo(repo),
        }
    }
}

/// Every model of [`all_models`], unresolved: workspaces first (by name),
/// then cache repos (by repo id).
pub fn all_candidates(stores: &Stores) -> Vec<Candidate> {
    let mut out = Vec::new();
    if let Some(home) = &stores.workspace_home {
        for dir in store::workspaces(home) {
            let display = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string());
            out.push(Candidate::Folder(dir, display));
        }
    }
    out.extend(
        store::cache_repos(&stores.cache)
            .into_iter()
            .map(Candidate::Cache),
    );
    out
}

impl Stores {
    /// [`all_models`] of these stores.
    pub fn all_models(&self) -> Vec<Resolved> {
        all_models(self)
    }
}

/// True for specs that name a filesystem path rather than a model name.
pub fn is_explicit_path(spec: &str) -> bool {
    spec == "."
        || spec == ".."
        || spec == "~"
        || spec.starts_with("./")
        || spec.starts_with("../")
        || spec.starts_with('/')
        || spec.starts_with("~/")
}

/// Split `name@rev`. A spec without `@` has no revision.
pub fn split_revision(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once('@') {
        Some((base, rev)) if !base.is_empty() => (base, Some(rev)),
        _ => (spec, None),
    }
}

fn not_found(spec: &str) -> TantoError {
    TantoError::new(
        ErrorType::ModelNotFound,
        format!("No model found matching '{spec}'"),
    )
    .with_hint("run `tanto list` to see local models, or `tanto pull ORG/NAME` to download one")
}

/// Resolve a model spec against the stores.
pub fn resolve(spec: &str, stores: &Stores) -> Result<Resolved, TantoError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(TantoError::new(
            ErrorType::ValidationError,
            "Model name is empty",
        ));
    }
    if is_explicit_path(spec) {
        return resolve_path(spec);
    }
    let (base, rev) = split_revision(spec);
    if let Some(r) = rev {
        if r.is_empty() {
            return Err(TantoError::new(
                ErrorType::ValidationError,
                format!("Empty revision in '{spec}'; use NAME@REV (commit prefix or branch)"),
            ));
        }
    }

    let workspaces = stores
        .workspace_home
        .as_deref()
        .map(store::workspaces)
        .unwrap_or_default();
    let repos = store::cache_repos(&stores.cache);

    // Exact matches first: a workspace folder name, then a repo id.
    if rev.is_none() {
        if let Some(ws) = workspaces
            .iter()
            .find(|w| w.file_name().is_some_and(|n| n == base))
        {
            return Ok(folder(ws.clone(), false));
        }
    }
    if let Some(repo) = repos.iter().find(|r| r.repo_id == base) {
        return with_revision(repo.clone(), spec, rev, false);
    }
    if let Some(repo) = repos.iter().find(|r| r.repo_id.eq_ignore_ascii_case(base)) {
        return with_revision(repo.clone(), spec, rev, false);
    }

    // Fuzzy: case-insensitive substring.
    let needle = base.to_lowercase();
    let ws_hits: Vec<&PathBuf> = if rev.is_none() {
        workspaces
            .iter()
            .filter(|w| {
                w.file_name()
                    .is_some_and(|n| n.to_string_lossy().to_lowercase().contains(&needle))
            })
            .collect()
    } else {
        Vec::new()
    };
    let repo_hits: Vec<&CacheRepo> = repos
        .iter()
        .filter(|r| r.repo_id.to_lowercase().contains(&needle))
        .collect();
    // A unique exact short name (`name` for `org/name`) beats other substring hits.
    let short_exact: Vec<&&CacheRepo> = repo_hits
        .iter()
        .filter(|r| {
            r.repo_id
                .rsplit('/')
                .next()
                .is_some_and(|s| s.eq_ignore_ascii_case(base))
        })
        .collect();
    if ws_hits.is_empty() && short_exact.len() == 1 {
        return with_revision((*short_exact[0]).clone(), spec, rev, true);
    }
    match (ws_hits.len(), repo_hits.len()) {
        (0, 0) => Err(not_found(spec)),
        (1, 0) => {
            let mut r = folder(ws_hits[0].clone(), false);
            r.fuzzy = true;
            Ok(r)
        }
        (0, 1) => with_revision(repo_hits[0].clone(), spec, rev, true),
        _ => {
            let mut names: Vec<String> = ws_hits
                .iter()
                .filter_map(|w| w.file_name().map(|n| n.to_string_lossy().into_owned()))
                .chain(repo_hits.iter().map(|r| r.repo_id.clone()))
                .collect();
            names.sort();
            names.dedup();
            Err(TantoError::new(
                ErrorType::AmbiguousMatch,
                format!(
                    "'{base}' matches {} models: {}",
                    names.len(),
                    names.join(", ")
                ),
            )
            .with_hint("use the full name (org/name) of one of them")
            .with_detail("matches", names))
        }
    }
}

fn folder(dir: PathBuf, fuzzy: bool) -> Resolved {
    let managed = store::is_workspace(&dir);
    let display = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Resolved {
        name: dir.display().to_string(),
        display_name: display,
        location: Location::Folder { dir, managed },
        fuzzy,
    }
}

fn with_revision(
    repo: CacheRepo,
    spec: &str,
    rev: Option<&str>,
    fuzzy: bool,
) -> Result<Resolved, TantoError> {
    let (snapshot, pinned) = match rev {
        None => (repo.default_snapshot(), false),
        Some(r) => match repo.find_revision(r) {
            Some(s) => (Some(s), true),
            None => {
                let avail: Vec<String> = repo
                    .snapshots()
                    .iter()
                    .map(|s| s.commit.chars().take(8).collect())
                    .collect();
                return Err(TantoError::new(
                    ErrorType::RevisionNotFound,
                    format!(
                        "Revision '{r}' not found for model '{}' (spec '{spec}')",
                        repo.repo_id
                    ),
                )
                .with_hint(if avail.is_empty() {
                    "this model has no snapshots; pull it again".to_string()
                } else {
                    format!("available revisions: {}", avail.join(", "))
                })
                .with_detail("available_hashes", avail));
            }
        },
    };
    Ok(Resolved {
        name: repo.repo_id.clone(),
        display_name: repo.repo_id.clone(),
        location: Location::Cache {
            repo,
            snapshot,
            pinned,
        },
        fuzzy,
    })
}

fn resolve_path(spec: &str) -> Result<Resolved, TantoError> {
    let p = paths::expand_tilde(spec);
    let abs = std::fs::canonicalize(&p).map_err(|_| {
        TantoError::new(
            ErrorType::ModelNotFound,
            format!("Path '{spec}' does not exist"),
        )
    })?;
    if abs.is_file() {
        if abs
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            return Ok(Resolved {
                name: abs.display().to_string(),
                display_name: abs.display().to_string(),
                location: Location::File { file: abs },
                fuzzy: false,
            });
        }
        return Err(TantoError::new(
            ErrorType::ModelNotFound,
            format!("'{spec}' is a file but not a .gguf model"),
        )
        .with_hint("point at a model folder (with config.json) or a .gguf file"));
    }
    if !store::is_model_dir(&abs) {
        return Err(TantoError::new(
            ErrorType::ModelNotFound,
            format!("'{spec}' is not a model folder (no config.json, .gguf or workspace sentinel)"),
        ));
    }
    let mut r = folder(abs, false);
    r.display_name = r.name.clone();
    Ok(r)
}
