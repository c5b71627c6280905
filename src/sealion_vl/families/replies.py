"""Reading a model's reply into content, reasoning and tool calls, whole or as it streams.

One machinery for every family: a family supplies a :class:`Scanner` (its markup: reasoning
tags, tool-call blocks); :class:`ReplyStream` runs it over the text so far and turns what it
finds into typed deltas. Batch parsing is the same stream fed the whole reply at once, so a
streamed reply always adds up to exactly what :func:`parse_reply` returns.

How streaming stays exact: the scanner only reports spans whose meaning can no longer change
(a possible partial tag such as ``<tool_`` at the end of the text, or a call block still
open, is held back and looked at again when more text arrives). Whitespace next to removed
markup is trimmed by :class:`_Trim`, which holds back trailing whitespace until it knows what
follows. A reply with no markup comes back unchanged.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field

# ------------------------------------------------------------------ public result types


@dataclass(frozen=True)
class ContentDelta:
    """More answer text."""

    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    """More reasoning (thinking) text."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of tool call ``index``, like one entry of OpenAI's streamed ``delta.tool_calls``.

    The first delta of a call carries ``id`` and ``name``; ``arguments_delta`` is more of the
    arguments JSON string. This parser sends each call whole, in one delta, once it closes.
    """

    index: int
    id: str | None
    name: str | None
    arguments_delta: str


Delta = ContentDelta | ReasoningDelta | ToolCallDelta


@dataclass
class ParsedReply:
    """A reply split into its parts.

    Attributes:
        content: the answer text, markup removed (the whole reply when it has no markup).
        reasoning: the thinking text, or ``None`` when the reply has none.
        tool_calls: OpenAI-shaped calls ``{"id", "type": "function", "function": {"name",
            "arguments": <JSON string>}}``, in order.
    """

    content: str = ""
    reasoning: str | None = None
    tool_calls: list[dict] = field(default_factory=list)


def tool_call(name: str, arguments: dict, call_id: str) -> dict:
    """An OpenAI-shaped tool call with ``arguments`` as a JSON string."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def call_ids(seed: object = None):
    """``call_<24 hex>`` ids: random, or reproducible from ``seed`` (id i = hash(seed, i))."""
    i = 0
    while True:
        if seed is None:
            yield "call_" + uuid.uuid4().hex[:24]
        else:
            yield "call_" + hashlib.sha256(f"{seed}|{i}".encode()).hexdigest()[:24]
        i += 1


def calls_of(calls: list) -> list[tuple[str, dict]]:
    """``(name, arguments dict)`` pairs from OpenAI-shaped or ``{"name", "arguments"}`` calls."""
    out = []
    for c in calls:
        fn = c.get("function", c)
        args = fn.get("arguments") or {}
        out.append((fn["name"], json.loads(args) if isinstance(args, str) else dict(args)))
    return out


def assemble(deltas: list[Delta]) -> ParsedReply:
    """Join streamed deltas back into a :class:`ParsedReply` (what a client does with chunks)."""
    content, reasoning = [], []
    calls: dict[int, dict] = {}
    for d in deltas:
        if isinstance(d, ContentDelta):
            content.append(d.text)
        elif isinstance(d, ReasoningDelta):
            reasoning.append(d.text)
        else:
            c = calls.setdefault(
                d.index, {"id": d.id, "type": "function", "function": {"name": "", "arguments": ""}}
            )
            c["id"] = d.id or c["id"]
            c["function"]["name"] += d.name or ""
            c["function"]["arguments"] += d.arguments_delta
    return ParsedReply(
        "".join(content), "".join(reasoning) or None, [calls[i] for i in sorted(calls)]
    )


# ------------------------------------------------------------------ scanning helpers

# Scanner events: ("content", text) | ("reasoning", text) | ("open",) | ("close",)
# | ("call", name, arguments).  "open"/"close" bracket a reasoning block.
Event = tuple


def held_from(text: str, start: int, tags: tuple[str, ...]) -> int:
    """Where a possible partial tag begins at the end of ``text[start:]`` (``len(text)`` if none).

    E.g. ``"Hi <tool_"`` with tag ``<tool_call>`` → the index of ``<``: that tail must wait.
    """
    n = len(text)
    longest = max((len(t) for t in tags), default=0)
    for k in range(min(longest - 1, n - start), 0, -1):
        tail = text[n - k :]
        if any(t.startswith(tail) for t in tags):
            return n - k
    return n


def find_first(text: str, start: int, tags: tuple[str, ...]) -> tuple[int, str]:
    """The earliest of ``tags`` in ``text[start:]`` as (index, tag); (-1, "") if none."""
    best, which = -1, ""
    for t in tags:
        i = text.find(t, start)
        if i >= 0 and (best < 0 or i < best):
            best, which = i, t
    return best, which


