//! Valid GGUF (v3 by default) bytes: magic, version, counts, the key/value
//! metadata (scalars, strings, arrays), tensor infos, padding to the alignment,
//! then tensor data (zeros) with every tensor's offset aligned.

/// ggml tensor types used by the fixtures.
pub mod ggml {
    pub const F32: u32 = 0;
    pub const F16: u32 = 1;
    pub const Q4_0: u32 = 2;
    pub const Q4_1: u32 = 3;
    pub const Q8_0: u32 = 8;
    pub const Q4_K: u32 = 12;
    pub const Q6_K: u32 = 14;
    pub const BF16: u32 = 30;
}

/// `general.file_type` values (llama.cpp's `LLAMA_FTYPE_*`).
pub mod file_type {
    pub const F32: u32 = 0;
    pub const F16: u32 = 1;
    pub const Q4_0: u32 = 2;
    pub const Q4_1: u32 = 3;
    pub const Q8_0: u32 = 7;
    pub const Q4_K_M: u32 = 15;
}

/// `(elements per block, bytes per block)` of a ggml type.
pub fn type_layout(t: u32) -> (u64, u64) {
    match t {
        ggml::F32 => (1, 4),
        ggml::F16 | ggml::BF16 => (1, 2),
        ggml::Q4_0 => (32, 18),
        ggml::Q4_1 => (32, 20),
        ggml::Q8_0 => (32, 34),
        ggml::Q4_K => (256, 144),
        ggml::Q6_K => (256, 210),
        other => panic!("tanto-testkit: no layout for ggml type {other}"),
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    ArrStr(Vec<String>),
    ArrU32(Vec<u32>),
    ArrI32(Vec<i32>),
    ArrF32(Vec<f32>),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::ArrStr(_) | Value::ArrU32(_) | Value::ArrI32(_) | Value::ArrF32(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::U8(v) => out.push(*v),
            Value::I8(v) => out.push(*v as u8),
            Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Bool(v) => out.push(u8::from(*v)),
            Value::Str(s) => write_str(out, s),
            Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::ArrStr(items) => {
                out.extend_from_slice(&8u32.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for s in items {
                    write_str(out, s);
                }
            }
            Value::ArrU32(items) => {
                out.extend_from_slice(&4u32.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for v in items {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Value::ArrI32(items) => {
                out.extend_from_slice(&5u32.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for v in items {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Value::ArrF32(items) => {
                out.extend_from_slice(&6u32.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for v in items {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// One tensor info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    /// ggml order: the fastest-varying dimension first.
    pub dims: Vec<u64>,
    pub ggml_type: u32,
}

impl TensorSpec {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
    pub fn byte_len(&self) -> u64 {
        let (block, bytes) = type_layout(self.ggml_type);
        self.elements().div_ceil(block) * bytes
    }
}

/// Builds a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufBuilder {
    version: u32,
    alignment: u64,
    kv: Vec<(String, Value)>,
    tensors: Vec<TensorSpec>,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufBuilder {
    pub fn new() -> Self {
        Self {
            version: 3,
            alignment: 32,
            kv: Vec::new(),
            tensors: Vec::new(),
        }
    }

    pub fn version(mut self, v: u32) -> Self {
        self.version = v;
        self
    }

    /// Data alignment; also written as `general.alignment` when not the default 32.
    pub fn alignment(mut self, a: u64) -> Self {
        assert!(
            a > 0 && a.is_power_of_two(),
            "alignment must be a power of two"
        );
        self.alignment = a;
        if a != 32 {
            self.kv.retain(|(k, _)| k != "general.alignment");
            self.kv
                .push(("general.alignment".into(), Value::U32(a as u32)));
        }
        self
    }

    /// Any key/value (later keys with the same name are written too; readers keep the last).
    pub fn kv(mut self, key: &str, v: Value) -> Self {
        self.kv.push((key.to_string(), v));
        self
    }
    pub fn str(self, key: &str, s: &str) -> Self {
        self.kv(key, Value::Str(s.to_string()))
    }
    pub fn u32(self, key: &str, v: u32) -> Self {
        self.kv(key, Value::U32(v))
    }
    pub fn u64(self, key: &str, v: u64) -> Self {
        self.kv(key, Value::U64(v))
    }
    pub fn f32(self, key: &str, v: f32) -> Self {
        self.kv(key, Value::F32(v))
    }
    pub fn strings(self, key: &str, items: Vec<String>) -> Self {
        self.kv(key, Value::ArrStr(items))
    }

    pub fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32) -> Self {
        self.tensors.push(TensorSpec {
            name: name.to_string(),
            dims: dims.to_vec(),
            ggml_type,
        });
        self
    }

    /// Sum of tensor elements (what the probe reports as parameters).
    pub fn elements(&self) -> u64 {
        self.tensors.iter().map(TensorSpec::elements).sum()
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            write_str(&mut out, k);
            out.extend_from_slice(&v.type_id().to_le_bytes());
            v.write(&mut out);
        }
        let a = self.alignment;
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            offsets.push(offset);
            offset = (offset + t.byte_len()).div_ceil(a) * a;
        }
        for (t, off) in self.tensors.iter().zip(&offsets) {
            write_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ggml_type.to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
        }
        let data_start = (out.len() as u64).div_ceil(a) * a;
        out.resize(data_start as usize, 0);
        let end = self
            .tensors
            .iter()
            .zip(&offsets)
            .map(|(t, off)| off + t.byte_len())
            .max()
            .unwrap_or(0);
        out.resize((data_start + end) as usize, 0);
        out
    }
}

/// A vocabulary of `n` distinct token strings (`<unk>`, `<s>`, `</s>`, then `tok{i}`).
pub fn vocab(n: usize) -> Vec<String> {
    let mut v: Vec<String> = ["<unk>", "<s>", "</s>"]
        .iter()
        .take(n)
        .map(|s| s.to_string())
        .collect();
    while v.len() < n {
        v.push(format!("tok{}", v.len()));
    }
    v
}
