"""Top-k teacher cache vs full logits: bytes per token, and how close the cached loss is.

Launch (from the repo root)::

    python bench/distill_cache.py                    # 400 SEA rows, k = 64, 60 steps
    python bench/distill_cache.py --samples 400 --k 64 --steps 60

The anchor is storing the teacher's full logits per loss token (what an online teacher
gives, and what a naive cache would write): vocabulary x 2 bytes in bfloat16. DistillKit's
top-k cache is quoted at ~300 bytes a token at k = 64 (its README); ours packs each entry
in 32 bits (id + quantised log-prob) plus a float32 tail mass, 4k + 4 bytes a token.

What it does, in one process:

1. Data: ``sealion_vl.nano.synth.generate`` writes ``--samples`` items of nano's SEA
   training split (every language and item kind) to ``bench/.cache/distill_cache/`` once.
2. Teacher: the shipped nano. Student: a fresh, smaller nano-shaped Gemma 3 (hidden 96,
   2 layers) with nano's tokenizer and image settings, so the teacher can read the
   student's batches as they are.
3. Cache: ``build_cache`` runs nano over every row and writes the k = ``--k`` cache (timed);
   prints bytes per token (arrays, and the whole file with its header and index) and the
   ratio to full bfloat16 / float32 logits, for nano's 3072-token vocabulary and for
   Gemma's 262,144 (the cache's size does not depend on the vocabulary).
4. Loss: over the student's own packed training batches (``BatchStream``, 256-token rows),
   the summed divergence from the cache (``topk_divergence``: k tokens + tail bin,
   quantised) vs from the teacher's full logits (``full_divergence``), for forward KL,
   reverse KL and JSD; once for the fresh student and once after ``--steps`` steps of
   offline distillation (``sealion_vl.distill.distill``, forward KL, alpha 1) from the
   cache. Prints each relative gap; the aim (forward KL, the recipe's default) is under 1 %.

Result (2026-12-01, 2 shared CPU cores, defaults): 260 B/token (267 with header and index),
0.87x DistillKit's ~300, 21x smaller than nano's bf16 logits and 2016x smaller than Gemma's;
forward KL gap 0.012 % (fresh student) / 0.038 % (after 60 steps), JSD 0.07 % / 0.12 %.
Reverse KL is 6.6 % / 13.5 % low: coarsening to k + 1 bins hides how the student spreads its
tail mass over tokens the teacher's tail weighs differently (a lower bound by the log-sum
inequality); use forward KL or JSD with a cache, or online mode for reverse KL.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "distill_cache"
KINDS = ("forward_kl", "reverse_kl", "jsd")


def _data(n: int) -> Path:
    from sealion_vl.nano.synth.generate import generate

    out = CACHE / f"sea-{n}"
    if not (out / "synth.json").is_file():
        generate(out, part="sea", split="train", n=n, seed=0)
    return out / "sft.jsonl"


def _student(teacher) -> Path:
    from sealion_vl.nano.model import NANO, init_checkpoint

    out = CACHE / "student-init"
    if not (out / "config.json").is_file():
        size = dataclasses.replace(NANO, hidden=96, layers=2, heads=2, kv_heads=1,
                                   vision_hidden=64, vision_layers=2, vision_heads=2)  # fmt: skip
        init_checkpoint(out, teacher.processor.tokenizer, size, seed=0)
    return out


def _gaps(recipe, student_path: Path, teacher, cache) -> dict:
    """Summed divergences over the student's training batches: cache vs full logits."""
    import torch

    from sealion_vl.distill.losses import full_divergence, topk_divergence
    from sealion_vl.distill.run import INDEX, CacheIndexEncoder, SameInputsEncoder
    from sealion_vl.distill.teacher import logits_at_labels
    from sealion_vl.runtime.load import load_parts
    from sealion_vl.train.data import BatchStream
    from sealion_vl.train.features import IGNORE, FeatureEncoder

    parts = load_parts(student_path, device="cpu", dtype="float32", multimodal_only=True)
    model = parts.model.eval()
    enc = FeatureEncoder(model, parts.processor, parts.adapter)
    enc = CacheIndexEncoder(SameInputsEncoder(enc, teacher.encoder), cache)
    train = recipe.train_recipe().model_copy(update={"epochs": 1, "max_steps": None})
    n_vocab = cache.header["n_vocab"]
    sums = {k: [0.0, 0.0] for k in KINDS}
    tokens = 0
    with torch.no_grad():
        for batch in BatchStream(train, enc):
            s_logits, _ = logits_at_labels(model, batch, parts.adapter)
            t_logits = teacher.logits(batch)
            top = cache.gather(batch[INDEX][batch["labels"] != IGNORE])
            tokens += s_logits.shape[0]
            for kind in KINDS:
                c = topk_divergence(s_logits, top, kind, n_vocab=n_vocab).double().sum()
                f = full_divergence(s_logits, t_logits, kind, n_vocab=n_vocab).double().sum()
                sums[kind][0] += float(c)
                sums[kind][1] += float(f)
    return {"tokens": tokens, **{k: (c / tokens, f / tokens) for k, (c, f) in sums.items()}}


