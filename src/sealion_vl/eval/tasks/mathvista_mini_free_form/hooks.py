"""MathVista free-form hooks: the unit appended to the question, the answer as gold.

SEA-HELM's question is ``question + f" (Unit: {unit})"`` when the row has a (non-empty) unit.
Rows without an answer get gold None, which ``Task.validate`` refuses, naming them (SEA-HELM
would score them as misses).
"""

from __future__ import annotations


def question(doc: dict) -> str:
    """The question as SEA-HELM shows it."""
    unit = doc.get("unit")
    return str(doc.get("question")) + (f" (Unit: {unit})" if unit else "")


def _gold(doc: dict) -> str | None:
    answer = doc.get("answer")
    return str(answer) if answer is not None and str(answer).strip() else None


def to_fields(task, doc: dict, lang: str) -> dict:
    """Question (with unit) and the answer string Math-Verify compares against."""
    return {"values": {"question": question(doc)}, "gold": _gold(doc)}
