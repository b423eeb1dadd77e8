//! Damaged variants of valid safetensors / GGUF bytes.

/// Keep only the first `keep` bytes.
pub fn truncate(bytes: &[u8], keep: usize) -> Vec<u8> {
    bytes[..keep.min(bytes.len())].to_vec()
}

/// Cut `n` bytes off the end (tensor data missing: an interrupted copy).
pub fn cut_tail(bytes: &[u8], n: usize) -> Vec<u8> {
    bytes[..bytes.len().saturating_sub(n)].to_vec()
}

/// safetensors whose header is not JSON (same length, so the length field stays plausible).
pub fn safetensors_bad_json(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let n = crate::safetensors::header_len(bytes) as usize;
    let garbage = b"{\"model.embed_tokens.weight\": {\"dtype\": ";
    for (i, b) in out[8..8 + n].iter_mut().enumerate() {
        *b = *garbage.get(i).unwrap_or(&b'#');
    }
    out
}

/// safetensors whose header length field points past the end of the file.
pub fn safetensors_header_len_past_eof(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let n = out.len() as u64 * 4 + 1024;
    out[..8].copy_from_slice(&n.to_le_bytes());
    out
}

/// safetensors whose header length field is absurd (over the format's 100 MB limit).
pub fn safetensors_header_len_implausible(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[..8].copy_from_slice(&(u64::MAX / 3).to_le_bytes());
    out
}

/// GGUF with the magic overwritten.
pub fn gguf_bad_magic(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[..4].copy_from_slice(b"GGML");
    out
}

/// GGUF whose key/value count is absurd (a corrupt header, not a short file).
pub fn gguf_implausible_counts(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    // magic(4) version(4) n_tensors(8) n_kv(8)
    out[16..24].copy_from_slice(&(u64::MAX / 5).to_le_bytes());
    out
}

/// GGUF with an unsupported version number.
pub fn gguf_bad_version(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[4..8].copy_from_slice(&99u32.to_le_bytes());
    out
}

/// A git-LFS pointer file standing in for `content` (what a clone without `git lfs pull` leaves).
pub fn lfs_pointer(content: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
        hex::encode(Sha256::digest(content)),
        content.len()
    )
    .into_bytes()
}
