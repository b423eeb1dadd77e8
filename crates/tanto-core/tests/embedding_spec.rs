//! The probe's embedding pipeline (`probe/embedding.rs`) on real
//! sentence-transformers folders (the tiny fixtures), and on broken copies.

use std::path::{Path, PathBuf};

use tanto_core::probe::embedding::{Activation, InputType, Pooling, SpecSource};
use tanto_core::probe::{probe_uncached, Probe, ProbeTarget};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/embed-tiny")
        .join(name)
}

fn probe_dir(dir: &Path, name: &str) -> Probe {
    probe_uncached(&ProbeTarget {
        name: name.into(),
        dir: Some(dir.to_path_buf()),
        file: None,
        repo: None,
    })
}

/// A writable copy of a fixture.
fn copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dst = t.path().join(name);
    copy_tree(&fixture(name), &dst);
    (t, dst)
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

#[test]
fn pipeline_comes_from_the_files() {
    let p = probe_dir(&fixture("bert-mean"), "x/bert-mean");
    let s = p.embedding.expect("spec");
    assert_eq!(s.source, SpecSource::SentenceTransformers);
    assert_eq!(s.pooling, vec![Pooling::Mean]);
    // Normalize is listed in modules.json without a folder, as in all-MiniLM-L6-v2.
    assert!(s.normalize);
    assert_eq!(s.max_seq_length, Some(24));
    assert_eq!(s.dimensions, Some(32));

    let s = probe_dir(&fixture("bert-cls-mean"), "x").embedding.unwrap();
    assert_eq!(s.pooling, vec![Pooling::Cls, Pooling::Mean]);
    assert_eq!(s.dimensions, Some(64), "concatenated modes");

    let s = probe_dir(&fixture("bert-dense"), "x").embedding.unwrap();
    assert_eq!(s.dense.len(), 1);
    assert_eq!(s.dense[0].activation, Activation::Tanh);
    assert_eq!(s.dimensions, Some(16), "the Dense output size");

    let s = probe_dir(&fixture("bert-prompt"), "x").embedding.unwrap();
    assert!(!s.include_prompt && s.do_lower_case);
    assert_eq!(s.prompt(InputType::Query, None).unwrap(), "query: ");
    assert_eq!(s.prompt(InputType::Document, None).unwrap(), "passage: ");
    assert_eq!(s.prompt(InputType::Default, None).unwrap(), "");
    assert!(s.prompt(InputType::Query, Some("task")).is_err());

    let s = probe_dir(&fixture("qwen3-lasttoken"), "x")
        .embedding
        .unwrap();
    assert_eq!(s.pooling, vec![Pooling::LastToken]);
    assert!(s.takes_instruction());
    assert_eq!(
        s.prompt(InputType::Query, Some("Find code")).unwrap(),
        "Instruct: Find code\nQuery:"
    );
}

#[test]
fn without_modules_json_the_name_rules_apply_and_say_so() {
    let (_t, d) = copy("bert-mean");
    std::fs::remove_file(d.join("modules.json")).unwrap();
    let s = probe_dir(&d, "BAAI/bge-small-en-v1.5").embedding.unwrap();
    assert_eq!(s.source, SpecSource::NameRuleBge);
    assert_eq!(s.pooling, vec![Pooling::Cls]);
    assert!(s.normalize);
    assert!(s
        .prompt(InputType::Query, None)
        .unwrap()
        .starts_with("Represent"));
    let s = probe_dir(&d, "intfloat/e5-small-v2").embedding.unwrap();
    assert_eq!(s.source, SpecSource::NameRuleE5);
    assert_eq!(s.prompt(InputType::Default, None).unwrap(), "passage: ");
    let s = probe_dir(&d, "org/some-encoder").embedding.unwrap();
    assert_eq!(s.source, SpecSource::Default);
    assert_eq!(s.pooling, vec![Pooling::Mean]);
    assert!(s.source.describe().contains("mean"));
}

/// (fixture, how to break it, expected problem code, text the message names).
type Case<'a> = (&'a str, &'a dyn Fn(&Path), &'a str, &'a str);

#[test]
fn broken_module_files_are_health_problems_that_name_the_file() {
    let cases: &[Case] = &[
        (
            "bert-mean",
            &|d| std::fs::write(d.join("modules.json"), "{oops").unwrap(),
            "config_invalid",
            "modules.json",
        ),
        (
            "bert-mean",
            &|d| {
                std::fs::write(
                    d.join("1_Pooling/config.json"),
                    "{\"pooling_mode_mean_tokens\": false}",
                )
                .unwrap()
            },
            "config_invalid",
            "no pooling mode",
        ),
        (
            "bert-mean",
            &|d| std::fs::remove_file(d.join("1_Pooling/config.json")).unwrap(),
            "config_invalid",
            "1_Pooling/config.json",
        ),
        (
            "bert-dense",
            &|d| std::fs::remove_file(d.join("2_Dense/model.safetensors")).unwrap(),
            "no_weights",
            "2_Dense",
        ),
        (
            "bert-mean",
            &|d| {
                std::fs::write(d.join("modules.json"), r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"my_pkg.FancyPooling"}]"#).unwrap()
            },
            "config_invalid",
            "my_pkg.FancyPooling",
        ),
        (
            "bert-mean",
            &|d| {
                std::fs::write(d.join("modules.json"), r#"[{"idx":1,"name":"1","path":"../../etc","type":"sentence_transformers.models.Pooling"}]"#).unwrap()
            },
            "config_invalid",
            "no valid path",
        ),
    ];
    for (name, break_it, code, needle) in cases {
        let (_t, d) = copy(name);
        break_it(&d);
        let p = probe_dir(&d, name);
        assert!(!p.health.healthy, "{needle}: still healthy");
        let prob = p
            .health
            .problems
            .iter()
            .find(|x| x.code == *code)
            .unwrap_or_else(|| panic!("{needle}: no {code} in {:?}", p.health.problems));
        assert!(prob.message.contains(needle), "{}", prob.message);
        assert!(!p.runtime.compatible);
    }
}
