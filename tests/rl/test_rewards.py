"""The verifiable rewards, on hand-checked replies, called the way TRL's GRPOTrainer calls them.

TRL calls ``reward(prompts=..., completions=..., completion_ids=..., trainer_state=...,
**dataset_columns)``, with conversational completions ``[{"role": "assistant", "content":
...}]`` when the prompts are conversations. ``_trl_call`` reproduces that.
"""

from __future__ import annotations

import json

import pytest

from sealion_vl.rl.registry import bind, combine
from sealion_vl.rl.rewards import (
    RewardInputError,
    answer_tag_format,
    completion_text,
    extract_number,
    gold_number,
    ifeval_reward,
    json_schema_valid,
    numeric_match,
)


def _trl_call(func, replies: list[str], **columns):
    """As GRPOTrainer._calculate_rewards does it: conversational prompts and completions,
    plus the keys it adds besides the dataset's columns."""
    prompts = [[{"role": "user", "content": "q"}] for _ in replies]
    completions = [[{"role": "assistant", "content": r}] for r in replies]
    extra = {"completion_ids": [[1, 2]] * len(replies), "trainer_state": None, "log_extra": None}
    return func(prompts=prompts, completions=completions, **extra, **columns)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Natalia sold 48 clips in April, so 48 + 24 = 72.\n#### 72", 72.0),
        ("#### 1,234", 1234.0),
        ("first 3, then \\boxed{17} and later 4", 17.0),
        ("\\boxed{\\frac{3}{4}}", 0.75),
        ("\\boxed{-\\dfrac{1}{2}}", -0.5),
        ("So the answer is $1,250.50 in total, not 3.", 1250.5),
        ("The final answer: -7", -7.0),
        ("It drops 12 degrees to −5", -5.0),
        ("I think 12, no wait, 0.25", 0.25),
        ("Jawapan: **၃**", 3.0),  # Burmese digit three
        ("between 10-12 apples", 12.0),  # a hyphen, not a minus
        ("a drop of -3", -3.0),
        ("about .5 of it", 0.5),
        ("Lists 1,2,3", 3.0),  # not a thousands group
        ("no number here", None),
        ("", None),
    ],
)
def test_extract_number(text, value):
    assert extract_number(text) == value


def test_gold_number_reads_gsm8k_solutions_numbers_and_rejects_junk():
    assert gold_number("He has 5 + 3 = 8 apples.\n#### 8") == 8.0
    assert gold_number(42) == 42.0
    assert gold_number("1,000") == 1000.0
    with pytest.raises(RewardInputError, match="holds no number"):
        gold_number("#### none")


def test_numeric_match_trl_convention():
    replies = [
        "48/2 = 24 clips in May. 48 + 24 = 72\n#### 72",  # right
        "The answer is 72.0",  # right: compared as numbers
        "I get \\boxed{71}",  # wrong
        "no idea",  # no number
        "It costs $1,000.",  # right: 1000
    ]
    gold = ["...\n#### 72", "72", "#### 72", "72", "#### 1000"]
    assert _trl_call(numeric_match, replies, answer=gold) == [1.0, 1.0, 0.0, 0.0, 1.0]
    # plain strings work too, and a gold with no number names its row
    assert numeric_match(None, ["7"], answer=[7]) == [1.0]
    with pytest.raises(RewardInputError, match="row 1"):
        numeric_match(None, ["1", "2"], answer=["1", "two"])
    with pytest.raises(RewardInputError, match="'answer' column"):
        numeric_match(None, ["1"])


def test_completion_text_handles_strings_messages_and_parts():
    assert completion_text("hi") == "hi"
    assert completion_text([{"role": "assistant", "content": "yo"}]) == "yo"
    parts = [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]
    assert completion_text([{"role": "assistant", "content": parts}]) == "ab"


EN = "The weather in Singapore is warm and humid for most of the year, with frequent rain."
ID = "Cuaca di Singapura hangat dan lembap hampir sepanjang tahun, dengan hujan yang sering."


