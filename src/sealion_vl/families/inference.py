"""What the request engine needs to know about each family's vision path and positions.

transformers 5.23's three model classes all take precomputed encoder outputs
(``mm_encoder_outputs={"image": ...}``) in place of ``pixel_values``; that is the seam the
engine's vision cache uses. What differs per family is how one request's processor output
splits into single images, how one image is encoded, how encoded images are put back
together, and (Qwen3-VL) how the 3-D M-RoPE positions of a prompt are computed. Each
adapter holds one :class:`VisionHooks` (``adapter.vision``).

The scheduler encodes the uncached images of all requests joining at one step in a single
vision-tower call (:meth:`VisionHooks.encode_many`). On the CPU that gives each image
bit-for-bit the features it gets alone (checked for all three families by the engine tests,
which compare batched replies with one-at-a-time ones).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only when a model runs: adapters (and reply parsing) import this
    import torch


def _output(**kwargs):
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    return BaseModelOutputWithPooling(**kwargs)


def _inner(model):
    """The ``*Model`` under a ``*ForConditionalGeneration`` (or a peft wrapper of one)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model


def tensor_key(*tensors: torch.Tensor) -> str:
    """A content hash of processed pixels: the image itself plus every processor setting
    that changed its pixels (size, crop, normalisation), since those are in the values."""
    import torch

    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass(frozen=True)
class VisionHooks:
    """Gemma 3: one fixed-size pixel tensor per image, one (1, T, D) feature block each."""

    image_keys: tuple[str, ...] = ("pixel_values",)

    def split(self, enc) -> list[dict[str, torch.Tensor]]:
        """One dict of processor tensors per image, in prompt order."""
        pv = enc.get("pixel_values")
        if pv is None:
            return []
        return [{"pixel_values": pv[i : i + 1]} for i in range(pv.shape[0])]

    def key(self, item: dict[str, torch.Tensor]) -> str:
        return tensor_key(*(item[k] for k in self.image_keys))

    def encode(self, model, item: dict[str, torch.Tensor]):
        return self.encode_many(model, [item])[0]

    def encode_many(self, model, items: list[dict[str, torch.Tensor]]) -> list:
        """Encode several images (of any requests) in one vision-tower call; one feature
        block per image, as :meth:`encode` gives it alone."""
        import torch

        pixels = torch.cat([it["pixel_values"] for it in items])
        out = _inner(model).get_image_features(pixels, return_dict=True).pooler_output
        return [out[i : i + 1] for i in range(len(items))]

    def assemble(self, features: list):
        import torch

        return _output(pooler_output=torch.cat(features, dim=0))

    def nbytes(self, feature) -> int:
        return feature.numel() * feature.element_size()

    def positions(self, model, enc) -> tuple[torch.Tensor, int]:
        """(position ids for the prompt, the next position after it). 1-D RoPE: 0..L-1."""
        import torch

        n = int(enc["input_ids"].shape[-1])
        return torch.arange(n).unsqueeze(0), n

    def step_positions(self, next_pos: torch.Tensor) -> torch.Tensor:
        """Position ids for one decode step of a batch, from each row's next position (B,)."""
        return next_pos.unsqueeze(1)


@dataclass(frozen=True)
class QwenVisionHooks(VisionHooks):
    """Qwen3-VL: patches of all images in one 2-D tensor, split by ``image_grid_thw``;
    features come with deepstack features per injected layer; positions are 3-D M-RoPE."""

    image_keys: tuple[str, ...] = ("pixel_values", "image_grid_thw")

    def split(self, enc) -> list[dict[str, torch.Tensor]]:
        pv, grid = enc.get("pixel_values"), enc.get("image_grid_thw")
        if pv is None:
            return []
        items, start = [], 0
        for g in grid:
            n = int(g.prod())
            items.append({"pixel_values": pv[start : start + n], "image_grid_thw": g[None]})
            start += n
        return items

    def encode_many(self, model, items) -> list:
        import torch

        out = _inner(model).get_image_features(
            torch.cat([it["pixel_values"] for it in items]),
            torch.cat([it["image_grid_thw"] for it in items]),
            return_dict=True,
        )
        return [
            (out.pooler_output[i], [f[i] for f in out.deepstack_features])
            for i in range(len(items))
        ]

    def assemble(self, features: list):
        out = _output(pooler_output=tuple(f[0] for f in features))
        layers = len(features[0][1]) if features else 0
        out.deepstack_features = [tuple(f[1][i] for f in features) for i in range(layers)]
        return out

    def nbytes(self, feature) -> int:
        main, deep = feature
        return sum(t.numel() * t.element_size() for t in [main, *deep])

    def positions(self, model, enc) -> tuple[torch.Tensor, int]:
        pos, _ = _inner(model).get_rope_index(
            enc["input_ids"],
            mm_token_type_ids=enc["mm_token_type_ids"],
            image_grid_thw=enc.get("image_grid_thw"),
            video_grid_thw=enc.get("video_grid_thw"),
        )
        return pos, int(pos.max()) + 1

    def step_positions(self, next_pos: torch.Tensor) -> torch.Tensor:
        # a text token sits at the same index on the time, height and width axes
        return next_pos.view(1, -1, 1).expand(3, -1, 1)


@dataclass(frozen=True)
class Gemma4VisionHooks(VisionHooks):
    """Gemma 4: each image padded to a fixed patch count, with (x, y) patch positions."""

    image_keys: tuple[str, ...] = ("pixel_values", "image_position_ids")

    def split(self, enc) -> list[dict[str, torch.Tensor]]:
        pv = enc.get("pixel_values")
        if pv is None:
            return []
        pos = enc["image_position_ids"]
        return [
            {"pixel_values": pv[i : i + 1], "image_position_ids": pos[i : i + 1]}
            for i in range(pv.shape[0])
        ]

    def encode_many(self, model, items) -> list:
        import torch

        out = _inner(model).get_image_features(
            torch.cat([it["pixel_values"] for it in items]),
            torch.cat([it["image_position_ids"] for it in items]),
            return_dict=True,
        )
        return list(out.pooler_output)

    def assemble(self, features: list):
        return _output(pooler_output=tuple(features))
