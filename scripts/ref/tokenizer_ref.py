#!/usr/bin/env python3
"""Reference token ids for the converted SmolLM2 tokenizer.json.

Writes tests/fixtures/tokenizer_ref.json. Not run in CI. How to run:

    scripts/fetch-test-models.sh
    python3 -m venv ~/.cache/tanto/refvenv
    ~/.cache/tanto/refvenv/bin/pip install tokenizers
    ~/.cache/tanto/refvenv/bin/python scripts/ref/tokenizer_ref.py

Ids are from the Hugging Face `tokenizers` package with add_special_tokens=False
(the model adds no BOS), so special tokens written in the text are still matched
as added tokens. `decoded` is decode(ids, skip_special_tokens=False).
"""
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.environ.get("TANTO_TEST_MODELS", os.path.expanduser("~/.cache/tanto/test-models"))
TOKENIZER = os.path.join(MODELS, "smollm2-135m-instruct-f32", "tokenizer.json")
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer_ref.json")

TEXTS = [
    "",
    "Hello world",
    "Hello, world!",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "12345 and 3.14159",
    "Call 555-0100 before 2024-06-01, 1,000,000 times.",
    "multiple   spaces    here",
    "tab\tseparated\tvalues",
    "line one\nline two\n\nline four",
    "\n\n\n",
    " \t \n mixed whitespace \r\n",
    "emoji 😀🎉 and 👍🏽",
    "café naïve Ünïcödé",
    "日本語のテキストと中文文本",
    "한국어 텍스트",
    "don't I'll we've they're it's",
    "DON'T SHOUT",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "<|endoftext|><jupyter_code>print('x')<empty_output>",
    "def add(a, b):\n    return a + b\n",
    "https://example.com/path?query=1&x=2",
    "The capital of France is Paris.",
    "Ω≈ç√∫ ±×÷ «quotes» „German“",
]


def main():
    if not os.path.exists(TOKENIZER):
        sys.exit(f"{TOKENIZER} missing: run scripts/fetch-test-models.sh first")
    tok = Tokenizer.from_file(TOKENIZER)
    cases = []
    for text in TEXTS:
        enc = tok.encode(text, add_special_tokens=False)
        cases.append(
            {
                "text": text,
                "ids": enc.ids,
                "tokens": enc.tokens,
                "decoded": tok.decode(enc.ids, skip_special_tokens=False),
            }
        )
    data = {
        "source": "smollm2-135m-instruct-f32/tokenizer.json (converted by scripts/gguf_to_hf.py)",
        "generator": f"scripts/ref/tokenizer_ref.py, tokenizers {tokenizers.__version__}",
        "add_special_tokens": False,
        "cases": cases,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
