//! Run the test-suite's fake hub as a process (for scripts/hf-interop.sh and
//! scripts/pull-kill-resume.sh).
//!
//! `cargo run -p tanto-hub --example fake_hub -- [--port N] [--drop-after BYTES] [--big BYTES] [--rate BYTES_PER_SEC]`
//! prints `http://127.0.0.1:PORT` on its first stdout line, then serves until killed.
//! Repos: `tanto-test/demo` (config, tokenizer, two LFS shards, nested files) and
//! `tanto-test/big` (one LFS file of `--big` bytes, default 64 MiB, for kill tests).

#[path = "../tests/support/fake_hub.rs"]
mod fake_hub;

use std::io::Write;

use fake_hub::{demo_repo, noise, FakeFile, FakeHub, FakeRepo};

fn main() {
    let mut port = 0u16;
    let mut drop_after = None;
    let mut big = 64usize << 20;
    let mut rate = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().expect("missing value");
        match a.as_str() {
            "--port" => port = val().parse().expect("port"),
            "--drop-after" => drop_after = Some(val().parse::<u64>().expect("bytes")),
            "--big" => big = val().parse().expect("bytes"),
            "--rate" => rate = Some(val().parse::<u64>().expect("bytes per second")),
            other => panic!("unknown argument {other}"),
        }
    }
    let big_repo = FakeRepo::new(
        "tanto-test/big",
        vec![
            FakeFile::git("config.json", br#"{"model_type":"llama"}"#),
            FakeFile::lfs("model.safetensors", noise(big, 42)),
            FakeFile::lfs("extra.bin", noise(big / 4, 43)),
        ],
    );
    let hub = FakeHub::start_on(vec![demo_repo("tanto-test/demo"), big_repo], port);
    hub.set_drop_after(drop_after, None);
    hub.set_rate(rate);
    println!("{}", hub.url);
    std::io::stdout().flush().unwrap();
    hub.join();
}
