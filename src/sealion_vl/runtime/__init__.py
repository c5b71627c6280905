"""Loading checkpoints and generating from them (the Engine every job goes through)."""

from sealion_vl.runtime.engine import ChatModel
from sealion_vl.runtime.generation import ChatResult, GenerationSettings
from sealion_vl.runtime.load import load

__all__ = ["ChatModel", "ChatResult", "GenerationSettings", "load"]
