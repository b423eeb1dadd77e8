//! CTranslate2 `model.bin` folders (faster-whisper's `Systran/faster-whisper-*`
//! repos): the header reader, shared by the probe and the engine's loader,
//! and the probe phase that names the format and the model from it.
//!
//! Layout, little-endian: `u32 binary_version | str spec | u32 revision |
//! u32 n_vars | n_vars × {str name | u8 rank | u32 dims[rank] | u8 dtype |
//! u32 nbytes | data} | u32 n_aliases | n_aliases × {str alias | str target}`,
//! where `str` is a `u16` length that counts a trailing NUL, then the bytes.
//! Only the directory is read; the tensor data is skipped with seeks.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::health::Findings;
use super::{FileEntry, Probe, Quantization, Scan};

/// The file names that mark a CTranslate2 folder (besides `model.bin`).
pub const VOCABULARY_FILES: &[&str] = &[
    "vocabulary.txt",
    "vocabulary.json",
    "shared_vocabulary.txt",
    "shared_vocabulary.json",
];

/// Binary versions this reader understands (CTranslate2 1.x–4.x write 1–6).
pub const MAX_BINARY_VERSION: u32 = 6;
/// More variables than any real model has: the header is corrupt.
const MAX_VARS: u32 = 1 << 20;
const MAX_RANK: u8 = 8;

#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("truncated CTranslate2 file: {0}")]
    Truncated(String),
    #[error("corrupt CTranslate2 header: {0}")]
    Corrupt(String),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Element types, by the ids CTranslate2 writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ct2DType {
    Float32,
    Int8,
    Int16,
    Int32,
    Float16,
    Bfloat16,
}

impl Ct2DType {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Ct2DType::Float32,
            1 => Ct2DType::Int8,
            2 => Ct2DType::Int16,
            3 => Ct2DType::Int32,
            4 => Ct2DType::Float16,
            5 => Ct2DType::Bfloat16,
            _ => return None,
        })
    }
    pub fn size(self) -> u64 {
        match self {
            Ct2DType::Int8 => 1,
            Ct2DType::Int16 | Ct2DType::Float16 | Ct2DType::Bfloat16 => 2,
            Ct2DType::Float32 | Ct2DType::Int32 => 4,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Ct2DType::Float32 => "float32",
            Ct2DType::Int8 => "int8",
            Ct2DType::Int16 => "int16",
            Ct2DType::Int32 => "int32",
            Ct2DType::Float16 => "float16",
            Ct2DType::Bfloat16 => "bfloat16",
        }
    }
}

/// One variable: its shape, type and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ct2Var {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: Ct2DType,
    /// Byte offset of the data in the file.
    pub offset: u64,
    pub nbytes: u64,
}

impl Ct2Var {
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// The directory of a `model.bin`.
#[derive(Debug, Clone)]
pub struct Ct2Header {
    pub binary_version: u32,
    /// `WhisperSpec`, `TransformerSpec`, … (empty for binary version 1).
    pub spec: String,
    pub revision: u32,
    pub vars: Vec<Ct2Var>,
    /// `(alias, target)`: a name that shares another variable's data.
    pub aliases: Vec<(String, String)>,
}

impl Ct2Header {
    /// A variable by name, following aliases.
    pub fn get(&self, name: &str) -> Option<&Ct2Var> {
        let target = self
            .aliases
            .iter()
            .find(|(a, _)| a == name)
            .map_or(name, |(_, t)| t.as_str());
        self.vars.iter().find(|v| v.name == target)
    }

    /// Parameters: elements of every tensor of rank ≥ 1, less the per-row
    /// int8 scales.
    pub fn parameters(&self) -> u64 {
        self.vars
            .iter()
            .filter(|v| !v.shape.is_empty() && !v.name.ends_with("_scale"))
            .map(Ct2Var::elements)
            .fold(0u64, u64::saturating_add)
    }

