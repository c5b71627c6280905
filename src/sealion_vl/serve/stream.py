"""Streaming: typed deltas as OpenAI's ``choices[i].delta`` JSON.

The server needs the deltas *and* the final :class:`~sealion_vl.ChatResult` (finish reason,
usage) of each choice, so it listens to each :class:`~sealion_vl.runtime.futures.ChatFuture`
and turns text into deltas with the engine's own
:class:`~sealion_vl.runtime.futures.DeltaDecoder` (no partial stop string or markup tag is
ever sent).
"""

from __future__ import annotations

from sealion_vl.families.replies import ContentDelta, ReasoningDelta, ToolCallDelta


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
