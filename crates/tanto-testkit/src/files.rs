//! The content of one model folder, independent of where it is written.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Bytes written into the fixture.
    Bytes(Vec<u8>),
    /// A real file elsewhere on disk, linked rather than copied (large real models).
    External(PathBuf),
}

/// A model folder: `/`-separated relative paths → content, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Files {
    entries: BTreeMap<String, Content>,
}

impl Files {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) a file.
    pub fn insert(&mut self, path: &str, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.entries
            .insert(path.to_string(), Content::Bytes(bytes.into()));
        self
    }

    /// Builder form of [`Files::insert`].
    pub fn with(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.insert(path, bytes);
        self
    }

    /// Add a pretty-printed JSON file.
    pub fn insert_json(&mut self, path: &str, v: &Value) -> &mut Self {
        let mut s = serde_json::to_string_pretty(v).expect("serialisable JSON");
        s.push('\n');
        self.insert(path, s)
    }

    /// Builder form of [`Files::insert_json`].
    pub fn with_json(mut self, path: &str, v: &Value) -> Self {
        self.insert_json(path, v);
        self
    }

    /// Refer to a real file instead of holding its bytes.
    pub fn insert_external(&mut self, path: &str, target: impl Into<PathBuf>) -> &mut Self {
        self.entries
            .insert(path.to_string(), Content::External(target.into()));
        self
    }

    /// Builder form of [`Files::insert_external`].
    pub fn with_external(mut self, path: &str, target: impl Into<PathBuf>) -> Self {
        self.insert_external(path, target);
        self
    }

    pub fn remove(&mut self, path: &str) -> Option<Content> {
        self.entries.remove(path)
    }

    /// Builder form of [`Files::remove`] (panics when the file is not there, to catch typos).
    pub fn without(mut self, path: &str) -> Self {
        assert!(self.remove(path).is_some(), "fixture has no file {path}");
        self
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// The bytes of an in-memory file (None for missing or external files).
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        match self.entries.get(path)? {
            Content::Bytes(b) => Some(b),
            Content::External(_) => None,
        }
    }

    /// Parse an in-memory JSON file.
    pub fn json(&self, path: &str) -> Option<Value> {
        serde_json::from_slice(self.get(path)?).ok()
    }

    /// Edit a JSON file in place (panics when it is missing or not JSON).
    pub fn update_json(&mut self, path: &str, f: impl FnOnce(&mut Value)) -> &mut Self {
        let mut v = self
            .json(path)
            .unwrap_or_else(|| panic!("fixture has no JSON file {path}"));
        f(&mut v);
        self.insert_json(path, &v)
    }

    /// Replace a file's bytes through a function (panics when it is missing).
    pub fn map_bytes(&mut self, path: &str, f: impl FnOnce(Vec<u8>) -> Vec<u8>) -> &mut Self {
        let b = self
            .get(path)
            .unwrap_or_else(|| panic!("fixture has no in-memory file {path}"))
            .to_vec();
        self.insert(path, f(b))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Content)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total size of the in-memory files (external files count as 0).
    pub fn bytes_len(&self) -> u64 {
        self.entries
            .values()
            .map(|c| match c {
                Content::Bytes(b) => b.len() as u64,
                Content::External(_) => 0,
            })
            .sum()
    }

    /// Write as a plain folder (regular files; external files become absolute symlinks).
    pub fn write_to(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)?;
        for (path, content) in &self.entries {
            let dest = dir.join(path);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            match content {
                Content::Bytes(b) => fs::write(&dest, b)?,
                Content::External(target) => symlink(target, &dest)?,
            }
        }
        Ok(())
    }
}

/// Create a symlink (Unix only: the hub cache layout needs them).
pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(target, link)
    }
    #[cfg(not(unix))]
    {
        let _ = (target, link);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "tanto-testkit needs symlinks (Unix)",
        ))
    }
}
