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

Record shapes recognised (``kind="auto"``):

* conversation: ``{"messages": [...]}`` in OpenAI or HF style, image parts carrying their own
  source, or bare ``{"type": "image"}`` placeholders / ``<image>`` text markers filled in order
  from a top-level ``"images"`` (or ``"image"``) list; the ShareGPT form
  ``{"conversations": [{"from": "human", "value": "<image>\\n..."}], "images": [...]}`` too.
* caption: an image key (``image``, ``image_path``, ``image_url``, ``url``, ``file_name``...)
  and a text key (``caption``, ``text``, ``captions``). A ``captions`` list (XM3600 style)
  gives ONE sample with the first non-empty caption; the whole list is kept in
  ``meta["captions"]`` (one sample per reference would repeat each image several times per
  epoch, which over-weights multi-reference datasets).

Relative image paths resolve against ``image_root`` or else the JSONL's (dataset's) folder.
http(s) URLs are not fetched unless ``fetch_urls=True`` (a training run should not depend on
the network); ``data:`` URIs and embedded bytes are always fine.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import tarfile
import tempfile
import urllib.parse
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from PIL import Image

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
    "bad_record",
)  # fmt: skip
#: The ShareGPT / LLaVA / LLaMA-Factory image marker in text.
IMAGE_MARKER = "<image>"
# Raw image tokens of the three families (facts.md section 2). Data that already holds one in
# its text would give the processor an image token without an image: the classic
# "image features and image tokens do not match" crash mid-epoch.
_RAW_IMAGE_TOKENS = (
    "<start_of_image>", "<image_soft_token>", "<|image_pad|>", "<|vision_start|>",
    "<|video_pad|>", "<|image|>", "<|video|>",
)  # fmt: skip
_KINDS = ("auto", "caption", "conversation")
_ID_KEYS = ("id", "key", "__key__")
_IMAGE_KEYS = ("image", "image_path", "image_url", "url", "img", "file_name", "jpg", "png")
_TEXT_KEYS = ("caption", "captions", "text", "txt")
_MEDIA_KEYS = ("url", "path", "image", "video", "audio", "data", "bytes")
_IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
_JSONL_EXTS = (".jsonl", ".jsonl.gz")
_TAR_EXTS = (".tar", ".tar.gz", ".tgz")
_HF_FILES = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}
# ShareGPT "from" values (LLaMA-Factory's tags included) and OpenAI/HF roles.
_ROLE_MAP = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "model": "assistant", "function_call": "assistant", "system": "system",
    "developer": "system", "observation": "tool", "tool": "tool",
}  # fmt: skip
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_MARKER_SPLIT = re.compile(f"({re.escape(IMAGE_MARKER)})")


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


def _err(id: str, reason: str, detail: str, meta: dict) -> dict:
    return {"id": id, "error": reason, "detail": detail, "meta": meta}


