//! Fuzz the engine's GGUF reader: `tanto_engine::gguf::parse` (candle's
//! header parser behind a panic guard), then the checks every loader runs
//! before allocating: `check_tensors` against the input's length and
//! `check_hparams` for the declared architecture.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tanto_engine::gguf;

#[path = "quiet.rs"]
mod quiet;

fuzz_target!(|data: &[u8]| {
    quiet::install();
    let path = Path::new("fuzz.gguf");
    let Ok(ct) = gguf::parse(path, data) else {
        return;
    };
    let _ = gguf::check_tensors(path, &ct, data.len() as u64);
    let arch = gguf::arch_of(&ct.metadata);
    let _ = gguf::check_hparams(path, &ct, &arch);
    let _ = gguf::md_u32(&ct.metadata, &format!("{arch}.context_length"));
    let _ = gguf::md_str_array(&ct.metadata, "tokenizer.ggml.tokens");
});
