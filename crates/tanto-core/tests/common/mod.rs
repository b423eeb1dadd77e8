//! Shared helpers for tanto-core's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tanto_core::probe::{probe_resolved, Probe};
use tanto_core::resolve::{resolve, Resolved, Stores};
use tanto_testkit::HubCache;

/// A temp dir holding `hub/` (the cache) and `ws/` (the workspace home).
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub cache: HubCache,
}

impl Env {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = HubCache::new(tmp.path().join("hub"));
        std::fs::create_dir_all(tmp.path().join("ws")).expect("ws");
        Self { tmp, cache }
    }
    pub fn ws_home(&self) -> PathBuf {
        self.tmp.path().join("ws")
    }
    pub fn stores(&self) -> Stores {
        Stores {
            cache: self.cache.root().to_path_buf(),
            workspace_home: Some(self.ws_home()),
        }
    }
    pub fn resolve(&self, spec: &str) -> Resolved {
        resolve(spec, &self.stores()).unwrap_or_else(|e| panic!("resolve {spec}: {e}"))
    }
    pub fn probe(&self, spec: &str) -> Probe {
        probe_resolved(&self.resolve(spec))
    }
}

/// Probe an explicit path (folder or .gguf file).
pub fn probe_path(p: &Path) -> Probe {
    let stores = Stores {
        cache: PathBuf::from("/nonexistent-tanto-cache"),
        workspace_home: None,
    };
    let spec = p.to_str().expect("utf-8 path");
    let r = resolve(spec, &stores).unwrap_or_else(|e| panic!("resolve {spec}: {e}"));
    probe_resolved(&r)
}

pub fn codes(p: &Probe) -> Vec<&'static str> {
    p.health.problems.iter().map(|x| x.code).collect()
}
