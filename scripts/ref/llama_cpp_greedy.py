#!/usr/bin/env python3
"""Greedy reference generations of the SmolLM2 Q4_1 GGUF through llama.cpp.

Writes tests/fixtures/llama_cpp_greedy.json. Not run in CI. How to run (see
scripts/ref/README.md for installing the cached llama-cpp-python wheel quickly):

    scripts/fetch-test-models.sh
    python3 -m venv ~/.cache/tanto/llamavenv
    CMAKE_ARGS="-DGGML_NATIVE=OFF" ~/.cache/tanto/llamavenv/bin/pip install llama-cpp-python==0.3.36
    ~/.cache/tanto/llamavenv/bin/python scripts/ref/llama_cpp_greedy.py

Greedy = argmax of the logits at every step (what temperature 0 / top_k 1 /
repeat_penalty 1.0 sample to); n_threads 2, n_ctx 2048, no BOS added. Prompts are
fed as token ids (tokenized by llama.cpp with special=True), chat prompts rendered
with the GGUF's own chat template (jinja2). The ids are cross-checked against
llama-cpp-python's own sampler (Llama.generate with temp 0, top_k 1).
"""
import json
import os
import sys

import jinja2
import llama_cpp
import numpy as np
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.environ.get("TANTO_TEST_MODELS", os.path.expanduser("~/.cache/tanto/test-models"))
GGUF = os.path.join(MODELS, "smollm2-135m-instruct-gguf", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "tests", "fixtures", "llama_cpp_greedy.json")

MAX_NEW = 24
EOS = 2
PROMPTS = [
    ("haiku", "chat", "Write a haiku about the sea."),
    ("colors", "chat", "List three colors."),
    ("fox", "raw", "The quick brown fox"),
    # Informational only: the first-step margin is tiny, llama.cpp picks "L" here
    # whereas the dequantised f32 weights give "The capital of France is Paris."
    ("france", "chat", "What is the capital of France?"),
]


def render_chat(template, user):
    env = jinja2.Environment(loader=jinja2.BaseLoader(), keep_trailing_newline=True)
    return env.from_string(template).render(
        messages=[{"role": "user", "content": user}], add_generation_prompt=True
    )


def greedy(llm, prompt_ids):
    llm.reset()
    llm.eval(prompt_ids)
    out, top5 = [], None
    for step in range(MAX_NEW):
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        if step == 0:
            order = np.argsort(-logits, kind="stable")[:5]
            top5 = {"ids": [int(i) for i in order], "logits": [round(float(logits[i]), 4) for i in order]}
        tok = int(np.argmax(logits))
        out.append(tok)
        if tok == EOS:
            break
        llm.eval([tok])
    return out, top5


def sampler_ids(llm, prompt_ids):
    llm.reset()
    out = []
    for tok in llm.generate(prompt_ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
        out.append(int(tok))
        if tok == EOS or len(out) >= MAX_NEW:
            break
    return out


def main():
    if not os.path.exists(GGUF):
        sys.exit(f"{GGUF} missing: run scripts/fetch-test-models.sh first")
    # logits_all: llama-cpp-python 0.3.x only copies logits into .scores with it
    llm = Llama(model_path=GGUF, n_ctx=2048, n_threads=2, n_threads_batch=2, seed=0,
                logits_all=True, verbose=False)
    template = llm.metadata["tokenizer.chat_template"]
    cases = []
    for name, kind, text in PROMPTS:
        prompt = render_chat(template, text) if kind == "chat" else text
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        gen, top5 = greedy(llm, ids)
        check = sampler_ids(llm, ids)
        if check != gen:
            print(f"warning: {name}: sampler {check} != argmax {gen}", file=sys.stderr)
        body = [t for t in gen if t != EOS]
        cases.append(
            {
                "name": name,
                "kind": kind,
                "user_text": text,
                "prompt": prompt,
                "prompt_ids": ids,
                "generated_ids": gen,
                "generated_text": llm.detokenize(body).decode("utf-8", errors="replace"),
                "stopped_at_eos": bool(gen and gen[-1] == EOS),
                "first_step_top5": top5,
                "sampler_agrees": check == gen,
                "informational_only": name == "france",
            }
        )
        print(f"{name}: {cases[-1]['generated_text']!r}")
    data = {
        "model": "smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf",
        "generator": f"scripts/ref/llama_cpp_greedy.py, llama-cpp-python {llama_cpp.__version__} "
        "(built from sdist, CMAKE_ARGS=-DGGML_NATIVE=OFF)",
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip(),
        "settings": {
            "greedy": "argmax (temperature 0, top_k 1, repeat_penalty 1.0)",
            "n_threads": 2,
            "n_ctx": 2048,
            "max_new_tokens": MAX_NEW,
            "stop": "eos id 2 (<|im_end|>), included in generated_ids",
            "add_bos": False,
        },
        "cases": cases,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
