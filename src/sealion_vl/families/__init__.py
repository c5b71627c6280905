"""Family adapters, one per backbone; looked up by family name or by architecture class."""

from __future__ import annotations

from sealion_vl.errors import UnsupportedModelError
from sealion_vl.families.base import FamilyAdapter
from sealion_vl.families.gemma3 import Gemma3Adapter
from sealion_vl.families.gemma4 import Gemma4Adapter
from sealion_vl.families.qwen3_vl import Qwen3VLAdapter

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


__all__ = ["ADAPTERS", "FamilyAdapter", "adapter_for_architecture", "get_adapter"]
