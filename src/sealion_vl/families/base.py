"""The family adapter protocol: everything that differs between backbones lives behind it.

The jobs (chat, serve, eval, train) never branch on the model class; they ask the adapter.
Adding a backbone = one new module here + its tiny-checkpoint builder in tests/fixtures.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import TYPE_CHECKING, ClassVar

from sealion_vl.families.inference import VisionHooks
from sealion_vl.families.replies import ParsedReply, PlainScanner, ReplyStream, Scanner
from sealion_vl.messages import Message

if TYPE_CHECKING:  # torch only where tensors are made: parsing replies must not import it
    import torch


@dataclass(frozen=True)
class FamilyAdapter:
    """One backbone family's rules.

    Attributes:
        name: family key used by the catalog (``gemma3`` | ``qwen3_vl`` | ``gemma4``).
        vlm_architectures: ``config.architectures[0]`` values of the multimodal checkpoints.
        text_architectures: text-only checkpoints of the same family (same chat format).
        modalities: what the multimodal architectures accept besides text.
        stop_tokens: token strings that end an assistant turn.
        media_tokens: the text placeholder the chat template writes for each modality.
        special_tokens: the tokenizer's special tokens as the real checkpoints name them:
            ``{"base": {pad/eos/bos/unk_token: str}, "named": {attr: str}, "other": [str]}``.
        markup_tokens: special tokens that carry a reply's structure (reasoning, tool calls);
            decode replies keeping these and dropping every other special token.
        tools_in_template: whether the chat template renders ``tools=`` itself (Gemma 3's
            does not: :meth:`prepare` writes the tools into the system text instead).
        reasoning_prompt_tags: a prompt ending in one of these has opened the reasoning
            block, so the reply starts inside it.
    """

    name: ClassVar[str] = ""
    vlm_architectures: ClassVar[tuple[str, ...]] = ()
    text_architectures: ClassVar[tuple[str, ...]] = ()
    modalities: ClassVar[tuple[str, ...]] = ("text", "image")
    stop_tokens: ClassVar[tuple[str, ...]] = ()
    media_tokens: ClassVar[dict[str, str]] = {}
    # training: where an assistant turn's content starts and the token that ends it
    assistant_header: ClassVar[str] = ""
    turn_end: ClassVar[str] = ""
    # parameter-name prefixes of the parts the freeze switches act on
    module_groups: ClassVar[dict[str, tuple[str, ...]]] = {}
    # (open, close) token pairs inside the assistant turn that quote others' text (tool
    # results in Gemma 4's format): no training loss between them
    quoted_in_turn: ClassVar[tuple[tuple[str, str], ...]] = ()
    # how the engine splits, encodes (and caches) images and positions prompts
    vision: ClassVar[VisionHooks] = VisionHooks()
    special_tokens: ClassVar[dict] = {}
    markup_tokens: ClassVar[tuple[str, ...]] = ()
    tools_in_template: ClassVar[bool] = True
    reasoning_prompt_tags: ClassVar[tuple[str, ...]] = ()
    extra: dict = field(default_factory=dict)

    @cached_property
    def chat_template(self) -> str:
        """The family's turn format as a Jinja chat template (used when a checkpoint has none)."""
        path = resources.files("sealion_vl.families").joinpath(f"templates/{self.name}.jinja")
        return path.read_text(encoding="utf-8")

    def prepare(self, messages: list[Message], tools: list[dict] | None = None) -> list[Message]:
        """Rewrite a conversation into the shape the family's template accepts.

        Args:
            messages: the conversation (internal form).
            tools: the request's tools (OpenAI shape). Templates that render ``tools=``
                themselves get them from the caller; the default ignores them here.

        The default only names each tool turn after the call it answers (by
        ``tool_call_id``, else by position), since templates write the tool's name. Gemma 3
        overrides this to fold the system prompt, write tools and calls as text and merge
        consecutive turns of one role (its template rejects non-alternating roles).
        """
        return name_tool_turns(messages)

    # ------------------------------------------------------------ replies
    def scanner(self, tools: bool = True) -> Scanner:
        """The family's reply grammar (see :mod:`sealion_vl.families.replies`)."""
        return PlainScanner(tools)

    def reply_stream(
        self, *, tools: bool = True, reasoning_open: bool = False, id_seed: object = None
    ) -> ReplyStream:
        """An incremental parser for one reply: ``feed(new_text)`` → deltas, then ``finish()``.

        Args:
            tools: read tool calls; ``False`` (no tools were offered) leaves call markup in
                the content and only splits off reasoning.
            reasoning_open: the prompt already opened the reasoning block (see
                :meth:`prompt_opens_reasoning`), so the reply starts inside it. Unlike
                :meth:`parse_reply` a stream does not guess this: it cannot wait for the end.
            id_seed: make tool-call ids reproducible (random when ``None``).
        """
        return ReplyStream(self.scanner(tools), reasoning_open=reasoning_open, id_seed=id_seed)

    def parse_reply(
        self,
        text: str,
        *,
        tools: bool = True,
        reasoning_open: bool | None = None,
        id_seed: object = None,
    ) -> ParsedReply:
        """Split a whole reply into content, reasoning and tool calls (never raises on
        malformed markup: what cannot be read stays in ``content``).

        Args:
            text: the decoded reply, markup tokens kept.
            tools: as for :meth:`reply_stream`.
            reasoning_open: as for :meth:`reply_stream`; ``None`` guesses from the text
                (a closing reasoning tag with no opening one).
            id_seed: make tool-call ids reproducible (random when ``None``).
        """
        if reasoning_open is None:
            reasoning_open = self._starts_in_reasoning(text)
        stream = self.reply_stream(tools=tools, reasoning_open=reasoning_open, id_seed=id_seed)
        stream.feed(text)
        stream.finish()
        return stream.result()

    def format_tool_calls(self, calls: list[dict]) -> str:
        """The exact text the model writes to make ``calls`` (OpenAI-shaped, or
        ``{"name", "arguments"}``); :meth:`parse_reply` reads it back."""
        raise NotImplementedError(f"{self.name} has no tool-call format")

    def prompt_opens_reasoning(self, prompt: str) -> bool:
        """Whether a rendered prompt ends inside an opened reasoning block."""
        tail = prompt.rstrip()
        return any(tail.endswith(t) for t in self.reasoning_prompt_tags)

    def _starts_in_reasoning(self, text: str) -> bool:
        return False

    def template_kwargs(self, reasoning: bool | None) -> dict:
        """Extra keyword arguments for ``apply_chat_template`` (e.g. Gemma 4's thinking flag)."""
        return {}

    def packed_positions(self, model, feats: dict) -> torch.Tensor:
        """Position ids for one sequence that will sit in a packed row.

        Args:
            model: the model (Qwen3-VL needs its M-RoPE index function).
            feats: the processor's output for this one sequence (batch dim 1).

        Returns:
            (P, L) long tensor: P = 1 row of 0..L-1 for 1-D RoPE families. Restarting at 0 per
            sequence is what tells transformers' mask builder to isolate packed sequences.
        """
        import torch

        n = feats["input_ids"].shape[-1]
        return torch.arange(n).unsqueeze(0)

    def packed_attention(self, model, batch: dict) -> dict | None:
        """Attention masks for a packed batch, when transformers' own would be wrong.

        ``None`` (the default) lets the model build them from the restarting position ids.
        """
        return None


