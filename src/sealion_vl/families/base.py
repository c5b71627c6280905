"""The family adapter protocol: everything that differs between backbones lives behind it.

The jobs (chat, serve, eval, train) never branch on the model class; they ask the adapter.
Adding a backbone = one new module here + its tiny-checkpoint builder in tests/fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import ClassVar

import torch

from sealion_vl.messages import Message


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
    extra: dict = field(default_factory=dict)

    @cached_property
    def chat_template(self) -> str:
        """The family's turn format as a Jinja chat template (used when a checkpoint has none)."""
        path = resources.files("sealion_vl.families").joinpath(f"templates/{self.name}.jinja")
        return path.read_text(encoding="utf-8")

    def prepare(self, messages: list[Message]) -> list[Message]:
        """Rewrite a conversation into the shape the family's template accepts.

        The default keeps it as is; Gemma 3 overrides this to fold the system prompt and
        merge consecutive turns of one role (its template rejects non-alternating roles).
        """
        return messages

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
