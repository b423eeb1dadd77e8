//! Python-compatible helpers shared by workspaces and the hub puller:
//! `fnmatch.fnmatchcase` and a JSON writer that matches Python's `json.dumps(..., indent=N)`
//! byte for byte (huggingface_hub and mlx-knife files must round-trip).

use std::io::{self, Write};

use serde::Serialize;

/// Formatter that writes JSON like Python's `json.dump(..., indent=2)`:
/// two-space indentation and non-ASCII escaped as `\uXXXX`.
struct PyJsonFormatter<'a>(serde_json::ser::PrettyFormatter<'a>);

impl serde_json::ser::Formatter for PyJsonFormatter<'_> {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// Serialise a value as Python's `json.dumps(value, indent=2) + "\n"` would.
pub fn to_python_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = python_json(value, 2);
    out.push(b'\n');
    out
}

/// Serialise a value as Python's `json.dumps(value, indent=N)` would (no trailing
/// newline): N-space indentation, non-ASCII escaped as `\uXXXX`.
pub fn python_json<T: Serialize>(value: &T, indent: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let indent = vec![b' '; indent];
    let fmt = PyJsonFormatter(serde_json::ser::PrettyFormatter::with_indent(&indent));
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising plain data into memory cannot fail.
    value
        .serialize(&mut ser)
        .expect("JSON serialisation into memory");
    out
}

/// Python `fnmatch.fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]`; `*` also matches `/`.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Backtracking point for the last `*`: (pattern index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    while pi < p.len() && p[pi] == '*' {
                        pi += 1;
                    }
                    star = Some((pi, ni));
                    continue;
                }
                '?' if ni < n.len() => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched_len, ok)) = match_class(&p, pi, n.get(ni).copied()) {
                        if ok {
                            pi += matched_len;
                            ni += 1;
                            continue;
                        }
                    } else if ni < n.len() && n[ni] == '[' {
                        // Unclosed `[` is a literal.
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c != '?' && ni < n.len() && n[ni] == c => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return true;
        }
        // Mismatch: backtrack to the last star, letting it eat one more char.
        match star {
            Some((sp, sn)) if sn < n.len() => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
}

/// Match a `[...]` class starting at `p[start]`. `None` if the class is unclosed
/// (then `[` is literal); else `(pattern length consumed, matched)`.
fn match_class(p: &[char], start: usize, c: Option<char>) -> Option<(usize, bool)> {
    let mut j = start + 1;
    let negate = j < p.len() && p[j] == '!';
    if negate {
        j += 1;
    }
    let body_start = j;
    if j < p.len() && p[j] == ']' {
        j += 1;
    }
    while j < p.len() && p[j] != ']' {
        j += 1;
    }
    if j >= p.len() {
        return None;
    }
    let body = &p[body_start..j];
    let consumed = j + 1 - start;
    let Some(c) = c else {
        return Some((consumed, false));
    };
    if body.is_empty() {
        // `[!]` matches any char; `[]` cannot occur (the `]` would be literal).
        return Some((consumed, negate));
    }
    let mut hit = false;
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == '-' {
            let (lo, hi) = (body[k], body[k + 2]);
            if lo <= c && c <= hi {
                hit = true;
            }
            k += 3;
        } else {
            if body[k] == c {
                hit = true;
            }
            k += 1;
        }
    }
    Some((consumed, hit != negate))
}
