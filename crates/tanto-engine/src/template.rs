//! Chat templates in Hugging Face's Jinja dialect, rendered with minijinja.
//!
//! Mirrors `transformers`' `apply_chat_template(..., tokenize=False)`: `trim_blocks`
//! and `lstrip_blocks` on, loop controls, `raise_exception`, a Python-`json.dumps`
//! compatible `tojson`, `strftime_now`, Python string methods (`pycompat`), and the
//! special tokens (`bos_token`, `eos_token`, …) plus `tools`/`documents` = None in
//! the context.

use std::path::Path;

use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value;

use crate::api::{ChatMessage, EngineError};
use crate::tokenizer::read_json_opt;

/// A compiled chat template plus the special tokens it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    pub source: String,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub unk_token: Option<String>,
    pub pad_token: Option<String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("len", &self.source.len())
            .finish_non_exhaustive()
    }
}

fn terr(e: impl std::fmt::Display) -> EngineError {
    EngineError::Template(e.to_string())
}

/// Find the template source in a model folder: `chat_template.jinja`, then
/// `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates
/// where "default" wins).
pub fn find_template_in_dir(dir: &Path) -> Result<Option<String>, EngineError> {
    let jinja = dir.join("chat_template.jinja");
    if let Ok(s) = std::fs::read_to_string(&jinja) {
        if !s.trim().is_empty() {
            return Ok(Some(s));
        }
    }
    if let Some(Value::Object(cfg)) = read_json_opt(&dir.join("chat_template.json"))? {
        if let Some(Value::String(s)) = cfg.get("chat_template") {
            return Ok(Some(s.clone()));
        }
    }
    let Some(cfg) = read_json_opt(&dir.join("tokenizer_config.json"))? else {
        return Ok(None);
    };
    Ok(template_from_value(cfg.get("chat_template")))
}

pub(crate) fn template_from_value(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Array(list) => {
            let named = |want: &str| {
                list.iter().find_map(|t| {
                    (t.get("name")?.as_str()? == want)
                        .then(|| t.get("template")?.as_str().map(String::from))
                        .flatten()
                })
            };
            named("default").or_else(|| {
                list.first()
                    .and_then(|t| t.get("template")?.as_str().map(String::from))
            })
        }
        _ => None,
    }
}

impl ChatTemplate {
    pub fn new(source: String) -> Result<Self, EngineError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source.clone())
            .map_err(terr)?;
        Ok(Self {
            env,
            source,
            bos_token: None,
            eos_token: None,
            unk_token: None,
            pad_token: None,
        })
    }

    pub fn with_tokens(
        mut self,
        bos: Option<String>,
        eos: Option<String>,
        unk: Option<String>,
        pad: Option<String>,
    ) -> Self {
        self.bos_token = bos;
        self.eos_token = eos;
        self.unk_token = unk;
        self.pad_token = pad;
        self
    }

    /// Render `messages`; `add_generation_prompt` opens the assistant turn.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        let tmpl = self.env.get_template("chat").map_err(terr)?;
        let opt = |s: &Option<String>| s.as_ref().map_or(JValue::UNDEFINED, JValue::from);
        let ctx = minijinja::context! {
            messages => JValue::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => opt(&self.bos_token),
            eos_token => opt(&self.eos_token),
            unk_token => opt(&self.unk_token),
            pad_token => opt(&self.pad_token),
            tools => JValue::from(()),
            documents => JValue::from(()),
        };
        tmpl.render(ctx).map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            EngineError::Template(msg)
        })
    }
}

fn raise_exception(msg: String) -> Result<JValue, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

