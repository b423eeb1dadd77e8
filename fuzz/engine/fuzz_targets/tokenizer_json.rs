//! Fuzz tokenizer.json parsing: `TextTokenizer::from_json_bytes` (the
//! `tokenizers` crate's loader). A tokenizer that loads is then used the way
//! generation uses it: encode a fixed text, decode the ids back, look up the
//! special and end-of-turn ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tanto_engine::tokenizer::TextTokenizer;

#[path = "quiet.rs"]
mod quiet;

fuzz_target!(|data: &[u8]| {
    quiet::install();
    let Ok(tok) = TextTokenizer::from_json_bytes(data) else {
        return;
    };
    if let Ok(ids) = tok.encode("Hello, wörld! <|im_start|>user\n 12 3\t🙂", true) {
        let _ = tok.decode(&ids, false);
        let _ = tok.decode(&ids, true);
    }
    let _ = tok.vocab_size();
    let _ = tok.special_ids();
    let _ = tok.end_of_turn_ids();
});
