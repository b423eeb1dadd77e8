#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper folder (faster-whisper layout: model.bin,
config.json, tokenizer.json, vocabulary.txt) into a Hugging Face
`WhisperForConditionalGeneration` folder.

Only needs `numpy` (no torch, no ctranslate2). Used by scripts/fetch-test-models.sh.

    python ct2_whisper_to_hf.py CT2_DIR OUT_DIR [--dtype f32|f16]

What it does:
  * reads CTranslate2's model.bin (binary version <= 6, spec WhisperSpec);
    rank-0 variables (encoder/num_heads, decoder/activation, ...) are settings,
    not tensors; int8 weights are dequantised with their `_scale` (w = q / scale),
    float16/bfloat16 are widened exactly;
  * renames the variables to transformers' Whisper names; the fused q|k|v
    (self-attention) and k|v (cross-attention) projections are split, the
    all-zero key bias is dropped (HF's k_proj has no bias); the tied output
    projection (CT2 alias decoder/projection/weight) is not stored;
  * writes model.safetensors by hand (tensors sorted by name, compact JSON
    header with sorted keys -- "__metadata__" first --, padded with spaces to
    8 bytes), float32 or float16;
  * rebuilds config.json and generation_config.json from the tensor shapes, the
    CT2 settings and config.json (suppress_ids, suppress_ids_begin, lang_ids,
    alignment_heads) and the special tokens of tokenizer.json;
  * writes preprocessor_config.json (80-mel WhisperFeatureExtractor);
  * appends the 1501 timestamp tokens <|0.00|> ... <|30.00|> (ids from
    vocabulary.txt) to tokenizer.json as added tokens, so the tokenizer has as
    many ids as the model's vocabulary, and writes tokenizer_config.json,
    special_tokens_map.json, vocab.json, merges.txt and added_tokens.json the way
    transformers' WhisperTokenizerFast.save_pretrained lays them out.
Output is deterministic (byte-identical run to run).
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np

# CTranslate2 DataType ids (include/ctranslate2/types.h).
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bf16"}
# CTranslate2 ActivationType ids -> transformers' activation_function.
CT2_ACTIVATIONS = {0: "relu", 1: "gelu_new", 2: "silu", 3: "gelu"}

TIMESTAMP_RE = re.compile(r"<\|(\d+)\.(\d\d)\|>")


def fail(msg):
    sys.exit(f"ct2_whisper_to_hf: {msg}")


# ---------------------------------------------------------------- model.bin


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            fail("model.bin is truncated")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def string(self):
        n = self.u16()  # length including the trailing NUL
        b = self.take(n)
        if n == 0 or b[-1] != 0:
            fail("model.bin: malformed string")
        return b[:-1].decode("utf-8")


def read_ct2(path):
    """-> (spec name, {name: ndarray}, {name: scalar}, {alias: target})"""
    with open(path, "rb") as f:
        r = Reader(f.read())
    version = r.u32()
    if version < 1 or version > 6:
        fail(f"unsupported CTranslate2 binary version {version}")
    spec = r.string() if version >= 2 else ""
    _revision = r.u32() if version >= 2 else 1
    arrays, scalars = {}, {}
    for _ in range(r.u32()):
        name = r.string()
        rank = r.u8()
        shape = [r.u32() for _ in range(rank)]
        dtype_id = r.u8()
        if dtype_id not in CT2_DTYPES:
            fail(f"{name}: unknown CTranslate2 dtype {dtype_id}")
        nbytes = r.u32()
        raw = r.take(nbytes)
        dt = CT2_DTYPES[dtype_id]
        if dt == "bf16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=np.dtype(dt).newbyteorder("<"))
        if a.size != int(np.prod(shape, dtype=np.int64)):
            fail(f"{name}: {nbytes} bytes do not fit shape {shape}")
        if rank == 0:
            scalars[name] = a.reshape(()).item()
        else:
            arrays[name] = a.reshape(shape)
    aliases = {}
    if version >= 3:
        for _ in range(r.u32()):
            alias = r.string()
            aliases[alias] = r.string()
    if r.pos != len(r.data):
        fail(f"model.bin: {len(r.data) - r.pos} trailing bytes")
    return spec, arrays, scalars, aliases


def dequantize(arrays):
    """int8 weights with a `<name>_scale` -> float32; float16 stays, the rest float32."""
    out = {}
    for name, a in arrays.items():
        if name.endswith("_scale"):
            continue
        if a.dtype == np.int8 or a.dtype == np.int16:
            scale = arrays.get(name + "_scale")
            if scale is None:
                fail(f"{name}: integer tensor without {name}_scale")
            s = scale.astype(np.float32).reshape(-1, *([1] * (a.ndim - 1)))
            a = a.astype(np.float32) / s
        elif a.dtype != np.float16:
            a = a.astype(np.float32)
        out[name] = a
    return out


# ---------------------------------------------------------------- names


def layer_count(arrays, side):
    n = 0
    while any(k.startswith(f"{side}/layer_{n}/") for k in arrays):
        n += 1
    return n


def linear(t, src, dst, take):
    """CT2 linear `src` -> HF `dst.weight` / `dst.bias`."""
    t[f"{dst}.weight"] = take(f"{src}/weight")
    bias = f"{src}/bias"
    t[f"{dst}.bias"] = take(bias)


def map_tensors(v):
    """CT2 name -> HF name; every CT2 tensor must be used exactly once."""
    used = set()

    def take(name):
        if name not in v:
            fail(f"model.bin has no {name}")
        used.add(name)
        return v[name]

    def norm(t, src, dst):
        t[f"{dst}.weight"] = take(f"{src}/gamma")
        t[f"{dst}.bias"] = take(f"{src}/beta")

    def split(w, n):
        if w.shape[0] % n:
            fail(f"cannot split {w.shape} into {n}")
        return np.split(w, n, axis=0)

    def zero_k_bias(b, name):
        if np.any(b != 0):
            fail(f"{name}: non-zero key bias (HF's k_proj has no bias)")

    t = {}
    for i in (1, 2):
        t[f"model.encoder.conv{i}.weight"] = take(f"encoder/conv{i}/weight")
        t[f"model.encoder.conv{i}.bias"] = take(f"encoder/conv{i}/bias")
    t["model.encoder.embed_positions.weight"] = take("encoder/position_encodings/encodings")
    t["model.decoder.embed_tokens.weight"] = take("decoder/embeddings/weight")
    t["model.decoder.embed_positions.weight"] = take("decoder/position_encodings/encodings")
    norm(t, "encoder/layer_norm", "model.encoder.layer_norm")
    norm(t, "decoder/layer_norm", "model.decoder.layer_norm")

    for side in ("encoder", "decoder"):
        for n in range(layer_count(v, side)):
            src = f"{side}/layer_{n}"
            dst = f"model.{side}.layers.{n}"
            # self-attention: fused q|k|v
            qw, kw, vw = split(take(f"{src}/self_attention/linear_0/weight"), 3)
            qb, kb, vb = split(take(f"{src}/self_attention/linear_0/bias"), 3)
            zero_k_bias(kb, f"{src}/self_attention/linear_0/bias")
            t[f"{dst}.self_attn.q_proj.weight"], t[f"{dst}.self_attn.q_proj.bias"] = qw, qb
            t[f"{dst}.self_attn.k_proj.weight"] = kw
            t[f"{dst}.self_attn.v_proj.weight"], t[f"{dst}.self_attn.v_proj.bias"] = vw, vb
            linear(t, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj", take)
            norm(t, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
            if side == "decoder":
                # cross-attention: q, then fused k|v
                linear(t, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj", take)
                kw, vw = split(take(f"{src}/attention/linear_1/weight"), 2)
                kb, vb = split(take(f"{src}/attention/linear_1/bias"), 2)
                zero_k_bias(kb, f"{src}/attention/linear_1/bias")
                t[f"{dst}.encoder_attn.k_proj.weight"] = kw
                t[f"{dst}.encoder_attn.v_proj.weight"], t[f"{dst}.encoder_attn.v_proj.bias"] = vw, vb
                linear(t, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj", take)
                norm(t, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
            linear(t, f"{src}/ffn/linear_0", f"{dst}.fc1", take)
            linear(t, f"{src}/ffn/linear_1", f"{dst}.fc2", take)
            norm(t, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")

    unused = sorted(set(v) - used)
    if unused:
        fail(f"unmapped CT2 tensors: {unused[:5]}{' ...' if len(unused) > 5 else ''}")
    return t


# ---------------------------------------------------------------- safetensors


def write_safetensors(path, tensors, dtype):
    np_dtype, st_dtype = {"f32": (np.float32, "F32"), "f16": (np.float16, "F16")}[dtype]
    names = sorted(tensors)
    header = {"__metadata__": {"format": "pt"}}
    arrays = []
    offset = 0
    for name in names:
        a = np.ascontiguousarray(tensors[name].astype(np.dtype(np_dtype).newbyteorder("<")))
        arrays.append(a)
        header[name] = {
            "dtype": st_dtype,
            "shape": list(a.shape),
            "data_offsets": [offset, offset + a.nbytes],
        }
        offset += a.nbytes
    hbytes = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for a in arrays:
            f.write(a.tobytes())
    os.replace(tmp, path)


# ---------------------------------------------------------------- json files


def dump_json(path, obj, sort_keys=True, trailing_newline=True):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False))
        if trailing_newline:
            f.write("\n")


def read_vocabulary(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if text.endswith("\n"):
        text = text[:-1]
    return text.split("\n")  # the multilingual vocabulary has an empty token (50256)


def build_tokenizer(src, vocab_size):
    """-> (tokenizer.json object with timestamps, {content: id} of all added tokens)"""
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    model = tok.get("model", {})
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        fail("tokenizer.json: expected a byte-level BPE model")
    words = read_vocabulary(os.path.join(src, "vocabulary.txt"))
    if len(words) != vocab_size:
        fail(f"vocabulary.txt has {len(words)} tokens, the model {vocab_size}")
    ids = {}
    for content, i in model["vocab"].items():
        ids[i] = content
    for t in tok["added_tokens"]:
        ids[t["id"]] = t["content"]
    for i, content in ids.items():
        if i >= vocab_size or words[i] != content:
            fail(f"tokenizer.json id {i} ({content!r}) disagrees with vocabulary.txt")
    first_new = max(ids) + 1
    if sorted(ids) != list(range(first_new)):
        fail("tokenizer.json ids are not contiguous")
    if first_new != vocab_size:
        if len(words) - first_new != 1501:
            fail(f"expected 1501 timestamp tokens after id {first_new - 1}, got {len(words) - first_new}")
        for k, i in enumerate(range(first_new, vocab_size)):
            want = f"<|{k * 0.02:.2f}|>"
            if words[i] != want:
                fail(f"vocabulary.txt id {i}: {words[i]!r}, expected {want!r}")
            tok["added_tokens"].append(
                {
                    "id": i,
                    "content": words[i],
                    "single_word": False,
                    "lstrip": False,
                    "rstrip": False,
                    "normalized": True,
                    "special": False,
                }
            )
    added = {t["content"]: t["id"] for t in tok["added_tokens"]}
    return tok, added


def added_tokens_decoder(tok):
    return {
        str(t["id"]): {
            "content": t["content"],
            "lstrip": t["lstrip"],
            "normalized": t["normalized"],
            "rstrip": t["rstrip"],
            "single_word": t["single_word"],
            "special": t["special"],
        }
        for t in tok["added_tokens"]
    }


def write_tokenizer_files(out, tok):
    model = tok["model"]
    dump_json(os.path.join(out, "tokenizer.json"), tok, sort_keys=False, trailing_newline=False)

    vocab = model["vocab"]
    vocab_size = len(vocab)
    specials = [t["content"] for t in tok["added_tokens"] if t["special"]]
    eot = "<|endoftext|>"
    # transformers' WhisperTokenizerFast: bos = eos = unk = pad = <|endoftext|>;
    # additional_special_tokens = the other special added tokens, in id order.
    extra = [s for s in specials if s != eot]
    eot_entry = {"content": eot, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    dump_json(
        os.path.join(out, "special_tokens_map.json"),
        {
            "additional_special_tokens": extra,
            "bos_token": eot_entry,
            "eos_token": eot_entry,
            "pad_token": eot_entry,
            "unk_token": eot_entry,
        },
    )
    dump_json(
        os.path.join(out, "tokenizer_config.json"),
        {
            "add_bos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": added_tokens_decoder(tok),
            "additional_special_tokens": extra,
            "bos_token": eot,
            "clean_up_tokenization_spaces": True,
            "eos_token": eot,
            "errors": "replace",
            "extra_special_tokens": {},
            "model_max_length": 1024,
            "pad_token": eot,
            "processor_class": "WhisperProcessor",
            "return_attention_mask": False,
            "tokenizer_class": "WhisperTokenizer",
            "unk_token": eot,
        },
    )
    # vocab.json / merges.txt as the tokenizers library's BPE model.save writes them.
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write("{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + str(i) for k, i in ordered) + "}")
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for m in model["merges"]:
            f.write((m if isinstance(m, str) else " ".join(m)) + "\n")
    added = {t["content"]: t["id"] for t in tok["added_tokens"] if t["id"] >= vocab_size}
    dump_json(os.path.join(out, "added_tokens.json"), added)


def special_ids(added):
    def need(name):
        if name not in added:
            fail(f"tokenizer.json has no {name}")
        return added[name]

    return {
        "eot": need("<|endoftext|>"),
        "sot": need("<|startoftranscript|>"),
        "translate": need("<|translate|>"),
        "transcribe": need("<|transcribe|>"),
        "sot_lm": need("<|startoflm|>"),
        "sot_prev": need("<|startofprev|>"),
        "no_captions": need("<|nocaptions|>"),
        "no_timestamps": need("<|notimestamps|>"),
    }


def build_configs(tensors, scalars, ct2cfg, added, dtype):
    d_model = tensors["model.encoder.conv1.weight"].shape[0]
    n_mels = tensors["model.encoder.conv1.weight"].shape[1]
    vocab_size = tensors["model.decoder.embed_tokens.weight"].shape[0]

    def count(side):
        n = 0
        while f"model.{side}.layers.{n}.fc1.weight" in tensors:
            n += 1
        return n

    enc_layers, dec_layers = count("encoder"), count("decoder")
    enc_ffn = tensors["model.encoder.layers.0.fc1.weight"].shape[0]
    dec_ffn = tensors["model.decoder.layers.0.fc1.weight"].shape[0]
    enc_heads = int(scalars.get("encoder/num_heads", 0))
    dec_heads = int(scalars.get("decoder/num_heads", 0))
    if enc_heads <= 0 or dec_heads <= 0 or d_model % enc_heads or d_model % dec_heads:
        fail(f"bad head counts {enc_heads}/{dec_heads} for d_model {d_model}")
    act = CT2_ACTIVATIONS.get(int(scalars.get("decoder/activation", 3)))
    if act is None:
        fail(f"unsupported activation {scalars.get('decoder/activation')}")
    if int(scalars.get("decoder/pre_norm", 1)) != 1:
        fail("only pre-norm Whisper is supported")
    scale_embedding = bool(scalars.get("decoder/scale_embeddings", 0))

    s = special_ids(added)
    multilingual = vocab_size >= 51865
    suppress = [int(x) for x in ct2cfg.get("suppress_ids", [])]
    begin_suppress = [int(x) for x in ct2cfg.get("suppress_ids_begin", [])]
    alignment_heads = [[int(a), int(b)] for a, b in ct2cfg.get("alignment_heads", [])]
    if multilingual:
        forced = [[1, None], [2, s["transcribe"]]]
    else:
        forced = [[1, s["no_timestamps"]]]
    # OpenAI's checkpoints have bos_token_id 50257 in both vocabularies: the
    # <|startoftranscript|> of English-only models, <|endoftext|> of multilingual ones
    bos = s["eot"] if multilingual else s["sot"]

    config = {
        "activation_dropout": 0.0,
        "activation_function": act,
        "apply_spec_augment": False,
        "architectures": ["WhisperForConditionalGeneration"],
        "attention_dropout": 0.0,
        "begin_suppress_tokens": begin_suppress,
        "bos_token_id": bos,
        "classifier_proj_size": 256,
        "d_model": d_model,
        "decoder_attention_heads": dec_heads,
        "decoder_ffn_dim": dec_ffn,
        "decoder_layerdrop": 0.0,
        "decoder_layers": dec_layers,
        "decoder_start_token_id": s["sot"],
        "dropout": 0.0,
        "encoder_attention_heads": enc_heads,
        "encoder_ffn_dim": enc_ffn,
        "encoder_layerdrop": 0.0,
        "encoder_layers": enc_layers,
        "eos_token_id": s["eot"],
        "forced_decoder_ids": forced,
        "init_std": 0.02,
        "is_encoder_decoder": True,
        "mask_feature_length": 10,
        "mask_feature_min_masks": 0,
        "mask_feature_prob": 0.0,
        "mask_time_length": 10,
        "mask_time_min_masks": 2,
        "mask_time_prob": 0.05,
        "max_length": tensors["model.decoder.embed_positions.weight"].shape[0],
        "max_source_positions": tensors["model.encoder.embed_positions.weight"].shape[0],
        "max_target_positions": tensors["model.decoder.embed_positions.weight"].shape[0],
        "median_filter_width": 7,
        "model_type": "whisper",
        "num_hidden_layers": enc_layers,
        "num_mel_bins": n_mels,
        "pad_token_id": s["eot"],
        "scale_embedding": scale_embedding,
        "suppress_tokens": suppress,
        "torch_dtype": {"f32": "float32", "f16": "float16"}[dtype],
        "use_cache": True,
        "use_weighted_layer_sum": False,
        "vocab_size": vocab_size,
    }

    gen = {
        "alignment_heads": alignment_heads,
        "begin_suppress_tokens": begin_suppress,
        "bos_token_id": bos,
        "decoder_start_token_id": s["sot"],
        "eos_token_id": s["eot"],
        "forced_decoder_ids": forced,
        "is_multilingual": multilingual,
        "max_initial_timestamp_index": 50,
        "max_length": config["max_target_positions"],
        "no_timestamps_token_id": s["no_timestamps"],
        "pad_token_id": s["eot"],
        "prev_sot_token_id": s["sot_prev"],
        "return_timestamps": False,
        "suppress_tokens": suppress,
    }
    if multilingual:
        lang_ids = set(int(x) for x in ct2cfg.get("lang_ids", []))
        langs = {c: i for c, i in added.items() if i in lang_ids}
        if not langs or len(langs) != len(lang_ids):
            fail("config.json lang_ids do not match the tokenizer's language tokens")
        gen["lang_to_id"] = langs
        gen["task_to_id"] = {"transcribe": s["transcribe"], "translate": s["translate"]}
    if len(begin_suppress) == 0 or s["eot"] not in begin_suppress:
        fail("config.json suppress_ids_begin lacks <|endoftext|>")
    return config, gen


PREPROCESSOR = {
    "chunk_length": 30,
    "dither": 0.0,
    "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 80,
    "hop_length": 160,
    "n_fft": 400,
    "n_samples": 480000,
    "nb_max_frames": 3000,
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "WhisperProcessor",
    "return_attention_mask": False,
    "sampling_rate": 16000,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json, vocabulary.txt)")
    ap.add_argument("out", help="output folder (created; files in it are overwritten)")
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    args = ap.parse_args()

    spec, arrays, scalars, aliases = read_ct2(os.path.join(args.src, "model.bin"))
    if spec != "WhisperSpec":
        fail(f"not a Whisper model: spec {spec!r}")
    for alias, target in aliases.items():
        if (alias, target) != ("decoder/projection/weight", "decoder/embeddings/weight"):
            fail(f"unexpected alias {alias} -> {target} (only the tied projection is supported)")
    if "decoder/projection/weight" in arrays:
        fail("untied decoder/projection/weight is not supported")
    tensors = map_tensors(dequantize(arrays))
    with open(os.path.join(args.src, "config.json"), encoding="utf-8") as f:
        ct2cfg = json.load(f)
    vocab_size = tensors["model.decoder.embed_tokens.weight"].shape[0]
    tok, added = build_tokenizer(args.src, vocab_size)
    config, gen = build_configs(tensors, scalars, ct2cfg, added, args.dtype)
    if config["num_mel_bins"] != PREPROCESSOR["feature_size"]:
        fail(f"{config['num_mel_bins']} mel bins: only the 80-mel feature extractor is written")

    os.makedirs(args.out, exist_ok=True)
    write_safetensors(os.path.join(args.out, "model.safetensors"), tensors, args.dtype)
    dump_json(os.path.join(args.out, "config.json"), config)
    dump_json(os.path.join(args.out, "generation_config.json"), gen)
    dump_json(os.path.join(args.out, "preprocessor_config.json"), PREPROCESSOR)
    write_tokenizer_files(args.out, tok)
    n_params = sum(t.size for t in tensors.values())
    print(
        f"{args.src} -> {args.out}: {len(tensors)} tensors, {n_params:,} parameters ({args.dtype}), "
        f"d_model {config['d_model']}, {config['encoder_layers']}+{config['decoder_layers']} layers, "
        f"vocab {vocab_size}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
