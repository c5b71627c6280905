"""Training records from JSONL (+ image files), HF ``datasets`` and WebDataset shards.

Every source becomes the same :class:`Sample`: internal :class:`~sealion_vl.messages.Message`
turns whose image parts hold a decoded ``PIL.Image`` (through :func:`sealion_vl.media.load_image`,
so training sees the pixels chat and serve see). Reading is two stages:

1. ``read_jsonl`` / ``read_tar`` / ``read_dataset`` turn raw rows into *normalised records*,
   plain dicts ``{"id", "kind", "messages" (HF-style dicts, image sources resolved), "meta"}``,
   or ``{"id", "error", "detail", "meta"}`` for a row that cannot be used. No image is decoded.
2. :func:`iter_samples` decodes the images, checks the length and yields samples.

A bad row never raises: it is skipped and recorded in a :class:`SkipReport` under one of
:data:`REASONS`. Only mistakes in the call itself (a source that does not exist, an unknown
``kind``) raise, and they do so when :func:`iter_samples` is called, not mid-epoch.

The record shapes recognised are described in :mod:`sealion_vl.data.records`; the
readers live in :mod:`sealion_vl.data.readers` (all re-exported here).

Relative image paths resolve against ``image_root`` or else the JSONL's (dataset's) folder.
http(s) URLs are not fetched unless ``fetch_urls=True`` (a training run should not depend on
the network); ``data:`` URIs and embedded bytes are always fine.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from sealion_vl.data.readers import open_source, read_dataset, read_jsonl, read_tar
from sealion_vl.data.records import IMAGE_MARKER, URL_SCHEME, SkipRecord, caption_to_messages
from sealion_vl.errors import MediaError, MessageFormatError
from sealion_vl.media import MediaLimits, load_image
from sealion_vl.messages import Message, parse_conversation

__all__ = [
    "IMAGE_MARKER", "REASONS", "Sample", "SkipReport", "caption_to_messages", "iter_samples",
    "read_dataset", "read_jsonl", "read_tar",
]  # fmt: skip

#: Why a row was skipped (fixed strings: the trainer and the report readers key on them).
REASONS = (
    "missing_image", "corrupt_image", "image_token_mismatch", "empty_text", "too_long",
    "bad_record", "missing_media",
)  # fmt: skip
_KINDS = ("auto", "caption", "conversation")


@dataclass
class Sample:
    """One training example.

    Attributes:
        id: The record's ``id`` / ``key`` / ``__key__``, else ``"{file}:{line}"``.
        messages: Internal-form turns; image parts hold a decoded RGB ``PIL.Image`` in
            ``Part.source``.
        kind: ``"caption"`` (user: image [+ prompt], assistant: caption) or ``"conversation"``.
        meta: Source file/shard/dataset, line or row index, and the record's other scalar
            fields (``lang``, ``locale``...); ``num_tokens`` when a counter was given.
    """

    id: str
    messages: list[Message]
    kind: Literal["caption", "conversation"]
    meta: dict = field(default_factory=dict)

    @property
    def images(self) -> list[Image.Image]:
        """The decoded images, in conversation order."""
        return [p.source for m in self.messages for p in m.parts if p.type == "image"]


class SkipReport:
    """Counts and ids of skipped rows, per reason; written once at the end of a pass.

    Ids are listed up to ``max_ids`` per reason (counts stay exact), plus the first
    ``max_examples`` details per reason so a log shows *why* without opening the data.
    """

    def __init__(self, max_ids: int = 1000, max_examples: int = 20) -> None:
        self.max_ids = max_ids
        self.max_examples = max_examples
        self.counts: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.ids: dict[str, list[str]] = {r: [] for r in REASONS}
        self.examples: dict[str, list[dict]] = {r: [] for r in REASONS}
        self.yielded = 0

    def add(self, id: str, reason: str, detail: str = "") -> None:
        if reason not in self.counts:
            raise ValueError(f"unknown skip reason {reason!r}; expected one of {REASONS}")
        self.counts[reason] += 1
        if len(self.ids[reason]) < self.max_ids:
            self.ids[reason].append(str(id))
        if len(self.examples[reason]) < self.max_examples:
            self.examples[reason].append({"id": str(id), "detail": detail[:500]})

    @property
    def total_skipped(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: SkipReport) -> None:
        """Add another report's counts and ids (e.g. one per DataLoader worker)."""
        self.yielded += other.yielded
        for r in REASONS:
            self.counts[r] += other.counts[r]
            self.ids[r].extend(other.ids[r][: self.max_ids - len(self.ids[r])])
            room = self.max_examples - len(self.examples[r])
            self.examples[r].extend(other.examples[r][:room])

    def to_dict(self) -> dict:
        return {
            "yielded": self.yielded,
            "total_skipped": self.total_skipped,
            "reasons": {
                r: {
                    "count": self.counts[r],
                    "ids": list(self.ids[r]),
                    "ids_truncated": self.counts[r] > len(self.ids[r]),
                    "examples": list(self.examples[r]),
                }
                for r in REASONS
            },
        }

    def summary(self) -> str:
        parts = [f"{r}={n}" for r, n in self.counts.items() if n]
        return f"{self.yielded} samples, {self.total_skipped} skipped" + (
            f" ({', '.join(parts)})" if parts else ""
        )

    def write(self, path: str | os.PathLike) -> Path:
        """Write the report as JSON atomically (temp file in the same folder, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_dict(), fh, ensure_ascii=False, indent=2)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


_AV = ("video", "audio")


def _local(src: str) -> tuple[str, str | None]:
    """``src``'s URL scheme ("" for a path) and the local file it names (None if remote)."""
    if src[:5].lower() == "data:":
        return "data", None
    scheme = URL_SCHEME.match(src).group(1).lower() if URL_SCHEME.match(src) else ""
    if scheme == "file":
        return scheme, urllib.parse.unquote(urllib.parse.urlsplit(src).path)
    return scheme, None if scheme else src


