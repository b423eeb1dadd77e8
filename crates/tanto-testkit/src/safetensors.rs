//! Valid safetensors bytes: an 8-byte little-endian header length, the JSON
//! header (space-padded to a multiple of 8, as the reference writer does), then
//! the tensor data (zeros).

use serde_json::{json, Map, Value};

/// Bytes per element of a safetensors dtype.
pub fn dtype_size(dtype: &str) -> u64 {
    match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
        other => panic!("unknown safetensors dtype {other}"),
    }
}

/// One tensor: name, dtype (`F32`, `BF16`, `U32`, …) and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
}

impl TensorSpec {
    pub fn new(name: &str, dtype: &str, shape: &[u64]) -> Self {
        Self {
            name: name.to_string(),
            dtype: dtype.to_string(),
            shape: shape.to_vec(),
        }
    }
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
    pub fn byte_len(&self) -> u64 {
        self.elements() * dtype_size(&self.dtype)
    }
}

/// Builds a safetensors file from tensor specs.
#[derive(Debug, Clone, Default)]
pub struct SafetensorsBuilder {
    tensors: Vec<TensorSpec>,
    metadata: Vec<(String, String)>,
}

impl SafetensorsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn tensor(mut self, name: &str, dtype: &str, shape: &[u64]) -> Self {
        self.tensors.push(TensorSpec::new(name, dtype, shape));
        self
    }

    pub fn tensors(mut self, specs: impl IntoIterator<Item = TensorSpec>) -> Self {
        self.tensors.extend(specs);
        self
    }

    /// A `__metadata__` entry (e.g. `format` → `pt` or `mlx`).
    pub fn metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata.push((key.to_string(), value.to_string()));
        self
    }

    /// Total element count (what the probe reports as parameters for unquantized files).
    pub fn elements(&self) -> u64 {
        self.tensors.iter().map(TensorSpec::elements).sum()
    }

    pub fn build(&self) -> Vec<u8> {
        let mut header = Map::new();
        if !self.metadata.is_empty() {
            let m: Map<String, Value> = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect();
            header.insert("__metadata__".into(), Value::Object(m));
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            let end = offset + t.byte_len();
            header.insert(
                t.name.clone(),
                json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, end]}),
            );
            offset = end;
        }
        let mut h = serde_json::to_vec(&Value::Object(header)).expect("header JSON");
        h.resize(h.len().div_ceil(8) * 8, b' ');
        let mut out = Vec::with_capacity(8 + h.len() + offset as usize);
        out.extend_from_slice(&(h.len() as u64).to_le_bytes());
        out.extend_from_slice(&h);
        out.resize(out.len() + offset as usize, 0);
        out
    }
}

/// The header length field of safetensors bytes.
pub fn header_len(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}
