"""MMMU-Pro (vision setting) hooks: the gold is the ``answer`` letter.

The question and options are inside the image; SEA-HELM sends only the preamble. Rows whose
answer is not one of the letters A-J are refused, naming them.
"""

from __future__ import annotations

from sealion_vl.errors import EvalDataError


def _gold(doc: dict) -> str | None:
    value = doc.get("answer")
    return value.strip() if isinstance(value, str) else None


def load_docs(task, lang: str, *, data_dir=None, limit=None) -> list[dict]:
    """The config's rows; refused as a whole when an answer is not a known letter."""
    docs = task.default_load_docs(lang, data_dir=data_dir, limit=limit)
    labels = task.lang_spec(lang).labels
    bad = [f"{d.get('id')} ({d.get('answer')!r})" for d in docs if _gold(d) not in labels]
    if bad:
        raise EvalDataError(
            f"task {task.name!r} [{lang}]: {len(bad)} row(s) have an answer not in {labels}; "
            f"refusing to score them. Rows: {', '.join(bad[:20])}"
        )
    return docs


def to_fields(task, doc: dict, lang: str) -> dict:
    """The gold letter (the mcq scorer refuses an item whose gold is not a label)."""
    return {"gold": _gold(doc)}
