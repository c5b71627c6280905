"""Conversation schema: OpenAI-style and HF-style messages in, one internal form out.

OpenAI clients send ``{"type": "image_url", "image_url": {"url": ...}}`` and
``{"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}``; transformers users
send ``{"type": "image", "url" | "path" | "image": ...}``. Everything downstream (family
adapters, the engine, the server, training data) sees only :class:`Message` / :class:`Part`.
Media are not decoded here: a part keeps its source, and the engine loads it through
:mod:`sealion_vl.media` so every path shares one set of limits.

Tool use follows OpenAI's shape: an assistant message may carry ``tool_calls``
(``[{"id", "type": "function", "function": {"name", "arguments": <JSON string>}}]``, content
may then be ``None``) and a ``tool`` message answers one call (``tool_call_id``, ``name``).
"""

from __future__ import annotations

import hashlib
import json
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
    """One turn.

    Attributes:
        role: system | user | assistant | tool.
        parts: text and media pieces (may be empty, e.g. an assistant turn that only calls tools).
        tool_calls: assistant turns only; OpenAI shape, ``arguments`` always a JSON object string.
        tool_call_id: tool turns only; the id of the call this result answers.
        name: the tool's name on a tool turn (filled from the matching call when missing).
    """

    role: Role
    parts: list[Part]
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None
    name: str | None = None

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
    calls = raw.get("tool_calls")
    if calls and role != "assistant":
        raise MessageFormatError(f"{where}: only assistant messages carry 'tool_calls' ({role})")
    tool_calls = parse_tool_calls(calls, where) if calls else None
    call_id, name = raw.get("tool_call_id"), raw.get("name")
    if call_id is not None and (role != "tool" or not isinstance(call_id, str)):
        raise MessageFormatError(f"{where}: 'tool_call_id' must be a string on a tool message")
    if name is not None and not isinstance(name, str):
        raise MessageFormatError(f"{where}: 'name' must be a string, got {name!r:.40}")
    return Message(role, parts, tool_calls=tool_calls, tool_call_id=call_id, name=name)


def parse_tool_calls(raw: Any, where: str = "tool_calls") -> list[dict]:
    """Assistant tool calls (OpenAI or HF style) in OpenAI shape, arguments as a JSON string.

    Accepts ``{"id", "type": "function", "function": {"name", "arguments"}}`` and the bare
    ``{"name", "arguments"}`` form; ``arguments`` may be a JSON object string or a dict.
    A missing id gets a deterministic ``call_<24 hex>`` one.
    """
    if not isinstance(raw, (list, tuple)):
        raise MessageFormatError(f"{where}: 'tool_calls' must be a list, got {type(raw).__name__}")
    out = []
    for j, call in enumerate(raw):
        at = f"{where} tool call {j}"
        if not isinstance(call, dict):
            raise MessageFormatError(f"{at}: expected a dict, got {type(call).__name__}")
        fn = call.get("function", call)
        if not isinstance(fn, dict):
            raise MessageFormatError(f"{at}: 'function' must be a dict with 'name', 'arguments'")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise MessageFormatError(f"{at}: needs a function 'name' string")
        args = _arguments(fn.get("arguments"), at)
        call_id = call.get("id")
        if call_id is None:
            digest = hashlib.sha256(f"{where}|{j}|{name}|{args}".encode()).hexdigest()
            call_id = "call_" + digest[:24]
        elif not isinstance(call_id, str):
            raise MessageFormatError(f"{at}: 'id' must be a string")
        out.append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
        )
    return out


def _arguments(args: Any, at: str) -> str:
    if args is None or args == "":
        return "{}"
    if isinstance(args, str):
        try:
            value = json.loads(args)
        except ValueError:
            raise MessageFormatError(
                f"{at}: 'arguments' is not valid JSON ({args!r:.60}); send a JSON object string"
            ) from None
        if not isinstance(value, dict):
            raise MessageFormatError(f"{at}: 'arguments' must be a JSON object, got {args!r:.60}")
        return args
    if isinstance(args, dict):
        try:
            return json.dumps(args, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise MessageFormatError(f"{at}: 'arguments' is not JSON-serialisable: {exc}") from None
    raise MessageFormatError(
        f"{at}: 'arguments' must be a JSON object string or a dict, got {type(args).__name__}"
    )


def parse_tools(raw: Any) -> list[dict]:
    """A request's ``tools`` list in OpenAI shape (``{"type": "function", "function": {...}}``).

    Bare function dicts (``{"name", "description", "parameters"}``) are wrapped. Raises
    :class:`MessageFormatError` naming the tool when a shape is wrong.
    """
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raise MessageFormatError(f"'tools' must be a list, got {type(raw).__name__}")
    out = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise MessageFormatError(f"tool {i}: expected a dict, got {type(tool).__name__}")
        if tool.get("type", "function") != "function":
            raise MessageFormatError(f"tool {i}: only type 'function' is supported")
        fn = tool.get("function", tool)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise MessageFormatError(f"tool {i}: needs {{'function': {{'name': ..., ...}}}}")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise MessageFormatError(f"tool {i} ({fn['name']}): 'parameters' must be a dict")
        fn = {k: v for k, v in fn.items() if k != "type"}
        out.append({"type": "function", "function": fn})
    return out


def parse_conversation(raw: Any) -> list[Message]:
    """A conversation (list of message dicts, or a single user string) in internal form."""
    if isinstance(raw, str):
        return [Message("user", [Part.of_text(raw)])]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise MessageFormatError("a conversation must be a non-empty list of messages")
    return [parse_message(m, i) for i, m in enumerate(raw)]


def to_template_messages(messages: list[Message]) -> list[dict]:
    """HF chat-template form: media become bare ``{"type": kind}`` placeholders.

    Assistant tool calls go in as ``[{"type": "function", "function": {"name", "arguments":
    <dict>}}]`` (official Qwen3 / Gemma 4 templates iterate the arguments as a mapping); a
    tool turn carries ``tool_call_id`` and ``name`` and, when it is all text, a plain string
    content (what templates expect of a tool result).
    """
    out = []
    for m in messages:
        content: Any = [
            {"type": "text", "text": p.text} if p.type == "text" else {"type": p.type}
            for p in m.parts
        ]
        if m.role == "tool" and all(p.type == "text" for p in m.parts):
            content = m.text
        msg: dict = {"role": m.role, "content": content}
        if m.tool_calls:
            msg["tool_calls"] = [
                {
                    "type": "function",
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": json.loads(c["function"]["arguments"] or "{}"),
                    },
                }
                for c in m.tool_calls
            ]
        if m.role == "tool":
            msg["tool_call_id"] = m.tool_call_id
            msg["name"] = m.name
        out.append(msg)
    return out
