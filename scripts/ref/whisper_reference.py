#!/usr/bin/env python3
"""Reference fixtures for tanto's Whisper engine, from transformers on the HF
folders that scripts/fetch-test-models.sh converts (scripts/ct2_whisper_to_hf.py).

    ~/.cache/tanto/ref-venv/bin/python scripts/ref/whisper_reference.py [--models DIR] [--out DIR]

Reads  ${TANTO_TEST_MODELS:-~/.cache/tanto/test-models}/{whisper-tiny.en,whisper-tiny.en-f16,whisper-base}
       tests/fixtures/whisper/{fox16k,hello16k}.wav and <models>/audio/long60.wav
Writes tests/fixtures/whisper/mel-ref.safetensors  (WhisperFeatureExtractor log-mel, float32)
       tests/fixtures/whisper/reference.json       (greedy ids/text/segments; see the README)

Greedy everywhere (num_beams=1, do_sample=False). The ids are checked against
the ones recorded in the project's test-model notes before anything is written.
"""
import argparse
import hashlib
import json
import os
import sys
import wave
from importlib.metadata import version

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast
from transformers.utils import logging as hf_logging

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CLIPS = ("fox16k", "hello16k")
MODELS = ("whisper-tiny.en", "whisper-tiny.en-f16", "whisper-base")

# Text ids (no special tokens) as recorded with the same stack on the same clips.
EXPECTED = {
    ("tiny.en", "fox16k"): [383, 2068, 7586, 21831, 4391, 625, 262, 16931, 3290, 13],
    ("tiny.en", "hello16k"): [18435, 11, 616, 1438, 318, 28424, 525, 13, 6288, 318, 257, 4950, 1110, 329,
                              257, 2513, 287, 262, 3952, 13],
    ("base", "fox16k"): [440, 1702, 6292, 21026, 3012, 670, 264, 14847, 3000, 13],
    ("base", "hello16k"): [2425, 11, 452, 1315, 307, 41132, 610, 13, 2692, 307, 257, 2238, 786, 337, 257,
                           1792, 294, 264, 3884, 13],
}

