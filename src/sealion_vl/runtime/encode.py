"""The one encoder: a conversation (+ tools, reasoning flag) in, model inputs out.

Chat, serve, eval and training all go through :class:`Encoder`; training adds its loss
masks on top (:mod:`sealion_vl.train.features`). Why by hand rather than
``processor.apply_chat_template(..., tokenize=True)``: media must go through
:mod:`sealion_vl.media` (one set of limits, SSRF-safe fetching, clear errors), the family
adapter must reshape the turns first (Gemma 3's strict alternation, tool turns), and the
checkpoint's own template is preferred over the family's fallback. The processor still
does all tokenisation and media-token expansion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from sealion_vl import media
from sealion_vl.errors import MessageFormatError, ModalityError
from sealion_vl.families import FamilyAdapter
from sealion_vl.messages import Message, parse_conversation, to_template_messages


@dataclass
class Media:
    """One conversation's decoded media, in prompt order per kind."""

    images: list = field(default_factory=list)
    videos: list = field(default_factory=list)
    audios: list = field(default_factory=list)


def check_modalities(messages: list[Message], allowed: tuple[str, ...], model_name: str) -> None:
    """Raise :class:`ModalityError` naming the first part the model cannot take."""
    for i, m in enumerate(messages):
        for p in m.parts:
            if p.type not in allowed:
                raise ModalityError(
                    f"message {i} has a {p.type} part, but {model_name} takes only "
                    f"{', '.join(allowed)}; remove the {p.type} or use a model that accepts it"
                )


class Encoder:
    """Renders and tokenises conversations for one checkpoint.

    Args:
        processor: the checkpoint's multimodal processor, or None for a text-only model.
        tokenizer: its tokenizer (``processor.tokenizer`` for multimodal checkpoints).
        adapter: the family adapter (turn reshaping, tools, template kwargs, fallback template).
        modalities: what the model accepts ("text", "image", ...).
        model_name: used in error messages.
        media_limits: caps for every image, video and audio this encoder loads.
    """

    def __init__(
        self,
        processor,
        tokenizer,
        adapter: FamilyAdapter,
        *,
        modalities: tuple[str, ...] = ("text",),
        model_name: str = "this model",
        media_limits: media.MediaLimits | None = None,
    ) -> None:
        self.processor = processor
        self.tokenizer = tokenizer
        self.adapter = adapter
        self.modalities = modalities
        self.model_name = model_name
        self.media_limits = media_limits or media.MediaLimits()
        own = getattr(processor if processor is not None else tokenizer, "chat_template", None)
        self.template = own or adapter.chat_template

    @property
    def audio_rate(self) -> int:
        fe = getattr(self.processor, "feature_extractor", None)
        return int(getattr(fe, "sampling_rate", 16000) or 16000)

    def messages(self, conversation: Any, tools: list[dict] | None = None) -> list[Message]:
        """Parse, check modalities and reshape a conversation for this family's template."""
        parsed = parse_conversation(conversation)
        check_modalities(parsed, self.modalities, self.model_name)
        return self.adapter.prepare(parsed, tools=tools)

    def render(
        self,
        messages: list[Message],
        *,
        tools: list[dict] | None = None,
        reasoning: bool | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt text for already-prepared ``messages`` (media as placeholders)."""
        owner = self.processor if self.processor is not None else self.tokenizer
        kwargs = dict(self.adapter.template_kwargs(reasoning))
        if tools:  # templates without tool support ignore it; Gemma 3's adapter folds them in
            kwargs["tools"] = tools
        try:
            return owner.apply_chat_template(
                to_template_messages(messages),
                chat_template=self.template,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                **kwargs,
            )
        except Exception as e:  # a template's raise_exception, or it indexing a missing field
            raise MessageFormatError(
                f"{self.model_name}'s chat template cannot render this conversation "
                f"({type(e).__name__}: {e}); check the roles and their order"
            ) from e

    def load_media(
        self,
        messages: list[Message],
        image_hook: Callable[[Image.Image], Image.Image] | None = None,
    ) -> Media:
        """Decode every media part (through :mod:`sealion_vl.media` and its limits)."""
        out = Media()
        limits = self.media_limits
        for m in messages:
            for p in m.parts:
                if p.type == "image":
                    img = media.load_image(p.source, limits)
                    out.images.append(image_hook(img) if image_hook else img)
                elif p.type == "video":
                    out.videos.append(media.load_video(p.source, limits))
                elif p.type == "audio":
                    src = p.source
                    if p.options.get("openai"):
                        src = media.audio_from_openai(src)
                    out.audios.append(media.load_audio(src, limits, sampling_rate=self.audio_rate))
        return out

    def tokenize(self, text: str, found: Media):
        """Processor (or tokenizer) call for one rendered conversation: a batch of one."""
        if self.processor is None:
            return self.tokenizer([text], return_tensors="pt", add_special_tokens=False)
        kwargs: dict = {"text": [text], "return_tensors": "pt"}
        if found.images:
            kwargs["images"] = [found.images]
        if found.videos:
            kwargs["videos"] = [v.frames for v in found.videos]
            kwargs["video_metadata"] = [v.metadata() for v in found.videos]
            kwargs["do_sample_frames"] = False
        if found.audios:
            kwargs["audio"] = found.audios
            kwargs["sampling_rate"] = self.audio_rate
        return self.processor(**kwargs)

    def encode(
        self,
        conversation: Any,
        *,
        tools: list[dict] | None = None,
        reasoning: bool | None = None,
        add_generation_prompt: bool = True,
        image_hook: Callable[[Image.Image], Image.Image] | None = None,
    ):
        """Model inputs for one conversation (a batch of one, on the CPU).

        Args:
            conversation: OpenAI- or HF-style messages, or a plain user string.
            tools: OpenAI-style tool definitions, rendered the family's way.
            reasoning: the thinking switch (Gemma 4); None leaves the template's default.
            add_generation_prompt: end with the assistant header (inference) or not (training).
            image_hook: applied to each decoded image (training downscales large ones).

        Returns:
            The processor's ``BatchEncoding``: ``input_ids`` / ``attention_mask`` of shape
            (1, L) plus the family's pixel, video and audio tensors.
        """
        msgs = self.messages(conversation, tools)
        text = self.render(
            msgs, tools=tools, reasoning=reasoning, add_generation_prompt=add_generation_prompt
        )
        return self.tokenize(text, self.load_media(msgs, image_hook))
