//! Conformance with mlx-knife 2.0.8's `--json` output (JSON API spec 0.2.4).
//!
//! tests/fixtures/mlxk-2.0.8/ holds what the real mlx-knife 2.0.8 printed
//! (scripts/ref/record-mlxk.sh) for every case in its cases.json. This test
//! rebuilds the same fixture tree with the same builder
//! (scripts/ref/mlxk-conformance/build_fixture.py; python3 is required, the test
//! fails without it), runs tanto with the same arguments and environment
//! (`mlxk` → `tanto`; tanto reads HF_HOME, MLXK_WORKSPACE_HOME, HF_ENDPOINT and
//! HF_HUB_OFFLINE itself), and compares field by field:
//! - every key mlx-knife emits must exist in tanto's output with the same JSON
//!   type (where mlx-knife has `null` for an optional field, tanto may give the
//!   type that field has when present — see NULLABLE); extra tanto keys are fine;
//! - values must be equal for the paths in MUST_AGREE (status, command,
//!   error.type, names, hashes, sizes, health verdicts, counts, actions, ...);
//! - the exit code, and for cases that change files, the files added/removed.
//!
//! Deliberate differences and mlx-knife defects are listed in EXEMPTIONS, each
//! with its reason. Everything else that differs is reported — all mismatches of
//! all cases in one message. TANTO_BIN overrides the binary under test.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Paths whose values must be equal (besides names and types, which always must).
/// `[]` = any array element, `*` = one key, `**` = any rest of the path.
const MUST_AGREE: &[&str] = &[
    "status",
    "command",
    "error.type",
    "error.matches",
    "error.available_hashes",
    // list / show model objects
    "data.count",
    "data.models",
    "data.models[].name",
    "data.models[].hash",
    "data.models[].size_bytes",
    "data.models[].last_modified",
    "data.models[].framework",
    "data.models[].model_type",
    "data.models[].capabilities",
    "data.models[].context_length",
    "data.models[].health",
    "data.models[].cached",
    "data.models[].origin",
    "data.models[].content_hash",
    "data.models[].hash_modified",
    "data.models[].clean",
    "data.models[].display_name",
    "data.model",
    "data.model.name",
    "data.model.hash",
    "data.model.size_bytes",
    "data.model.last_modified",
    "data.model.framework",
    "data.model.model_type",
    "data.model.capabilities",
    "data.model.context_length",
    "data.model.health",
    "data.model.cached",
    "data.model.origin",
    "data.model.content_hash",
    "data.model.hash_modified",
    "data.model.clean",
    "data.model.quantization.**",
    "data.metadata.*",
    "data.config.**",
    "data.workspace_metadata.**",
    "data.files",
    "data.files[].name",
    "data.files[].type",
    "data.files[].size",
    // health
    "data.healthy",
    "data.unhealthy",
    "data.healthy[].name",
    "data.healthy[].status",
    "data.unhealthy[].name",
    "data.unhealthy[].status",
    "data.summary.*",
    // rm
    "data.action",
    "data.requires_confirmation",
    "data.matches",
    "data.lock_files_cleaned",
    "data.commit_hash",
    "data.locks_detected",
    "data.lock_files",
    // pull
    "data.download_status",
    "data.expanded_name",
    // clone
    "data.clone_status",
    "data.target_dir",
    "data.health_check",
    "data.health",
    // convert
    "data.source",
    "data.target",
    "data.mode",
    "data.health_status",
    "data.content_hash",
    // version / run
    "data.json_api_spec_version",
    "data.prompt",
];

/// Fields whose type in mlx-knife's schema is `T | null`: (pattern, T, both ways).
/// Both ways: null and T are the same schema type, whichever side printed which
/// (values are still compared where MUST_AGREE says so). One way: only where
/// mlx-knife printed null may tanto give T (an object where mlx-knife has none).
const NULLABLE: &[(&str, &str, bool)] = &[
    ("data", "object", false),
    ("data.system", "object", false),
    ("data.metadata", "object", false),
    ("**.hash", "string", true),
    ("**.reason", "string", true),
    ("**.context_length", "integer", true),
    ("**.origin", "string", true),
    ("**.content_hash", "string", true),
    ("**.hash_modified", "string", true),
    ("**.clean", "boolean", true),
    ("**.quantization", "object", true),
    ("data.expanded_name", "string", true),
];

