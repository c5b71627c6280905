"""Conversation schema: OpenAI-style and HF-style messages in, one internal form out.

OpenAI clients send ``{"type": "image_url", "image_url": {"url": ...}}`` and
``{"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}``; transformers users
send ``{"type": "image", "url" | "path" | "image": ...}``. Everything downstream (family
adapters, the engine, the server, training data) sees only :class:`Message` / :class:`Part`.
Media are not decoded here: a part keeps its source, and the engine loads it through
:mod:`sealion_vl.media` so every path shares one set of limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sealion_vl.errors import MessageFormatError

PartType = Literal["text", "image", "video", "audio"]
Role = Literal["system", "user", "assistant", "tool"]
_ROLES = {"system", "user", "assistant", "tool", "developer"}
_SOURCE_KEYS = ("url", "path", "image", "video", "audio", "data", "bytes")


@dataclass
class Part:
    """One piece of a turn: text, or a media reference (path, URL, data URI, bytes, object)."""

    type: PartType
    text: str = ""
    source: Any = None
    options: dict = field(default_factory=dict)

    @classmethod
    def of_text(cls, text: str) -> Part:
        return cls("text", text=text)


@dataclass
class Message:
    role: Role
    parts: list[Part]

    def media(self, kind: PartType) -> list[Part]:
        return [p for p in self.parts if p.type == kind]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if p.type == "text")


def _part(raw: Any, where: str) -> Part:
    if isinstance(raw, str):
        return Part.of_text(raw)
    if not isinstance(raw, dict) or "type" not in raw:
        raise MessageFormatError(
            f"{where}: a content part must be a dict with a 'type', got {raw!r:.80}"
        )
    kind = raw["type"]
    if kind in ("text", "input_text"):
        text = raw.get("text")
        if not isinstance(text, str):
            raise MessageFormatError(f"{where}: text part without a 'text' string")
        return Part.of_text(text)
    if kind in ("image_url", "video_url"):
        value = raw.get(kind)
        url = value.get("url") if isinstance(value, dict) else value
        if not isinstance(url, str) or not url:
            raise MessageFormatError(f"{where}: {kind} part needs {{'{kind}': {{'url': ...}}}}")
        opts = {k: v for k, v in value.items() if k != "url"} if isinstance(value, dict) else {}
        return Part(kind.removesuffix("_url"), source=url, options=opts)  # type: ignore[arg-type]
    if kind == "input_audio":
        value = raw.get("input_audio")
        if not isinstance(value, dict) or "data" not in value:
            raise MessageFormatError(
                f"{where}: input_audio part needs {{'data': b64, 'format': ...}}"
            )
        return Part("audio", source=dict(value), options={"openai": True})
    if kind in ("image", "video", "audio"):
        for key in _SOURCE_KEYS:
            if raw.get(key) is not None:
                return Part(kind, source=raw[key])
        raise MessageFormatError(
            f"{where}: {kind} part needs one of {', '.join(repr(k) for k in _SOURCE_KEYS[:4])}"
        )
    raise MessageFormatError(
        f"{where}: unknown content type {kind!r} (expected text, image, image_url, video, "
        "video_url, audio or input_audio)"
    )


def parse_message(raw: Any, index: int = 0) -> Message:
    """One OpenAI- or HF-style message dict (or a :class:`Message`) as a :class:`Message`."""
    if isinstance(raw, Message):
        return raw
    where = f"message {index}"
    if not isinstance(raw, dict):
        raise MessageFormatError(
            f"{where}: expected a dict with 'role' and 'content', got {type(raw).__name__}"
        )
    role = raw.get("role")
    if role not in _ROLES:
        raise MessageFormatError(
            f"{where}: role must be one of system/user/assistant/tool, got {role!r}"
        )
    role = "system" if role == "developer" else role
    content = raw.get("content")
    if content is None:
        parts: list[Part] = []
    elif isinstance(content, str):
        parts = [Part.of_text(content)]
    elif isinstance(content, list):
        parts = [_part(p, f"{where} part {j}") for j, p in enumerate(content)]
    else:
        raise MessageFormatError(f"{where}: 'content' must be a string or a list of parts")
    return Message(role, parts)


def parse_conversation(raw: Any) -> list[Message]:
    """A conversation (list of message dicts, or a single user string) in internal form."""
    if isinstance(raw, str):
        return [Message("user", [Part.of_text(raw)])]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise MessageFormatError("a conversation must be a non-empty list of messages")
    return [parse_message(m, i) for i, m in enumerate(raw)]


def to_template_messages(messages: list[Message]) -> list[dict]:
    """HF chat-template form: media become bare ``{"type": kind}`` placeholders."""
    out = []
    for m in messages:
        content = [
            {"type": "text", "text": p.text} if p.type == "text" else {"type": p.type}
            for p in m.parts
        ]
        out.append({"role": m.role, "content": content})
    return out
