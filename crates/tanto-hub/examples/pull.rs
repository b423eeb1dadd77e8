//! Pull a repo into the HF cache and print the report as JSON.
//!
//! `cargo run -p tanto-hub --example pull -- ORG/NAME[@REV] [--include GLOB]... [--exclude GLOB]...`
//! Uses HF_ENDPOINT / HF_TOKEN / HF_HUB_CACHE / HF_HOME / HF_HUB_OFFLINE like `tanto pull`.
//! Exit status 0 on success, 1 on error (message on stderr; JSON `{"error": ...}` on stdout).

use tanto_hub::{pull, PullOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let spec = args
        .next()
        .expect("usage: pull ORG/NAME[@REV] [--include G] [--exclude G]");
    let (repo, rev) = match spec.split_once('@') {
        Some((r, v)) => (r.to_string(), Some(v.to_string())),
        None => (spec, None),
    };
    let mut opts = PullOptions::new(repo);
    opts.revision = rev;
    while let Some(a) = args.next() {
        let v = args.next().expect("missing value");
        match a.as_str() {
            "--include" => opts.include.push(v),
            "--exclude" => opts.exclude.push(v),
            "--revision" => opts.revision = Some(v),
            "--retries" => opts.retries = v.parse().expect("number"),
            other => panic!("unknown argument {other}"),
        }
    }
    match pull(&opts) {
        Ok(report) => println!("{}", serde_json::to_string_pretty(&report).unwrap()),
        Err(e) => {
            eprintln!("pull: {e}");
            println!("{}", serde_json::json!({ "error": e.to_string() }));
            std::process::exit(1);
        }
    }
}
