"""Gemma 3 (Gemma-SEA-LION-v4-4B-VL / -27B-VL): no native system role, strict alternation.

No tool role and no tool tokens (facts.md §2): tools are described in the system text, calls
are Python-style (``[f(a=1)]`` opening the reply, or ```` ```tool_code ```` fences anywhere),
results go back as a user turn wrapped in ``<tool_response>``. No reasoning markers.
"""

from __future__ import annotations

import dataclasses
import json

from sealion_vl.families.base import FamilyAdapter, gemma_packed_masks, name_tool_turns
from sealion_vl.families.pyliteral import NotACall, format_call, parse_call_block, parse_call_list
from sealion_vl.families.replies import Scanner, calls_of, held_from
from sealion_vl.messages import Message, Part, parse_tools

FENCE, END_FENCE = "```tool_code", "```"

# SEA-LION's tool-calling guide for Gemma 3 asks for calls in a tool_code fence through the
# system prompt; this is our wording of that instruction.
TOOL_INSTRUCTION = (
    "You can call the functions listed below. To call one or more of them, reply with a "
    "block that starts with ```tool_code on its own line, holds one call per line written "
    'as Python with keyword arguments, for example get_weather(city="Jakarta"), and ends '
    "with ``` on its own line. Call only these functions. Each result comes back to you "
    "inside <tool_response></tool_response>; use it to answer.\n\nFunctions:\n"
)


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
    special_tokens = {
        "base": {
            "pad_token": "<pad>",
            "eos_token": "<eos>",
            "bos_token": "<bos>",
            "unk_token": "<unk>",
        },
        "named": {
            "image_token": "<image_soft_token>",
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
        },
        "other": ["<start_of_turn>", "<end_of_turn>"],
    }
    tools_in_template = False

    def packed_attention(self, model, batch: dict) -> dict | None:
        """Gemma 3 always attends bidirectionally within an image: see ``gemma_packed_masks``."""
        from transformers.models.gemma3.modeling_gemma3 import get_block_sequence_ids_for_mask

        return gemma_packed_masks(model, batch, "token_type_ids", get_block_sequence_ids_for_mask)

    def prepare(self, messages: list[Message], tools: list[dict] | None = None) -> list[Message]:
        """Give the template one leading system turn and strictly alternating turns.

        Gemma 3 has no system role: its template folds one leading system message into
        the first user turn, and raises on two user turns in a row (which tool results
        or pasted histories produce). So: all system texts (and the tool instruction with
        the tools as JSON, when there are tools) become one leading system message; an
        assistant turn's tool calls are written as the ``tool_code`` block the model emits;
        tool results become user text inside ``<tool_response>``; and neighbouring turns
        of one role are merged, their texts joined by a blank line (the template trims
        each text part, so the join must sit inside one).
        """
        system = [p.text for m in messages if m.role == "system" for p in m.parts if p.text]
        specs = [t["function"] for t in parse_tools(tools)]
        if specs:
            system.append(TOOL_INSTRUCTION + json.dumps(specs, ensure_ascii=False, indent=2))
        out: list[Message] = []
        for m in name_tool_turns(messages):
            if m.role == "system":
                continue
            role = "assistant" if m.role == "assistant" else "user"
            parts = list(m.parts)
            if m.role == "assistant" and m.tool_calls:
                parts = _join(parts, [Part.of_text(self.format_tool_calls(m.tool_calls))], "\n")
            elif m.role == "tool":
                parts = _join(
                    _join([Part.of_text("<tool_response>")], parts, "\n"),
                    [Part.of_text("</tool_response>")],
                    "\n",
                )
            if out and out[-1].role == role:
                out[-1] = Message(role, _join(out[-1].parts, parts))
            else:
                out.append(Message(role, parts))
        if system:
            out.insert(0, Message("system", [Part.of_text("\n\n".join(system))]))
        return out

    def scanner(self, tools: bool = True) -> Scanner:
        return Gemma3Scanner(tools)

    def format_tool_calls(self, calls: list[dict]) -> str:
        """A ```` ```tool_code ```` fence with one ``name(key=literal)`` call per line."""
        body = "\n".join(format_call(n, a) for n, a in calls_of(calls))
        return f"{FENCE}\n{body}\n{END_FENCE}"


def _join(a: list[Part], b: list[Part], sep: str = "\n\n") -> list[Part]:
    if a and b and a[-1].type == "text" and b[0].type == "text":
        text = a[-1].text.rstrip() + sep + b[0].text.lstrip()
        return a[:-1] + [dataclasses.replace(a[-1], text=text)] + b[1:]
    return a + b


class Gemma3Scanner(Scanner):
    """A pythonic call list opening the reply, then ``tool_code`` fences anywhere."""

    start = "start"

    def _start(self, text: str, pos: int, final: bool):
        if not self.tools:  # no markup but tool calls: the reply is all content
            return [("content", text[pos:])], len(text), "start"
        i = len(text) - len(text[pos:].lstrip())
        ws = [("content", text[pos:i])] if i > pos else []
        if i == len(text):
            return ws, i, "start"
        return ws, i, "list" if text[i] == "[" else "content"

    def _list(self, text: str, pos: int, final: bool):
        end = _call_list_end(text, pos)
        if end is None and not final:
            return None
        if end is not None and end > 0:
            try:
                calls = parse_call_list(text[pos:end])
            except NotACall:
                pass
            else:
                return [("call", n, a) for n, a in calls], end, "content"
        return [], pos, "content"

    def _content(self, text: str, pos: int, final: bool):
        i = text.find(FENCE, pos)
        if i < 0:
            end = len(text) if final else held_from(text, pos, (FENCE,))
            return ([("content", text[pos:end])], end, "content") if end > pos else None
        if i > pos:
            return [("content", text[pos:i])], i, "content"
        k = i + len(FENCE)
        if k < len(text) and not text[k].isspace():  # e.g. ```tool_codes: an ordinary fence
            return [("content", FENCE)], k, "content"
        j = text.find(END_FENCE, k) if k < len(text) else -1
        if j < 0:
            return ([("content", text[i:])], len(text), "content") if final else None
        end = j + len(END_FENCE)
        try:
            calls = parse_call_block(text[k:j])
        except NotACall:
            return [("content", text[i:end])], end, "content"
        return [("call", n, a) for n, a in calls], end, "content"


_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _call_list_end(text: str, pos: int) -> int | None:
    """End (exclusive) of the bracketed call list starting at ``text[pos] == "["``.

    ``None``: cannot tell yet (more text needed); ``-1``: not a call list (it does not open
    with ``[name(``, or its brackets or strings do not balance).
    """
    n, i = len(text), pos + 1
    while i < n and text[i].isspace():
        i += 1
    if i == n:
        return None
    if not (text[i].isalpha() or text[i] == "_"):
        return -1
    while i < n and (text[i].isalnum() or text[i] in "_."):
        i += 1
    while i < n and text[i].isspace():
        i += 1
    if i == n:
        return None
    if text[i] != "(":
        return -1
    stack, i = [], pos
    while i < n:
        c = text[i]
        if c in _PAIRS:
            stack.append(_PAIRS[c])
        elif c in ")]}":
            if not stack or stack.pop() != c:
                return -1
            if not stack:
                return i + 1
        elif c in "'\"":
            quote = c * 3 if text.startswith(c * 3, i) else c
            j = i + len(quote)
            while not text.startswith(quote, j):
                if j >= n:
                    return None
                if len(quote) == 1 and text[j] == "\n":
                    return -1
                j += 2 if text[j] == "\\" else 1
            i = j + len(quote)
            continue
        elif c == "#":
            return -1
        i += 1
    return None
