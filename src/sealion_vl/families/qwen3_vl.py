"""Qwen3-VL (Qwen-SEA-LION-v4-4B/8B-VL): ChatML turns, native system role, video input.

Replies (hermes style, facts.md §2): optional ``<think>\\n...\\n</think>\\n\\n`` at the start,
tool calls as ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` (several).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sealion_vl.families.base import FamilyAdapter
from sealion_vl.families.inference import QwenVisionHooks
from sealion_vl.families.replies import Scanner, calls_of, held_from

if TYPE_CHECKING:
    import torch

THINK, END_THINK = "<think>", "</think>"
CALL, END_CALL = "<tool_call>", "</tool_call>"


class Qwen3VLAdapter(FamilyAdapter):
    name = "qwen3_vl"
    vlm_architectures = ("Qwen3VLForConditionalGeneration",)
    text_architectures = ("Qwen3ForCausalLM",)
    modalities = ("text", "image", "video")
    stop_tokens = ("<|im_end|>", "<|endoftext|>")
    media_tokens = {"image": "<|image_pad|>", "video": "<|video_pad|>"}
    assistant_header = "<|im_start|>assistant\n"
    turn_end = "<|im_end|>"
    vision = QwenVisionHooks()
    module_groups = {
        "vision": ("model.visual.patch_embed.", "model.visual.pos_embed.", "model.visual.blocks."),
        "projector": ("model.visual.merger.", "model.visual.deepstack_merger_list."),
        "language": ("model.language_model.", "lm_head."),
    }
    special_tokens = {
        "base": {"pad_token": "<|endoftext|>", "eos_token": "<|im_end|>"},
        "named": {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
        "other": ["<|im_start|>", CALL, END_CALL, THINK, END_THINK],
    }
    markup_tokens = (THINK, END_THINK, CALL, END_CALL)
    reasoning_prompt_tags = (THINK,)

    def packed_positions(self, model, feats: dict) -> torch.Tensor:
        """(4, L): a 1-D text row (restarting at 0 marks the sequence boundary for the mask)
        over the three M-RoPE rows (time, height, width) computed for this sequence alone."""
        import torch

        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        mrope, _ = inner.model.get_rope_index(
            feats["input_ids"],
            feats["mm_token_type_ids"],
            image_grid_thw=feats.get("image_grid_thw"),
            video_grid_thw=feats.get("video_grid_thw"),
        )
        n = feats["input_ids"].shape[-1]
        return torch.cat([torch.arange(n).unsqueeze(0), mrope[:, 0, :].cpu()], dim=0)

    def scanner(self, tools: bool = True) -> Scanner:
        return HermesScanner(tools)

    def format_tool_calls(self, calls: list[dict]) -> str:
        """``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` per call, by lines."""
        return "\n".join(
            f"{CALL}\n{json.dumps({'name': n, 'arguments': a}, ensure_ascii=False)}\n{END_CALL}"
            for n, a in calls_of(calls)
        )

    def _starts_in_reasoning(self, text: str) -> bool:
        # the prompt opened <think> (thinking variants): only the closing tag shows up
        return END_THINK in text and not text.lstrip().startswith(THINK)


class HermesScanner(Scanner):
    """``<think>`` only at the very start; ``<tool_call>`` JSON blocks anywhere after it."""

    start = "start"

    def _start(self, text: str, pos: int, final: bool):
        i = len(text) - len(text[pos:].lstrip())
        ws = [("content", text[pos:i])] if i > pos else []
        if i == len(text):
            return ws, i, "start"
        if text.startswith(THINK, i):
            return [*ws, ("open",)], i + len(THINK), "reasoning"
        if THINK.startswith(text[i:]) and not final:
            return (ws, i, "start") if ws else None
        return ws, i, "content"

    def _reasoning(self, text: str, pos: int, final: bool):
        i = text.find(END_THINK, pos)
        if i >= 0:
            return [("reasoning", text[pos:i]), ("close",)], i + len(END_THINK), "content"
        end = len(text) if final else held_from(text, pos, (END_THINK,))
        return ([("reasoning", text[pos:end])], end, "reasoning") if end > pos else None

    def _content(self, text: str, pos: int, final: bool):
        if not self.tools:
            return [("content", text[pos:])], len(text), "content"
        i = text.find(CALL, pos)
        if i < 0:
            end = len(text) if final else held_from(text, pos, (CALL,))
            return ([("content", text[pos:end])], end, "content") if end > pos else None
        if i > pos:
            return [("content", text[pos:i])], i, "content"
        j = text.find(END_CALL, i)
        if j < 0:
            return ([("content", text[i:])], len(text), "content") if final else None
        call = _hermes_call(text[i + len(CALL) : j])
        end = j + len(END_CALL)
        return [("call", *call) if call else ("content", text[i:end])], end, "content"


def _hermes_call(body: str) -> tuple[str, dict] | None:
    try:
        obj = json.loads(body, parse_constant=_no_constant)
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
            return None
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            args = json.loads(args, parse_constant=_no_constant) if args.strip() else {}
    except (ValueError, RecursionError):
        return None
    return (obj["name"], args) if isinstance(args, dict) else None


def _no_constant(word: str):
    raise ValueError(f"{word} is not JSON")
