//! MLX-quantized checkpoints in probe and policy: which path they take, what
//! the memory gate counts, and the health reasons for broken ones.

mod common;

use common::{codes, Env};
use serde_json::json;
use tanto_core::error::ErrorType;
use tanto_core::host::HostMemory;
use tanto_core::plan::{Backend, Weights};
use tanto_core::policy::{decide, memory_need, plan, PolicyConfig, Request, Verdict};
use tanto_core::probe::mlx::MlxPath;
use tanto_core::probe::{Format, Probe};
use tanto_testkit::presets::{self, MlxOpts, MLX_MODULES};
use tanto_testkit::safetensors::SafetensorsBuilder;
use tanto_testkit::Files;

fn probe(files: &Files) -> Probe {
    let env = Env::new();
    env.cache.add("mlx-community/tiny-4bit", files);
    env.probe("mlx-community/tiny-4bit")
}

fn plenty() -> HostMemory {
    HostMemory {
        total_bytes: Some(64 << 30),
        available_bytes: Some(64 << 30),
        source: "override",
    }
}

/// The default preset with its tensors rebuilt by `edit(module, out, in)`,
/// which returns (weight shape, scales shape, has biases) or None to drop the
/// module's tensors but keep a packed weight.
fn tampered(edit: impl Fn(&str, u64, u64) -> (Vec<u64>, Vec<u64>, bool)) -> Files {
    let mut f = presets::mlx_4bit();
    let mut st = SafetensorsBuilder::new().metadata("format", "mlx");
    for &(name, out, inp) in MLX_MODULES {
        let (w, s, b) = edit(name, out, inp);
        st = st.tensor(&format!("{name}.weight"), "U32", &w);
        if !s.is_empty() {
            st = st.tensor(&format!("{name}.scales"), "F16", &s);
        }
        if b {
            st = st.tensor(&format!("{name}.biases"), "F16", &s);
        }
    }
    st = st
        .tensor("model.layers.0.input_layernorm.weight", "F16", &[64])
        .tensor(
            "model.layers.0.post_attention_layernorm.weight",
            "F16",
            &[64],
        )
        .tensor("model.norm.weight", "F16", &[64]);
    f.insert("model.safetensors", st.build());
    f
}

fn good(_: &str, out: u64, inp: u64) -> (Vec<u64>, Vec<u64>, bool) {
    (vec![out, inp / 8], vec![out, inp / 64], true)
}

#[test]
fn mlx_4bit_llama_is_runnable_on_the_native_path() {
    let p = probe(&presets::mlx_4bit());
    assert!(p.health.healthy, "{:#?}", p.health.problems);
    assert_eq!(p.format, Format::MlxSafetensors);
    assert!(p.runtime.compatible, "{:?}", p.runtime.reason);
    assert_eq!(p.runtime.backend, Some(Backend::SafetensorsText));
    let q = p.mlx.clone().expect("mlx quantization");
    assert_eq!((q.bits, q.group_size, q.mode.as_str()), (4, 64, "affine"));
    assert_eq!(q.quantized_modules, MLX_MODULES.len());
    assert_eq!(q.bits_used, vec![4]);
    assert_eq!(q.scale_dtype, "F16");
    assert_eq!(q.path, MlxPath::Native, "{}", q.path_reason);
    // Q4 blocks of 20 bytes per 32 values, norms in f32.
    let blocks: u64 = MLX_MODULES.iter().map(|(_, o, i)| o * i / 32 * 20).sum();
    assert_eq!(q.runtime_bytes, blocks + 3 * 64 * 4);
    let m = memory_need(&p, &PolicyConfig::default());
    assert_eq!(m.weights, q.runtime_bytes);
    assert_eq!(m.kv_dtype_bytes, 2);

    let d = decide(&p, Request::Chat, &plenty(), &PolicyConfig::default());
    assert_eq!(d.verdict, Verdict::Allow, "{:?}", d.error);
    let (lp, _) =
        plan(&p, Request::Chat, &plenty(), &PolicyConfig::default()).expect("a load plan");
    assert!(
        matches!(lp.weights, Weights::Mlx { path: MlxPath::Native, ref files, .. } if files.len() == 1),
        "{:?}",
        lp.weights
    );
    // `show --json` carries it.
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["mlx"]["path"], "native");
}

#[test]
fn eight_bit_is_native_and_sized_for_its_blocks() {
    let p = probe(&presets::mlx_quantized(&MlxOpts {
        bits: 8,
        ..Default::default()
    }));
    assert!(p.runtime.compatible, "{:?}", p.runtime.reason);
    let q = p.mlx.unwrap();
    assert_eq!(q.path, MlxPath::Native);
    let blocks: u64 = MLX_MODULES.iter().map(|(_, o, i)| o * i / 32 * 36).sum();
    assert_eq!(q.runtime_bytes, blocks + 3 * 64 * 4);
}