/// Documented per-case exemptions: (case, path pattern, mismatch kind, reason).
/// Case "*" = every case; kind "*" = any kind. Patterns are paths as the report
/// prints them (`data.models[org/name].health`), with `[]` = any element,
/// `*` = any one key, `**` = any rest. "(exit code)", "tree.added" and
/// "tree.removed" are the pseudo-paths of the exit code and of file changes.
/// Only two grounds are allowed: tanto deliberately differs, or mlx-knife
/// 2.0.8 is wrong (shared/reference/mlx-knife-features.md §9).
const EXEMPTIONS: &[(&str, &str, &str, &str)] = &[
    // --- tanto deliberately differs
    ("*", "**[tiny-org/tiny-llama-gguf].health", "value", GGUF),
    ("*", "**[tiny-org/tiny-llama-gguf].model_type", "value", GGUF),
    ("*", "**[tiny-org/tiny-llama-gguf].capabilities", "value", GGUF),
    ("*", "**[tiny-org/tiny-llama-gguf].context_length", "value", GGUF),
    ("health-all", "data.*[tiny-org/tiny-llama-gguf]", "*", GGUF),
    ("show-gguf", "data.model.health", "value", GGUF),
    ("show-gguf", "data.model.model_type", "value", GGUF),
    ("show-gguf", "data.model.capabilities", "value", GGUF),
    ("show-gguf", "data.model.context_length", "value", GGUF),
    ("*", "**[broken/truncated-safetensors].health", "value", TRUNCATED),
    ("health-all", "data.*[broken/truncated-safetensors]", "*", TRUNCATED),
    ("convert-source-in-cache", "**", "*",
     "tanto's convert takes any model spec as its source, cache snapshots included: it only reads \
      them and writes outside the cache; mlx-knife refuses every source path under HF_HOME"),
    ("show-files-embedder", "data.files[vocab.txt].type", "value",
     "tanto's probe counts WordPiece/BPE vocabularies (vocab.txt, vocab.json, merges.txt) as \
      tokenizer files; mlx-knife's rule is 'name contains \"tokenizer\"', which calls a BERT \
      vocab.txt 'other'"),
    // --- mlx-knife 2.0.8 is wrong
    ("convert-repair-index", "data.content_hash", "value",
     "mlx-knife defect (features §9.2): its rebuilt index has total_size = shard file sizes \
      (HF uses tensor bytes) and its weight_map in per-shard order; tanto writes the HF \
      index (tensor bytes, sorted map), so the target's index file and with it the v2 \
      content_hash differ (tanto's is v2 of its own target, checked in cli.rs; \
      convert-single-file, with no index, agrees)"),
    ("rm-hash", "tree.removed", "file change missing",
     "mlx-knife defect (features §9.2): `rm model@hash` deletes the whole model; tanto deletes only \
      that revision (anything tanto removes beyond mlx-knife is still reported)"),
    ("no-subcommand", "command", "type",
     "mlx-knife defect (features §0.3, §8.1): CLI-layer errors carry `command: null`, outside its \
      own schema's command enum"),
    ("*", "data.healthy[].managed", "missing", MANAGED),
];

const GGUF: &str = "GGUF repo without config.json: tanto reads the GGUF header (architecture, \
    context length, embedded chat template) and calls a complete GGUF healthy and chat; mlx-knife \
    has no GGUF reader: 'config.json missing', unhealthy, base, context_length null (gap §4.2)";
const TRUNCATED: &str = "tanto checks safetensors headers against the file size and calls a \
    truncated file unhealthy; mlx-knife only checks presence, size > 0 and LFS pointers";
const MANAGED: &str =
    "mlx-knife defect (features §8.1, §9.2): workspace entries of `health` carry \
    `managed`, which its schema's strict healthEntry forbids";