def _print_gaps(name: str, gaps: dict) -> dict:
    """Print cache vs full-logit losses; returns the relative gap per divergence."""
    print(f"\n{name} ({gaps['tokens']} loss tokens), mean per token:")
    rel = {}
    for kind in KINDS:
        cached, full = gaps[kind]
        rel[kind] = abs(cached - full) / full
        print(f"  {kind:<10} cache {cached:.5f}  full logits {full:.5f}  "
              f"gap {100 * rel[kind]:.3f} %")  # fmt: skip
    return rel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from sealion_vl.distill import DistillRecipe, distill
    from sealion_vl.distill.cache import TopKCache
    from sealion_vl.distill.teacher import Teacher, build_cache

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    data = _data(args.samples)
    teacher = Teacher("nano")
    student = _student(teacher)
    out = CACHE / "run"
    shutil.rmtree(out, ignore_errors=True)
    recipe = DistillRecipe.model_validate(dict(
        teacher="nano", student=str(student), output_dir=str(out), data={"train": str(data)},
        k=args.k, alpha=1.0, loss="forward_kl", teacher_batch_size=16,
        optim={"lr": 2e-3, "warmup_steps": 5, "schedule": "cosine"},
        batch={"micro_batch_size": 8, "max_seq_len": 256}, max_steps=args.steps,
        attn_implementation="eager", dummy_image_for_text_batches=False, seed=0,
    ))  # fmt: skip
    t0 = time.perf_counter()
    build_cache(recipe, progress=False)
    build_s = time.perf_counter() - t0
    cache = TopKCache(recipe.cache_path())
    n_vocab = cache.header["n_vocab"]
    per_tok = cache.bytes_per_token
    file_per_tok = recipe.cache_path().stat().st_size / cache.n_tokens
    print(f"nano teacher cache: {len(cache.rows)} rows, {cache.n_tokens} loss tokens, "
          f"k = {cache.k}, built in {build_s:.1f} s")  # fmt: skip
    print(f"bytes per token: {per_tok:.0f} (arrays), {file_per_tok:.1f} (whole file, header "
          f"and row index included)")  # fmt: skip
    print(f"DistillKit's top-k cache (~300 B/token at k = 64): ours / theirs = {per_tok / 300:.2f}")
    for name, vocab in (("nano", n_vocab), ("Gemma 3/4", 262_144)):
        bf16, fp32 = 2 * vocab, 4 * vocab
        print(f"full logits, {name} vocabulary ({vocab}): {bf16} B bf16 / {fp32} B fp32 per "
              f"token; cache smaller by {bf16 / per_tok:.0f}x / {fp32 / per_tok:.0f}x")  # fmt: skip

    fresh = _print_gaps("fresh student", _gaps(recipe, student, teacher, cache))
    t0 = time.perf_counter()
    distill(recipe, progress=False)
    train_s = time.perf_counter() - t0
    title = f"after {args.steps} distillation steps ({train_s:.0f} s)"
    trained = _print_gaps(title, _gaps(recipe, out, teacher, cache))
    for kind in KINDS:
        worst = max(fresh[kind], trained[kind])
        aim = "  (the aim: < 1 %)" if kind == "forward_kl" else ""
        print(f"largest cache-vs-full-logit gap, {kind}: {100 * worst:.3f} %{aim}")


if __name__ == "__main__":
    main()
