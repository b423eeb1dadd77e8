//! The engine alone, for the server-overhead baseline of scripts/bench-serve.sh:
//! resolve + probe + policy + load like the server, then one greedy chat
//! generation, timed the same way the HTTP clients time it.
//! `cargo run --release -p tanto-server --example engine_bench -- MODEL [MAX_TOKENS] [THREADS]`
//! Prints one JSON line: {"ttft_s", "completion_tokens", "total_s", "tok_s", "decode_tok_s"}.

use std::time::Instant;

use tanto_core::policy::{self, PolicyConfig, Request};
use tanto_engine::{ChatMessage, Delta, Flow, GenerationParams, LoadOptions, Prompt};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let spec = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: engine_bench MODEL [MAX_TOKENS] [THREADS]"))?;
    let max_tokens: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(128);
    let threads: Option<usize> = args.next().map(|s| s.parse()).transpose()?;
    let stores = tanto_core::resolve::Stores::from_env();
    let r = tanto_core::resolve::resolve(&spec, &stores)?;
    let p = tanto_core::probe::probe_resolved(&r);
    let (plan, _) = policy::plan(
        &p,
        Request::Text,
        &tanto_core::host::detect(),
        &PolicyConfig::from_env(),
    )?;
    let mut model = tanto_engine::load_text_model(&plan, &LoadOptions { threads })?;
    let prompt = Prompt::Chat(vec![ChatMessage {
        role: "user".into(),
        content: std::env::var("BENCH_PROMPT")
            .unwrap_or_else(|_| "Write a short story about a lighthouse keeper.".into()),
        parts: Vec::new(),
    }]);
    let params = GenerationParams {
        max_tokens: Some(max_tokens),
        temperature: 0.0,
        ..GenerationParams::default()
    };
    // Warm-up, as the server bench warms up with one request.
    model.generate(
        &prompt,
        &GenerationParams {
            max_tokens: Some(4),
            ..params.clone()
        },
        &mut |_| Flow::Continue,
    )?;
    let t0 = Instant::now();
    let mut ttft = None;
    let out = model.generate(&prompt, &params, &mut |d: Delta<'_>| {
        if ttft.is_none() && matches!(d, Delta::Content(t) | Delta::Reasoning(t) if !t.is_empty()) {
            ttft = Some(t0.elapsed().as_secs_f64());
        }
        Flow::Continue
    })?;
    let total = t0.elapsed().as_secs_f64();
    let ttft = ttft.unwrap_or(total);
    let n = out.usage.completion_tokens;
    let decode = if total > ttft && n > 1 {
        (n - 1) as f64 / (total - ttft)
    } else {
        0.0
    };
    println!(
        "{{\"ttft_s\":{ttft:.4},\"completion_tokens\":{n},\"total_s\":{total:.4},\"tok_s\":{:.2},\"decode_tok_s\":{decode:.2}}}",
        n as f64 / total
    );
    Ok(())
}
