"""The multiple-choice reward: the letter after the language's answer tag, as nano_mcq reads it.

Checked on hand-written replies, called the way TRL's GRPOTrainer calls rewards, against
nano's own scorer (``sealion_vl.nano.evaluate.score_item``, a separate implementation) on the
answer tags of all eight languages, and through the registry as a recipe names it.
"""

from __future__ import annotations

import pytest

from sealion_vl.nano.evaluate import score_item
from sealion_vl.nano.synth import LANGUAGES, lang
from sealion_vl.rl.answers import chosen_label, mcq_letter_match
from sealion_vl.rl.config import RewardSpec
from sealion_vl.rl.registry import REWARDS, bind
from sealion_vl.rl.rewards import RewardInputError


def _trl_call(func, replies, **columns):
    """As GRPOTrainer does: conversational prompts/completions plus its extra keys."""
    prompts = [[{"role": "user", "content": "q"}] for _ in replies]
    completions = [[{"role": "assistant", "content": r}] for r in replies]
    extra = {"completion_ids": [[1]] * len(replies), "trainer_state": None, "log_extra": None}
    return func(prompts=prompts, completions=completions, **extra, **columns)


@pytest.mark.parametrize(
    ("text", "tag", "label"),
    [
        ("Manggis\nJawaban: C", "Jawaban:", "C"),
        ("Jawaban:** c", "Jawaban:", "C"),  # bold and lower case
        ("jawaban C", "Jawaban:", "C"),  # tag without its colon
        ("ทุเรียน\nคำตอบ： D", "คำตอบ:", "D"),  # full-width colon
        ("B.", "Answer:", "B"),  # a bare label
        ("Answer: Bee", "Answer:", None),  # the label must end there
        ("Answer: E", "Answer:", None),  # not an option
        ("Answer: B\nAnswer: C", "Answer:", "B"),  # the first tag wins
        ("Mango\nSagot: A", "Answer:", None),  # another language's tag
        ("", "Answer:", None),
    ],
)
def test_chosen_label(text, tag, label):
    assert chosen_label(text, tag) == label


def test_reward_under_trl_calling_convention():
    replies = ["Mango\nAnswer: A", "Mango\nAnswer: B", "Answer: Bee", "nothing"]
    got = _trl_call(
        mcq_letter_match, replies, letter=["A", "A", "B", "B"], answer_tag=["Answer:"] * 4
    )
    assert got == [1.0, 0.0, 0.0, 0.0]


def test_other_labels_and_plain_strings():
    got = mcq_letter_match(None, ["Réponse: 2", "Réponse: 3"], letter="2", answer_tag="Réponse:",
                           labels=["1", "2", "3"])  # fmt: skip
    assert got == [1.0, 0.0]


@pytest.mark.parametrize("code", LANGUAGES)
def test_agrees_with_nano_scorer_in_every_language(code):
    """Every reply shape nano writes or might write, in each language's tag: the reward is
    1 exactly where nano's card scorer marks the item correct."""
    tag = lang(code)["answer_tag"]
    word = "x"
    replies = [f"{word}\n{tag} {x}" for x in "ABCD"]
    replies += [f"{word}\n{tag}**{x.lower()}**" for x in "ABCD"]
    replies += [f"{tag}A", f"{tag} Bx", "D", "c.", f"{word}\nC {tag}", f"{word} {tag}", ""]
    for gold in "ABCD":
        meta = {"task": "mcq", "letter": gold, "tag": tag}
        ours = mcq_letter_match(None, replies, letter=gold, answer_tag=tag)
        theirs = [1.0 if score_item(meta, r) else 0.0 for r in replies]
        assert ours == theirs, (code, gold)
        assert sum(ours) >= 2  # the cases above really include right answers


def test_registered_and_bound_like_a_recipe():
    assert REWARDS["mcq_letter"] is mcq_letter_match
    RewardSpec(name="mcq_letter")  # a recipe may name it
    reward = bind("mcq_letter", answer_tag="Jawapan:")  # fixed tag; the column wins
    assert reward.__name__ == "mcq_letter"
    assert _trl_call(reward, ["Jawapan: C", "Trả lời: C"], letter=["C", "C"]) == [1.0, 0.0]
    assert _trl_call(reward, ["Trả lời: C"], letter=["C"], answer_tag=["Trả lời:"]) == [1.0]


@pytest.mark.parametrize(
    ("letter", "tag"), [("E", "Answer:"), ("", "Answer:"), (None, "Answer:"), ("A", "")]
)
def test_bad_gold_is_an_error(letter, tag):
    with pytest.raises(RewardInputError):
        mcq_letter_match(None, ["Answer: A"], letter=letter, answer_tag=tag)
