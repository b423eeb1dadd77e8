//! Fuzz the GGUF tokenizer: the input is parsed as a GGUF header
//! (`gguf::parse`) and its metadata handed to `TextTokenizer::from_gguf`,
//! which assembles a tokenizer.json from `tokenizer.ggml.*` (gpt2 BPE or
//! SentencePiece llama). A tokenizer that builds must encode and decode.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tanto_engine::gguf;
use tanto_engine::tokenizer::TextTokenizer;

#[path = "quiet.rs"]
mod quiet;

fuzz_target!(|data: &[u8]| {
    quiet::install();
    let Ok(ct) = gguf::parse(Path::new("fuzz.gguf"), data) else {
        return;
    };
    let Ok(tok) = TextTokenizer::from_gguf(&ct.metadata) else {
        return;
    };
    if let Ok(ids) = tok.encode("Hello, wörld! 12 3\t🙂", true) {
        let _ = tok.decode(&ids, false);
    }
    let _ = tok.special_ids();
    let _ = tok.end_of_turn_ids();
});
