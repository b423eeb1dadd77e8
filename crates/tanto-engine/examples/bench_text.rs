//! Prefill/decode throughput of tanto's text engine on a GGUF (or safetensors dir).
//!
//!     bench_text MODEL.gguf [--threads N] [--prompt-tokens 128] [--gen 128] [--runs 1] [--json]
//!
//! The prompt is a fixed English paragraph tokenized and cut/repeated to exactly
//! `--prompt-tokens` ids; generation is greedy with EOS ignored (it runs to `--gen`).

use std::path::PathBuf;
use std::time::Instant;

use tanto_engine::{Flow, GenerationParams, LoadOptions, TextEngine};

const TEXT: &str = "The history of the lighthouse is a story of engineering, commerce and \
courage. Long before electric lamps, keepers climbed narrow stairs each evening to trim \
wicks and polish lenses, so that ships could find their way past reefs and sandbanks. \
Each tower had its own pattern of flashes, and sailors learned to read the coast like a \
book of lights. Today most lights are automated, yet the buildings remain, standing on \
cliffs and islands as reminders of the people who kept them burning through storms. ";

fn main() {
    let mut args = std::env::args().skip(1);
    let mut model: Option<PathBuf> = None;
    let (mut threads, mut n_prompt, mut n_gen, mut runs, mut json) =
        (None, 128usize, 128usize, 1usize, false);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--threads" => threads = Some(num("--threads")),
            "--prompt-tokens" => n_prompt = num("--prompt-tokens"),
            "--gen" => n_gen = num("--gen"),
            "--runs" => runs = num("--runs"),
            "--json" => json = true,
            _ => model = Some(PathBuf::from(a)),
        }
    }
    let Some(model) = model else {
        eprintln!("usage: bench_text MODEL.gguf|MODEL_DIR [--threads N] [--prompt-tokens N] [--gen N] [--runs N] [--json]");
        std::process::exit(2);
    };
    let opts = LoadOptions { threads };
    let t0 = Instant::now();
    // A GGUF file loads directly; a model folder (safetensors, MLX) goes
    // through resolve → probe → policy like `tanto run`.
    let loaded = if model.is_dir() {
        use tanto_core::policy::{plan, PolicyConfig, Request};
        let stores = tanto_core::resolve::Stores::from_env();
        let spec = model.display().to_string();
        let r = tanto_core::resolve::resolve(&spec, &stores).unwrap_or_else(|e| {
            eprintln!("resolve failed: {e}");
            std::process::exit(1);
        });
        let p = tanto_core::probe::probe_resolved(&r);
        let host = tanto_core::host::detect();
        let (lp, _) =
            plan(&p, Request::Text, &host, &PolicyConfig::from_env()).unwrap_or_else(|e| {
                eprintln!("policy refused: {e}");
                std::process::exit(1);
            });
        TextEngine::load(&lp, &opts)
    } else {
        TextEngine::load_gguf_file(&model, &opts)
    };
    let mut engine = loaded.unwrap_or_else(|e| {
        eprintln!("load failed: {e}");
        std::process::exit(1);
    });
    let load = t0.elapsed();
    let tok = engine.tokenizer();
    let base = tok.encode(TEXT, false).expect("tokenize");
    let prompt: Vec<u32> = base.iter().cycle().take(n_prompt).copied().collect();
    let params = GenerationParams {
        temperature: 0.0,
        max_tokens: Some(n_gen),
        top_p: None,
        ..Default::default()
    };
    // Ignore EOS so every run decodes the same number of tokens.
    engine.set_ignore_eos(true);
    for run in 0..runs {
        // A fresh cache each run: prefill measures the whole prompt.
        engine.clear_cache();
        let out = engine
            .generate_ids(&prompt, &params, &mut |_| Flow::Continue)
            .expect("generate");
        let pre = out.usage.prompt_tokens as f64 / out.timings.prefill.as_secs_f64();
        let dec = out.timings.decode_tps(&out.usage);
        if json {
            println!(
                "{{\"engine\":\"tanto\",\"run\":{run},\"threads\":{},\"prompt_tokens\":{},\"gen_tokens\":{},\"prefill_tps\":{pre:.2},\"decode_tps\":{dec:.2},\"load_s\":{:.3},\"backend\":\"{}\"}}",
                threads.unwrap_or(0),
                out.usage.prompt_tokens,
                out.usage.completion_tokens,
                load.as_secs_f64(),
                engine.backend_name
            );
        } else {
            println!(
                "tanto [{}] run {run}: prompt {} tok, prefill {pre:.1} tok/s; generated {} tok, decode {dec:.1} tok/s (load {:.2}s)",
                engine.backend_name,
                out.usage.prompt_tokens,
                out.usage.completion_tokens,
                load.as_secs_f64()
            );
        }
    }
}
