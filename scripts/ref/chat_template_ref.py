#!/usr/bin/env python3
"""Reference chat-template renderings for SmolLM2 (ChatML with default system prompt).

Writes tests/fixtures/chat_template_ref.json. Not run in CI. How to run:

    scripts/fetch-test-models.sh
    python3 -m venv ~/.cache/tanto/refvenv
    ~/.cache/tanto/refvenv/bin/pip install transformers jinja2 tokenizers   # torch not needed
    ~/.cache/tanto/refvenv/bin/python scripts/ref/chat_template_ref.py

Uses transformers' AutoTokenizer on the converted f32 folder and
apply_chat_template(messages, tokenize=False, add_generation_prompt=flag).
"""
import json
import os
import sys

import transformers
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.environ.get("TANTO_TEST_MODELS", os.path.expanduser("~/.cache/tanto/test-models"))
MODEL_DIR = os.path.join(MODELS, "smollm2-135m-instruct-f32")
OUT = os.path.join(ROOT, "tests", "fixtures", "chat_template_ref.json")

SYSTEM = {"role": "system", "content": "You are a terse assistant. Answer in one line."}
CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "What is the capital of France?"}],
    "system_user": [SYSTEM, {"role": "user", "content": "Name a prime number."}],
    "multi_turn": [
        SYSTEM,
        {"role": "user", "content": "Name a prime number."},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": "And an even one?"},
    ],
    "user_assistant_user_no_system": [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke.\nKeep it short."},
    ],
    "unicode_content": [{"role": "user", "content": "Traduis « café » en 日本語 😀"}],
}


def main():
    if not os.path.isdir(MODEL_DIR):
        sys.exit(f"{MODEL_DIR} missing: run scripts/fetch-test-models.sh first")
    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    cases = []
    for name, messages in CONVERSATIONS.items():
        for flag in (True, False):
            rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=flag)
            cases.append(
                {"name": name, "add_generation_prompt": flag, "messages": messages, "rendered": rendered}
            )
    single = cases[0]
    assert single["name"] == "single_user" and single["add_generation_prompt"]
    ids = tok(single["rendered"], add_special_tokens=False)["input_ids"]
    data = {
        "source": "smollm2-135m-instruct-f32/tokenizer_config.json chat_template",
        "generator": f"scripts/ref/chat_template_ref.py, transformers {transformers.__version__}",
        "chat_template": tok.chat_template,
        "cases": cases,
        "single_user_prompt_ids": ids,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT} ({len(cases)} cases, single-user prompt {len(ids)} ids)")


if __name__ == "__main__":
    main()
