"""Distillation divergences between a teacher's top-k distribution and a student's logits.

Why the tail is a bin of its own: a top-k cache keeps the teacher's k most likely tokens and
the log of the mass left over. Dropping that mass (renormalising the top k, as most
implementations do) tells the student the teacher is surer than it was. Here both
distributions are coarsened to the same k + 1 outcomes: the k teacher tokens and "everything
else". The student's "everything else" is its own probability outside those k ids, computed
from its logits (a masked log-sum-exp, exact and stable), and is compared with the teacher's
tail mass. The divergence between coarsened distributions is a lower bound on the full one
and equals it when k covers the vocabulary (then there is no tail bin). On nano at k = 64 the
cached forward KL and JSD are within 0.04 % and 0.12 % of the full ones; reverse KL, which
weighs the tail by the student's own spread-out mass, is up to 13 % low
(bench/distill_cache.py): prefer forward KL or JSD with a cache.

Vocabularies may differ by padding only (embedding rows past the tokenizer, which models
pad to a multiple of 64 or 128): both models must carry the same tokenizer, and both
distributions are taken over the tokenizer's ids, never over the padding rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

import torch

from sealion_vl.errors import SealionError

Divergence = Literal["forward_kl", "reverse_kl", "jsd"]
#: A teacher tail mass below e^-80 counts as e^-80, so reverse KL and JSD stay finite when
#: the teacher's float32 tail underflowed while the student still puts mass there.
TAIL_FLOOR = -80.0


@dataclass
class TopK:
    """A teacher's top-k distribution for N tokens.

    Attributes:
        ids: (N, k) long, token ids, most likely first.
        logp: (N, k) float32, their log-probabilities.
        log_tail: (N,) float32, log of the probability of every other token (-inf if none).
    """

    ids: torch.Tensor
    logp: torch.Tensor
    log_tail: torch.Tensor


def tokenizer_hash(tokenizer) -> str:
    """A fingerprint of a tokenizer's vocabulary (every token string and its id)."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()[:16]


def shared_vocab(
    teacher_hash: str, student_hash: str, n_tokens: int, teacher_size: int, student_size: int
) -> int:
    """The number of real token ids both models share; an error unless only padding differs.

    Args:
        teacher_hash, student_hash: :func:`tokenizer_hash` of the two tokenizers.
        n_tokens: ``len(tokenizer)`` (the same for both when the hashes agree).
        teacher_size, student_size: the models' logit widths (``lm_head`` rows).

    Returns:
        ``n_tokens``: distributions are compared over ids ``0..n_tokens-1``.
    """
    if teacher_hash != student_hash:
        raise SealionError(
            f"teacher and student tokenizers differ (vocabulary hash {teacher_hash} vs "
            f"{student_hash}); logit distillation needs the same tokenizer (the models' "
            "vocabularies may differ by padding rows only)"
        )
    for who, size in (("teacher", teacher_size), ("student", student_size)):
        if size < n_tokens:
            raise SealionError(
                f"the {who}'s output layer has {size} rows but the tokenizer has {n_tokens} "
                "tokens; the checkpoint and its tokenizer do not belong together"
            )
    return n_tokens


def topk_of(logits: torch.Tensor, k: int, *, temperature: float = 1.0, n_vocab: int) -> TopK:
    """The top-k distribution of ``logits`` (N, V >= n_vocab) at ``temperature``, ids < n_vocab."""
    z = logits[..., :n_vocab].float() / temperature
    lse = torch.logsumexp(z, dim=-1, keepdim=True)
    top, ids = torch.topk(z, min(k, n_vocab), dim=-1)
    if ids.shape[-1] >= n_vocab:
        log_tail = torch.full(z.shape[:-1], float("-inf"))
    else:
        log_tail = torch.logsumexp(z.scatter(-1, ids, float("-inf")), dim=-1) - lse[..., 0]
    return TopK(ids, top - lse, log_tail)


def _kl(la: torch.Tensor, lb: torch.Tensor) -> torch.Tensor:
    """Sum over the last dim of a * (log a - log b), with 0 where a == 0 (gradient-safe)."""
    a = la.exp()
    live = a > 0
    zero = torch.zeros((), dtype=la.dtype, device=la.device)
    return (a * (torch.where(live, la, zero) - torch.where(live, lb, zero))).sum(-1)


def divergence_from_logprobs(lp: torch.Tensor, lq: torch.Tensor, kind: Divergence) -> torch.Tensor:
    """Per-row divergence between teacher ``lp`` and student ``lq`` log-probs over the same bins."""
    if kind == "forward_kl":
        return _kl(lp, lq)
    if kind == "reverse_kl":
        return _kl(lq, lp)
    if kind == "jsd":
        lm = torch.logaddexp(lp, lq) - torch.log(torch.tensor(2.0, device=lp.device))
        return 0.5 * _kl(lp, lm) + 0.5 * _kl(lq, lm)
    raise SealionError(f"unknown divergence {kind!r}; use forward_kl, reverse_kl or jsd")


def topk_divergence(
    student_logits: torch.Tensor,
    teacher: TopK,
    kind: Divergence,
    *,
    temperature: float = 1.0,
    n_vocab: int,
) -> torch.Tensor:
    """Divergence per token between a cached teacher top-k and the student's logits.

    Args:
        student_logits: (N, V_s) with V_s >= n_vocab (padding columns are ignored).
        teacher: the teacher's :class:`TopK` for the same N tokens (taken at ``temperature``).
        kind: ``forward_kl`` (KL(teacher || student)), ``reverse_kl`` or ``jsd``.
        n_vocab: shared real vocabulary (:func:`shared_vocab`).

    Returns:
        (N,) float32; not scaled by temperature**2 (the caller does that).
    """
    z = student_logits[..., :n_vocab].float() / temperature
    lse = torch.logsumexp(z, dim=-1, keepdim=True)
    ids = teacher.ids.to(z.device)
    lq = z.gather(-1, ids) - lse
    lp = teacher.logp.to(z.device).float()
    if ids.shape[-1] < n_vocab:  # the "everything else" bin
        lq_tail = torch.logsumexp(z.scatter(-1, ids, float("-inf")), dim=-1) - lse[..., 0]
        lp_tail = teacher.log_tail.to(z.device).float().clamp(min=TAIL_FLOOR)
        lp = torch.cat([lp, lp_tail[:, None]], dim=-1)
        lq = torch.cat([lq, lq_tail[:, None]], dim=-1)
    # a cache rounds its log-probs: make the teacher's k + 1 bins sum to one again
    lp = lp - torch.logsumexp(lp, dim=-1, keepdim=True)
    return divergence_from_logprobs(lp, lq, kind)


def full_divergence(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    kind: Divergence,
    *,
    temperature: float = 1.0,
    n_vocab: int,
) -> torch.Tensor:
    """Divergence per token over the whole shared vocabulary (online mode, the bench)."""
    lq = torch.log_softmax(student_logits[..., :n_vocab].float() / temperature, dim=-1)
    lp = torch.log_softmax(teacher_logits[..., :n_vocab].float() / temperature, dim=-1)
    return divergence_from_logprobs(lp, lq, kind)
