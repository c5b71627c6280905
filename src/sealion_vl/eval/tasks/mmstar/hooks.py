"""MMStar hooks: the gold is the ``answer`` letter itself (SEA-HELM's ``label = answer``).

The task model's gold kinds are an option index, a bool or references; a letter column needs
this hook; ``Task.validate`` refuses rows whose letter is not one of the task's labels
(naming them) instead of letting SEA-HELM score them.
"""

from __future__ import annotations


def _gold(task, doc: dict, lang: str) -> str | None:
    value = doc.get(task.lang_spec(lang).params["gold_column"])
    return value.strip() if isinstance(value, str) else None


def to_fields(task, doc: dict, lang: str) -> dict:
    """The gold letter (the mcq scorer refuses items whose gold is not a label)."""
    return {"gold": _gold(task, doc, lang)}