def test_ifeval_reward_checker_and_language_gate():
    ids = ["detectable_format:title", "detectable_format:title", "detectable_format:title"]
    replies = [f"<<Cuaca>>\n{ID}", ID, f"<<Weather>>\n{EN}"]
    # passes both / fails the title / passes the title but is English for an Indonesian row
    assert _trl_call(ifeval_reward, replies, instruction_id=ids, lang=["id"] * 3) == [
        1.0,
        0.0,
        0.0,
    ]
    # Malay accepted for Indonesian (SEA-HELM's rule): the Indonesian reply scores for ms
    assert _trl_call(ifeval_reward, replies[:1], instruction_id=ids[:1], lang=["ms"]) == [1.0]


def test_ifeval_reward_several_instructions_and_kwargs_forms():
    # 15 words: "at least 10" holds, "less than 10" does not; the title holds
    ids = [["length_constraints:number_words", "detectable_format:title"]] * 2
    kwargs = [
        [{"relation": "at least", "num_words": 10}, {}],
        json.dumps([{"relation": "less than", "num_words": 10, "unused": None}, {}]),
    ]
    replies = [f"<<Weather>>\n{EN}"] * 2
    scores = _trl_call(ifeval_reward, replies, instruction_id=ids, kwargs=kwargs, lang=["en"] * 2)
    assert scores == [1.0, 0.5]
    # response_language: the kwarg decides the language the gate wants
    out = ifeval_reward(
        None,
        [ID, EN],
        instruction_id_list=["language:response_language"] * 2,
        kwargs=[{"response_language": "id"}] * 2,
        lang=["en", "en"],
    )
    assert out == [1.0, 0.0]
    with pytest.raises(RewardInputError, match="unknown SEA-IFEval instruction id"):
        ifeval_reward(None, [EN], instruction_id=["nope:nope"], lang=["en"])
    with pytest.raises(RewardInputError, match="2 instruction ids but 1 kwargs"):
        ifeval_reward(None, [EN], instruction_id=[ids[0]], kwargs=[[{}]], lang=["en"])


def test_answer_tag_format():
    replies = [
        "Durian. Jawapan: B",  # valid
        "jawapan:**C**",  # case and bold allowed
        "Jawapan: E",  # not a label
        "Jawapan: Bee",  # a label must end there
        "B",  # no tag
    ]
    got = _trl_call(answer_tag_format, replies, answer_tag=["Jawapan:"] * 5)
    assert got == [1.0, 1.0, 0.0, 0.0, 0.0]
    # labels per row (as JSON, the loader's form) and as one fixed list
    assert answer_tag_format(None, ["Answer: E", "Answer: E"], labels=['["E"]', '["A"]']) == [
        1.0,
        0.0,
    ]
    assert answer_tag_format(None, ["Sagot: 2"], answer_tag="Sagot:", labels=["1", "2"]) == [1.0]


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
}


def test_json_schema_valid():
    replies = [
        '{"city": "Hanoi", "days": 3}',  # whole reply
        'Here it is:\n```json\n{"city": "Manila"}\n```\nDone.',  # one fenced block
        '{"days": 3}',  # misses a required key
        '{"city": "Hanoi", "days": 0}',  # below the minimum
        '```json\n{"city": "A"}\n```\n```json\n{"city": "B"}\n```',  # two blocks: ambiguous
        "city: Hanoi",  # not JSON
    ]
    got = _trl_call(json_schema_valid, replies, schema=[json.dumps(SCHEMA)] * len(replies))
    assert got == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(RewardInputError, match="not a valid JSON Schema"):
        json_schema_valid(None, ["{}"], schema={"type": "nonsense"})


def test_combine_and_bind():
    replies = ["Answer: A\n#### 5", "Answer: A\n#### 4", "#### 5"]
    tag = bind("answer_tag", labels="AB")
    num = bind("numeric")
    assert tag.__name__ == "answer_tag" and num.__name__ == "numeric"  # TRL logs by __name__
    both = combine([(num, 1.0), (tag, 0.25)], name="total")
    assert both.__name__ == "total"
    assert _trl_call(both, replies, answer=["5", "5", "5"]) == [1.25, 0.25, 1.0]
    # a dataset column overrides a bound parameter row by row
    assert _trl_call(tag, ["Jawapan: A"], answer_tag=["Jawapan:"]) == [1.0]
    with pytest.raises(RewardInputError, match="unknown reward"):
        bind("nope")
