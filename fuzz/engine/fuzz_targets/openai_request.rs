//! Fuzz the OpenAI request parsers of tanto-server: the body bytes go through
//! `serde_json` as the route does, then `parse_chat` and `parse_completion`
//! (with and without a default model). Every body must give a request or a
//! typed API error, never a panic.
//!
//! Needs the `server` feature and `tanto_server::{parse_chat, parse_completion}`
//! exported; scripts/fuzz.sh enables it when the export is there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tanto_server::{parse_chat, parse_completion};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = parse_chat(&body, None);
    let _ = parse_chat(&body, Some("default-model"));
    let _ = parse_completion(&body, None);
    let _ = parse_completion(&body, Some("default-model"));
});
