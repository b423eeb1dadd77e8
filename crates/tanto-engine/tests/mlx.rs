//! MLX affine-quantized checkpoints: dequantization bit for bit against mlx,
//! the repacked native blocks, and generation from real mlx-lm conversions of
//! SmolLM2 (made by scripts/fetch-test-models.sh with mlx-lm on mlx's CPU).

mod common;

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};
use common::*;
use tanto_core::plan::{Backend, LoadPlan, Weights};
use tanto_core::probe::mlx::MlxPath;
use tanto_engine::kernels::QMatRef;
use tanto_engine::mlx::{MlxCheckpoint, QuantMatrix, ScaleType};
use tanto_engine::{
    ChatMessage, EngineError, Flow, GenerationParams, LoadOptions, Prompt, TextEngine, TextModel,
};

fn greedy(max: usize) -> GenerationParams {
    GenerationParams {
        temperature: 0.0,
        max_tokens: Some(max),
        top_p: None,
        ..Default::default()
    }
}

fn user(text: &str) -> Prompt {
    Prompt::Chat(vec![ChatMessage {
        role: "user".into(),
        content: text.into(),
        parts: Vec::new(),
    }])
}

fn mlx_plan(dir: PathBuf, path: MlxPath) -> LoadPlan {
    LoadPlan {
        name: dir.display().to_string(),
        dir: dir.clone(),
        backend: Backend::SafetensorsText,
        weights: Weights::Mlx {
            files: vec![dir.join("model.safetensors")],
            path,
            dtype: (path == MlxPath::Dequantize).then(|| "float32".to_string()),
        },
        architecture: "llama".into(),
        context_length: Some(2048),
    }
}

fn bf16_bits(st: &MmapedSafetensors, name: &str) -> Vec<u16> {
    let v = st.get(name).unwrap();
    assert_eq!(v.dtype(), safetensors::Dtype::BF16, "{name}");
    v.data()
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn to_bf16_bits(v: &[f32]) -> Vec<u16> {
    v.iter()
        .map(|x| {
            let b = half::bf16::from_f32(*x);
            assert_eq!(b.to_f32().to_bits(), x.to_bits(), "not a bf16 value: {x}");
            b.to_bits()
        })
        .collect()
}

fn synthetic() -> MmapedSafetensors {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/mlx/synthetic.safetensors");
    unsafe { MmapedSafetensors::new(p) }.expect("committed fixture")
}

fn synthetic_matrix<'a>(st: &'a MmapedSafetensors, bits: u32, gs: usize) -> QuantMatrix<'a> {
    let k = format!("{bits}_{gs}");
    let (w, s, b) = (
        st.get(&format!("w/{k}")).unwrap(),
        st.get(&format!("s/{k}")).unwrap(),
        st.get(&format!("b/{k}")).unwrap(),
    );
    let rows = w.shape()[0];
    let cols = w.shape()[1] * 32 / bits as usize;
    QuantMatrix::new(
        &k,
        bits,
        gs,
        rows,
        cols,
        w.data(),
        s.data(),
        b.data(),
        ScaleType::BF16,
    )
    .unwrap()
}

