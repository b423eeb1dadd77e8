//! Fuzz tanto-core's safetensors header probe (`probe/safetensors.rs`): any
//! bytes as a `.safetensors` file give a header or a typed error; on success
//! the per-tensor sums the probe makes (elements, bytes per dtype) must not
//! overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tanto_core::safetensors;

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::write("model.safetensors", data);
    if let Ok(h) = safetensors::read_header(&path) {
        let _ = h.dominant_dtype();
        for t in h.tensors.values() {
            let _ = t.elements();
        }
    }
});
