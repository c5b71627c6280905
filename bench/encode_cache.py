"""Encoded-sample cache: nano's SEA SFT stage with the cache vs without it (the peer).

Launch (from the repo root)::

    python bench/encode_cache.py                   # 3000 SEA rows, 150 steps, one ABBA round
    python bench/encode_cache.py --samples 3000 --steps 150 --rounds 2

The peer is our own trainer with ``data.cache_mb: 0``: every epoch reads the JSONL, decodes
every PNG and runs the Gemma 3 processor again, as before the cache existed. The cache
keeps the first epoch's encoded samples so later epochs come from memory.

What it does, in one process:

1. Data: ``sealion_vl.nano.synth.generate`` writes ``--samples`` items of nano's SEA
   training split (all languages; VQA, MCQ, MARVL pairs, tool calls, lookup) to
   ``bench/.cache/encode_cache/sea/`` once (seed 0, the build's own generator).
2. Model: the shipped nano checkpoint (the model nano's stage 3 trains has the same shape).
3. Runs: ``recipes/nano-sft.yaml`` exactly as the build uses it (bf16 autocast, packing,
   16 rows of 256 tokens, eager attention, lr scales) with ``max_steps = --steps``. At ~50
   samples a step, 3000 rows are ~60 steps an epoch, so 150 steps read each row ~2.5 times,
   as stage 3 reads its 30,000 rows ~2.4 times in 1450 steps. Rounds run off, on, on, off,
   ... (ABBA) so that a shared machine's drift falls on both sides.
4. Prints, per run: wall seconds of the training loop (``metrics.jsonl``'s ``elapsed_s`` at
   the last step), steps/s and the cache's hits / misses / megabytes; then the mean time of
   each side and "cache vs no cache: X.XXx", and whether both sides' final weights are
   bit-identical (they must be: the cache may only change speed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "encode_cache"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=3000, help="SEA training rows to generate")
    ap.add_argument("--steps", type=int, default=150, help="optimizer steps per run")
    ap.add_argument("--rounds", type=int, default=1, help="ABBA rounds (2 runs per side each)")
    ap.add_argument("--cache-mb", type=int, default=2048, help="the cached side's cap")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from safetensors.torch import load_file

    from sealion_vl.nano.build import recipe_path
    from sealion_vl.nano.synth import generate
    from sealion_vl.runtime.load import resolve
    from sealion_vl.train import load_recipe, run

    data = CACHE / f"sea-{args.samples}"
    if not (data / "sft.jsonl").exists():
        print(f"generating {args.samples} SEA training rows into {data} ...", flush=True)
        generate(data, part="sea", split="train", n=args.samples, seed=0)
    model, _ = resolve("nano")
    order = [0, args.cache_mb, args.cache_mb, 0] * args.rounds
    times: dict[str, list[float]] = {"no cache": [], "cache": []}
    weights: dict[str, dict] = {}
    for i, mb in enumerate(order):
        side = "cache" if mb else "no cache"
        out = CACHE / f"run-{i}"
        shutil.rmtree(out, ignore_errors=True)
        overrides = {
            "model": str(model),
            "output_dir": str(out),
            "data.train": str(data / "sft.jsonl"),
            "data.cache_mb": mb,
            "max_steps": args.steps,
            "save_every": None,
        }
        result = run(load_recipe(recipe_path("nano-sft"), overrides), progress=False)
        rows = (out / "metrics.jsonl").read_text().splitlines()
        wall = json.loads(rows[-1])["elapsed_s"]
        stats = json.loads((out / "data_report.json").read_text())["encode_cache"]
        times[side].append(wall)
        w = load_file(out / "model.safetensors")
        same = side not in weights or all(torch.equal(w[k], weights[side][k]) for k in w)
        weights.setdefault(side, w)
        print(
            f"run {i} {side:>8}: {wall:7.1f} s  {args.steps / wall:5.2f} steps/s  "
            f"loss {result.last_loss:.4f}  cache {stats}  "
            f"{'' if same else 'WEIGHTS DIFFER FROM THE SAME SIDE EARLIER'}",
            flush=True,
        )
    off, on = statistics.mean(times["no cache"]), statistics.mean(times["cache"])
    a, b = weights["no cache"], weights["cache"]
    identical = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    print(f"\nno cache: mean {off:.1f} s   cache: mean {on:.1f} s  ({args.steps} steps each)")
    print(f"cache vs no cache: {off / on:.2f}x  (time saved {100 * (1 - on / off):.1f}%)")
    print(f"final weights bit-identical across sides: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
