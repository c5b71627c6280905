"""A packed batch gives every sequence exactly the loss it has alone (attention isolated)."""

import pytest
import torch

from sealion_vl.messages import parse_conversation
from sealion_vl.train.features import FeatureEncoder
from sealion_vl.train.packing import collate, pack_greedy, token_losses


def _convs(media_dir):
    a, b = str(media_dir / "a.png"), str(media_dir / "b.jpg")
    return [
        [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "image", "path": a}, {"type": "text", "text": "What is it?"}],
            },
            {"role": "assistant", "content": "A red flag."},
        ],
        [
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": "Hi! Apa khabar?"},
            {"role": "user", "content": "Baik"},
            {"role": "assistant", "content": "Bagus."},
        ],
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "path": a},
                    {"type": "image", "path": b},
                    {"type": "text", "text": "Compare"},
                ],
            },
            {"role": "assistant", "content": "Same colours."},
        ],
    ]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])  # a recipe's attn_implementation
@pytest.mark.parametrize("family", ["gemma3", "qwen3_vl", "gemma4", "gemma4-bidirectional"])
def test_packed_per_sequence_loss_equals_unpacked(chat_model, media_dir, family, attn):
    m = chat_model(family.split("-")[0])
    text_cfg = m.model.config.get_text_config()
    saved = getattr(text_cfg, "use_bidirectional_attention", None)
    saved_attn = text_cfg._attn_implementation
    if family.endswith("bidirectional"):  # larger Gemma 4 models attend both ways in images
        text_cfg.use_bidirectional_attention = "vision"
    # the language model's kernel (Gemma 4's audio tower has no sdpa, so not model-wide)
    m.model.set_attn_implementation({"text_config": attn})
    assert text_cfg._attn_implementation == attn
    try:
        enc = FeatureEncoder(m.model, m.processor, m.adapter)
        feats = [enc(str(i), parse_conversation(c)) for i, c in enumerate(_convs(media_dir))]
        with torch.no_grad():
            alone = [
                token_losses(m.model, collate([[f]], pad_id=enc.pad_id, packed=False), m.adapter)[
                    0
                ].sum()
                for f in feats
            ]
            rows = pack_greedy(feats, max_len=sum(f.length for f in feats))
            assert len(rows) == 1 and len(rows[0]) == 3
            batch = collate(rows, pad_id=enc.pad_id, packed=True)
            losses = token_losses(m.model, batch, m.adapter)[0]
        offset = 0
        for f, ref in zip(feats, alone, strict=True):
            got = losses[offset : offset + f.length].sum()
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)
            offset += f.length
    finally:
        text_cfg.use_bidirectional_attention = saved
        m.model.set_attn_implementation({"text_config": saved_attn})


def test_pack_greedy_respects_max_len_and_order():
    class F:
        def __init__(self, n):
            self.length = n

    rows = pack_greedy([F(5), F(4), F(3), F(6), F(1)], max_len=8)
    assert [[f.length for f in r] for r in rows] == [[5, 3], [4, 1], [6]]
    assert all(sum(f.length for f in r) <= 8 for r in rows)


def test_loss_in_row_blocks_is_bit_identical_to_one_block(chat_model, media_dir, monkeypatch):
    # token_losses casts logits to float32 a block of rows at a time (memory); the losses and
    # the gradients must not change by a bit, whatever the block size.
    import sealion_vl.train.packing as packing

    m = chat_model("gemma3")
    enc = FeatureEncoder(m.model, m.processor, m.adapter)
    feats = [enc(str(i), parse_conversation(c)) for i, c in enumerate(_convs(media_dir))]
    batch = collate(pack_greedy(feats, max_len=64), pad_id=enc.pad_id, packed=True)
    vocab = m.model.config.get_text_config().vocab_size
    results = []
    for block in (10**12, 3 * vocab, vocab):  # one block; 3 rows per block; 1 row per block
        monkeypatch.setattr(packing, "CE_BLOCK_ELEMENTS", block)
        m.model.zero_grad()
        losses = token_losses(m.model, batch, m.adapter)
        losses.sum().backward()
        grad = m.model.get_output_embeddings().weight.grad.clone()
        results.append((losses.detach(), grad))
    assert results[0][0].shape == batch["labels"].shape and results[0][0].sum() > 0
    for losses, grad in results[1:]:
        assert torch.equal(losses, results[0][0]) and torch.equal(grad, results[0][1])
    m.model.zero_grad()


@pytest.mark.parametrize("family", ["gemma3", "qwen3_vl", "gemma4"])
def test_losses_from_labelled_logits_only_equal_full_logits(
    chat_model, media_dir, family, monkeypatch
):
    # token_losses asks the model for logits at labelled positions only (logits_to_keep);
    # per-position losses and the LM head's gradient must match the all-positions loss.
    import sealion_vl.train.packing as packing

    m = chat_model(family)
    assert packing._keeps_logits(m.model)  # all three families take it: the fast path runs
    enc = FeatureEncoder(m.model, m.processor, m.adapter)
    feats = [enc(str(i), parse_conversation(c)) for i, c in enumerate(_convs(media_dir))]
    batch = collate(pack_greedy(feats, max_len=64), pad_id=enc.pad_id, packed=False)
    keep = batch["labels"] != -100
    assert 0 < int(keep.sum()) < keep.numel() / 2  # most positions carry no loss
    results = []
    for fast in (True, False):
        monkeypatch.setattr(packing, "_keeps_logits", lambda model, fast=fast: fast)
        m.model.zero_grad()
        losses = token_losses(m.model, batch, m.adapter)
        losses.sum().backward()
        results.append((losses.detach(), m.model.get_output_embeddings().weight.grad.clone()))
    (kept, g_kept), (full, g_full) = results
    assert kept.shape == batch["labels"].shape and bool((kept[~keep] == 0).all())
    torch.testing.assert_close(kept, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_kept, g_full, rtol=1e-4, atol=1e-6)
    m.model.zero_grad()


def test_a_batch_without_labels_still_backpropagates(chat_model, media_dir):
    m = chat_model("gemma3")
    enc = FeatureEncoder(m.model, m.processor, m.adapter)
    feats = [enc("0", parse_conversation(_convs(media_dir)[0]))]
    batch = collate([feats], pad_id=enc.pad_id, packed=False)
    batch["labels"][:] = -100
    losses = token_losses(m.model, batch, m.adapter)
    assert losses.shape == batch["labels"].shape and float(losses.detach().sum()) == 0.0
    losses.sum().backward()  # no "does not require grad" error on an all-prompt micro-batch
    m.model.zero_grad()