// ---------------------------------------------------------------------------
// paths and patterns

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    /// Array element: its position and, for arrays of named objects, the name.
    Elem(usize, Option<String>),
}

fn display(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Elem(_, Some(n)) => {
                let _ = write!(s, "[{n}]");
            }
            Seg::Elem(i, None) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    if s.is_empty() {
        s.push_str("(top)");
    }
    s
}

/// `data.models[org/x.y].name` → ["data", "models", "[org/x.y]", "name"]
/// (brackets may hold dots and slashes).
fn tokens(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                let mut b = String::from("[");
                for d in chars.by_ref() {
                    b.push(d);
                    if d == ']' {
                        break;
                    }
                }
                out.push(b);
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn path_tokens(path: &[Seg]) -> Vec<String> {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => k.clone(),
            Seg::Elem(_, Some(n)) => format!("[{n}]"),
            Seg::Elem(i, None) => format!("[{i}]"),
        })
        .collect()
}

/// `**` any rest, `*` one key, `[]` one element, anything else exactly.
fn tok_match(pat: &[String], path: &[String]) -> bool {
    match pat.first().map(String::as_str) {
        None => path.is_empty(),
        Some("**") => (0..=path.len()).any(|i| tok_match(&pat[1..], &path[i..])),
        Some(p) => match path.first() {
            Some(t)
                if p == t
                    || (p == "*" && !t.starts_with('['))
                    || (p == "[]" && t.starts_with('[')) =>
            {
                tok_match(&pat[1..], &path[1..])
            }
            _ => false,
        },
    }
}

fn matches(pattern: &str, path: &[Seg]) -> bool {
    tok_match(&tokens(pattern), &path_tokens(path))
}

