"""MMStar hooks: the gold is the ``answer`` letter itself (SEA-HELM's ``label = answer``).

The task model's gold kinds are an option index, a bool or references; a letter column needs
this hook, which also refuses rows whose letter is not one of the task's labels (naming them)
instead of letting SEA-HELM score them.
"""

from __future__ import annotations

from sealion_vl.errors import EvalDataError


def _gold(task, doc: dict, lang: str) -> str | None:
    value = doc.get(task.lang_spec(lang).params["gold_column"])
    return value.strip() if isinstance(value, str) else None


def load_docs(task, lang: str, *, data_dir=None, limit=None) -> list[dict]:
    """SEA-HELM's rows, refused as a whole when any gold letter is missing or unknown."""
    docs = task.default_load_docs(lang, data_dir=data_dir, limit=limit)
    labels = task.lang_spec(lang).labels
    bad = [str(d.get(task.spec.id_column)) for d in docs if _gold(task, d, lang) not in labels]
    if bad:
        raise EvalDataError(
            f"task {task.name!r} [{lang}]: {len(bad)} row(s) have a gold answer that is not one "
            f"of {labels}; refusing to score them. Rows: {', '.join(bad[:20])}"
        )
    return docs


def to_fields(task, doc: dict, lang: str) -> dict:
    """The gold letter (the mcq scorer refuses items whose gold is not a label)."""
    return {"gold": _gold(task, doc, lang)}
