"""Streaming: the scheduler's text events of one generation as typed deltas, then as JSON.

The server needs the deltas *and* the final :class:`~sealion_vl.ChatResult` (finish reason,
usage) of each choice, which ``ChatModel.astream`` does not hand out, so it listens to the
:class:`~sealion_vl.runtime.engine.ChatFuture` itself and reads the text with the same public
pieces the engine's own streams use: the family's incremental reply parser and ``holdback``
(no partial stop string or markup tag is ever sent).
"""

from __future__ import annotations

from sealion_vl.families.replies import ContentDelta, ReasoningDelta, ToolCallDelta
from sealion_vl.runtime.generation import holdback


class DeltaReader:
    """Text-so-far of one generation -> new typed deltas (content, reasoning, tool calls)."""

    def __init__(self, model, fut, tools: bool) -> None:
        self.parser = model.adapter.reply_stream(tools=tools, reasoning_open=fut.reasoning_open)
        self.stops = list(fut.stop_strings)
        self.sent = ""

    def text(self, so_far: str) -> list:
        """Deltas for a ``("text", so_far, n)`` event (text that may still change is held)."""
        return self._release(so_far[: len(so_far) - holdback(so_far, self.stops)])

    def finish(self, raw_text: str) -> list:
        """The remaining deltas, given the finished reply's raw text (stop string cut)."""
        return self._release(raw_text) + list(self.parser.finish())

    def _release(self, ready: str) -> list:
        if not ready.startswith(self.sent) or len(ready) <= len(self.sent):
            return []
        delta, self.sent = ready[len(self.sent) :], ready
        return list(self.parser.feed(delta))


def delta_json(d) -> dict:
    """One typed delta as OpenAI's ``choices[i].delta``."""
    if isinstance(d, ContentDelta):
        return {"content": d.text}
    if isinstance(d, ReasoningDelta):
        return {"reasoning_content": d.text}
    if isinstance(d, ToolCallDelta):
        call: dict = {"index": d.index}
        if d.id is not None:
            call["id"] = d.id
            call["type"] = "function"
        fn: dict = {"arguments": d.arguments_delta}
        if d.name is not None:
            fn["name"] = d.name
        call["function"] = fn
        return {"tool_calls": [call]}
    raise TypeError(f"unknown delta {d!r}")
