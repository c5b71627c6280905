"""SEA-IFEval scoring with SEA-HELM's numbers (its ``IFEvalMetric``, v1.2.x).

Each reply is judged by its instruction's checker (:mod:`.ifeval_checks`), then by the language
gate (:mod:`.langgate`): it scores only if both pass. The metrics carry SEA-HELM's names and
meanings: ``overall_count``, ``overall_pass``, ``overall_acc`` (checker only, x100),
``correct_language_rate`` (a 0-1 fraction), ``overall_lang_normalized_acc`` (the headline,
x100) and ``subcategories`` ({instruction id: 0-1 checker pass rate}, sorted by id).

Where SEA-HELM's summary raises (no counted item, no item passing, none in the right language)
its run records the headline as 0; we return the same keys with the headline 0 instead.

Each item's ``doc`` is a row of ``aisingapore/Instruction-Following-IFEval`` (config = language,
split ``eval``): ``prompts`` (list of ``{"text": ...}``; SEA-HELM sends ``prompts[0].text``),
``kwargs`` (list of dicts; ``kwargs[0]`` holds the arguments, unused ones null) and
``metadata`` (``category``, e.g. ``"language"``, and ``subcategory`` = the instruction id).
"""

from __future__ import annotations

from collections import defaultdict

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.metrics.ifeval_checks import NO_WORD_COUNT_LANGS, check
from sealion_vl.eval.metrics.langgate import detect_language, language_ok
from sealion_vl.eval.types import Item, TaskScore

HEADLINE = "overall_lang_normalized_acc"
_WORD_COUNT_ID = "length_constraints:number_words"


def _row_fields(item: Item, lang: str) -> tuple[str, str, dict]:
    """(instruction id, category, kwargs[0]) of one item, or a clear error naming the row."""
    doc = item.doc or {}
    meta = doc.get("metadata")
    kwargs = doc.get("kwargs")
    where = f"sea_ifeval [{lang}] item {item.id!r}"
    if not isinstance(meta, dict) or not meta.get("subcategory"):
        raise EvalDataError(f"{where}: doc has no metadata.subcategory (the instruction id)")
    if not isinstance(kwargs, list) or not kwargs or not isinstance(kwargs[0], dict):
        raise EvalDataError(f"{where}: doc.kwargs must be a non-empty list of dicts")
    return str(meta["subcategory"]), str(meta.get("category") or ""), kwargs[0]


def _judge(item: Item, response: str | None, lang: str) -> dict:
    """One item's verdict: checker, detected language, both together, and whether it counts."""
    instruction_id, category, kwargs = _row_fields(item, lang)
    row = {"extracted": None, "gold": instruction_id, "score": False}
    if lang in NO_WORD_COUNT_LANGS and instruction_id == _WORD_COUNT_ID:
        # SEA-HELM skips word counts for languages written without spaces and leaves them out
        # of the denominator.
        detected = detect_language(response) if response is not None else ""
        return row | {
            "passed_instruction": False,
            "lang_detected": detected,
            "in_language": response is not None and language_ok(detected, lang),
            "counted": False,
        }
    if response is None:
        # A failed generation is a fail. (SEA-HELM would score "" instead; see the module doc.)
        return row | {
            "passed_instruction": False,
            "lang_detected": "",
            "in_language": False,
            "counted": True,
        }
    passed = check(instruction_id, response, kwargs, lang)
    expected = lang
    if category == "language":
        expected = {k: v for k, v in kwargs.items() if v is not None}.get("response_language")
        if not expected:
            raise EvalDataError(
                f"sea_ifeval [{lang}] item {item.id!r}: language item lacks response_language"
            )
    detected = detect_language(response)
    in_language = language_ok(detected, str(expected))
    return row | {
        "score": bool(passed and in_language),
        "passed_instruction": bool(passed),
        "lang_detected": detected,
        "counted": True,
        "in_language": in_language,
    }


def summarize(per_item: list[dict]) -> tuple[dict, dict]:
    """SEA-HELM's summary numbers over the counted items, plus why it would have raised."""
    rows = [r for r in per_item if r["counted"]]
    n = len(rows)
    passed = sum(r["passed_instruction"] for r in rows)
    in_language = sum(r["in_language"] for r in rows)
    both = sum(r["score"] for r in rows)
    by_id: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        by_id[r["gold"]].append(r["passed_instruction"])
    metrics = {
        "overall_count": n,
        "overall_pass": passed,
        "overall_acc": passed / n * 100 if n else 0.0,
        "correct_language_rate": in_language / n if n else 0.0,
        HEADLINE: both / n * 100 if n else 0.0,
        "subcategories": {k: sum(v) / len(v) for k, v in sorted(by_id.items())},
    }
    diagnostics: dict = {}
    if n == 0:
        diagnostics["seahelm_summary_raises"] = "no counted item (division by zero)"
    elif in_language == 0:
        diagnostics["seahelm_summary_raises"] = "no reply in the expected language"
    elif both == 0:
        diagnostics["seahelm_summary_raises"] = "no reply passes both checker and language"
    return metrics, diagnostics


def score(items: list[Item], responses: list[str | None], *, lang: str) -> TaskScore:
    """Score SEA-IFEval replies for one language exactly as SEA-HELM's ``IFEvalMetric`` does.

    ``responses[i]`` is the raw reply to ``items[i]`` (None = failed generation, a fail).
    Returns SEA-HELM's metrics (headline ``overall_lang_normalized_acc``) and per item
    ``extracted`` (None), ``gold`` (instruction id), ``score`` (checker AND language),
    ``passed_instruction``, ``lang_detected``, ``in_language`` and ``counted``. Never raises
    where SEA-HELM's summary would (those runs record 0); raises :class:`EvalDataError` on
    malformed rows.
    """
    if len(items) != len(responses):
        raise EvalDataError(
            f"sea_ifeval [{lang}]: {len(items)} items but {len(responses)} responses"
        )
    per_item = [_judge(item, resp, lang) for item, resp in zip(items, responses, strict=True)]
    metrics, diagnostics = summarize(per_item)
    diagnostics["none_responses"] = sum(r is None for r in responses)
    return TaskScore(metrics=metrics, per_item=per_item, diagnostics=diagnostics)
