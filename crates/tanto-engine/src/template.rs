//! Chat templates in Hugging Face's Jinja dialect, rendered with minijinja.
//!
//! Mirrors `transformers`' `apply_chat_template(..., tokenize=False)`: `trim_blocks`
//! and `lstrip_blocks` on, loop controls, `raise_exception`, a Python-`json.dumps`
//! compatible `tojson`, `strftime_now`, Python string methods (`pycompat`), and the
//! special tokens (`bos_token`, `eos_token`, …) plus `tools`/`documents` = None in
//! the context.
//!
//! A model's template is untrusted code. Every render runs under limits
//! ([`Limits`]): minijinja fuel (instructions), a recursion depth, a cap on the
//! rendered size, capped `tojson`/`indent` widths, and a load-time scan that
//! refuses values which grow by doubling inside loops (`s = s ~ s`), which no
//! runtime counter sees before the allocation. A render past a limit is
//! [`EngineError::TemplateLimit`] for that request; the template stays usable.

use std::path::Path;

use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value;

use crate::api::{ChatMessage, EngineError, TemplateLimit};
use crate::tokenizer::read_json_opt;

/// Render limits. The defaults are far above what real chat templates use (a
/// few hundred instructions per message, no recursion beyond a macro or two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// minijinja fuel: instructions per render, plus `fuel_per_message` each.
    pub fuel: u64,
    pub fuel_per_message: u64,
    /// Nesting of macro calls, includes and recursive loops.
    pub recursion: usize,
    /// Rendered bytes: at least this, or four times the messages' size.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 5_000_000,
            fuel_per_message: 20_000,
            recursion: 64,
            output_bytes: 64 << 20,
        }
    }
}

/// Widths above this in `tojson(indent=…)` and `indent(…)` are refused.
pub const MAX_INDENT: usize = 256;
/// `"x" * n` with a literal `n` above this is refused at load (minijinja's own
/// cap is 100 MB per product, and a loop can keep many).
const MAX_REPEAT: i64 = 1 << 20;

/// Marker in a minijinja error raised by our filters when a size limit is hit.
const OUTPUT_LIMIT: &str = "tanto: output size limit";

/// A compiled chat template plus the special tokens it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    pub source: String,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub unk_token: Option<String>,
    pub pad_token: Option<String>,
    limits: Limits,
    /// Why the template cannot render within limits (found when loading).
    unbounded: Option<String>,
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
    use tanto_core::limits::{read_capped_string, ReadError, JSON_MAX};
    let jinja = dir.join("chat_template.jinja");
    // Capped and regular-only, like every small file a model folder holds: a
    // huge or sparse file, a fifo or a link to /dev/zero is an error, not a hang.
    match read_capped_string(&jinja, JSON_MAX) {
        Ok(s) if !s.trim().is_empty() => return Ok(Some(s)),
        Ok(_) | Err(ReadError::NotFound) => {}
        Err(e) => {
            return Err(EngineError::InvalidModel {
                path: jinja,
                message: e.to_string(),
            })
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
        Self::with_limits(source, Limits::default())
    }

    pub fn with_limits(source: String, limits: Limits) -> Result<Self, EngineError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_recursion_limit(limits.recursion);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_filter("indent", indent);
        // Too deep to compile safely (minijinja's parser recurses too): never
        // compiled, and every render of it is a template-limit error.
        let depth = nesting_bound(&source);
        let unbounded = if depth > MAX_TEMPLATE_NESTING {
            Some(format!(
                "an expression nests about {depth} levels deep (the limit is {MAX_TEMPLATE_NESTING})"
            ))
        } else {
            env.add_template_owned("chat", source.clone())
                .map_err(terr)?;
            growth_hazard(&source)
        };
        Ok(Self {
            env,
            source,
            bos_token: None,
            eos_token: None,
            unk_token: None,
            pad_token: None,
            limits,
            unbounded,
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
        let input: usize = messages
            .iter()
            .map(|m| m.content.len() + m.role.len())
            .sum();
        self.render_value(
            JValue::from_serialize(messages),
            messages.len(),
            input,
            add_generation_prompt,
        )
    }

    /// Render messages already shaped as the template expects them (vision
    /// models: `content` as a list of `{"type": "text"|"image"}` parts);
    /// `n_messages` and `input_bytes` size the render limits.
    pub fn render_json(
        &self,
        messages: &serde_json::Value,
        n_messages: usize,
        input_bytes: usize,
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        self.render_value(
            JValue::from_serialize(messages),
            n_messages,
            input_bytes,
            add_generation_prompt,
        )
    }

    fn render_value(
        &self,
        messages: JValue,
        n_messages: usize,
        input: usize,
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        if let Some(why) = &self.unbounded {
            return Err(EngineError::TemplateLimit {
                limit: TemplateLimit::Output,
                message: why.clone(),
            });
        }
        let fuel = self.limits.fuel.saturating_add(
            self.limits
                .fuel_per_message
                .saturating_mul(n_messages as u64),
        );
        let cap = self.limits.output_bytes.max(input.saturating_mul(4));
        // Fuel is an environment setting read at the start of each render; a
        // clone (compiled templates are shared) keeps `render` `&self`.
        let mut env = self.env.clone();
        env.set_fuel(Some(fuel));
        let tmpl = env.get_template("chat").map_err(terr)?;
        let opt = |s: &Option<String>| s.as_ref().map_or(JValue::UNDEFINED, JValue::from);
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => opt(&self.bos_token),
            eos_token => opt(&self.eos_token),
            unk_token => opt(&self.unk_token),
            pad_token => opt(&self.pad_token),
            tools => JValue::from(()),
            documents => JValue::from(()),
        };
        let mut out = CappedWriter {
            buf: Vec::new(),
            cap,
            over: false,
        };
        let rendered = tmpl.render_captured_to(ctx, &mut out).map(drop);
        match rendered {
            Ok(()) => String::from_utf8(out.buf).map_err(terr),
            Err(e) => Err(classify(e, out.over, cap, fuel)),
        }
    }
}

