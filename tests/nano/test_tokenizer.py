"""nano's tokenizer: words of scripts that write vowels as combining marks stay whole."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sealion_vl.nano.tokenizer import train_tokenizer  # noqa: E402

# Thai, Burmese and Tamil words whose vowels are combining marks (\p{M}), plus Latin ones.
WORDS = ["สีแดง", "สีเขียว", "ဗီယက်နမ်", "ပန်းရောင်", "புருனே", "சிவப்பு", "Merah", "Đỏ"]


def test_mark_words_become_single_tokens_and_round_trip():
    corpus = [f"{w} {v}. {w}\n" for w in WORDS for v in WORDS] * 5
    tok = train_tokenizer("gemma3", corpus, vocab_size=1024)
    for w in WORDS:
        ids = tok(w, add_special_tokens=False).input_ids
        assert len(ids) == 1, (w, tok.convert_ids_to_tokens(ids))
    text = "ภาพด้านขวา แสดง ธง ဗီယက်နမ် புருனே\nMerah, Đỏ!"  # partly unseen: byte fallback
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text
    # still a byte-level BPE with the family's specials: "\n" is its own token
    assert "\n" in tok.decode(tok("a\nb", add_special_tokens=False).input_ids[1:2])
    assert tok.convert_tokens_to_ids("<start_of_image>") != tok.unk_token_id
