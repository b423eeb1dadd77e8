//! GGUF header reader: metadata and tensor directory only, never tensor data.
//!
//! Validates that every tensor's data lies inside the file, so a truncated
//! download is reported before anything tries to mmap it. The file is
//! untrusted: every count and length is checked against [`crate::limits`]
//! and against the bytes left in the file before it sizes anything, so a
//! 50 KB file claiming four billion tensors is `Corrupt`, not an allocation.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use serde_json::Value;

use crate::limits;

const MAGIC: &[u8; 4] = b"GGUF";

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("not a GGUF file (bad magic)")]
    BadMagic,
    #[error("unsupported GGUF version {0}")]
    Version(u32),
    #[error("truncated GGUF header")]
    Truncated,
    /// A count or length that the bytes left in the file cannot hold.
    #[error("truncated GGUF header: {0}")]
    TruncatedHeader(String),
    #[error("corrupt GGUF header: {0}")]
    Corrupt(String),
    #[error("truncated GGUF file: tensor data needs {needed} bytes, file has {actual}")]
    TruncatedData { needed: u64, actual: u64 },
    #[error("I/O error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for GgufError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            GgufError::Truncated
        } else {
            GgufError::Io(e)
        }
    }
}

#[derive(Debug, Clone)]
pub struct GgufTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub offset: u64,
}

impl GgufTensor {
    /// Elements (saturating: a header that passed [`read_header`] never overflows).
    pub fn elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |a, d| a.saturating_mul(*d))
    }
}

/// Summary of a GGUF file. Large arrays (vocabularies, merges) are not kept:
/// only their lengths, under `array_lengths`.
#[derive(Debug, Clone, Default)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub array_lengths: BTreeMap<String, u64>,
    pub tensors: Vec<GgufTensor>,
    pub file_size: u64,
}

impl GgufHeader {
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.metadata.get(key).and_then(Value::as_u64)
    }
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }
    /// `<arch>.context_length`.
    pub fn context_length(&self) -> Option<u64> {
        let arch = self.architecture()?;
        self.get_u64(&format!("{arch}.context_length"))
    }
    pub fn file_type(&self) -> Option<u64> {
        self.get_u64("general.file_type")
    }
    pub fn has_chat_template(&self) -> bool {
        self.get_str("tokenizer.chat_template")
            .is_some_and(|s| !s.trim().is_empty())
    }
    pub fn has_tokenizer(&self) -> bool {
        self.array_lengths
            .get("tokenizer.ggml.tokens")
            .is_some_and(|n| *n > 0)
    }
    pub fn parameter_count(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.elements()))
    }
}

/// `(block size in elements, bytes per block)` for a ggml tensor type.
pub fn ggml_type_layout(t: u32) -> Option<(u64, u64)> {
    Some(match t {
        0 => (1, 4),
        1 => (1, 2),
        2 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 36),
        10 => (256, 84),
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 => (256, 66),
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        20 => (32, 18),
        21 => (256, 110),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),
        29 => (256, 56),
        30 => (1, 2),
        34 => (256, 54),
        35 => (256, 66),
        39 => (32, 17),
        _ => return None,
    })
}

/// Name of a ggml tensor type (`Q4_K`, `F16`, …).
pub fn ggml_type_name(t: u32) -> &'static str {
    match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => "unknown",
    }
}

/// `general.file_type` → llama.cpp's name for it, and the nominal bits per weight.
pub fn file_type_name(ft: u64) -> Option<(&'static str, u32)> {
    Some(match ft {
        0 => ("F32", 32),
        1 => ("F16", 16),
        2 => ("Q4_0", 4),
        3 => ("Q4_1", 4),
        7 => ("Q8_0", 8),
        8 => ("Q5_0", 5),
        9 => ("Q5_1", 5),
        10 => ("Q2_K", 2),
        11 => ("Q3_K_S", 3),
        12 => ("Q3_K_M", 3),
        13 => ("Q3_K_L", 3),
        14 => ("Q4_K_S", 4),
        15 => ("Q4_K_M", 4),
        16 => ("Q5_K_S", 5),
        17 => ("Q5_K_M", 5),
        18 => ("Q6_K", 6),
        19 => ("IQ2_XXS", 2),
        20 => ("IQ2_XS", 2),
        21 => ("Q2_K_S", 2),
        22 => ("IQ3_XS", 3),
        23 => ("IQ3_XXS", 3),
        24 => ("IQ1_S", 1),
        25 => ("IQ4_NL", 4),
        26 => ("IQ3_S", 3),
        27 => ("IQ3_M", 3),
        28 => ("IQ2_S", 2),
        29 => ("IQ2_M", 2),
        30 => ("IQ4_XS", 4),
        31 => ("IQ1_M", 1),
        32 => ("BF16", 16),
        36 => ("TQ1_0", 1),
        37 => ("TQ2_0", 2),
        38 => ("MXFP4_MOE", 4),
        _ => return None,
    })
}

