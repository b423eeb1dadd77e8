//! A per-process scratch folder for targets whose parser takes a path: the
//! input is written to a file there (in /dev/shm when it exists, so the write
//! stays in memory), then parsed from disk exactly as the probe reads it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This process's scratch folder (created once, reused for every input).
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("tanto-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch folder");
        d
    })
}

/// Write `bytes` to `name` inside the scratch folder and return its path.
#[allow(dead_code)] // not every target writes a single file
pub fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir().join(name);
    std::fs::write(&p, bytes).expect("scratch write");
    p
}
