"""chrF++ of captions against their references (sacrebleu ``CHRF(word_order=2)``).

Not a SEA-HELM metric: a cheap, model-free caption score for checkpoints too small for
RefCLIPScore to separate (nano's captions), and a cross-check that needs no CLIP weights.
The caption is taken the way SEA-HELM's XM3600 metric takes it (text after the answer tag).
"""

from __future__ import annotations

from sacrebleu.metrics import CHRF

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.metrics.refclip import extract_caption
from sealion_vl.eval.types import Item, TaskScore


def _refs(item: Item) -> list[str]:
    gold = item.gold
    if isinstance(gold, str):
        gold = [gold]
    if not isinstance(gold, (list, tuple)) or not gold or not all(isinstance(g, str) for g in gold):
        return []
    return list(gold)


def score(items: list[Item], responses: list[str | None], *, lang: str) -> TaskScore:
    """Corpus-level ``chrf++`` (0-100) plus each item's sentence chrF++ as ``score``.

    Items may have different numbers of references (missing ones are padded, which sacrebleu
    ignores).

    Raises:
        EvalDataError: an item has no reference caption, or lengths differ.
    """
    task = items[0].task if items else "?"
    if len(items) != len(responses):
        raise EvalDataError(
            f"{task} [{lang}]: {len(responses)} responses for {len(items)} items; they must "
            "pair one to one."
        )
    refs = [_refs(it) for it in items]
    missing = [it.id for it, r in zip(items, refs, strict=True) if not r]
    if missing:
        raise EvalDataError(f"{task} [{lang}]: item(s) without reference captions: {missing}")
    if not items:
        return TaskScore(metrics={"chrf++": 0.0}, per_item=[])

    metric = CHRF(word_order=2)
    hyps = [extract_caption(r, it.answer_tag) for it, r in zip(items, responses, strict=True)]
    width = max(len(r) for r in refs)
    streams = [[r[i] if i < len(r) else None for r in refs] for i in range(width)]
    corpus = metric.corpus_score(hyps, streams).score
    per_item = [
        {
            "id": it.id,
            "extracted": hyp,
            "gold": ref,
            "score": metric.sentence_score(hyp, ref).score,
        }
        for it, hyp, ref in zip(items, hyps, refs, strict=True)
    ]
    return TaskScore(metrics={"chrf++": float(corpus)}, per_item=per_item)
