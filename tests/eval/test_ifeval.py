"""SEA-IFEval scoring: hand-checked verdicts for all 21 instruction ids (pass and fail), the
SEA-HELM quirks we reproduce, the language gate on real sentences, and the summary numbers."""

from __future__ import annotations

import pytest

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.metrics import ifeval, ifeval_checks
from sealion_vl.eval.metrics.ifeval_checks import CHECKERS, check
from sealion_vl.eval.metrics.langgate import detect_language, language_ok
from sealion_vl.eval.types import Item

# Real sentences and the code the bundled lid.176.ftz model gives them (checked by hand).
MS = "Kerajaan Malaysia telah mengumumkan bahawa sekolah akan dibuka semula pada bulan hadapan."
ID = "Jakarta adalah ibu kota Indonesia dan kota terbesar di negara ini."
EN = "The capital of France is Paris, a city famous for its museums."
VI = "Hà Nội là thủ đô của Việt Nam và là một thành phố có lịch sử lâu đời."
TH = "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย"
TL = "Ang Maynila ay ang kabisera ng Pilipinas at isa sa mga pinakamataong lungsod sa mundo."
TA = "சென்னை தமிழ்நாட்டின் தலைநகரம் ஆகும்."
MY = "ရန်ကုန်မြို့သည် မြန်မာနိုင်ငံ၏ အကြီးဆုံးမြို့ ဖြစ်သည်။"
KM = "ភ្នំពេញគឺជារាជធានីនៃប្រទេសកម្ពុជា។"
JV = "Sapi iku kewan sing migunani banget kanggo para petani ing desa."

L = "length_constraints:"
C = "detectable_content:"
F = "detectable_format:"
S = "startend:"
K = "keywords:"
X = "combination:"

