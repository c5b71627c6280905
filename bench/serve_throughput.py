"""Our server against ``transformers serve``: many clients, image+text requests, one run.

Launch (from the repo root)::

    python bench/serve_throughput.py                    # nano and the wide tiny Gemma 3
    python bench/serve_throughput.py --models nano --clients 16 --rounds 2

What it does, per model:

1. Starts ``sealion-vl serve`` (continuous batching, vision cache) and ``transformers serve``
   (5.23, the model preloaded; it generates one vision request at a time) on loopback ports,
   each as its own process with the same checkpoint folder, CPU, all cores. Each server runs
   alone while it is measured (the other is started only afterwards).
2. ``--clients`` client threads (the official ``openai`` client) each send ``--rounds``
   requests back to back: one synthetic image as a base64 data URL + a question, greedy
   (temperature 0), ``max_tokens`` drawn from 32..128 (seeded, the same for both servers),
   streamed, so the time to the first content chunk is measured at the client.
3. Prints output tokens/s (completion tokens from each reply's usage / wall time of the whole
   run), p50 and p95 latency and p95 time to first token, and the ratio.
4. Second turn about the same image on our server, with and without the vision cache
   (``--vision-cache-mb 0``), median of ``--turns``: latency of a 1-token second turn.

Both servers decode greedily with the same checkpoint and template, so replies are the same
tokens; the script checks the two token totals and says so if they differ.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine_concurrency import CACHE, images, wide_checkpoint  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], url: str, log: Path, timeout: float = 300) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited early; see {log}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{' '.join(cmd)} did not come up within {timeout:.0f} s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def data_url(path: str) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def one(client, model: str, pic: str, question: str, max_tokens: int) -> tuple:
    t0 = time.perf_counter()
    first, tokens = None, 0
    stream = client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": pic}},
                    {"type": "text", "text": question},
                ],
            }
        ],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter()
        if chunk.choices and chunk.choices[0].delta.content:
            chunks += 1
        if getattr(chunk, "usage", None):
            tokens = chunk.usage.completion_tokens
    end = time.perf_counter()
    return t0, first or end, end, tokens or chunks


def run_clients(base: str, model: str, jobs: list[list[tuple]], key: str | None) -> dict:
    from openai import OpenAI

    out: list = []
    lock = threading.Lock()

    def client(my_jobs):
        c = OpenAI(base_url=base, api_key=key or "none", timeout=600, max_retries=0)
        for pic, q, n in my_jobs:
            r = one(c, model, pic, q, n)
            with lock:
                out.append(r)

    threads = [threading.Thread(target=client, args=(j,)) for j in jobs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(e - s for s, _, e, _ in out)
    ttft = sorted(f - s for s, f, _, _ in out)
    tokens = sum(o[3] for o in out)
    return {
        "tok_s": tokens / wall,
        "tokens": tokens,
        "p50": statistics.median(lat),
        "p95": lat[int(0.95 * (len(lat) - 1))],
        "ttft_p95": ttft[int(0.95 * (len(ttft) - 1))],
    }


def models_id(base: str) -> str:
    return httpx.get(base + "/models", timeout=10).json()["data"][0]["id"]


def second_turn(base: str, model: str, pic: str, turns: int) -> float:
    from openai import OpenAI

    c = OpenAI(base_url=base, api_key="none", timeout=120, max_retries=0)
    times = []
    for i in range(turns):
        first = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": pic}},
                    {"type": "text", "text": f"What is in this picture? ({i})"},
                ],
            }
        ]
        c.chat.completions.create(model=model, messages=first, max_tokens=1, temperature=0)
        convo = first + [
            {"role": "assistant", "content": "A picture."},
            {"role": "user", "content": "And what colour is it?"},
        ]
        t = time.perf_counter()
        c.chat.completions.create(model=model, messages=convo, max_tokens=1, temperature=0)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_model(name: str, source: str, args) -> None:
    pics = [data_url(p) for p in images(4, CACHE / "bench-images")]
    rng = random.Random(args.seed)
    jobs = [
        [
            (pics[(c + r) % len(pics)], f"Describe picture {c}-{r}.", rng.randint(32, 128))
            for r in range(args.rounds)
        ]
        for c in range(args.clients)
    ]
    logs = CACHE / "serve-logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = {}
    port = free_port()
    ours = start(
        [sys.executable, "-m", "sealion_vl.cli", "serve", "--model", source, "--port", str(port)]
        + ["--max-queue", "512"],
        f"http://127.0.0.1:{port}/health",
        logs / f"ours-{name}.log",
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        mid = models_id(base)
        run_clients(base, mid, [[jobs[0][0]]], None)  # warm-up
        results["sealion-vl serve"] = run_clients(base, mid, jobs, None)
        cached = second_turn(base, mid, pics[1], args.turns)
    finally:
        stop(ours)
    port = free_port()
    nocache = start(
        [sys.executable, "-m", "sealion_vl.cli", "serve", "--model", source, "--port", str(port)]
        + ["--vision-cache-mb", "0"],
        f"http://127.0.0.1:{port}/health",
        logs / f"ours-nocache-{name}.log",
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        uncached = second_turn(base, models_id(base), pics[1], args.turns)
    finally:
        stop(nocache)
    port = free_port()
    peer = start(
        ["transformers", "serve", source, "--host", "127.0.0.1", "--port", str(port)]
        + ["--device", "cpu"],
        f"http://127.0.0.1:{port}/health",
        logs / f"transformers-{name}.log",
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        run_clients(base, source, [[jobs[0][0]]], None)  # warm-up (model preloaded)
        results["transformers serve"] = run_clients(base, source, jobs, None)
    finally:
        stop(peer)
    n = args.clients * args.rounds
    print(f"\n## {name}: {args.clients} clients x {args.rounds} requests ({n}), image+text")
    print(f"{'server':20} {'tokens':>7} {'tok/s':>8} {'p50 s':>7} {'p95 s':>7} {'p95 TTFT s':>11}")
    for k, v in results.items():
        print(
            f"{k:20} {v['tokens']:7d} {v['tok_s']:8.1f} {v['p50']:7.2f} {v['p95']:7.2f} "
            f"{v['ttft_p95']:11.3f}"
        )
    a, b = results["sealion-vl serve"], results["transformers serve"]
    if a["tokens"] != b["tokens"]:
        print(f"note: token totals differ ({a['tokens']} vs {b['tokens']}); tok/s still compares")
    print(f"tok/s ratio: {a['tok_s'] / b['tok_s']:.2f}x")
    print(
        f"second turn about the same image: cache {cached * 1000:.1f} ms, no cache "
        f"{uncached * 1000:.1f} ms, ratio {cached / uncached:.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="nano,wide", help="comma list of nano, wide, or folders")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2, help="requests per client, back to back")
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for name in args.models.split(","):
        if name == "nano":
            from sealion_vl.runtime.load import resolve

            source = resolve("nano")[0]
        elif name == "wide":
            source = str(wide_checkpoint())
        else:
            source = name
        bench_model(name, source, args)


if __name__ == "__main__":
    main()
