//! Limits on what a model file may make tanto do, and the one capped reader
//! for small files.
//!
//! Model files are untrusted input. Every number that sizes an allocation or
//! a loop (a GGUF count, an array or string length, a config.json dimension)
//! is checked against a sane limit *and* against what the file could hold
//! before it is used; every small file (JSON, refs, sentinels, markers) is
//! read through [`read_capped`], which opens without blocking, refuses
//! anything that is not a regular file (a link to `/dev/zero`, a fifo) and
//! never reads more than its cap. The limits are documented in
//! docs/SECURITY.md.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::Path;

/// JSON metadata beside the weights (config.json, tokenizer_config.json,
/// preprocessor configs, the safetensors index, the pull marker): 16 MiB.
pub const JSON_MAX: u64 = 16 << 20;
/// tokenizer.json (the engine's read; real ones reach ~35 MB): 256 MiB.
pub const TOKENIZER_JSON_MAX: u64 = 256 << 20;
/// A workspace sentinel (its file index grows with the file count): 64 MiB.
pub const SENTINEL_MAX: u64 = 64 << 20;
/// A `refs/*` file (a 40-hex commit): 4 KiB.
pub const REF_MAX: u64 = 4 << 10;
/// A Git LFS pointer candidate: under 1 KiB.
pub const LFS_POINTER_MAX: u64 = 1024;

/// Transformer layers (`block_count`, `num_hidden_layers`); the largest
/// published models have ~130.
pub const MAX_LAYERS: u64 = 4096;
/// Context length (`context_length`, `max_position_embeddings`); the largest
/// published is 10 M tokens.
pub const MAX_CONTEXT: u64 = 1 << 24;
/// Hidden / embedding size; the largest published is ~16 K.
pub const MAX_HIDDEN: u64 = 1 << 18;
/// Feed-forward (intermediate) size.
pub const MAX_FFN: u64 = 1 << 20;
/// Attention heads and key/value heads.
pub const MAX_HEADS: u64 = 1 << 14;
/// Vocabulary size; the largest published is ~262 K.
pub const MAX_VOCAB: u64 = 1 << 24;
/// Tensors in one GGUF file (also bounded by the bytes left in the file).
pub const MAX_TENSORS: u64 = 1 << 20;
/// Metadata keys in one GGUF file (also bounded by the bytes left).
pub const MAX_GGUF_KEYS: u64 = 1 << 20;
/// Elements of one GGUF metadata array (vocabularies, merges, scores).
pub const MAX_GGUF_ARRAY: u64 = 1 << 26;
/// A GGUF metadata string that is kept (chat templates, names): 16 MiB.
pub const MAX_GGUF_STRING: u64 = 16 << 20;
/// A GGUF key or tensor name: 64 KiB.
pub const MAX_GGUF_NAME: u64 = 64 << 10;
/// The context the memory gate assumes when the model does not say (the
/// engine's own default).
pub const DEFAULT_CONTEXT: u64 = 4096;

/// Why a small file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not found")]
    NotFound,
    /// A fifo, socket, device or directory where a file should be.
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    #[error("{size} bytes is over the {cap}-byte limit")]
    TooLarge { size: u64, cap: u64 },
    #[error("{0}")]
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::NotFound {
            ReadError::NotFound
        } else {
            ReadError::Io(e)
        }
    }
}

/// Every name [`file_type_name`] returns.
pub const FILE_TYPE_NAMES: &[&str] = &[
    "directory",
    "fifo",
    "socket",
    "character device",
    "block device",
    "regular file",
    "special file",
];

/// What a non-regular file is, for messages.
pub fn file_type_name(m: &Metadata) -> &'static str {
    let ft = m.file_type();
    if ft.is_dir() {
        return "directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "fifo";
        }
        if ft.is_socket() {
            return "socket";
        }
        if ft.is_char_device() {
            return "character device";
        }
        if ft.is_block_device() {
            return "block device";
        }
    }
    if ft.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// Open `path` (following links) only if it is a regular file. The open does
/// not block (a fifo with no writer would), and the type is checked on the
/// opened handle, so a swap between check and open cannot slip a device in.
pub fn open_regular(path: &Path) -> Result<(File, Metadata), ReadError> {
    let mut o = fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let f = o.open(path)?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(ReadError::NotRegular(file_type_name(&m)));
    }
    Ok((f, m))
}

/// Read a whole small file, at most `cap` bytes: as many bytes as it held
/// when opened (a file reporting size 0, as procfs files do, is read to its
/// end and refused past the cap).
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let (f, m) = open_regular(path)?;
    if m.len() > cap {
        return Err(ReadError::TooLarge { size: m.len(), cap });
    }
    // The size is at most `cap`, so it may size the buffer. Read that many
    // bytes (what the file held when opened): the limit ends the read without
    // a further syscall. A size of 0 says nothing (procfs and friends): read
    // to the end then, capped.
    let limit = if m.len() > 0 { m.len() } else { cap + 1 };
    let mut buf = Vec::with_capacity(m.len() as usize);
    f.take(limit).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(ReadError::TooLarge {
            size: buf.len() as u64,
            cap,
        });
    }
    Ok(buf)
}

/// [`read_capped`] as UTF-8 text (lossy).
pub fn read_capped_string(path: &Path, cap: u64) -> Result<String, ReadError> {
    read_capped(path, cap).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `n` in binary units for messages (`16.0 MiB`).
pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_types() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.json");
        fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_capped(&p, 10).unwrap().len(), 10);
        assert!(matches!(
            read_capped(&p, 9),
            Err(ReadError::TooLarge { size: 10, cap: 9 })
        ));
        assert!(matches!(
            read_capped(&t.path().join("nope"), 9),
            Err(ReadError::NotFound)
        ));
        assert!(matches!(
            read_capped(t.path(), 9),
            Err(ReadError::NotRegular("directory"))
        ));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/dev/zero", t.path().join("zero")).unwrap();
            assert!(matches!(
                read_capped(&t.path().join("zero"), 1 << 20),
                Err(ReadError::NotRegular("character device"))
            ));
        }
    }
}
