//! Fuzz tanto-core's GGUF header probe (`probe/gguf.rs`): any bytes as a
//! `.gguf` file must give a header or a typed error, never a panic, hang or
//! unbounded allocation; on success the accessors the probe uses must not
//! panic either (they sum and multiply header-controlled numbers).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tanto_core::gguf;

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::write("model.gguf", data);
    if let Ok(h) = gguf::read_header(&path) {
        let _ = h.architecture();
        let _ = h.context_length();
        let _ = h.has_chat_template();
        let _ = h.has_tokenizer();
        let _ = h.parameter_count();
        if let Some(ft) = h.file_type() {
            let _ = gguf::file_type_name(ft);
        }
        for t in &h.tensors {
            let _ = gguf::ggml_type_name(t.ggml_type);
        }
    }
});