fn must_agree(path: &[Seg]) -> bool {
    MUST_AGREE.iter().any(|p| matches(p, path))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

// ---------------------------------------------------------------------------
// the comparison

#[derive(Debug)]
struct Mismatch {
    path: String,
    /// Canonical path (`[]` for elements) for exemption matching.
    tokens: Vec<String>,
    what: &'static str,
    expected: String,
    got: String,
}

struct Cmp {
    /// Compare values of MUST_AGREE paths (false: names and types only).
    values: bool,
    out: Vec<Mismatch>,
}

impl Cmp {
    fn push(&mut self, path: &[Seg], what: &'static str, expected: String, got: String) {
        self.out.push(Mismatch {
            path: display(path),
            tokens: path_tokens(path),
            what,
            expected,
            got,
        });
    }

    fn value_checked(&self, path: &[Seg]) -> bool {
        self.values
            || ["status", "command", "error.type"]
                .iter()
                .any(|p| matches(p, path))
    }

    fn compare(&mut self, path: &mut Vec<Seg>, exp: &Value, got: &Value) {
        let (te, tg) = (type_name(exp), type_name(got));
        let compatible = te == tg
            || NULLABLE.iter().any(|(p, t, both)| {
                ((te == "null" && tg == *t) || (*both && tg == "null" && te == *t))
                    && matches(p, path)
            });
        if !compatible {
            self.push(
                path,
                "type",
                format!("{te} {}", short(exp)),
                format!("{tg} {}", short(got)),
            );
            return;
        }
        let agree = must_agree(path) && self.value_checked(path);
        match (exp, got) {
            (Value::Object(e), Value::Object(g)) => {
                for (k, ev) in e {
                    path.push(Seg::Key(k.clone()));
                    match g.get(k) {
                        Some(gv) => self.compare(path, ev, gv),
                        None => self.push(path, "missing", short(ev), "(absent)".into()),
                    }
                    path.pop();
                }
            }
            (Value::Array(e), Value::Array(g)) => self.compare_array(path, e, g, agree),
            _ => {
                if agree && exp != got {
                    self.push(path, "value", short(exp), short(got));
                }
            }
        }
    }

    fn compare_array(&mut self, path: &mut Vec<Seg>, e: &[Value], g: &[Value], agree: bool) {
        let name_of = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_string);
        let named = !e.is_empty() && e.iter().all(|v| name_of(v).is_some());
        if named {
            // Key = name, or name#k for the k-th repeat (show --files lists basenames).
            let keyed = |a: &[Value]| -> Vec<(String, usize)> {
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                a.iter()
                    .enumerate()
                    .filter_map(|(i, v)| {
                        let n = name_of(v)?;
                        let k = seen.entry(n.clone()).or_insert(0);
                        *k += 1;
                        Some((if *k == 1 { n } else { format!("{n}#{k}") }, i))
                    })
                    .collect()
            };
            let gi: BTreeMap<String, &Value> =
                keyed(g).into_iter().map(|(k, i)| (k, &g[i])).collect();
            for (n, i) in keyed(e) {
                let ev = &e[i];
                path.push(Seg::Elem(i, Some(n.clone())));
                match gi.get(&n) {
                    Some(gv) => self.compare(path, ev, gv),
                    None if agree => {
                        self.push(path, "missing element", short(ev), "(absent)".into())
                    }
                    None => {}
                }
                path.pop();
            }
            if agree {
                let en: BTreeSet<String> = keyed(e).into_iter().map(|(k, _)| k).collect();
                for (n, gv) in &gi {
                    if !en.contains(n) {
                        path.push(Seg::Elem(0, Some(n.clone())));
                        self.push(path, "extra element", "(absent)".into(), short(gv));
                        path.pop();
                    }
                }
            }
            return;
        }
        let scalars = e.iter().chain(g).all(|v| !v.is_object() && !v.is_array());
        if agree && scalars {
            let mut es: Vec<String> = e.iter().map(Value::to_string).collect();
            let mut gs: Vec<String> = g.iter().map(Value::to_string).collect();
            es.sort();
            gs.sort();
            if es != gs {
                self.push(
                    path,
                    "value",
                    short(&Value::Array(e.to_vec())),
                    short(&Value::Array(g.to_vec())),
                );
            }
            return;
        }
        if agree && e.len() != g.len() {
            self.push(
                path,
                "length",
                format!("{} element(s)", e.len()),
                format!("{} element(s)", g.len()),
            );
        }
        for (i, (ev, gv)) in e.iter().zip(g).enumerate() {
            path.push(Seg::Elem(i, None));
            self.compare(path, ev, gv);
            path.pop();
        }
        if !e.is_empty() && g.is_empty() && !agree {
            self.push(
                path,
                "length",
                format!("{} element(s)", e.len()),
                "0 element(s): element shape unchecked".into(),
            );
        }
    }
}

fn compare_docs(exp: &Value, got: &Value, values: bool) -> Vec<Mismatch> {
    let mut c = Cmp {
        values,
        out: Vec::new(),
    };
    c.compare(&mut Vec::new(), exp, got);
    c.out
}

// ---------------------------------------------------------------------------
// running a case

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

fn tanto_bin() -> PathBuf {
    std::env::var_os("TANTO_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tanto")))
}

fn python() -> &'static str {
    "python3"
}

fn build_fixture(root: &Path) {
    let script = repo_root().join("scripts/ref/mlxk-conformance/build_fixture.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(root)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "conformance: cannot run python3 (needed for the fixture builder {script:?}): {e}"
            )
        });
    assert!(
        out.status.success(),
        "build_fixture.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(root.join("home")).expect("home dir");
}

