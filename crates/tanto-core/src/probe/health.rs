//! Probe phase 6, health: the problem list every phase writes into
//! ([`Findings`]), the checks that need the whole picture (missing folder,
//! safetensors index vs shards, an interrupted pull's marker), and the
//! resulting [`Health`].

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cache::Stamp;
use super::config::{read_json, too_large, JsonError};
use super::{FileEntry, Health, Probe, ProbeTarget, Problem};

/// Problems found so far, in order, and the fix for the first one.
#[derive(Default)]
pub(crate) struct Findings {
    pub problems: Vec<Problem>,
    pub fix: Option<String>,
}

impl Findings {
    pub fn fail(&mut self, code: &'static str, message: impl Into<String>) {
        debug_assert!(
            super::PROBLEM_CODES.contains(&code),
            "problem code {code} missing from PROBLEM_CODES"
        );
        self.problems.push(Problem {
            code,
            message: message.into(),
        });
    }
    pub fn fail_fix(&mut self, code: &'static str, message: impl Into<String>, fix: String) {
        if self.problems.is_empty() {
            self.fix = Some(fix);
        }
        self.fail(code, message);
    }
    /// [`Findings::fail_fix`] when there is a fix, else [`Findings::fail`].
    pub fn fail_maybe_fix(&mut self, code: &'static str, message: String, fix: Option<&str>) {
        match fix {
            Some(fx) => self.fail_fix(code, message, fx.to_string()),
            None => self.fail(code, message),
        }
    }
}

/// The model folder, or the problem that there is none (then the probe stops).
pub(crate) fn model_dir(
    t: &ProbeTarget,
    p: &mut Probe,
    f: &mut Findings,
) -> Option<(PathBuf, Stamp)> {
    let Some(dir) = t.dir.clone() else {
        let msg = match &t.repo {
            Some(r) if !r.dir.join("snapshots").is_dir() => "No snapshots directory found",
            _ => "No snapshots found",
        };
        let fix = t
            .repo
            .as_ref()
            .map(|r| format!("tanto pull {} --force", r.repo_id));
        f.fail_maybe_fix("no_snapshot", msg.to_string(), fix.as_deref());
        return None;
    };
    match fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {
            p.last_modified = m.modified().ok();
            Some((dir, Stamp::of(&m)))
        }
        _ => {
            f.fail("path_missing", "Model path does not exist");
            None
        }
    }
}

/// A pull killed between files leaves a marker but no `.incomplete` blob; the
/// files it did not fetch already show up as problems. Only then is the marker
/// worth a look (keeps `list` free of a failed open per repo). It goes first,
/// with its resume command as the fix.
pub(crate) fn interrupted_pull(t: &ProbeTarget, f: &mut Findings) {
    let Some(repo) = &t.repo else { return };
    if f.problems.is_empty() || f.problems.iter().any(|p| p.code == "partial_download") {
        return;
    }
    if let Some(marker) = repo.pull_marker() {
        let resume = marker.resume_command();
        f.problems.insert(
            0,
            Problem {
                code: "partial_download",
                message: format!(
                    "Partial download: an interrupted pull of {} file(s) did not finish; resume with `{resume}`",
                    marker.files.len()
                ),
            },
        );
        f.fix = Some(resume);
    }
}

pub(crate) fn finish(mut p: Probe, f: Findings) -> Probe {
    p.health = Health {
        healthy: f.problems.is_empty(),
        reason: f.problems.first().map(|pr| pr.message.clone()),
        fix: f.fix,
        problems: f.problems,
    };
    p
}

fn shard_pattern(name: &str) -> Option<(u32, u32)> {
    // model-00001-of-00003.safetensors
    let base = name.rsplit('/').next()?;
    let rest = base.strip_suffix(".safetensors")?;
    let (head, total) = rest.rsplit_once("-of-")?;
    let idx = head.rsplit('-').next()?;
    if idx.len() != 5 || total.len() != 5 {
        return None;
    }
    Some((idx.parse().ok()?, total.parse().ok()?))
}

/// The safetensors index against the shards on disk (or, without an index, the
/// shard naming pattern).
pub(crate) fn check_index(dir: &Path, files: &[FileEntry], sts: &[FileEntry], ctx: &mut Findings) {
    let idx_path = dir.join("model.safetensors.index.json");
    let on_disk: BTreeSet<&str> = sts.iter().map(|f| f.path.as_str()).collect();
    let repair = "tanto convert SRC DST --repair-index".to_string();
    if files
        .iter()
        .any(|f| f.path == "model.safetensors.index.json" && !f.dangling)
    {
        let idx = match read_json(&idx_path) {
            Ok(v) => v,
            Err(JsonError::TooLarge(n)) => {
                too_large(ctx, "model.safetensors.index.json", n);
                return;
            }
            Err(JsonError::Unreadable) => return,
            Err(JsonError::Parse(_)) => {
                ctx.fail(
                    "index_invalid",
                    "Invalid index file model.safetensors.index.json",
                );
                return;
            }
        };
        let Some(map) = idx
            .get("weight_map")
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
        else {
            ctx.fail("index_invalid", "Empty or invalid weight_map in index");
            return;
        };
        let referenced: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
        let missing: Vec<&str> = referenced
            .iter()
            .copied()
            .filter(|r| !on_disk.contains(r))
            .collect();
        let extra: Vec<&str> = on_disk
            .iter()
            .copied()
            .filter(|f| !referenced.contains(f) && !f.contains('/'))
            .collect();
        if !missing.is_empty() && !extra.is_empty() {
            ctx.fail_fix(
                "index_mismatch",
                format!(
                    "Index/shard mismatch: index references {} shard(s) not on disk ({}) while {} file(s) are not in the index ({}). Fix: tanto convert <model> <output> --repair-index",
                    missing.len(),
                    missing.join(", "),
                    extra.len(),
                    extra.join(", ")
                ),
                repair,
            );
        } else if !missing.is_empty() {
            ctx.fail(
                "missing_shard",
                format!("Index references missing shard(s): {}", missing.join(", ")),
            );
        } else if !extra.is_empty() {
            ctx.fail_fix(
                "shard_not_in_index",
                format!(
                    "Shard(s) not in index: {}. Fix: tanto convert <model> <output> --repair-index",
                    extra.join(", ")
                ),
                repair,
            );
        }
        return;
    }
    // No index: check the shard naming pattern.
    let shards: Vec<(u32, u32)> = sts.iter().filter_map(|f| shard_pattern(&f.path)).collect();
    if shards.is_empty() {
        return;
    }
    let totals: BTreeSet<u32> = shards.iter().map(|s| s.1).collect();
    if totals.len() > 1 {
        ctx.fail("shard_pattern", "Inconsistent shard totals detected");
        return;
    }
    let total = *totals.iter().next().unwrap_or(&0);
    let present: BTreeSet<u32> = shards.iter().map(|s| s.0).collect();
    if (present.len() as u32) < total {
        ctx.fail(
            "missing_shard",
            format!(
                "Missing shards by pattern: {}/{} present",
                present.len(),
                total
            ),
        );
    } else if total > 1 && !files.iter().any(|f| f.path.ends_with(".index.json")) {
        ctx.fail_fix(
            "index_missing",
            "Safetensors index missing for sharded model",
            repair,
        );
    }
}
