//! `convert --repair-index`: rebuild `model.safetensors.index.json` from the shards.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tanto_core::pycompat::{fnmatch, to_python_json};
use tanto_core::workspace::{self, Sentinel, DEFAULT_EXCLUDE_PATTERNS, SENTINEL_FILE};

use crate::clone::TreeCopy;
use crate::fsutil::{check_target, StagingDir};
use crate::HubError;

/// Name of the shard index.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Result of [`repair_index`].
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub target: PathBuf,
    /// Top-level `*.safetensors` files, sorted.
    pub shards: Vec<String>,
    /// Tensors in the rebuilt index (0 when no index was written).
    pub tensors: usize,
    /// `metadata.total_size`: the sum of the tensors' byte sizes.
    pub total_size: u64,
    /// False for 0 or 1 shard: a single-file model needs no index (none is written,
    /// and a stale one from the source is dropped).
    pub index_written: bool,
    /// Files copied into the workspace (index and sentinel not counted).
    pub files: usize,
    pub bytes: u64,
    pub sentinel: Sentinel,
    pub hashed: bool,
}

#[derive(Serialize)]
struct Index<'a> {
    metadata: IndexMeta,
    weight_map: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct IndexMeta {
    total_size: u64,
}

/// The index rebuilt from the shards of a folder.
pub(crate) struct BuiltIndex {
    /// Top-level `*.safetensors`, sorted.
    pub shards: Vec<String>,
    /// Tensor → shard file.
    pub weight_map: BTreeMap<String, String>,
    /// Sum of the tensors' byte sizes.
    pub total_size: u64,
}

/// Build the index of the top-level shards of `dir`.
pub(crate) fn build_index(dir: &Path) -> Result<BuiltIndex, HubError> {
    let mut shards: Vec<String> = fs::read_dir(dir)
        .map_err(|e| HubError::io(dir, e))?
        .flatten()
        .filter(|e| fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    shards.sort();
    let mut weight_map: BTreeMap<String, String> = BTreeMap::new();
    let mut total = 0u64;
    for shard in &shards {
        let header = tanto_core::safetensors::read_header(&dir.join(shard)).map_err(|e| {
            HubError::BadShard {
                file: shard.clone(),
                message: e.to_string(),
            }
        })?;
        for (name, t) in &header.tensors {
            if let Some(prev) = weight_map.insert(name.clone(), shard.clone()) {
                return Err(HubError::DuplicateTensor {
                    tensor: name.clone(),
                    first: prev,
                    second: shard.clone(),
                });
            }
            total += t.end - t.start;
        }
    }
    Ok(BuiltIndex {
        shards,
        weight_map,
        total_size: total,
    })
}

/// The sentinel of a `convert` output: operation `convert`, `source_repo` the
/// source sentinel's, else the absolute source path (callers set `mode`).
pub(crate) fn convert_sentinel(src_dir: &Path) -> Sentinel {
    let src = workspace::read_sentinel(src_dir).ok().flatten();
    let source_repo = src
        .as_ref()
        .and_then(|s| s.source_repo.clone())
        .unwrap_or_else(|| {
            fs::canonicalize(src_dir)
                .unwrap_or_else(|_| src_dir.to_path_buf())
                .display()
                .to_string()
        });
    Sentinel::new(
        "convert",
        Some(source_repo),
        src.and_then(|s| s.source_revision),
    )
}

/// Copy the model at `src_dir` into a new workspace `dst_dir` (absent or empty) and
/// write a fresh `model.safetensors.index.json` built from the shard headers
/// (`weight_map` tensor → shard file, `metadata.total_size` = sum of tensor bytes;
/// keys sorted, indent 2, as transformers writes it). Subfolders are copied too,
/// except the default-excluded ones (`.git/`, `.hf_cache/`, ...). Sentinel:
/// operation `convert`, mode `repair-index`, `source_repo` = the source sentinel's,
/// else the absolute source path. As with [`clone_snapshot`](crate::clone_snapshot),
/// links must stay inside the model folder (the repo folder for a hub-cache
/// snapshot) and only regular files are copied, else [`HubError::UnsafeSourceEntry`].
pub fn repair_index(src_dir: &Path, dst_dir: &Path) -> Result<RepairReport, HubError> {
    if !src_dir.is_dir() {
        return Err(HubError::SourceNotADirectory(src_dir.to_path_buf()));
    }
    check_target(dst_dir)?;
    let BuiltIndex {
        shards,
        weight_map,
        total_size,
    } = build_index(src_dir)?;

    let staging = StagingDir::next_to(dst_dir)?;
    let excluded_dirs: Vec<&str> = DEFAULT_EXCLUDE_PATTERNS
        .iter()
        .filter_map(|p| p.strip_suffix('/'))
        .collect();
    let skip = |rel: &str, is_dir: bool| {
        let base = rel.rsplit('/').next().unwrap_or(rel);
        if is_dir {
            excluded_dirs.iter().any(|p| fnmatch(p, base))
        } else {
            rel == SENTINEL_FILE || rel == INDEX_FILE
        }
    };
    let mut tree = TreeCopy::new(src_dir, &skip)?;
    tree.copy(src_dir, staging.path(), "")?;
    let stats = tree.stats;
    let index_written = shards.len() > 1;
    if index_written {
        let index = Index {
            metadata: IndexMeta { total_size },
            weight_map: &weight_map,
        };
        let path = staging.path().join(INDEX_FILE);
        workspace::write_atomic(&path, &to_python_json(&index))
            .map_err(|e| HubError::io(&path, e))?;
    }
    let mut sentinel = convert_sentinel(src_dir);
    sentinel.mode = Some("repair-index".into());
    let hashed = workspace::pin_content_hash(staging.path(), &mut sentinel);
    workspace::write_sentinel(staging.path(), &sentinel)?;
    check_target(dst_dir)?;
    staging.commit(dst_dir)?;
    Ok(RepairReport {
        target: dst_dir.to_path_buf(),
        tensors: if index_written { weight_map.len() } else { 0 },
        total_size: if index_written { total_size } else { 0 },
        shards,
        index_written,
        files: stats.files,
        bytes: stats.bytes,
        sentinel,
        hashed,
    })
}
