//! Workspace tools over the library API (manual checks and the interop script).
//!
//! * `workspace hash DIR` — content_hash v2 and file index as JSON
//! * `workspace state DIR` — managed / clean / content_hash
//! * `workspace clone SNAPSHOT TARGET REPO [REV]`
//! * `workspace repair SRC DST`

use std::path::Path;

use tanto_core::workspace::{compute_content_hash, default_exclude_patterns, workspace_state};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or_else(|| usage());
    let out = match a(0) {
        "hash" => match compute_content_hash(Path::new(a(1)), &default_exclude_patterns()) {
            Some(h) => serde_json::json!({
                "content_hash": h.content_hash,
                "file_index": h.file_index.iter().map(|e| serde_json::json!({
                    "path": e.path, "size": e.size, "mtime_ns": e.mtime_ns, "sha": e.sha
                })).collect::<Vec<_>>(),
            }),
            None => serde_json::json!({ "content_hash": null }),
        },
        "state" => {
            let s = workspace_state(Path::new(a(1)));
            serde_json::json!({
                "managed": s.managed, "clean": s.clean, "content_hash": s.content_hash,
                "hash_modified": s.hash_modified, "origin": s.origin,
            })
        }
        "clone" => {
            let r = tanto_hub::clone_snapshot(
                Path::new(a(1)),
                Path::new(a(2)),
                a(3),
                args.get(4).map(String::as_str),
            );
            serde_json::to_value(r.unwrap_or_else(|e| fail(e))).unwrap()
        }
        "repair" => {
            let r = tanto_hub::repair_index(Path::new(a(1)), Path::new(a(2)));
            serde_json::to_value(r.unwrap_or_else(|e| fail(e))).unwrap()
        }
        _ => usage(),
    };
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}

fn fail(e: tanto_hub::HubError) -> ! {
    eprintln!("error: {e}");
    std::process::exit(1)
}

fn usage() -> ! {
    eprintln!(
        "usage: workspace hash|state DIR | clone SNAPSHOT TARGET REPO [REV] | repair SRC DST"
    );
    std::process::exit(2)
}