    /// The dtype of the matrices (rank 2), by bytes: what the checkpoint "is".
    pub fn weight_dtype(&self) -> Option<Ct2DType> {
        let mut by: Vec<(Ct2DType, u64)> = Vec::new();
        for v in self.vars.iter().filter(|v| v.shape.len() == 2) {
            match by.iter_mut().find(|(d, _)| *d == v.dtype) {
                Some((_, n)) => *n += v.nbytes,
                None => by.push((v.dtype, v.nbytes)),
            }
        }
        by.into_iter().max_by_key(|(_, n)| *n).map(|(d, _)| d)
    }
}

struct Reader<R> {
    r: R,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Ct2Error> {
        let mut b = [0u8; N];
        if self.pos + N as u64 > self.len {
            return Err(Ct2Error::Truncated(format!(
                "ends inside {what} at byte {}",
                self.pos
            )));
        }
        self.r.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u8(&mut self, what: &str) -> Result<u8, Ct2Error> {
        Ok(self.bytes::<1>(what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32, Ct2Error> {
        Ok(u32::from_le_bytes(self.bytes::<4>(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String, Ct2Error> {
        let n = u16::from_le_bytes(self.bytes::<2>(what)?) as u64;
        if n == 0 || self.pos + n > self.len {
            return Err(if n == 0 {
                Ct2Error::Corrupt(format!("{what} has length 0"))
            } else {
                Ct2Error::Truncated(format!("ends inside {what} at byte {}", self.pos))
            });
        }
        let mut b = vec![0u8; n as usize];
        self.r.read_exact(&mut b)?;
        self.pos += n;
        if b.pop() != Some(0) {
            return Err(Ct2Error::Corrupt(format!("{what} is not NUL-terminated")));
        }
        String::from_utf8(b).map_err(|_| Ct2Error::Corrupt(format!("{what} is not UTF-8")))
    }
    fn skip(&mut self, n: u64, what: &str) -> Result<(), Ct2Error> {
        if self.pos.saturating_add(n) > self.len {
            return Err(Ct2Error::Truncated(format!(
                "{what} needs {n} bytes at byte {}, the file has {}",
                self.pos, self.len
            )));
        }
        self.r.seek(SeekFrom::Current(n as i64))?;
        self.pos += n;
        Ok(())
    }
}

/// Read the directory of a `model.bin` (no tensor data).
pub fn read_header(path: &Path) -> Result<Ct2Header, Ct2Error> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut r = Reader {
        r: BufReader::with_capacity(1 << 16, f),
        pos: 0,
        len,
    };
    let binary_version = r.u32("the binary version")?;
    if binary_version == 0 || binary_version > MAX_BINARY_VERSION {
        return Err(Ct2Error::Corrupt(format!(
            "binary version {binary_version} (this build reads 1–{MAX_BINARY_VERSION})"
        )));
    }
    let (spec, revision) = if binary_version >= 2 {
        (r.string("the spec name")?, r.u32("the spec revision")?)
    } else {
        (String::new(), 1)
    };
    let n_vars = r.u32("the variable count")?;
    if n_vars > MAX_VARS {
        return Err(Ct2Error::Corrupt(format!("{n_vars} variables")));
    }
    let mut vars = Vec::with_capacity(n_vars.min(4096) as usize);
    for i in 0..n_vars {
        let name = r.string(&format!("the name of variable {i}"))?;
        let rank = r.u8(&format!("the rank of '{name}'"))?;
        if rank > MAX_RANK {
            return Err(Ct2Error::Corrupt(format!("'{name}' has rank {rank}")));
        }
        let mut shape = Vec::with_capacity(rank as usize);
        for _ in 0..rank {
            shape.push(r.u32(&format!("the shape of '{name}'"))? as u64);
        }
        let id = r.u8(&format!("the dtype of '{name}'"))?;
        let dtype = Ct2DType::from_id(id)
            .ok_or_else(|| Ct2Error::Corrupt(format!("'{name}' has dtype id {id}")))?;
        let nbytes = r.u32(&format!("the size of '{name}'"))? as u64;
        let elements = shape
            .iter()
            .try_fold(1u64, |a, d| a.checked_mul(*d))
            .and_then(|n| n.checked_mul(dtype.size()));
        if elements != Some(nbytes) {
            return Err(Ct2Error::Corrupt(format!(
                "'{name}' is {shape:?} {} but stores {nbytes} bytes",
                dtype.as_str()
            )));
        }
        let offset = r.pos;
        r.skip(nbytes, &format!("the data of '{name}'"))?;
        vars.push(Ct2Var {
            name,
            shape,
            dtype,
            offset,
            nbytes,
        });
    }
    let mut aliases = Vec::new();
    if r.pos < r.len {
        let n = r.u32("the alias count")?;
        if n > MAX_VARS {
            return Err(Ct2Error::Corrupt(format!("{n} aliases")));
        }
        for _ in 0..n {
            let a = r.string("an alias")?;
            let t = r.string("an alias target")?;
            aliases.push((a, t));
        }
    }
    Ok(Ct2Header {
        binary_version,
        spec,
        revision,
        vars,
        aliases,
    })
}

/// What the probe keeps of a CTranslate2 checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ct2Info {
    pub spec: String,
    pub revision: u32,
    pub binary_version: u32,
    /// Rows of the decoder's embedding (51864 for `.en` Whisper models).
    pub vocab_size: Option<u64>,
    pub encoder_layers: u64,
    pub decoder_layers: u64,
    pub d_model: Option<u64>,
    pub n_mels: Option<u64>,
}

/// Whether the listing is a CTranslate2 folder: `model.bin` at the top with a
/// vocabulary file beside it.
pub(crate) fn is_ct2(files: &[FileEntry]) -> bool {
    let top = |n: &str| files.iter().any(|f| f.path == n && !f.dangling);
    top("model.bin") && VOCABULARY_FILES.iter().any(|v| top(v))
}

/// `config_model_type` for a spec name: `WhisperSpec` → `whisper`.
pub fn model_type(spec: &str) -> String {
    match spec {
        "WhisperSpec" => "whisper".into(),
        other => format!(
            "ctranslate2-{}",
            other.trim_end_matches("Spec").to_ascii_lowercase()
        ),
    }
}

/// The probe phase: read the header, fill in what it tells.
pub(crate) fn read(s: &Scan, p: &mut Probe, f: &mut Findings) {
    let Some(entry) = s.files.iter().find(|e| e.path == "model.bin") else {
        return;
    };
    if entry.size == 0 {
        return; // `empty_weights` is reported by the weights phase
    }
    let h = match read_header(&s.dir.join("model.bin")) {
        Ok(h) => h,
        Err(e) => {
            let code = match e {
                Ct2Error::Truncated(_) => "truncated_ct2",
                _ => "corrupt_ct2",
            };
            f.fail_maybe_fix(code, format!("model.bin: {e}"), s.pull_fix.as_deref());
            return;
        }
    };
    let layers = |prefix: &str| {
        let mut n = 0u64;
        while h
            .vars
            .iter()
            .any(|v| v.name.starts_with(&format!("{prefix}/layer_{n}/")))
        {
            n += 1;
        }
        n
    };
    let emb = h.get("decoder/embeddings/weight");
    let info = Ct2Info {
        spec: h.spec.clone(),
        revision: h.revision,
        binary_version: h.binary_version,
        vocab_size: emb.and_then(|v| v.shape.first().copied()),
        encoder_layers: layers("encoder"),
        decoder_layers: layers("decoder"),
        d_model: emb.and_then(|v| v.shape.get(1).copied()),
        n_mels: h
            .get("encoder/conv1/weight")
            .and_then(|v| v.shape.get(1).copied()),
    };
    let mt = model_type(&h.spec);
    p.config_model_type = Some(mt.clone());
    p.architecture = Some(if h.spec.is_empty() {
        "ctranslate2".into()
    } else {
        h.spec.clone()
    });
    p.parameters = Some(h.parameters());
    if let Some(d) = h.weight_dtype() {
        p.dtype = Some(d.as_str().to_string());
        if d == Ct2DType::Int8 || d == Ct2DType::Int16 {
            p.quantization = Some(Quantization {
                bits: Some(d.size() as u32 * 8),
                group_size: None,
                method: "ctranslate2".into(),
                mode: Some("per-row".into()),
                file_type: None,
            });
        }
    }
    if mt == "whisper" {
        // The decoder's positions bound the tokens of one window.
        p.context_length = h
            .get("decoder/position_encodings/encodings")
            .and_then(|v| v.shape.first().copied());
    }
    p.ct2 = Some(info);
}
