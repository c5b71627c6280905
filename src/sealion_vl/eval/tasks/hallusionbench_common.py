"""HallusionBench hooks, shared by ``hallusionbench`` (split non_image) and
``hallusionbench_image`` (split image): the gold word from ``gt_answer`` and a stable id.

SEA-HELM's label is ``["FALSE", "TRUE"][int(gt_answer)]``. A ``gt_answer`` that is not "0" or
"1" would crash SEA-HELM (or, for "-1", silently become "TRUE"); its gold here is None, which
``Task.validate`` refuses, naming the rows.

SEA-HELM numbers the rows by their position in the split; a reply file's doc carries no
position, so our id is HallusionBench's own question key
(category/subcategory/set_id/figure_id/question_id), the same for loaded rows and reply docs.
"""

from __future__ import annotations

_WORDS = {"0": "FALSE", "1": "TRUE"}
_KEY = ("category", "subcategory", "set_id", "figure_id", "question_id")


def _gold(doc: dict) -> str | None:
    return _WORDS.get(str(doc.get("gt_answer", "")).strip())


def _id(doc: dict) -> str:
    return "/".join(str(doc.get(k)) for k in _KEY)


def to_fields(task, doc: dict, lang: str) -> dict:
    """Gold word (None for a gt_answer other than "0"/"1": refused) and id."""
    return {"gold": _gold(doc), "id": _id(doc)}
