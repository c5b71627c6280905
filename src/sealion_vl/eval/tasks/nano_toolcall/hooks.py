"""nano_toolcall: nano's held-out toolcall items (loading, prompts, scoring: ``nano_common``)."""

from __future__ import annotations

from sealion_vl.eval.tasks import nano_common

KIND = "toolcall"


def load_docs(task, lang: str, *, data_dir=None, limit=None) -> list[dict]:
    """The held-out toolcall records of ``lang`` (generated deterministically if absent)."""
    return nano_common.load_docs(task, lang, KIND, data_dir=data_dir, limit=limit)


def to_fields(task, doc: dict, lang: str) -> dict:
    """The conversation nano is evaluated on: prompt text, images, gold."""
    return nano_common.to_fields(task, doc, lang)


def score(items, responses, *, lang: str):
    """nano.evaluate's per-item rule (score_exact)."""
    return nano_common.score_exact(items, responses, lang=lang)
