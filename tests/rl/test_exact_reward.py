"""The short-answer reward: the reply's first line equals the gold answer, as nano_vqa scores.

Checked on hand-written replies, under TRL's calling convention, against nano's own scorer
(``sealion_vl.nano.evaluate.score_item``, a separate implementation) on real held-out VQA
items of every language, and through the registry.
"""

from __future__ import annotations

import json

import pytest

from sealion_vl.nano.evaluate import score_item
from sealion_vl.nano.synth import generate
from sealion_vl.rl.answers import exact_answer, short_answer
from sealion_vl.rl.registry import REWARDS, bind
from sealion_vl.rl.rewards import RewardInputError


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Square", "square"),
        ("  Hình vuông.\nbecause...", "hình vuông"),
        ("สามเหลี่ยม", "สามเหลี่ยม"),
        ("Red!", "red"),
        ("", ""),
    ],
)
def test_short_answer(text, key):
    assert short_answer(text) == key


def test_trl_convention_and_lists_of_accepted_answers():
    completions = [[{"role": "assistant", "content": r}] for r in ("Square.", "circle", "sq")]
    got = exact_answer(prompts=[None] * 3, completions=completions, answer=["square"] * 3,
                       completion_ids=[[1]] * 3, trainer_state=None)  # fmt: skip
    assert got == [1.0, 0.0, 0.0]
    assert exact_answer(None, ["Bulat"], answer=[json.dumps(["Round", "bulat"])]) == [1.0]
    assert REWARDS["exact"] is exact_answer
    assert bind("exact")(None, ["Red"], answer=["red"]) == [1.0]


@pytest.mark.parametrize("answer", ["", "  ", None, "[]"])
def test_empty_gold_is_an_error(answer):
    with pytest.raises(RewardInputError):
        exact_answer(None, ["x"], answer=[answer])


def test_agrees_with_nano_scorer_on_heldout_vqa(tmp_path):
    """On generated VQA items of all eight languages, for the gold reply, variants of it and
    other items' answers, the reward is 1 exactly where nano's scorer says correct."""
    generate(tmp_path / "v", part="sea", split="heldout", n=64, seed=5, kinds=("vqa",))
    metas = [json.loads(x)["meta"] for x in (tmp_path / "v/sft.jsonl").read_text().splitlines()]
    assert len({m["lang"] for m in metas}) == 8
    for i, m in enumerate(metas):
        gold = m["answer"]
        other = metas[(i + 1) % len(metas)]["answer"]
        replies = [gold, gold.upper() + ".", f" {gold}\nmore", other, f"{gold} {gold}", ""]
        ours = exact_answer(None, replies, answer=gold)
        theirs = [1.0 if score_item(m, r) else 0.0 for r in replies]
        assert ours == theirs, (m, replies)
        assert ours[:3] == [1.0, 1.0, 1.0]
