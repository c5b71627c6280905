"""ERQA hooks: SEA-HELM's question rewrite, the image list, and the gold letter.

SEA-HELM's loader rewrites each question before formatting it:

1. the suffix " Please answer directly with only the letter of the correct option and
   nothing else." is removed (its own answer format replaces it);
2. " Choices:" becomes "\\nChoices:";
3. ``re.sub(r" (A|B|C|D). ", r"\\n\\1.  ", q)`` puts each option on its own line.

SEA-HELM quirk kept: in step 3 the "." is unescaped, so it matches any character (" A, "
or " DX " in the question text are rewritten too), and the replacement writes two spaces
after the letter's dot.
"""

from __future__ import annotations

import re

from sealion_vl.errors import EvalDataError
from sealion_vl.eval import data

_SUFFIX = " Please answer directly with only the letter of the correct option and nothing else."
_OPTION = re.compile(r" (A|B|C|D). ")  # SEA-HELM quirk: unescaped "." (any character)


def question(text: str) -> str:
    """The question as SEA-HELM shows it (see the module docstring)."""
    text = text.removesuffix(_SUFFIX).replace(" Choices:", "\nChoices:")
    return _OPTION.sub(r"\n\1.  ", text)


def _gold(doc: dict) -> str | None:
    value = doc.get("answer")
    return value.strip() if isinstance(value, str) else None


def load_docs(task, lang: str, *, data_dir=None, limit=None) -> list[dict]:
    """Rows of the test split with ``images`` as a list of encoded bytes."""
    import datasets

    src = task.source(lang)
    ds = data.load_rows(src.path, src.config, src.split, data_dir=data_dir)
    if "images" not in ds.column_names:
        raise EvalDataError(
            f"task {task.name!r}: dataset {src.path!r} has no 'images' column "
            f"(columns: {ds.column_names})"
        )
    ds = ds.cast_column("images", datasets.Sequence(datasets.Image(decode=False)))
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    docs = ds.to_list()
    for d in docs:
        d["images"] = [data.image_bytes(x) for x in d["images"] or []]
    return docs  # Task.validate refuses rows whose gold letter is not a label


def to_fields(task, doc: dict, lang: str) -> dict:
    """Rewritten question, every image of the row in order, gold letter."""
    images = [data.image_bytes(x) for x in doc.get("images") or []]
    text = doc.get("question")
    return {
        "values": {"question": question(text) if isinstance(text, str) else text},
        "images": images,
        "gold": _gold(doc),
    }
