"""Many callers, one model: the request engine's scheduler against one-at-a-time serving.

Launch (from the repo root)::

    python bench/engine_concurrency.py                 # nano and a wider tiny Gemma 3
    python bench/engine_concurrency.py --models nano --requests 16 --spread 3

What it does, per model, in one process and on the same model object:

1. Builds a fixed workload: ``--requests`` image+text requests (one of four synthetic
   images each), reply lengths drawn from ``--min-new``..``--max-new`` tokens (32..256;
   ``ignore_eos``, so every engine produces exactly that many tokens), arrival times spread
   uniformly over ``--spread`` seconds (2; seeded). Output tok/s is measured from the first
   arrival to the last reply, so a workload much lighter than the spread measures the
   arrivals, not the engine: ours then finishes soon after the last arrival.
2. Replays it against three engines, each fed by one client thread per request that sleeps
   until its arrival time:
   - **ours**: ``ChatModel.submit`` (continuous batching, vision cache on);
   - **one-at-a-time chat**: the same engine with ``max_batch=1`` and the vision cache off,
     which is what the pre-scheduler ``chat`` did (one ``generate`` at a time behind a lock);
   - **transformers generate**: ``processor.apply_chat_template`` + ``model.generate`` one
     request at a time behind a lock (``min_new_tokens`` = ``max_new_tokens``), the model
     cards' way; first-token time from a streamer.
3. Prints output tokens/s (all tokens / time from the first arrival to the last reply), p50
   and p95 latency and p95 time to first token (both from each request's arrival), and a
   lone request's time to first token on an idle engine; then the ratios.
4. Second-turn latency with and without the vision cache: a two-turn chat about one image,
   timing the second turn (prefill-dominated: 1 new token), median of ``--turns`` runs.

The "wide" model is a Gemma 3 architecture made wide enough for compute, not Python
overhead, to dominate a step (language model: hidden 512, 4 layers, 15.7M parameters), with
its vision side shaped after Gemma-3-4B: 448-pixel SigLIP (1024 patches of 14 px pooled to
64 soft tokens, as 4096 patches pool to 256 in the real model), 4 layers of width 192.
Measured on this CPU, its vision tower is about half of an uncached second turn (67 of
142 ms; the rest is the language model's prefill of the whole 118-token conversation), so
the vision cache alone can at best halve that turn here. Randomly initialised once into
bench/.cache/.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "bench" / ".cache"


def wide_checkpoint() -> Path:
    from sealion_vl.nano.model import NanoSize, init_checkpoint
    from tests.fixtures.tiny import build_tokenizer

    out = CACHE / "gemma3-wide-v2"
    if (out / "config.json").is_file():
        return out
    size = NanoSize(
        hidden=512,
        layers=4,
        heads=8,
        kv_heads=4,
        vision_hidden=192,
        vision_layers=4,
        vision_heads=4,
        image_size=448,
        patch_size=14,
        image_tokens=64,
        context=4096,
        mlp_ratio=4,
        projector_std=0.5,
    )
    out.mkdir(parents=True, exist_ok=True)
    return init_checkpoint(out, build_tokenizer("gemma3"), size, seed=0)


def images(n: int, folder: Path) -> list[str]:
    from tests.fixtures.clips import make_image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        if not p.exists():
            make_image(p, size=(96 + 16 * i, 80 + 8 * i), seed=i)
        paths.append(str(p))
    return paths


def workload(
    n: int, spread: float, seed: int, pics: list[str], lengths: tuple[int, int]
) -> list[dict]:
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        conv = [
            {
                "role": "user",
                "content": [
                    {"type": "image", "path": pics[i % len(pics)]},
                    {"type": "text", "text": f"Describe picture {i} in detail, please."},
                ],
            }
        ]
        jobs.append({"conv": conv, "new": rng.randint(*lengths), "at": rng.uniform(0, spread)})
    return sorted(jobs, key=lambda j: j["at"])


def replay(jobs: list[dict], run_one) -> dict:
    """Run each job in its own thread at its arrival time; run_one(job) -> (t_first, n)."""
    t0 = time.perf_counter() + 0.2
    out: list = [None] * len(jobs)

    def client(i, job):
        time.sleep(max(0.0, t0 + job["at"] - time.perf_counter()))
        start = time.perf_counter()
        t_first, n = run_one(job)
        out[i] = (start, t_first, time.perf_counter(), n)

    threads = [threading.Thread(target=client, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first_arrival = min(o[0] for o in out)
    last_end = max(o[2] for o in out)
    lat = sorted(o[2] - o[0] for o in out)
    ttft = sorted(o[1] - o[0] for o in out)
    tokens = sum(o[3] for o in out)
    return {
        "tok_s": tokens / (last_end - first_arrival),
        "p50": statistics.median(lat),
        "p95": lat[int(0.95 * (len(lat) - 1))],
        "ttft_p95": ttft[int(0.95 * (len(ttft) - 1))],
        "tokens": tokens,
    }


def ours_runner(m):
    def run(job):
        f = m.submit(job["conv"], max_new_tokens=job["new"], temperature=0, ignore_eos=True)
        r = f.result()
        t_first = r.timings["prefill_s"]
        return time.perf_counter() - r.timings["total_s"] + t_first, r.completion_tokens

    return run


def hf_runner(m):
    from transformers.generation.streamers import BaseStreamer

    lock = threading.Lock()

    class First(BaseStreamer):
        def __init__(self):
            self.calls, self.t = 0, None

        def put(self, value):
            self.calls += 1
            if self.calls == 2 and self.t is None:
                self.t = time.perf_counter()

        def end(self):
            pass

    def run(job):
        with lock:
            inputs = m.processor.apply_chat_template(
                job["conv"],
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                add_generation_prompt=True,
            )
            s = First()
            with torch.inference_mode():
                out = m.model.generate(
                    **inputs,
                    max_new_tokens=job["new"],
                    min_new_tokens=job["new"],
                    do_sample=False,
                    streamer=s,
                )
        return s.t, int(out.shape[1] - inputs["input_ids"].shape[1])

    return run


def lone_ttft(m, job, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        r = m.chat(job["conv"], max_new_tokens=2, temperature=0, ignore_eos=True)
        times.append(r.timings["prefill_s"])
    return statistics.median(times)


def second_turn(m, pic: str, turns: int) -> float:
    times = []
    for i in range(turns):
        m.vision_cache.clear()
        conv = [
            {
                "role": "user",
                "content": [
                    {"type": "image", "path": pic},
                    {"type": "text", "text": f"What is in this picture? ({i})"},
                ],
            }
        ]
        m.chat(conv, max_new_tokens=1, temperature=0)
        conv += [
            {"role": "assistant", "content": "A picture."},
            {"role": "user", "content": "And what colour is it?"},
        ]
        t = time.perf_counter()
        m.chat(conv, max_new_tokens=1, temperature=0)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_model(name: str, source: str, args) -> None:
    import sealion_vl

    pics = images(4, CACHE / "bench-images")
    jobs = workload(args.requests, args.spread, args.seed, pics, (args.min_new, args.max_new))
    ours = sealion_vl.load(source)
    serial = sealion_vl.load(source, max_batch=1, vision_cache_mb=0)
    serial.model = ours.model  # one model object for every engine
    # warm-up: kernels, allocator, template compilation
    ours.chat(jobs[0]["conv"], max_new_tokens=4, temperature=0)
    serial.chat(jobs[0]["conv"], max_new_tokens=4, temperature=0)
    lone = lone_ttft(serial, jobs[0])
    rows = {
        "ours (scheduler)": replay(jobs, ours_runner(ours)),
        "one-at-a-time chat": replay(jobs, ours_runner(serial)),
        "transformers generate": replay(jobs, hf_runner(ours)),
    }
    print(
        f"\n## {name}: {args.requests} requests over {args.spread:g} s, replies "
        f"{args.min_new}..{args.max_new} tokens, {rows['ours (scheduler)']['tokens']} output "
        f"tokens, {torch.get_num_threads()} threads"
    )
    print(f"{'engine':24} {'tok/s':>8} {'p50 s':>7} {'p95 s':>7} {'p95 TTFT s':>11}")
    for k, v in rows.items():
        print(f"{k:24} {v['tok_s']:8.1f} {v['p50']:7.2f} {v['p95']:7.2f} {v['ttft_p95']:11.3f}")
    o = rows["ours (scheduler)"]
    print(f"lone request TTFT (idle engine): {lone:.3f} s")
    serial_tok_s = rows["one-at-a-time chat"]["tok_s"]
    print(f"tok/s ratio vs one-at-a-time chat: {o['tok_s'] / serial_tok_s:.2f}x")
    print(
        f"tok/s ratio vs transformers generate: "
        f"{o['tok_s'] / rows['transformers generate']['tok_s']:.2f}x"
    )
    print(f"p95 TTFT / lone TTFT: {o['ttft_p95'] / lone:.2f}x")
    cached = second_turn(ours, pics[1], args.turns)
    uncached = second_turn(serial, pics[1], args.turns)
    print(
        f"second turn about the same image: cache {cached * 1000:.1f} ms, "
        f"no cache {uncached * 1000:.1f} ms, ratio {cached / uncached:.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="nano,wide", help="comma list of nano, wide, or folders")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--spread", type=float, default=2.0, help="arrivals over this many seconds")
    ap.add_argument("--min-new", type=int, default=32, help="shortest reply (tokens)")
    ap.add_argument("--max-new", type=int, default=256, help="longest reply (tokens)")
    ap.add_argument("--turns", type=int, default=5, help="second-turn repeats (median)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.models.split(","):
        source = {"nano": "nano", "wide": None}.get(name, name)
        if name == "wide":
            source = str(wide_checkpoint())
        bench_model(name, source, args)


if __name__ == "__main__":
    main()
