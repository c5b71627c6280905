"""The per-item reply store: durable appends, a torn last line dropped, keys that change with
everything that decides a reply."""

from __future__ import annotations

import json

from sealion_vl.eval.store import ReplyStore, item_key
from sealion_vl.eval.types import Item


def _item(**kw) -> Item:
    base = dict(task="cvqa", lang="id", id="r1", prompt="Pertanyaan: ?", images=[b"\xff\xd8a"])
    base.update(kw)
    return Item(**base)


def test_records_survive_reopen_and_a_torn_tail_is_cut(tmp_path):
    path = tmp_path / "store.jsonl"
    with ReplyStore(path) as s:
        s.put("k1", "Jawaban: A", finish_reason="stop")
        s.put("k2", None, error="MediaError: broken image")
    with open(path, "a", encoding="utf-8") as fh:  # a kill in the middle of a write
        fh.write('{"key": "k3", "respo')
    with ReplyStore(path) as s:
        assert s.get("k1")["response"] == "Jawaban: A"
        assert s.get("k2")["error"].startswith("MediaError")
        assert "k3" not in s and len(s) == 2
        s.put("k3", "Jawaban: B")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["k1", "k2", "k3"]  # torn line gone


def test_error_items_are_kept_unless_retried(tmp_path):
    path = tmp_path / "store.jsonl"
    with ReplyStore(path) as s:
        s.put("bad", None, error="ContextLengthError: too long")
    with ReplyStore(path) as s:
        assert "bad" in s
    with ReplyStore(path, retry_errors=True) as s:
        assert "bad" not in s


def test_key_changes_with_everything_that_decides_the_reply():
    ident = {"model": "m", "endpoint": None}
    base = item_key(ident, "fp", _item(), 1, {})
    assert base == item_key(ident, "fp", _item(), 1, {})
    variants = [
        item_key({"model": "other", "endpoint": None}, "fp", _item(), 1, {}),
        item_key(ident, "fp2", _item(), 1, {}),
        item_key(ident, "fp", _item(prompt="Pertanyaan: ??"), 1, {}),
        item_key(ident, "fp", _item(images=[b"\xff\xd8b"]), 1, {}),
        item_key(ident, "fp", _item(id="r2"), 1, {}),
        item_key(ident, "fp", _item(), 2, {}),
        item_key(ident, "fp", _item(), 1, {"temperature": 0}),
        item_key(ident, "fp", _item(max_tokens=8), 1, {}),
    ]
    assert len(set(variants)) == len(variants) and base not in variants
