"""Gemma 4 (Gemma-SEA-LION-v4.5-E2B-IT): native system turn, thinking flag, video and audio."""

from __future__ import annotations

from sealion_vl.families.base import FamilyAdapter, gemma_packed_masks


class Gemma4Adapter(FamilyAdapter):
    name = "gemma4"
    vlm_architectures = ("Gemma4ForConditionalGeneration",)
    text_architectures = ("Gemma4ForCausalLM",)
    modalities = ("text", "image", "video", "audio")
    # <|tool_response> ends a turn too: the model stops there to wait for a tool's result.
    stop_tokens = ("<turn|>", "<eos>", "<|tool_response>")
    media_tokens = {"image": "<|image|>", "video": "<|video|>", "audio": "<|audio|>"}
    assistant_header = "<|turn>model\n"
    turn_end = "<turn|>"
    module_groups = {
        "vision": ("model.vision_tower.", "model.audio_tower."),
        "projector": ("model.embed_vision.", "model.embed_audio."),
        "language": ("model.language_model.", "lm_head."),
    }

    def packed_attention(self, model, batch: dict) -> dict | None:
        """Larger Gemma 4 models attend bidirectionally within images/video frames; E2B does not."""
        from transformers.models.gemma4.modeling_gemma4 import get_block_sequence_ids_for_mask

        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        if inner.config.get_text_config().use_bidirectional_attention != "vision":
            return None
        return gemma_packed_masks(
            model, batch, "mm_token_type_ids", get_block_sequence_ids_for_mask
        )

    def template_kwargs(self, reasoning: bool | None) -> dict:
        """Gemma 4 thinks only when asked: the template's ``enable_thinking`` flag."""
        return {"enable_thinking": bool(reasoning)}
