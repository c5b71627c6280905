"""Family adapters, one per backbone; looked up by family name or by architecture class."""

from __future__ import annotations

from sealion_vl.errors import UnsupportedModelError
from sealion_vl.families.base import FamilyAdapter
from sealion_vl.families.gemma3 import Gemma3Adapter
from sealion_vl.families.gemma4 import Gemma4Adapter
from sealion_vl.families.qwen3_vl import Qwen3VLAdapter
from sealion_vl.families.replies import (
    ContentDelta,
    Delta,
    ParsedReply,
    ReasoningDelta,
    ReplyStream,
    ToolCallDelta,
    assemble,
)

ADAPTERS: dict[str, FamilyAdapter] = {
    a.name: a for a in (Gemma3Adapter(), Qwen3VLAdapter(), Gemma4Adapter())
}


def get_adapter(family: str) -> FamilyAdapter:
    """The adapter for a family name such as ``gemma3``."""
    try:
        return ADAPTERS[family]
    except KeyError:
        raise UnsupportedModelError(
            f"unknown model family {family!r}; known: {', '.join(sorted(ADAPTERS))}"
        ) from None


def adapter_for_architecture(architecture: str) -> tuple[FamilyAdapter, bool]:
    """(adapter, is_multimodal) for a ``config.architectures[0]`` class name."""
    for a in ADAPTERS.values():
        if architecture in a.vlm_architectures:
            return a, True
        if architecture in a.text_architectures:
            return a, False
    known = sorted(x for a in ADAPTERS.values() for x in a.vlm_architectures + a.text_architectures)
    raise UnsupportedModelError(
        f"architecture {architecture!r} is not supported; sealion-vl runs: {', '.join(known)}"
    )


def parse_reply(
    text: str,
    family: str,
    *,
    tools: bool = True,
    reasoning_open: bool | None = None,
    id_seed: object = None,
) -> ParsedReply:
    """Split a model reply into content, reasoning and OpenAI-shaped tool calls.

    Args:
        text: the decoded reply (markup tokens such as ``<tool_call>`` kept).
        family: ``gemma3`` | ``qwen3_vl`` | ``gemma4``.
        tools: read tool calls (``False``: call markup stays content, e.g. no tools offered).
        reasoning_open: the prompt opened the reasoning block; ``None`` guesses from the text.
        id_seed: make tool-call ids reproducible (random ``call_<24 hex>`` when ``None``).

    Returns:
        :class:`ParsedReply`; malformed markup is left in ``content``, never raised.
    """
    return get_adapter(family).parse_reply(
        text, tools=tools, reasoning_open=reasoning_open, id_seed=id_seed
    )


__all__ = [
    "ADAPTERS",
    "ContentDelta",
    "Delta",
    "FamilyAdapter",
    "ParsedReply",
    "ReasoningDelta",
    "ReplyStream",
    "ToolCallDelta",
    "adapter_for_architecture",
    "assemble",
    "get_adapter",
    "parse_reply",
]
