#!/usr/bin/env python3
"""Tiny random-weight vision-language models in their real Hugging Face layouts,
test images, and transformers' reference outputs for each.

Writes tests/fixtures/vlm-tiny/:
  images/         square.png (64x64), exif.jpg (300x200, EXIF orientation 6,
                  GPS, DateTimeOriginal, camera model), big.jpg (2048x1536,
                  for the preprocessing benchmark only)
  idefics3/       an Idefics3ForConditionalGeneration (SmolVLM layout: SigLIP
                  vision tower, pixel-shuffle connector, llama text model) with
                  config.json, model.safetensors, tokenizer files,
                  preprocessor_config.json, processor_config.json, chat template
  idefics3-reference.json       per case: rendered prompt, input ids, rows/cols,
                  pixel_values shape + sha256 + samples, first-step logits,
                  16 greedy ids (EOS ignored)
  idefics3-pixel_values.safetensors   the full pixel_values of each case
  smolvlm-real-processor.json   sha256 of each tile's pixel_values under
                  SmolVLM-256M's own processor sizes (longest_edge 2048, tiles of 512)

Read by crates/tanto-engine/tests/vision.rs. Not run in CI; the outputs are
committed. How to run:

    python3 -m venv ~/.cache/tanto/vlm-venv
    ~/.cache/tanto/vlm-venv/bin/pip install -r scripts/ref/vlm-requirements.txt
    ~/.cache/tanto/vlm-venv/bin/python scripts/ref/make-tiny-vlm.py

Images are loaded with transformers.image_utils.load_image (EXIF transpose,
RGB), exactly as a user of transformers would; the processor is the slow
(PIL) Idefics3 processor. Weights come from transformers' own init under a fixed
seed with initializer_range raised so that logits are not near-uniform.
"""
import hashlib
import io
import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import PIL
import tokenizers
import torch
import transformers
from PIL import Image
from safetensors.numpy import save_file as save_np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (Idefics3Config, Idefics3ForConditionalGeneration,
                          Idefics3ImageProcessor, Idefics3Processor, PreTrainedTokenizerFast)
from transformers.image_utils import load_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "vlm-tiny")
IMG = os.path.join(OUT, "images")

# SmolVLM's chat template (HuggingFaceTB/SmolVLM-256M-Instruct chat_template.json).
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

WORDS = ("describe the image what is in this picture a an of to and cat dog red blue green "
         "sky tree house car person photo colour color left right top bottom small big two "
         "images compare first second which one shows more answer question user assistant").split()


def versions():
    return {"transformers": transformers.__version__, "torch": torch.__version__,
            "tokenizers": tokenizers.__version__, "pillow": PIL.__version__,
            "numpy": np.__version__}


