"""One training sample -> token tensors with loss targets, plus its media tensors.

Loss goes only on what the assistant says: the tokens after each assistant header up to
and including the turn-end token (so the model learns to stop). System and user turns,
image/video/audio soft tokens, headers and padding carry no loss. A cpt caption pair is
a user turn holding the image and an assistant turn holding the caption, so "loss on
caption tokens only" is the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from sealion_vl.families import FamilyAdapter
from sealion_vl.messages import Message

IGNORE = -100


@dataclass
class Features:
    """A sample ready for packing.

    Attributes:
        tokens: 1-D tensors of length L: ``input_ids``, ``labels`` (already shifted: the
            target of position t is token t+1, IGNORE where no loss) and the family's
            per-token type ids (``token_type_ids`` / ``mm_token_type_ids``).
        positions: (P, L) position ids for this sequence alone (P = 1, or 4 for M-RoPE).
        media: processor tensors concatenated along dim 0 across a batch (pixel_values...).
    """

    id: str
    tokens: dict[str, torch.Tensor]
    positions: torch.Tensor
    media: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.tokens["input_ids"].shape[0])

    @property
    def n_loss(self) -> int:
        return int((self.tokens["labels"] != IGNORE).sum())


def cap_pixels(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """Downscale (keeping aspect) so width*height <= max_pixels; memory stays bounded."""
    if not max_pixels or image.width * image.height <= max_pixels:
        return image
    scale = (max_pixels / (image.width * image.height)) ** 0.5
    size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def assistant_mask(input_ids: torch.Tensor, header: list[int], end: int) -> torch.Tensor:
    """Bool (L,): True on assistant content tokens and the turn-end token closing them."""
    ids = input_ids.tolist()
    mask = torch.zeros(len(ids), dtype=torch.bool)
    h = len(header)
    i = 0
    while i <= len(ids) - h:
        if ids[i : i + h] == header:
            j = i + h
            while j < len(ids) and ids[j] != end:
                mask[j] = True
                j += 1
            if j < len(ids):
                mask[j] = True  # the turn end itself: learning to stop
            i = j + 1
        else:
            i += 1
    return mask


def quoted_spans(input_ids: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Bool (L,): True after each ``start`` token up to and including its ``stop`` token.

    The ``start`` token itself stays trainable: the model emits it (Gemma 4 stops at
    ``<|tool_response>`` to wait for the tool), but not what the tool answered.
    """
    ids = input_ids.tolist()
    out = torch.zeros(len(ids), dtype=torch.bool)
    inside = False
    for i, t in enumerate(ids):
        if inside:
            out[i] = True
            inside = t != stop
        elif t == start:
            inside = True
    return out


class FeatureEncoder:
    """Training features for one model: the shared encoder's inputs plus loss targets.

    Rendering, media loading (images, video, audio) and tokenisation are
    :class:`sealion_vl.runtime.encode.Encoder`'s, the same as for chat and serving; this
    class adds the assistant-only loss mask, the per-sequence positions for packing and the
    split into per-token tensors and media tensors.
    """

    def __init__(
        self, model, processor, adapter: FamilyAdapter, *, max_image_pixels: int | None = None
    ) -> None:
        from sealion_vl.runtime.encode import Encoder

        self.model = model
        self.processor = processor
        self.adapter = adapter
        self.max_image_pixels = max_image_pixels
        self.encoder = Encoder(
            processor, processor.tokenizer, adapter, modalities=adapter.modalities
        )
        tok = processor.tokenizer
        self.header = tok(adapter.assistant_header, add_special_tokens=False)["input_ids"]
        self.end = tok.convert_tokens_to_ids(adapter.turn_end)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        # text the model's turn quotes but did not write (Gemma 4: tool results)
        vocab = tok.get_vocab()
        self.quoted = [
            (vocab[a], vocab[b]) for a, b in adapter.quoted_in_turn if a in vocab and b in vocab
        ]

    def render(self, messages: list[Message]) -> str:
        """The training text of ``messages`` (no generation prompt)."""
        prepared = self.adapter.prepare(messages)
        return self.encoder.render(prepared, add_generation_prompt=False)

    def __call__(self, sample_id: str, messages: list[Message]) -> Features:
        enc = self.encoder.encode(
            messages,
            add_generation_prompt=False,
            image_hook=lambda img: cap_pixels(img, self.max_image_pixels),
        )
        input_ids = enc["input_ids"][0]
        mask = assistant_mask(input_ids, self.header, self.end)
        for start, stop in self.quoted:
            mask &= ~quoted_spans(input_ids, start, stop)
        labels = torch.full_like(input_ids, IGNORE)
        labels[:-1] = torch.where(mask[1:], input_ids[1:], torch.full_like(input_ids[1:], IGNORE))
        n = input_ids.shape[0]
        tokens = {"input_ids": input_ids, "labels": labels}
        media_t = {}
        for key, val in enc.items():
            if key in ("input_ids", "attention_mask"):
                continue
            if val.dim() == 2 and val.shape == (1, n):
                tokens[key] = val[0]
            else:
                media_t[key] = val
        positions = self.adapter.packed_positions(self.model, enc)
        return Features(sample_id, tokens, positions, media_t)