/// The fake hub child; killed (it is ours) when dropped.
struct Hub(Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_hub(root: &Path, port_file: &Path) -> (Hub, String) {
    let script = repo_root().join("scripts/ref/mlxk-conformance/fake_hub.py");
    let child = Command::new(python())
        .arg(&script)
        .arg(root)
        .arg(port_file)
        .stdout(Stdio::null())
        .spawn()
        .expect("start fake_hub.py");
    let hub = Hub(child);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if let Ok(p) = std::fs::read_to_string(port_file) {
            return (hub, p.trim().to_string());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("fake_hub.py did not start");
}

/// Files and symlinks under hf/hub, out and src, relative to root.
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    for top in ["hf/hub", "out", "src"] {
        walk(root, &root.join(top), &mut out);
    }
    out
}

/// huggingface_hub internals a download may leave, not part of the cache
/// contract (same rule as record.py's `ignored`): lock files it creates,
/// CACHEDIR.TAG, models--*/trees/ listings.
fn ignored_addition(p: &str) -> bool {
    let parts: Vec<&str> = p.split('/').collect();
    p.starts_with("hf/hub/.locks/")
        || p == "hf/hub/CACHEDIR.TAG"
        || (parts.len() > 3 && parts[..2] == ["hf", "hub"] && parts[3] == "trees")
}

fn strs(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

struct CaseResult {
    name: String,
    command_line: String,
    failures: Vec<Mismatch>,
    /// Exempted mismatches with the index of their EXEMPTIONS entry.
    exempted: Vec<(Mismatch, usize)>,
}

fn run_case(case: &Value, recorded: &Value) -> CaseResult {
    let name = case["name"].as_str().unwrap_or("?").to_string();
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().canonicalize().expect("canonical tempdir");
    let root = base.join("root");
    build_fixture(&root);
    let before = tree(&root);
    let rs = root.to_string_lossy().into_owned();

    let hub = case["fake_hub"]
        .as_bool()
        .unwrap_or(false)
        .then(|| start_hub(&root, &base.join("hub.port")));
    let port = hub.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
    let hub_url = format!("http://127.0.0.1:{port}");
    let expand = |s: &str| s.replace("$ROOT", &rs).replace("$HUB", &hub_url);

    let shape_only = case.get("tanto_argv").is_some();
    let argv: Vec<String> = case
        .get("tanto_argv")
        .unwrap_or(&case["argv"])
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(expand).collect())
        .unwrap_or_default();

    let mut cmd = Command::new(tanto_bin());
    cmd.args(&argv).current_dir(&root);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if ["HF_", "HUGGINGFACE_", "MLXK", "TANTO_"]
            .iter()
            .any(|p| k.starts_with(p))
            || k == "XDG_CACHE_HOME"
        {
            cmd.env_remove(&k);
        }
    }
    if let Some(env) = case["env"].as_object() {
        for (k, v) in env {
            cmd.env(k, expand(v.as_str().unwrap_or("")));
        }
    }
    let out = cmd.output().expect("run tanto");
    drop(hub);

    let mut failures = Vec::new();
    let mm = |path: &str, what: &'static str, expected: String, got: String| Mismatch {
        path: path.to_string(),
        tokens: tokens(path),
        what,
        expected,
        got,
    };
    let norm = |s: &[u8]| {
        let s = String::from_utf8_lossy(s).replace(&rs, "$ROOT");
        if port.is_empty() {
            s
        } else {
            s.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:$HUB_PORT")
        }
    };
    let stdout = norm(&out.stdout);
    let code = out.status.code().unwrap_or(-1);
    let exp_code = recorded["exit_code"].as_i64().unwrap_or(-1);
    if i64::from(code) != exp_code {
        failures.push(mm(
            "(exit code)",
            "value",
            exp_code.to_string(),
            code.to_string(),
        ));
    }
    match serde_json::from_str::<Value>(&stdout) {
        Ok(doc) => failures.extend(compare_docs(&recorded["stdout"], &doc, !shape_only)),
        Err(e) => {
            let err = norm(&out.stderr);
            failures.push(mm(
                "(stdout)",
                "not JSON",
                "a JSON envelope".into(),
                format!(
                    "{e}; stdout: {:?}; stderr: {:?}",
                    stdout.chars().take(300).collect::<String>(),
                    err.chars().take(300).collect::<String>()
                ),
            ))
        }
    }
    if let Some(t) = recorded.get("tree") {
        let after = tree(&root);
        let added: BTreeSet<String> = after
            .difference(&before)
            .filter(|p| !ignored_addition(p))
            .cloned()
            .collect();
        let removed: BTreeSet<String> = before.difference(&after).cloned().collect();
        for (label, exp, got) in [
            ("tree.added", strs(t.get("added")), added),
            ("tree.removed", strs(t.get("removed")), removed),
        ] {
            for p in exp.difference(&got) {
                failures.push(mm(
                    label,
                    "file change missing",
                    p.clone(),
                    "(not done)".into(),
                ));
            }
            for p in got.difference(&exp) {
                failures.push(mm(
                    label,
                    "extra file change",
                    "(not done)".into(),
                    p.clone(),
                ));
            }
        }
    }

    let mut result = CaseResult {
        command_line: format!("tanto {}", argv.join(" ")).replace(&rs, "$ROOT"),
        name,
        failures: Vec::new(),
        exempted: Vec::new(),
    };
    for m in failures {
        let ex = EXEMPTIONS.iter().position(|(c, p, w, _)| {
            (*c == "*" || *c == result.name)
                && (*w == "*" || *w == m.what)
                && tok_match(&tokens(p), &m.tokens)
        });
        match ex {
            Some(i) => result.exempted.push((m, i)),
            None => result.failures.push(m),
        }
    }
    result
}

