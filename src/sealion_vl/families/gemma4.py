"""Gemma 4 (Gemma-SEA-LION-v4.5-E2B-IT): native system turn, thinking flag, video and audio."""

from __future__ import annotations

from sealion_vl.families.base import FamilyAdapter


class Gemma4Adapter(FamilyAdapter):
    name = "gemma4"
    vlm_architectures = ("Gemma4ForConditionalGeneration",)
    text_architectures = ("Gemma4ForCausalLM",)
    modalities = ("text", "image", "video", "audio")
    # <|tool_response> ends a turn too: the model stops there to wait for a tool's result.
    stop_tokens = ("<turn|>", "<eos>", "<|tool_response>")
    media_tokens = {"image": "<|image|>", "video": "<|video|>", "audio": "<|audio|>"}

    def template_kwargs(self, reasoning: bool | None) -> dict:
        """Gemma 4 thinks only when asked: the template's ``enable_thinking`` flag."""
        return {"enable_thinking": bool(reasoning)}
