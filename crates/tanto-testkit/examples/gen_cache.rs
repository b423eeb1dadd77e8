//! Generate a hub cache of N models (mixed formats, about 15 % broken) for benchmarks.
//!
//!     cargo run --release -p tanto-testkit --example gen_cache -- DIR N
//!
//! DIR becomes the hub cache root (point `HF_HUB_CACHE` at it).

use std::path::PathBuf;
use std::process::ExitCode;

use tanto_testkit::presets::{self, Broken};
use tanto_testkit::HubCache;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(n)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: gen_cache DIR N");
        return ExitCode::from(2);
    };
    let cache = HubCache::new(PathBuf::from(dir));
    let healthy = presets::healthy_presets();
    let broken: Vec<_> = Broken::ALL.iter().map(|b| (*b, b.files())).collect();
    let (mut ok, mut bad) = (0usize, 0usize);
    for i in 0..n {
        if i % 20 < 17 {
            let (base, files) = &healthy[i % healthy.len()];
            let name = base.rsplit('/').next().unwrap_or(base);
            cache.add(&format!("bench-org{}/{name}-{i:05}", i % 7), files);
            ok += 1;
        } else {
            let (b, _) = &broken[(i / 20 + i) % broken.len()];
            b.install_as(&cache, &format!("bench-broken/{}-{i:05}", b.slug()));
            bad += 1;
        }
    }
    eprintln!("gen_cache: {n} models in {dir} ({ok} healthy presets, {bad} broken)");
    ExitCode::SUCCESS
}