fn strftime_now(fmt: String) -> Result<String, Error> {
    let now = time::OffsetDateTime::now_utc();
    Ok(strftime(&now, &fmt))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The subset of C `strftime` that chat templates use.
pub(crate) fn strftime(t: &time::OffsetDateTime, fmt: &str) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut pad = true;
        let mut spec = chars.next();
        if spec == Some('-') {
            pad = false;
            spec = chars.next();
        }
        let num = |v: u32, w: usize| {
            if pad {
                format!("{v:0w$}")
            } else {
                v.to_string()
            }
        };
        let month = u8::from(t.month()) as usize;
        let wd = t.weekday().number_days_from_monday() as usize;
        match spec {
            Some('Y') => out.push_str(&t.year().to_string()),
            Some('y') => out.push_str(&num((t.year().rem_euclid(100)) as u32, 2)),
            Some('m') => out.push_str(&num(month as u32, 2)),
            Some('d') => out.push_str(&num(t.day() as u32, 2)),
            Some('e') => out.push_str(&format!("{:2}", t.day())),
            Some('H') => out.push_str(&num(t.hour() as u32, 2)),
            Some('I') => out.push_str(&num(((t.hour() as u32 + 11) % 12) + 1, 2)),
            Some('M') => out.push_str(&num(t.minute() as u32, 2)),
            Some('S') => out.push_str(&num(t.second() as u32, 2)),
            Some('p') => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
            Some('B') => out.push_str(MONTHS[month - 1]),
            Some('b') | Some('h') => out.push_str(&MONTHS[month - 1][..3]),
            Some('A') => out.push_str(DAYS[wd]),
            Some('a') => out.push_str(&DAYS[wd][..3]),
            Some('j') => out.push_str(&num(t.ordinal() as u32, 3)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False,
/// indent=indent, separators=separators, sort_keys=sort_keys)`.
fn tojson(value: JValue, kwargs: Kwargs) -> Result<JValue, Error> {
    let indent: Option<JValue> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<JValue> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => {
            if let Some(s) = v.as_str() {
                Some(s.to_string())
            } else {
                let n = i64::try_from(v).unwrap_or(0).max(0) as usize;
                Some(" ".repeat(n))
            }
        }
    };
    let (item_sep, key_sep) = match separators {
        Some(s) if s.len() == Some(2) => {
            let a = s.get_item(&JValue::from(0))?.to_string();
            let b = s.get_item(&JValue::from(1))?.to_string();
            (a, b)
        }
        _ => {
            if indent.is_some() {
                (",".to_string(), ": ".to_string())
            } else {
                (", ".to_string(), ": ".to_string())
            }
        }
    };
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let opts = PyJson {
        indent,
        item_sep,
        key_sep,
        ensure_ascii: ensure_ascii.unwrap_or(false),
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    opts.write(&json, 0, &mut out);
    Ok(JValue::from_safe_string(out))
}

struct PyJson {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    ensure_ascii: bool,
    sort_keys: bool,
}

impl PyJson {
    fn newline(&self, level: usize, out: &mut String) {
        if let Some(ind) = &self.indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(ind);
            }
        }
    }

    fn write(&self, v: &Value, level: usize, out: &mut String) {
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                    out.push_str(&py_float(f));
                } else {
                    out.push_str(&n.to_string());
                }
            }
            Value::String(s) => self.string(s, out),
            Value::Array(a) => {
                if a.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, item) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(level + 1, out);
                    self.write(item, level + 1, out);
                }
                self.newline(level, out);
                out.push(']');
            }
            Value::Object(o) => {
                if o.is_empty() {
                    out.push_str("{}");
                    return;
                }
                let mut entries: Vec<(&String, &Value)> = o.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (k, val)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(level + 1, out);
                    self.string(k, out);
                    out.push_str(&self.key_sep);
                    self.write(val, level + 1, out);
                }
                self.newline(level, out);
                out.push('}');
            }
        }
    }

    fn string(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{08}' => out.push_str("\\b"),
                '\u{0c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if self.ensure_ascii && (c as u32) > 0x7e => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Python's `repr(float)`.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == f.trunc() && f.abs() < 1e16 {
        return format!("{f:.1}");
    }
    let s = format!("{f:?}");
    // Rust prints 1e20 / 1e-7; Python prints 1e+20 / 1e-07.
    if let Some((m, e)) = s.split_once('e') {
        let (sign, digits) = match e.strip_prefix('-') {
            Some(d) => ("-", d),
            None => ("+", e),
        };
        return format!("{m}e{sign}{digits:0>2}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn chatml_renders() {
        let src = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        let t = ChatTemplate::new(src.into()).unwrap();
        let out = t.render(&[msg("user", "Hi")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_methods_and_exceptions() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{{ m.content.strip() }}{% if m.role.startswith('sys') %}!{% endif %}{% endfor %}{% if messages|length > 2 %}{{ raise_exception('too many') }}{% endif %}".into(),
        )
        .unwrap();
        assert_eq!(
            t.render(&[msg("system", "  a "), msg("user", "b")], false)
                .unwrap(),
            "a!b"
        );
        let err = t
            .render(
                &[msg("user", "a"), msg("user", "b"), msg("user", "c")],
                false,
            )
            .unwrap_err();
        assert!(err.to_string().contains("too many"), "{err}");
    }

    #[test]
    fn tojson_matches_python() {
        let t = ChatTemplate::new(
            "{{ {'a': [1, 2.0, 'é\"'], 'b': none} | tojson }}|{{ {'x': 1} | tojson(indent=2) }}"
                .into(),
        )
        .unwrap();
        assert_eq!(
            t.render(&[], false).unwrap(),
            "{\"a\": [1, 2.0, \"é\\\"\"], \"b\": null}|{\n  \"x\": 1\n}"
        );
    }

    #[test]
    fn strftime_subset() {
        let t = time::macros::datetime!(2024-07-04 13:05:09 UTC);
        assert_eq!(strftime(&t, "%d %b %Y"), "04 Jul 2024");
        assert_eq!(
            strftime(&t, "%A %-d %B, %H:%M:%S"),
            "Thursday 4 July, 13:05:09"
        );
    }

    #[test]
    fn template_list_prefers_default() {
        let v = serde_json::json!([{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]);
        assert_eq!(template_from_value(Some(&v)).as_deref(), Some("D"));
    }
}