class _Skip(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# --------------------------------------------------------------------------- normalising


def _caption_dicts(image: Any, caption: str, prompt: str) -> list[dict]:
    user: list[dict] = [{"type": "image", "image": image}]
    if prompt:
        user.append({"type": "text", "text": prompt})
    return [
        {"role": "user", "content": user},
        {"role": "assistant", "content": [{"type": "text", "text": caption}]},
    ]


def caption_to_messages(image: Any, caption: str, prompt: str = "") -> list[Message]:
    """A caption pair as a conversation: user ``[image, prompt?]``, assistant ``[caption]``."""
    return parse_conversation(_caption_dicts(image, caption, prompt))


def _is_url(src: str) -> bool:
    """A URL or data: URI (used as given), as opposed to a path (resolved against a root)."""
    return src[:5].lower() == "data:" or _URL.match(src) is not None


def _image_ref(value: Any, resolve: Callable[[str], Any]) -> Any:
    """A record's image reference as something :func:`load_image` takes."""
    if isinstance(value, dict):  # HF Image storage {"bytes", "path"}, or {"url": ...}
        if value.get("bytes") is not None:
            return value["bytes"]
        value = value.get("path") or value.get("url")
    if isinstance(value, str) and value:
        return value if _is_url(value) else resolve(value)
    if isinstance(value, (bytes, bytearray, Image.Image)):
        return value
    raise _Skip("missing_image", f"no usable image reference ({type(value).__name__})")


def _split_markers(text: str) -> list[dict]:
    """Text with ``<image>`` markers as text parts and image slots, trimmed at the markers."""
    pieces = _MARKER_SPLIT.split(text)
    out: list[dict] = []
    for i, piece in enumerate(pieces):
        if piece == IMAGE_MARKER:
            out.append({"type": "image", "_slot": True})
            continue
        if i > 0:
            piece = piece.lstrip()
        if i < len(pieces) - 1:
            piece = piece.rstrip()
        if piece or len(pieces) == 1:
            out.append({"type": "text", "text": piece})
    return out


def _content_parts(content: Any, resolve: Callable[[str], Any]) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return _split_markers(content)
    if not isinstance(content, list):
        raise _Skip("bad_record", f"message content is a {type(content).__name__}")
    parts: list[dict] = []
    for raw in content:
        if isinstance(raw, str):
            parts.extend(_split_markers(raw))
            continue
        if not isinstance(raw, dict):
            raise _Skip("bad_record", f"content part is a {type(raw).__name__}")
        p = {k: v for k, v in raw.items() if v is not None}  # Arrow structs fill in None
        kind = p.get("type")
        if kind in ("text", "input_text"):
            parts.extend(_split_markers(p.get("text", "")))
        elif kind in ("image", "image_url"):
            src = p.get("image_url") if kind == "image_url" else None
            src = src.get("url") if isinstance(src, dict) else src
            src = src or next((p[k] for k in _MEDIA_KEYS if p.get(k) is not None), None)
            part = {"type": "image", "_slot": True} if src is None else None
            parts.append(part or {"type": "image", "image": _image_ref(src, resolve)})
        elif kind in ("video", "audio"):
            key = next((k for k in _MEDIA_KEYS if isinstance(p.get(k), str)), None)
            if key and not _is_url(p[key]):
                p[key] = resolve(p[key])
            parts.append(p)
        else:
            parts.append(p)  # let parse_conversation name the problem
    return parts


def _conversation(record: dict, resolve: Callable[[str], Any]) -> list[dict]:
    raw = record.get("messages", record.get("conversations"))
    if not isinstance(raw, list) or not raw:
        raise _Skip("bad_record", "'messages'/'conversations' must be a non-empty list")
    images = record.get("images", record.get("image"))
    images = [] if images is None else images if isinstance(images, list) else [images]
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise _Skip("bad_record", f"message {i} is a {type(m).__name__}, not a dict")
        sharegpt = "from" in m and "role" not in m
        role = _ROLE_MAP.get(m.get("from") if sharegpt else m.get("role"))
        if role is None:
            raise _Skip("bad_record", f"message {i}: unknown role {m.get('role', m.get('from'))!r}")
        content = _content_parts(m.get("value") if sharegpt else m.get("content"), resolve)
        messages.append({"role": role, "content": content})
    slots = [p for m in messages for p in m["content"] if p.pop("_slot", False)]
    if len(slots) != len(images):
        raise _Skip(
            "image_token_mismatch",
            f"{len(slots)} image placeholder(s) (<image> markers or bare image parts) "
            f"for {len(images)} image(s)",
        )
    for slot, image in zip(slots, images, strict=True):
        slot["image"] = _image_ref(image, resolve)
    _check_raw_tokens(p.get("text", "") for m in messages for p in m["content"])
    answers = [m for m in messages if m["role"] == "assistant"]
    if not answers:
        raise _Skip("empty_text", "no assistant turn")
    for m in answers:
        text = "".join(p.get("text", "") for p in m["content"] if p.get("type") == "text")
        if not text.strip():
            raise _Skip("empty_text", "an assistant turn has no text")
    return messages


def _check_raw_tokens(texts: Iterable[str]) -> None:
    for text in texts:
        token = next((t for t in _RAW_IMAGE_TOKENS if t in text), None)
        if token:
            raise _Skip(
                "image_token_mismatch",
                f"text holds the raw model token {token!r}, which the processor would take "
                "for an image; use image parts or <image> markers",
            )


def _caption(record: dict, resolve: Callable[[str], Any], prompt: str, meta: dict) -> list[dict]:
    key = next((k for k in _IMAGE_KEYS if record.get(k) is not None), None)
    text_key = next((k for k in _TEXT_KEYS if k in record), None)
    if key is None or text_key is None:
        raise _Skip("bad_record", f"not a caption record (keys: {sorted(record)[:12]})")
    text = record[text_key]
    if isinstance(text, list):
        if len(text) > 1:
            meta["captions"] = [t for t in text if isinstance(t, str)]
        text = next((t for t in text if isinstance(t, str) and t.strip()), "")
    if not isinstance(text, str) or not text.strip():
        raise _Skip("empty_text", f"empty {text_key!r}")
    _check_raw_tokens([text, prompt])
    return _caption_dicts(_image_ref(record[key], resolve), text, prompt)


def _scalar_meta(record: dict, used: Iterable[str]) -> dict:
    skip = set(used)
    return {
        k: v
        for k, v in record.items()
        if k not in skip
        and not k.startswith("__")
        and (
            v is None
            or isinstance(v, (str, int, float, bool))
            or (isinstance(v, list) and all(isinstance(x, (str, int, float, bool)) for x in v))
        )
    }


def _normalise(
    record: Any, fallback_id: str, meta: dict, kind: str, prompt: str, resolve: Callable
) -> dict:
    """One raw row as a normalised record (or an error record); never raises."""
    rid = fallback_id
    try:
        if not isinstance(record, dict):
            raise _Skip(
                "bad_record", f"a record must be a JSON object, got {type(record).__name__}"
            )
        found = next((record[k] for k in _ID_KEYS if isinstance(record.get(k), (str, int))), None)
        rid = str(found) if found is not None else fallback_id
        shape = kind
        if shape == "auto":
            shape = "conversation" if ("messages" in record or "conversations" in record) else ""
            if not shape and any(record.get(k) is not None for k in _IMAGE_KEYS):
                shape = "caption"
            if not shape:
                raise _Skip("bad_record", f"unrecognised record (keys: {sorted(record)[:12]})")
        meta = {**_scalar_meta(record, (*_ID_KEYS, *_IMAGE_KEYS, *_TEXT_KEYS)), **meta}
        if shape == "conversation":
            meta.pop("images", None)
            messages = _conversation(record, resolve)
        else:
            messages = _caption(record, resolve, prompt, meta)
        return {"id": rid, "kind": shape, "messages": messages, "meta": meta}
    except _Skip as skip:
        return {"id": rid, "error": skip.reason, "detail": skip.detail, "meta": meta}
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # untrusted odd shapes
        return {"id": rid, "error": "bad_record", "detail": repr(exc), "meta": meta}


def _path_resolver(root: Path) -> Callable[[str], str]:
    return lambda p: str(root / os.path.expanduser(p))


# --------------------------------------------------------------------------- readers


def read_jsonl(
    path: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    kind: str = "auto",
    caption_prompt: str = "",
) -> Iterator[dict]:
    """Stream a ``.jsonl`` / ``.jsonl.gz`` file as normalised records, one line at a time.

    Args:
        path: The file. Blank lines are ignored; lines that are not JSON objects, and a
            truncated gzip tail, come out as ``bad_record`` error records.
        image_root: Folder relative image paths start from (default: the file's folder).
        kind: ``"auto"``, ``"caption"`` or ``"conversation"`` (others become ``bad_record``).
        caption_prompt: User text put after the image in caption samples.

    Returns:
        An iterator of ``{"id", "kind", "messages", "meta"}`` or ``{"id", "error", "detail",
        "meta"}`` dicts; images are resolved to absolute paths but not opened.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSONL file {str(path)!r} does not exist.")
    resolve = _path_resolver(Path(image_root) if image_root else path.parent.resolve())
    return _jsonl_records(path, resolve, kind, caption_prompt)


def _jsonl_records(path: Path, resolve, kind: str, prompt: str) -> Iterator[dict]:
    line_no = 0
    try:
        with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as fh:
            for line_no, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                meta = {"source": str(path), "line": line_no}
                fallback = f"{path.name}:{line_no}"
                try:
                    record = json.loads(raw)
                except ValueError as exc:  # includes UnicodeDecodeError
                    yield _err(fallback, "bad_record", f"invalid JSON: {exc}", meta)
                    continue
                yield _normalise(record, fallback, meta, kind, prompt, resolve)
    except (OSError, EOFError, zlib.error) as exc:
        detail = f"file unreadable after line {line_no}: {exc}"
        yield _err(f"{path.name}:{line_no + 1}", "bad_record", detail, {"source": str(path)})


def _split_key(name: str) -> tuple[str, str]:
    """WebDataset convention: the key runs to the first dot of the base name."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def read_tar(
    path: str | os.PathLike,
    *,
    kind: str = "auto",
    caption_prompt: str = "",
    limits: MediaLimits | None = None,
) -> Iterator[dict]:
    """Stream a WebDataset shard (``.tar``, ``.tar.gz``) as normalised records.

    Members are grouped by key: ``KEY.jpg|jpeg|png|webp`` (several as ``KEY.0.jpg``,
    ``KEY.1.jpg``...) with ``KEY.txt`` (the caption) and/or ``KEY.json`` (caption and meta,
    or a conversation with ``"messages"`` whose placeholders take the images in order). The
    shard is read once, front to back (``mode="r|*"``), so it may be a pipe or a huge file;
    a truncated shard ends with a ``bad_record`` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"WebDataset shard {str(path)!r} does not exist.")
    return _tar_records(path, kind, caption_prompt, limits or MediaLimits())


def _tar_records(path: Path, kind: str, prompt: str, limits: MediaLimits) -> Iterator[dict]:
    key, members, count = None, {}, 0
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for info in tar:
                name_key, ext = _split_key(info.name)
                if not info.isfile() or name_key.rpartition("/")[2].startswith("."):
                    continue
                if key is not None and name_key != key:
                    yield _tar_sample(path, key, members, kind, prompt)
                    members, count = {}, count + 1
                key = name_key
                fh = tar.extractfile(info)
                too_big = info.size > limits.max_bytes
                members[ext] = None if too_big or fh is None else fh.read()
            # tarfile ends quietly when a shard is cut inside a header; a whole tar ends
            # with two zero blocks, so at least one must follow the one tarfile consumed.
            if len(tar.fileobj.read(512)) < 512:
                raise tarfile.ReadError("unexpected end of data (no end-of-archive blocks)")
        if key is not None:
            yield _tar_sample(path, key, members, kind, prompt)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        detail = f"shard unreadable after {count} samples: {exc}"
        yield _err(f"{path.name}:{key}", "bad_record", detail, {"source": str(path)})


def _tar_sample(path: Path, key: str, members: dict, kind: str, prompt: str) -> dict:
    meta = {"source": str(path), "key": key}

    def order(ext: str) -> tuple:
        head = ext.partition(".")[0]
        return (0, int(head), ext) if head.isdigit() else (1, 0, ext)

    image_exts = sorted((e for e in members if e.rpartition(".")[2] in _IMAGE_EXTS), key=order)

    def fail(reason: str, detail: str) -> dict:
        return _err(key, reason, detail, meta)

    if any(members[e] is None for e in image_exts):
        return fail("corrupt_image", "an image member is over MediaLimits.max_bytes")
    try:
        record = json.loads(members["json"]) if members.get("json") is not None else {}
        text = members["txt"].decode("utf-8") if members.get("txt") is not None else None
    except ValueError as exc:
        return fail("bad_record", f"unreadable .json/.txt member: {exc}")
    if not isinstance(record, dict):
        return fail("bad_record", "the .json member is not an object")
    record.setdefault("__key__", key)
    stem = key.rpartition("/")[2]

    def resolve(ref: str) -> bytes:  # an image named inside the json: "jpg" or "KEY.jpg"
        ext = ref.lower().removeprefix(stem.lower() + ".")
        if members.get(ext) is None:
            raise _Skip("missing_image", f"no member {ref!r} under key {key!r}")
        return members[ext]

    if "messages" in record or "conversations" in record:
        record.setdefault("images", [members[e] for e in image_exts])
    else:
        if not image_exts:
            return fail("missing_image", f"no .{'/.'.join(_IMAGE_EXTS)} member for {key!r}")
        record["image"] = members[image_exts[0]]
        if text is not None:
            record["caption"] = text
        elif not any(k in record for k in _TEXT_KEYS):
            return fail("bad_record", "neither a .txt nor a caption in .json")
    return _normalise(record, key, meta, kind, prompt, resolve)


def read_dataset(
    dataset: Any,
    *,
    split: str = "train",
    image_root: str | os.PathLike | None = None,
    kind: str = "auto",
    caption_prompt: str = "",
    name: str = "",
) -> Iterator[dict]:
    """Stream a ``datasets`` Dataset / IterableDataset (or a split of a *Dict) as records.

    ``Image`` columns are read undecoded (``{"bytes", "path"}``) and decoded later by
    :func:`load_image`, so a corrupt image is a skipped row, not an exception inside
    ``datasets``. A record without a usual image key takes the dataset's single ``Image``
    column as ``image`` or its ``List(Image)`` column as ``images``.
    """
    datasets = _datasets()
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if split not in dataset:
            raise KeyError(f"split {split!r} not in the dataset; it has {sorted(dataset)}")
        dataset = dataset[split]
    image_col, images_col = None, None
    for col, feat in (dataset.features or {}).items():
        if isinstance(feat, datasets.Image):
            image_col = image_col or col
        elif isinstance(getattr(feat, "feature", None), datasets.Image):
            images_col = images_col or col
    name = name or getattr(dataset.info, "dataset_name", None) or "dataset"
    root = Path(image_root) if image_root else Path.cwd()
    if isinstance(dataset, datasets.IterableDataset):
        rows: Iterable[dict] = dataset.decode(False)
    else:
        rows = (r for b in dataset.with_format("arrow").iter(batch_size=64) for r in b.to_pylist())
    return _dataset_records(rows, name, image_col, images_col, root, kind, caption_prompt)


def _dataset_records(rows, name, image_col, images_col, root, kind, prompt) -> Iterator[dict]:
    resolve = _path_resolver(root)
    for index, row in enumerate(rows):
        record = dict(row)
        if image_col and not any(record.get(k) is not None for k in _IMAGE_KEYS):
            record["image"] = record.pop(image_col)
        if images_col and "images" not in record:
            record["images"] = record.pop(images_col)
        meta = {"source": name, "index": index}
        yield _normalise(record, f"{name}:{index}", meta, kind, prompt, resolve)


# --------------------------------------------------------------------------- sources


def _expand(pattern: str) -> list[Path]:
    """Brace ranges (``shard-{000..009}.tar``, WebDataset style) and globs, sorted."""
    match = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if match:
        lo, hi = match.group(1), match.group(2)
        width = len(lo) if lo.startswith("0") else 0
        return [
            p
            for n in range(int(lo), int(hi) + 1)
            for p in _expand(
                pattern[: match.start()] + str(n).zfill(width) + pattern[match.end() :]
            )
        ]
    if glob.has_magic(pattern):
        return sorted(Path(p) for p in glob.glob(pattern, recursive=True))
    return [Path(pattern)]


def _open_source(source: Any, image_root, split, kind, prompt, limits) -> list[Callable]:
    """Check the source now; return thunks that open each part lazily, in order."""
    opts = {"kind": kind, "caption_prompt": prompt}
    if (type(source).__module__ or "").startswith("datasets"):
        return [partial(read_dataset, source, split=split, image_root=image_root, **opts)]
    if isinstance(source, (list, tuple)):
        return [t for s in source for t in _open_source(s, image_root, split, kind, prompt, limits)]
    paths = _expand(str(source)) if isinstance(source, str) else [Path(source)]
    if not paths:
        raise FileNotFoundError(f"No file matches {source!r}.")
    thunks: list[Callable] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(
                f"Training data {str(path)!r} does not exist. Pass a .jsonl(.gz) file, .tar "
                "shards, a dataset folder, or a datasets.Dataset (e.g. from load_dataset)."
            )
        files = [path]
        if path.is_dir():
            globs = [f"*{ext}" for ext in _JSONL_EXTS + _TAR_EXTS]
            files = sorted({p for g in globs for p in path.rglob(g) if p.is_file()})
            saved = (path / "dataset_dict.json").exists() or (path / "state.json").exists()
            if saved or not files:  # save_to_disk output, or parquet/csv/arrow for datasets
                ds = _hf_folder(path, split, saved)
                root = image_root or path
                thunks.append(partial(read_dataset, ds, split=split, image_root=root, **opts))
                continue
        for f in files:
            if f.name.endswith(_JSONL_EXTS):
                thunks.append(partial(read_jsonl, f, image_root=image_root, **opts))
            elif f.name.endswith(_TAR_EXTS):
                thunks.append(partial(read_tar, f, limits=limits, **opts))
            elif f.suffix in _HF_FILES:
                ds = _datasets().load_dataset(
                    _HF_FILES[f.suffix], data_files=str(f), split="train", streaming=True
                )
                root = image_root or f.parent
                thunks.append(partial(read_dataset, ds, image_root=root, name=f.name, **opts))
            else:
                raise ValueError(
                    f"Do not know how to read {str(f)!r}: expected .jsonl, .jsonl.gz, .tar, "
                    ".tar.gz, .parquet, .arrow or .csv."
                )
    return thunks


def _datasets():
    import datasets  # optional: only these sources need it

    return datasets


def _hf_folder(path: Path, split: str, saved: bool) -> Any:
    """A ``save_to_disk`` folder, or a folder of parquet/arrow/csv files (streamed)."""
    if saved:
        return _datasets().load_from_disk(str(path))
    if not any(next(path.rglob(f"*{ext}"), None) for ext in _HF_FILES):
        raise ValueError(
            f"No training data in folder {str(path)!r}: expected .jsonl(.gz) or .tar files, "
            "parquet/arrow/csv files, or a datasets save_to_disk folder."
        )
    # Streaming: no Arrow copy of a large parquet folder in the cache, and lazy like the rest.
    ds = _datasets().load_dataset(str(path), streaming=True)
    if split not in ds:
        raise KeyError(f"split {split!r} not in {str(path)!r}; it has {sorted(ds)}")
    return ds[split]


# --------------------------------------------------------------------------- samples


def _load(src: Any, limits: MediaLimits, fetch_urls: bool) -> Image.Image:
    remote = False
    if isinstance(src, str) and src[:5].lower() != "data:":
        scheme = (_URL.match(src).group(1).lower()) if _URL.match(src) else ""
        remote = scheme in ("http", "https")
        if remote and not fetch_urls:
            raise _Skip("missing_image", f"URL not fetched in training: {src[:120]}")
        local = urllib.parse.unquote(urllib.parse.urlsplit(src).path) if scheme == "file" else src
        local = None if scheme and scheme != "file" else local
        if local is not None and not limits.allow_local_files:
            raise _Skip("missing_image", f"local files are not allowed by the limits: {local}")
        if local is not None and not Path(local).is_file():
            raise _Skip("missing_image", f"no such file: {local}")
    try:
        return load_image(src, limits)
    except MediaError as exc:
        raise _Skip("missing_image" if remote else "corrupt_image", str(exc)) from exc


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
    thunks = _open_source(source, image_root, split, kind, caption_prompt, limits)
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
            except MessageFormatError as exc:
                report.add(rec["id"], "bad_record", str(exc))
                continue
            except _Skip as skip:
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
