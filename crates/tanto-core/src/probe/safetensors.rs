//! safetensors header reader: the JSON directory only, never tensor data.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use serde_json::Value;

/// Headers above this size are treated as corrupt (the format's own limit is 100 MB).
pub const MAX_HEADER: u64 = 100 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("file too short for a safetensors header")]
    TooShort,
    #[error("header length {0} is implausible")]
    BadLength(u64),
    #[error("header is not valid JSON: {0}")]
    BadJson(String),
    #[error("tensor '{0}' has an invalid entry")]
    BadTensor(String),
    #[error("truncated: tensor data needs {needed} bytes, file has {actual}")]
    Truncated { needed: u64, actual: u64 },
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub dtype: String,
    pub shape: Vec<u64>,
    pub start: u64,
    pub end: u64,
}

impl TensorInfo {
    /// Product of the shape ([`read_header`] refuses shapes whose product
    /// overflows or outgrows the tensor's bytes; saturating for any other value).
    pub fn elements(&self) -> u64 {
        self.shape.iter().fold(1u64, |a, d| a.saturating_mul(*d))
    }
}

#[derive(Debug, Clone, Default)]
pub struct SafetensorsHeader {
    pub tensors: BTreeMap<String, TensorInfo>,
    pub metadata: BTreeMap<String, String>,
    pub header_len: u64,
    pub file_size: u64,
}

impl SafetensorsHeader {
    /// Bytes per tensor dtype, summed → the dominant dtype by bytes.
    pub fn dominant_dtype(&self) -> Option<String> {
        let mut by: BTreeMap<&str, u64> = BTreeMap::new();
        for t in self.tensors.values() {
            let e = by.entry(t.dtype.as_str()).or_default();
            *e = e.saturating_add(t.end - t.start);
        }
        by.into_iter()
            .max_by_key(|(_, b)| *b)
            .map(|(d, _)| d.to_string())
    }
}

/// Read and validate the header of a safetensors file.
pub fn read_header(path: &Path) -> Result<SafetensorsHeader, SafetensorsError> {
    let (mut f, meta) = crate::limits::open_regular(path).map_err(|e| match e {
        crate::limits::ReadError::Io(e) => SafetensorsError::Io(e),
        crate::limits::ReadError::NotFound => SafetensorsError::Io(io::ErrorKind::NotFound.into()),
        other => SafetensorsError::Io(io::Error::other(other.to_string())),
    })?;
    let file_size = meta.len();
    if file_size < 8 {
        return Err(SafetensorsError::TooShort);
    }
    let mut lb = [0u8; 8];
    f.read_exact(&mut lb)?;
    let n = u64::from_le_bytes(lb);
    if n == 0 || n > MAX_HEADER {
        return Err(SafetensorsError::BadLength(n));
    }
    if n > file_size - 8 {
        return Err(SafetensorsError::Truncated {
            needed: n + 8,
            actual: file_size,
        });
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf)?;
    let v: Value =
        serde_json::from_slice(&buf).map_err(|e| SafetensorsError::BadJson(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| SafetensorsError::BadJson("not an object".into()))?;
    let mut h = SafetensorsHeader {
        header_len: n,
        file_size,
        ..Default::default()
    };
    let mut max_end = 0u64;
    for (name, entry) in obj {
        if name == "__metadata__" {
            if let Some(m) = entry.as_object() {
                for (k, v) in m {
                    if let Some(s) = v.as_str() {
                        h.metadata.insert(k.clone(), s.to_string());
                    }
                }
            }
            continue;
        }
        let bad = || SafetensorsError::BadTensor(name.clone());
        let dtype = entry.get("dtype").and_then(Value::as_str).ok_or_else(bad)?;
        let shape = entry
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(bad)?
            .iter()
            .map(|d| d.as_u64().ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?;
        let offs = entry
            .get("data_offsets")
            .and_then(Value::as_array)
            .ok_or_else(bad)?;
        if offs.len() != 2 {
            return Err(bad());
        }
        let start = offs[0].as_u64().ok_or_else(bad)?;
        let end = offs[1].as_u64().ok_or_else(bad)?;
        if end < start {
            return Err(bad());
        }
        // Every dtype takes at least one bit per element: a shape whose element
        // count overflows or exceeds 8 per byte cannot describe these bytes (and
        // would overflow the probe's parameter sums).
        let elements = shape
            .iter()
            .try_fold(1u64, |a, d| a.checked_mul(*d))
            .ok_or_else(bad)?;
        if elements > (end - start).saturating_mul(8) {
            return Err(bad());
        }
        max_end = max_end.max(end);
        h.tensors.insert(
            name.clone(),
            TensorInfo {
                dtype: dtype.to_string(),
                shape,
                start,
                end,
            },
        );
    }
    // Saturating: offsets near u64::MAX must read as truncation, not wrap to a
    // small number that passes the check.
    let needed = (8 + n).saturating_add(max_end);
    if needed > file_size {
        return Err(SafetensorsError::Truncated {
            needed,
            actual: file_size,
        });
    }
    Ok(h)
}
