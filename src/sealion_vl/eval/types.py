"""The shapes every part of evaluation passes around: one prepared item, one task's score.

Kept in one small module so tasks, scorers, the runner, the store and the report agree on
them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Item:
    """One question as the model sees it, plus what scoring needs.

    Attributes:
        task: task name (``cvqa``).
        lang: language code of the run (``id``).
        id: the dataset row's own id, as a string (CVQA ``ID``, MARVL ``id``, ...).
        prompt: the whole user text, exactly as SEA-HELM formats it.
        images: encoded image files (JPEG/PNG bytes), sent after the text in this order.
        gold: the gold label word (MCQ), list of reference captions (XM3600), or None (IFEval).
        labels: the label words of the task in this language (``["A", "B", "C", "D"]``,
            ``["Benar", "Salah"]``); empty for generative tasks.
        answer_tag: the answer tag of this task and language (``"Jawaban:"``); may be "".
        max_tokens: generation budget SEA-HELM gives this task.
        doc: the public dataset row with image columns removed (JSON-serialisable); scorers
            read task-specific fields (IFEval ``kwargs``) from it.
        meta: extra fields for breakdowns (``category``); JSON-serialisable.
        conversation: the whole conversation, for tasks whose model was trained on another
            shape than SEA-HELM's one user turn (nano: a system turn, images before the
            text); image parts hold bytes (``{"type": "image", "image": b"..."}``).
    """

    task: str
    lang: str
    id: str
    prompt: str
    images: list[bytes] = field(default_factory=list)
    gold: Any = None
    labels: list[str] = field(default_factory=list)
    answer_tag: str = ""
    max_tokens: int = 256
    doc: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    conversation: list[dict] | None = None

    def messages(self) -> list[dict]:
        """One user turn: the text first, then every image (SEA-HELM's order); or the
        task's own ``conversation``."""
        if self.conversation is not None:
            return self.conversation
        content: list[dict] = [{"type": "text", "text": self.prompt}]
        content += [{"type": "image", "image": b} for b in self.images]
        return [{"role": "user", "content": content}]


@dataclass
class TaskScore:
    """What a scorer returns for one task in one language of one run.

    Attributes:
        metrics: SEA-HELM's metric names and values (``{"accuracy": .., "normalized_accuracy":
            .., "macro_f1": .., "null_count": ..}``), plus the headline under its own name.
        per_item: one dict per item, same order as the items: at least ``extracted``,
            ``gold`` and ``score`` (number or bool); scorers may add fields
            (``robust_extracted``, ``lang_detected``, ``passed_instruction``).
        diagnostics: extra, non-SEA-HELM numbers (robust extraction accuracy, the ids where
            the two extractions disagree, ...).
    """

    metrics: dict[str, float | int]
    per_item: list[dict]
    diagnostics: dict = field(default_factory=dict)
