"""MathVista free-form hooks: the unit appended to the question, the answer as gold.

SEA-HELM's question is ``question + f" (Unit: {unit})"`` when the row has a (non-empty) unit.
Rows without an answer are refused, naming them (SEA-HELM would score them as misses).
"""

from __future__ import annotations

from sealion_vl.errors import EvalDataError


def question(doc: dict) -> str:
    """The question as SEA-HELM shows it."""
    unit = doc.get("unit")
    return str(doc.get("question")) + (f" (Unit: {unit})" if unit else "")


def _gold(doc: dict) -> str | None:
    answer = doc.get("answer")
    return str(answer) if answer is not None and str(answer).strip() else None


def load_docs(task, lang: str, *, data_dir=None, limit=None) -> list[dict]:
    """The free_form rows of testmini; refused as a whole if a row has no answer."""
    docs = task.default_load_docs(lang, data_dir=data_dir, limit=limit)
    bad = [str(d.get("pid")) for d in docs if _gold(d) is None]
    if bad:
        raise EvalDataError(
            f"task {task.name!r} [{lang}]: {len(bad)} row(s) have no answer; refusing to score "
            f"them. Rows: {', '.join(bad[:20])}"
        )
    return docs


def to_fields(task, doc: dict, lang: str) -> dict:
    """Question (with unit) and the answer string Math-Verify compares against."""
    return {"values": {"question": question(doc)}, "gold": _gold(doc)}
