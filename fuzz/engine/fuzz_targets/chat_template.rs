//! Fuzz chat-template rendering: a model's Jinja template is untrusted code,
//! and every render must end (fuel, recursion and output limits) with a
//! string or a typed error, never a panic, hang or unbounded allocation.
//!
//! Input layout: byte 0 holds flags (bit 0: `add_generation_prompt`; bit 1:
//! the default [`Limits`] through `render_chat`, else small limits through
//! `ChatTemplate::with_limits` so most runs are fast); the rest is the template
//! source, a NUL, then messages separated by 0x1E, each `role` 0x1F `content`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tanto_engine::template::{render_chat, ChatTemplate, Limits};
use tanto_engine::ChatMessage;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (src, msgs) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let src = String::from_utf8_lossy(src).into_owned();
    let messages: Vec<ChatMessage> = if msgs.is_empty() {
        Vec::new()
    } else {
        msgs.split(|&b| b == 0x1e)
            .map(|m| {
                let (role, content) = match m.iter().position(|&b| b == 0x1f) {
                    Some(i) => (&m[..i], &m[i + 1..]),
                    None => (&b"user"[..], m),
                };
                ChatMessage {
                    role: String::from_utf8_lossy(role).into_owned(),
                    content: String::from_utf8_lossy(content).into_owned(),
                }
            })
            .collect()
    };
    let gen = flags & 1 != 0;
    if flags & 2 != 0 {
        let _ = render_chat(&src, &messages, gen);
    } else {
        let limits = Limits {
            fuel: 50_000,
            fuel_per_message: 2_000,
            recursion: 32,
            output_bytes: 1 << 20,
        };
        if let Ok(t) = ChatTemplate::with_limits(src, limits) {
            let t = t.with_tokens(Some("<s>".into()), Some("</s>".into()), None, None);
            let _ = t.render(&messages, gen);
        }
    }
});
