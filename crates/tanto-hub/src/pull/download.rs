//! One file of a pull: metadata, the per-blob lock, the transfer into
//! `blobs/<etag>.incomplete` (resumed with `Range`, retried after dropped
//! connections), size and hash verification, then the move into place. The
//! cache paths and writes are tanto-core's ([`CacheRepo`](tanto_core::store::CacheRepo)).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::api::{self, net_err, FileMeta};
use super::{FileStatus, PlannedFile, PullCtx, PulledFile};
use crate::lock::FileLock;
use crate::HubError;

/// Expected digest of a blob: sha256 (LFS) or git blob sha1.
enum Expect {
    Sha256(String),
    GitSha1(String),
    None,
}

impl Expect {
    /// From the listing's LFS sha256, else from the etag's shape.
    fn of(f: &PlannedFile, etag: &str) -> Expect {
        let etag = etag.to_ascii_lowercase();
        let is_hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        match &f.lfs_sha256 {
            Some(s) => Expect::Sha256(s.clone()),
            None if is_hex(&etag, 64) => Expect::Sha256(etag),
            None if is_hex(&etag, 40) => Expect::GitSha1(etag),
            None => Expect::None,
        }
    }
}

/// A SHA-1 primed with git's blob header: fed the content, it gives the
/// blob id the hub uses for regular (non-LFS) files.
pub(crate) fn git_blob_sha1(size: u64) -> Sha1 {
    let mut h = Sha1::new();
    h.update(format!("blob {size}\0").as_bytes());
    h
}

enum Hasher {
    Sha256(Sha256),
    GitSha1(Sha1),
    None,
}

impl Hasher {
    fn new(expect: &Expect, size: u64) -> Hasher {
        match expect {
            Expect::Sha256(_) => Hasher::Sha256(Sha256::new()),
            Expect::GitSha1(_) => Hasher::GitSha1(git_blob_sha1(size)),
            Expect::None => Hasher::None,
        }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::GitSha1(h) => h.update(b),
            Hasher::None => {}
        }
    }
    fn finish(self) -> Option<String> {
        match self {
            Hasher::Sha256(h) => Some(hex::encode(h.finalize())),
            Hasher::GitSha1(h) => Some(hex::encode(h.finalize())),
            Hasher::None => None,
        }
    }
}

/// Bring one planned file into the snapshot: cached blob, or download it.
pub(super) fn fetch_file(ctx: &PullCtx, f: &PlannedFile) -> Result<PulledFile, HubError> {
    let meta = api::head_file(ctx, &f.path)?;
    let size = meta.size.or(f.size);
    let cache = &ctx.cache;
    let done = |status| PulledFile {
        path: f.path.clone(),
        etag: meta.etag.clone(),
        size: cache.blob_len(&meta.etag),
        status,
    };
    let link = || cache.link_blob(&ctx.commit, &f.path, &meta.etag);
    // A cached blob counts only when it has the size the hub announces: a
    // truncated or overwritten blob is what `health` sends the user here for.
    let cached =
        || cache.has_blob(&meta.etag) && size.is_none_or(|s| cache.blob_len(&meta.etag) == s);
    if cached() {
        link()?;
        return Ok(done(FileStatus::Cached));
    }
    let lock_path = cache
        .blob_lock_path(&meta.etag)
        .ok_or_else(|| HubError::UnsafeCachePath {
            path: cache.dir.clone(),
            reason: "the repo folder has no parent for its lock folder".into(),
        })?;
    let _lock = FileLock::acquire(&lock_path).map_err(|e| HubError::io(&lock_path, e))?;
    // Another process (or thread) may have finished it while we waited.
    if cached() {
        link()?;
        return Ok(done(FileStatus::Cached));
    }
    cache.discard_blob(&meta.etag)?;
    let expect = Expect::of(f, &meta.etag);
    if size.is_none() && matches!(expect, Expect::None) {
        return Err(HubError::Protocol {
            url: meta.location.clone(),
            message: format!(
                "{}: neither a size nor a verifiable hash (etag {:?}); \
                 refusing an unbounded, unverifiable download",
                f.path, meta.etag
            ),
        });
    }
    let status = download_to(ctx, f, &meta, size, &expect)?;
    cache.commit_blob(&meta.etag)?;
    link()?;
    Ok(done(status))
}

