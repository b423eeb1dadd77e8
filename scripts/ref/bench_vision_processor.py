#!/usr/bin/env python3
"""transformers' Idefics3 image processor (the slow, Pillow one whose output
tanto matches bit for bit) on one image with SmolVLM-256M's sizes: median
milliseconds of load_image (decode + EXIF transpose) and of the processor.

    python scripts/ref/bench_vision_processor.py IMAGE [RUNS]
"""
import statistics
import sys
import time

import PIL
import transformers
from transformers import Idefics3ImageProcessor
from transformers.image_utils import load_image


def median_ms(f, runs):
    f()
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        f()
        t.append((time.perf_counter() - s) * 1e3)
    return statistics.median(t)


def main():
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    proc = Idefics3ImageProcessor(size={"longest_edge": 2048}, max_image_size={"longest_edge": 512},
                                  resample=PIL.Image.Resampling.LANCZOS, do_image_splitting=True)
    img = load_image(path)
    t_load = median_ms(lambda: load_image(path), runs)
    t_proc = median_ms(lambda: proc(images=[[img]], return_tensors="np"), runs)
    print(f"transformers {transformers.__version__}, Pillow {PIL.__version__}")
    print(f"decode_ms {t_load:.1f}")
    print(f"process_ms {t_proc:.1f}")
    print(f"total_ms {t_load + t_proc:.1f}")


if __name__ == "__main__":
    main()
