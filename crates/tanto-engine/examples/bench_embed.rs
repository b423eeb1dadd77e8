//! Embedding throughput of tanto's engine: load once, embed every line of a
//! text file (one sentence per line), print sentences/s.
//!
//!     bench_embed MODEL_DIR SENTENCES.txt [--threads N] [--budget TOKENS] [--runs N] [--json]
//!
//! The model goes through probe → policy → load, as `tanto embed` does.

use std::path::PathBuf;
use std::time::Instant;

use tanto_core::policy::{self, PolicyConfig, Request};
use tanto_core::probe::{self, ProbeTarget};
use tanto_engine::embed::{EmbedInput, Embedder, EmbeddingModel, InputType};
use tanto_engine::LoadOptions;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut pos = Vec::new();
    let (mut threads, mut budget, mut runs, mut json) = (None, None, 3usize, false);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--threads" => threads = Some(num("--threads")),
            "--budget" => budget = Some(num("--budget")),
            "--runs" => runs = num("--runs").max(1),
            "--json" => json = true,
            _ => pos.push(PathBuf::from(a)),
        }
    }
    let [dir, file] = &pos[..] else {
        eprintln!("usage: bench_embed MODEL_DIR SENTENCES.txt [--threads N] [--budget TOKENS] [--runs N] [--json]");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(file).expect("read sentences");
    let inputs: Vec<EmbedInput> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| EmbedInput::Text(l.to_string()))
        .collect();
    let p = probe::probe_uncached(&ProbeTarget {
        name: dir.display().to_string(),
        dir: Some(dir.clone()),
        file: None,
        repo: None,
    });
    let (plan, _) = policy::plan(
        &p,
        Request::Embeddings,
        &tanto_core::host::detect(),
        &PolicyConfig::default(),
    )
    .expect("policy allows the model");
    let spec = p.embedding.expect("an embedding model");
    let t0 = Instant::now();
    let mut m = Embedder::load(&plan, &spec, &LoadOptions { threads }).expect("load");
    let load_s = t0.elapsed().as_secs_f64();
    if let Some(b) = budget {
        m.set_token_budget(b);
    }
    let enc = m.encode(&inputs, InputType::Default, None).expect("encode");
    let tokens: usize = enc.iter().map(|e| e.ids.len()).sum();
    let mut best = f64::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        let enc = m.encode(&inputs, InputType::Default, None).expect("encode");
        let v = m.embed_encoded(&enc).expect("embed");
        assert_eq!(v.len(), inputs.len());
        best = best.min(t.elapsed().as_secs_f64());
    }
    let n = inputs.len();
    if json {
        println!(
            "{{\"sentences\": {n}, \"tokens\": {tokens}, \"seconds\": {best:.4}, \"sentences_per_s\": {:.2}, \"load_s\": {load_s:.3}, \"backend\": \"{}\"}}",
            n as f64 / best,
            m.info().backend
        );
    } else {
        println!(
            "{n} sentences ({tokens} tokens) in {best:.3} s: {:.1} sentences/s (load {load_s:.2} s, {})",
            n as f64 / best,
            m.info().backend
        );
    }
}
