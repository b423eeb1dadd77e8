//! Embeddings against independent references: all-MiniLM-L6-v2 (the real
//! model) against sentence-transformers' vectors, and tiny random-weight
//! models of every supported architecture and pooling mode against
//! sentence-transformers / transformers (fixtures made by `scripts/ref/`).
//! Every model goes through the real pipeline: probe → policy → load.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tanto_core::policy::{self, PolicyConfig, Request};
use tanto_core::probe::{self, ProbeTarget};
use tanto_engine::embed::{self, EmbedInput, EmbeddingModel, InputType};
use tanto_engine::LoadOptions;

fn load(dir: &Path, name: &str) -> Box<dyn EmbeddingModel> {
    let p = probe::probe_uncached(&ProbeTarget {
        name: name.into(),
        dir: Some(dir.to_path_buf()),
        file: None,
        repo: None,
    });
    assert!(p.runnable(), "{name}: {:?} / {:?}", p.health, p.runtime);
    let (plan, _) = policy::plan(
        &p,
        Request::Embeddings,
        &tanto_core::host::detect(),
        &PolicyConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: policy refused: {e:?}"));
    let spec = p.embedding.expect("an embedding spec");
    embed::load_embedding_model(&plan, &spec, &LoadOptions { threads: Some(2) })
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "dimensions differ");
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn texts(v: &[String]) -> Vec<EmbedInput> {
    v.iter().map(|t| EmbedInput::Text(t.clone())).collect()
}

fn minilm() -> Option<(PathBuf, Box<dyn EmbeddingModel>)> {
    let models = common::models_dir("embeddings")?;
    let dir = models.join("all-MiniLM-L6-v2");
    let m = load(&dir, "sentence-transformers/all-MiniLM-L6-v2");
    Some((dir, m))
}

#[test]
fn minilm_matches_the_published_reference() {
    let Some((_, mut m)) = minilm() else { return };
    assert_eq!(m.info().dimensions, 384);
    assert_eq!(m.info().max_seq_length, 256);
    let fx = common::fixture("minilm_ref.json");
    let cases = fx["cases"].as_array().unwrap();
    let inputs: Vec<String> = cases
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    let enc = m.encode(&texts(&inputs), InputType::Default, None).unwrap();
    let vecs = m.embed_encoded(&enc).unwrap();
    for (i, c) in cases.iter().enumerate() {
        assert_eq!(enc[i].ids, ids(&c["ids"]), "token ids of {:?}", inputs[i]);
        let cos = cosine(&vecs[i], &floats(&c["embedding"]));
        assert!(cos >= 0.99999, "{:?}: cosine {cos}", inputs[i]);
    }
    // cos("hello world", fox) = 0.1086 in the published reference.
    let c01 = cosine(&vecs[0], &vecs[1]);
    assert!((c01 - 0.108609).abs() < 1e-4, "{c01}");
}

#[test]
fn minilm_matches_sentence_transformers_on_many_texts() {
    let Some((_, mut m)) = minilm() else { return };
    let fx = common::fixture("embeddings/all-minilm-l6-v2.json");
    let recs = fx["records"].as_array().unwrap();
    assert!(recs.len() >= 50, "{} records", recs.len());
    let inputs: Vec<String> = recs
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect();
    let enc = m.encode(&texts(&inputs), InputType::Default, None).unwrap();
    let vecs = m.embed_encoded(&enc).unwrap();
    let mut truncated = 0;
    let mut worst = 1.0f64;
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(
            enc[i].ids,
            ids(&r["token_ids"]),
            "token ids of {:?}",
            inputs[i]
        );
        if r["n_tokens_untruncated"].as_u64().unwrap_or(0) > 256 {
            truncated += 1;
            assert!(
                enc[i].truncated_tokens > 0,
                "{:?} was not truncated",
                inputs[i]
            );
        }
        let cos = cosine(&vecs[i], &floats(&r["embedding"]));
        worst = worst.min(cos);
        assert!(cos >= 0.99999, "{:?}: cosine {cos}", inputs[i]);
    }
    assert!(
        truncated >= 2,
        "the fixture must include texts over 256 tokens"
    );
    eprintln!("worst cosine over {} texts: {worst:.9}", recs.len());
}

#[test]
fn a_text_gives_the_same_vector_alone_or_in_a_batch_of_64() {
    let Some((_, mut m)) = minilm() else { return };
    let mut inputs: Vec<String> = (0..63)
        .map(|i| format!("sentence number {i} {}", "with more words ".repeat(i % 17)))
        .collect();
    inputs.insert(20, "The quick brown fox jumps over the lazy dog.".into());
    let batch = m.embed(&texts(&inputs), InputType::Default, None).unwrap();
    let mut worst_abs = 0f32;
    for i in [0usize, 20, 41, 63] {
        let alone = m
            .embed(&texts(&inputs[i..=i]), InputType::Default, None)
            .unwrap();
        let cos = cosine(&alone[0], &batch[i]);
        assert!(cos >= 1.0 - 1e-6, "input {i}: cosine {cos}");
        for (a, b) in alone[0].iter().zip(&batch[i]) {
            worst_abs = worst_abs.max((a - b).abs());
        }
    }
    eprintln!("largest |alone - batched| element: {worst_abs:e}");
}

