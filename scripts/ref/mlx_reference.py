"""MLX reference data for tanto's tests, made with mlx itself (CPU).

    python scripts/mlx_reference.py OUT_DIR MLX4_DIR MLX8_DIR

Writes into OUT_DIR:
  dequant.safetensors   mx.dequantize of a few tensors of the 4- and 8-bit
                        SmolLM2 checkpoints (bf16, as mlx returns them):
                        "<ckpt>/<module>" -> [out, in]
  synthetic.safetensors for bits 2,3,4,5,6,8 x group sizes 32,64,128: a seeded
                        bf16 matrix "src/<b>_<g>", mx.quantize's "w/..", "s/..",
                        "b/.." and mx.dequantize's "dq/.."; the quantizer
                        reference for `tanto convert --quantize` too.
Deterministic: fixed seeds, pinned mlx (see fetch-test-models.sh).
"""
import sys

import mlx.core as mx
import numpy as np

out_dir, mlx4, mlx8 = sys.argv[1:4]
mx.set_default_device(mx.cpu)

ref = {}
for tag, path, bits in (("mlx4", mlx4, 4), ("mlx8", mlx8, 8)):
    w = mx.load(f"{path}/model.safetensors")
    for m in ("model.embed_tokens", "model.layers.0.self_attn.q_proj",
              "model.layers.0.self_attn.k_proj", "model.layers.7.mlp.down_proj",
              "model.layers.29.mlp.gate_proj"):
        ref[f"{tag}/{m}"] = mx.dequantize(w[m + ".weight"], w[m + ".scales"], w[m + ".biases"],
                                          group_size=64, bits=bits)
mx.save_safetensors(f"{out_dir}/dequant.safetensors", ref)

rng = np.random.default_rng(20261203)
syn = {}
for bits in (2, 3, 4, 5, 6, 8):
    for gs in (32, 64, 128):
        # Rows with different spreads and offsets; one constant group (scale eps path)
        # and one all-negative row.
        x = rng.normal(0.0, 0.02, size=(8, 256)).astype(np.float32)
        x[1] *= 10.0
        x[2] += 0.05
        x[3] = -np.abs(x[3])
        x[4, :gs] = 0.0123
        src = mx.array(x).astype(mx.bfloat16)
        wq, s, b = mx.quantize(src, group_size=gs, bits=bits)
        k = f"{bits}_{gs}"
        syn[f"src/{k}"] = src
        syn[f"w/{k}"] = wq
        syn[f"s/{k}"] = s
        syn[f"b/{k}"] = b
        syn[f"dq/{k}"] = mx.dequantize(wq, s, b, group_size=gs, bits=bits)
mx.save_safetensors(f"{out_dir}/synthetic.safetensors", syn)
print(f"wrote {len(ref)} dequantized and {len(syn) // 5} synthetic cases to {out_dir}")
