"""MMMU-Pro hooks of the standard settings, shared by ``mmmu_pro_10_options`` and
``mmmu_pro_4_options``: SEA-HELM's option list and the gold letter.

SEA-HELM reads the ``options`` column (a Python list written as a string) with
``ast.literal_eval`` and writes one line per option, ``"<letter>: <option stripped>"``, letters
A-J zipped non-strictly (options past the tenth would be dropped). The gold is the ``answer``
letter; ``Task.validate`` refuses rows whose answer is not one of the task's letters or whose
options are unreadable, naming them.
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


def to_fields(task, doc: dict, lang: str) -> dict:
    """Question and option block for the template, and the gold letter."""
    try:
        options = options_text(doc.get("options"))
    except (ValueError, SyntaxError, TypeError) as exc:
        raise EvalDataError(f"options not a list literal ({exc})") from exc
    return {"values": {"question": doc.get("question"), "options": options}, "gold": _gold(doc)}
