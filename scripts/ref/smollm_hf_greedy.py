#!/usr/bin/env python3
"""Greedy reference generations of SmolLM2-135M-Instruct (converted HF folders) with
transformers + torch on CPU.

Writes tests/fixtures/smollm_hf_greedy.json. Not run in CI. How to run:

    scripts/fetch-test-models.sh
    python3 -m venv ~/.cache/tanto/refvenv
    ~/.cache/tanto/refvenv/bin/pip install torch transformers tokenizers jinja2
    ~/.cache/tanto/refvenv/bin/python scripts/ref/smollm_hf_greedy.py

Same prompts as llama_cpp_greedy.py (chat prompts rendered with the folder's chat
template, add_generation_prompt=True; no BOS added). Greedy (do_sample=False),
max_new_tokens 24, stops at eos id 2. Runs the f32 folder and the bf16 folder
(bf16 weights loaded in bf16, as transformers would by default for that config).
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.environ.get("TANTO_TEST_MODELS", os.path.expanduser("~/.cache/tanto/test-models"))
FOLDERS = {"f32": "smollm2-135m-instruct-f32", "bf16": "smollm2-135m-instruct"}
OUT = os.path.join(ROOT, "tests", "fixtures", "smollm_hf_greedy.json")

MAX_NEW = 24
EOS = 2
PROMPTS = [
    ("haiku", "chat", "Write a haiku about the sea."),
    ("colors", "chat", "List three colors."),
    ("fox", "raw", "The quick brown fox"),
    ("france", "chat", "What is the capital of France?"),
]


def run(folder, dtype):
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()
    cases = []
    for name, kind, text in PROMPTS:
        if kind == "chat":
            prompt = tok.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        else:
            prompt = text
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        inp = torch.tensor([ids])
        with torch.no_grad():
            logits = model(inp).logits[0, -1].float()
            top = torch.topk(logits, 5)
            out = model.generate(
                inp,
                attention_mask=torch.ones_like(inp),
                do_sample=False,
                max_new_tokens=MAX_NEW,
                eos_token_id=EOS,
                pad_token_id=EOS,
            )
        gen = out[0, len(ids):].tolist()
        cases.append(
            {
                "name": name,
                "kind": kind,
                "user_text": text,
                "prompt": prompt,
                "prompt_ids": ids,
                "generated_ids": gen,
                "generated_text": tok.decode([t for t in gen if t != EOS]),
                "stopped_at_eos": bool(gen and gen[-1] == EOS),
                "first_step_top5": {
                    "ids": top.indices.tolist(),
                    "logits": [round(float(x), 4) for x in top.values],
                },
            }
        )
        print(f"{folder} {name}: {cases[-1]['generated_text']!r}")
    return cases


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    runs = {}
    for key, sub in FOLDERS.items():
        folder = os.path.join(MODELS, sub)
        if not os.path.isdir(folder):
            sys.exit(f"{folder} missing: run scripts/fetch-test-models.sh first")
        runs[key] = {
            "folder": sub,
            "dtype": {"f32": "float32", "bf16": "bfloat16"}[key],
            "cases": run(folder, {"f32": torch.float32, "bf16": torch.bfloat16}[key]),
        }
    data = {
        "generator": f"scripts/ref/smollm_hf_greedy.py, transformers {transformers.__version__}, "
        f"torch {torch.__version__} (CPU, 2 threads)",
        "settings": {"greedy": True, "max_new_tokens": MAX_NEW, "stop": "eos id 2, included", "add_bos": False},
        "note": "f32 should be reproduced exactly by an f32 implementation; first-step margins can be "
        "small (see first_step_top5), so bf16 paths should assert on a prefix or on text only.",
        "runs": runs,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
