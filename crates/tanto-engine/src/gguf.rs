//! GGUF reading for the loaders: open + parse the header once, typed metadata
//! getters, and the sanity checks that keep a hostile header from sizing an
//! allocation. Used by the engine (architecture, context, EOS ids), the GGUF
//! tokenizer and the native llama backbone.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file;
use memmap2::Mmap;

use crate::api::EngineError;

/// GGUF metadata, as candle parses it.
pub type Metadata = HashMap<String, gguf_file::Value>;

fn invalid(path: &Path, msg: impl Into<String>) -> EngineError {
    EngineError::InvalidModel {
        path: path.to_path_buf(),
        message: msg.into(),
    }
}

/// Read GGUF metadata and tensor index (not the data), then check every tensor
/// against the file (see [`check_tensors`]).
pub fn read_gguf(path: &Path) -> Result<(gguf_file::Content, Arc<Mmap>), EngineError> {
    let file = std::fs::File::open(path).map_err(|e| EngineError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    // SAFETY: the file is opened read-only; tanto never writes model files while
    // they are loaded (a concurrent external truncation is outside the contract).
    let mmap = unsafe { Mmap::map(&file) }.map_err(|e| EngineError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let ct = parse(path, &mmap)?;
    check_tensors(path, &ct, mmap.len() as u64)?;
    Ok((ct, Arc::new(mmap)))
}

/// Parse a GGUF header from bytes (fuzzing entry point; no tensor checks).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<gguf_file::Content, EngineError> {
    let mut cur = std::io::Cursor::new(bytes);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        gguf_file::Content::read(&mut cur)
    }))
    .map_err(|_| invalid(path, "malformed GGUF header"))?
    .map_err(|e| invalid(path, e.to_string()))
}

/// Metadata map of a GGUF file (tests, tools).
pub fn gguf_metadata(path: &Path) -> Result<Metadata, EngineError> {
    Ok(read_gguf(path)?.0.metadata)
}

