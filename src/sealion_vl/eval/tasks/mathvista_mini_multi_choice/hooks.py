"""MathVista multiple-choice hooks: SEA-HELM's choice list and the gold letter.

SEA-HELM writes the choices as ``"(A) <choice>"`` lines (letters A-Z zipped non-strictly) and
takes the letter of ``choices.index(answer)``: the first choice equal to the answer. An answer
that is not among the choices makes SEA-HELM's loader crash; its gold here is None, which
``Task.validate`` refuses, naming the rows.
"""

from __future__ import annotations

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def choices_text(choices: list) -> str:
    """The ``{choices_text}`` block as SEA-HELM formats it."""
    return "\n".join(f"({k}) {c}" for k, c in zip(_LETTERS, choices, strict=False))


def gold_letter(doc: dict) -> str | None:
    """The letter of the first choice equal to ``answer``, or None if there is none."""
    choices = doc.get("choices") or []
    answer = doc.get("answer")
    if answer not in choices or choices.index(answer) >= len(_LETTERS):
        return None
    return _LETTERS[choices.index(answer)]


def to_fields(task, doc: dict, lang: str) -> dict:
    """Question, lettered choices and the gold letter."""
    return {
        "values": {"question": doc.get("question"), "choices_text": choices_text(
            doc.get("choices") or [])},
        "gold": gold_letter(doc),
    }  # fmt: skip
