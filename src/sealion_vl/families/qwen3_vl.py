"""Qwen3-VL (Qwen-SEA-LION-v4-4B/8B-VL): ChatML turns, native system role, video input."""

from __future__ import annotations

import torch

from sealion_vl.families.base import FamilyAdapter


class Qwen3VLAdapter(FamilyAdapter):
    name = "qwen3_vl"
    vlm_architectures = ("Qwen3VLForConditionalGeneration",)
    text_architectures = ("Qwen3ForCausalLM",)
    modalities = ("text", "image", "video")
    stop_tokens = ("<|im_end|>", "<|endoftext|>")
    media_tokens = {"image": "<|image_pad|>", "video": "<|video_pad|>"}
    assistant_header = "<|im_start|>assistant\n"
    turn_end = "<|im_end|>"
    module_groups = {
        "vision": ("model.visual.patch_embed.", "model.visual.pos_embed.", "model.visual.blocks."),
        "projector": ("model.visual.merger.", "model.visual.deepstack_merger_list."),
        "language": ("model.language_model.", "lm_head."),
    }

    def packed_positions(self, model, feats: dict) -> torch.Tensor:
        """(4, L): a 1-D text row (restarting at 0 marks the sequence boundary for the mask)
        over the three M-RoPE rows (time, height, width) computed for this sequence alone."""
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        mrope, _ = inner.model.get_rope_index(
            feats["input_ids"],
            feats["mm_token_type_ids"],
            image_grid_thw=feats.get("image_grid_thw"),
            video_grid_thw=feats.get("video_grid_thw"),
        )
        n = feats["input_ids"].shape[-1]
        return torch.cat([torch.arange(n).unsqueeze(0), mrope[:, 0, :].cpu()], dim=0)
