#!/usr/bin/env python3
"""Embedding throughput: tanto vs sentence-transformers, side by side, one run.

    scripts/bench-embed.sh            # the wrapper: builds tanto, sets up the venv

1,000 sentences of 10-200 words (deterministic), all-MiniLM-L6-v2, 2 threads:
  * sentence-transformers `encode(batch_size=32)` on CPU torch (`torch.set_num_threads(2)`);
  * tanto's engine (`bench_embed`: probe -> policy -> load, then embed all);
  * `tanto serve` `/v1/embeddings` with 4 concurrent clients (32 sentences a request),
    and the server's peak RSS (VmHWM).
Both sides embed the same texts in the same run; the ratio is what counts.
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MODEL = sys.argv[1]
TANTO = sys.argv[2]
BENCH = sys.argv[3]
THREADS = int(os.environ.get("THREADS", "2"))
RUNS = int(os.environ.get("RUNS", "2"))
N = int(os.environ.get("N", "1000"))

WORDS = ("time person year way day thing man world life hand part child eye woman place work "
         "week case point government company number group problem fact river mountain engine "
         "model vector search query document language memory cache server client token batch "
         "quickly slowly bright dark ancient modern small large green blue open closed "
         "run walk build read write embed serve measure compare improve learn teach").split()


def sentences():
    rng = random.Random(1234)
    out = []
    for _ in range(N):
        n = rng.randint(10, 200)
        s = " ".join(rng.choice(WORDS) for _ in range(n))
        out.append(s[0].upper() + s[1:] + ".")
    return out


def cpu_info():
    model, flags = "?", ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                fl = line.split(":", 1)[1].split()
                flags = " ".join(x for x in fl if x.startswith(("avx", "fma", "f16c", "amx")))
    return model, flags


def bench_st(texts):
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(THREADS)
    m = SentenceTransformer(MODEL, device="cpu")
    m.encode(texts[:32], batch_size=32)
    best = 1e9
    for _ in range(RUNS):
        t = time.perf_counter()
        v = m.encode(texts, batch_size=32)
        best = min(best, time.perf_counter() - t)
    assert len(v) == len(texts)
    import sentence_transformers
    return best, f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}"


def bench_tanto(path):
    out = subprocess.run([BENCH, MODEL, path, "--threads", str(THREADS), "--runs", str(RUNS), "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_server(texts, clients=4, per_request=32):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([TANTO, "serve", "--model", MODEL, "--allow-paths", "--port", str(port),
                             "--threads", str(THREADS)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        chunks = [texts[i:i + per_request] for i in range(0, len(texts), per_request)]

        def post(chunk):
            req = urllib.request.Request(base + "/v1/embeddings",
                                         data=json.dumps({"model": MODEL, "input": chunk,
                                                          "encoding_format": "base64"}).encode(),
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as r:
                body = json.loads(r.read())
                assert len(body["data"]) == len(chunk)

        post(chunks[0])  # warm
        lock = threading.Lock()
        todo = list(chunks)

        def worker():
            while True:
                with lock:
                    if not todo:
                        return
                    c = todo.pop()
                post(c)

        t = time.perf_counter()
        ts = [threading.Thread(target=worker) for _ in range(clients)]
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        secs = time.perf_counter() - t
        rss = 0
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM"):
                    rss = int(line.split()[1]) // 1024
        return secs, rss
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    texts = sentences()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts) + "\n")
        path = f.name
    cpu, flags = cpu_info()
    st_s, st_ver = bench_st(texts)
    t = bench_tanto(path)
    srv_s, rss = bench_server(texts)
    print(f"CPU: {cpu} ({os.cpu_count()} cores; {flags}); threads {THREADS}; {N} sentences, "
          f"{t['tokens']} tokens after truncation; best of {RUNS}")
    print(f"{'engine':<44} {'seconds':>8} {'sent/s':>8} {'vs ST':>6}")
    rows = [
        (st_ver + " encode(bs=32)", st_s),
        ("tanto engine (" + t["backend"] + ")", t["seconds"]),
        ("tanto serve /v1/embeddings, 4 clients x 32", srv_s),
    ]
    for name, s in rows:
        print(f"{name:<44} {s:8.2f} {N / s:8.1f} {st_s / s:5.2f}x")
    print(f"tanto serve peak RSS: {rss} MiB")
    os.unlink(path)


if __name__ == "__main__":
    main()
