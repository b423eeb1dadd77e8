//! libfuzzer-sys aborts on any panic, even one the code under test catches on
//! purpose (`gguf::parse` wraps candle's reader and tokenizer.json parsing wraps
//! the tokenizers crate, both in `catch_unwind`). This hook keeps caught panics
//! silent and non-fatal; a panic that escapes the target still aborts
//! (libfuzzer-sys catches it at the top and aborts), so it is still reported as
//! a crash, without the panic message: replay the input with
//! `TANTO_FUZZ_PANICS=1`, which prints every panic, caught or not.

use std::sync::Once;

pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let verbose = std::env::var_os("TANTO_FUZZ_PANICS").is_some();
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if verbose {
                default(info);
            }
        }));
    });
}
