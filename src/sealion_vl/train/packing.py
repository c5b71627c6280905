"""Multimodal sequence packing and batch collation.

Packed rows carry no attention mask; instead each sequence's position ids restart at 0,
which transformers' mask builder reads as a sequence boundary and turns into a
block-diagonal (per-sequence) causal mask, keeping Gemma's bidirectional image blocks and
Qwen3-VL's per-sequence M-RoPE positions. Padding at a row's end is one more "sequence"
with no loss, so it cannot leak into real ones.
"""

from __future__ import annotations

import functools
import inspect

import torch

from sealion_vl.train.features import IGNORE, Features


def pack_greedy(items: list[Features], max_len: int) -> list[list[Features]]:
    """First-fit packing in arrival order (deterministic); each row holds <= max_len tokens."""
    rows: list[list[Features]] = []
    room: list[int] = []
    for f in items:
        for i, free in enumerate(room):
            if f.length <= free:
                rows[i].append(f)
                room[i] -= f.length
                break
        else:
            rows.append([f])
            room.append(max_len - f.length)
    return rows


def collate(rows: list[list[Features]], *, pad_id: int, packed: bool) -> dict[str, torch.Tensor]:
    """Rows of sequences -> one model batch (right padding).

    Returns:
        ``input_ids`` / ``labels`` / type ids (B, L); ``position_ids`` (B, L) or (P, B, L)
        when packed, else ``attention_mask`` (B, L); media tensors concatenated in token
        order across the batch.
    """
    width = max(sum(f.length for f in row) for row in rows)
    token_keys = list(rows[0][0].tokens)
    fills = {"input_ids": pad_id, "labels": IGNORE}
    out: dict[str, list[torch.Tensor]] = {k: [] for k in token_keys}
    positions, masks = [], []
    media: dict[str, list[torch.Tensor]] = {}
    for row in rows:
        used = sum(f.length for f in row)
        pad = width - used
        for k in token_keys:
            parts = [f.tokens[k] for f in row]
            if pad:
                parts.append(torch.full((pad,), fills.get(k, 0), dtype=parts[0].dtype))
            out[k].append(torch.cat(parts))
        pos = [f.positions for f in row]
        if pad:
            pos.append(torch.arange(pad).unsqueeze(0).expand(row[0].positions.shape[0], -1))
        positions.append(torch.cat(pos, dim=1))
        masks.append(
            torch.cat([torch.ones(used, dtype=torch.long), torch.zeros(pad, dtype=torch.long)])
        )
        for f in row:
            for k, v in f.media.items():
                media.setdefault(k, []).append(v)
    batch = {k: torch.stack(v) for k, v in out.items()}
    if packed:
        pos = torch.stack(positions, dim=1)  # (P, B, L)
        batch["position_ids"] = pos[0] if pos.shape[0] == 1 else pos
    else:
        batch["attention_mask"] = torch.stack(masks)
    for k, v in media.items():
        batch[k] = torch.cat(v, dim=0)
    return batch


#: Logit elements cast to float32 at once in :func:`token_losses` (64M: 256 MB).
CE_BLOCK_ELEMENTS = 64 * 1024 * 1024


def label_logits(model, batch: dict[str, torch.Tensor], adapter=None, raw_model=None):
    """(N, V) logits at the N positions that carry a label, and the (N,) labels, row-major.

    ``batch`` holds model inputs plus ``labels``; ``adapter`` supplies packed-attention masks
    where transformers' own would leak across sequences; ``raw_model`` is the unwrapped
    model (DDP/FSDP wrap ``model``). Training (:func:`token_losses`) and distillation (the
    student and the teacher) read their logits here, so both see the same positions.

    Logits are computed only at positions that carry a label (transformers' boolean
    ``logits_to_keep``), when the model takes it. Why: image, prompt and padding positions
    need no logits, and the LM head over the vocabulary is a large share of a step: with
    Gemma 3's 262k vocabulary a 4 x 448 micro-batch would hold 1.9 GB of float32 logits;
    nano's stages ran 1.20-1.27x faster with it (bench/RESULTS.md).
    """
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if adapter is not None and "position_ids" in inputs:
        masks = adapter.packed_attention(raw_model or model, inputs)
        if masks is not None:
            inputs["attention_mask"] = masks
    labels = batch["labels"]
    keep = labels != IGNORE
    if _keeps_logits(raw_model or model):
        logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
        return logits.reshape(-1, logits.shape[-1]), labels[keep]
    return model(**inputs, use_cache=False).logits[keep], labels[keep]


def token_losses(model, batch: dict[str, torch.Tensor], adapter=None, raw_model=None):
    """(B, L) cross-entropy per position (0 where the label is IGNORE), in float32.

    Arguments as :func:`label_logits`, which computes the logits at labelled positions only.
    """
    flat_logits, flat_labels = label_logits(model, batch, adapter, raw_model)
    keep = batch["labels"] != IGNORE
    # Row blocks: a float32 copy of all logits is (B*L) x vocab x 4 bytes, 4 GB for 8 x 512
    # tokens of Gemma 3's 262k vocabulary; a block of rows is a fraction of that. Each row's
    # loss is computed alone either way, so the result is the same bit for bit.
    rows = max(1, CE_BLOCK_ELEMENTS // flat_logits.shape[-1])
    flat = torch.cat(
        [
            torch.nn.functional.cross_entropy(
                flat_logits[i : i + rows].float(), flat_labels[i : i + rows], reduction="none"
            )
            for i in range(0, flat_logits.shape[0], rows)
        ]
        or [flat_logits[:0].float().sum(-1)]  # no label in the batch: empty, still in the graph
    )
    return flat.new_zeros(keep.shape).masked_scatter(keep, flat)


def _keeps_logits(model) -> bool:
    """Whether ``model``'s forward takes ``logits_to_keep`` (PEFT wrappers: their base's)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _forward_takes_logits_to_keep(type(base))


@functools.cache
def _forward_takes_logits_to_keep(cls: type) -> bool:
    """Per model class, once: :func:`label_logits` runs every micro-batch."""
    return "logits_to_keep" in inspect.signature(cls.forward).parameters
