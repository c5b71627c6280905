"""Gemma 4 (Gemma-SEA-LION-v4.5-E2B-IT): native system turn, thinking flag, video and audio.

Replies (facts.md §2): reasoning as ``<|channel>thought\\n...<channel|>``; tool calls as
``<|tool_call>call:NAME{key:<|"|>text<|"|>,n:42}<tool_call|>`` (several, concatenated).
"""

from __future__ import annotations

from sealion_vl.families import gemma4_syntax
from sealion_vl.families.base import FamilyAdapter, gemma_packed_masks
from sealion_vl.families.inference import Gemma4VisionHooks
from sealion_vl.families.replies import Scanner, calls_of, find_first, held_from

CHANNEL, END_CHANNEL = "<|channel>", "<channel|>"
CALL, END_CALL = "<|tool_call>", "<tool_call|>"
THOUGHT = "thought"


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
    vision = Gemma4VisionHooks()
    quoted_in_turn = (("<|tool_response>", "<tool_response|>"),)
    module_groups = {
        "vision": ("model.vision_tower.", "model.audio_tower."),
        "projector": ("model.embed_vision.", "model.embed_audio."),
        "language": ("model.language_model.", "lm_head."),
    }
    special_tokens = {
        "base": {
            "pad_token": "<pad>",
            "eos_token": "<eos>",
            "bos_token": "<bos>",
            "unk_token": "<unk>",
        },
        "named": {
            "image_token": "<|image|>",
            "boi_token": "<|image>",
            "eoi_token": "<image|>",
            "audio_token": "<|audio|>",
            "boa_token": "<|audio>",
            "eoa_token": "<audio|>",
            "sot_token": "<|turn>",
            "eot_token": "<turn|>",
            "soc_token": CHANNEL,
            "eoc_token": END_CHANNEL,
            "think_token": "<|think|>",
            "escape_token": gemma4_syntax.QUOTE,
            "str_token": "<|tool_response>",
            "etr_token": "<tool_response|>",
            "stc_token": CALL,
            "etc_token": END_CALL,
            "std_token": "<|tool>",
            "etd_token": "<tool|>",
        },
        # <|video|> must already be in the vocab or Gemma4Processor adds it (vocab grows)
        "other": ["<|video|>", "<mask>"],
    }
    markup_tokens = (CHANNEL, END_CHANNEL, CALL, END_CALL, gemma4_syntax.QUOTE)
    reasoning_prompt_tags = (CHANNEL + THOUGHT, CHANNEL)

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

    def scanner(self, tools: bool = True) -> Scanner:
        return Gemma4Scanner(tools)

    def format_tool_calls(self, calls: list[dict]) -> str:
        """``<|tool_call>call:NAME{...}<tool_call|>`` per call, concatenated (keys sorted)."""
        return "".join(gemma4_syntax.format_call(n, a) for n, a in calls_of(calls))

    def _starts_in_reasoning(self, text: str) -> bool:
        return END_CHANNEL in text and not text.lstrip().startswith(CHANNEL)


class Gemma4Scanner(Scanner):
    """Thought channels and tool calls anywhere; a tool call also ends an unclosed thought."""

    open_state = "header"

    def _content(self, text: str, pos: int, final: bool):
        tags = (CHANNEL, CALL) if self.tools else (CHANNEL,)
        i, tag = find_first(text, pos, tags)
        if i < 0:
            end = len(text) if final else held_from(text, pos, tags)
            return ([("content", text[pos:end])], end, "content") if end > pos else None
        if i > pos:
            return [("content", text[pos:i])], i, "content"
        if tag == CHANNEL:
            return [("open",)], i + len(CHANNEL), "header"
        j = text.find(END_CALL, i)
        if j < 0:
            return ([("content", text[i:])], len(text), "content") if final else None
        end = j + len(END_CALL)
        try:
            name, args = gemma4_syntax.parse_call(text[i + len(CALL) : j])
        except gemma4_syntax.Gemma4SyntaxError:
            return [("content", text[i:end])], end, "content"
        return [("call", name, args)], end, "content"

    def _header(self, text: str, pos: int, final: bool):
        # <|channel> is followed by the channel's name: "thought" (dropped with its newline,
        # which the trimming of reasoning text removes)
        if text.startswith(THOUGHT, pos):
            return [], pos + len(THOUGHT), "reasoning"
        if THOUGHT.startswith(text[pos:]) and not final:
            return None
        return [], pos, "reasoning"

    def _reasoning(self, text: str, pos: int, final: bool):
        tags = (END_CHANNEL, CALL) if self.tools else (END_CHANNEL,)
        i, tag = find_first(text, pos, tags)
        if i < 0:
            end = len(text) if final else held_from(text, pos, tags)
            return ([("reasoning", text[pos:end])], end, "reasoning") if end > pos else None
        end = i + len(END_CHANNEL) if tag == END_CHANNEL else i
        return [("reasoning", text[pos:i]), ("close",)], end, "content"
