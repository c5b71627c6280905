"""Multiple-choice scoring exactly as SEA-HELM's ``F1AccMetric`` does (CVQA, MARVL, WorldCuisines).

The score must match the leaderboard's, so the extraction keeps SEA-HELM's rules, quirks
included (facts.md §3c): the answer tag followed by ``[\\s\\*]*`` and a repeated group of the
gold labels present in the run, searched case-insensitively over the whole raw reply; a miss
falls back to the whole reply lower-cased and stripped; anything else is ``"null"``. A better
extraction (``robust.robust_extract``) runs alongside and is reported only as a diagnostic.
"""

from __future__ import annotations

import re
import string
import warnings

from sklearn.metrics import balanced_accuracy_score, f1_score

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.metrics.robust import robust_extract
from sealion_vl.eval.types import Item, TaskScore

NULL = "null"


def check_labels(items: list[Item], *, lang: str) -> None:
    """Refuse items whose gold label is missing or not one of the task's label words.

    SEA-HELM quirk avoided: CVQA's public test split hides labels as -1 and SEA-HELM's
    ``"ABCD"[-1]`` silently turns them into "D"; such items must never be scored.
    """
    bad = [it.id for it in items if it.gold is None or str(it.gold) not in it.labels]
    if bad:
        task = items[0].task if items else "?"
        shown = ", ".join(bad[:20]) + (f" (+{len(bad) - 20} more)" if len(bad) > 20 else "")
        raise EvalDataError(
            f"{task} [{lang}]: {len(bad)} item(s) have no usable gold label (None or not one "
            f"of the task's labels), e.g. hidden public labels: {shown}. Use a split with "
            "labels or drop these rows."
        )


def _regex(answer_tag: str, run_labels: list[str]) -> re.Pattern | None:
    # SEA-HELM quirk: tag and labels go into the regex unescaped. Its label order comes from a
    # Python set (hash order, not reproducible); we use longest-first, which gives the same
    # capture whenever no label is a prefix of another (true for every vision task).
    ordered = sorted(run_labels, key=lambda s: (-len(s), s))
    try:
        return re.compile(answer_tag + r"[\s\*]*(" + "|".join(ordered) + r")+", re.IGNORECASE)
    except re.error:  # a tag with regex metacharacters SEA-HELM would crash on
        return re.compile(
            re.escape(answer_tag) + r"[\s\*]*(" + "|".join(map(re.escape, ordered)) + r")+",
            re.IGNORECASE,
        )


def normalize_answer(text: str) -> str:
    """SEA-HELM's ``normalize_answer``: lower-case, strip ASCII punctuation/space/newline at both
    ends, collapse whitespace (no Unicode punctuation, no Unicode normalisation)."""
    return " ".join(text.lower().strip(string.punctuation + " \n").split())


def seahelm_extract(response: str | None, pattern: re.Pattern, label_map: dict[str, str]) -> str:
    """One reply -> a gold label of the run or ``"null"``, by SEA-HELM's rules.

    SEA-HELM quirks kept: the *first* tag occurrence anywhere in the raw reply (``<think>``
    included) wins; the repeated greedy group keeps the *last* label of a run of label
    characters ("Answer: Bakso" -> "A", "AD" -> "D"); no word boundary; a failed request
    (None) is scored as "".
    """
    text = "" if response is None else response
    match = pattern.search(text)
    raw = match.group(1) if match and match.group(1) is not None else text
    return label_map.get(normalize_answer(raw.strip()), NULL)


def normalized(score: float, k: int) -> float:
    """``max((acc - 1/k) / (1 - 1/k), 0)``; SEA-HELM returns 0 when k = 1 (min == max)."""
    if k <= 1:
        return 0.0
    return max((score - 1 / k) / (1 - 1 / k), 0.0)