struct Reader<R> {
    inner: R,
    /// Bytes consumed so far (kept here: asking the file would be a syscall).
    pos: u64,
    file_size: u64,
}

impl<R: Read + Seek> Reader<BufReader<R>> {
    /// Bytes left after the current position.
    fn remaining(&self) -> u64 {
        self.file_size.saturating_sub(self.pos)
    }
    fn exact<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.exact::<1>()?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.exact()?))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.exact()?))
    }
    /// Skip `n` bytes, which must lie inside the file. `seek_relative` keeps
    /// the buffer when the target is inside it; a plain `seek` would drop it
    /// and refill 64 KiB per skipped vocabulary string (hundreds of thousands
    /// of syscalls for a real GGUF).
    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated);
        }
        let k = i64::try_from(n).map_err(|_| GgufError::Truncated)?;
        self.inner.seek_relative(k)?;
        self.pos += n;
        Ok(())
    }
    /// A string length, checked against `max` and the bytes left.
    fn string_len(&mut self, max: u64, what: &str) -> Result<u64, GgufError> {
        let len = self.u64()?;
        if len > max {
            return Err(GgufError::Corrupt(format!(
                "{what} of {len} bytes (limit {max})"
            )));
        }
        if len > self.remaining() {
            return Err(GgufError::Truncated);
        }
        Ok(len)
    }
    /// A string that is kept; its length is checked before anything is allocated.
    fn string(&mut self, max: u64, what: &str) -> Result<String, GgufError> {
        let len = self.string_len(max, what)?;
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf)?;
        self.pos += len;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    fn skip_string(&mut self) -> Result<(), GgufError> {
        let len = self.string_len(u64::MAX, "string")?;
        self.skip(len)
    }
    fn scalar(&mut self, ty: u32) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::from(self.u8()?),
            1 => Value::from(self.u8()? as i8),
            2 => Value::from(u16::from_le_bytes(self.exact()?)),
            3 => Value::from(i16::from_le_bytes(self.exact()?)),
            4 => Value::from(self.u32()?),
            5 => Value::from(self.u32()? as i32),
            6 => Value::from(f32::from_bits(self.u32()?) as f64),
            7 => Value::from(self.u8()? != 0),
            8 => Value::from(self.string(limits::MAX_GGUF_STRING, "string value")?),
            10 => Value::from(self.u64()?),
            11 => Value::from(self.u64()? as i64),
            12 => Value::from(f64::from_bits(self.u64()?)),
            other => return Err(GgufError::Corrupt(format!("unknown value type {other}"))),
        })
    }
    /// Bytes per element of a fixed-size type; strings take at least their 8-byte length.
    fn scalar_size(ty: u32) -> Option<u64> {
        match ty {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        }
    }
}

/// The least bytes one metadata entry takes (key length, value type, a 1-byte value).
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// The least bytes one tensor info takes (name length, dims count, type, offset).
const MIN_TENSOR_BYTES: u64 = 8 + 4 + 4 + 8;

/// Arrays up to this many elements are kept as values; longer ones only counted.
const KEEP_ARRAY: u64 = 64;

type FileReader = Reader<BufReader<File>>;

/// Read the header of a GGUF file: counts, metadata, tensor infos, then the
/// check that every tensor's data lies inside the file.
pub fn read_header(path: &Path) -> Result<GgufHeader, GgufError> {
    let (file, meta) = limits::open_regular(path).map_err(|e| match e {
        limits::ReadError::Io(e) => GgufError::Io(e),
        limits::ReadError::NotFound => GgufError::Io(io::ErrorKind::NotFound.into()),
        other => GgufError::Io(io::Error::other(other.to_string())),
    })?;
    let file_size = meta.len();
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        file_size,
    };
    let magic: [u8; 4] = r.exact()?;
    if &magic != MAGIC {
        return Err(GgufError::BadMagic);
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    let (n_tensors, n_kv) = read_counts(&mut r)?;
    let mut h = GgufHeader {
        version,
        file_size,
        ..Default::default()
    };
    for _ in 0..n_kv {
        read_kv(&mut r, &mut h)?;
    }
    let tensors = read_tensor_infos(&mut r, n_tensors)?;
    check_data_extent(&h, &tensors, r.pos, file_size)?;
    h.tensors = tensors;
    Ok(h)
}