#[test]
fn other_bits_scales_and_architectures_dequantize_and_count_it() {
    let params: u64 = MLX_MODULES.iter().map(|(_, o, i)| o * i).sum::<u64>() + 3 * 64;
    let cases = [
        MlxOpts {
            bits: 3,
            ..Default::default()
        },
        MlxOpts {
            bits: 6,
            group_size: 32,
            ..Default::default()
        },
        MlxOpts {
            scale_dtype: "F32",
            ..Default::default()
        },
        MlxOpts {
            config: json!({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}),
            ..Default::default()
        },
        MlxOpts {
            overrides: vec![("model.layers.0.mlp.down_proj", 6)],
            ..Default::default()
        },
    ];
    for o in cases {
        let p = probe(&presets::mlx_quantized(&o));
        assert!(p.health.healthy, "{o:?}: {:#?}", p.health.problems);
        assert!(p.runtime.compatible, "{o:?}: {:?}", p.runtime.reason);
        let q = p.mlx.clone().unwrap();
        assert_eq!(q.path, MlxPath::Dequantize, "{o:?}");
        assert!(!q.path_reason.is_empty());
        assert_eq!(q.dequantized_dtype.as_deref(), Some("float32"));
        assert_eq!(q.runtime_bytes, params * 4, "{o:?}");
        assert_eq!(memory_need(&p, &PolicyConfig::default()).kv_dtype_bytes, 4);
    }
}

#[test]
fn memory_gate_counts_the_dequantized_size() {
    let o = MlxOpts {
        bits: 3,
        ..Default::default()
    };
    let p = probe(&presets::mlx_quantized(&o));
    let need = memory_need(&p, &PolicyConfig::default());
    assert!(
        need.weights > p.weights_bytes * 3,
        "{need:?} vs {}",
        p.weights_bytes
    );
    // A budget between the file size and the dequantized size blocks.
    let cfg = PolicyConfig::default().with_memory_budget(Some(p.weights_bytes * 2));
    let d = decide(&p, Request::Text, &plenty(), &cfg);
    assert_eq!(d.error.unwrap().kind, ErrorType::InsufficientMemory);
}

#[test]
fn unsupported_modes_are_runtime_incompatible() {
    for mode in ["mxfp4", "nvfp4", "mxfp8"] {
        let p = probe(&presets::mlx_quantized(&MlxOpts {
            mode: Some(mode),
            group_size: 32,
            ..Default::default()
        }));
        assert!(p.health.healthy, "{mode}: {:#?}", p.health.problems);
        assert!(!p.runtime.compatible);
        let why = p.runtime.reason.clone().unwrap();
        assert!(why.contains(mode) && why.contains("affine"), "{why}");
        let d = decide(&p, Request::Text, &plenty(), &PolicyConfig::default());
        let e = d.error.unwrap();
        assert_eq!(e.kind, ErrorType::RuntimeIncompatible, "{mode}");
        assert!(e.message.contains(mode), "{}", e.message);
    }
}

#[test]
fn scales_of_the_wrong_shape_are_a_health_problem() {
    let f = tampered(|n, o, i| {
        if n.ends_with("q_proj") {
            (vec![o, i / 8], vec![o, i / 32], true)
        } else {
            good(n, o, i)
        }
    });
    let p = probe(&f);
    assert!(!p.health.healthy);
    assert_eq!(codes(&p), vec!["quantization_mismatch"]);
    let r = p.health.reason.unwrap();
    assert!(r.contains("q_proj.scales") && r.contains("[64, 2]"), "{r}");
    assert!(!p.runtime.compatible);
}

#[test]
fn missing_biases_are_a_health_problem() {
    let f = tampered(|n, o, i| {
        let (w, s, _) = good(n, o, i);
        (w, s, !n.ends_with("down_proj"))
    });
    let p = probe(&f);
    assert_eq!(codes(&p), vec!["quantization_mismatch"]);
    let r = p.health.reason.unwrap();
    assert!(r.contains("down_proj.biases"), "{r}");
}

#[test]
fn bits_that_do_not_match_the_config_are_a_health_problem() {
    // Tensors packed at 8 bits, config says 4.
    let f = tampered(|_, o, i| (vec![o, i / 4], vec![o, i / 64], true));
    let p = probe(&f);
    assert!(!p.health.healthy);
    assert!(codes(&p).iter().all(|c| *c == "quantization_mismatch"));
    let r = p.health.reason.unwrap();
    assert!(r.contains("bits or group size"), "{r}");
    // Capped at three messages plus a count.
    assert_eq!(p.health.problems.len(), 4, "{:#?}", p.health.problems);
    assert!(p.health.problems[3].message.contains("6 more"));
}

#[test]
fn packed_weight_without_scales_is_a_health_problem() {
    let f = tampered(|n, o, i| {
        if n == "lm_head" {
            (vec![o, i / 8], vec![], false)
        } else {
            good(n, o, i)
        }
    });
    let p = probe(&f);
    assert_eq!(codes(&p), vec!["quantization_mismatch"]);
    assert!(p.health.reason.unwrap().contains("lm_head.weight"));
}

#[test]
fn malformed_quantization_block_is_config_invalid() {
    for q in [json!("4bit"), json!({"bits": "four", "group_size": 64})] {
        let mut f = presets::mlx_4bit();
        let mut cfg: serde_json::Value =
            serde_json::from_slice(f.get("config.json").unwrap()).unwrap();
        cfg["quantization"] = q.clone();
        f.insert_json("config.json", &cfg);
        let p = probe(&f);
        assert!(
            codes(&p).contains(&"config_invalid"),
            "{q}: {:?}",
            codes(&p)
        );
        assert!(!p.runtime.compatible);
    }
}