#[test]
fn token_arrays_and_bad_inputs() {
    let Some((_, mut m)) = minilm() else { return };
    // The ids of "hello world" embed exactly as the text does.
    let from_text = m
        .embed(
            &[EmbedInput::Text("hello world".into())],
            InputType::Default,
            None,
        )
        .unwrap();
    let from_ids = m
        .embed(
            &[EmbedInput::Tokens(vec![101, 7592, 2088, 102])],
            InputType::Default,
            None,
        )
        .unwrap();
    assert_eq!(from_text, from_ids);
    let vocab = m.info().vocab_size as u32;
    let e = m
        .embed(
            &[EmbedInput::Tokens(vec![101, vocab])],
            InputType::Default,
            None,
        )
        .unwrap_err();
    assert!(e.to_string().contains("outside the vocabulary"), "{e}");
    assert_eq!(e.http_status(), 400);
    let e = m
        .embed(&[EmbedInput::Tokens(vec![])], InputType::Default, None)
        .unwrap_err();
    assert_eq!(e.http_status(), 400);
    // MiniLM has no instruction format.
    let e = m
        .embed(
            &[EmbedInput::Text("x".into())],
            InputType::Query,
            Some("find"),
        )
        .unwrap_err();
    assert_eq!(e.http_status(), 400, "{e}");
    // A very long text is truncated, not refused.
    let long = "word ".repeat(200_000);
    let enc = m
        .encode(&[EmbedInput::Text(long)], InputType::Default, None)
        .unwrap();
    assert_eq!(enc[0].ids.len(), 256);
    assert!(enc[0].truncated_tokens > 100_000);
}

// ---------------------------------------------------------------------------
// Tiny random-weight models (tests/fixtures/embed-tiny/<name>/reference.json)

fn tiny_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/embed-tiny")
        .join(name)
}

fn check_tiny(name: &str) {
    let dir = tiny_dir(name);
    let fx: Value = serde_json::from_slice(
        &std::fs::read(dir.join("reference.json")).unwrap_or_else(|e| panic!("{name}: {e}")),
    )
    .unwrap();
    let mut m = load(&dir, name);
    let inputs: Vec<String> = fx["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    // sentence-transformers' `encode(texts)`: the default prompt (none here).
    let mut sets = vec![(InputType::Default, "token_ids", "embeddings")];
    if fx.get("query_embeddings").is_some() {
        sets.push((InputType::Query, "query_token_ids", "query_embeddings"));
    }
    for (ty, ids_key, vec_key) in sets {
        let enc = m.encode(&texts(&inputs), ty, None).unwrap();
        let vecs = m.embed_encoded(&enc).unwrap();
        let refs = fx[vec_key].as_array().unwrap();
        for (i, want) in refs.iter().enumerate() {
            if let Some(want_ids) = fx.get(ids_key).and_then(|v| v.get(i)) {
                assert_eq!(
                    enc[i].ids,
                    ids(want_ids),
                    "{name} {vec_key}: ids of {:?}",
                    inputs[i]
                );
            }
            let want = floats(want);
            assert_eq!(vecs[i].len(), want.len(), "{name}: dimensions");
            let cos = cosine(&vecs[i], &want);
            assert!(
                cos >= 0.9999,
                "{name} {vec_key} {:?}: cosine {cos}",
                inputs[i]
            );
        }
        // A text's vector does not depend on what it is batched with (the
        // padded ModernBERT and decoder paths included): alone, it is the same.
        for (i, text) in inputs.iter().enumerate() {
            let one = m
                .encode(&texts(std::slice::from_ref(text)), ty, None)
                .unwrap();
            let alone = m.embed_encoded(&one).unwrap();
            let cos = cosine(&alone[0], &vecs[i]);
            assert!(
                cos >= 1.0 - 1e-6,
                "{name} {vec_key} {text:?}: alone vs batched cosine {cos}"
            );
        }
    }
}

macro_rules! tiny_tests {
    ($($f:ident => $name:literal,)*) => {$(
        #[test]
        fn $f() {
            check_tiny($name);
        }
    )*};
}

tiny_tests! {
    tiny_bert_mean => "bert-mean",
    tiny_bert_cls => "bert-cls",
    tiny_bert_max => "bert-max",
    tiny_bert_mean_sqrt_len => "bert-mean-sqrt-len",
    tiny_bert_weightedmean => "bert-weightedmean",
    tiny_bert_lasttoken => "bert-lasttoken",
    tiny_bert_cls_mean => "bert-cls-mean",
    tiny_bert_dense => "bert-dense",
    tiny_bert_prompt => "bert-prompt",
    tiny_xlm_roberta => "xlm-roberta-mean",
    tiny_modernbert => "modernbert-mean",
    tiny_qwen3 => "qwen3-lasttoken",
    tiny_qwen2 => "qwen2-lasttoken",
}
