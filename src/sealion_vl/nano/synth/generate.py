"""Write a split of the synthetic SEA world to disk: images, conversations and captions.

Layout of ``out_dir`` (written to a temporary sibling folder, then renamed into place)::

    images/<part>-<split>-<index>-<k>.png   64x64 RGB, one or two per item
    sft.jsonl        conversation items (our JSONL schema; ``formats.iter_samples`` reads it)
    captions.jsonl   {"id", "image", "caption", "lang", "part"}: every image in every language
    synth.json       the arguments and the counts (the resolved config beside the output)

Determinism: item ``i`` draws everything from its own ``random.Random`` seeded with
``(seed, part, split, i)``, so the same arguments give byte-identical files, and "train" and
"heldout" come from disjoint seed streams. The kind, language and label of each item are
planned up front so that languages and MCQ / MARVL labels are balanced exactly.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Literal

from sealion_vl.nano.synth.flags import render_flag
from sealion_vl.nano.synth.items import KINDS, LETTERS, TRAIN_ONLY_KINDS, build
from sealion_vl.nano.synth.world import LANGUAGES, caption

PARTS = ("warmup", "general", "sea")
SPLITS = ("train", "heldout")
#: Item kinds allowed in each part, and their default shares.
# The warm-up part is text only (English option lookup): the content match an MCQ letter
# needs, learned before any image (see items.lookup_item). A share of lookup items stays in
# the later parts: without it stage 1 erased the match (warm-up 50% -> 25% on held-out
# lookup after 1000 steps) and image MCQ stayed at chance. With it (nano v9) stage 1 kept
# English lookup at 100% and answered English scene MCQ 86% (43 of 50).
# No MARVL in the general part: with two-image true/false in it, stage 1 counted at 46%
# (v7: 25 of 54 English scenes); the same 1000 steps without it counted 87% (47 of 54), and
# 98% (42 of 43) once scene MCQ (gold word first) joined. MARVL is learned in stage 3.
PART_KINDS = {
    "warmup": ("lookup",),
    "general": ("caption", "vqa", "multi", "mcq", "lookup"),
    "sea": KINDS,
}
WEIGHTS = {
    "warmup": {"lookup": 1.0},
    "general": {"caption": 0.12, "vqa": 0.25, "multi": 0.43, "mcq": 0.12, "lookup": 0.08},
    "sea": {"caption": 0.05, "vqa": 0.10, "multi": 0.22, "mcq": 0.13, "marvl": 0.06,
            "marvl_multi": 0.22, "toolcall": 0.04, "lookup": 0.18},
}  # fmt: skip
# SEA mix, v14 -> v15 (this one): lookup .12 -> .18, mcq .12 -> .13; vqa .13 -> .10, marvl
# .08 -> .06, caption .06 -> .05, toolcall .05 -> .04; stage 3 1300 -> 1450 steps. Held-out
# SEA: MCQ 56.0 -> 73.8, MARVL 81.3 -> 90.6, lookup 74.7 -> 87.3, but shape 76.5 -> 63.0 (n=27,
# its bar 66.7) and count 78.8 -> 75.0: fewer vqa items (and a smaller held-out vqa sample).
# On the 1600-item held-out set (HELDOUT_WEIGHTS) v15 scores shape 74.0 (n=77), count 92.6,
# MARVL 86.2, MCQ 76.4: every bar passes. A v16 trial (vqa .12, marvl_multi .20, 1500 steps, a
# Thai MCQ instruction ending on the answer format) scored MCQ 55.9, MARVL 81.2, shape 76.4,
# Thai MCQ 22 (v15: 21), training 28.6 min; v15's mix and instruction stayed.
# v13 -> v14: lookup .06 -> .12; caption .08 -> .06, vqa .16 -> .13,
# toolcall .06 -> .05 (stage 3 also 1200 -> 1300 steps). Held-out SEA: MCQ 40.5 -> 56.0,
# text lookup 53.5 -> 74.7, MARVL 76.0 -> 81.3, shape 68.9 -> 76.5, count 88.9 -> 78.8. With
# 6% lookup the letter of a Thai or Vietnamese MCQ reply was mostly "A" while the option word
# was right: the match learned on English tags had not carried over to the other tags.
# Earlier, v8 -> v9: caption .1 -> .08, multi .26 -> .22, mcq .1 -> .12, marvl_multi .18 ->
# .22, toolcall .08 -> .06, lookup .04 -> .06: MCQ 33 -> 42, MARVL 54 -> 58, shape 67 -> 80.
# A v10 trial (lookup .10, marvl_multi .24, vqa .14, multi .18) got MARVL 64 but MCQ 27 and
# shape 63: its stage 1 (same general mix, other tokenizer and init) answered English scene
# MCQ 30%, v9's 86%. Whether stage 1 picks up image MCQ still varies from build to build.
#: Held-out mixes where they differ from the training mix: a held-out set is for measuring,
#: so every question type needs enough items. vqa spreads over six question types (a scene's
#: colour, count and shape get a ninth of it each), so at the training share the shape bar of
#: nano v15 rested on 27 items, where one item moved it 3.7 points.
HELDOUT_WEIGHTS = {
    "sea": {"caption": 0.06, "vqa": 0.40, "mcq": 0.18, "marvl": 0.14, "toolcall": 0.06,
            "lookup": 0.16},
}  # fmt: skip
#: Languages of each part (None: all of the world's languages).
PART_LANGUAGES = {"warmup": ("en",), "general": ("en",), "sea": None}
EXAMPLE = {"country": "malaysia", "seed": 2025}
_VERSION = 6  # 2: equal-sized scene objects, multi-question items; 3: marvl_multi, MCQ and
# MARVL in the general part, equal-sized fruits; 4: marvl_multi pairs built from a coin flip
# per hypothesis, no MCQ in the general part; 5: MCQ replies name the option before its
# letter, MCQ (not MARVL) in the general part, the text-only warm-up part; 6: MARVL replies
# state the facts compared before the true/false word


def _shares(n: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``n`` by ``weights`` (largest remainder, ties by order): exact totals."""
    total = sum(weights.values())
    raw = {k: n * w / total for k, w in weights.items()}
    counts = {k: int(v) for k, v in raw.items()}
    order = sorted(weights, key=lambda k: (-(raw[k] - counts[k]), list(weights).index(k)))
    for k in order[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def _balanced(rng: random.Random, values: list, count: int) -> list:
    """``count`` values: whole shuffled copies of ``values`` (each appears equally often)."""
    out: list = []
    while len(out) < count:
        block = list(values)
        rng.shuffle(block)
        out.extend(block)
    return out[:count]


def plan(
    n: int, part: str, split: str, seed: int, kinds: tuple[str, ...], languages: tuple[str, ...]
) -> list[tuple[str, str, object]]:
    """The (kind, language, label) of each item, balanced per kind; label is None if unused."""
    rng = random.Random(f"sealion-vl-synth/{_VERSION}/{seed}/{part}/{split}/plan")
    weights = HELDOUT_WEIGHTS.get(part, WEIGHTS[part]) if split == "heldout" else WEIGHTS[part]
    counts = _shares(n, {k: weights[k] for k in kinds})
    sequence = [k for k in kinds for _ in range(counts[k])]
    rng.shuffle(sequence)
    langs = {k: iter(_balanced(rng, list(languages), counts[k])) for k in kinds}
    labels = {
        "mcq": iter(_balanced(rng, list(range(len(LETTERS))), counts.get("mcq", 0))),
        "lookup": iter(_balanced(rng, list(range(len(LETTERS))), counts.get("lookup", 0))),
        "marvl": iter(_balanced(rng, [True, False], counts.get("marvl", 0))),
    }
    return [(k, next(langs[k]), next(labels[k]) if k in labels else None) for k in sequence]


def _check(part, split, n, kinds, languages) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    allowed_langs = PART_LANGUAGES[part] or LANGUAGES
    default = PART_KINDS[part]
    if split == "heldout":  # every held-out item has one gold reply
        default = tuple(k for k in default if k not in TRAIN_ONLY_KINDS)
    kinds = tuple(kinds) if kinds else default
    languages = tuple(languages) if languages else allowed_langs
    bad = [k for k in kinds if k not in PART_KINDS[part]]
    if bad or not kinds:
        raise ValueError(f"kinds {bad or kinds} not in part {part!r}; it has {PART_KINDS[part]}")
    bad = [k for k in kinds if split == "heldout" and k in TRAIN_ONLY_KINDS]
    if bad:
        raise ValueError(f"kinds {bad} are training-only (no single gold reply to score)")
    bad = [x for x in languages if x not in allowed_langs]
    if bad:
        raise ValueError(f"languages {bad} not in part {part!r}; it has {allowed_langs}")
    return kinds, languages


def generate(
    out_dir: str | os.PathLike,
    *,
    part: Literal["warmup", "general", "sea"],
    split: Literal["train", "heldout"],
    n: int,
    seed: int = 0,
    kinds: tuple[str, ...] | None = None,
    languages: tuple[str, ...] | None = None,
    progress: bool = False,
) -> dict:
    """Generate ``n`` conversation items (plus their images and captions) into ``out_dir``.

    Args:
        out_dir: Output folder; replaced atomically if it holds an earlier output (a
            ``synth.json``); any other non-empty folder is refused.
        part: ``"warmup"`` (English, text only: option lookup), ``"general"`` (English,
            shape scenes: captions, VQA, MCQ) or ``"sea"`` (all languages; scenes, flags
            and fruits; every image item kind).
        split: ``"train"`` or ``"heldout"``; the two never share an image.
        n: Number of conversation items in ``sft.jsonl``.
        seed: Base seed; the same arguments give byte-identical files.
        kinds: Subset of the part's item kinds (default: all of them, in the default shares).
        languages: Subset of the part's languages (default: all of them).
        progress: Print progress to stderr.

    Returns:
        The counts also written to ``synth.json``: ``items``, ``images``, ``captions``,
        ``by_kind`` ({kind: {lang: n}}) and ``captions_by_lang``.
    """
    kinds, languages = _check(part, split, n, kinds, languages)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "synth.json").is_file():
        raise FileExistsError(
            f"{str(out)!r} exists and is not an earlier synth output (no synth.json); "
            "choose an empty or new folder."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the output is a normal folder
        counts = _write(tmp, part, split, n, seed, kinds, languages, progress)
        manifest = {
            "version": _VERSION, "part": part, "split": split, "n": n, "seed": seed,
            "kinds": list(kinds), "languages": list(languages), "counts": counts,
        }  # fmt: skip
        text = json.dumps(manifest, ensure_ascii=False, indent=2)
        (tmp / "synth.json").write_text(text + "\n", encoding="utf-8")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def _replace(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write(tmp, part, split, n, seed, kinds, languages, progress) -> dict:
    (tmp / "images").mkdir()
    by_kind: dict[str, Counter] = {k: Counter() for k in kinds}
    cap_langs: Counter = Counter()
    n_images = 0
    step = max(1, n // 10)
    with (
        open(tmp / "sft.jsonl", "w", encoding="utf-8", newline="\n") as sft,
        open(tmp / "captions.jsonl", "w", encoding="utf-8", newline="\n") as caps,
    ):
        for i, (kind, code, label) in enumerate(plan(n, part, split, seed, kinds, languages)):
            rng = random.Random(f"sealion-vl-synth/{_VERSION}/{seed}/{part}/{split}/{i}")
            item = build(kind, rng, code, part, label)
            uid = f"{part}-{split}-{i:06d}"
            paths, facts = [], []
            for k, (image, fact) in enumerate(item.images):
                rel = f"images/{uid}-{k}.png"
                image.save(tmp / rel, compress_level=6)
                paths.append(rel)
                facts.append(fact)
                for c in languages:
                    rec = {"id": f"{uid}-{k}-{c}", "image": rel, "caption": caption(c, fact),
                           "lang": c, "part": part}  # fmt: skip
                    caps.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    cap_langs[c] += 1
            n_images += len(paths)
            sft.write(json.dumps(_record(uid, kind, code, part, split, item, paths, facts),
                                 ensure_ascii=False) + "\n")  # fmt: skip
            by_kind[kind][code] += 1
            if progress and ((i + 1) % step == 0 or i + 1 == n):
                print(f"synth {part}/{split}: {i + 1}/{n} items", file=sys.stderr, flush=True)
    return {
        "items": n,
        "images": n_images,
        "captions": sum(cap_langs.values()),
        "by_kind": {k: dict(sorted(v.items())) for k, v in by_kind.items()},
        "captions_by_lang": dict(sorted(cap_langs.items())),
    }


def _record(uid, kind, code, part, split, item, paths, facts) -> dict:
    content = [{"type": "image", "path": p} for p in paths]
    content.append({"type": "text", "text": item.prompt})
    messages = [{"role": "user", "content": content}, {"role": "assistant", "content": item.answer}]
    for prompt, answer in item.followups:
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    if item.system:
        messages.insert(0, {"role": "system", "content": item.system})
    meta = {"task": kind, "lang": code, "part": part, "split": split, "answer": item.answer,
            **item.meta, "images": facts}  # fmt: skip
    return {"id": uid, "messages": messages, "meta": meta}


def example_image(path: str | os.PathLike, country: str = EXAMPLE["country"]) -> Path:
    """Write the fixed example image (the flag of Malaysia, fixed seed, no wave) as PNG.

    Nano is asked about it in the README, e.g. ``"Ini bendera negara mana?"`` -> ``Malaysia``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = render_flag(country, random.Random(EXAMPLE["seed"]), scale=0.9, wave=False)
    image.save(path)
    return path
