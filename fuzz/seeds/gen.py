#!/usr/bin/env python3
"""Write the committed seed corpora (small, valid inputs the fuzzers mutate).

Run from anywhere: python3 fuzz/seeds/gen.py. Output: fuzz/seeds/<target>/…
Seeds are deterministic; re-running rewrites the same bytes. Real model files
are far too big to commit: these are tiny files with every structure a real
one has (metadata of each value type, arrays, tokenizer vocabularies,
quantized and float tensors), so the fuzzers start from the parsers' deep paths.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def out(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- GGUF ----------------------------------------------------------------
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
FMT = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
       T_F32: "<f", T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}
# ggml type -> (block elements, bytes per block)
LAYOUT = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 12: (256, 144), 30: (1, 2)}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gval(ty, v):
    if ty == T_STR:
        return gstr(v)
    return struct.pack(FMT[ty], v)


def gguf(kvs, tensors, version=3, alignment=32):
    """kvs: list of (key, type, value) or (key, T_ARR, (elem_type, [items]))."""
    b = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, ty, v in kvs:
        b += gstr(key) + struct.pack("<I", ty)
        if ty == T_ARR:
            ety, items = v
            b += struct.pack("<IQ", ety, len(items)) + b"".join(gval(ety, i) for i in items)
        else:
            b += gval(ty, v)
    off = 0
    sizes = []
    for name, dims, gt in tensors:
        n = 1
        for d in dims:
            n *= d
        blk, by = LAYOUT[gt]
        size = (n + blk - 1) // blk * by
        b += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        b += struct.pack("<IQ", gt, off)
        sizes.append(size)
        off += (size + alignment - 1) // alignment * alignment
    b += b"\0" * ((-len(b)) % alignment)
    return b + bytes((i * 7) & 0xFF for i in range(off))


def llama_kvs(arch="llama", ctx=2048):
    return [
        ("general.architecture", T_STR, arch),
        ("general.name", T_STR, "fuzz-seed"),
        ("general.alignment", T_U32, 32),
        ("general.file_type", T_U32, 2),
        (f"{arch}.context_length", T_U32, ctx),
        (f"{arch}.embedding_length", T_U32, 32),
        (f"{arch}.block_count", T_U32, 1),
        (f"{arch}.feed_forward_length", T_U32, 64),
        (f"{arch}.attention.head_count", T_U32, 4),
        (f"{arch}.attention.head_count_kv", T_U32, 2),
        (f"{arch}.rope.freq_base", T_F32, 10000.0),
        (f"{arch}.attention.layer_norm_rms_epsilon", T_F32, 1e-5),
    ]


LLAMA_TENSORS = [
    ("token_embd.weight", [32, 16], 0),
    ("blk.0.attn_q.weight", [32, 32], 2),
    ("blk.0.ffn_up.weight", [32, 64], 8),
    ("blk.0.attn_norm.weight", [32], 0),
    ("output_norm.weight", [32], 1),
]

SPM_TOKENS = ["<unk>", "<s>", "</s>", "\u2581", "\u2581H", "ello", "\u2581w", "orld", "!", ",",
              "<0x0A>", "<0xF0>", "<0x9F>", "<0x99>", "<0x82>", "1", "2"]
BYTE_TOKENS = ["!", "\"", "H", "e", "l", "o", "Ġ", "w", "r", "d", "1", "2", "He", "ll", "llo",
               "Ġw", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def spm_kvs():
    n = len(SPM_TOKENS)
    return [
        ("tokenizer.ggml.model", T_STR, "llama"),
        ("tokenizer.ggml.tokens", T_ARR, (T_STR, SPM_TOKENS)),
        ("tokenizer.ggml.scores", T_ARR, (T_F32, [float(-i) for i in range(n)])),
        ("tokenizer.ggml.token_type", T_ARR, (T_I32, [2, 3, 3] + [1] * 7 + [6] * 5 + [1, 1])),
        ("tokenizer.ggml.bos_token_id", T_U32, 1),
        ("tokenizer.ggml.eos_token_id", T_U32, 2),
        ("tokenizer.ggml.unknown_token_id", T_U32, 0),
        ("tokenizer.ggml.add_bos_token", T_BOOL, True),
        ("tokenizer.ggml.add_space_prefix", T_BOOL, True),
        ("tokenizer.chat_template", T_STR, TEMPLATE),
    ]


def bpe_kvs(pre):
    n = len(BYTE_TOKENS)
    return [
        ("tokenizer.ggml.model", T_STR, "gpt2"),
        ("tokenizer.ggml.pre", T_STR, pre),
        ("tokenizer.ggml.tokens", T_ARR, (T_STR, BYTE_TOKENS)),
        ("tokenizer.ggml.token_type", T_ARR, (T_I32, [1] * (n - 3) + [3, 3, 3])),
        ("tokenizer.ggml.merges", T_ARR, (T_STR, ["H e", "l l", "ll o", "Ġ w"])),
        ("tokenizer.ggml.bos_token_id", T_U32, n - 3),
        ("tokenizer.ggml.eos_token_id", T_U32, n - 1),
        ("tokenizer.ggml.padding_token_id", T_U64, n - 3),
    ]


def gguf_seeds():
    seeds = {
        "llama_spm.gguf": gguf(llama_kvs() + spm_kvs(), LLAMA_TENSORS),
        "qwen2_bpe.gguf": gguf(llama_kvs("qwen2", 32768) + bpe_kvs("qwen2"), LLAMA_TENSORS),
        "smollm_bpe_v2.gguf": gguf(llama_kvs("llama", 8192) + bpe_kvs("smollm"), LLAMA_TENSORS[:2], version=2),
        "all_types.gguf": gguf([
            ("general.architecture", T_STR, "gemma3"),
            ("a.u8", T_U8, 7), ("a.i8", T_I8, -7), ("a.u16", T_U16, 700), ("a.i16", T_I16, -700),
            ("a.u32", T_U32, 70000), ("a.i32", T_I32, -70000), ("a.f32", T_F32, 0.5),
            ("a.bool", T_BOOL, False), ("a.u64", T_U64, 1 << 40), ("a.i64", T_I64, -(1 << 40)),
            ("a.f64", T_F64, 2.5), ("a.arr_u8", T_ARR, (T_U8, list(range(100)))),
            ("a.arr_f64", T_ARR, (T_F64, [1.0, 2.0])),
            ("a.arr_str", T_ARR, (T_STR, ["x"] * 70)),
        ], [("t.q4k", [256, 2], 12), ("t.iq4", [1, 1, 1, 8], 30)], alignment=64),
        "empty.gguf": gguf([], []),
    }
    for name, data in seeds.items():
        for t in ("core_gguf", "engine_gguf"):
            out(t, name, data)
    for name in ("llama_spm.gguf", "qwen2_bpe.gguf", "smollm_bpe_v2.gguf"):
        out("tokenizer_gguf", name, seeds[name])


# ---- safetensors ---------------------------------------------------------
def safetensors(entries, meta=None):
    h = {}
    if meta is not None:
        h["__metadata__"] = meta
    off = 0
    for name, dtype, shape, size in entries:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + size]}
        off += size
    hb = json.dumps(h, separators=(",", ":")).encode()
    hb += b" " * ((-len(hb)) % 8)
    return struct.pack("<Q", len(hb)) + hb + bytes(off)


def safetensors_seeds():
    out("core_safetensors", "f32.safetensors",
        safetensors([("model.embed.weight", "F32", [4, 2], 32), ("lm_head.weight", "BF16", [2, 4], 16)],
                    {"format": "pt"}))
    out("core_safetensors", "quant.safetensors",
        safetensors([("layers.0.q.weight", "U32", [8, 1], 32), ("layers.0.q.scales", "F16", [8, 1], 16),
                     ("layers.0.q.biases", "F16", [8, 1], 16), ("norm", "F8_E4M3", [], 1),
                     ("empty", "I64", [0, 3], 0)], {"format": "mlx", "quantization": "4"}))
    out("core_safetensors", "empty.safetensors", safetensors([]))


# ---- config.json ---------------------------------------------------------
def config_seeds():
    llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
             "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
             "max_position_embeddings": 8192, "vocab_size": 49152, "torch_dtype": "bfloat16",
             "rope_theta": 100000, "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": [2, 3]}
    out("core_config", "llama.json", json.dumps(llama, indent=1))
    mlx = dict(llama, quantization={"group_size": 64, "bits": 4}, max_position_embeddings="4096")
    out("core_config", "mlx_quant.json", json.dumps(mlx))
    vlm = {"architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
           "text_config": {"model_type": "qwen2", "max_position_embeddings": 32768, "hidden_size": 64},
           "vision_config": {"depth": 2, "image_size": 224}, "image_token_id": 151655}
    out("core_config", "vlm.json", json.dumps(vlm))
    emb = {"architectures": ["BertModel"], "model_type": "bert", "n_positions": 512,
           "quantization_config": {"quant_method": "gptq", "bits": 8}, "torch_dtype": "float32"}
    out("core_config", "bert_gptq.json", json.dumps(emb))
    out("core_config", "whisper.json", json.dumps({"architectures": ["WhisperForConditionalGeneration"],
                                                   "model_type": "whisper", "max_source_positions": 1500}))


# ---- tokenizer.json ------------------------------------------------------
def tokenizer_seeds():
    bpe = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 5, "content": "<|im_start|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True},
                         {"id": 6, "content": "<|im_end|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False,
                  "vocab": {"H": 0, "e": 1, "l": 2, "o": 3, "He": 4, "<|im_start|>": 5, "<|im_end|>": 6,
                            "ll": 7, "llo": 8, "Ġ": 9},
                  "merges": ["H e", "l l", "ll o"]},
    }
    out("tokenizer_json", "bpe.json", json.dumps(bpe))
    wp = {
        "version": "1.0", "truncation": {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 8}, "direction": "Right", "pad_to_multiple_of": None,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": [{"id": 0, "content": "[PAD]", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]},
                                              "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100,
                  "vocab": {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[UNK]": 3, "hello": 4, "w": 5, "##or": 6, "##ld": 7}},
    }
    out("tokenizer_json", "wordpiece.json", json.dumps(wp))
    uni = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
            {"type": "Prepend", "prepend": "\u2581"}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": True,
                  "vocab": [["<unk>", 0.0], ["\u2581hello", -1.0], ["\u2581", -2.0], ["w", -3.0],
                            ["orld", -3.5], ["<0x21>", -9.0]]},
    }
    out("tokenizer_json", "unigram.json", json.dumps(uni))
    wl = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": {"type": "Strip", "strip_left": True, "strip_right": True},
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Removed", "invert": False},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1],
                           "trim_offsets": True, "add_prefix_space": False},
        "decoder": {"type": "CTC", "pad_token": "<pad>", "word_delimiter_token": "|", "cleanup": True},
        "model": {"type": "WordLevel", "vocab": {"<pad>": 0, "<s>": 1, "</s>": 2, "hello": 3, "<unk>": 4},
                  "unk_token": "<unk>"},
    }
    out("tokenizer_json", "wordlevel.json", json.dumps(wl))


# ---- chat templates ------------------------------------------------------
MSG = "system\x1fYou are terse.\x1euser\x1fHello?\x1eassistant\x1fHi.\x1euser\x1fA {{ brace }} and ünïcode"


def chat_seeds():
    templates = {
        "chatml.bin": TEMPLATE,
        "llama2.bin": ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
                       "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate') }}"
                       "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'].strip() + ' [/INST]' }}"
                       "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'].strip() + ' ' + eos_token }}"
                       "{% endif %}{% endfor %}"),
        "tools_json.bin": ("{%- set sys = messages[0] if messages and messages[0].role == 'system' else none -%}"
                           "{%- if sys %}<<SYS>>{{ sys.content | trim }}<</SYS>>{% endif -%}"
                           "{%- for m in messages[1:] %}{{ m | tojson(indent=2) }}{{ m.content | indent(4, true) }}"
                           "{% if loop.last and add_generation_prompt %}{{ strftime_now('%Y-%m-%d') }}{% endif %}"
                           "{%- endfor %}{{ tools | tojson }}"),
        "macro_ns.bin": ("{% macro fmt(m, depth) %}{% if depth > 0 %}{{ fmt(m, depth - 1) }}{% endif %}"
                         "{{ m.role | upper }}: {{ m.content.split(' ') | join('_') | replace('a', 'b') }}{% endmacro %}"
                         "{% set ns = namespace(n=0, s='') %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                         "{% set ns.s = ns.s ~ m.role[:1] %}{{ fmt(m, 2) }}{% if ns.n > 2 %}{% break %}{% endif %}"
                         "{% endfor %}{{ ns.s * 3 }}{{ messages | map(attribute='content') | list | length }}"
                         "{{ range(5) | select('odd') | list }}{{ 'x'.startswith('x') }}{{ {'a': 1}.items() | list }}"),
        "doubling.bin": "{% set s = namespace(v='ab') %}{% for i in range(40) %}{% set s.v = s.v ~ s.v %}{% endfor %}{{ s.v }}",
        "recursion.bin": "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
    }
    for i, (name, src) in enumerate(templates.items()):
        flags = bytes([i & 1 | (2 if name == "chatml.bin" else 0)])
        out("chat_template", name, flags + src.encode() + b"\0" + MSG.encode())


# ---- OpenAI requests -----------------------------------------------------
def openai_seeds():
    reqs = {
        "chat.json": {"model": "org/model", "messages": [{"role": "system", "content": "be brief"},
                                                         {"role": "user", "content": "hi"}],
                      "temperature": 0.7, "top_p": 0.9, "max_tokens": 16, "stream": True,
                      "stream_options": {"include_usage": True}, "stop": ["\n\n", "END"], "seed": 42},
        "chat_parts.json": {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}],
            "max_completion_tokens": 8, "n": 1, "presence_penalty": 0.5, "frequency_penalty": 0,
            "logprobs": False, "response_format": {"type": "text"}, "user": "u1"},
        "completion.json": {"model": "m", "prompt": "Once upon", "max_tokens": 4, "stop": "x",
                            "temperature": 0, "repetition_penalty": 1.1, "top_k": 40, "min_p": 0.05},
        "completion_list.json": {"prompt": ["a"], "echo": False, "best_of": 1, "suffix": None,
                                 "logit_bias": {"50256": -100}, "tools": []},
    }
    for name, r in reqs.items():
        out("openai_request", name, json.dumps(r))


if __name__ == "__main__":
    gguf_seeds()
    safetensors_seeds()
    config_seeds()
    tokenizer_seeds()
    chat_seeds()
    openai_seeds()
