"""Free-form math answers scored with Math-Verify, as SEA-HELM's ``MathMetric`` does.

SEA-HELM (``mathvista_mini_free_form``) parses the **whole** reply and the gold answer with
``math_verify.parse`` (its default extraction: LaTeX with ``\\boxed{}`` first, then plain
expressions) and counts an item correct when ``math_verify.verify(gold, reply)`` holds. The
score is the mean x 100; its normalised form has baseline 0, so both numbers are equal.

SEA-HELM quirk: ``MathMetric`` defines no answer regex, so the base class's extraction fails
and falls back to the whole stripped reply; the ``boxed{`` answer tag of the task config is
never used by the scorer. We do the same: Math-Verify itself finds the boxed answer.
SEA-HELM quirk: a reply that makes ``parse`` raise becomes an empty parse (scored 0), and a
missing reply (None) is scored as the empty string.

Math-Verify bounds parsing and comparison with ``signal.alarm``, which only works on the
main thread; elsewhere (a runner's worker thread) we switch its timeouts off, which gives
the same answers except on pathological expressions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.types import Item, TaskScore

_TIMEOUT_S = 5  # Math-Verify's own default for parse and verify, which SEA-HELM keeps

# Math-Verify warns on every call when its timeout is off; that is our deliberate choice.
logging.getLogger("math_verify").setLevel(logging.ERROR)
logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)


def _timeout() -> int | None:
    """Math-Verify's timeout where it can work (main thread), else None (no alarm)."""
    return _TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _import():
    try:
        from math_verify import parse, verify
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise EvalDataError(
            "the mathans scorer needs the math-verify package (pip install math-verify==0.9.0)"
        ) from exc
    return parse, verify


def safe_parse(text: str) -> list:
    """``math_verify.parse(text)``, or ``[]`` when it raises (SEA-HELM's ``safe_parse``)."""
    parse, _ = _import()
    try:
        return parse(text, parsing_timeout=_timeout())
    except Exception:  # noqa: BLE001 - SEA-HELM turns every parse error into "no answer"
        return []


def _shown(parsed: list) -> str | None:
    """The text Math-Verify extracted (its second element), for per-item records."""
    if not parsed:
        return None
    return str(parsed[-1]) if len(parsed) > 1 else str(parsed[0])


def check(gold: str, response: str | None) -> tuple[bool, str | None]:
    """Whether ``response`` states ``gold`` (Math-Verify) and what was extracted from it.

    Args:
        gold: the dataset's answer string (MathVista ``answer``, e.g. ``"1.5"``).
        response: the model's whole reply; None (a failed request) counts as ``""``.
    """
    _, verify = _import()
    pred = safe_parse((response if response is not None else "").strip())
    ref = safe_parse(str(gold))
    try:
        ok = bool(verify(ref, pred, timeout_seconds=_timeout()))
    except Exception:  # noqa: BLE001 - a comparison that cannot be made is a miss
        ok = False
    return ok, _shown(pred)


def score(items: Sequence[Item], responses: Sequence[str | None], *, lang: str) -> TaskScore:
    """Math-Verify accuracy of ``responses`` against each item's ``gold`` answer.

    Returns SEA-HELM's ``math_verify_score`` and ``normalized_math_verify_score`` (both the
    mean x 100; the baseline of free-form math is 0) and per item ``extracted`` (what
    Math-Verify read from the reply), ``gold`` and ``score`` (0 or 1).

    Raises:
        EvalDataError: if the numbers of items and responses differ, or an item has no gold.
    """
    if len(items) != len(responses):
        raise EvalDataError(f"mathans ({lang}): {len(items)} items but {len(responses)} responses")
    missing = [it.id for it in items if it.gold is None or str(it.gold).strip() == ""]
    if missing:
        raise EvalDataError(f"mathans ({lang}): items without a gold answer: {missing[:10]}")
    per_item = []
    for it, reply in zip(items, responses, strict=True):
        ok, extracted = check(str(it.gold), reply)
        per_item.append({"extracted": extracted, "gold": it.gold, "score": int(ok)})
    mean = sum(p["score"] for p in per_item) / len(per_item) if per_item else 0.0
    # SEA-HELM's normalize_score(x, 0, 1) is x itself (and never negative).
    metrics = {
        "math_verify_score": 100 * mean,
        "normalized_math_verify_score": 100 * max(mean, 0.0),
    }
    return TaskScore(metrics=metrics, per_item=per_item, diagnostics={"n": len(per_item)})
