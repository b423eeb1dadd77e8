#!/usr/bin/env python3
"""Tiny random-weight embedding models in their real Hugging Face layouts, and
sentence-transformers reference vectors for each.

Writes tests/fixtures/embed-tiny/<name>/ (config.json, model.safetensors,
tokenizer files, modules.json, 1_Pooling/, sentence_bert_config.json, …,
reference.json). Read by crates/tanto-engine/tests/embeddings.rs. Not run in
CI; the outputs are committed. How to run:

    python3 -m venv ~/.cache/tanto/ref-venv
    ~/.cache/tanto/ref-venv/bin/pip install -r scripts/ref/embed-requirements.txt
    ~/.cache/tanto/ref-venv/bin/python scripts/ref/make-tiny-embedders.py

Weights come from transformers' own init under a fixed seed (initializer_range
raised so the vectors are not near-constant) and are saved by the base model
class, as real embedding repositories are. Tokenizers are built with the
`tokenizers` library from a fixed vocabulary. Reference vectors are
`SentenceTransformer(folder).encode(texts)` (and `prompt_name="query"` where the
model has prompts).
"""
import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import sentence_transformers
import tokenizers
import torch
import transformers
from safetensors.torch import save_file
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "embed-tiny")

WORDS = ("the a an of to and in is it that for on with as was he she they we you i "
         "cat dog fox sat mat quick brown lazy jumps over hello world model vector search "
         "query document text token embed small tiny large good bad city river paris france "
         "capital what where how why who learn machine language code rust python").split()
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?;:'\"()-éèàüöäßçñ")

TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "a",
    "What is the capital of France?",
    "Paris is the capital of France.",
    "the cat sat on the mat",
    "A tiny model learns a small vector for this text.",
    "Rust code and Python code",
    "café, Müller, señor, straße",
    "unknownwordzz xyzzy",
    "dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog "
    "dog dog dog dog dog dog dog dog dog dog",
    "where is the river? how do we learn the language of the city, and why does the "
    "search model embed every document into one vector",
    "HELLO WORLD",
    "1 2 3 4 5 6 7 8 9 0",
    "good, bad; small: large!",
    "who are you and what do you want",
    "machine language model",
    "the",
    "text token embed text token embed text token embed text token embed text token",
    "it was the best of the city",
]

ST_CFG = {"__version__": {"sentence_transformers": sentence_transformers.__version__,
                          "transformers": transformers.__version__,
                          "pytorch": torch.__version__}}


def versions():
    return {"sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__, "torch": torch.__version__,
            "tokenizers": tokenizers.__version__, "numpy": np.__version__}


def wordpiece(input_names=None):
    vocab = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + CHARS + ["##" + c for c in CHARS]))
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.decoder = decoders.WordPiece()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=64,
        **({"model_input_names": input_names} if input_names else {}))
    return fast, len(vocab)


def unigram():
    pieces = list(dict.fromkeys(["<s>", "<pad>", "</s>", "<unk>"] + ["▁" + w for w in WORDS] + CHARS + ["▁" + c for c in CHARS] + ["▁"]))
    vocab = [(p, 0.0 if i < 4 else -float(i) / 10.0) for i, p in enumerate(pieces)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok.decoder = decoders.Metaspace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", cls_token="<s>", sep_token="</s>", model_max_length=64)
    return fast, len(pieces)


def bytelevel_bpe():
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [" ".join(WORDS)] * 4 + TEXTS + [" ".join(CHARS)]
    tok.train_from_iterator(corpus, trainer=trainer)
    eot = tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>", pair="$A <|endoftext|> $B:1 <|endoftext|>:1",
        special_tokens=[("<|endoftext|>", eot)])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        model_max_length=128, padding_side="left",
        model_input_names=["input_ids", "attention_mask"])
    return fast, tok.get_vocab_size(), eot


def st_files(d, hidden, pooling, normalize=True, dense=None, max_len=24, lower=False,
             prompts=None, include_prompt=True):
    mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if dense is not None:
        mods.append({"idx": len(mods), "name": str(len(mods)), "path": "2_Dense",
                     "type": "sentence_transformers.models.Dense"})
    if normalize:
        # Listed, no folder: exactly like all-MiniLM-L6-v2.
        mods.append({"idx": len(mods), "name": str(len(mods)), "path": f"{len(mods)}_Normalize",
                     "type": "sentence_transformers.models.Normalize"})
    json.dump(mods, open(os.path.join(d, "modules.json"), "w"), indent=2)
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    flags = {k: False for k in ["pooling_mode_cls_token", "pooling_mode_mean_tokens",
                                "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"]}
    for p in pooling:
        flags[p] = True
    json.dump({"word_embedding_dimension": hidden, **flags, "include_prompt": include_prompt},
              open(os.path.join(d, "1_Pooling", "config.json"), "w"), indent=2)
    json.dump({"max_seq_length": max_len, "do_lower_case": lower},
              open(os.path.join(d, "sentence_bert_config.json"), "w"), indent=2)
    cfg = dict(ST_CFG, prompts=prompts or {}, default_prompt_name=None, similarity_fn_name="cosine")
    json.dump(cfg, open(os.path.join(d, "config_sentence_transformers.json"), "w"), indent=2)
    if dense is not None:
        dd = os.path.join(d, "2_Dense")
        os.makedirs(dd, exist_ok=True)
        in_f, out_f = dense
        torch.manual_seed(7)
        lin = torch.nn.Linear(in_f, out_f, bias=True)
        save_file({"linear.weight": lin.weight.detach().contiguous(),
                   "linear.bias": lin.bias.detach().contiguous()},
                  os.path.join(dd, "model.safetensors"))
        json.dump({"in_features": in_f, "out_features": out_f, "bias": True,
                   "activation_function": "torch.nn.modules.activation.Tanh"},
                  open(os.path.join(dd, "config.json"), "w"), indent=2)


