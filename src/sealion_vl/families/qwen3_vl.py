"""Qwen3-VL (Qwen-SEA-LION-v4-4B/8B-VL): ChatML turns, native system role, video input."""

from __future__ import annotations

from sealion_vl.families.base import FamilyAdapter


class Qwen3VLAdapter(FamilyAdapter):
    name = "qwen3_vl"
    vlm_architectures = ("Qwen3VLForConditionalGeneration",)
    text_architectures = ("Qwen3ForCausalLM",)
    modalities = ("text", "image", "video")
    stop_tokens = ("<|im_end|>", "<|endoftext|>")
    media_tokens = {"image": "<|image_pad|>", "video": "<|video_pad|>"}