/// Tensor and key counts, bounded by the limits and by the bytes left (each
/// entry takes a minimum size), so nothing is reserved from a hostile count.
fn read_counts(r: &mut FileReader) -> Result<(u64, u64), GgufError> {
    let n_tensors = r.u64()?;
    let n_kv = r.u64()?;
    let left = r.remaining();
    if n_kv > limits::MAX_GGUF_KEYS {
        return Err(GgufError::Corrupt(format!(
            "implausible key count {n_kv} (limit {})",
            limits::MAX_GGUF_KEYS
        )));
    }
    if n_tensors > limits::MAX_TENSORS {
        return Err(GgufError::Corrupt(format!(
            "implausible tensor count {n_tensors} (limit {})",
            limits::MAX_TENSORS
        )));
    }
    let min_bytes = n_tensors
        .saturating_mul(MIN_TENSOR_BYTES)
        .saturating_add(n_kv.saturating_mul(MIN_KV_BYTES));
    if min_bytes > left {
        return Err(GgufError::TruncatedHeader(format!(
            "{n_kv} keys and {n_tensors} tensors need at least {min_bytes} bytes, {left} are left"
        )));
    }
    Ok((n_tensors, n_kv))
}

/// One metadata key and its value (arrays: short ones kept, long ones counted).
fn read_kv(r: &mut FileReader, h: &mut GgufHeader) -> Result<(), GgufError> {
    let key = r.string(limits::MAX_GGUF_NAME, "key")?;
    let ty = r.u32()?;
    if ty != 9 {
        let v = r.scalar(ty)?;
        h.metadata.insert(key, v);
        return Ok(());
    }
    let ety = r.u32()?;
    let len = r.u64()?;
    // Each element takes at least its fixed size (strings: their 8-byte length).
    let min = if ety == 8 {
        8
    } else {
        FileReader::scalar_size(ety).unwrap_or(1)
    };
    if len > limits::MAX_GGUF_ARRAY {
        return Err(GgufError::Corrupt(format!(
            "array '{key}' of {len} items (limit {})",
            limits::MAX_GGUF_ARRAY
        )));
    }
    if len.saturating_mul(min) > r.remaining() {
        return Err(GgufError::TruncatedHeader(format!(
            "array '{key}' of {len} items cannot fit in the {} bytes left",
            r.remaining()
        )));
    }
    h.array_lengths.insert(key.clone(), len);
    if len <= KEEP_ARRAY && ety != 9 {
        let mut items = Vec::with_capacity(len as usize);
        for _ in 0..len {
            items.push(r.scalar(ety)?);
        }
        h.metadata.insert(key, Value::Array(items));
    } else if ety == 8 {
        for _ in 0..len {
            r.skip_string()?;
        }
    } else if let Some(sz) = FileReader::scalar_size(ety) {
        r.skip(len.saturating_mul(sz))?;
    } else {
        return Err(GgufError::Corrupt(format!("array '{key}' of type {ety}")));
    }
    Ok(())
}

/// The tensor table (names, shapes, types, offsets).
fn read_tensor_infos(r: &mut FileReader, n_tensors: u64) -> Result<Vec<GgufTensor>, GgufError> {
    // Bounded above by the bytes left; the vector grows as tensors are read.
    let mut tensors = Vec::with_capacity(n_tensors.min(4096) as usize);
    for _ in 0..n_tensors {
        let name = r.string(limits::MAX_GGUF_NAME, "tensor name")?;
        let n_dims = r.u32()?;
        if n_dims > 8 {
            return Err(GgufError::Corrupt(format!(
                "tensor '{name}' has {n_dims} dims"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64()?);
        }
        let ggml_type = r.u32()?;
        let offset = r.u64()?;
        tensors.push(GgufTensor {
            name,
            dims,
            ggml_type,
            offset,
        });
    }
    Ok(tensors)
}

/// Every tensor's bytes (after the aligned data start) must lie inside the file.
fn check_data_extent(
    h: &GgufHeader,
    tensors: &[GgufTensor],
    pos: u64,
    file_size: u64,
) -> Result<(), GgufError> {
    let alignment = h
        .get_u64("general.alignment")
        .filter(|a| *a > 0)
        .unwrap_or(32);
    if alignment > 1 << 20 {
        return Err(GgufError::Corrupt(format!("alignment {alignment}")));
    }
    let data_start = pos.div_ceil(alignment) * alignment;
    let mut needed = data_start;
    for t in tensors {
        let (block, bytes) = ggml_type_layout(t.ggml_type).ok_or_else(|| {
            GgufError::Corrupt(format!(
                "tensor '{}' has unknown type {}",
                t.name, t.ggml_type
            ))
        })?;
        let elems = t
            .dims
            .iter()
            .try_fold(1u64, |a, d| a.checked_mul(*d))
            .ok_or_else(|| GgufError::Corrupt(format!("tensor '{}' too large", t.name)))?;
        let size = elems.div_ceil(block).saturating_mul(bytes);
        needed = needed.max(data_start.saturating_add(t.offset).saturating_add(size));
    }
    if needed > file_size {
        return Err(GgufError::TruncatedData {
            needed,
            actual: file_size,
        });
    }
    Ok(())
}
