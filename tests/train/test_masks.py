"""Exactly which token positions carry loss, per family and stage."""

import pytest

from sealion_vl.messages import parse_conversation
from sealion_vl.train.features import IGNORE, FeatureEncoder
from sealion_vl.train.packing import collate
from tests.conftest import FAMILIES

END = {"gemma3": "<end_of_turn>", "qwen3_vl": "<|im_end|>", "gemma4": "<turn|>"}


def _encoder(chat_model, family):
    m = chat_model(family)
    return FeatureEncoder(m.model, m.processor, m.adapter), m.tokenizer


def _loss_runs(f, tok):
    """[(first position, decoded text)] of each contiguous run of loss-carrying targets."""
    ids = f.tokens["input_ids"].tolist()
    labels = f.tokens["labels"].tolist()
    runs, cur = [], None
    for t, lab in enumerate(labels):
        if lab != IGNORE:
            assert lab == ids[t + 1]  # shifted: position t predicts token t+1
            if cur is None:
                cur = [t + 1, []]
            cur[1].append(ids[t + 1])
        elif cur is not None:
            runs.append((cur[0], tok.decode(cur[1], skip_special_tokens=False)))
            cur = None
    if cur is not None:
        runs.append((cur[0], tok.decode(cur[1], skip_special_tokens=False)))
    return runs


@pytest.mark.parametrize("family", FAMILIES)
def test_sft_loss_only_on_assistant_replies_and_their_turn_end(chat_model, media_dir, family):
    enc, tok = _encoder(chat_model, family)
    conv = [
        {"role": "system", "content": "Jawab dalam Bahasa Melayu."},
        {
            "role": "user",
            "content": [
                {"type": "image", "path": str(media_dir / "a.png")},
                {"type": "text", "text": "Apa warna ini?"},
            ],
        },
        {"role": "assistant", "content": "Warna merah."},
        {"role": "user", "content": "Terima kasih"},
        {"role": "assistant", "content": "Sama-sama."},
    ]
    f = enc("x", parse_conversation(conv))
    runs = _loss_runs(f, tok)
    assert [text for _, text in runs] == [f"Warna merah.{END[family]}", f"Sama-sama.{END[family]}"]
    header = enc.header
    ids = f.tokens["input_ids"].tolist()
    for start, _ in runs:  # each run begins right after an assistant header
        assert ids[start - len(header) : start] == header
    # nothing else: no system/user text, no image tokens, no headers
    assert f.n_loss == sum(len(tok(t, add_special_tokens=False)["input_ids"]) for _, t in runs)


@pytest.mark.parametrize("family", FAMILIES)
def test_cpt_caption_loss_only_on_the_caption(chat_model, media_dir, family):
    from sealion_vl.data.formats import caption_to_messages
    from sealion_vl.media import load_image

    enc, tok = _encoder(chat_model, family)
    msgs = caption_to_messages(load_image(media_dir / "a.png"), "Bendera Malaysia berkibar.")
    f = enc("cap", msgs)
    assert [t for _, t in _loss_runs(f, tok)] == [f"Bendera Malaysia berkibar.{END[family]}"]


def test_padding_and_pack_tail_carry_no_loss(chat_model, media_dir):
    enc, tok = _encoder(chat_model, "qwen3_vl")
    short = enc(
        "s",
        parse_conversation(
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
        ),
    )
    long = enc(
        "l",
        parse_conversation(
            [
                {"role": "user", "content": "Hi " * 20},
                {"role": "assistant", "content": "Hello there."},
            ]
        ),
    )
    padded = collate([[short], [long]], pad_id=enc.pad_id, packed=False)
    n = short.length
    assert (padded["labels"][0, n:] == IGNORE).all()
    assert (padded["attention_mask"][0, n:] == 0).all()
    assert int((padded["labels"] != IGNORE).sum()) == short.n_loss + long.n_loss
    packed = collate([[short], [long, short]], pad_id=enc.pad_id, packed=True)
    assert "attention_mask" not in packed
    assert int((packed["labels"] != IGNORE).sum()) == 2 * short.n_loss + long.n_loss
    # M-RoPE: (4, B, L), text row restarting at 0 for the second sequence of row 1
    assert packed["position_ids"].shape[:2] == (4, 2)
    assert packed["position_ids"][0, 1, long.length] == 0


def test_gemma4_tool_results_in_the_model_turn_get_no_loss(chat_model):
    # Gemma 4 writes a tool's result inside the model's turn: the model learns to call and
    # to stop at <|tool_response>, and to answer afterwards, but not to write the result
    enc, tok = _encoder(chat_model, "gemma4")
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Hanoi"}'},
    }
    msgs = parse_conversation(
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "SECRET42 degrees"},
            {"role": "assistant", "content": "Hot."},
        ]
    )
    f = enc("t", msgs)
    ids = f.tokens["input_ids"].tolist()
    targets = {t for t in f.tokens["labels"].tolist() if t != IGNORE}
    trained = tok.decode(sorted(targets))
    result_ids = set(tok("SECRET42", add_special_tokens=False)["input_ids"])
    assert not result_ids & targets, trained
    start = tok.convert_tokens_to_ids("<|tool_response>")
    assert start in ids and start in targets  # it still learns to stop there
    assert set(tok("Hot.", add_special_tokens=False)["input_ids"]) <= targets
