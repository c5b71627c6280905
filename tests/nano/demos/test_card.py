"""The demonstrations' blocks in nano's card: inserted before the licence, replaced in place
on a rerun, and carried over when ``nano build`` rewrites the card."""

from __future__ import annotations

import json

import pytest

from sealion_vl.nano.demos.card import HEADING, SAVED, apply_saved, update_card

CARD = "# nano\n\nintro\n\n## Held-out accuracy\n\ntable\n\nLicence: Apache-2.0.\n"


def _result(score: float) -> dict:
    return {"finding": f"Merged keeps {score}.", "table": f"| a |\n|---|\n| {score} |",
            "command": "sealion-vl nano demo merge /tmp/w", "minutes": 10}  # fmt: skip


def test_blocks_are_inserted_once_and_replaced_in_place(tmp_path):
    card = tmp_path / "README.md"
    card.write_text(CARD)
    update_card(card, "merge", _result(1.0))
    update_card(card, "rl", _result(2.0))
    update_card(card, "merge", _result(3.0))
    text = card.read_text()
    assert text.count(HEADING) == 1 and text.count("<!-- demo:merge -->") == 1
    assert "1.0" not in text and "Merged keeps 3.0." in text and "| 2.0 |" in text
    assert text.index("## Held-out accuracy") < text.index(HEADING)
    assert text.index("demo:merge") < text.index("demo:rl") < text.index("Licence:")
    assert text.rstrip().endswith("Licence: Apache-2.0.")
    assert "Reproduce: `sealion-vl nano demo merge WORK` (about 10 min of training" in text


def test_saved_blocks_rebuild_the_same_card(tmp_path):
    card = tmp_path / "README.md"
    card.write_text(CARD)
    update_card(card, "distill", {**_result(4.0), "extra": "not shown, not saved"})
    update_card(card, "merge", _result(5.0))
    saved = json.loads((tmp_path / SAVED).read_text())
    assert list(saved) == ["distill", "merge"] and "extra" not in saved["distill"]
    fresh = tmp_path / "fresh" / "README.md"  # what `nano build` writes, then re-applies
    fresh.parent.mkdir()
    fresh.write_text(CARD)
    apply_saved(fresh, tmp_path / SAVED)
    assert fresh.read_text() == card.read_text()
    assert not (fresh.parent / SAVED).exists()  # re-applying does not save again
    apply_saved(fresh, tmp_path / "none.json")  # nothing saved: unchanged
    assert fresh.read_text() == card.read_text()


def test_missing_card_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model card"):
        update_card(tmp_path / "nope.md", "merge", _result(1.0))
