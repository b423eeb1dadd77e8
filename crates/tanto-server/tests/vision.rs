//! `tanto serve` with a real vision-language model: the committed tiny
//! random SmolVLM (tests/fixtures/vlm-tiny/idefics3) in a temporary hub
//! cache. Image chat (plain and streamed) answers exactly what the engine
//! answers for the same messages, text-only chat runs on the same model, and
//! images in earlier turns are part of the prompt.

mod common;

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use tanto_engine::vision::image::{decode, ImageLimits};
use tanto_engine::{ChatMessage, ContentPart, Flow, GenerationParams, Prompt};

const VLM: &str = "tanto-test/tiny-smolvlm";

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/vlm-tiny")
}

fn png() -> Vec<u8> {
    std::fs::read(fixtures().join("images/square.png")).unwrap()
}

fn data_url(b: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(b)
    )
}

/// The answer of the engine itself (greedy, 12 tokens) to one image + text.
fn engine_answer(question: &str) -> (String, usize) {
    let dir = fixtures().join("idefics3");
    let p = tanto_core::probe::probe_uncached(&tanto_core::probe::ProbeTarget {
        name: VLM.into(),
        dir: Some(dir),
        file: None,
        repo: None,
    });
    let (plan, _) = tanto_core::policy::plan(
        &p,
        tanto_core::policy::Request::Vision,
        &tanto_core::host::detect(),
        &tanto_core::policy::PolicyConfig::default(),
    )
    .unwrap();
    let mut m =
        tanto_engine::load_text_model(&plan, &tanto_engine::LoadOptions { threads: Some(2) })
            .unwrap();
    let img = Arc::new(decode(&png(), ImageLimits::default()).unwrap());
    let prompt = Prompt::Chat(vec![ChatMessage {
        role: "user".into(),
        content: question.into(),
        parts: vec![ContentPart::Image(img), ContentPart::Text(question.into())],
    }]);
    let params = GenerationParams {
        max_tokens: Some(12),
        temperature: 0.0,
        top_p: None,
        ..Default::default()
    };
    let out = m
        .generate(&prompt, &params, &mut |_| Flow::Continue)
        .unwrap();
    (out.content, out.usage.prompt_tokens)
}

async fn chat(c: &reqwest::Client, base: &str, body: &Value) -> reqwest::Response {
    c.post(format!("{base}/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_chat_plain_and_streamed_equals_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hub");
    let snap = snapshot_dir(&hub, VLM);
    for f in std::fs::read_dir(fixtures().join("idefics3")).unwrap() {
        let f = f.unwrap().path();
        std::os::unix::fs::symlink(&f, snap.join(f.file_name().unwrap())).unwrap();
    }
    let (base, stop, h) = start_engine_server(dir.path()).await;
    let c = client();

    // Listed with the vision capability.
    let v: Value = c
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == VLM)
        .expect("listed");
    let caps: Vec<&str> = m["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(caps.contains(&"vision"), "{m}");

    let q = "Describe the image.";
    let (want, want_prompt) = tokio::task::spawn_blocking(move || engine_answer(q))
        .await
        .unwrap();
    let body = |stream: bool| {
        json!({"model": VLM, "temperature": 0, "max_tokens": 12, "stream": stream,
               "messages": [{"role": "user", "content": [
                   {"type": "image_url", "image_url": {"url": data_url(&png()), "detail": "auto"}},
                   {"type": "text", "text": q}]}]})
    };
    let r = chat(&c, &base, &body(false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"].as_str().unwrap(),
        want,
        "{v}"
    );
    assert_eq!(
        v["usage"]["prompt_tokens"].as_u64().unwrap() as usize,
        want_prompt
    );
    assert_eq!(v["usage"]["completion_tokens"], 12);

    let r = chat(&c, &base, &body(true)).await;
    assert_eq!(r.status(), 200);
    let (events, done) = read_sse(r).await;
    assert!(done);
    let streamed = streamed_content(&events);
    assert_eq!(streamed, want);

    // The image stays in the history: a follow-up question is a longer
    // prompt that still holds the image's tokens.
    let follow = json!({"model": VLM, "temperature": 0, "max_tokens": 4,
        "messages": [
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_url(&png())}},
                {"type": "text", "text": q}]},
            {"role": "assistant", "content": want},
            {"role": "user", "content": "And the colour?"}]});
    let v: Value = chat(&c, &base, &follow).await.json().await.unwrap();
    assert!(
        v["usage"]["prompt_tokens"].as_u64().unwrap() as usize > want_prompt + 4,
        "{v}"
    );

    // Text only, on the same model.
    let text = json!({"model": VLM, "temperature": 0, "max_tokens": 4,
        "messages": [{"role": "user", "content": "Hello there"}]});
    let r = chat(&c, &base, &text).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() < 20, "{v}");

    // The model's image marker typed as text is refused, not misread.
    let sneaky =
        json!({"model": VLM, "messages": [{"role": "user", "content": "<image> what is this"}]});
    let r = chat(&c, &base, &sneaky).await;
    assert_eq!(r.status(), 400);

    let _ = stop.send(());
    h.await.unwrap().unwrap();
}
