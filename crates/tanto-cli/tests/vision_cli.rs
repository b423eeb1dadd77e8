//! `tanto run VLM --image FILE…` end to end on the committed tiny random
//! SmolVLM (tests/fixtures/vlm-tiny): the metadata table before the answer
//! (EXIF columns, chunks, `--no-exif`), the JSON envelope, and the refusals
//! (a text model, bad chunk sizes, missing or corrupt files), each typed.

use std::path::{Path, PathBuf};

mod common;

use common::{json, tanto};

fn fx(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/vlm-tiny")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn sha8(path: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(std::fs::read(path).unwrap());
    h.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

const GREEDY: &[&str] = &["--temperature", "0", "--max-tokens", "6"];

#[test]
fn images_get_the_metadata_table_then_the_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fx("idefics3");
    let (png, jpg) = (fx("images/square.png"), fx("images/exif.jpg"));
    let mut args = vec![
        "run", &model, "--image", &png, &jpg, "--chunk", "2", "--json",
    ];
    args.extend_from_slice(GREEDY);
    let out = tanto(tmp.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert_eq!(v["status"], "success");
    let d = &v["data"];
    assert_eq!(d["prompt"], "Describe the image.", "the default prompt");
    assert_eq!(d["images"][1]["width"], 200, "EXIF orientation applied");
    assert_eq!(d["images"][1]["height"], 300);
    assert_eq!(d["usage"]["completion_tokens"], 6);
    let table = format!(
        "<details>\n<summary>📸 Image Metadata (2 images)</summary>\n\n<!-- mlxk:filenames -->\n\
         | Image | Filename | Original | Location | Date | Camera |\n\
         |-------|----------|----------|----------|------|--------|\n\
         | 1 | image_{}.jpeg | square.png | - | - | - |\n\
         | 2 | image_{}.jpeg | exif.jpg | 📍 48.8582°N, 2.2945°E | 📅 2024-05-01 | TC-1 |\n\n</details>\n\n",
        sha8(&png),
        sha8(&jpg)
    );
    let resp = d["response"].as_str().unwrap();
    assert!(resp.starts_with(&table), "{resp}");

    // The same question by the human path: table, then the streamed answer.
    let mut args = vec!["run", &model, "--image", &png, &jpg, "--chunk", "2"];
    args.extend_from_slice(GREEDY);
    let out = tanto(tmp.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{resp}\n"));

    // One image per call: two tables, numbered by chunk, answers apart.
    let mut args = vec!["run", &model, "--image", &png, &jpg, "--json"];
    args.extend_from_slice(GREEDY);
    let v = json(&tanto(tmp.path(), &args));
    let resp = v["data"]["response"].as_str().unwrap();
    assert!(
        resp.starts_with("<details>\n<summary>📸 Chunk 1/2: Images 1-1</summary>"),
        "{resp}"
    );
    assert!(
        resp.contains("\n\n<details>\n<summary>📸 Chunk 2/2: Images 2-2</summary>"),
        "{resp}"
    );
    assert_eq!(v["data"]["usage"]["completion_tokens"], 12);

    // --no-exif: id and name only, and no EXIF in the prompt.
    let mut args = vec![
        "run",
        &model,
        "--image",
        &jpg,
        "--no-exif",
        "--json",
        "What is this?",
    ];
    args.extend_from_slice(GREEDY);
    let v = json(&tanto(tmp.path(), &args));
    let resp = v["data"]["response"].as_str().unwrap();
    let head = format!(
        "<details>\n<summary>📸 Image Metadata (1 image)</summary>\n\n<!-- mlxk:filenames -->\n\
         | Image | Filename |\n|-------|----------|\n| 1 | image_{}.jpeg |\n\n</details>\n\n",
        sha8(&jpg)
    );
    assert!(resp.starts_with(&head), "{resp}");
    assert_eq!(v["data"]["prompt"], "What is this?");
}

#[test]
fn refusals_are_typed_and_load_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fx("idefics3");
    let png = fx("images/square.png");
    // Chunk sizes outside 1..5.
    let out = tanto(
        tmp.path(),
        &["run", &model, "--image", &png, "--chunk", "6", "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(json(&out)["error"]["tanto_type"], "validation_error");
    // A missing file and a corrupt one name the file.
    let out = tanto(
        tmp.path(),
        &["run", &model, "--image", "/nonexistent.png", "--json"],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(json(&out)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/nonexistent.png"));
    let bad: PathBuf = tmp.path().join("bad.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let out = tanto(
        tmp.path(),
        &["run", &model, "--image", bad.to_str().unwrap(), "--json"],
    );
    assert_ne!(out.status.code(), Some(0));
    let e = json(&out);
    assert_eq!(e["error"]["tanto_type"], "validation_error", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("bad.jpg"));
    // A text file is not an image: 415-class.
    let txt = tmp.path().join("notes.png");
    std::fs::write(&txt, "just text").unwrap();
    let out = tanto(
        tmp.path(),
        &["run", &model, "--image", txt.to_str().unwrap(), "--json"],
    );
    assert_eq!(json(&out)["error"]["tanto_type"], "unsupported_media_type");
    // --image with a model that has no vision: capability_mismatch.
    let emb = fx("../embed-tiny");
    let text_model = std::fs::read_dir(&emb)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("config.json").is_file())
        .unwrap();
    let out = tanto(
        tmp.path(),
        &[
            "run",
            text_model.to_str().unwrap(),
            "--image",
            &png,
            "--json",
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(
        json(&out)["error"]["tanto_type"],
        "capability_mismatch",
        "{out:?}"
    );
}