# (instruction id, response, kwargs, lang, expected verdict); each id has a pass and a fail.
CASES = [
    # \w+ runs: "pag-ibig" is two words, so "Ang pag-ibig ay" has four.
    (L + "number_words", "Ang pag-ibig ay", {"relation": "exactly", "num_words": 4}, "tl", True),
    (L + "number_words", "Ang pag-ibig ay", {"relation": "exactly", "num_words": 3}, "tl", False),
    (L + "number_words", "one two three", {"relation": "at least", "num_words": 3.0}, "en", True),
    (L + "number_words", "one two three", {"relation": "less than", "num_words": 3}, "en", False),
    (
        L + "number_sentences",
        "A. *** B. *** C.",
        {"relation": "exactly", "num_sentences": 3},
        "en",
        True,
    ),
    # outer asterisks stripped, blank pieces dropped: 2 sentences
    (
        L + "number_sentences",
        "***A*** ***B***",
        {"relation": "exactly", "num_sentences": 2},
        "en",
        True,
    ),
    (L + "number_sentences", "A. B. C.", {"relation": "at least", "num_sentences": 2}, "en", False),
    (L + "number_paragraphs", "P1\n***\nP2", {"num_paragraphs": 2}, "en", True),
    (L + "number_paragraphs", "***\nP1\n***\nP2\n***", {"num_paragraphs": 2}, "en", True),
    (L + "number_paragraphs", "P1\n\nP2", {"num_paragraphs": 2}, "en", False),
    (C + "postscript", "Hi\nP.S. see you", {"postscript_marker": "P.S."}, "en", True),
    (C + "postscript", "Hi\np. s. see you", {"postscript_marker": "P.S."}, "en", True),
    # "PS:" is not a postscript marker
    (C + "postscript", "Hi\nPS: see you", {"postscript_marker": "P.S."}, "en", False),
    (C + "postscript", "Hi\nP.S. see you", {"postscript_marker": "P.P.S."}, "en", False),
    (C + "postscript", "สวัสดี\nป.ล. ขอบคุณ", {"postscript_marker": "ป.ล."}, "th", True),
    # SEA-HELM quirk: no ^ anchor, the marker may sit mid-line
    (C + "postscript", "Remember the p.s. here", {"postscript_marker": "P.S."}, "en", True),
    (C + "number_placeholders", "[name] at [address] and []", {"num_placeholders": 2}, "en", True),
    (C + "number_placeholders", "[name] at [address] and []", {"num_placeholders": 3}, "en", False),
    (F + "title", "<<My Title>>\nbody", {}, "en", True),
    (F + "title", "<<  >>\nbody", {}, "en", False),
    (F + "title", "<<\nTitle>>", {}, "en", False),
    (F + "number_bullet_lists", "* a\n* **b**\n- c\ntext", {"num_bullets": 3}, "en", True),
    # "*a" has no space after the star: one bullet only
    (F + "number_bullet_lists", "*a\n* b", {"num_bullets": 2}, "en", False),
    (
        F + "multiple_sections",
        "SECTION 1\nx\nSECTION 2\ny",
        {"section_title": "SECTION", "num_sections": 2},
        "en",
        True,
    ),
    (
        F + "multiple_sections",
        "SECTION1\nx\nSection 2\ny",
        {"section_title": "SECTION", "num_sections": 2},
        "en",
        False,
    ),
    # "*a*" counts once as single, "**b**" once as double: 2
    (F + "number_highlighted_sections", "*a* and **b**", {"num_highlights": 2}, "en", True),
    (
        F + "number_highlighted_sections",
        "*a* and **b** and * *",
        {"num_highlights": 3},
        "en",
        False,
    ),
    (F + "json_format", '```json\n{"a": 1}\n```', {}, "en", True),
    (F + "json_format", '  {"a": [1, 2]}  ', {}, "en", True),
    # text before the fence fails
    (F + "json_format", 'Here it is:\n```json\n{"a": 1}\n```', {}, "en", False),
    (F + "json_format", '```json\n```json\n{"a": 1}\n```', {}, "en", False),
    (F + "constrained_response", "Saya fikir begitu. Jawapan saya ialah ya.", {}, "ms", True),
    (F + "constrained_response", "jawapan saya ialah ya.", {}, "ms", False),
    (F + "constrained_response", "My answer is maybe.", {}, "en", True),
    (F + "constrained_response", "คำตอบของฉันคือไม่ ครับ", {}, "th", True),
    (F + "constrained_response", "My answer is yes", {}, "en", False),
    (S + "first_word", "  Hello world", {"first_word": "hello"}, "en", True),
    (S + "first_word", "World, hello", {"first_word": "hello"}, "en", False),
    (
        S + "end_checker",
        "Done. Any other questions?  ",
        {"end_phrase": "any other questions?"},
        "en",
        True,
    ),
    (
        S + "end_checker",
        "Any other questions? Thanks",
        {"end_phrase": "Any other questions?"},
        "en",
        False,
    ),
    (S + "quotation", ' "Hello there" ', {}, "en", True),
    (S + "quotation", '""', {}, "en", False),
    (S + "quotation", '"Hello" there', {}, "en", False),
    (K + "existence", "A CAT sat; a dog ran.", {"keywords": ["cat", "Dog"]}, "en", True),
    # word-bounded: "Cats" is not "cat"
    (K + "existence", "Cats are nice.", {"keywords": ["cat"]}, "en", False),
    # tl: case-sensitive plain substring
    (K + "existence", "Ang minamahal ko", {"keywords": ["mahal"]}, "tl", True),
    (K + "existence", "Mahal kita", {"keywords": ["mahal"]}, "tl", False),
    (K + "existence", "நான் தமிழ் பேசுவேன்", {"keywords": ["தமிழ்"]}, "ta", True),
    (K + "forbidden_words", "It went badly.", {"forbidden_words": ["bad"]}, "en", True),
    (K + "forbidden_words", "This is BAD.", {"forbidden_words": ["bad"]}, "en", False),
    (K + "forbidden_words", "Masama ito", {"forbidden_words": ["masama"]}, "tl", True),
    (K + "forbidden_words", "ito ay masama", {"forbidden_words": ["masama"]}, "tl", False),
    # frequency ignores case, even for tl
    (
        K + "frequency",
        "Mahal kita, mahal ko",
        {"keyword": "mahal", "relation": "at least", "frequency": 2},
        "tl",
        True,
    ),
    (
        K + "frequency",
        "the The THE",
        {"keyword": "the", "relation": "exactly", "frequency": 3},
        "en",
        True,
    ),
    (
        K + "frequency",
        "the The THE",
        {"keyword": "the", "relation": "less than", "frequency": 3},
        "en",
        False,
    ),
    # number strings are counted without boundaries: "7" occurs twice in "7 ... 17"
    (
        K + "number_frequency",
        "7 days, 17 hours",
        {"number": "7", "relation": "exactly", "frequency": 2},
        "en",
        True,
    ),
    (
        K + "number_frequency",
        "7 days, 17 hours",
        {"number": "7", "relation": "exactly", "frequency": 1},
        "en",
        False,
    ),
    (
        X + "repeat_prompt",
        "write a poem. Roses are red.",
        {"prompt_to_repeat": "Write a poem. "},
        "en",
        True,
    ),
    (X + "repeat_prompt", "Write a poem.", {"prompt_to_repeat": "Write a poem."}, "en", False),
    (
        X + "repeat_prompt",
        "Poem: Roses are red.",
        {"prompt_to_repeat": "Write a poem."},
        "en",
        False,
    ),
    (X + "two_responses", "First.\n******\nSecond.", {}, "en", True),
    (X + "two_responses", "First.\n******\n...", {}, "en", False),
    (X + "two_responses", "A ****** B ****** C", {}, "en", False),
    ("language:response_language", VI, {"response_language": "vi"}, "en", True),
    ("language:response_language", EN, {"response_language": "vi"}, "en", False),
    # id accepts ms inside the checker, but ms does not accept id (SEA-HELM quirk)
    ("language:response_language", MS, {"response_language": "id"}, "en", True),
    ("language:response_language", ID, {"response_language": "ms"}, "en", False),
]


