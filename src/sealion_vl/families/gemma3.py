"""Gemma 3 (Gemma-SEA-LION-v4-4B-VL / -27B-VL): no native system role, strict alternation."""

from __future__ import annotations

from sealion_vl.families.base import FamilyAdapter, gemma_packed_masks
from sealion_vl.messages import Message, Part


class Gemma3Adapter(FamilyAdapter):
    name = "gemma3"
    vlm_architectures = ("Gemma3ForConditionalGeneration",)
    text_architectures = ("Gemma3ForCausalLM",)
    modalities = ("text", "image")
    stop_tokens = ("<end_of_turn>", "<eos>")
    media_tokens = {"image": "<start_of_image>"}
    assistant_header = "<start_of_turn>model\n"
    turn_end = "<end_of_turn>"
    module_groups = {
        "vision": ("model.vision_tower.",),
        "projector": ("model.multi_modal_projector.",),
        "language": ("model.language_model.", "lm_head."),
    }

    def packed_attention(self, model, batch: dict) -> dict | None:
        """Gemma 3 always attends bidirectionally within an image: see ``gemma_packed_masks``."""
        from transformers.models.gemma3.modeling_gemma3 import get_block_sequence_ids_for_mask

        return gemma_packed_masks(model, batch, "token_type_ids", get_block_sequence_ids_for_mask)

    def prepare(self, messages: list[Message]) -> list[Message]:
        """Give the template one leading system turn and strictly alternating turns.

        Gemma 3 has no system role: its template folds one leading system message into
        the first user turn, and raises on two user turns in a row (which tool results
        or pasted histories produce). So: all system texts become one leading system
        message, and neighbouring turns of one role are merged, their texts joined by a
        blank line (the template trims each text part, so the join must sit inside one).
        """
        system = [p.text for m in messages if m.role == "system" for p in m.parts if p.text]
        out: list[Message] = []
        for m in messages:
            if m.role == "system":
                continue
            role = "assistant" if m.role == "assistant" else "user"
            if out and out[-1].role == role:
                out[-1] = Message(role, _join(out[-1].parts, m.parts))
            else:
                out.append(Message(role, list(m.parts)))
        if system:
            out.insert(0, Message("system", [Part.of_text("\n\n".join(system))]))
        return out


def _join(a: list[Part], b: list[Part]) -> list[Part]:
    if a and b and a[-1].type == "text" and b[0].type == "text":
        return a[:-1] + [Part.of_text(a[-1].text.rstrip() + "\n\n" + b[0].text.lstrip())] + b[1:]
    return a + b
