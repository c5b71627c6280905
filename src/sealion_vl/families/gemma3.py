"""Gemma 3 (Gemma-SEA-LION-v4-4B-VL / -27B-VL): no native system role, strict alternation."""

from __future__ import annotations

from sealion_vl.families.base import FamilyAdapter
from sealion_vl.messages import Message, Part


class Gemma3Adapter(FamilyAdapter):
    name = "gemma3"
    vlm_architectures = ("Gemma3ForConditionalGeneration",)
    text_architectures = ("Gemma3ForCausalLM",)
    modalities = ("text", "image")
    stop_tokens = ("<end_of_turn>", "<eos>")
    media_tokens = {"image": "<start_of_image>"}

    def prepare(self, messages: list[Message]) -> list[Message]:
        """Fold the system prompt into the first user turn and merge same-role neighbours.

        Gemma 3 has no system role: its official template prepends the system text (plus a
        blank line) to the first user turn and raises on two user turns in a row, which
        happens with tool results or pasted histories. Doing it here means a checkpoint
        whose own template is stricter still gets a valid conversation.
        """
        system = [m for m in messages if m.role == "system"]
        rest = [m for m in messages if m.role != "system"]
        out: list[Message] = []
        for m in rest:
            role = "assistant" if m.role == "assistant" else "user"
            if out and out[-1].role == role:
                out[-1] = Message(role, out[-1].parts + [Part.of_text("\n\n")] + m.parts)
            else:
                out.append(Message(role, list(m.parts)))
        if system:
            text = "\n\n".join(p.text for m in system for p in m.parts if p.type == "text")
            prefix = [Part.of_text(text.strip() + "\n\n")]
            if out and out[0].role == "user":
                out[0] = Message("user", prefix + out[0].parts)
            else:
                out.insert(0, Message("user", prefix))
        return out