/// Every bit width × group size mlx produces, on a seeded bf16 matrix with
/// wide, offset, all-negative and constant groups: tanto's dequantization is
/// mx.dequantize's, bit for bit.
#[test]
fn dequantize_equals_mlx_bit_for_bit_for_every_bits_and_group_size() {
    let st = synthetic();
    let mut cases = 0;
    for bits in [2u32, 3, 4, 5, 6, 8] {
        for gs in [32usize, 64, 128] {
            let q = synthetic_matrix(&st, bits, gs);
            let got = to_bf16_bits(&q.dequantize());
            let want = bf16_bits(&st, &format!("dq/{bits}_{gs}"));
            assert_eq!(got.len(), want.len());
            let bad = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(
                bad, 0,
                "{bits}-bit, group {gs}: {bad} values differ from mlx"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 18);
}

/// The native blocks (Q4_1 with bf16 d/m, affine 8-bit) hold the same
/// scale/offset/value triples: their f32 dequantization differs from mlx's
/// only by mlx's rounding of `scale·q` to bf16.
#[test]
fn repacked_blocks_hold_the_mlx_values() {
    let st = synthetic();
    for bits in [4u32, 8] {
        for gs in [32usize, 64, 128] {
            let q = synthetic_matrix(&st, bits, gs);
            let (ty, bytes) = q.repack().unwrap();
            let m = QMatRef {
                ty,
                rows: q.rows,
                cols: q.cols,
                data: &bytes,
            };
            let want = q.dequantize();
            let mut row = vec![0f32; q.cols];
            for r in 0..q.rows {
                m.dequantize_row(r, &mut row);
                let span = want[r * q.cols..(r + 1) * q.cols]
                    .iter()
                    .fold(0f32, |a, v| a.max(v.abs()));
                for (c, (&a, &b)) in row.iter().zip(&want[r * q.cols..]).enumerate() {
                    // mlx rounds twice to bf16 (8-bit mantissa): a few ulps of
                    // the value, or of the row's range where it cancels to ~0.
                    let tol = a.abs().max(b.abs()) * (2.0 / 128.0) + span / 256.0;
                    assert!(
                        (a - b).abs() <= tol,
                        "{bits}-bit g{gs} ({ty:?}) [{r},{c}]: {a} vs mlx {b}"
                    );
                }
            }
        }
    }
    // Formats without a native block are refused, not approximated.
    let q = synthetic_matrix(&st, 3, 64);
    assert!(q.repack().is_err());
}

#[test]
fn bad_lengths_are_errors_not_panics() {
    let w = vec![0u8; 64];
    let s = vec![0u8; 4];
    // 2 rows × 64 cols at 4 bits = 64 bytes; 1 group per row → 2 bf16 scales = 4 bytes.
    assert!(QuantMatrix::new("m", 4, 64, 2, 64, &w, &s, &s, ScaleType::BF16).is_ok());
    assert!(QuantMatrix::new("m", 4, 64, 2, 64, &w[..60], &s, &s, ScaleType::BF16).is_err());
    assert!(QuantMatrix::new("m", 4, 64, 2, 64, &w, &s[..2], &s, ScaleType::BF16).is_err());
    assert!(QuantMatrix::new("m", 4, 48, 2, 64, &w, &s, &s, ScaleType::BF16).is_err());
    assert!(QuantMatrix::new("m", 7, 64, 2, 64, &w, &s, &s, ScaleType::BF16).is_err());
    assert!(QuantMatrix::new("m", 4, 0, 2, 64, &w, &s, &s, ScaleType::BF16).is_err());
}

/// The real mlx-lm checkpoints: tensors of both conversions dequantize to
/// mx.dequantize's output bit for bit (embedding included).
#[test]
fn dequantize_equals_mlx_on_the_real_checkpoints() {
    let Some(models) = models_dir("dequantize_equals_mlx_on_the_real_checkpoints") else {
        return;
    };
    let reference =
        unsafe { MmapedSafetensors::new(models.join("mlx-reference/dequant.safetensors")) }
            .unwrap();
    let mut checked = 0;
    for (tag, folder) in [
        ("mlx4", "smollm2-135m-instruct-mlx-4bit"),
        ("mlx8", "smollm2-135m-instruct-mlx-8bit"),
    ] {
        let dir = models.join(folder);
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let ck = MlxCheckpoint::open(&[dir.join("model.safetensors")], &cfg, &dir).unwrap();
        for (name, _) in reference.tensors() {
            let Some(module) = name.strip_prefix(&format!("{tag}/")) else {
                continue;
            };
            let got = to_bf16_bits(&ck.quantized(module).unwrap().dequantize());
            let want = bf16_bits(&reference, &name);
            assert!(got == want, "{tag} {module}: differs from mx.dequantize");
            checked += 1;
        }
    }
    assert_eq!(checked, 10);
}

#[test]
fn mlx_4bit_answers_paris() {
    let Some(models) = models_dir("mlx_4bit_answers_paris") else {
        return;
    };
    // Group size 32 matches the source's Q4_1 grid: the answer is the f32 model's.
    let plan = mlx_plan(
        models.join("smollm2-135m-instruct-mlx-4bit-g32"),
        MlxPath::Native,
    );
    let mut m = TextEngine::load(&plan, &LoadOptions::default()).unwrap();
    assert!(
        m.backend_name.contains("tanto-native MLX"),
        "{}",
        m.backend_name
    );
    let out = m
        .generate(
            &user("What is the capital of France?"),
            &greedy(16),
            &mut |_| Flow::Continue,
        )
        .unwrap();
    assert!(
        out.content.starts_with("The capital of France is Paris"),
        "{:?}",
        out.content
    );
    // mlx-community's default, group 64, re-quantizes this Q4_1-derived model
    // coarsely and its greedy answer turns on near ties (mlx itself, in bf16,
    // says "Le porte de Paris, la voix de France."); it is held to the float
    // path's first step below instead.
}

/// The native kernels (quantized activations, like llama.cpp) and the float
/// engine over the exactly dequantized weights pick the same first token
/// on the France prompt and wherever the float path's choice is clear (top-1
/// ahead of top-2 by 1.0 or more), and one of the float path's top 5
/// everywhere, for 4- and 8-bit.
#[test]
fn first_greedy_step_equals_the_f32_dequantized_path() {
    let Some(models) = models_dir("first_greedy_step_equals_the_f32_dequantized_path") else {
        return;
    };
    let fx = fixture("smollm_hf_greedy.json");
    let ranked = |l: &[f32]| {
        let mut idx: Vec<usize> = (0..l.len()).collect();
        idx.sort_by(|&a, &b| l[b].total_cmp(&l[a]));
        idx
    };
    for folder in [
        "smollm2-135m-instruct-mlx-4bit",
        "smollm2-135m-instruct-mlx-4bit-g32",
        "smollm2-135m-instruct-mlx-8bit",
    ] {
        let dir = models.join(folder);
        let mut native = TextEngine::load(
            &mlx_plan(dir.clone(), MlxPath::Native),
            &LoadOptions::default(),
        )
        .unwrap();
        let mut float =
            TextEngine::load(&mlx_plan(dir, MlxPath::Dequantize), &LoadOptions::default()).unwrap();
        assert!(
            float.backend_name.contains("dequantized"),
            "{}",
            float.backend_name
        );
        let mut prompts: Vec<(String, Vec<u32>)> = fx["runs"]["f32"]["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].to_string(), ids(&c["prompt_ids"])))
            .collect();
        let (_, france) = native
            .encode_prompt(&user("What is the capital of France?"))
            .unwrap();
        prompts.push(("france".into(), france));
        let mut clear = 0;
        for (name, ids) in &prompts {
            let (a, b) = (
                native.debug_logits(ids).unwrap(),
                float.debug_logits(ids).unwrap(),
            );
            let (ra, rb) = (ranked(&a), ranked(&b));
            assert!(
                rb[..5].contains(&ra[0]),
                "{folder} {name}: native top {} is not in the f32 top 5 {:?}",
                ra[0],
                &rb[..5]
            );
            if name == "france" || b[rb[0]] - b[rb[1]] >= 1.0 {
                assert_eq!(ra[0], rb[0], "{folder} {name}");
                clear += 1;
            }
        }
        assert!(clear >= 2, "{folder}: only {clear} clear first steps");
    }
}

/// 8-bit is close to lossless: its greedy ids follow the bf16 model's.
#[test]
fn mlx_8bit_greedy_ids_follow_the_bf16_model() {
    let Some(models) = models_dir("mlx_8bit_greedy_ids_follow_the_bf16_model") else {
        return;
    };
    let fx = fixture("smollm_hf_greedy.json");
    let plan = mlx_plan(
        models.join("smollm2-135m-instruct-mlx-8bit"),
        MlxPath::Native,
    );
    let mut q8 = TextEngine::load(&plan, &LoadOptions::default()).unwrap();
    let mut bf16 = TextEngine::load(
        &safetensors_plan(&models, "smollm2-135m-instruct"),
        &LoadOptions::default(),
    )
    .unwrap();
    for case in fx["runs"]["f32"]["cases"].as_array().unwrap() {
        let ids = ids(&case["prompt_ids"]);
        let a = q8
            .generate_ids(&ids, &greedy(8), &mut |_| Flow::Continue)
            .unwrap();
        let b = bf16
            .generate_ids(&ids, &greedy(8), &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(a.token_ids, b.token_ids, "case {}", case["name"]);
        assert!(a.token_ids.len() >= 8 || a.token_ids.last() == Some(&2));
    }
}

/// Broken checkpoints loaded straight through the engine (as if the probe
/// had been bypassed) are errors naming the problem, never panics.
#[test]
fn corrupt_checkpoints_fail_to_load_with_a_reason() {
    use tanto_testkit::presets::{self, MlxOpts};
    use tanto_testkit::safetensors::SafetensorsBuilder;
    let load = |files: tanto_testkit::Files, path: MlxPath| -> EngineError {
        let t = tempfile::tempdir().unwrap();
        tanto_testkit::workspace::write_folder(t.path(), &files);
        match TextEngine::load(
            &mlx_plan(t.path().to_path_buf(), path),
            &LoadOptions::default(),
        ) {
            Ok(_) => panic!("a corrupt checkpoint loaded"),
            Err(e) => e,
        }
    };
    for path in [MlxPath::Native, MlxPath::Dequantize] {
        // scales of the wrong shape
        let mut f = presets::mlx_4bit();
        let mut st = SafetensorsBuilder::new().metadata("format", "mlx");
        for &(name, out, inp) in presets::MLX_MODULES {
            let groups = if name.ends_with("q_proj") {
                inp / 32
            } else {
                inp / 64
            };
            st = st
                .tensor(&format!("{name}.weight"), "U32", &[out, inp / 8])
                .tensor(&format!("{name}.scales"), "F16", &[out, groups])
                .tensor(&format!("{name}.biases"), "F16", &[out, groups]);
        }
        for n in [
            "model.layers.0.input_layernorm.weight",
            "model.layers.0.post_attention_layernorm.weight",
            "model.norm.weight",
        ] {
            st = st.tensor(n, "F16", &[64]);
        }
        f.insert("model.safetensors", st.build());
        let e = load(f, path);
        assert!(e.to_string().contains("q_proj"), "{path:?}: {e}");

        // a missing biases tensor
        let mut f = presets::mlx_4bit();
        let mut st = SafetensorsBuilder::new().metadata("format", "mlx");
        for &(name, out, inp) in presets::MLX_MODULES {
            st = st
                .tensor(&format!("{name}.weight"), "U32", &[out, inp / 8])
                .tensor(&format!("{name}.scales"), "F16", &[out, inp / 64]);
            if !name.ends_with("down_proj") {
                st = st.tensor(&format!("{name}.biases"), "F16", &[out, inp / 64]);
            }
        }
        for n in [
            "model.layers.0.input_layernorm.weight",
            "model.layers.0.post_attention_layernorm.weight",
            "model.norm.weight",
        ] {
            st = st.tensor(n, "F16", &[64]);
        }
        f.insert("model.safetensors", st.build());
        let e = load(f, path);
        assert!(e.to_string().contains("down_proj.biases"), "{path:?}: {e}");

        // bits that do not match the tensors (config says 8, tensors are 4-bit)
        let f = presets::mlx_quantized(&MlxOpts {
            bits: 4,
            config: serde_json::json!({"quantization": {"bits": 8, "group_size": 64}}),
            ..Default::default()
        });
        let e = load(f, path);
        assert!(
            matches!(e, EngineError::InvalidModel { .. }),
            "{path:?}: {e}"
        );
    }
    let _ = (DType::F32, Device::Cpu);
}