@pytest.mark.parametrize(("iid", "response", "kwargs", "lang", "expected"), CASES)
def test_checker_verdicts(iid, response, kwargs, lang, expected):
    assert check(iid, response, kwargs, lang) is expected


def test_every_id_has_a_pass_and_a_fail_case():
    assert len(CHECKERS) == 21
    seen = {(iid, expected) for iid, _, _, _, expected in CASES}
    for iid in CHECKERS:
        assert (iid, True) in seen and (iid, False) in seen, iid


def test_check_ignores_null_kwargs_like_the_public_rows():
    kwargs = {"num_words": None, "keywords": ["cat"], "relation": None, "frequency": None}
    assert check(K + "existence", "a cat", kwargs, "en") is True


def test_check_refuses_bad_input_with_clear_errors():
    with pytest.raises(EvalDataError, match="keywords:nope"):
        check("keywords:nope", "x", {}, "en")
    with pytest.raises(EvalDataError, match="num_words"):
        check(L + "number_words", "x", {"relation": "exactly"}, "en")
    with pytest.raises(EvalDataError, match="relation"):
        check(L + "number_words", "x", {"relation": "about", "num_words": 1}, "en")
    with pytest.raises(EvalDataError, match="th"):
        check(L + "number_words", TH, {"relation": "exactly", "num_words": 1}, "th")
    with pytest.raises(EvalDataError, match="regular expression"):
        check(K + "existence", "x", {"keywords": ["("]}, "en")


def test_keyword_is_a_regex_as_in_seahelm():
    # SEA-HELM quirk: "c.t" is a pattern, so it matches "cat"
    assert check(K + "existence", "a cat", {"keywords": ["c.t"]}, "en") is True


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (MS, "ms"),
        (ID, "id"),
        (EN, "en"),
        (VI, "vi"),
        (TH, "th"),
        (TL, "tl"),
        (TA, "ta"),
        (MY, "my"),
        (KM, "km"),
        (JV, "jv"),
    ],
)
def test_detect_language_on_real_sentences(text, code):
    assert detect_language(text) == code


def test_detect_language_replaces_newlines():
    assert detect_language(ID.replace(" ", "\n", 3)) == "id"
    assert detect_language("") == "en"  # fastText's answer for empty input, as in SEA-HELM


def test_language_ok_id_and_ms_accept_each_other():
    assert language_ok("ms", "id") and language_ok("id", "ms")
    assert language_ok("tl", "tl")
    assert not language_ok("en", "id")
    assert not language_ok("jv", "id")
    assert not language_ok("id", "en")


# ---------------------------------------------------------------- score()


def _item(i: int, iid: str, kwargs: dict, lang: str, category: str | None = None) -> Item:
    full = {k: None for k in ("num_words", "relation", "keywords", "response_language")}
    full.update(kwargs)
    doc = {
        "prompts": [{"text": f"prompt {i}"}],
        "kwargs": [full],
        "metadata": {"category": category or iid.split(":")[0], "subcategory": iid},
    }
    return Item(task="sea_ifeval", lang=lang, id=str(i), prompt=f"prompt {i}", doc=doc)