/// Every tensor's byte size is computable without overflow and lies inside the
/// file, so later loaders (ours and candle's) never allocate from a bogus shape.
pub fn check_tensors(
    path: &Path,
    ct: &gguf_file::Content,
    file_len: u64,
) -> Result<(), EngineError> {
    for (name, info) in &ct.tensor_infos {
        let elems = info
            .shape
            .dims()
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        let block = info.ggml_dtype.block_size() as u64;
        let bytes = elems
            .filter(|e| block > 0 && e % block == 0)
            .and_then(|e| (e / block).checked_mul(info.ggml_dtype.type_size() as u64));
        let end = bytes.and_then(|b| {
            ct.tensor_data_offset
                .checked_add(info.offset)?
                .checked_add(b)
        });
        match end {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(invalid(
                    path,
                    format!(
                        "tensor {name}: shape {:?} does not fit the file",
                        info.shape.dims()
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// The largest context the engine will plan for, whatever a file declares
/// (position tables and preallocated caches scale with it).
pub const MAX_CONTEXT: usize = 1 << 20;

/// Hyperparameters that size loops and allocations must agree with the tensors
/// that are actually present: at most one block per tensor, and no width larger
/// than the largest tensor dimension. Catches `block_count = 0xFFFFFFFF` in a
/// small file before any loader reserves memory for it.
pub fn check_hparams(path: &Path, ct: &gguf_file::Content, arch: &str) -> Result<(), EngineError> {
    let md = &ct.metadata;
    let n_tensors = ct.tensor_infos.len() as u64;
    let max_dim = ct
        .tensor_infos
        .values()
        .flat_map(|t| t.shape.dims().iter().copied())
        .max()
        .unwrap_or(0) as u64;
    let get = |k: &str| md_u32(md, &format!("{arch}.{k}")).map(u64::from);
    if let Some(n) = get("block_count") {
        if n > n_tensors {
            return Err(invalid(
                path,
                format!("{arch}.block_count is {n} but the file has {n_tensors} tensors"),
            ));
        }
    }
    for k in [
        "embedding_length",
        "feed_forward_length",
        "attention.head_count",
        "attention.head_count_kv",
        "attention.key_length",
        "attention.value_length",
        "rope.dimension_count",
        "vocab_size",
    ] {
        if let Some(v) = get(k) {
            if v > max_dim {
                return Err(invalid(
                    path,
                    format!("{arch}.{k} is {v}, larger than any tensor dimension ({max_dim})"),
                ));
            }
        }
    }
    Ok(())
}

/// The context a load plans for: the model's own (when it declares one), cut to
/// the requested one, within `1..=MAX_CONTEXT`.
pub fn effective_context(declared: Option<usize>, requested: Option<usize>) -> usize {
    let c = declared.or(requested).unwrap_or(4096);
    requested.map_or(c, |r| r.min(c)).clamp(1, MAX_CONTEXT)
}

/// Write the planned context into the metadata candle's model code reads
/// (`<arch>.context_length` sizes its rotary tables and some preallocated caches).
pub fn set_context(md: &mut Metadata, arch: &str, context: usize) {
    let v = u32::try_from(context).unwrap_or(u32::MAX);
    md.insert(format!("{arch}.context_length"), gguf_file::Value::U32(v));
}

/// `general.architecture` ("" when absent).
pub fn arch_of(md: &Metadata) -> String {
    md_str(md, "general.architecture")
        .unwrap_or_default()
        .to_string()
}

pub fn md_str<'a>(md: &'a Metadata, k: &str) -> Option<&'a str> {
    md.get(k)
        .and_then(|v| v.to_string().ok())
        .map(|s| s.as_str())
}

/// Any integer type that fits a u32.
pub fn md_u32(md: &Metadata, k: &str) -> Option<u32> {
    md.get(k).and_then(|v| match v {
        gguf_file::Value::U8(x) => Some(*x as u32),
        gguf_file::Value::I8(x) => u32::try_from(*x).ok(),
        gguf_file::Value::U16(x) => Some(*x as u32),
        gguf_file::Value::I16(x) => u32::try_from(*x).ok(),
        gguf_file::Value::U32(x) => Some(*x),
        gguf_file::Value::I32(x) => u32::try_from(*x).ok(),
        gguf_file::Value::U64(x) => u32::try_from(*x).ok(),
        gguf_file::Value::I64(x) => u32::try_from(*x).ok(),
        _ => None,
    })
}

pub fn md_f32(md: &Metadata, k: &str) -> Option<f32> {
    md.get(k).and_then(|v| v.to_f32().ok())
}

pub fn md_bool(md: &Metadata, k: &str) -> Option<bool> {
    md.get(k).and_then(|v| v.to_bool().ok())
}

pub fn md_str_array(md: &Metadata, k: &str) -> Option<Vec<String>> {
    let arr = md.get(k)?.to_vec().ok()?;
    arr.iter()
        .map(|v| v.to_string().ok().cloned())
        .collect::<Option<Vec<_>>>()
}

pub fn md_num_array(md: &Metadata, k: &str) -> Option<Vec<f64>> {
    let arr = md.get(k)?.to_vec().ok()?;
    arr.iter()
        .map(|v| match v {
            gguf_file::Value::F32(x) => Some(*x as f64),
            gguf_file::Value::F64(x) => Some(*x),
            gguf_file::Value::I32(x) => Some(*x as f64),
            gguf_file::Value::U32(x) => Some(*x as f64),
            gguf_file::Value::I8(x) => Some(*x as f64),
            gguf_file::Value::U8(x) => Some(*x as f64),
            gguf_file::Value::I64(x) => Some(*x as f64),
            gguf_file::Value::U64(x) => Some(*x as f64),
            gguf_file::Value::I16(x) => Some(*x as f64),
            gguf_file::Value::U16(x) => Some(*x as f64),
            _ => None,
        })
        .collect()
}
