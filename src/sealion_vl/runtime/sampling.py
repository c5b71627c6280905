"""Per-request sampling: each row of a decode batch has its own settings and RNG.

Why by hand rather than transformers' ``LogitsProcessorList``: those processors take one
setting for the whole batch, and a continuous batch mixes requests that differ in
temperature, top-p, top-k, repetition penalty and seed. The order of operations follows
transformers' (repetition penalty, then temperature, top-k, top-p), so a greedy request gives
the token ``generate`` would give.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Sampling:
    """One request's resolved decoding settings (``None`` already replaced by the defaults).

    Attributes:
        greedy: argmax instead of sampling.
        temperature / top_p / top_k: the usual knobs (ignored when greedy).
        repetition_penalty: >1 lowers the logits of tokens already in prompt or reply.
        generator: this request's own RNG (seeded when the request gave a seed).
    """

    greedy: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    generator: torch.Generator | None = None

    @classmethod
    def from_generation_config(cls, cfg, seed: int | None) -> Sampling:
        """Read a per-call ``GenerationConfig`` (settings laid over the checkpoint's)."""
        gen = torch.Generator()
        gen.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,))))
        return cls(
            greedy=not cfg.do_sample,
            temperature=float(cfg.temperature or 1.0),
            top_p=float(cfg.top_p if cfg.top_p is not None else 1.0),
            top_k=int(cfg.top_k or 0),
            repetition_penalty=float(cfg.repetition_penalty or 1.0),
            generator=gen,
        )


def penalise_repeats(row: torch.Tensor, seen: torch.Tensor, penalty: float) -> None:
    """In place, as transformers does: divide positive logits, multiply negative ones."""
    if penalty == 1.0 or seen.numel() == 0:
        return
    seen = seen.to(row.device)
    picked = row.gather(0, seen)
    row.scatter_(0, seen, torch.where(picked < 0, picked * penalty, picked / penalty))


def choose(row: torch.Tensor, s: Sampling) -> int:
    """The next token id from one row of logits (V,) under ``s``."""
    row = row.float().nan_to_num(nan=float("-inf"))  # a penalty can overflow to inf/nan
    if s.greedy:
        return int(row.argmax())
    logits = row / max(s.temperature, 1e-5)
    # inf - inf is nan in the softmax: keep the largest finite range instead
    logits = logits.nan_to_num(nan=float("-inf"), posinf=torch.finfo(torch.float32).max / 4)
    if s.top_k and s.top_k < logits.shape[0]:
        kth = torch.topk(logits, s.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if s.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum <= (1 - s.top_p)
        drop[-1] = False  # always keep the likeliest token
        logits = logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))
    probs = logits.softmax(-1)
    if not torch.isfinite(probs).all() or float(probs.sum()) <= 0:
        return int(row.argmax())  # nothing left to sample from: the likeliest token
    return int(torch.multinomial(probs, 1, generator=s.generator))
