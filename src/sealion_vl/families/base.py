"""The family adapter protocol: everything that differs between backbones lives behind it.

The jobs (chat, serve, eval, train) never branch on the model class; they ask the adapter.
Adding a backbone = one new module here + its tiny-checkpoint builder in tests/fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import ClassVar

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
