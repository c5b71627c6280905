"""Divergences against direct torch computations: k = vocab (full KL) and k < vocab (tail bin)."""

import pytest
import torch

from sealion_vl.distill.losses import (
    TopK,
    full_divergence,
    shared_vocab,
    topk_divergence,
    topk_of,
)
from sealion_vl.errors import SealionError

N, V = 6, 50


def _logits(seed, width=V):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, width, generator=g) * 3


def _direct(p, q, kind):
    """Divergence between probability vectors, float64, written out."""
    p, q = p.double(), q.double()
    if kind == "forward_kl":
        return (p * (p.log() - q.log())).sum(-1)
    if kind == "reverse_kl":
        return (q * (q.log() - p.log())).sum(-1)
    m = (p + q) / 2
    return 0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1)


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_k_equal_vocab_is_the_full_divergence(kind, temperature):
    t, s = _logits(0), _logits(1)
    top = topk_of(t, V, temperature=temperature, n_vocab=V)
    assert torch.isinf(top.log_tail).all() and (top.log_tail < 0).all()
    got = topk_divergence(s, top, kind, temperature=temperature, n_vocab=V)
    p, q = torch.softmax(t / temperature, -1), torch.softmax(s / temperature, -1)
    torch.testing.assert_close(got.double(), _direct(p, q, kind), rtol=1e-5, atol=1e-6)
    full = full_divergence(s, t, kind, temperature=temperature, n_vocab=V)
    torch.testing.assert_close(full.double(), _direct(p, q, kind), rtol=1e-5, atol=1e-6)
    if kind == "forward_kl":  # and torch's own KL
        ref = torch.nn.functional.kl_div(
            torch.log_softmax(s / temperature, -1),
            torch.log_softmax(t / temperature, -1),
            reduction="none",
            log_target=True,
        ).sum(-1)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
def test_tail_is_compared_as_one_bin(kind):
    k = 7
    t, s = _logits(2), _logits(3)
    p, q = torch.softmax(t, -1), torch.softmax(s, -1)
    ids = p.argsort(-1, descending=True)[:, :k]
    # coarsen both to the k teacher tokens + "everything else", by hand
    pb = torch.cat([p.gather(-1, ids), 1 - p.gather(-1, ids).sum(-1, keepdim=True)], -1)
    qb = torch.cat([q.gather(-1, ids), 1 - q.gather(-1, ids).sum(-1, keepdim=True)], -1)
    top = topk_of(t, k, n_vocab=V)
    assert torch.equal(top.ids, ids)
    torch.testing.assert_close(top.log_tail.exp(), pb[:, -1], rtol=1e-5, atol=1e-7)
    got = topk_divergence(s, top, kind, n_vocab=V)
    torch.testing.assert_close(got.double(), _direct(pb, qb, kind), rtol=1e-4, atol=1e-6)
    # dropping the tail (renormalising the top k) would give another, wrong number
    pr = pb[:, :k] / pb[:, :k].sum(-1, keepdim=True)
    qr = qb[:, :k] / qb[:, :k].sum(-1, keepdim=True)
    assert not torch.allclose(got.double(), _direct(pr, qr, kind), rtol=1e-2)
    # a lower bound on the full divergence (coarsening loses information)
    assert (got <= full_divergence(s, t, kind, n_vocab=V) + 1e-5).all()


def test_gradient_matches_the_direct_formula_and_is_finite():
    k = 5
    t = _logits(4)
    s1 = _logits(5).requires_grad_(True)
    s2 = s1.detach().clone().requires_grad_(True)
    top = topk_of(t, k, n_vocab=V)
    topk_divergence(s1, top, "forward_kl", n_vocab=V).sum().backward()
    p, q = torch.softmax(t, -1), torch.softmax(s2, -1)
    qk = q.gather(-1, top.ids)
    pk = p.gather(-1, top.ids)
    direct = (pk * (pk.log() - qk.log())).sum(-1) + (1 - pk.sum(-1)) * (
        (1 - pk.sum(-1)).log() - (1 - qk.sum(-1)).log()
    )
    direct.sum().backward()
    torch.testing.assert_close(s1.grad, s2.grad, rtol=1e-4, atol=1e-6)
    # k = vocab: no tail bin, still finite gradients
    s3 = _logits(6).requires_grad_(True)
    topk_divergence(s3, topk_of(t, V, n_vocab=V), "reverse_kl", n_vocab=V).sum().backward()
    assert torch.isfinite(s3.grad).all()


def test_padding_rows_are_ignored():
    t, s = _logits(7, V + 14), _logits(8, V + 78)
    t[:, V:] = 50.0  # a padding row the teacher "likes" must not count
    top = topk_of(t, 10, n_vocab=V)
    assert int(top.ids.max()) < V
    got = topk_divergence(s, top, "forward_kl", n_vocab=V)
    same = topk_divergence(s[:, :V], topk_of(t[:, :V], 10, n_vocab=V), "forward_kl", n_vocab=V)
    torch.testing.assert_close(got, same)


def test_shared_vocab_accepts_padding_only():
    assert shared_vocab("abc", "abc", 500, 512, 640) == 500
    with pytest.raises(SealionError, match="tokenizers differ"):
        shared_vocab("abc", "abd", 500, 512, 512)
    with pytest.raises(SealionError, match="student's output layer has 400 rows"):
        shared_vocab("abc", "abc", 500, 512, 400)


def test_unknown_divergence_is_refused():
    top = TopK(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1), torch.zeros(1))
    with pytest.raises(SealionError, match="unknown divergence"):
        topk_divergence(torch.zeros(1, 4), top, "kl", n_vocab=4)