def save_model(d, model, tok):
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    model.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)
    # transformers writes a generation_config.json for decoders; embedders ship none.
    gc = os.path.join(d, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)


def reference(d, name, prompt=False):
    m = SentenceTransformer(d, device="cpu")
    emb = m.encode(TEXTS, batch_size=32, convert_to_numpy=True)
    one = np.stack([m.encode([t], convert_to_numpy=True)[0] for t in TEXTS])
    ref = {"model": name, "generator": "scripts/ref/make-tiny-embedders.py", "versions": versions(),
           "texts": TEXTS,
           "token_ids": [m.tokenize([t])["input_ids"][0].tolist() for t in TEXTS],
           "embeddings": [[float(f"{x:.8g}") for x in v] for v in emb.tolist()],
           "batch_size_1_vs_32_max_abs_diff": float(np.abs(emb - one).max())}
    if prompt:
        q = m.encode(TEXTS, prompt_name="query", batch_size=32, convert_to_numpy=True)
        p = m.prompts["query"]
        ref["prompt_name"] = "query"
        ref["query_token_ids"] = [m.tokenize([p + t])["input_ids"][0].tolist() for t in TEXTS]
        ref["query_embeddings"] = [[float(f"{x:.8g}") for x in v] for v in q.tolist()]
    json.dump(ref, open(os.path.join(d, "reference.json"), "w"), indent=1, ensure_ascii=False)
    return float(np.abs(emb).max())


def bert_variant(name, pooling, **kw):
    tok, n = wordpiece()
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64,
                                  max_position_embeddings=64, initializer_range=0.2)
    d = os.path.join(OUT, name)
    save_model(d, transformers.BertModel(cfg, add_pooling_layer=False).eval(), tok)
    st_files(d, 32, pooling, **kw)
    reference(d, name, prompt=bool(kw.get("prompts")))


def main():
    os.makedirs(OUT, exist_ok=True)
    bert_variant("bert-mean", ["pooling_mode_mean_tokens"])
    bert_variant("bert-cls", ["pooling_mode_cls_token"], normalize=False)
    bert_variant("bert-max", ["pooling_mode_max_tokens"])
    bert_variant("bert-mean-sqrt-len", ["pooling_mode_mean_sqrt_len_tokens"], normalize=False)
    bert_variant("bert-weightedmean", ["pooling_mode_weightedmean_tokens"])
    bert_variant("bert-lasttoken", ["pooling_mode_lasttoken"])
    bert_variant("bert-cls-mean", ["pooling_mode_cls_token", "pooling_mode_mean_tokens"])
    bert_variant("bert-dense", ["pooling_mode_mean_tokens"], dense=(32, 16))
    bert_variant("bert-prompt", ["pooling_mode_mean_tokens"], lower=True, include_prompt=False,
                 prompts={"query": "query: ", "document": "passage: "})

    tok, n = unigram()
    torch.manual_seed(1)
    cfg = transformers.XLMRobertaConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=64,
                                        max_position_embeddings=64 + 2, pad_token_id=1,
                                        bos_token_id=0, eos_token_id=2, type_vocab_size=1,
                                        initializer_range=0.2)
    d = os.path.join(OUT, "xlm-roberta-mean")
    save_model(d, transformers.XLMRobertaModel(cfg, add_pooling_layer=False).eval(), tok)
    st_files(d, 32, ["pooling_mode_mean_tokens"])
    reference(d, "xlm-roberta-mean")

    tok, n = wordpiece(["input_ids", "attention_mask"])  # ModernBERT takes no token types
    torch.manual_seed(2)
    cfg = transformers.ModernBertConfig(vocab_size=n, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=3, num_attention_heads=4,
                                        global_attn_every_n_layers=2, local_attention=8,
                                        max_position_embeddings=64, pad_token_id=0,
                                        cls_token_id=2, sep_token_id=3, bos_token_id=2,
                                        eos_token_id=3, initializer_range=0.2,
                                        attn_implementation="eager")
    d = os.path.join(OUT, "modernbert-mean")
    save_model(d, transformers.ModernBertModel(cfg).eval(), tok)
    st_files(d, 32, ["pooling_mode_mean_tokens"], max_len=32)
    reference(d, "modernbert-mean")

    qprompts = {"query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:",
                "document": ""}
    for arch, cls_cfg, cls_model, seed in [
        ("qwen3", transformers.Qwen3Config, transformers.Qwen3Model, 3),
        ("qwen2", transformers.Qwen2Config, transformers.Qwen2Model, 4),
    ]:
        tok, n, eot = bytelevel_bpe()
        torch.manual_seed(seed)
        extra = {"head_dim": 8} if arch == "qwen3" else {}
        cfg = cls_cfg(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True, initializer_range=0.2, bos_token_id=eot,
                      eos_token_id=eot, rope_theta=10000.0, **extra)
        d = os.path.join(OUT, f"{arch}-lasttoken")
        save_model(d, cls_model(cfg).eval(), tok)
        st_files(d, 32, ["pooling_mode_lasttoken"], max_len=48,
                 prompts=qprompts if arch == "qwen3" else None)
        reference(d, f"{arch}-lasttoken", prompt=arch == "qwen3")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
