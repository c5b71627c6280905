"""HallusionBench hooks: the gold word from ``gt_answer`` and a stable id per question.

SEA-HELM's label is ``["FALSE", "TRUE"][int(gt_answer)]``. A ``gt_answer`` that is not "0" or
"1" would crash SEA-HELM (or, for "-1", silently become "TRUE"); we refuse such rows, naming
them.

SEA-HELM numbers the rows by their position in the split; a reply file's doc carries no
position, so our id is HallusionBench's own question key
(category/subcategory/set_id/figure_id/question_id), the same for loaded rows and reply docs.
"""

from __future__ import annotations

from sealion_vl.errors import EvalDataError

_WORDS = {"0": "FALSE", "1": "TRUE"}
_KEY = ("category", "subcategory", "set_id", "figure_id", "question_id")


def _gold(doc: dict) -> str | None:
    return _WORDS.get(str(doc.get("gt_answer", "")).strip())


def _id(doc: dict) -> str:
    return "/".join(str(doc.get(k)) for k in _KEY)


def load_docs(task, lang: str, *, data_dir=None, limit=None) -> list[dict]:
    """The split's rows in order, refused as a whole when a ``gt_answer`` is not 0 or 1."""
    docs = task.default_load_docs(lang, data_dir=data_dir, limit=limit)
    bad = [f"{_id(d)} ({d.get('gt_answer')!r})" for d in docs if _gold(d) is None]
    if bad:
        raise EvalDataError(
            f"task {task.name!r} [{lang}]: {len(bad)} row(s) have a gt_answer other than "
            f"'0' or '1'; refusing to score them. Rows: {', '.join(bad[:20])}"
        )
    return docs


def to_fields(task, doc: dict, lang: str) -> dict:
    """Gold word and id; the mcq scorer refuses an item whose gold is None."""
    return {"gold": _gold(doc), "id": _id(doc)}
