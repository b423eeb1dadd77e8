//! Output helpers: the JSON envelope, human errors, tables, sizes and ages.

use std::io::{IsTerminal, Write};
use std::time::SystemTime;

use serde_json::{json, Value};
use tanto_core::error::{ErrorType, TantoError};

/// Exit codes (documented in the README).
pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// mlx-knife's JSON API version whose field names tanto keeps.
pub const JSON_API_VERSION: &str = "0.2.3";

/// The one envelope every `--json` output uses.
pub fn envelope_ok(command: &str, data: Value) -> Value {
    json!({"status": "success", "command": command, "data": data, "error": null})
}

pub fn envelope_err(command: &str, err: &TantoError, data: Option<Value>) -> Value {
    json!({"status": "error", "command": command, "data": data, "error": err})
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

/// Human error on stderr: `tanto CMD: error: MESSAGE` plus a hint line.
pub fn print_error(command: &str, err: &TantoError) {
    let c = Colors::stderr();
    eprintln!(
        "{}",
        c.red(&format!("tanto {command}: error: {}", err.message))
    );
    if let Some(h) = &err.hint {
        eprintln!("  {} {h}", c.dim("hint:"));
    }
}

/// Report an error in the command's mode and return the exit code.
pub fn fail(command: &str, json: bool, err: &TantoError) -> i32 {
    if json {
        print_json(&envelope_err(command, err, None));
    } else {
        print_error(command, err);
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