def _metrics(golds: list[str], preds: list[str], k: int) -> dict[str, float | int]:
    """SEA-HELM's metric dict for one run (same names and scales as ``F1AccMetric``)."""
    n = len(golds)
    null_count = sum(p == NULL for p in preds)
    if n == 0:
        return {
            "accuracy": 0.0,
            "macro_f1": 0.0,
            "null_weighted_f1": 0.0,
            "normalized_accuracy": 0.0,
            "null_count": 0,
        }
    with warnings.catch_warnings():  # sklearn warns on classes predicted but never gold
        warnings.simplefilter("ignore")
        acc = float(balanced_accuracy_score(golds, preds))
        gold_labels = sorted(set(golds))
        avg_f1 = float(f1_score(golds, preds, labels=gold_labels, average="macro"))
        macro_f1 = float(f1_score(golds, preds, average="macro"))
    return {
        "accuracy": 100 * acc,
        "macro_f1": 100 * macro_f1,
        "null_weighted_f1": 100 * avg_f1 * (1 - null_count / n),
        "normalized_accuracy": 100 * normalized(acc, k),
        "null_count": int(null_count),
    }


def score(items: list[Item], responses: list[str | None], *, lang: str) -> TaskScore:
    """Score one task in one language of one run the way SEA-HELM's ``F1AccMetric`` does.

    ``metrics`` holds ``accuracy`` (balanced accuracy x 100, "null" a miss),
    ``normalized_accuracy`` (chance 1/k, k = distinct gold labels in the run), ``macro_f1``
    (over gold labels plus "null" when predicted, as sklearn does), ``null_weighted_f1`` and
    ``null_count``. ``diagnostics`` holds the same accuracy with the robust extraction and
    the items where the two extractions disagree, plus a per-category breakdown.

    Raises:
        EvalDataError: an item has no usable gold label, or responses and items differ in
            length.
    """
    if len(items) != len(responses):
        raise EvalDataError(
            f"{items[0].task if items else '?'} [{lang}]: {len(responses)} responses for "
            f"{len(items)} items; they must pair one to one."
        )
    check_labels(items, lang=lang)
    golds = [str(it.gold) for it in items]
    run_labels = sorted(set(golds))
    label_map = {label.lower(): label for label in run_labels}
    k = len(label_map)
    tag = items[0].answer_tag if items else ""
    pattern = _regex(tag, run_labels) if items else None

    preds, robust, per_item, disagreements = [], [], [], []
    for it, resp, gold in zip(items, responses, golds, strict=True):
        pred = seahelm_extract(resp, pattern, label_map)
        rob = robust_extract(resp, it.labels, it.answer_tag)
        preds.append(pred)
        robust.append(NULL if rob is None else rob)
        per_item.append(
            {
                "id": it.id,
                "extracted": pred,
                "gold": gold,
                "score": 1.0 if pred == gold else 0.0,
                "robust_extracted": rob,
            }
        )
        if pred != (NULL if rob is None else rob):
            disagreements.append(
                {"id": it.id, "extracted": pred, "robust_extracted": rob, "gold": gold}
            )

    metrics = _metrics(golds, preds, k)
    rob_metrics = _metrics(golds, robust, k)
    diagnostics = {
        "robust_accuracy": rob_metrics["accuracy"],
        "robust_normalized_accuracy": rob_metrics["normalized_accuracy"],
        "disagreements": disagreements,
        "by_category": _by_category(items, golds, preds),
    }
    return TaskScore(metrics=metrics, per_item=per_item, diagnostics=diagnostics)


def _by_category(items: list[Item], golds: list[str], preds: list[str]) -> dict[str, dict]:
    """Balanced accuracy per ``meta['category']`` (items without one are left out)."""
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        cat = it.meta.get("category")
        if cat not in (None, ""):
            groups.setdefault(str(cat), []).append(i)
    out = {}
    for cat, idx in sorted(groups.items()):
        g = [golds[i] for i in idx]
        m = _metrics(g, [preds[i] for i in idx], len(set(g)))
        out[cat] = {"n": len(idx), "accuracy": m["accuracy"]}
    return out