fn report(results: &[CaseResult]) -> (String, usize) {
    let mut s = String::new();
    let mut n = 0;
    for r in results.iter().filter(|r| !r.failures.is_empty()) {
        let _ = writeln!(s, "\n== {} ({})", r.name, r.command_line);
        for m in &r.failures {
            n += 1;
            let _ = writeln!(
                s,
                "  {} [{}]\n      mlx-knife: {}\n      tanto:     {}",
                m.path, m.what, m.expected, m.got
            );
        }
    }
    let mut by_reason: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut used = BTreeSet::new();
    for r in results {
        for (m, i) in &r.exempted {
            used.insert(*i);
            by_reason
                .entry(EXEMPTIONS[*i].3)
                .or_default()
                .push(format!("{}: {} [{}]", r.name, m.path, m.what));
        }
    }
    if !by_reason.is_empty() {
        let _ = writeln!(s, "\n-- exempted (documented in EXEMPTIONS), by reason:");
        for (why, items) in by_reason {
            let _ = writeln!(s, "  * {why}");
            let mut items = items;
            items.dedup();
            for it in items {
                let _ = writeln!(s, "      {it}");
            }
        }
    }
    let unused: Vec<_> = (0..EXEMPTIONS.len())
        .filter(|i| !used.contains(i))
        .collect();
    if !unused.is_empty() {
        let _ = writeln!(s, "\n-- note: exemptions that matched nothing this run:");
        for i in unused {
            let (c, p, w, _) = EXEMPTIONS[i];
            let _ = writeln!(s, "      {c}: {p} [{w}]");
        }
    }
    (s, n)
}

#[test]
fn tanto_json_carries_every_mlx_knife_2_0_8_field() {
    let dir = repo_root().join("tests/fixtures/mlxk-2.0.8");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("cases.json")).expect("read cases.json"),
    )
    .expect("cases.json is JSON");
    let cases = manifest["cases"].as_array().expect("cases array");
    assert!(cases.len() >= 40, "too few recorded cases: {}", cases.len());
    let only = std::env::var("CONFORMANCE_CASE").ok();
    let todo: Vec<(&Value, Value)> = cases
        .iter()
        .filter(|c| {
            let name = c["name"].as_str().unwrap_or("");
            only.as_deref().is_none_or(|o| name.contains(o))
        })
        .map(|c| {
            let name = c["name"].as_str().expect("case name");
            let recorded: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join(format!("{name}.json")))
                    .unwrap_or_else(|e| panic!("recording {name}.json: {e}")),
            )
            .unwrap_or_else(|e| panic!("{name}.json is not JSON: {e}"));
            (c, recorded)
        })
        .collect();
    // Cases are independent (fresh tree each); a few at a time, reported in order.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<CaseResult>>> =
        todo.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((case, recorded)) = todo.get(i) else {
                    break;
                };
                let r = run_case(case, recorded);
                *slots[i].lock().expect("slot") = Some(r);
            });
        }
    });
    let results: Vec<CaseResult> = slots
        .into_iter()
        .filter_map(|m| m.into_inner().expect("slot"))
        .collect();
    let (text, n) = report(&results);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance-report.txt");
    let _ = std::fs::write(&path, &text);
    let failing = results.iter().filter(|r| !r.failures.is_empty()).count();
    assert!(
        n == 0,
        "tanto differs from mlx-knife 2.0.8 in {n} place(s) across {failing} of {} case(s) \
         (report also in {}):\n{text}",
        results.len(),
        path.display()
    );
}

