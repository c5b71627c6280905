"""MMMU-Pro (standard settings) hooks: SEA-HELM's option list and the gold letter.

SEA-HELM reads the ``options`` column (a Python list written as a string) with
``ast.literal_eval`` and writes one line per option, ``"<letter>: <option stripped>"``, letters
A-J zipped non-strictly (options past the tenth would be dropped). The gold is the ``answer``
letter; rows whose answer is not one of the task's letters are refused, naming them.
"""

from __future__ import annotations

import ast

from sealion_vl.errors import EvalDataError

_LETTERS = "ABCDEFGHIJ"


def options_text(options: str | list) -> str:
    """The ``{options}`` block as SEA-HELM formats it."""
    values = ast.literal_eval(options) if isinstance(options, str) else list(options)
    return "\n".join(f"{k}: {str(o).strip()}" for k, o in zip(_LETTERS, values, strict=False))


def _gold(doc: dict) -> str | None:
    value = doc.get("answer")
    return value.strip() if isinstance(value, str) else None


def _check(task, doc: dict, lang: str) -> str | None:
    """Why ``doc`` cannot be scored, or None."""
    if _gold(doc) not in task.lang_spec(lang).labels:
        return f"{doc.get('id')} (answer {doc.get('answer')!r})"
    try:
        options_text(doc.get("options"))
    except (ValueError, SyntaxError, TypeError):
        return f"{doc.get('id')} (options not a list literal)"
    return None


def load_docs(task, lang: str, *, data_dir=None, limit=None) -> list[dict]:
    """The config's rows; refused as a whole when an answer or option list is unusable."""
    docs = task.default_load_docs(lang, data_dir=data_dir, limit=limit)
    bad = [why for d in docs if (why := _check(task, d, lang))]
    if bad:
        raise EvalDataError(
            f"task {task.name!r} [{lang}]: {len(bad)} row(s) cannot be scored (answer not in "
            f"{task.lang_spec(lang).labels} or unreadable options): {', '.join(bad[:20])}"
        )
    return docs


def to_fields(task, doc: dict, lang: str) -> dict:
    """Question and option block for the template, and the gold letter."""
    try:
        options = options_text(doc.get("options"))
    except (ValueError, SyntaxError, TypeError) as exc:
        raise EvalDataError(
            f"task {task.name!r} [{lang}]: row {doc.get('id')!r}: options is not a list "
            f"literal ({exc})"
        ) from exc
    return {"values": {"question": doc.get("question"), "options": options}, "gold": _gold(doc)}
