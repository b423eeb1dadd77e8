#!/usr/bin/env python3
"""Build the deterministic fixture tree that mlx-knife 2.0.8 was recorded on.

Both sides of the conformance check use this one builder: record-mlxk.sh (which
runs mlx-knife and writes tests/fixtures/mlxk-2.0.8/) and
crates/tanto-cli/tests/conformance.rs (which runs tanto on a fresh copy). Same
bytes, same names, same commit hashes, same mtimes, so the two tools see the
same situation. Standard library only (CI machines have python3, nothing else).

Usage: build_fixture.py ROOT

Layout written under ROOT (ROOT must be absent or empty):
  hf/hub/models--ORG--NAME/{blobs,refs/main,snapshots/<commit>/...}   HF_HOME=ROOT/hf
  hf/hub/.locks/models--lock-org--locked-model/<etag>.lock
  ws/tiny-ws/                        a managed workspace (MLXK_WORKSPACE_HOME=ROOT/ws)
  src/stale-index/                   unmanaged sharded model with a stale index (convert)
  src/single-shard/                  unmanaged single-file model (convert: nothing to rebuild)
  fakehub/ORG/NAME/<files>           what fake_hub.py serves (pull / clone)

Every file and directory gets a fixed mtime (FIXED_MTIME, one older revision
gets OLD_MTIME), so `last_modified` values agree between runs and machines
(with TZ=UTC: mlx-knife formats local time with a `Z` suffix).
"""

import hashlib
import json
import os
import struct
import sys

FIXED_MTIME = 1717243200  # 2024-06-01T12:00:00Z
OLD_MTIME = 1704110400  # 2024-01-01T12:00:00Z

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# --------------------------------------------------------------------------
# deterministic tensor bytes


def _values(n, seed):
    """n small deterministic floats in [-0.05, 0.05)."""
    out = []
    x = (seed * 2654435761 + 12345) & 0xFFFFFFFF
    for _ in range(n):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        out.append(((x >> 8) % 1000 - 500) / 10000.0)
    return out


def _tensor_bytes(dtype, shape, seed, fill=None):
    n = 1
    for d in shape:
        n *= d
    if dtype == "F16":
        vals = [fill] * n if fill is not None else _values(n, seed)
        return struct.pack("<%de" % n, *vals)
    if dtype == "F32":
        vals = [fill] * n if fill is not None else _values(n, seed)
        return struct.pack("<%df" % n, *vals)
    if dtype == "U32":
        x = seed & 0xFFFFFFFF
        vals = []
        for _ in range(n):
            x = (1664525 * x + 1013904223) & 0xFFFFFFFF
            vals.append(x)
        return struct.pack("<%dI" % n, *vals)
    raise ValueError(dtype)


def safetensors(tensors):
    """tensors: list of (name, dtype, shape[, fill]) -> file bytes."""
    header = {"__metadata__": {"format": "pt"}}
    data = b""
    for i, t in enumerate(tensors):
        name, dtype, shape = t[0], t[1], t[2]
        fill = t[3] if len(t) > 3 else None
        b = _tensor_bytes(dtype, shape, i + 1, fill)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


# --------------------------------------------------------------------------
# tokenizer (a WordLevel tokenizer the `tokenizers` library loads)

SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
WORDS = SPECIALS + list("abcdefghijklmnopqrstuvwxyz") + [
    "hello", "hi", "the", "an", "is", "model", "tiny", "test", "user", "assistant",
    "system", "ok", "yes", "no", ".", ",", "!", "?", "\n", "one", "two", "three",
    "four", "five", "six", "seven", "eight",
]
VOCAB = len(WORDS)  # 64


def tokenizer_json():
    added = [
        {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, s in enumerate(SPECIALS)
    ]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordLevel", "vocab": {w: i for i, w in enumerate(WORDS)}, "unk_token": "<unk>"},
    }
    return json.dumps(tok, indent=2).encode()


def tokenizer_config(chat=True):
    c = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "model_max_length": 2048,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
    }
    if chat:
        c["chat_template"] = CHAT_TEMPLATE
    return json.dumps(c, indent=2).encode()


# --------------------------------------------------------------------------
# models

