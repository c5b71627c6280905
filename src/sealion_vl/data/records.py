"""Raw rows as *normalised records*: the row shapes :mod:`sealion_vl.data.formats` accepts.

A normalised record is a plain dict ``{"id", "kind", "messages" (HF-style dicts, image sources
resolved), "meta"}``, or ``{"id", "error", "detail", "meta"}`` for a row that cannot be used;
:func:`normalise` never raises. No image is decoded here (that is
:func:`sealion_vl.data.formats.iter_samples`' job).

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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from PIL import Image

from sealion_vl.messages import Message, parse_conversation

#: The ShareGPT / LLaVA / LLaMA-Factory image marker in text.
IMAGE_MARKER = "<image>"
# Raw image tokens of the three families (facts.md section 2). Data that already holds one in
# its text would give the processor an image token without an image: the classic
# "image features and image tokens do not match" crash mid-epoch.
_RAW_IMAGE_TOKENS = (
    "<start_of_image>", "<image_soft_token>", "<|image_pad|>", "<|vision_start|>",
    "<|video_pad|>", "<|image|>", "<|video|>",
)  # fmt: skip
_ID_KEYS = ("id", "key", "__key__")
IMAGE_KEYS = ("image", "image_path", "image_url", "url", "img", "file_name", "jpg", "png")
TEXT_KEYS = ("caption", "captions", "text", "txt")
_MEDIA_KEYS = ("url", "path", "image", "video", "audio", "data", "bytes")
# ShareGPT "from" values (LLaMA-Factory's tags included) and OpenAI/HF roles.
_ROLE_MAP = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "model": "assistant", "function_call": "assistant", "system": "system",
    "developer": "system", "observation": "tool", "tool": "tool",
}  # fmt: skip
URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_MARKER_SPLIT = re.compile(f"({re.escape(IMAGE_MARKER)})")


def error_record(id: str, reason: str, detail: str, meta: dict) -> dict:
    """The normalised record of a row that cannot be used (``reason`` is a skip-report key)."""
    return {"id": id, "error": reason, "detail": detail, "meta": meta}


class SkipRecord(Exception):
    """Raised inside the data pipeline for a row to skip; ``reason`` is a skip-report key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


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
    return src[:5].lower() == "data:" or URL_SCHEME.match(src) is not None


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
    raise SkipRecord("missing_image", f"no usable image reference ({type(value).__name__})")


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
        raise SkipRecord("bad_record", f"message content is a {type(content).__name__}")
    parts: list[dict] = []
    for raw in content:
        if isinstance(raw, str):
            parts.extend(_split_markers(raw))
            continue
        if not isinstance(raw, dict):
            raise SkipRecord("bad_record", f"content part is a {type(raw).__name__}")
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
        raise SkipRecord("bad_record", "'messages'/'conversations' must be a non-empty list")
    images = record.get("images", record.get("image"))
    images = [] if images is None else images if isinstance(images, list) else [images]
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise SkipRecord("bad_record", f"message {i} is a {type(m).__name__}, not a dict")
        sharegpt = "from" in m and "role" not in m
        role = _ROLE_MAP.get(m.get("from") if sharegpt else m.get("role"))
        if role is None:
            raise SkipRecord(
                "bad_record", f"message {i}: unknown role {m.get('role', m.get('from'))!r}"
            )
        content = _content_parts(m.get("value") if sharegpt else m.get("content"), resolve)
        messages.append({"role": role, "content": content})
    slots = [p for m in messages for p in m["content"] if p.pop("_slot", False)]
    if len(slots) != len(images):
        raise SkipRecord(
            "image_token_mismatch",
            f"{len(slots)} image placeholder(s) (<image> markers or bare image parts) "
            f"for {len(images)} image(s)",
        )
    for slot, image in zip(slots, images, strict=True):
        slot["image"] = _image_ref(image, resolve)
    _check_raw_tokens(p.get("text", "") for m in messages for p in m["content"])
    answers = [m for m in messages if m["role"] == "assistant"]
    if not answers:
        raise SkipRecord("empty_text", "no assistant turn")
    for m in answers:
        text = "".join(p.get("text", "") for p in m["content"] if p.get("type") == "text")
        if not text.strip():
            raise SkipRecord("empty_text", "an assistant turn has no text")
    return messages


def _check_raw_tokens(texts: Iterable[str]) -> None:
    for text in texts:
        token = next((t for t in _RAW_IMAGE_TOKENS if t in text), None)
        if token:
            raise SkipRecord(
                "image_token_mismatch",
                f"text holds the raw model token {token!r}, which the processor would take "
                "for an image; use image parts or <image> markers",
            )


def _caption(record: dict, resolve: Callable[[str], Any], prompt: str, meta: dict) -> list[dict]:
    key = next((k for k in IMAGE_KEYS if record.get(k) is not None), None)
    text_key = next((k for k in TEXT_KEYS if k in record), None)
    if key is None or text_key is None:
        raise SkipRecord("bad_record", f"not a caption record (keys: {sorted(record)[:12]})")
    text = record[text_key]
    if isinstance(text, list):
        if len(text) > 1:
            meta["captions"] = [t for t in text if isinstance(t, str)]
        text = next((t for t in text if isinstance(t, str) and t.strip()), "")
    if not isinstance(text, str) or not text.strip():
        raise SkipRecord("empty_text", f"empty {text_key!r}")
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


def normalise(
    record: Any, fallback_id: str, meta: dict, kind: str, prompt: str, resolve: Callable
) -> dict:
    """One raw row as a normalised record (or an error record); never raises."""
    rid = fallback_id
    try:
        if not isinstance(record, dict):
            raise SkipRecord(
                "bad_record", f"a record must be a JSON object, got {type(record).__name__}"
            )
        found = next((record[k] for k in _ID_KEYS if isinstance(record.get(k), (str, int))), None)
        rid = str(found) if found is not None else fallback_id
        shape = kind
        if shape == "auto":
            shape = "conversation" if ("messages" in record or "conversations" in record) else ""
            if not shape and any(record.get(k) is not None for k in IMAGE_KEYS):
                shape = "caption"
            if not shape:
                raise SkipRecord("bad_record", f"unrecognised record (keys: {sorted(record)[:12]})")
        meta = {**_scalar_meta(record, (*_ID_KEYS, *IMAGE_KEYS, *TEXT_KEYS)), **meta}
        if shape == "conversation":
            meta.pop("images", None)
            messages = _conversation(record, resolve)
        else:
            messages = _caption(record, resolve, prompt, meta)
        return {"id": rid, "kind": shape, "messages": messages, "meta": meta}
    except SkipRecord as skip:
        return {"id": rid, "error": skip.reason, "detail": skip.detail, "meta": meta}
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # untrusted odd shapes
        return {"id": rid, "error": "bad_record", "detail": repr(exc), "meta": meta}
