"""The per-item reply store that makes an evaluation resumable after any kill.

Every finished request is appended as one JSON line, keyed by a hash of everything that
decides the reply (model, task version and spec, the prompt text and images, the seed and
the generation settings). A rerun of the same command looks each item up first and only
generates what is missing, so a SIGKILL at any moment loses at most the requests in flight.

Why an append-only JSONL file: a line is written with one ``write`` call and flushed; a kill
can at worst leave one truncated last line, which the reader drops (and the next writer cuts
off) instead of failing. Nothing is ever rewritten in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from sealion_vl.eval.types import Item


def item_key(identity: dict, task_fingerprint: str, item: Item, seed: int, settings: dict) -> str:
    """A stable hash of everything that decides this item's reply in this run.

    Args:
        identity: what names the model (``{"model": ..., "endpoint": ...}``).
        task_fingerprint: :meth:`Task.fingerprint` for the item's language (version + spec).
        item: the prepared item (its id, prompt text and image bytes are hashed).
        seed: the run's seed.
        settings: the resolved generation settings of the request.
    """
    h = hashlib.sha256()
    head = {
        "identity": identity,
        "task": task_fingerprint,
        "id": item.id,
        "lang": item.lang,
        "prompt": item.prompt,
        "max_tokens": item.max_tokens,
        "seed": seed,
        "settings": settings,
    }
    if item.conversation is not None:  # its texts and roles (images are hashed below)
        head["conversation"] = [
            [m["role"], m["content"] if isinstance(m["content"], str) else _texts(m["content"])]
            for m in item.conversation
        ]
    h.update(json.dumps(head, sort_keys=True, ensure_ascii=False).encode())
    for img in item.images:
        h.update(hashlib.sha256(img).digest())
    return h.hexdigest()


def _texts(parts: list[dict]) -> list:
    return [p.get("text") if p.get("type") == "text" else p.get("type") for p in parts]


class ReplyStore:
    """Replies by key, read from and appended to ``path`` (one JSON object per line).

    Each record is ``{"key", "response", "error", "usage"}``; ``response`` is None when the
    request failed for this item (a broken image, a context overflow), and ``error`` then
    says why. Error items are stored too: a rerun does not retry them unless ``retry_errors``.
    """

    def __init__(self, path: Path, *, retry_errors: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._load(retry_errors)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open on purpose

    def _load(self, retry_errors: bool) -> None:
        if not self.path.exists():
            return
        good_end = 0
        with open(self.path, "rb") as fh:
            data = fh.read()
        pos = 0
        for raw in data.splitlines(keepends=True):
            pos += len(raw)
            if not raw.endswith(b"\n"):
                break  # a line cut by a kill: drop it
            try:
                rec = json.loads(raw)
            except ValueError:
                break
            good_end = pos
            if rec.get("error") and retry_errors:
                continue
            self._records[rec["key"]] = rec
        if good_end < len(data):
            with open(self.path, "r+b") as fh:  # cut the torn tail so appends stay parseable
                fh.truncate(good_end)

    def get(self, key: str) -> dict | None:
        """The stored record for ``key``, or None when it was never finished."""
        return self._records.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def put(self, key: str, response: str | None, *, error: str | None = None, **extra: Any):
        """Record one finished item durably (flushed and fsynced before returning)."""
        rec = {"key": key, "response": response, "error": error, **extra}
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._records[key] = rec

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> ReplyStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