/// An output that refuses to grow past `cap` bytes.
struct CappedWriter {
    buf: Vec<u8>,
    cap: usize,
    over: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(b.len()) > self.cap {
            self.over = true;
            return Err(std::io::Error::other(OUTPUT_LIMIT));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A render error, with the limit it hit when it was one.
fn classify(e: Error, over: bool, cap: usize, fuel: u64) -> EngineError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    let limit = if e.kind() == ErrorKind::OutOfFuel {
        Some((
            TemplateLimit::Fuel,
            format!("more than {fuel} instructions"),
        ))
    } else if over || msg.contains(OUTPUT_LIMIT) {
        Some((
            TemplateLimit::Output,
            format!("output over {cap} bytes or a width over {MAX_INDENT}"),
        ))
    } else if msg.contains("recursion limit exceeded") {
        Some((TemplateLimit::Recursion, msg.clone()))
    } else {
        None
    };
    match limit {
        Some((limit, message)) => EngineError::TemplateLimit { limit, message },
        None => EngineError::Template(msg),
    }
}

/// Render a template source directly (fuzzing entry point): compile, then
/// render with the default limits and no special tokens.
pub fn render_chat(
    source: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
) -> Result<String, EngineError> {
    ChatTemplate::new(source.to_string())?.render(messages, add_generation_prompt)
}

/// The builtin `indent`, with the width capped at [`MAX_INDENT`].
fn indent(
    value: minijinja::value::StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<JValue, Error> {
    let w = match width {
        Some(w) => Some(w),
        None => kwargs.peek::<Option<usize>>("width")?,
    };
    if w.is_some_and(|w| w > MAX_INDENT) {
        return Err(Error::new(ErrorKind::InvalidOperation, OUTPUT_LIMIT));
    }
    minijinja::filters::indent(value, width, first, blank, kwargs)
}

/// Why rendering `source` could grow a value exponentially, if it can: inside
/// a loop or macro, a `set` whose new value uses the target twice (`s = s ~ s`,
/// `ns.x = ns.x + ns.x`, a `set` block emitting it twice), or a repetition by a
/// large literal. minijinja has no hook between instructions where memory
/// could be checked, and fuel counts instructions, so this is found up front.
fn growth_hazard(source: &str) -> Option<String> {
    // The scan below (and serde's walk of minijinja's AST) recurses once per
    // nesting level: bound the nesting first, and give the walk its own stack,
    // so a template such as `{{ -----…1 }}` cannot overflow the caller's.
    if nesting_bound(source) > MAX_TEMPLATE_NESTING {
        return Some("the template nests too deeply".into());
    }
    let src = source.to_string();
    std::thread::Builder::new()
        .name("template-scan".into())
        .stack_size(SCAN_STACK)
        .spawn(move || growth_hazard_scan(&src))
        .ok()?
        .join()
        .unwrap_or_else(|_| Some("the template could not be checked".into()))
}

/// Deepest expression nesting a template can have, bounded from its text: the
/// non-blank characters of one `{{ … }}` / `{% … %}` tag outside string literals
/// (each AST level needs at least one), plus how deeply its blocks nest.
/// Linear, allocation-free; an over-estimate is fine, an under-estimate is not.
fn nesting_bound(source: &str) -> usize {
    let b = source.as_bytes();
    let (mut i, mut worst, mut blocks) = (0usize, 0usize, 0usize);
    while i + 1 < b.len() {
        if b[i] != b'{' || (b[i + 1] != b'{' && b[i + 1] != b'%') {
            i += 1;
            continue;
        }
        let close = if b[i + 1] == b'{' { b'}' } else { b'%' };
        if close == b'%' {
            // The block keyword: `{%- if …`, `{% endfor %}`.
            let mut k = i + 2;
            while k < b.len() && (b[k].is_ascii_whitespace() || b[k] == b'-' || b[k] == b'+') {
                k += 1;
            }
            let start = k;
            while k < b.len() && (b[k].is_ascii_alphabetic() || b[k] == b'_') {
                k += 1;
            }
            let word = &b[start..k];
            if word.starts_with(b"end") {
                blocks = blocks.saturating_sub(1);
            } else if matches!(
                word,
                b"if"
                    | b"for"
                    | b"macro"
                    | b"call"
                    | b"filter"
                    | b"with"
                    | b"block"
                    | b"autoescape"
            ) {
                blocks += 1;
            }
        }
        let (mut j, mut count, mut quote) = (i + 2, 0usize, None::<u8>);
        while j < b.len() {
            let c = b[j];
            match quote {
                Some(_) if c == b'\\' => j += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == close && b.get(j + 1) == Some(&b'}') => break,
                None if c == b'"' || c == b'\'' => {
                    quote = Some(c);
                    count += 1;
                }
                None if !c.is_ascii_whitespace() => count += 1,
                None => {}
            }
            j += 1;
        }
        worst = worst.max(count + blocks);
        i = j + 2;
    }
    worst
}

/// Deeper than any real chat template nests (they stay in the tens).
const MAX_TEMPLATE_NESTING: usize = 2048;
/// The scan thread's stack: room for [`MAX_TEMPLATE_NESTING`] levels of
/// serde and scan frames with a wide margin (only touched pages are committed).
const SCAN_STACK: usize = 64 << 20;

fn growth_hazard_scan(source: &str) -> Option<String> {
    use minijinja::machinery::{parse, WhitespaceConfig};
    let ast = parse(
        source,
        "chat",
        Default::default(),
        WhitespaceConfig::default(),
    )
    .ok()?;
    let tree = strip_spans(serde_json::to_value(&ast).ok()?);
    let mut found = None;
    scan(&tree, 0, &mut found);
    found
}

/// The AST as JSON without source positions: `{"inner": [node, span]}` becomes `node`.
fn strip_spans(v: Value) -> Value {
    match v {
        Value::Object(mut o) => {
            if let Some(Value::Array(mut pair)) = o.remove("inner") {
                if pair.len() == 2 {
                    pair.truncate(1);
                    let node = pair.pop().unwrap_or(Value::Null);
                    if let Value::Object(n) = strip_spans(node) {
                        o.insert("node".into(), Value::Object(n));
                    }
                }
            }
            Value::Object(o.into_iter().map(|(k, v)| (k, strip_spans(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(strip_spans).collect()),
        other => other,
    }
}

fn count_in(hay: &Value, needle: &Value) -> usize {
    if hay == needle {
        return 1;
    }
    match hay {
        Value::Object(o) => o.values().map(|v| count_in(v, needle)).sum(),
        Value::Array(a) => a.iter().map(|v| count_in(v, needle)).sum(),
        _ => 0,
    }
}

/// Filters that never make a string longer than their input (plus a constant).
const PLAIN_FILTERS: &[&str] = &[
    "trim",
    "string",
    "lower",
    "upper",
    "title",
    "capitalize",
    "safe",
    "e",
    "escape",
    "striptags",
    "default",
    "d",
    "length",
    "count",
    "first",
    "last",
    "tojson",
    "int",
    "float",
];

/// Python string/dict methods whose result is no longer than the receiver.
const PLAIN_METHODS: &[&str] = &[
    "split",
    "rsplit",
    "splitlines",
    "strip",
    "lstrip",
    "rstrip",
    "lower",
    "upper",
    "title",
    "capitalize",
    "startswith",
    "endswith",
    "get",
    "items",
    "keys",
    "values",
    "count",
    "find",
    "rfind",
    "index",
];

/// `target` used inside something that can copy it several times: a call (a
/// macro may emit its argument twice), a repeating or rewriting filter
/// (`replace`, `join`, …), a product, or a list literal (`[s, …] | join`).
fn amplified(v: &Value, target: &Value, inside: bool) -> bool {
    if v == target {
        return inside;
    }
    match v {
        Value::Object(o) => {
            let node = o.get("node");
            let inside = inside
                || match o.get("expr").and_then(Value::as_str) {
                    Some("Call") => {
                        let callee = node.and_then(|n| n.get("expr"));
                        let method = callee
                            .filter(|c| c.get("expr").and_then(Value::as_str) == Some("GetAttr"))
                            .and_then(|c| c.get("node")?.get("name")?.as_str());
                        !method.is_some_and(|m| PLAIN_METHODS.contains(&m))
                    }
                    Some("List") | Some("Map") => true,
                    Some("Filter") => {
                        let name = node.and_then(|n| n.get("name")).and_then(Value::as_str);
                        !name.is_some_and(|n| PLAIN_FILTERS.contains(&n))
                    }
                    Some("BinOp") => {
                        node.and_then(|n| n.get("op")).and_then(Value::as_str) == Some("Mul")
                    }
                    _ => false,
                };
            o.values().any(|x| amplified(x, target, inside))
        }
        Value::Array(a) => a.iter().any(|x| amplified(x, target, inside)),
        _ => false,
    }
}

/// A `Mul` with a literal integer operand above [`MAX_REPEAT`].
fn big_repeat(v: &Value) -> bool {
    match v {
        Value::Object(o) => {
            let is_mul = o.get("expr").and_then(Value::as_str) == Some("BinOp")
                && o.get("node")
                    .and_then(|n| n.get("op"))
                    .and_then(Value::as_str)
                    == Some("Mul");
            if is_mul {
                let n = o.get("node");
                for side in ["left", "right"] {
                    let c = n.and_then(|n| n.get(side)).and_then(|s| s.get("node"));
                    let val = c.and_then(|c| c.get("value")).and_then(Value::as_i64);
                    if val.is_some_and(|x| x > MAX_REPEAT) {
                        return true;
                    }
                }
            }
            o.values().any(big_repeat)
        }
        Value::Array(a) => a.iter().any(big_repeat),
        _ => false,
    }
}

fn scan(v: &Value, loops: usize, found: &mut Option<String>) {
    if found.is_some() {
        return;
    }
    match v {
        Value::Object(o) => {
            let stmt = o.get("stmt").and_then(Value::as_str);
            let node = o.get("node");
            if matches!(stmt, Some("ForLoop") | Some("Macro")) {
                if let Some(n) = node {
                    scan(n, loops + 1, found);
                }
                return;
            }
            if loops > 0 && matches!(stmt, Some("Set") | Some("SetBlock")) {
                if let Some(n) = node {
                    let target = n.get("target").cloned().unwrap_or(Value::Null);
                    let value = n
                        .get("expr")
                        .or_else(|| n.get("body"))
                        .unwrap_or(&Value::Null);
                    if count_in(value, &target) >= 2 || amplified(value, &target, false) {
                        *found = Some(
                            "a loop doubles a value (it is set from two copies of itself)".into(),
                        );
                        return;
                    }
                }
            }
            if big_repeat(v) && o.contains_key("expr") {
                *found = Some(format!("a string is repeated more than {MAX_REPEAT} times"));
                return;
            }
            for x in o.values() {
                scan(x, loops, found);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| scan(x, loops, found)),
        _ => {}
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
            let too_wide = || Error::new(ErrorKind::InvalidOperation, OUTPUT_LIMIT);
            if let Some(s) = v.as_str() {
                if s.len() > MAX_INDENT {
                    return Err(too_wide());
                }
                Some(s.to_string())
            } else {
                let n = i64::try_from(v).unwrap_or(0).max(0);
                if n > MAX_INDENT as i64 {
                    return Err(too_wide());
                }
                Some(" ".repeat(n as usize))
            }
        }
    };
    let (item_sep, key_sep) = match separators {
        Some(s) if s.len() == Some(2) => {
            let a = s.get_item(&JValue::from(0))?.to_string();
            let b = s.get_item(&JValue::from(1))?.to_string();
            if a.len() > MAX_INDENT || b.len() > MAX_INDENT {
                return Err(Error::new(ErrorKind::InvalidOperation, OUTPUT_LIMIT));
            }
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
        ChatMessage::text(role, content)
    }

    #[test]
    fn template_files_are_read_capped_and_regular_only() {
        let t = tempfile::tempdir().unwrap();
        let j = t.path().join("chat_template.jinja");
        std::fs::write(&j, "{{ messages[0].content }}").unwrap();
        assert_eq!(
            find_template_in_dir(t.path()).unwrap().as_deref(),
            Some("{{ messages[0].content }}")
        );
        // A sparse 1 TiB file is refused from its size, without reading it.
        std::fs::File::create(&j).unwrap().set_len(1 << 40).unwrap();
        let e = find_template_in_dir(t.path()).unwrap_err();
        assert!(matches!(e, EngineError::InvalidModel { .. }), "{e}");
        // A directory in its place is an error too, not an empty template.
        std::fs::remove_file(&j).unwrap();
        std::fs::create_dir(&j).unwrap();
        assert!(find_template_in_dir(t.path()).is_err());
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

    fn user(n: usize) -> Vec<ChatMessage> {
        (0..n).map(|i| msg("user", &format!("m{i}"))).collect()
    }

    /// A hostile template fails with the named limit, quickly, and the same
    /// template value keeps working (renders again with the same error, and a
    /// normal template is unaffected).
    fn assert_limit(src: &str, want: TemplateLimit) {
        let t = ChatTemplate::new(src.into()).expect("compiles");
        let t0 = std::time::Instant::now();
        let err = t.render(&user(2), true).unwrap_err();
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "{src}: too slow"
        );
        match &err {
            EngineError::TemplateLimit { limit, .. } => assert_eq!(*limit, want, "{src}: {err}"),
            other => panic!("{src}: expected a {want} limit, got {other}"),
        }
        // Same error again: no state leaked from the failed render.
        assert!(matches!(
            t.render(&user(1), false),
            Err(EngineError::TemplateLimit { .. })
        ));
    }

    #[test]
    fn tojson_with_a_huge_indent_is_an_output_limit() {
        assert_limit(
            "{{ messages | tojson(indent=4294967295) }}",
            TemplateLimit::Output,
        );
        assert_limit(
            "{{ messages | tojson(indent='xxxxxxxxxx' * 1000) }}",
            TemplateLimit::Output,
        );
        assert_limit(
            "{{ messages | tojson(separators=(',' * 100000, ':')) }}",
            TemplateLimit::Output,
        );
        assert_limit("{{ 'a\nb' | indent(1000000000) }}", TemplateLimit::Output);
        assert_limit(
            "{{ 'a\nb' | indent(width=1000000000) }}",
            TemplateLimit::Output,
        );
    }

    /// Found by fuzzing: `{{ -----…1 }}` 5,000 deep overflowed the stack in the
    /// load-time scan and killed the process. Deep templates of every shape are
    /// refused as a template limit, on a thread with a small (2 MiB) stack.
    #[test]
    fn deeply_nested_templates_are_a_limit_not_a_stack_overflow() {
        let deep = |n: usize| {
            [
                format!("{{{{ {}1 }}}}", "-".repeat(n)),
                format!("{{{{ a{} }}}}", ".b".repeat(n)),
                format!("{{{{ a{} }}}}", "|e".repeat(n)),
                format!("{{{{ 1{} }}}}", "+1".repeat(n)),
                format!("{{{{ {}x }}}}", "not ".repeat(n)),
                format!("{{{{ a{} }}}}", "[0]".repeat(n)),
                format!("{}x{}", "{% if x %}".repeat(n), "{% endif %}".repeat(n)),
            ]
        };
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for src in deep(20_000).into_iter().chain(deep(5_000)) {
                    match ChatTemplate::new(src.clone()) {
                        Ok(t) => assert!(
                            matches!(
                                t.render(&user(1), true),
                                Err(EngineError::TemplateLimit { .. })
                            ),
                            "{}…",
                            &src[..40]
                        ),
                        // minijinja's own limits may refuse it first: an error, not a crash.
                        Err(e) => assert!(!e.to_string().is_empty()),
                    }
                }
                // Real templates stay far below the bound.
                assert!(
                    nesting_bound(
                        "{% for m in messages %}{{ '<|' + m.role + '|>' + m.content }}{% endfor %}"
                    ) < 64
                );
                assert_eq!(
                    nesting_bound("{{ 'a very long string literal counts once' }}"),
                    1
                );
            })
            .unwrap()
            .join()
            .expect("no stack overflow, no panic");
    }

    #[test]
    fn doubling_loops_are_refused_before_they_allocate() {
        assert_limit(
            "{% set s = 'x' %}{% for i in range(64) %}{% set s = s ~ s %}{% endfor %}{{ s }}",
            TemplateLimit::Output,
        );
        assert_limit(
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
            TemplateLimit::Output,
        );
        assert_limit(
            "{% set s = 'x' %}{% for i in range(64) %}{% set s %}{{ s }}{{ s }}{% endset %}{% endfor %}{{ s }}",
            TemplateLimit::Output,
        );
        assert_limit("{{ 'x' * 99999999 }}", TemplateLimit::Output);
        // Copies made by a macro, a rewriting filter, a product or a joined list.
        for body in [
            "{% set s = twice(s) %}",
            "{% set s = s | replace('x', 'xx') %}",
            "{% set s = s * 2 %}",
            "{% set s = [s, 'y'] | join(s) %}",
        ] {
            let src = format!(
                "{{% macro twice(x) %}}{{{{ x }}}}{{{{ x }}}}{{% endmacro %}}{{% set s = 'x' %}}{{% for i in range(64) %}}{body}{{% endfor %}}{{{{ s }}}}"
            );
            assert_limit(&src, TemplateLimit::Output);
        }
    }

    #[test]
    fn nested_loops_run_out_of_fuel() {
        assert_limit(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            TemplateLimit::Fuel,
        );
    }

    #[test]
    fn deep_recursion_is_a_recursion_limit() {
        assert_limit(
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            TemplateLimit::Recursion,
        );
    }

    #[test]
    fn large_output_hits_the_output_cap() {
        let limits = Limits {
            output_bytes: 1000,
            ..Limits::default()
        };
        let t = ChatTemplate::with_limits(
            "{% for i in range(5000) %}{{ messages[0].content }}{% endfor %}".into(),
            limits,
        )
        .unwrap();
        let err = t.render(&user(1), false).unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::TemplateLimit {
                    limit: TemplateLimit::Output,
                    ..
                }
            ),
            "{err}"
        );
        // A render that fits still works on the same template.
        let small = ChatTemplate::with_limits("{{ messages[0].content }}".into(), limits).unwrap();
        assert_eq!(small.render(&user(1), false).unwrap(), "m0");
    }

    #[test]
    fn normal_templates_accumulating_text_are_not_flagged() {
        // Linear accumulation (one copy of the target plus other text) is fine.
        // DeepSeek-R1 style: a method call on the target itself.
        let r1 = "{% for m in messages %}{% set content = m['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1].strip() %}{% endif %}{{ content }}{% endfor %}";
        assert_eq!(
            render_chat(r1, &[msg("assistant", "a</think> b")], false).unwrap(),
            "b"
        );
        let src = "{% macro r(x) %}{{ x | trim }}{% endmacro %}{% set ns = namespace(sys='') %}{% for m in messages %}{% set c = m['content'] %}{% set ns.sys = (ns.sys ~ c | trim) ~ r(c) %}{% endfor %}{{ ns.sys }}|{{ messages | tojson(indent=2) | length > 0 }}|{{ 'ab' * 3 }}";
        let t = ChatTemplate::new(src.into()).unwrap();
        assert_eq!(t.render(&user(2), false).unwrap(), "m0m0m1m1|True|ababab");
        assert_eq!(
            render_chat(src, &user(1), false).unwrap(),
            "m0m0|True|ababab"
        );
    }

    #[test]
    fn a_rejecting_template_is_a_request_error_not_a_limit() {
        let err = render_chat(
            "{{ raise_exception('roles must alternate') }}",
            &user(1),
            true,
        )
        .unwrap_err();
        assert!(
            matches!(err, EngineError::Template(ref m) if m.contains("alternate")),
            "{err}"
        );
    }
}