def test_mixed_run_matches_a_hand_computation():
    kw = {"keywords": ["sekolah"]}
    items = [_item(i, K + "existence", kw, "id") for i in range(5)]
    items.append(
        _item(
            5, "language:response_language", {"response_language": "vi"}, "id", category="language"
        )
    )
    responses = [
        "Sekolah " + ID,  # passes, Indonesian                 -> counts
        "The sekolah is closed. " + EN,  # passes, English     -> wrong language
        ID,  # no keyword, Indonesian                          -> fails the checker
        None,  # failed generation                             -> fail
        MS,  # passes ("sekolah"), Malay is accepted for id   -> counts
        VI,  # language item: gate uses response_language vi  -> counts
    ]
    result = ifeval.score(items, responses, lang="id")
    assert [r["score"] for r in result.per_item] == [True, False, False, False, True, True]
    assert [r["passed_instruction"] for r in result.per_item] == [
        True,
        True,
        False,
        False,
        True,
        True,
    ]
    assert [r["lang_detected"] for r in result.per_item] == ["id", "en", "id", "", "ms", "vi"]
    assert all(r["counted"] and r["extracted"] is None for r in result.per_item)
    assert result.per_item[0]["gold"] == K + "existence"
    m = result.metrics
    assert m["overall_lang_normalized_acc"] == pytest.approx(3 / 6 * 100)  # items 0, 4, 5
    assert m["overall_acc"] == pytest.approx(4 / 6 * 100)  # items 0, 1, 4, 5
    assert m["overall_count"] == 6 and m["overall_pass"] == 4
    # in language: 0, 2, 4, 5 (the None reply is not)
    assert m["correct_language_rate"] == pytest.approx(4 / 6)
    assert m["subcategories"] == {K + "existence": 3 / 5, "language:response_language": 1.0}
    assert result.diagnostics["none_responses"] == 1


def test_thai_number_words_rows_leave_the_denominator():
    items = [
        _item(0, L + "number_words", {"relation": "at least", "num_words": 1}, "th"),
        _item(1, F + "constrained_response", {}, "th"),
        _item(2, F + "constrained_response", {}, "th"),
    ]
    responses = [TH, TH + " คำตอบของฉันคือใช่", TH]
    result = ifeval.score(items, responses, lang="th")
    assert [r["counted"] for r in result.per_item] == [False, True, True]
    assert result.per_item[0]["score"] is False
    assert result.metrics["overall_count"] == 2
    assert result.metrics["overall_lang_normalized_acc"] == pytest.approx(50.0)
    assert L + "number_words" not in result.metrics["subcategories"]


def test_english_number_words_rows_do_count():
    items = [_item(0, L + "number_words", {"relation": "at least", "num_words": 5}, "en")]
    result = ifeval.score(items, [EN], lang="en")
    assert result.per_item[0]["counted"] and result.per_item[0]["score"]
    assert result.metrics["overall_lang_normalized_acc"] == 100.0


def _keys(metrics: dict) -> set:
    return set(metrics)


def test_all_fail_summary_is_zero_not_an_error():
    items = [_item(i, F + "title", {}, "vi") for i in range(3)]
    result = ifeval.score(items, [VI, VI, None], lang="vi")
    m = result.metrics
    assert m["overall_lang_normalized_acc"] == 0 and m["overall_pass"] == 0
    assert m["overall_acc"] == 0 and m["correct_language_rate"] == pytest.approx(2 / 3)
    assert "seahelm_summary_raises" in result.diagnostics
    good = ifeval.score(items[:1], ["<<Tiêu đề>> " + VI], lang="vi")
    assert good.metrics["overall_lang_normalized_acc"] == 100.0
    assert _keys(m) == _keys(good.metrics)


def test_none_in_the_right_language_is_zero():
    items = [_item(i, F + "title", {}, "ta") for i in range(2)]
    result = ifeval.score(items, ["<<Title>> " + EN, "<<T>> " + EN], lang="ta")
    assert result.metrics["overall_acc"] == 100.0
    assert result.metrics["correct_language_rate"] == 0.0
    assert result.metrics["overall_lang_normalized_acc"] == 0


def test_empty_run_is_zero_with_the_same_keys():
    result = ifeval.score([], [], lang="en")
    full = ifeval.score([_item(0, F + "title", {}, "en")], ["<<x>> " + EN], lang="en")
    assert result.metrics["overall_lang_normalized_acc"] == 0
    assert _keys(result.metrics) == _keys(full.metrics)


def test_score_refuses_malformed_input():
    with pytest.raises(EvalDataError, match="2 items but 1 responses"):
        ifeval.score([_item(0, F + "title", {}, "en")] * 2, ["x"], lang="en")
    bad = Item(task="sea_ifeval", lang="en", id="row-7", prompt="p", doc={"kwargs": [{}]})
    with pytest.raises(EvalDataError, match="row-7"):
        ifeval.score([bad], ["x"], lang="en")


def test_checks_module_needs_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; import sealion_vl.eval.metrics.ifeval_checks as c; "
        "assert c.check('startend:quotation', '\"x\"', {}, 'en'); "
        "assert 'torch' not in sys.modules"
    )
    env_path = ifeval_checks.__file__.rsplit("/sealion_vl/", 1)[0]
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": env_path})
