"""tanto vs faster-whisper on the same CTranslate2 folders and clips, side by side.

Each run is its own process (so peak RSS is per run, from wait4). Both sides:
2 threads, greedy (beam 1), the temperature-fallback ladder, conditioned on
previous text, segment timestamps, no VAD. faster-whisper computes in float32
(`compute_type="float32"`); tanto dequantizes the float16 weights to f32 at
load. The time reported is the transcription alone (model load excluded, and
printed separately); the table gives the median of RUNS runs.

usage: whisper_bench.py TANTO_BIN MODELS_DIR CLIP...
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import wave

THREADS = int(os.environ.get("THREADS", "2"))
RUNS = int(os.environ.get("RUNS", "3"))

FW_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from faster_whisper import WhisperModel
m = WhisperModel(sys.argv[1], device="cpu", compute_type="float32", cpu_threads=int(sys.argv[3]))
t1 = time.perf_counter()
segs, info = m.transcribe(sys.argv[2], beam_size=1, best_of=1, vad_filter=False,
                          condition_on_previous_text=True, word_timestamps=False)
text = "".join(s.text for s in segs).strip()
t2 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "transcribe_s": t2 - t1, "text": text}))
"""


def run(cmd: list[str]) -> tuple[dict, float]:
    """(the JSON the child printed, its peak RSS in MiB)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed: {err.decode(errors='replace')[-2000:]}")
    return json.loads(out), ru.ru_maxrss / 1024.0


def tanto(bin_: str, model: str, clip: str) -> tuple[float, float, float, str]:
    v, rss = run([bin_, "run", model, "--audio", clip, "--threads", str(THREADS), "--json"])
    d = v["data"]
    return d["timings"]["total_s"], d["timings"]["load_s"], rss, d["text"]


def faster_whisper(model: str, clip: str) -> tuple[float, float, float, str]:
    v, rss = run([sys.executable, "-c", FW_CHILD, model, clip, str(THREADS)])
    return v["transcribe_s"], v["load_s"], rss, v["text"]


def seconds(clip: str) -> float:
    with wave.open(clip) as w:
        return w.getnframes() / w.getframerate()


def cpu() -> str:
    model, flags = platform.processor() or "?", ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                fl = line.split(":", 1)[1].split()
                keep = [f for f in fl if f.startswith(("avx", "fma", "f16c", "amx"))]
                flags = " ".join(sorted(set(keep)))
                break
    except OSError:
        pass
    return f"{model}; {os.cpu_count()} cores; {flags}"


def main() -> None:
    bin_, models, clips = sys.argv[1], sys.argv[2], sys.argv[3:]
    print(f"CPU: {cpu()}")
    print(f"threads {THREADS}, median of {RUNS} runs, transcription time only (load excluded)\n")
    hdr = f"{'model':<24} {'clip':<12} {'audio s':>7} {'tanto s':>8} {'fw s':>8} {'tanto/fw':>9} {'RTF tanto':>10} {'RTF fw':>8} {'RSS tanto':>10} {'RSS fw':>8} {'load t/fw s':>12}  same text"
    print(hdr)
    print("-" * len(hdr))
    for name in ("faster-whisper-tiny.en", "faster-whisper-base"):
        model = os.path.join(models, name)
        if not os.path.isdir(model):
            print(f"{name}: missing, skipped")
            continue
        for clip in clips:
            # Interleave the two sides so drift in the machine hits both.
            t, f = [], []
            for _ in range(RUNS):
                t.append(tanto(bin_, model, clip))
                f.append(faster_whisper(model, clip))
            ts = statistics.median(x[0] for x in t)
            fs = statistics.median(x[0] for x in f)
            dur = seconds(clip)
            same = "yes" if t[0][3].strip() == f[0][3].strip() else "NO"
            print(
                f"{name:<24} {os.path.basename(clip):<12} {dur:7.1f} {ts:8.2f} {fs:8.2f} {ts / fs:8.2f}x"
                f" {dur / ts:9.1f}x {dur / fs:7.1f}x {max(x[2] for x in t):8.0f}MB {max(x[2] for x in f):6.0f}MB"
                f" {statistics.median(x[1] for x in t):5.2f}/{statistics.median(x[1] for x in f):<5.2f}  {same}"
            )
            if same == "NO":
                print(f"    tanto: {t[0][3]!r}\n    fw:    {f[0][3]!r}")


if __name__ == "__main__":
    main()
