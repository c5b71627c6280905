"""Merge methods as plain torch functions on one tensor, with mergekit 0.1.5's semantics.

Written here rather than imported: mergekit is LGPL and its methods work on a task graph,
while a streaming merge wants one function per tensor. Every method computes in float32
(float64 when the inputs are float64) and returns that; the caller casts to the output dtype.

Semantics followed (mergekit 0.1.5):

* ``linear``: sum(w_i x_i), divided by sum(w_i) when ``normalize`` (default true).
* ``slerp``: spherical interpolation from the base (t=0) to the other model (t=1) over the
  flattened tensor; when the normalised vectors are near-parallel (|cos| > 0.9995) it falls
  back to linear interpolation.
* ``task_arithmetic``, ``ties``, ``dare_linear``, ``dare_ties``: deltas d_i = x_i - base are
  sparsified (TIES: keep the top ``density`` fraction by magnitude, at least one element;
  DARE: keep each element with probability ``density``), optionally rescaled to keep the
  delta's L1 norm (``rescale``; default on for DARE), weighted by w_i; TIES variants keep only
  entries whose sign agrees with the sign of sum_i w_i d_i (sign election); the mix is
  divided by the sum of the (kept) weights when ``normalize``, multiplied by ``lambda`` and
  added to the base. ``int8_mask`` only changes mergekit's mask storage, not the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

REQUIRED = object()


@dataclass(frozen=True)
class MethodSpec:
    """What a method needs: a base model, and its parameters with defaults.

    ``shared`` parameters hold for the whole tensor; ``per_model`` ones are given per input
    (for task-vector methods, per non-base input only).
    """

    needs_base: bool
    shared: dict = field(default_factory=dict)
    per_model: dict = field(default_factory=dict)
    exactly_two: bool = False


def _ta(normalize: bool, rescale: bool) -> MethodSpec:
    return MethodSpec(
        needs_base=True,
        shared={"normalize": normalize, "rescale": rescale, "lambda": 1.0, "int8_mask": False},
        per_model={"weight": REQUIRED, "density": 1.0},
    )


METHODS: dict[str, MethodSpec] = {
    "linear": MethodSpec(
        needs_base=False, shared={"normalize": True}, per_model={"weight": REQUIRED}
    ),
    "slerp": MethodSpec(needs_base=True, shared={"t": REQUIRED}, exactly_two=True),
    "task_arithmetic": _ta(normalize=False, rescale=False),
    "ties": _ta(normalize=True, rescale=False),
    "dare_linear": _ta(normalize=False, rescale=True),
    "dare_ties": _ta(normalize=False, rescale=True),
}
KNOWN_PARAMETERS = {p for s in METHODS.values() for p in (*s.shared, *s.per_model)}


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _float(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not x.is_floating_point():
        raise TypeError("merge methods need floating-point tensors")
    return x.to(dtype)


def linear(
    tensors: list[torch.Tensor], weights: list[float], normalize: bool = True
) -> torch.Tensor:
    """sum_i w_i x_i (divided by sum_i w_i when ``normalize``).

    Args:
        tensors: the inputs, all one shape.
        weights: one weight per input.
        normalize: divide by the sum of the weights.
    """
    dtype = _work_dtype(tensors[0])
    out = torch.zeros(tensors[0].shape, dtype=dtype)
    for x, w in zip(tensors, weights, strict=True):
        out.add_(_float(x, dtype), alpha=float(w))
    if normalize:
        out.div_(sum(float(w) for w in weights))
    return out


def slerp(
    t: float, v0: torch.Tensor, v1: torch.Tensor, dot_threshold: float = 0.9995, eps: float = 1e-8
) -> torch.Tensor:
    """Spherical interpolation from ``v0`` (t=0) to ``v1`` (t=1) over the flattened tensor.

    The angle comes from the normalised vectors; the coefficients are applied to the raw
    ones. Near-parallel (or antiparallel) inputs, |cos| > ``dot_threshold``, are linearly
    interpolated, where slerp's sin(theta) denominator would blow up.
    """
    dtype = _work_dtype(v0)
    a = _float(v0, dtype).reshape(-1)
    b = _float(v1, dtype).reshape(-1)
    na, nb = a.norm(), b.norm()
    na = na if na > eps else torch.ones_like(na)
    nb = nb if nb > eps else torch.ones_like(nb)
    dot = ((a / na) * (b / nb)).sum().clamp(-1, 1)
    if dot.abs() > dot_threshold:
        out = (1 - t) * a + t * b
    else:
        theta = torch.acos(dot)
        s = torch.sin(theta)
        out = (torch.sin((1 - t) * theta) / s) * a + (torch.sin(t * theta) / s) * b
    return out.reshape(v0.shape)


def _l1_rescale(delta: torch.Tensor, kept: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    before, after = delta.abs().sum(), kept.abs().sum()
    if before < eps or after < eps:
        return kept
    return kept * (before / after)


def magnitude_prune(delta: torch.Tensor, density: float, rescale: bool = False) -> torch.Tensor:
    """Keep the ``density`` fraction of entries largest in magnitude (at least one)."""
    if density >= 1:
        return delta
    if density <= 0 or delta.numel() == 0:
        return torch.zeros_like(delta)
    n = delta.numel()
    k = max(1, int(density * n))
    # a k-th-largest threshold rather than mergekit's full argsort: linear time and no
    # n-long int64 index; entries tied at the threshold are kept in index order until
    # exactly k are kept (mergekit's argsort breaks such ties in an unspecified order)
    mag = delta.abs().reshape(-1)
    thresh = mag.kthvalue(n - k + 1).values
    keep = mag > thresh
    short = k - int(keep.sum())
    if short > 0:
        keep[torch.nonzero(mag == thresh).squeeze(1)[:short]] = True
    del mag
    kept = delta * keep.reshape(delta.shape)
    return _l1_rescale(delta, kept) if rescale else kept


def random_drop(
    delta: torch.Tensor, density: float, generator: torch.Generator, rescale: bool = True
) -> torch.Tensor:
    """DARE: keep each entry with probability ``density`` (seeded), then rescale."""
    if density >= 1:
        return delta
    mask = torch.bernoulli(torch.full_like(delta, float(density)), generator=generator)
    kept = delta * mask
    return _l1_rescale(delta, kept) if rescale else kept


def sign_mask(weighted: torch.Tensor) -> torch.Tensor:
    """TIES sign election over stacked weighted deltas (N, ...): True where an entry's sign
    matches the sign of the sum over models (a zero sum counts as positive)."""
    majority = torch.where(weighted.sum(0) >= 0, 1.0, -1.0).to(weighted.dtype)
    return weighted.sign() == majority


def task_vectors(
    base: torch.Tensor,
    others: list[torch.Tensor],
    weights: list[float],
    densities: list[float] | None = None,
    *,
    sparsify: str | None = None,
    sign_consensus: bool = False,
    normalize: bool = False,
    rescale: bool = False,
    lam: float = 1.0,
    generators: list[torch.Generator] | None = None,
) -> torch.Tensor:
    """The family task arithmetic / TIES / DARE share (see the module docstring).

    Args:
        base: the base model's tensor.
        others: the other models' tensors, same shape.
        weights, densities: one per other model.
        sparsify: ``None``, ``"magnitude"`` (TIES) or ``"random"`` (DARE).
        sign_consensus: TIES sign election.
        normalize: divide by the sum of the kept weights.
        rescale: keep each sparsified delta's L1 norm.
        lam: scale of the merged delta (``lambda``).
        generators: one seeded generator per other model (``"random"`` only).
    """
    dtype = _work_dtype(base)
    b = _float(base, dtype)
    if not others:
        return b
    densities = densities or [1.0] * len(others)
    # one (N, ...) buffer filled in place: memory is the inputs plus N + 1 tensors
    stacked = torch.empty((len(others), *base.shape), dtype=dtype)
    for i, (x, density) in enumerate(zip(others, densities, strict=True)):
        torch.sub(_float(x, dtype), b, out=stacked[i])
        if sparsify == "magnitude":
            stacked[i] = magnitude_prune(stacked[i], density, rescale)
        elif sparsify == "random":
            stacked[i] = random_drop(stacked[i], density, generators[i], rescale)
    w = torch.tensor(weights, dtype=dtype).reshape(-1, *([1] * base.dim()))
    stacked.mul_(w)
    if sign_consensus:
        mask = sign_mask(stacked)
        stacked.mul_(mask)
        divisor = (w * mask).sum(0)
        del mask
        divisor[divisor == 0] = 1
    else:
        divisor = w.sum(0)
        divisor[divisor.abs() < 1e-8] = 1
    mixed = stacked.sum(0)
    del stacked
    if normalize:
        mixed.div_(divisor)
    if lam != 1:
        mixed.mul_(lam)
    return mixed.add_(b)


def apply(
    method: str,
    tensors: list[torch.Tensor],
    base_index: int | None,
    shared: dict,
    per_model: list[dict],
    generators: list[torch.Generator] | None = None,
) -> torch.Tensor:
    """Run ``method`` on one tensor.

    Args:
        method: a key of :data:`METHODS`.
        tensors: every input's tensor (base included, at ``base_index``).
        base_index: where the base sits in ``tensors`` (``None`` for linear without base).
        shared: resolved shared parameters.
        per_model: resolved per-input parameters, aligned with ``tensors`` (the base's
            entry is ignored by task-vector methods).
        generators: per-input generators for DARE, aligned with ``tensors``.
    """
    if method == "linear":
        return linear(tensors, [p["weight"] for p in per_model], shared["normalize"])
    if method == "slerp":
        other = tensors[1 - base_index]
        return slerp(shared["t"], tensors[base_index], other)
    idx = [i for i in range(len(tensors)) if i != base_index]
    return task_vectors(
        tensors[base_index],
        [tensors[i] for i in idx],
        [per_model[i]["weight"] for i in idx],
        [per_model[i]["density"] for i in idx],
        sparsify={"ties": "magnitude", "dare_linear": "random", "dare_ties": "random"}.get(method),
        sign_consensus=method in ("ties", "dare_ties"),
        normalize=shared["normalize"],
        rescale=shared["rescale"],
        lam=shared["lambda"],
        generators=[generators[i] for i in idx] if generators else None,
    )
