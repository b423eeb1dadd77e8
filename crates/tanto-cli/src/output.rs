//! Output helpers: the JSON envelope, the one place errors are printed,
//! tables, sizes and ages.
//!
//! Commands return `Result<i32, CliError>`; `main` hands an error to
//! [`report`], which prints it once, in the envelope with `--json` or as a
//! human line on stderr (ripgrep's shape). The JSON `error.type` uses
//! mlx-knife's names (`ErrorType::mlx_knife_name` in tanto-core) so its scripts keep working;
//! tanto's finer type rides along as `error.tanto_type`.

use std::io::{IsTerminal, Write};
use std::time::SystemTime;

use serde_json::{json, Value};
use tanto_core::error::{ErrorType, TantoError};

/// Exit codes (documented in the README).
pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// mlx-knife's JSON API version whose field names tanto keeps.
pub const JSON_API_VERSION: &str = "0.2.4";

/// A command's failure: the typed core error (type, message, hint, extra
/// fields) plus the envelope `data` some errors keep, as mlx-knife does
/// (rm's `action`, health's empty lists).
/// Boxed, to keep every command's `Result` small.
#[derive(Debug)]
pub struct CliError {
    pub error: Box<TantoError>,
    pub data: Option<Box<Value>>,
}

impl CliError {
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(Box::new(data));
        self
    }
}

impl From<TantoError> for CliError {
    fn from(error: TantoError) -> Self {
        Self {
            error: Box::new(error),
            data: None,
        }
    }
}

/// What every command returns: an exit code, or the error `main` prints.
pub type CmdResult = Result<i32, CliError>;

/// The envelope's `error` object: mlx-knife's `type`, the message, tanto's
/// hint and extra fields, and tanto's own type as `tanto_type`.
pub fn error_json(command: Option<&str>, err: &TantoError) -> Value {
    let mut v = serde_json::to_value(err).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("type".into(), json!(err.kind.mlx_knife_name(command)));
        o.insert("message".into(), json!(err.message));
        o.insert("tanto_type".into(), json!(err.kind.as_str()));
    }
    v
}

/// The one envelope every `--json` output uses.
pub fn envelope_ok(command: &str, data: Value) -> Value {
    json!({"status": "success", "command": command, "data": data, "error": null})
}

pub fn envelope_err(command: Option<&str>, error: Value, data: Option<Value>) -> Value {
    json!({"status": "error", "command": command, "data": data, "error": error})
}

/// Print JSON to stdout (pretty, newline-terminated). Broken pipes end quietly.
pub fn print_json(v: &Value) {
    let mut out = std::io::stdout().lock();
    let s = serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into());
    if writeln!(out, "{s}").is_err() {
        std::process::exit(EXIT_OK);
    }
}

/// Print a line to stdout; a closed pipe (`| head`) ends the process quietly.
pub fn outln(s: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{s}").is_err() {
        std::process::exit(EXIT_OK);
    }
}

/// Print a line to stderr, ignoring a closed stream (`eprintln!` would panic
/// where SIGPIPE is ignored, as in `pull`).
pub fn errln(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}

/// Human error on stderr: `tanto CMD: error: MESSAGE` (`tanto: error: …`
/// before a command runs) plus a hint line.
pub fn print_error(command: Option<&str>, err: &TantoError) {
    let c = Colors::stderr();
    let who = command
        .map(|c| format!("tanto {c}"))
        .unwrap_or("tanto".into());
    errln(&c.red(&format!("{who}: error: {}", err.message)));
    if let Some(h) = &err.hint {
        errln(&format!("  {} {h}", c.dim("hint:")));
    }
}

/// Print a command's error once, in its output mode; returns the exit code.
pub fn report(command: Option<&str>, json: bool, err: &CliError) -> i32 {
    if json {
        print_json(&envelope_err(
            command,
            error_json(command, &err.error),
            err.data.as_deref().cloned(),
        ));
    } else {
        print_error(command, &err.error);
    }
    EXIT_ERROR
}

pub fn internal(msg: impl Into<String>) -> TantoError {
    TantoError::new(ErrorType::InternalError, msg)
}

/// ANSI colours, only on a TTY and only without `NO_COLOR`.
#[derive(Clone, Copy)]
pub struct Colors {
    on: bool,
}

impl Colors {
    fn enabled(tty: bool) -> bool {
        tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true)
    }
    pub fn stdout() -> Self {
        Self {
            on: Self::enabled(std::io::stdout().is_terminal()),
        }
    }
    pub fn stderr() -> Self {
        Self {
            on: Self::enabled(std::io::stderr().is_terminal()),
        }
    }
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn red(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
    pub fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
}

/// Decimal sizes: `512 B`, `98 MB`, `2.1 GB`.
pub fn human_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if b < 1000 {
        return format!("{b} B");
    }
    let mut v = b as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// mlx-knife's file sizes in `show --files`: `391B`, `1.6KB`, `75.8MB`, `2.1GB`.