H, I, V = 64, 128, VOCAB


def llama_config(**extra):
    c = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": H,
        "intermediate_size": I,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "num_hidden_layers": 1,
        "vocab_size": V,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "transformers_version": "4.44.0",
    }
    c.update(extra)
    return json.dumps(c, indent=2).encode()


def llama_tensors():
    p = "model.layers.0."
    return [
        ("model.embed_tokens.weight", "F16", [V, H]),
        (p + "input_layernorm.weight", "F16", [H], 1.0),
        (p + "self_attn.q_proj.weight", "F16", [H, H]),
        (p + "self_attn.k_proj.weight", "F16", [H, H]),
        (p + "self_attn.v_proj.weight", "F16", [H, H]),
        (p + "self_attn.o_proj.weight", "F16", [H, H]),
        (p + "post_attention_layernorm.weight", "F16", [H], 1.0),
        (p + "mlp.gate_proj.weight", "F16", [I, H]),
        (p + "mlp.up_proj.weight", "F16", [I, H]),
        (p + "mlp.down_proj.weight", "F16", [H, I]),
        ("model.norm.weight", "F16", [H], 1.0),
        ("lm_head.weight", "F16", [V, H]),
    ]


def mlx_q4_tensors(group=64, bits=4):
    """MLX affine-quantized llama: packed uint32 weight + f16 scales/biases per group."""
    per = 32 // bits

    def q(name, out_dim, in_dim):
        return [
            (name + ".weight", "U32", [out_dim, in_dim // per]),
            (name + ".scales", "F16", [out_dim, in_dim // group], 0.01),
            (name + ".biases", "F16", [out_dim, in_dim // group], -0.08),
        ]

    p = "model.layers.0."
    t = q("model.embed_tokens", V, H)
    t.append((p + "input_layernorm.weight", "F16", [H], 1.0))
    for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
        t += q(p + "self_attn." + n, H, H)
    t.append((p + "post_attention_layernorm.weight", "F16", [H], 1.0))
    t += q(p + "mlp.gate_proj", I, H)
    t += q(p + "mlp.up_proj", I, H)
    t += q(p + "mlp.down_proj", H, I)
    t.append(("model.norm.weight", "F16", [H], 1.0))
    t += q("lm_head", V, H)
    return t


def bert_config():
    return json.dumps({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "vocab_size": V,
        "max_position_embeddings": 128,
        "type_vocab_size": 2,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "torch_dtype": "float32",
        "transformers_version": "4.44.0",
    }, indent=2).encode()


def bert_tensors():
    e, d = "embeddings.", 32
    t = [
        (e + "word_embeddings.weight", "F32", [V, d]),
        (e + "position_embeddings.weight", "F32", [128, d]),
        (e + "token_type_embeddings.weight", "F32", [2, d]),
        (e + "LayerNorm.weight", "F32", [d], 1.0),
        (e + "LayerNorm.bias", "F32", [d], 0.0),
    ]
    p = "encoder.layer.0."
    for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
        t += [(p + n + ".weight", "F32", [d, d]), (p + n + ".bias", "F32", [d], 0.0)]
    t += [
        (p + "attention.output.LayerNorm.weight", "F32", [d], 1.0),
        (p + "attention.output.LayerNorm.bias", "F32", [d], 0.0),
        (p + "intermediate.dense.weight", "F32", [64, d]),
        (p + "intermediate.dense.bias", "F32", [64], 0.0),
        (p + "output.dense.weight", "F32", [d, 64]),
        (p + "output.dense.bias", "F32", [d], 0.0),
        (p + "output.LayerNorm.weight", "F32", [d], 1.0),
        (p + "output.LayerNorm.bias", "F32", [d], 0.0),
        ("pooler.dense.weight", "F32", [d, d]),
        ("pooler.dense.bias", "F32", [d], 0.0),
    ]
    return t


def gguf_file():
    """A tiny llama GGUF (v3, F32/F16 tensors) with an embedded tokenizer and template."""

    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    kvs = []

    def kv_u32(k, v):
        kvs.append(s(k) + struct.pack("<I", 4) + struct.pack("<I", v))

    def kv_f32(k, v):
        kvs.append(s(k) + struct.pack("<I", 6) + struct.pack("<f", v))

    def kv_str(k, v):
        kvs.append(s(k) + struct.pack("<I", 8) + s(v))

    def kv_arr(k, elem_type, items):
        body = b""
        for it in items:
            if elem_type == 8:
                body += s(it)
            elif elem_type == 6:
                body += struct.pack("<f", it)
            elif elem_type == 5:
                body += struct.pack("<i", it)
        kvs.append(s(k) + struct.pack("<I", 9) + struct.pack("<IQ", elem_type, len(items)) + body)

    a = "llama"
    kv_str("general.architecture", a)
    kv_str("general.name", "tiny-llama-gguf")
    kv_u32("general.file_type", 1)
    kv_u32("general.alignment", 32)
    kv_u32(a + ".context_length", 2048)
    kv_u32(a + ".embedding_length", H)
    kv_u32(a + ".block_count", 1)
    kv_u32(a + ".feed_forward_length", I)
    kv_u32(a + ".attention.head_count", 4)
    kv_u32(a + ".attention.head_count_kv", 4)
    kv_f32(a + ".rope.freq_base", 10000.0)
    kv_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5)
    kv_str("tokenizer.ggml.model", "llama")
    kv_arr("tokenizer.ggml.tokens", 8, WORDS)
    kv_arr("tokenizer.ggml.scores", 6, [-float(i) for i in range(V)])
    kv_arr("tokenizer.ggml.token_type", 5, [3 if i < len(SPECIALS) else 1 for i in range(V)])
    kv_u32("tokenizer.ggml.bos_token_id", 1)
    kv_u32("tokenizer.ggml.eos_token_id", 2)
    kv_str("tokenizer.chat_template", CHAT_TEMPLATE)

    # (name, ggml dims (ne0 first), ggml type 0=F32 1=F16)
    tensors = [
        ("token_embd.weight", [H, V], 1),
        ("blk.0.attn_norm.weight", [H], 0),
        ("blk.0.attn_q.weight", [H, H], 1),
        ("blk.0.attn_k.weight", [H, H], 1),
        ("blk.0.attn_v.weight", [H, H], 1),
        ("blk.0.attn_output.weight", [H, H], 1),
        ("blk.0.ffn_norm.weight", [H], 0),
        ("blk.0.ffn_gate.weight", [H, I], 1),
        ("blk.0.ffn_up.weight", [H, I], 1),
        ("blk.0.ffn_down.weight", [I, H], 1),
        ("output_norm.weight", [H], 0),
        ("output.weight", [H, V], 1),
    ]
    infos, data = b"", b""
    for i, (name, dims, ty) in enumerate(tensors):
        fill = 1.0 if name.endswith("norm.weight") else None
        b = _tensor_bytes("F32" if ty == 0 else "F16", dims, i + 1, fill)
        infos += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", ty, len(data))
        data += b + b"\0" * ((32 - len(b) % 32) % 32)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + infos
    head += b"\0" * ((32 - len(head) % 32) % 32)
    return head + data


README_MLX = b"---\nlibrary_name: mlx\ntags:\n- mlx\n---\n# tiny llama 4-bit (MLX)\n"


def chat_files():
    return {
        "config.json": llama_config(),
        "model.safetensors": safetensors(llama_tensors()),
        "tokenizer.json": tokenizer_json(),
        "tokenizer_config.json": tokenizer_config(),
        "generation_config.json": json.dumps({"bos_token_id": 1, "eos_token_id": 2}, indent=2).encode(),
        "README.md": b"---\nlicense: apache-2.0\n---\n# tiny llama chat\n",
    }


def sharded_files(stale=False):
    """Two shards + index. stale=True: the index names shards that are not there."""
    t = llama_tensors()
    a, b = t[:6], t[6:]
    s1, s2 = safetensors(a), safetensors(b)
    n1, n2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    wm = {x[0]: n1 for x in a}
    wm.update({x[0]: n2 for x in b})
    if stale:
        wm = {k: v.replace("model-", "weights-") for k, v in wm.items()}
    index = {"metadata": {"total_size": len(s1) + len(s2)}, "weight_map": wm}
    return {
        "config.json": llama_config(),
        n1: s1,
        n2: s2,
        "model.safetensors.index.json": json.dumps(index, indent=2).encode(),
        "tokenizer.json": tokenizer_json(),
        "tokenizer_config.json": tokenizer_config(),
    }


def repos():
    """(repo_id, [(commit_seed, files, mtime)], locks) — refs/main is the last revision."""
    chat = chat_files()
    chat_old = dict(chat)
    chat_old["config.json"] = llama_config(max_position_embeddings=1024)

    q4 = {
        "config.json": llama_config(quantization={"group_size": 64, "bits": 4},
                                    quantization_config={"group_size": 64, "bits": 4}),
        "model.safetensors": safetensors(mlx_q4_tensors()),
        "tokenizer.json": tokenizer_json(),
        "tokenizer_config.json": tokenizer_config(),
        "README.md": README_MLX,
    }
    gguf = {
        "tiny-llama.F16.gguf": gguf_file(),
        "README.md": b"---\nlicense: apache-2.0\n---\n# tiny llama (GGUF)\n",
    }
    emb = {
        "config.json": bert_config(),
        "model.safetensors": safetensors(bert_tensors()),
        "tokenizer.json": tokenizer_json(),
        "tokenizer_config.json": tokenizer_config(chat=False),
        "vocab.txt": ("\n".join(WORDS) + "\n").encode(),
        "modules.json": json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ], indent=2).encode(),
        "sentence_bert_config.json": json.dumps({"max_seq_length": 128, "do_lower_case": False}).encode(),
        "config_sentence_transformers.json": json.dumps({"__version__": {"sentence_transformers": "3.0.0"}}).encode(),
        "1_Pooling/config.json": json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}).encode(),
        "README.md": b"---\nlibrary_name: sentence-transformers\ntags:\n- sentence-transformers\n- feature-extraction\n---\n# tiny embedder\n",
    }
    no_config = {k: v for k, v in chat.items() if k != "config.json"}
    truncated = dict(chat)
    truncated["model.safetensors"] = chat["model.safetensors"][:-4096]
    missing_shard = sharded_files()
    del missing_shard["model-00002-of-00002.safetensors"]
    lfs = dict(chat)
    lfs["model.safetensors"] = (
        b"version https://git-lfs.github.com/spec/v1\n"
        b"oid sha256:" + hashlib.sha256(chat["model.safetensors"]).hexdigest().encode() + b"\n"
        b"size " + str(len(chat["model.safetensors"])).encode() + b"\n"
    )
    empty_w = dict(chat)
    empty_w["model.safetensors"] = b""
    bad_json = dict(chat)
    bad_json["config.json"] = b"{ not json"

    return [
        ("tiny-org/tiny-llama-chat", [("chat-old", chat_old, OLD_MTIME), ("chat-new", chat, FIXED_MTIME)], []),
        ("mlx-community/tiny-llama-4bit", [("q4", q4, FIXED_MTIME)], []),
        ("tiny-org/tiny-llama-gguf", [("gguf", gguf, FIXED_MTIME)], []),
        ("tiny-org/tiny-sharded", [("sharded", sharded_files(), FIXED_MTIME)], []),
        ("sentence-transformers/tiny-minilm", [("emb", emb, FIXED_MTIME)], []),
        ("pair-org/twin-alpha", [("alpha", chat, FIXED_MTIME)], []),
        ("pair-org/twin-beta", [("beta", chat, FIXED_MTIME)], []),
        ("lock-org/locked-model", [("locked", chat, FIXED_MTIME)], ["model.safetensors"]),
        ("broken/no-config", [("noconf", no_config, FIXED_MTIME)], []),
        ("broken/bad-config-json", [("badjson", bad_json, FIXED_MTIME)], []),
        ("broken/truncated-safetensors", [("trunc", truncated, FIXED_MTIME)], []),
        ("broken/missing-shard", [("mshard", missing_shard, FIXED_MTIME)], []),
        ("broken/lfs-pointer", [("lfs", lfs, FIXED_MTIME)], []),
        ("broken/empty-weights", [("emptyw", empty_w, FIXED_MTIME)], []),
    ]


def commit_hash(seed):
    return hashlib.sha1(("tanto-conformance:" + seed).encode()).hexdigest()


def is_lfs(rel):
    return rel.endswith((".safetensors", ".gguf", ".bin"))


def etag(rel, content):
    """Blob name as huggingface_hub writes it: sha256 for LFS files, git blob sha1 otherwise."""
    if is_lfs(rel):
        return hashlib.sha256(content).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


# --------------------------------------------------------------------------
# writing


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _fix_mtimes(top, mtime):
    """Set every entry under top (and top) to mtime, deepest first; symlinks untouched."""
    for dirpath, dirnames, filenames in os.walk(top, topdown=False):
        for n in filenames + dirnames:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                os.utime(p, (mtime, mtime))
        os.utime(dirpath, (mtime, mtime))


def write_cache(hub):
    for repo_id, revisions, locks in repos():
        d = os.path.join(hub, "models--" + repo_id.replace("/", "--"))
        snaps = []
        for seed, files, mtime in revisions:
            c = commit_hash(seed)
            sd = os.path.join(d, "snapshots", c)
            for rel, content in sorted(files.items()):
                e = etag(rel, content)
                blob = os.path.join(d, "blobs", e)
                if not os.path.exists(blob):
                    _write(blob, content)
                link = os.path.join(sd, rel)
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(os.path.relpath(blob, os.path.dirname(link)), link)
            snaps.append((sd, mtime))
            _write(os.path.join(d, "refs", "main"), c.encode())
        for rel in locks:
            content = revisions[-1][1][rel]
            lk = os.path.join(hub, ".locks", "models--" + repo_id.replace("/", "--"), etag(rel, content) + ".lock")
            _write(lk, b"")
        _fix_mtimes(os.path.join(d, "blobs"), FIXED_MTIME)
        _fix_mtimes(os.path.join(d, "refs"), FIXED_MTIME)
        for sd, mtime in snaps:
            _fix_mtimes(sd, mtime)
        os.utime(os.path.join(d, "snapshots"), (FIXED_MTIME, FIXED_MTIME))
        os.utime(d, (FIXED_MTIME, FIXED_MTIME))
    if os.path.isdir(os.path.join(hub, ".locks")):
        _fix_mtimes(os.path.join(hub, ".locks"), FIXED_MTIME)
    os.utime(hub, (FIXED_MTIME, FIXED_MTIME))


def write_dir(d, files, sentinel=None):
    for rel, content in sorted(files.items()):
        _write(os.path.join(d, rel), content)
    if sentinel is not None:
        _write(os.path.join(d, ".mlxk_workspace.json"), (json.dumps(sentinel, indent=2) + "\n").encode())
    _fix_mtimes(d, FIXED_MTIME)


def build(root):
    if os.path.exists(root) and os.listdir(root):
        sys.exit("build_fixture.py: %s exists and is not empty" % root)
    os.makedirs(root, exist_ok=True)
    write_cache(os.path.join(root, "hf", "hub"))
    # A managed workspace (v1-style sentinel: no content hash, so `clean` is unknown).
    write_dir(os.path.join(root, "ws", "tiny-ws"), chat_files(), sentinel={
        "mlxk_version": "2.0.8",
        "created_at": "2024-06-01T12:00:00Z",
        "source_repo": "tiny-org/tiny-llama-chat",
        "source_revision": None,
        "managed": True,
        "operation": "clone",
    })
    write_dir(os.path.join(root, "src", "stale-index"), sharded_files(stale=True))
    write_dir(os.path.join(root, "src", "single-shard"), chat_files())
    os.makedirs(os.path.join(root, "out"))
    # What fake_hub.py serves: plain files per repo (pull / clone from the "hub").
    write_dir(os.path.join(root, "fakehub", "remote-org", "remote-model"), chat_files())
    write_dir(os.path.join(root, "fakehub", "tiny-org", "tiny-llama-chat"), chat_files())
    for p in ("hf", "ws", "src", "out", "fakehub", ""):
        os.utime(os.path.join(root, p), (FIXED_MTIME, FIXED_MTIME))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    build(os.path.abspath(sys.argv[1]))
