//! Vision timings for the closing note of the vision issue:
//! - preprocessing a 2048x1536 JPEG with SmolVLM-256M's processor sizes
//!   (decode, resize + tiling + normalise), to set beside transformers'
//!   processor (`scripts/ref/bench_vision_processor.py`);
//! - one 512x512 tile through a SigLIP-base-patch16-512 tower (SmolVLM-256M's
//!   vision: 12 layers, 768 wide, 1024 patches) with random weights, and the
//!   pixel-shuffle connector;
//! - with `--text DIR` (SmolLM2-135M safetensors, the size of SmolVLM-256M's
//!   text model), prefill of 850 tokens and decode speed on the engine's
//!   safetensors path;
//!
//! and from those, the estimate for SmolVLM-256M on a 2048x1536 photo.
//!
//!     bench_vision IMAGE [--runs N] [--threads N] [--text DIR]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tanto_engine::vision::idefics3::ProcessorConfig;
use tanto_engine::vision::image::{decode, ImageLimits};
use tanto_engine::vision::siglip::{VisionConfig, VisionTower};

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    std::hint::black_box(f());
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(f());
            s.elapsed()
        })
        .collect();
    t.sort();
    t[t.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut image = None;
    let (mut runs, mut threads, mut text) = (10usize, 2usize, None::<String>);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--threads N")
            }
            "--text" => text = args.next(),
            other => image = Some(other.to_string()),
        }
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("rayon pool");
    let path = image.expect("usage: bench_vision IMAGE [--runs N] [--threads N] [--text DIR]");
    let bytes = std::fs::read(&path).expect("read image");
    let t_decode = time(runs, || decode(&bytes, ImageLimits::default()).unwrap());
    let img = decode(&bytes, ImageLimits::default()).unwrap();
    let pp = serde_json::json!({
        "size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512},
        "do_image_splitting": true, "resample": 1,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]
    });
    let proc =
        ProcessorConfig::from_json(&pp, &serde_json::json!({"image_seq_len": 64}), 64).unwrap();
    let t_pre = time(runs, || proc.pixel_values(&[&img.rgb]));
    let (pv, grids) = proc.pixel_values(&[&img.rgb]);
    println!(
        "image {}x{} -> {} tiles ({}x{} + global), {} image tokens",
        img.rgb.width,
        img.rgb.height,
        pv.tiles,
        grids[0].0,
        grids[0].1,
        pv.tiles * 64
    );
    println!("| step | median ms ({threads} threads) |");
    println!("| --- | ---: |");
    println!("| decode (libjpeg-turbo) | {:.1} |", ms(t_decode));
    println!("| resize + tiles + normalise | {:.1} |", ms(t_pre));
    println!("| preprocessing total | {:.1} |", ms(t_decode + t_pre));

    // SigLIP-base-patch16-512 with random weights.
    let cfg = VisionConfig {
        hidden_size: 768,
        intermediate_size: 3072,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        num_channels: 3,
        image_size: 512,
        patch_size: 16,
        hidden_act: candle_nn::Activation::GeluPytorchTanh,
        layer_norm_eps: 1e-6,
    };
    let dev = Device::Cpu;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut put = |name: String, shape: &[usize]| {
        t.insert(name, Tensor::randn(0f32, 0.02, shape, &dev).unwrap());
    };
    let d = cfg.hidden_size;
    put("embeddings.patch_embedding.weight".into(), &[d, 3, 16, 16]);
    put("embeddings.patch_embedding.bias".into(), &[d]);
    put("embeddings.position_embedding.weight".into(), &[1024, d]);
    for i in 0..cfg.num_hidden_layers {
        let l = format!("encoder.layers.{i}");
        for p in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            put(format!("{l}.self_attn.{p}.weight"), &[d, d]);
            put(format!("{l}.self_attn.{p}.bias"), &[d]);
        }
        for n in ["layer_norm1", "layer_norm2"] {
            put(format!("{l}.{n}.weight"), &[d]);
            put(format!("{l}.{n}.bias"), &[d]);
        }
        put(format!("{l}.mlp.fc1.weight"), &[cfg.intermediate_size, d]);
        put(format!("{l}.mlp.fc1.bias"), &[cfg.intermediate_size]);
        put(format!("{l}.mlp.fc2.weight"), &[d, cfg.intermediate_size]);
        put(format!("{l}.mlp.fc2.bias"), &[d]);
    }
    put("post_layernorm.weight".into(), &[d]);
    put("post_layernorm.bias".into(), &[d]);
    let vb = VarBuilder::from_tensors(t, DType::F32, &dev);
    let tower = VisionTower::new(&cfg, vb).unwrap();
    let per = 3 * 512 * 512;
    let tile = Tensor::from_slice(&pv.data[..per], (1, 3, 512, 512), &dev).unwrap();
    let tower_runs = runs.clamp(1, 3);
    let t_tile = time(tower_runs, || tower.forward(&tile).unwrap());
    println!("| SigLIP-base-512 tower, one tile | {:.1} |", ms(t_tile));
    println!(
        "| tower, per layer (1024 tokens) | {:.1} |",
        ms(t_tile) / 12.0
    );

    let Some(dir) = text else {
        return;
    };
    use tanto_engine::{GenerationParams, TextEngine};
    let dir = std::path::PathBuf::from(dir);
    let p = tanto_core::probe::probe_uncached(&tanto_core::probe::ProbeTarget {
        name: "text".into(),
        dir: Some(dir),
        file: None,
        repo: None,
    });
    let (plan, _) = tanto_core::policy::plan(
        &p,
        tanto_core::policy::Request::Text,
        &tanto_core::host::detect(),
        &tanto_core::policy::PolicyConfig::default(),
    )
    .unwrap();
    let mut m = TextEngine::load(
        &plan,
        &tanto_engine::LoadOptions {
            threads: Some(threads),
        },
    )
    .unwrap();
    m.set_ignore_eos(true);
    let ids: Vec<u32> = (0..850u32).map(|i| 100 + (i * 37) % 20000).collect();
    let params = GenerationParams {
        max_tokens: Some(32),
        temperature: 0.0,
        top_p: None,
        ..Default::default()
    };
    let out = m
        .generate_ids(&ids, &params, &mut |_| tanto_engine::Flow::Continue)
        .unwrap();
    let prefill = out.timings.prefill;
    let dec_tps = out.timings.decode_tps(&out.usage);
    println!(
        "| text prefill, 850 tokens ({}) | {:.1} |",
        m.backend_name,
        ms(prefill)
    );
    println!("| text decode | {:.1} tok/s |", dec_tps);
    let ttft = t_decode + t_pre + t_tile * pv.tiles as u32 + prefill;
    println!(
        "\nEstimate, SmolVLM-256M on this image: time to first token {:.1} s \
         (preprocess {:.2} s + {} tiles x {:.2} s + prefill {:.2} s), then {:.1} tok/s",
        ttft.as_secs_f64(),
        (t_decode + t_pre).as_secs_f64(),
        pv.tiles,
        t_tile.as_secs_f64(),
        prefill.as_secs_f64(),
        dec_tps
    );
}