# Frames of the long-form features stored in mel-ref.safetensors (the whole
# [80, ~6200] array would be 2 MB): the start, the second 30 s window's start,
# and the end (where the reflect padding and the frame count show).
LONG_SLICES = {"long60_0": (0, 1000), "long60_3000": (3000, 4000)}
LONG_TAIL = 200


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != 16000:
            sys.exit(f"{path}: want 16 kHz mono 16-bit PCM")
        raw = w.readframes(w.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def r6(x):
    return round(float(x), 6)


def text_ids(seq, eot):
    """Generated text tokens: everything below <|endoftext|>."""
    return [int(t) for t in seq if t < eot]


def short_form(model, tok, feats, eot, **kw):
    """One greedy window without timestamps: full sequence, text ids, text, logits facts."""
    with torch.no_grad():
        out = model.generate(
            feats, num_beams=1, do_sample=False, return_dict_in_generate=True,
            output_scores=True, output_logits=True, **kw,
        )
    seq = [int(t) for t in out.sequences[0]]
    n_gen = len(out.logits)
    prompt = seq[: len(seq) - n_gen]
    first = out.logits[0][0].float()
    top = torch.topk(first, 5)
    # margin of the argmax over the runner-up after Whisper's logits processors
    margins = []
    for s in out.scores:
        v = torch.topk(s[0].float(), 2).values
        margins.append(float(v[0] - v[1]))
    ids = text_ids(seq[len(prompt):], eot)
    return {
        "prompt": prompt,
        "sequence": seq,
        "ids": ids,
        "text": tok.decode(ids),
        "first_step_top5": [[int(i), r6(v)] for v, i in zip(top.values, top.indices)],
        "min_margin": r6(min(margins)),
        "min_margin_step": int(np.argmin(margins)),
    }


def segments_json(segs, tok):
    out = []
    for s in segs:
        toks = [int(t) for t in s["tokens"]]
        out.append({
            "start": r6(s["start"]),
            "end": r6(s["end"]),
            "tokens": toks,
            "text": tok.decode(toks, skip_special_tokens=True),
        })
    return out


def with_timestamps(model, tok, feats, **kw):
    with torch.no_grad():
        out = model.generate(feats, num_beams=1, do_sample=False, return_timestamps=True, return_segments=True, **kw)
    segs = out["segments"][0]
    tokens = [int(t) for t in out["sequences"][0]]
    return {
        # the raw ids of the (single) decoder call: prompt, timestamps, text, <|endoftext|>
        "sequence": [int(t) for t in segs[0]["result"]] if "result" in segs[0] else None,
        "tokens": tokens,  # what generate returns: timestamps + text, no prompt
        "text": tok.decode(tokens, skip_special_tokens=True),
        "text_with_timestamps": tok.decode(tokens, decode_with_timestamps=True),
        "segments": segments_json(segs, tok),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("TANTO_TEST_MODELS",
                                                       os.path.expanduser("~/.cache/tanto/test-models")))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "whisper"))
    ap.add_argument("--allow-mismatch", action="store_true", help="write even if ids differ from EXPECTED")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    torch.manual_seed(0)
    hf_logging.set_verbosity_error()

    clip_dir = os.path.join(ROOT, "tests", "fixtures", "whisper")
    long_path = os.path.join(args.models, "audio", "long60.wav")
    audio = {c: read_wav(os.path.join(clip_dir, c + ".wav")) for c in CLIPS}
    audio["long60"] = read_wav(long_path)
    clip_paths = {c: os.path.join(clip_dir, c + ".wav") for c in CLIPS}
    clip_paths["long60"] = long_path

    fe = WhisperFeatureExtractor.from_pretrained(os.path.join(args.models, "whisper-tiny.en"))
    mel, mel_info = {}, {}
    feats = {}
    for c in CLIPS:
        f = fe(audio[c], sampling_rate=16000, return_tensors="np").input_features[0]
        padded = np.zeros(fe.n_samples, dtype=np.float32)
        padded[: len(audio[c])] = audio[c]
        f_np = fe._np_extract_fbank_features(padded[None], "cpu")[0]
        mel[c.replace("16k", "")] = np.ascontiguousarray(f, dtype=np.float32)
        feats[c] = torch.from_numpy(np.ascontiguousarray(f))[None]
        mel_info[c.replace("16k", "")] = {
            "clip": c + ".wav", "shape": list(f.shape),
            "min": r6(f.min()), "max": r6(f.max()), "mean": r6(f.mean()),
            "max_abs_diff_numpy_path": float(np.abs(f - f_np).max()),
        }
    lf = fe(audio["long60"], sampling_rate=16000, truncation=False, padding="longest",
            return_attention_mask=True, return_tensors="np")
    long_feats = lf.input_features[0]
    n_frames = long_feats.shape[1]
    for name, (a, b) in LONG_SLICES.items():
        mel[name] = np.ascontiguousarray(long_feats[:, a:b], dtype=np.float32)
        mel_info[name] = {"clip": "long60.wav", "frames": [a, b], "shape": list(mel[name].shape)}
    mel["long60_tail"] = np.ascontiguousarray(long_feats[:, n_frames - LONG_TAIL:], dtype=np.float32)
    mel_info["long60_tail"] = {"clip": "long60.wav", "frames": [n_frames - LONG_TAIL, n_frames],
                               "shape": list(mel["long60_tail"].shape)}
    long_info = {
        "frames": n_frames,
        "attention_mask_sum": int(lf.attention_mask.sum()),
        "min": r6(long_feats.min()), "max": r6(long_feats.max()), "mean": r6(long_feats.mean()),
        "note": "truncation=False, padding='longest': one log-mel over the whole clip "
                "(max-8 clamp over all of it), not padded to 30 s",
    }

    ref = {
        "generator": "scripts/ref/whisper_reference.py",
        "versions": {"transformers": version("transformers"), "torch": torch.__version__.split("+")[0],
                     "numpy": np.__version__},
        "decoding": "greedy: num_beams=1, do_sample=False; ids = generated tokens below <|endoftext|>",
        "clips": {
            c: {"file": os.path.basename(p), "sha256": sha256(p), "samples": int(len(audio[c])),
                "seconds": r6(len(audio[c]) / 16000)}
            for c, p in clip_paths.items()
        },
        "mel": {
            "file": "mel-ref.safetensors",
            "extractor": "WhisperFeatureExtractor (80 mels, n_fft 400, hop 160), torch STFT path, float32; "
                         "input = int16 / 32768",
            "tensors": mel_info,
            "long60": long_info,
        },
        "models": {},
    }

    mismatches = []
    for m in MODELS:
        path = os.path.join(args.models, m)
        tok = WhisperTokenizerFast.from_pretrained(path)
        model = WhisperForConditionalGeneration.from_pretrained(path, torch_dtype="auto").eval()
        dtype = model.dtype
        eot = model.generation_config.eos_token_id
        multilingual = bool(getattr(model.generation_config, "is_multilingual", False))
        kind = "base" if multilingual else "tiny.en"
        entry = {
            "folder": m,
            "model_safetensors_sha256": sha256(os.path.join(path, "model.safetensors")),
            "dtype": str(dtype).replace("torch.", ""),
            "compute_dtype": str(dtype).replace("torch.", ""),
            "multilingual": multilingual,
            "clips": {},
        }
        print(f"{m} ({entry['dtype']})", file=sys.stderr)
        for c in CLIPS:
            x = feats[c].to(dtype)
            runs = {}
            lang = {"language": "en"} if multilingual else {}
            runs["transcribe"] = short_form(model, tok, x, eot, **lang)
            if multilingual:
                auto = short_form(model, tok, x, eot)
                with torch.no_grad():
                    lang_id = int(model.detect_language(x)[0])
                inv = {v: k for k, v in model.generation_config.lang_to_id.items()}
                auto["detected_language"] = inv[lang_id].strip("<|>")
                auto["detected_language_token"] = lang_id
                runs["transcribe_auto"] = auto
            runs["timestamps"] = with_timestamps(model, tok, x, **lang)
            if multilingual and c == "hello16k":
                runs["translate"] = short_form(model, tok, x, eot, task="translate")
            for r, v in runs.items():
                print(f"  {c} {r}: {v['text']!r}", file=sys.stderr)
            want = EXPECTED[(kind, c)]
            for r in ("transcribe", "transcribe_auto"):
                if r in runs and runs[r]["ids"] != want:
                    mismatches.append(f"{m} {c} {r}: {runs[r]['ids']} != {want}")
            ts_text = [t for t in runs["timestamps"]["tokens"] if t < eot]
            if ts_text != want:
                print(f"  note: {c} with timestamps gives other text ids: {ts_text}", file=sys.stderr)
            entry["clips"][c] = runs
        ref["models"][m] = entry

        if m == "whisper-tiny.en":
            x = torch.from_numpy(np.ascontiguousarray(long_feats))[None].to(dtype)
            mask = torch.from_numpy(lf.attention_mask)
            with torch.no_grad():
                out = model.generate(x, attention_mask=mask, num_beams=1, do_sample=False,
                                     return_timestamps=True, return_segments=True)
            tokens = [int(t) for t in out["sequences"][0]]
            ref["long_form"] = {
                "model": m,
                "clip": "long60",
                "options": "feature extractor truncation=False, padding='longest', return_attention_mask=True; "
                           "generate(attention_mask=..., return_timestamps=True, num_beams=1, do_sample=False); "
                           "no temperature fallback, condition_on_prev_tokens=False",
                "tokens": tokens,
                "text": tok.decode(tokens, skip_special_tokens=True),
                "segments": segments_json(out["segments"][0], tok),
            }
            print(f"  long60: {len(ref['long_form']['segments'])} segments: {ref['long_form']['text']!r}",
                  file=sys.stderr)
        del model

    if mismatches:
        print("ids differ from the recorded reference:\n  " + "\n  ".join(mismatches), file=sys.stderr)
        if not args.allow_mismatch:
            sys.exit(1)

    os.makedirs(args.out, exist_ok=True)
    save_file(mel, os.path.join(args.out, "mel-ref.safetensors"),
              metadata={"generator": "scripts/ref/whisper_reference.py",
                        "transformers": ref["versions"]["transformers"],
                        "long60_frames": str(n_frames)})
    with open(os.path.join(args.out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}/mel-ref.safetensors and reference.json", file=sys.stderr)


if __name__ == "__main__":
    main()
