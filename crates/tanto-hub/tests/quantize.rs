//! `convert --quantize`: mlx's affine quantizer reproduced byte for byte
//! (committed mlx output for every bit width and group size), and the written
//! folder against a real `mlx_lm convert` of SmolLM2 when the test models exist.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tanto_core::safetensors::read_header;
use tanto_hub::quantize::{quantize_matrix, FloatType};
use tanto_hub::{quantize, QuantizeOptions};

/// name → (dtype, shape, bytes) of a safetensors file.
fn tensors(path: &Path) -> BTreeMap<String, (String, Vec<u64>, Vec<u8>)> {
    let h = read_header(path).unwrap();
    let bytes = std::fs::read(path).unwrap();
    let base = 8 + h.header_len as usize;
    h.tensors
        .into_iter()
        .map(|(k, t)| {
            let b = bytes[base + t.start as usize..base + t.end as usize].to_vec();
            (k, (t.dtype, t.shape, b))
        })
        .collect()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mlx/synthetic.safetensors")
}

#[test]
fn quantizer_equals_mlx_byte_for_byte_for_every_bits_and_group_size() {
    let t = tensors(&fixture());
    let mut cases = 0;
    for bits in [2u32, 3, 4, 5, 6, 8] {
        for gs in [32usize, 64, 128] {
            let k = format!("{bits}_{gs}");
            let (_, shape, src) = &t[&format!("src/{k}")];
            let (rows, cols) = (shape[0] as usize, shape[1] as usize);
            let vals: Vec<f32> = src
                .chunks_exact(2)
                .map(|b| half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                .collect();
            let q = quantize_matrix(&vals, rows, cols, bits, gs, FloatType::BF16);
            assert!(
                q.weight == t[&format!("w/{k}")].2,
                "{k}: packed weights differ from mlx"
            );
            assert!(
                q.scales == t[&format!("s/{k}")].2,
                "{k}: scales differ from mlx"
            );
            assert!(
                q.biases == t[&format!("b/{k}")].2,
                "{k}: biases differ from mlx"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 18);
}

fn models() -> Option<PathBuf> {
    let dir = std::env::var_os("TANTO_TEST_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/tanto/test-models"))
        })?;
    if dir.join("smollm2-135m-instruct-mlx-4bit").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("TANTO_REQUIRE_TEST_MODELS").is_none(),
        "test models missing in {}; run scripts/fetch-test-models.sh",
        dir.display()
    );
    eprintln!("SKIPPED: MLX test models not found (run scripts/fetch-test-models.sh)");
    None
}

#[test]
fn convert_quantize_equals_mlx_lm_on_smollm2() {
    let Some(models) = models() else { return };
    let src = models.join("smollm2-135m-instruct");
    for (bits, folder) in [
        (4u32, "smollm2-135m-instruct-mlx-4bit"),
        (8, "smollm2-135m-instruct-mlx-8bit"),
    ] {
        let t = tempfile::tempdir().unwrap();
        let dst = t.path().join("out");
        let mut calls = 0;
        let rep = quantize(
            &src,
            &dst,
            QuantizeOptions {
                bits,
                group_size: 64,
            },
            &mut |d, n, _| {
                assert!(d <= n);
                calls += 1;
            },
        )
        .unwrap();
        assert!(calls > 0);
        let want_dir = models.join(folder);
        let (got, want) = (
            tensors(&dst.join("model.safetensors")),
            tensors(&want_dir.join("model.safetensors")),
        );
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (k, (dt, shape, bytes)) in &want {
            let g = &got[k];
            assert_eq!((&g.0, &g.1), (dt, shape), "{bits}-bit {k}: dtype/shape");
            assert!(g.2 == *bytes, "{bits}-bit {k}: bytes differ from mlx-lm's");
        }
        let h = read_header(&dst.join("model.safetensors")).unwrap();
        assert_eq!(h.metadata.get("format").map(String::as_str), Some("mlx"));
        // config and index as mlx-lm writes them.
        let json = |p: PathBuf| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
        };
        assert_eq!(
            json(dst.join("config.json")),
            json(want_dir.join("config.json"))
        );
        assert_eq!(
            json(dst.join("model.safetensors.index.json")),
            json(want_dir.join("model.safetensors.index.json"))
        );
        assert_eq!(rep.total_parameters, 134_515_008);
        assert!(dst.join("tokenizer.json").is_file());
        // A workspace with a pinned content hash.
        let s: serde_json::Value = json(dst.join(".mlxk_workspace.json"));
        assert_eq!(s["operation"], "convert");
        assert_eq!(s["mode"], "quantize");
        assert_eq!(s["quantization"]["bits"], bits);
        assert!(
            s["content_hash"]
                .as_str()
                .unwrap_or("")
                .starts_with("sha256:")
                || !rep.hashed
        );
    }
}

#[test]
fn refuses_quantized_or_unsupported_sources_and_existing_targets() {
    let Some(models) = models() else { return };
    let t = tempfile::tempdir().unwrap();
    let opts = QuantizeOptions {
        bits: 4,
        group_size: 64,
    };
    let e = quantize(
        &models.join("smollm2-135m-instruct-mlx-4bit"),
        &t.path().join("a"),
        opts,
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("already quantized"), "{e}");
    let e = quantize(
        &models.join("all-MiniLM-L6-v2"),
        &t.path().join("b"),
        opts,
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("bert"), "{e}");
    let bad = QuantizeOptions {
        bits: 7,
        group_size: 64,
    };
    let e = quantize(
        &models.join("smollm2-135m-instruct"),
        &t.path().join("c"),
        bad,
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("got 7"), "{e}");
    std::fs::create_dir_all(t.path().join("full")).unwrap();
    std::fs::write(t.path().join("full/x"), "x").unwrap();
    let e = quantize(
        &models.join("smollm2-135m-instruct"),
        &t.path().join("full"),
        opts,
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("not an empty directory"), "{e}");
    assert!(!t.path().join("a").exists() && !t.path().join("b").exists());
}
