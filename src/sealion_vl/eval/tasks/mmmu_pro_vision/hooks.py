"""MMMU-Pro (vision setting) hooks: the gold is the ``answer`` letter.

The question and options are inside the image; SEA-HELM sends only the preamble. Rows whose
answer is not one of the letters A-J are refused by ``Task.validate``, naming them.
"""

from __future__ import annotations


def _gold(doc: dict) -> str | None:
    value = doc.get("answer")
    return value.strip() if isinstance(value, str) else None


def to_fields(task, doc: dict, lang: str) -> dict:
    """The gold letter (the mcq scorer refuses an item whose gold is not a label)."""
    return {"gold": _gold(doc)}