class Scanner:
    """A family's reply grammar: a state machine over the text.

    Subclasses define ``start`` and one method per state, ``_<state>(text, pos, final)``,
    returning ``(events, new_pos, new_state)`` or ``None`` when it cannot decide without
    more text (never when ``final``). A state method must not look before ``pos``.
    """

    start = "content"
    reasoning_state = "reasoning"
    open_state = "reasoning"  # where a reply starts when the prompt opened the reasoning block

    def __init__(self, tools: bool = True):
        self.tools = tools  # False: tool-call markup is ordinary content (no tools were offered)

    def scan(self, text: str, pos: int, state: str, final: bool) -> tuple[list, int, str]:
        events: list[Event] = []
        while pos < len(text):
            step = getattr(self, "_" + state)(text, pos, final)
            if step is None:
                break
            evs, new_pos, new_state = step
            events.extend(evs)
            if (new_pos, new_state) == (pos, state):
                break
            pos, state = new_pos, new_state
        if final and pos < len(text):  # a grammar gap: never lose text, keep it as it is
            kind = "reasoning" if state == self.reasoning_state else "content"
            events.append((kind, text[pos:]))
            pos = len(text)
        return events, pos, state


class _Trim:
    """Joins text pieces separated by removed markup ("boundaries"), trimming around them.

    Whitespace touching a boundary is dropped; two pieces on either side of a boundary are
    joined by the whitespace that stood next to it (left side first). Text never touched by
    a boundary passes through unchanged. Streaming: trailing whitespace is held until the
    next non-space text (released) or boundary / end (decided).
    """

    def __init__(self):
        self.started = False  # any non-space text sent yet
        self.after = False  # a boundary since the last non-space text
        self.held = ""  # trailing whitespace not yet sent
        self.left = ""  # whitespace just before the first boundary of the current gap
        self.right = ""  # whitespace after the last boundary of the current gap

    def text(self, s: str) -> str:
        out = []
        if self.after:
            body = s.lstrip()
            self.right += s[: len(s) - len(body)]
            if not body:
                return ""
            if self.started:
                out.append(self.left or self.right)
            self.after, self.left, self.right = False, "", ""
            s = body
        s = self.held + s
        body = s.rstrip()
        self.held = s[len(body) :]
        if body:
            self.started = True
            out.append(body)
        return "".join(out)

    def boundary(self) -> None:
        if not self.after:
            self.left, self.held, self.after = self.held, "", True
        self.right = ""

    def finish(self) -> str:
        out = "" if self.after else self.held
        self.held = ""
        return out


class ReplyStream:
    """Incremental reply parser: ``feed(delta)`` → deltas, then ``finish()``.

    ``feed`` takes the NEW text since the previous call (a delta, not the text so far).
    After ``finish``, :meth:`result` gives the whole :class:`ParsedReply`.
    """

    def __init__(self, scanner: Scanner, *, reasoning_open: bool = False, id_seed: object = None):
        self._scanner = scanner
        self._text = ""
        self._state = scanner.open_state if reasoning_open else scanner.start
        self._content, self._reasoning = _Trim(), _Trim()
        self._ids = call_ids(id_seed)
        self._done = False
        self._pending: list[Event] = [("open",)] if reasoning_open else []
        self.reply = ParsedReply()
        self._content_parts: list[str] = []
        self._reasoning_parts: list[str] = []

    def feed(self, delta: str) -> list[Delta]:
        """Parse ``delta`` (the text generated since the last call); return what is now certain."""
        if self._done:
            raise RuntimeError("feed() after finish()")
        self._text += delta
        return self._publish(self._run(final=False))

    def finish(self) -> list[Delta]:
        """The reply is complete: flush everything held back."""
        if self._done:
            return []
        out = self._run(final=True)
        self._done = True
        out += [ContentDelta(self._content.finish()), ReasoningDelta(self._reasoning.finish())]
        return self._publish(out)

    def result(self) -> ParsedReply:
        """Everything parsed so far (complete after :meth:`finish`)."""
        self.reply.content = "".join(self._content_parts)
        self.reply.reasoning = "".join(self._reasoning_parts) or None
        return self.reply

    def _run(self, final: bool) -> list[Delta]:
        events, pos, self._state = self._scanner.scan(self._text, 0, self._state, final)
        self._text = self._text[pos:]
        out: list[Delta] = []
        for ev in self._pending + events:
            kind = ev[0]
            if kind == "content":
                out.append(ContentDelta(self._content.text(ev[1])))
            elif kind == "reasoning":
                out.append(ReasoningDelta(self._reasoning.text(ev[1])))
            elif kind == "open":
                self._content.boundary()
                self._reasoning.boundary()
            elif kind == "close":
                self._reasoning.boundary()
            else:
                self._content.boundary()
                call = tool_call(ev[1], ev[2], next(self._ids))
                index = len(self.reply.tool_calls)
                self.reply.tool_calls.append(call)
                fn = call["function"]
                out.append(ToolCallDelta(index, call["id"], fn["name"], fn["arguments"]))
        self._pending = []
        return out

    def _publish(self, deltas: list[Delta]) -> list[Delta]:
        out: list[Delta] = []
        for d in deltas:
            if isinstance(d, ContentDelta | ReasoningDelta):
                if not d.text:
                    continue
                parts = (
                    self._content_parts if isinstance(d, ContentDelta) else self._reasoning_parts
                )
                parts.append(d.text)
                if out and type(out[-1]) is type(d):  # adjacent text of one kind: one delta
                    out[-1] = type(d)(out[-1].text + d.text)
                    continue
            out.append(d)
        return out


class PlainScanner(Scanner):
    """No markup: the whole reply is content."""

    def _content(self, text: str, pos: int, final: bool):
        return [("content", text[pos:])], len(text), "content"