def write_images():
    os.makedirs(IMG, exist_ok=True)
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:64, 0:64]
    sq = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.int32)
    sq = np.clip(sq + rng.integers(-20, 21, sq.shape), 0, 255).astype(np.uint8)
    sq[20:40, 24:44] = [250, 30, 30]  # a red square
    Image.fromarray(sq, "RGB").save(os.path.join(IMG, "square.png"))

    h, w = 200, 300
    y, x = np.mgrid[0:h, 0:w]
    im = np.stack([(x * 255) // w, (y * 255) // h, 128 + 0 * x], axis=-1).astype(np.int32)
    im = np.clip(im + rng.integers(-10, 11, im.shape), 0, 255).astype(np.uint8)
    im[50:120, 30:100] = [20, 20, 220]
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    exif[0x010F] = "TantoCam"  # Make
    exif[0x0110] = "TC-1"  # Model
    exif[0x8769] = {0x9003: "2024:05:01 12:34:56"}  # DateTimeOriginal
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.64), 3: "E", 4: (2.0, 17.0, 40.2)}
    Image.fromarray(im, "RGB").save(os.path.join(IMG, "exif.jpg"), quality=90, exif=exif)

    h, w = 1536, 2048
    y, x = np.mgrid[0:h, 0:w]
    big = np.stack([(x * 255) // w, (y * 255) // h, ((x ^ y) & 255)], axis=-1).astype(np.uint8)
    Image.fromarray(big, "RGB").save(os.path.join(IMG, "big.jpg"), quality=85)


def tokenizer():
    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>",
                "<fake_token_around_image>", "<image>", "<global-img>"]
    specials += [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=420, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [" ".join(WORDS)] * 4 + ["User: Describe the image.", "Assistant: a red square",
                                      "Compare the two images. Which one is blue?"]
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
        unk_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=8192,
        additional_special_tokens=specials[3:])
    return fast


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    write_images()
    tok = tokenizer()

    d = os.path.join(OUT, "idefics3")
    os.makedirs(d)
    # Tiny sizes for everything; the code paths (upscale, tiling, global image,
    # row/col tokens, pixel shuffle) are SmolVLM's.
    ip = Idefics3ImageProcessor(
        do_convert_rgb=True, do_resize=True, size={"longest_edge": 128},
        resample=PIL.Image.Resampling.LANCZOS, do_image_splitting=True,
        max_image_size={"longest_edge": 64}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], do_pad=True)
    scale = 2
    patch = 8
    seq_len = (64 // patch) ** 2 // scale ** 2  # 16 tokens per tile
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=seq_len,
                             chat_template=SMOLVLM_TEMPLATE)
    proc.save_pretrained(d)

    vocab = len(tok)
    cfg = Idefics3Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "num_channels": 3, "image_size": 64,
                       "patch_size": patch, "hidden_act": "gelu_pytorch_tanh",
                       "layer_norm_eps": 1e-6, "initializer_range": 0.2},
        text_config={"model_type": "llama", "vocab_size": vocab, "hidden_size": 64,
                     "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "max_position_embeddings": 2048,
                     "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": False,
                     "initializer_range": 0.2, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id},
        scale_factor=scale, image_token_id=tok.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False, pad_token_id=tok.pad_token_id)
    cfg.initializer_range = 0.2
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # non-trivial norms and biases
        for n, p in model.named_parameters():
            if n.endswith("bias") or "norm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(d, safe_serialization=True)

    cases = [
        ("square_png", ["square.png"], "Describe the image."),
        ("exif_jpeg", ["exif.jpg"], "What is in this picture?"),
        ("two_images", ["square.png", "exif.jpg"], "Compare the two images."),
    ]
    ref = {"versions": versions(), "image_seq_len": seq_len, "cases": {}}
    tensors = {}
    for name, files, question in cases:
        images = [load_image(os.path.join(IMG, f)) for f in files]
        content = [{"type": "image"} for _ in files] + [{"type": "text", "text": question}]
        messages = [{"role": "user", "content": content}]
        text = proc.apply_chat_template(messages, add_generation_prompt=True)
        enc = proc(text=text, images=[images], return_tensors="pt")
        rc = proc.image_processor(images=[images], return_tensors="np", return_row_col_info=True)
        pv = enc["pixel_values"][0].numpy().astype(np.float32)
        tensors[name] = pv
        ids = enc["input_ids"][0].tolist()
        with torch.no_grad():
            out = model(input_ids=enc["input_ids"], pixel_values=enc["pixel_values"],
                        pixel_attention_mask=enc["pixel_attention_mask"])
            first = out.logits[0, -1].float().numpy()
            greedy = []
            cur = enc["input_ids"]
            past = out.past_key_values
            nxt = int(first.argmax())
            for _ in range(16):
                greedy.append(nxt)
                cur = torch.tensor([[nxt]])
                o = model(input_ids=cur, past_key_values=past, use_cache=True)
                past = o.past_key_values
                nxt = int(o.logits[0, -1].argmax())
        flat = pv.reshape(-1)
        idx = list(range(0, flat.size, 997))
        ref["cases"][name] = {
            "images": files, "question": question, "rendered": text, "input_ids": ids,
            "rows": rc["rows"][0], "cols": rc["cols"][0],
            "pixel_values_shape": list(pv.shape), "pixel_values_sha256": sha(pv),
            "pixel_values_samples": {"index": idx, "value": [float(flat[i]) for i in idx]},
            "first_logits": [float(v) for v in first], "greedy_ids": greedy,
        }
    save_np(tensors, os.path.join(OUT, "idefics3-pixel_values.safetensors"))
    with open(os.path.join(OUT, "idefics3-reference.json"), "w") as f:
        json.dump(ref, f, indent=1)

    # SmolVLM-256M's own processor sizes on the test images: one hash per tile.
    real = Idefics3ImageProcessor(
        size={"longest_edge": 2048}, max_image_size={"longest_edge": 512},
        resample=PIL.Image.Resampling.LANCZOS, do_image_splitting=True)
    rec = {"versions": versions(), "images": {}}
    for f in ["square.png", "exif.jpg"]:
        enc = real(images=[[load_image(os.path.join(IMG, f))]], return_tensors="np",
                   return_row_col_info=True)
        pv = enc["pixel_values"][0]
        rec["images"][f] = {"rows": enc["rows"][0][0], "cols": enc["cols"][0][0],
                            "shape": list(pv.shape), "tile_sha256": [sha(t) for t in pv]}
    with open(os.path.join(OUT, "smolvlm-real-processor.json"), "w") as f:
        json.dump(rec, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
