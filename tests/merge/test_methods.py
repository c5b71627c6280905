"""Each merge method on tiny checkpoints of all three families, against direct torch
computations on the parents' weights (read with the safetensors library, not our reader)."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from sealion_vl.merge import merge
from sealion_vl.merge.methods import slerp
from tests.conftest import FAMILIES


def weights(folder) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def run(tmp_path, cfg: dict, name: str = "out") -> dict[str, torch.Tensor]:
    out = merge(cfg, tmp_path / name, progress=False)
    return weights(out)


def close(a, b, tol=1e-5):
    return torch.allclose(a.double(), b.double(), atol=tol, rtol=1e-4)


def topk_mask(d: torch.Tensor, density: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep mask of the k largest |d|, entries tied with the k-th: either may be kept)."""
    k = max(1, int(density * d.numel()))
    thresh = d.abs().flatten().kthvalue(d.numel() - k + 1).values
    return (d.abs() >= thresh).to(d.dtype), d.abs() == thresh


@pytest.mark.parametrize("family", FAMILIES)
def test_linear_task_arithmetic_ties_against_direct_torch(parents, tmp_path, family):
    b, m1, m2 = parents(family)
    B, X, Y = weights(b), weights(m1), weights(m2)
    models = [{"model": str(m1)}, {"model": str(m2)}]

    lin = run(
        tmp_path,
        {
            "merge_method": "linear",
            "models": [
                {"model": str(b), "parameters": {"weight": 0.2}},
                {"model": str(m1), "parameters": {"weight": 0.5}},
                {"model": str(m2), "parameters": {"weight": 0.3}},
            ],
        },
        "linear",
    )
    assert set(lin) == set(B)
    for n in B:
        assert close(lin[n], (0.2 * B[n] + 0.5 * X[n] + 0.3 * Y[n]) / 1.0), n

    ta = run(
        tmp_path,
        {
            "merge_method": "task_arithmetic",
            "base_model": str(b),
            "models": [
                {**m, "parameters": {"weight": w}} for m, w in zip(models, (0.6, 0.9), strict=True)
            ],
            "parameters": {"lambda": 0.5},
        },
        "ta",
    )
    for n in B:
        if torch.equal(X[n], B[n]) and torch.equal(Y[n], B[n]):
            assert torch.equal(ta[n], B[n])  # identical parents (inf clip bounds too)
            continue
        assert close(ta[n], B[n] + 0.5 * (0.6 * (X[n] - B[n]) + 0.9 * (Y[n] - B[n]))), n

    ties = run(
        tmp_path,
        {
            "merge_method": "ties",
            "base_model": str(b),
            "models": [
                {"model": str(m1), "parameters": {"weight": 1.0, "density": 0.5}},
                {"model": str(m2), "parameters": {"weight": 0.5, "density": 0.3}},
            ],
        },
        "ties",
    )
    changed = unsure = 0
    for n in B:
        if torch.equal(X[n], B[n]) and torch.equal(Y[n], B[n]):
            assert torch.equal(ties[n], B[n])
            continue
        (m1_, t1), (m2_, t2) = topk_mask(X[n] - B[n], 0.5), topk_mask(Y[n] - B[n], 0.3)
        d1, d2 = (X[n] - B[n]) * m1_, (Y[n] - B[n]) * m2_
        w1, w2 = 1.0 * d1, 0.5 * d2
        sign = torch.where(w1 + w2 >= 0, 1.0, -1.0)
        k1, k2 = (torch.sign(w1) == sign).float(), (torch.sign(w2) == sign).float()
        div = 1.0 * k1 + 0.5 * k2
        div[div == 0] = 1
        want = B[n] + (w1 * k1 + w2 * k2) / div
        sure = ~(t1 | t2)  # ties at the k-th magnitude (a few entries) may go either way
        assert close(ties[n][sure], want[sure]), n
        unsure += int((~sure).sum())
        changed += not torch.equal(ties[n], B[n])
    differing = [n for n in B if not torch.equal(X[n], B[n])]
    assert changed >= len(differing) > len(B) // 4  # every tensor the parents differ in moved
    assert unsure < 0.01 * sum(t.numel() for t in B.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_slerp_against_direct_formula(parents, tmp_path, family):
    b, m1, _ = parents(family)
    B, X = weights(b), weights(m1)
    out = run(
        tmp_path,
        {
            "merge_method": "slerp",
            "base_model": str(b),
            "models": [{"model": str(b)}, {"model": str(m1)}],
            "parameters": {"t": 0.3},
        },
    )
    spherical = 0
    for n in B:
        if torch.equal(X[n], B[n]):
            assert torch.equal(out[n], B[n])
            continue
        a, c = B[n].double().flatten(), X[n].double().flatten()
        cos = float((a / a.norm()) @ (c / c.norm())) if a.norm() > 0 and c.norm() > 0 else 1.0
        if abs(cos) > 0.9995:
            want = 0.7 * a + 0.3 * c  # near-parallel (e.g. norm weights alike): lerp
        else:
            th = math.acos(cos)
            want = math.sin(0.7 * th) / math.sin(th) * a + math.sin(0.3 * th) / math.sin(th) * c
            spherical += 1
        assert close(out[n], want.reshape(B[n].shape)), n
    assert spherical >= len([n for n in B if not torch.equal(X[n], B[n])]) // 2 > 0


def test_slerp_falls_back_to_lerp_for_parallel_vectors():
    v0 = torch.tensor([1.0, 2.0, 3.0])
    v1 = 2.0 * v0 + 1e-6  # parallel: sin(theta) ~ 0
    got = slerp(0.25, v0, v1)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, 0.75 * v0 + 0.25 * v1)
    # orthogonal unit vectors: a quarter of the way along the arc
    got = slerp(0.25, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert torch.allclose(got, torch.tensor([math.cos(math.pi / 8), math.sin(math.pi / 8)]))


@pytest.mark.parametrize("family", FAMILIES)
def test_dare_drops_at_density_rescales_and_is_seeded(parents, tmp_path, family):
    b, m1, m2 = parents(family)
    B, X = weights(b), weights(m1)

    def dare(method, models, seed=0, name="d"):
        return run(
            tmp_path,
            {"merge_method": method, "base_model": str(b), "models": models, "seed": seed},
            name,
        )

    p1 = {"model": str(m1), "parameters": {"weight": 0.8, "density": 0.4}}
    p2 = {"model": str(m2), "parameters": {"weight": 0.6, "density": 0.7}}
    one = dare("dare_linear", [p1], name="a")
    again = dare("dare_linear", [p1], name="b")
    other_seed = dare("dare_linear", [p1], seed=1, name="c")
    kept = total = 0
    masks1 = {}
    for n in B:
        if torch.equal(X[n], B[n]):
            assert torch.equal(one[n], B[n])
            continue
        d = X[n] - B[n]
        got = (one[n] - B[n]) / 0.8
        mask = (got != 0) & (d != 0)
        masks1[n] = mask
        if d.abs().sum() > 0 and mask.any():
            # kept entries are the delta times one common factor keeping the L1 norm
            scale = d.abs().sum() / (d * mask).abs().sum()
            assert close(got, d * mask * scale, 1e-4), n
        kept += int(mask.sum())
        total += int((d != 0).sum())
        assert torch.equal(one[n], again[n])  # seeded: same seed, same drop
    assert abs(kept / total - 0.4) < 0.03  # Bernoulli(0.4) over ~100k entries
    assert any(not torch.equal(one[n], other_seed[n]) for n in B)

    # the drop of a model depends on (seed, tensor, model) only, so dare_ties can be checked
    # from the masks dare_linear reveals
    two = dare("dare_linear", [p2], name="e")
    ties = dare("dare_ties", [p1, p2], name="f")
    for n in masks1:
        d1 = X[n] - B[n]
        k1 = d1 * masks1[n]
        k1 = k1 * (d1.abs().sum() / k1.abs().sum()) if k1.abs().sum() > 0 else k1
        k2 = (two[n] - B[n]) / 0.6
        w1, w2 = 0.8 * k1, 0.6 * k2
        sign = torch.where(w1 + w2 >= 0, 1.0, -1.0)
        want = B[n] + w1 * (torch.sign(w1) == sign) + w2 * (torch.sign(w2) == sign)
        assert close(ties[n], want, 1e-4), n
