"""Cache round trip: write, read rows lazily, bytes per token, atomic writes, bad files."""

import numpy as np
import pytest
import torch

from sealion_vl.distill.cache import LOGP_RANGE, TopKCache, TopKWriter, id_bits, labels_hash
from sealion_vl.distill.losses import topk_divergence, topk_of
from sealion_vl.errors import SealionError


def _header(k, n_vocab):
    return {"teacher": "t", "tokenizer_hash": "h", "k": k, "teacher_vocab": n_vocab + 6,
            "n_vocab": n_vocab, "temperature": 1.0, "data": "d"}  # fmt: skip


@pytest.mark.parametrize("n_vocab", [300, 262_144])
def test_round_trip(tmp_path, n_vocab):
    k = 16
    g = torch.Generator().manual_seed(0)
    rows = {f"row-{i}": torch.randn(3 + i, n_vocab, generator=g) * 4 for i in range(4)}
    w = TopKWriter(tmp_path / "c.bin", _header(k, n_vocab))
    tops = {}
    for rid, logits in rows.items():
        tops[rid] = topk_of(logits, k, n_vocab=n_vocab)
        w.add(rid, tops[rid], torch.arange(logits.shape[0]) + 7)
    assert not (tmp_path / "c.bin").exists()  # nothing visible before close
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c.bin"]  # no temporary left behind

    c = TopKCache(tmp_path / "c.bin")
    assert c.header["teacher"] == "t" and c.header["k"] == k and c.header["n_vocab"] == n_vocab
    assert c.header["id_bits"] == id_bits(n_vocab) and c.n_tokens == sum(3 + i for i in range(4))
    assert c.bytes_per_token == 4 * k + 4
    arrays = (tmp_path / "c.bin").stat().st_size - c.header_bytes
    assert arrays == c.n_tokens * c.bytes_per_token
    step = LOGP_RANGE / ((1 << (32 - id_bits(n_vocab))) - 1)
    for rid, want in tops.items():
        got = c.row(rid)
        assert torch.equal(got.ids, want.ids)
        assert (got.logp - want.logp.clamp(min=-LOGP_RANGE)).abs().max() <= step / 2 + 1e-6
        assert torch.equal(got.log_tail, want.log_tail)
        first, n, digest = c.rows[rid]
        assert digest == labels_hash(torch.arange(n) + 7)
        assert torch.equal(c.gather(torch.arange(first, first + n)).ids, want.ids)
    # the rows are memory-mapped, not read into memory
    assert isinstance(c._entries, np.memmap)
    # the quantised cache gives (nearly) the same loss as the exact top-k
    s = torch.randn(5, n_vocab, generator=g)
    exact = topk_divergence(s, tops["row-2"], "forward_kl", n_vocab=n_vocab)
    cached = topk_divergence(s, c.row("row-2"), "forward_kl", n_vocab=n_vocab)
    torch.testing.assert_close(cached, exact, rtol=2e-3, atol=1e-4)


def test_duplicate_ids_and_bad_files_are_refused(tmp_path):
    w = TopKWriter(tmp_path / "c.bin", _header(2, 10))
    top = topk_of(torch.randn(2, 10), 2, n_vocab=10)
    w.add("a", top, torch.tensor([1, 2]))
    with pytest.raises(SealionError, match="appears twice"):
        w.add("a", top, torch.tensor([1, 2]))
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "junk.bin").write_bytes(b"not a cache at all")
    with pytest.raises(SealionError, match="not a sealion-vl teacher cache"):
        TopKCache(tmp_path / "junk.bin")
    with pytest.raises(SealionError, match="no teacher cache"):
        TopKCache(tmp_path / "missing.bin")
