#!/usr/bin/env python3
"""Convert a llama-architecture GGUF (e.g. SmolLM2-135M-Instruct.Q4_1.gguf) into a
Hugging Face style folder: model.safetensors + transformers-4 style json files.

Only needs `numpy` and `gguf` (no torch). Used by scripts/fetch-test-models.sh.

    python gguf_to_hf.py MODEL.gguf --f32 OUT_F32_DIR [--bf16 OUT_BF16_DIR]

What it does:
  * dequantises every tensor with gguf.quants.dequantize (output is float32),
  * undoes llama.cpp's q/k row permutation (convert_hf_to_gguf "permute"),
  * renames GGUF tensor names to HF Llama names (tied embeddings: no lm_head),
  * writes safetensors the way the `safetensors` python package does
    (tensors sorted by name, compact JSON header, {"__metadata__":{"format":"pt"}}
    as the last header entry, header padded with spaces to 8 bytes),
  * bf16 = float32 rounded to nearest even (same bits as torch .to(bfloat16)),
  * writes config.json, generation_config.json, tokenizer.json,
    tokenizer_config.json (with chat_template), special_tokens_map.json.
Output is deterministic (byte-identical run to run).
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize

TOKEN_TYPE_CONTROL = 3

LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
GLOBAL_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}


def field_value(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    if f.types and f.types[0] == GGUFValueType.ARRAY:
        return list(f.contents())
    return f.contents()


def hf_name(gguf_name):
    base, _, suffix = gguf_name.rpartition(".")  # suffix: weight / bias
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)", base)
    if m:
        part = LAYER_NAMES.get(m.group(2))
        if part is None:
            raise SystemExit(f"unknown layer tensor {gguf_name}")
        return f"model.layers.{m.group(1)}.{part}.{suffix}"
    if base in GLOBAL_NAMES:
        return f"{GLOBAL_NAMES[base]}.{suffix}"
    raise SystemExit(f"unknown tensor {gguf_name}")


def unpermute(w, n_head):
    """Inverse of llama.cpp's permute(): reshape(n_head, 2, d/2, in).swapaxes(1, 2)."""
    rows = w.shape[0]
    return (
        w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def to_bf16_bits(a):
    """float32 -> bfloat16 bit pattern (uint16), round to nearest even, NaN kept quiet."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounding = np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    out = ((u + rounding) >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        out[nan] = ((u[nan] >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
    return out


def load_tensors(reader):
    n_head = int(field_value(reader, "llama.attention.head_count"))
    n_head_kv = int(field_value(reader, "llama.attention.head_count_kv", n_head))
    tensors = {}
    for t in reader.tensors:
        w = dequantize(t.data, t.tensor_type)
        w = np.asarray(w, dtype=np.float32)
        # numpy shape is the reversed GGUF ne order == HF/PyTorch [out, in]
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        w = w.reshape(shape)
        if t.name.endswith("attn_q.weight"):
            w = unpermute(w, n_head)
        elif t.name.endswith("attn_k.weight"):
            w = unpermute(w, n_head_kv)
        tensors[hf_name(t.name)] = np.ascontiguousarray(w)
    return tensors


def write_safetensors(path, tensors, dtype):
    names = sorted(tensors)  # byte order of names == python sorted() on ascii
    st_dtype = {"f32": "F32", "bf16": "BF16"}[dtype]
    itemsize = {"f32": 4, "bf16": 2}[dtype]
    header = {}
    offset = 0
    for name in names:
        n = tensors[name].size * itemsize
        header[name] = {
            "dtype": st_dtype,
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + n],
        }
        offset += n
    # metadata entry last: this reproduces the published reference hashes
    # (aaa07655…93c3 f32, 269d1636…077f bf16); readers don't care about key order.
    header["__metadata__"] = {"format": "pt"}
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for name in names:
            a = tensors[name]
            if dtype == "bf16":
                a = to_bf16_bits(a)
            f.write(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes())
    os.replace(tmp, path)


def dump_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def tokenizer_files(reader):
    model = field_value(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise SystemExit(f"only byte-level BPE (gpt2) tokenizers supported, got {model}")
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    types = [int(x) for x in field_value(reader, "tokenizer.ggml.token_type")]
    merges = field_value(reader, "tokenizer.ggml.merges")
    bos = int(field_value(reader, "tokenizer.ggml.bos_token_id"))
    eos = int(field_value(reader, "tokenizer.ggml.eos_token_id"))
    unk = int(field_value(reader, "tokenizer.ggml.unknown_token_id", eos))
    pad = int(field_value(reader, "tokenizer.ggml.padding_token_id", eos))
    template = field_value(reader, "tokenizer.chat_template")

    special_ids = [i for i, t in enumerate(types) if t == TOKEN_TYPE_CONTROL]
    added = [
        {
            "id": i,
            "content": tokens[i],
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i in special_ids
    ]
    vocab = {}
    for i, tok in enumerate(tokens):
        if tok in vocab:
            raise SystemExit(f"duplicate token {tok!r}")
        vocab[tok] = i
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        },
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": list(merges),
        },
    }
    specials_extra = [tokens[i] for i in (bos, eos) if i != unk]
    tok_config = {
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(a["id"]): {
                "content": a["content"],
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for a in added
        },
        "additional_special_tokens": specials_extra,
        "bos_token": tokens[bos],
        "chat_template": template,
        "clean_up_tokenization_spaces": False,
        "eos_token": tokens[eos],
        "model_max_length": int(field_value(reader, "llama.context_length", 2048)),
        "pad_token": tokens[pad],
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": tokens[unk],
        "vocab_size": len(tokens),
    }
    if template is None:
        del tok_config["chat_template"]
    special_map = {
        "additional_special_tokens": specials_extra,
        "bos_token": tokens[bos],
        "eos_token": tokens[eos],
        "pad_token": tokens[pad],
        "unk_token": tokens[unk],
    }
    return tokenizer, tok_config, special_map, (bos, eos, pad)


def model_config(reader, tied, dtype_name, ids):
    g = lambda k, d=None: field_value(reader, "llama." + k, d)
    n_embd = int(g("embedding_length"))
    n_head = int(g("attention.head_count"))
    bos, eos, pad = ids
    eps = float(np.float32(g("attention.layer_norm_rms_epsilon")))
    eps = float(f"{eps:.6g}")  # stored as f32: 9.99999975e-06 -> 1e-05
    theta = float(g("rope.freq_base", 10000.0))
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "head_dim": int(g("rope.dimension_count", n_embd // n_head)),
        "hidden_act": "silu",
        "hidden_size": n_embd,
        "initializer_range": 0.02,
        "intermediate_size": int(g("feed_forward_length")),
        "max_position_embeddings": int(g("context_length")),
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": n_head,
        "num_hidden_layers": int(g("block_count")),
        "num_key_value_heads": int(g("attention.head_count_kv", n_head)),
        "pad_token_id": pad,
        "pretraining_tp": 1,
        "rms_norm_eps": eps,
        "rope_scaling": None,
        "rope_theta": int(theta) if theta.is_integer() else theta,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype_name,
        "use_cache": True,
        "vocab_size": int(g("vocab_size", len(field_value(reader, "tokenizer.ggml.tokens")))),
    }


def write_folder(out, tensors, dtype, reader, tok):
    os.makedirs(out, exist_ok=True)
    tokenizer, tok_config, special_map, ids = tok
    tied = "lm_head.weight" not in tensors
    write_safetensors(os.path.join(out, "model.safetensors"), tensors, dtype)
    dump_json(os.path.join(out, "config.json"),
              model_config(reader, tied, {"f32": "float32", "bf16": "bfloat16"}[dtype], ids))
    bos, eos, pad = ids
    dump_json(os.path.join(out, "generation_config.json"),
              {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad})
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, separators=(",", ":"))
    dump_json(os.path.join(out, "tokenizer_config.json"), tok_config)
    dump_json(os.path.join(out, "special_tokens_map.json"), special_map)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf")
    ap.add_argument("--f32", metavar="DIR", help="write a float32 folder here")
    ap.add_argument("--bf16", metavar="DIR", help="write a bfloat16 folder here")
    args = ap.parse_args()
    if not (args.f32 or args.bf16):
        ap.error("give --f32 and/or --bf16")
    reader = GGUFReader(args.gguf)
    arch = field_value(reader, "general.architecture")
    if arch != "llama":
        raise SystemExit(f"only llama architecture supported, got {arch}")
    tensors = load_tensors(reader)
    tok = tokenizer_files(reader)
    for dtype, out in (("f32", args.f32), ("bf16", args.bf16)):
        if out:
            write_folder(out, tensors, dtype, reader, tok)
            print(f"wrote {out} ({dtype}, {len(tensors)} tensors)", file=sys.stderr)


if __name__ == "__main__":
    main()