def _check_av(kind: str, src: Any) -> None:
    """A local video/audio file must exist now, not fail the processor mid-training.

    Videos and audio are decoded by the model's processor when the batch is built; a missing
    file found there would end the run. Remote and in-memory sources are left to the processor.
    """
    local = _local(src)[1] if isinstance(src, str) else None
    if local is not None and not Path(local).is_file():
        raise SkipRecord("missing_media", f"no such {kind} file: {local}")


def _load(src: Any, limits: MediaLimits, fetch_urls: bool) -> Image.Image:
    remote = False
    if isinstance(src, str):
        scheme, local = _local(src)
        remote = scheme in ("http", "https")
        if remote and not fetch_urls:
            raise SkipRecord("missing_image", f"URL not fetched in training: {src[:120]}")
        if local is not None and not limits.allow_local_files:
            raise SkipRecord("missing_image", f"local files are not allowed by the limits: {local}")
        if local is not None and not Path(local).is_file():
            raise SkipRecord("missing_image", f"no such file: {local}")
    try:
        return load_image(src, limits)
    except MediaError as exc:
        raise SkipRecord("missing_image" if remote else "corrupt_image", str(exc)) from exc


def iter_samples(
    source: str | os.PathLike | Any,
    *,
    image_root: str | os.PathLike | None = None,
    split: str = "train",
    kind: str = "auto",
    caption_prompt: str = "",
    report: SkipReport,
    max_tokens: int | None = None,
    count_tokens: Callable[[Sample], int] | None = None,
    limits: MediaLimits | None = None,
    fetch_urls: bool = False,
) -> Iterator[Sample]:
    """Stream training samples from any supported source, skipping and reporting bad rows.

    Args:
        source: A ``.jsonl``/``.jsonl.gz`` file; ``.tar`` shards; a folder of either; a glob
            or ``{000..009}`` brace pattern; a list of these; a ``datasets`` Dataset /
            DatasetDict / IterableDataset; a ``save_to_disk`` folder; or a folder (or file)
            of parquet/csv/arrow that ``datasets.load_dataset`` reads.
        image_root: Where relative image paths start (default: the JSONL's/dataset's folder).
        split: Split taken from a DatasetDict or a ``load_dataset`` folder.
        kind: ``"auto"``, ``"caption"`` or ``"conversation"``; other shapes are skipped.
        caption_prompt: User text after the image in caption samples (default none).
        report: Receives every skipped row (reason, id, detail) and the yielded count.
        max_tokens: Skip samples longer than this (``too_long``); needs ``count_tokens``.
        count_tokens: ``sample -> token count``; the count is kept in ``meta["num_tokens"]``.
        limits: Media limits for decoding (default :class:`MediaLimits`).
        fetch_urls: Download http(s) images (off: a URL counts as ``missing_image``).

    Returns:
        A generator; nothing is read until it is iterated. Raises (at call time) only for a
        source that does not exist or cannot be read at all, or invalid arguments.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if max_tokens is not None and count_tokens is None:
        raise ValueError("max_tokens needs count_tokens (a function sample -> token count)")
    limits = limits or MediaLimits()
    thunks = open_source(source, image_root, split, kind, caption_prompt, limits)
    return _samples(thunks, report, max_tokens, count_tokens, limits, fetch_urls)


def _samples(thunks, report, max_tokens, count_tokens, limits, fetch_urls) -> Iterator[Sample]:
    for thunk in thunks:
        for rec in thunk():
            if "error" in rec:
                report.add(rec["id"], rec["error"], rec["detail"])
                continue
            try:
                messages = parse_conversation(rec["messages"])
                for part in (p for m in messages for p in m.parts if p.type == "image"):
                    part.source = _load(part.source, limits, fetch_urls)
                for part in (p for m in messages for p in m.parts if p.type in _AV):
                    _check_av(part.type, part.source)
            except MessageFormatError as exc:
                report.add(rec["id"], "bad_record", str(exc))
                continue
            except SkipRecord as skip:
                report.add(rec["id"], skip.reason, skip.detail)
                continue
            sample = Sample(rec["id"], messages, rec["kind"], rec["meta"])
            if count_tokens is not None:
                try:
                    n = int(count_tokens(sample))
                except Exception as exc:  # a tokenizer choking on one row must not end the run
                    report.add(sample.id, "bad_record", f"count_tokens failed: {exc!r}")
                    continue
                sample.meta["num_tokens"] = n
                if max_tokens is not None and n > max_tokens:
                    report.add(sample.id, "too_long", f"{n} tokens > max_tokens={max_tokens}")
                    continue
            report.yielded += 1
            yield sample
