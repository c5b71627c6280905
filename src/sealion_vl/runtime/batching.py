"""Turn conversations into one padded model batch.

Why by hand rather than ``processor.apply_chat_template(..., tokenize=True)``: media must go
through :mod:`sealion_vl.media` (one set of limits, SSRF-safe fetching, clear errors), the
family adapter must reshape the turns first, and a batch of conversations with different
image counts needs the images nested per conversation (the Gemma processors split them by
sample). The processor still does all tokenisation and image-token expansion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sealion_vl import media
from sealion_vl.errors import ModalityError
from sealion_vl.messages import Message, to_template_messages


@dataclass
class Prepared:
    """One conversation ready for the processor."""

    text: str
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


def _load_audio(part, limits, sampling_rate: int):
    src = part.source
    if part.options.get("openai"):
        src = media.audio_from_openai(src)
    return media.load_audio(src, limits, sampling_rate=sampling_rate)


def prepare(
    messages: list[Message],
    *,
    render,
    limits: media.MediaLimits,
    audio_sampling_rate: int = 16000,
) -> Prepared:
    """Render one (already adapter-shaped) conversation and load its media in order.

    Args:
        messages: the conversation, after ``adapter.prepare``.
        render: callable taking HF template messages and returning the prompt string.
        limits: media limits (pixel cap, byte cap, timeouts, local-file policy).
        audio_sampling_rate: rate the model's feature extractor expects.
    """
    out = Prepared(text=render(to_template_messages(messages)))
    for m in messages:
        for p in m.parts:
            if p.type == "image":
                out.images.append(media.load_image(p.source, limits))
            elif p.type == "video":
                out.videos.append(media.load_video(p.source, limits))
            elif p.type == "audio":
                out.audios.append(_load_audio(p, limits, audio_sampling_rate))
    return out


def collate(processor, items: list[Prepared], *, sampling_rate: int = 16000):
    """Call the processor once for the whole batch (left padding for generation).

    Returns:
        BatchEncoding with ``input_ids`` / ``attention_mask`` of shape (batch, seq) plus the
        family's pixel, video and audio tensors.
    """
    kwargs: dict = {"text": [it.text for it in items], "padding": True, "return_tensors": "pt"}
    if any(it.images for it in items):
        kwargs["images"] = [it.images for it in items]
    videos = [v for it in items for v in it.videos]
    if videos:
        kwargs["videos"] = [v.frames for v in videos]
        kwargs["video_metadata"] = [v.metadata() for v in videos]
        kwargs["do_sample_frames"] = False
    audios = [a for it in items for a in it.audios]
    if audios:
        kwargs["audio"] = audios
        kwargs["sampling_rate"] = sampling_rate
    return processor(**kwargs)
