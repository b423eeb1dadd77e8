//! Debug helper: print first-step logits for prompt ids (JSON array on stdin).
use std::io::Read;
use tanto_engine::{Flow, GenerationParams, LoadOptions, TextEngine};
fn main() {
    let path = std::env::args().nth(1).expect("model");
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).unwrap();
    let ids: Vec<u32> = serde_json::from_str(&s).unwrap();
    let mut e =
        TextEngine::load_gguf_file(path.as_ref(), &LoadOptions { threads: Some(1) }).unwrap();
    let l = e.debug_logits(&ids).unwrap();
    println!("{}", serde_json::to_string(&l).unwrap());
    let _ = (Flow::Continue, GenerationParams::default());
}
