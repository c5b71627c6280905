"""Evaluation throughput: our runner against the model cards' per-item ``pipeline`` loop, and
our runner through our own server against the local engine.

Launch (from the repo root)::

    python bench/eval_throughput.py                       # nano and the wide tiny Gemma 3
    python bench/eval_throughput.py --models nano --items 16

What it does, per model, in one process:

1. Writes the CVQA fixture dataset (the public schema, tests/fixtures/eval_data.py) into
   bench/.cache and takes ``--items`` items per language of ``--langs`` (id, ms, tl): the
   same prompts, images and 32-token budget SEA-HELM gives CVQA.
2. **ours**: ``run_eval`` (one run, SEA-HELM's first seed) with the model already loaded,
   into a fresh folder, so every item is generated: continuous batching, length buckets,
   dataset loading and scoring included. Both sides first run two untimed warm-up items
   of another language (``--warm``; other images, so the vision cache gains nothing).
3. **pipeline loop**: the model cards' snippet, ``pipeline("image-text-to-text", ...)`` called
   once per item with the same conversation and ``max_new_tokens``, as a user following the
   card would evaluate; scoring not included (it is negligible).
4. **ours via our server**: the same ``run_eval`` against ``sealion-vl serve``'s app on a
   loopback port (``--concurrency`` requests in flight), the same model object.

Prints items/s for each and the ratios, and how many replies the pipeline loop and our
runner agree on (both decode greedily from the checkpoint's generation_config, so they should
mostly agree; a difference means a different decoding, not only a different speed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "bench" / ".cache"


def fixture_data(n: int) -> Path:
    from tests.fixtures.eval_data import write_fixture_datasets

    out = CACHE / f"eval-data-{n}"
    if not (out / "afaji" / "cvqa").is_dir():
        write_fixture_datasets(out, n=n)
    return out


def checkpoint(name: str) -> str:
    if name == "wide":
        from bench.engine_concurrency import wide_checkpoint

        return str(wide_checkpoint())
    return name


def run_ours(model, data: Path, langs: list[str], n: int, out: Path, **endpoint) -> tuple:
    from sealion_vl.eval.runner import EvalRunConfig, run_eval

    shutil.rmtree(out, ignore_errors=True)
    model.vision_cache.clear()  # every timed run starts without encoded images
    cfg = EvalRunConfig(
        model=endpoint.pop("served", "bench"),
        tasks=["cvqa"],
        out=out,
        langs=langs,
        runs=1,
        limit=n,
        data_dir=data,
        **endpoint,
    )
    t0 = time.perf_counter()
    run_eval(cfg, chat_model=model, progress=False)
    dt = time.perf_counter() - t0
    rows = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    errors = sum(r["error"] is not None for r in rows)
    return len(rows) / dt, {(r["lang"], r["id"]): r["response"] for r in rows}, errors


def run_pipeline(path: str, data: Path, langs: list[str], n: int, warm: str) -> tuple:
    import io

    import torch
    from PIL import Image
    from transformers import pipeline

    from sealion_vl.eval.task import load_task
    from sealion_vl.runtime.load import resolve

    task = load_task("cvqa")
    items = [it for lang in langs for it in task.items(lang, data_dir=data, limit=n)]
    pipe = pipeline("image-text-to-text", model=resolve(path)[0], dtype=torch.float32)
    replies = {}
    warmup = task.items(warm, data_dir=data, limit=2)
    t0 = None
    for it in warmup + items:
        if t0 is None and it.lang != warm:
            t0 = time.perf_counter()
        img = Image.open(io.BytesIO(it.images[0])).convert("RGB")
        messages = [
            {
                "role": "user",
                "content": [{"type": "text", "text": it.prompt}, {"type": "image", "image": img}],
            }
        ]
        out = pipe(text=messages, max_new_tokens=it.max_tokens, return_full_text=False)
        if it.lang != warm:
            replies[(it.lang, it.id)] = out[0]["generated_text"]
    return len(items) / (time.perf_counter() - t0), replies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="nano,wide", help="Comma-separated: nano, wide.")
    ap.add_argument("--items", type=int, default=16, help="Items per language.")
    ap.add_argument("--langs", default="id,ms,tl", help="CVQA languages.")
    ap.add_argument(
        "--warm", default="zh", help="CVQA language of 2 untimed warm-up items (other images)."
    )
    ap.add_argument("--concurrency", type=int, default=16, help="Requests in flight (server).")
    args = ap.parse_args()
    import sealion_vl
    from tests.serve.conftest import Server

    langs = args.langs.split(",")
    data = fixture_data(max(args.items, 10))
    for name in args.models.split(","):
        path = checkpoint(name)
        model = sealion_vl.load(path)
        n_items = args.items * len(langs)
        print(f"\n== {name}: CVQA {','.join(langs)}, {n_items} items, 1 run", flush=True)
        # untimed warm-up of both (first torch calls, imports, the dataset cache) on items
        # whose images the timed items do not share, so the vision cache gains nothing
        run_ours(model, data, [args.warm], 2, CACHE / "eval-warm")
        ours, ours_replies, errs = run_ours(model, data, langs, args.items, CACHE / "eval-ours")
        print(f"ours (engine)        {ours:7.2f} items/s   ({errs} error items)", flush=True)
        pipe, pipe_replies = run_pipeline(path, data, langs, args.items, args.warm)
        print(f"pipeline loop        {pipe:7.2f} items/s", flush=True)
        from sealion_vl.serve import ServeConfig, create_app

        server = Server(create_app(model, ServeConfig(api_key="bench")))
        try:
            via, via_replies, errs2 = run_ours(
                model,
                data,
                langs,
                args.items,
                CACHE / "eval-via-server",
                served=model.name,
                endpoint=server.url + "/v1",
                api_key="bench",
                concurrency=args.concurrency,
            )
        finally:
            server.stop()
        print(f"ours via our server  {via:7.2f} items/s   ({errs2} error items)", flush=True)
        same = sum(ours_replies[k] == pipe_replies.get(k) for k in ours_replies)
        same_srv = sum(ours_replies[k] == via_replies.get(k) for k in ours_replies)
        print(f"ratio ours / pipeline loop:     {ours / pipe:.2f}x")
        print(f"ratio via server / engine:      {via / ours:.2f}x")
        print(f"replies equal to the pipeline's: {same}/{len(ours_replies)}")
        print(f"replies equal via the server:    {same_srv}/{len(ours_replies)}")


if __name__ == "__main__":
    main()