def gemma_packed_masks(model, batch: dict, type_key: str, block_ids_fn) -> dict:
    """Full and sliding masks for a packed Gemma batch with bidirectional media blocks.

    Why by hand: transformers 5.23 composes the sliding-window mask with the media blocks
    as an ``or_mask_function``, which its packed-sequence support then calls with
    per-sequence positions instead of row indices, so a text token of the second sequence
    is looked up as an image token of the first and attends bidirectionally. Here the
    blocks go in as ``block_sequence_ids`` (applied on row indices) for both layer kinds
    and the window as an ``and`` mask on per-sequence positions. (Differs from the model's
    own composition only for a single image block longer than the window.)
    """
    import torch
    from transformers.masking_utils import create_causal_mask, sliding_window_overlay

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    text_cfg = inner.config.get_text_config()
    ids = batch["input_ids"]
    embeds = torch.empty(ids.shape[0], ids.shape[1], 0, dtype=inner.dtype, device=ids.device)
    common = dict(
        config=text_cfg,
        inputs_embeds=embeds,
        attention_mask=None,
        past_key_values=None,
        position_ids=batch["position_ids"],
        block_sequence_ids=block_ids_fn(batch[type_key], device=ids.device),
    )
    return {
        "full_attention": create_causal_mask(**common),
        "sliding_attention": create_causal_mask(
            **common, and_mask_function=sliding_window_overlay(text_cfg.sliding_window)
        ),
    }


def name_tool_turns(messages: list[Message]) -> list[Message]:
    """Give each tool turn without a ``name`` the name of the call it answers.

    Matched by ``tool_call_id`` when it names a known call, else by position: the first
    call of the latest assistant turn not answered yet. The input is not modified.
    """
    names: dict[str, str] = {}
    pending: list[tuple[str, str]] = []  # (id, name) of the latest calls not yet answered
    out = []
    for m in messages:
        if m.role == "assistant":
            pending = [(c["id"], c["function"]["name"]) for c in m.tool_calls or []]
            names.update(pending)
        elif m.role == "tool":
            known = m.tool_call_id in names
            hit = [p for p in pending if p[0] == m.tool_call_id] if known else pending[:1]
            if hit:
                pending.remove(hit[0])
            name = m.name or names.get(m.tool_call_id or "") or (hit[0][1] if hit else None)
            if name != m.name:
                m = dataclasses.replace(m, name=name)
        out.append(m)
    return out