pub fn mlx_size(b: u64) -> String {
    let v = b as f64;
    if b >= 1_000_000_000 {
        format!("{:.1}GB", v / 1e9)
    } else if b >= 1_000_000 {
        format!("{:.1}MB", v / 1e6)
    } else if b >= 1000 {
        format!("{:.1}KB", v / 1e3)
    } else {
        format!("{b}B")
    }
}

/// Relative ages: `just now`, `5 minutes ago`, `3 days ago`, then a date.
pub fn human_age(t: Option<SystemTime>) -> String {
    let Some(t) = t else { return "-".into() };
    let secs = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let plural = |n: u64, u: &str| {
        if n == 1 {
            format!("1 {u} ago")
        } else {
            format!("{n} {u}s ago")
        }
    };
    match secs {
        0..=44 => "just now".into(),
        45..=5399 => plural(secs.div_ceil(60).max(1), "minute"),
        5400..=86399 => plural(secs / 3600, "hour"),
        86400..=2_591_999 => plural(secs / 86400, "day"),
        _ => {
            let dt = time::OffsetDateTime::from(t);
            format!(
                "{:04}-{:02}-{:02}",
                dt.year(),
                u8::from(dt.month()),
                dt.day()
            )
        }
    }
}

/// Human parameter counts: `135M`, `7.2B`.
pub fn human_params(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.1}B", n as f64 / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.0}M", n as f64 / 1e6)
    } else if n >= 1000 {
        format!("{:.0}K", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

/// An aligned, space-separated table (Ollama style). Cells may carry ANSI codes;
/// widths are computed on the visible text.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<(String, String)>>,
}

fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut in_esc = false;
    for c in s.chars() {
        if in_esc {
            if c == 'm' {
                in_esc = false;
            }
        } else if c == '\x1b' {
            in_esc = true;
        } else {
            n += 1;
        }
    }
    n
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }
    /// Add a row of (plain, styled) cells.
    pub fn row(&mut self, cells: Vec<(String, String)>) {
        self.rows.push(cells);
    }
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut w: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, (plain, _)) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(visible_len(plain));
            }
        }
        let mut out = String::new();
        let line = |cells: Vec<(&str, &str)>, out: &mut String| {
            let mut s = String::new();
            for (i, (plain, styled)) in cells.iter().enumerate() {
                s.push_str(styled);
                if i + 1 < cells.len() {
                    let pad = w[i].saturating_sub(visible_len(plain)) + 3;
                    s.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(
            self.headers
                .iter()
                .map(|h| (h.as_str(), h.as_str()))
                .collect(),
            &mut out,
        );
        for r in &self.rows {
            line(
                r.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect(),
                &mut out,
            );
        }
        out
    }
}

/// An engine failure in the wire taxonomy: the engine classifies its own errors.
pub fn engine_err(e: tanto_engine::EngineError) -> TantoError {
    TantoError::new(e.error_type(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(98_362_432), "98.4 MB");
        assert_eq!(human_size(2_100_000_000), "2.1 GB");
        assert_eq!(human_size(538_090_408), "538 MB");
    }

    #[test]
    fn mlx_knife_sizes() {
        assert_eq!(mlx_size(391), "391B");
        assert_eq!(mlx_size(1_600), "1.6KB");
        assert_eq!(mlx_size(75_800_000), "75.8MB");
        assert_eq!(mlx_size(2_100_000_000), "2.1GB");
    }

    #[test]
    fn error_types_use_mlx_knife_names_and_keep_tanto_type() {
        let e = TantoError::new(ErrorType::RevisionNotFound, "no such revision")
            .with_detail("available_hashes", vec!["abc"]);
        let v = error_json(Some("rm"), &e);
        assert_eq!(v["type"], "model_not_found");
        assert_eq!(v["tanto_type"], "revision_not_found");
        assert_eq!(v["available_hashes"][0], "abc");
        assert_eq!(error_json(Some("show"), &e)["type"], "model_not_found");
        let e = TantoError::new(ErrorType::ModelNotFound, "x");
        assert_eq!(error_json(Some("run"), &e)["type"], "execution_error");
        assert_eq!(error_json(Some("list"), &e)["type"], "model_not_found");
        let e = TantoError::new(ErrorType::ValidationError, "x");
        assert_eq!(error_json(None, &e)["type"], "CommandError");
        assert_eq!(error_json(Some("pull"), &e)["type"], "ValidationError");
    }

    #[test]
    fn ages() {
        let now = SystemTime::now();
        assert_eq!(human_age(Some(now)), "just now");
        assert_eq!(
            human_age(Some(now - Duration::from_secs(120))),
            "2 minutes ago"
        );
        assert_eq!(
            human_age(Some(now - Duration::from_secs(3 * 3600))),
            "3 hours ago"
        );
        assert_eq!(
            human_age(Some(now - Duration::from_secs(86400))),
            "1 day ago"
        );
        assert_eq!(human_age(None), "-");
    }

    #[test]
    fn table_aligns() {
        let mut t = Table::new(&["A", "BB"]);
        t.row(vec![
            ("xxx".into(), "\x1b[1mxxx\x1b[0m".into()),
            ("y".into(), "y".into()),
        ]);
        let s = t.render();
        assert_eq!(s, "A     BB\n\x1b[1mxxx\x1b[0m   y\n");
    }
}