/// Download (resuming) into the `.incomplete` file and verify. On return the file
/// is complete and verified; on a size or hash mismatch it is deleted.
fn download_to(
    ctx: &PullCtx,
    f: &PlannedFile,
    meta: &FileMeta,
    size: Option<u64>,
    expect: &Expect,
) -> Result<FileStatus, HubError> {
    let cache = &ctx.cache;
    let partial = cache.partial_path(&meta.etag);
    let mut out = cache.open_partial(&meta.etag)?;
    let mut have = out.metadata().map_err(|e| HubError::io(&partial, e))?.len();
    if have > size.unwrap_or(ctx.opts.max_unsized_bytes) {
        out.set_len(0).map_err(|e| HubError::io(&partial, e))?;
        have = 0;
    }
    let resumed = have > 0;
    if let Some(p) = ctx.progress() {
        p.file_started(&f.path, size, have);
    }
    let mut attempts = 0u32;
    loop {
        if ctx.cancelled() {
            return Err(HubError::Cancelled);
        }
        match transfer(ctx, f, meta, size, &mut out, &mut have) {
            Ok(()) => break,
            Err(HubError::Network { .. }) if attempts < ctx.opts.retries && !ctx.cancelled() => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(200 * u64::from(attempts)));
            }
            Err(e) => return Err(e),
        }
    }
    out.sync_all().map_err(|e| HubError::io(&partial, e))?;
    if let Some(n) = size {
        if have != n {
            cache.discard_partial(&meta.etag);
            return Err(HubError::Protocol {
                url: meta.location.clone(),
                message: format!("{}: got {have} bytes, expected {n}", f.path),
            });
        }
    }
    verify(&mut out, have, expect).map_err(|e| match e {
        Verify::Io(e) => HubError::io(&partial, e),
        Verify::Mismatch { expected, actual } => {
            cache.discard_partial(&meta.etag);
            HubError::HashMismatch {
                file: f.path.clone(),
                expected,
                actual,
            }
        }
    })?;
    Ok(if resumed {
        FileStatus::Resumed
    } else {
        FileStatus::Downloaded
    })
}

enum Verify {
    Io(io::Error),
    Mismatch { expected: String, actual: String },
}

/// Hash the whole file (a resumed prefix has to be read back anyway).
fn verify(file: &mut File, len: u64, expect: &Expect) -> Result<(), Verify> {
    let expected = match expect {
        Expect::Sha256(s) | Expect::GitSha1(s) => s.clone(),
        Expect::None => return Ok(()),
    };
    let mut hasher = Hasher::new(expect, len);
    file.seek(SeekFrom::Start(0)).map_err(Verify::Io)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = file.read(&mut buf).map_err(Verify::Io)?;
        if k == 0 {
            break;
        }
        hasher.update(&buf[..k]);
    }
    let actual = hasher.finish().unwrap_or_default();
    if actual == expected {
        Ok(())
    } else {
        Err(Verify::Mismatch { expected, actual })
    }
}

/// One GET from `have` to the end, appending to `out`.
fn transfer(
    ctx: &PullCtx,
    f: &PlannedFile,
    meta: &FileMeta,
    size: Option<u64>,
    out: &mut File,
    have: &mut u64,
) -> Result<(), HubError> {
    if size == Some(*have) && *have > 0 {
        return Ok(());
    }
    let partial = ctx.cache.partial_path(&meta.etag);
    let url = &meta.location;
    let range = (*have > 0).then(|| format!("bytes={}-", *have));
    let mut resp = api::get_following(ctx, url, range)?;
    let status = resp.status();
    if status == StatusCode::RANGE_NOT_SATISFIABLE {
        // Our partial file is at least as long as the blob: restart from zero.
        out.set_len(0).map_err(|e| HubError::io(&partial, e))?;
        *have = 0;
        return Err(net_err(url, "range not satisfiable; restarting"));
    }
    if !status.is_success() {
        return Err(api::status_error(
            &resp,
            url,
            &ctx.repo,
            &ctx.cfg.endpoint,
            &ctx.commit,
            Some(&f.path),
        ));
    }
    if *have > 0 {
        let start = content_range_start(resp.headers());
        if status != StatusCode::PARTIAL_CONTENT || start != Some(*have) {
            // The server ignored the range: start over.
            out.set_len(0).map_err(|e| HubError::io(&partial, e))?;
            *have = 0;
            if status == StatusCode::PARTIAL_CONTENT {
                return Err(net_err(url, "unexpected Content-Range; restarting"));
            }
        }
    }
    // Never more than announced: read at most one byte past the limit, which is
    // enough to tell a longer body, and never write that byte.
    let limit = size.unwrap_or(ctx.opts.max_unsized_bytes);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if ctx.cancelled() {
            return Err(HubError::Cancelled);
        }
        let room = usize::try_from(limit.saturating_sub(*have).saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let k = match resp.read(&mut buf[..room]) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(net_err(url, e)),
        };
        if *have + k as u64 > limit {
            ctx.cache.discard_partial(&meta.etag);
            return Err(HubError::Protocol {
                url: url.clone(),
                message: match size {
                    Some(n) => format!("{}: more bytes than the announced {n}", f.path),
                    None => format!(
                        "{}: no size announced and more than the {limit}-byte limit",
                        f.path
                    ),
                },
            });
        }
        out.write_all(&buf[..k])
            .map_err(|e| HubError::io(&partial, e))?;
        *have += k as u64;
        ctx.add_bytes(k as u64);
        if let Some(p) = ctx.progress() {
            p.file_progress(&f.path, *have, size);
        }
    }
    if let Some(n) = size {
        if *have < n {
            return Err(net_err(
                url,
                format!("connection closed after {} of {n} bytes", *have),
            ));
        }
    }
    Ok(())
}

/// `Content-Range: bytes START-END/TOTAL` → START.
fn content_range_start(h: &HeaderMap) -> Option<u64> {
    let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    rest.split('-').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_RANGE, "bytes 10-99/100".parse().unwrap());
        assert_eq!(content_range_start(&h), Some(10));
    }
}