#[test]
fn comparator_catches_renames_type_changes_and_value_changes() {
    let exp: Value = serde_json::json!({
        "status": "success", "command": "clone",
        "data": {"target_dir": "/x", "health": "healthy", "size_bytes": 3, "reason": null,
                 "message": "free text", "models": [{"name": "a/b", "hash": "h1"}]},
        "error": null
    });
    let same_plus_extra: Value = serde_json::json!({
        "status": "success", "command": "clone",
        "data": {"target_dir": "/x", "health": "healthy", "size_bytes": 3, "reason": "why",
                 "message": "other text", "extra": 1, "models": [{"name": "a/b", "hash": "h1"}]},
        "error": null
    });
    assert!(compare_docs(&exp, &same_plus_extra, true).is_empty());
    let bad: Value = serde_json::json!({
        "status": "success", "command": "clone",
        "data": {"target": "/x", "health": "unhealthy", "size_bytes": "3", "reason": null,
                 "message": "free text", "models": [{"name": "a/c", "hash": "h1"}]},
        "error": null
    });
    let got: Vec<(String, &str)> = compare_docs(&exp, &bad, true)
        .into_iter()
        .map(|m| (m.path, m.what))
        .collect();
    let want = [
        ("data.target_dir", "missing"),
        ("data.health", "value"),
        ("data.size_bytes", "type"),
        ("data.models[a/b]", "missing element"),
        ("data.models[a/c]", "extra element"),
    ];
    for w in want {
        assert!(
            got.iter().any(|(p, k)| p == w.0 && *k == w.1),
            "{w:?} not reported in {got:?}"
        );
    }
    assert_eq!(got.len(), want.len(), "{got:?}");
    // shape-only comparison still checks status / command / error.type values
    let other_cmd: Value = serde_json::json!({"status": "error", "command": "clone",
        "data": {"target_dir": "/y", "health": "x", "size_bytes": 1, "reason": null,
                 "message": "", "models": []}, "error": null});
    let got = compare_docs(&exp, &other_cmd, false);
    assert!(got.iter().any(|m| m.path == "status"), "{got:?}");
    assert!(!got.iter().any(|m| m.path == "data.target_dir"), "{got:?}");
    // null and T are one schema type for `T | null` fields, both ways
    let reason_str = serde_json::json!({"data": {"models": [{"name": "m", "reason": "x"}]}});
    let reason_null = serde_json::json!({"data": {"models": [{"name": "m", "reason": null}]}});
    assert!(compare_docs(&reason_str, &reason_null, true).is_empty());
    // ...but a required object may not turn into null
    let data_obj = serde_json::json!({"data": {"count": 0}});
    let data_null = serde_json::json!({"data": null});
    assert_eq!(compare_docs(&data_obj, &data_null, true).len(), 1);
    assert!(compare_docs(&data_null, &data_obj, true).is_empty());
}

#[test]
fn exemption_patterns_match_printed_paths() {
    let p = |s: &str| tokens(s);
    let path = p("data.models[org/x.y-1].health");
    assert_eq!(path, ["data", "models", "[org/x.y-1]", "health"]);
    assert!(tok_match(&p("**[org/x.y-1].health"), &path));
    assert!(tok_match(&p("data.models[].health"), &path));
    assert!(tok_match(&p("data.*[org/x.y-1].*"), &path));
    assert!(!tok_match(&p("**[org/other].health"), &path));
    assert!(!tok_match(&p("data.models.health"), &path));
    assert!(tok_match(&p("**"), &path));
}
