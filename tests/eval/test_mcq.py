"""Multiple-choice scoring: SEA-HELM's extraction rules (facts.md §3c) and metrics, checked
against scikit-learn on the extracted labels; the robust extraction as a diagnostic."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.metrics import mcq
from sealion_vl.eval.metrics.robust import robust_extract, strip_reasoning
from sealion_vl.eval.types import Item

ABCD = ["A", "B", "C", "D"]


def items(golds, labels=ABCD, tag="Jawaban:", task="cvqa", meta=None):
    return [
        Item(
            task=task,
            lang="id",
            id=f"q{i}",
            prompt="",
            gold=g,
            labels=list(labels),
            answer_tag=tag,
            meta=dict(meta[i]) if meta else {},
        )
        for i, g in enumerate(golds)
    ]


def extracted(golds, responses, **kw):
    return [p["extracted"] for p in mcq.score(items(golds, **kw), responses, lang="id").per_item]


@pytest.mark.parametrize(
    ("reply", "want"),
    [
        ("Jawaban: Bakso", "A"),  # "Ba" is a run of labels (B, a): the last one wins
        ("Jawaban: AD", "D"),
        ("**Jawaban:** **C**", "C"),  # [\s\*]* eats "** **" after the tag
        ("Jawaban:\n\n  B\nbecause", "B"),  # [\s\*]* crosses newlines
        ("jawaban: c", "C"),  # case-insensitive
        ("Jawaban: A. Lalu Jawaban: B", "A"),  # first tag wins
        ("<think>Jawaban: D</think>\nJawaban: B", "D"),  # <think> is not stripped
        (" B. ", "B"),  # fallback: whole reply lower-cased, ASCII punctuation stripped
        ("(B)", "B"),  # both brackets are in string.punctuation
        ("b", "B"),
        ("I think it is B", "null"),
        ("Jawaban - B", "null"),
        ("", "null"),
        (None, "null"),
    ],
)
def test_seahelm_extraction(reply, want):
    assert extracted(["A", "B", "C", "D"], [reply] * 4)[0] == want


def test_answer_bakso_with_answer_tag():
    assert extracted(list("ABCD"), ["Answer: Bakso"] * 4, tag="Answer:")[0] == "A"


def test_regex_uses_only_labels_present_among_golds():
    # Only A and B are golds in this run: "C" is not in the pattern and the fallback fails.
    # "Jawaban: CB": a label must follow the tag directly, and C is not one in this run.
    out = extracted(["A", "B", "A", "B"], ["Jawaban: C", "Jawaban: B", "c", "Jawaban: CB"])
    assert out == ["null", "B", "null", "null"]
    assert extracted(list("ABCD"), ["Jawaban: CB"] * 4)[0] == "B"


def test_marvl_native_words_and_full_width_tag():
    words = ["Benar", "Salah"]
    out = extracted(
        ["Benar", "Salah", "Salah", "Benar"],
        ["Jawaban: benar", "Jawaban: **Salah**", "salah.", "Pernyataan itu benar"],
        labels=words,
    )
    assert out == ["Benar", "Salah", "Salah", "null"]
    zh = ["正确", "错误"]
    out = extracted(["正确", "错误"], ["答案：正确", "答案:错误"], labels=zh, tag="答案：")
    assert out == ["正确", "null"]  # MARVL zh tag is full-width; an ASCII colon misses


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_metrics_match_sklearn_on_extracted_labels():
    rng = random.Random(7)
    golds = [rng.choice(ABCD) for _ in range(60)]
    forms = ["Jawaban: {}", "{}", "jawaban:\n**{}**", "Saya rasa {}", "Jawaban: {}bc"]
    responses = [rng.choice(forms).format(rng.choice(ABCD)) for _ in golds]
    responses[3] = None
    result = mcq.score(items(golds), responses, lang="id")
    preds = [p["extracted"] for p in result.per_item]
    assert "null" in preds
    acc = balanced_accuracy_score(golds, preds)
    assert result.metrics["accuracy"] == pytest.approx(100 * acc)
    macro = f1_score(golds, preds, average="macro")
    assert result.metrics["macro_f1"] == pytest.approx(100 * macro)
    f1_gold = f1_score(golds, preds, labels=sorted(set(golds)), average="macro")
    nulls = preds.count("null")
    assert result.metrics["null_count"] == nulls
    assert result.metrics["null_weighted_f1"] == pytest.approx(100 * f1_gold * (1 - nulls / 60))
    k = len(set(golds))
    assert result.metrics["normalized_accuracy"] == pytest.approx(
        100 * max((acc - 1 / k) / (1 - 1 / k), 0)
    )
    assert [p["score"] for p in result.per_item] == [
        1.0 if p == g else 0.0 for p, g in zip(preds, golds, strict=True)
    ]


def test_normalized_uses_distinct_golds_and_is_zero_for_one_class():
    # k = 2 distinct golds (not 4 labels): acc 0.75 -> (0.75 - 0.5) / 0.5 = 50
    r = mcq.score(items(["A", "A", "B", "B"]), ["A", "A", "B", "A"], lang="id")
    assert r.metrics["accuracy"] == pytest.approx(75.0)
    assert r.metrics["normalized_accuracy"] == pytest.approx(50.0)
    one = mcq.score(items(["C", "C"]), ["C", "C"], lang="id")
    assert one.metrics["accuracy"] == 100.0 and one.metrics["normalized_accuracy"] == 0.0


def test_empty_input_and_categories_do_not_crash():
    r = mcq.score([], [], lang="id")
    assert r.metrics["accuracy"] == 0.0 and r.metrics["null_count"] == 0 and r.per_item == []
    meta = [{"category": "food"}, {"category": ""}, {}, {"category": "food"}]
    r = mcq.score(items(list("ABAB"), meta=meta), ["A", "A", "A", "B"], lang="id")
    assert r.diagnostics["by_category"] == {"food": {"n": 2, "accuracy": 100.0}}


def test_bad_gold_labels_are_refused_with_their_ids():
    its = items(["A", None, "B", "E"])
    with pytest.raises(EvalDataError, match=r"q1, q3"):
        mcq.score(its, ["A"] * 4, lang="id")
    with pytest.raises(EvalDataError, match="pair one to one"):
        mcq.score(items(["A"]), [], lang="id")


def test_robust_diagnostics_list_disagreements():
    golds = ["A", "B", "C", "D"]
    responses = [
        "<think>Jawaban: D?</think>\nJawaban: A",  # SEA-HELM reads D from the thought
        "The answer is (B).",  # SEA-HELM: null; robust: B
        "Jawaban: C",  # both C
        "**Jawaban**: D",  # SEA-HELM: null ("**" before the colon); robust: D
    ]
    r = mcq.score(items(golds), responses, lang="id")
    assert [p["extracted"] for p in r.per_item] == ["D", "null", "C", "null"]
    assert [p["robust_extracted"] for p in r.per_item] == ["A", "B", "C", "D"]
    assert r.metrics["accuracy"] == pytest.approx(25.0)
    assert r.diagnostics["robust_accuracy"] == pytest.approx(100.0)
    assert r.diagnostics["robust_normalized_accuracy"] == pytest.approx(100.0)
    assert r.diagnostics["disagreements"] == [
        {"id": "q0", "extracted": "D", "robust_extracted": "A", "gold": "A"},
        {"id": "q1", "extracted": "null", "robust_extracted": "B", "gold": "B"},
        {"id": "q3", "extracted": "null", "robust_extracted": "D", "gold": "D"},
    ]


@pytest.mark.parametrize(
    ("reply", "labels", "tag", "want"),
    [
        ("Jawaban C", ABCD, "Jawaban:", "C"),  # tag without colon
        ("JAWABAN：B", ABCD, "Jawaban:", "B"),  # full-width colon, any case
        ("**Jawaban:** **(D)**", ABCD, "Jawaban:", "D"),
        ("Jawaban: Bakso", ABCD, "Jawaban:", None),  # word boundary: no "A" from "Bakso"
        ("C. Bakso goreng", ABCD, "Jawaban:", "C"),
        ("B)", ABCD, "Jawaban:", "B"),
        ("Answer: D", ABCD, "Jawaban:", "D"),
        ("Hmm, (A) or (B)?", ABCD, "Jawaban:", None),  # ambiguous
        ("<|channel>thought\nJawaban: A<channel|>Jawaban: C", ABCD, "Jawaban:", "C"),
        ("reasoning...</think>\n\nJawaban: B", ABCD, "Jawaban:", "B"),
        ("<think>still thinking, Jawaban: A", ABCD, "Jawaban:", None),
        ("Pernyataan ini benar.", ["Benar", "Salah"], "Jawaban:", "Benar"),
        ("Kebenaran tidak jelas", ["Benar", "Salah"], "Jawaban:", None),  # whole words only
        ("benar atau salah", ["Benar", "Salah"], "Jawaban:", None),
        ("答案：正确的", ["正确", "错误"], "答案：", "正确"),
        (None, ABCD, "Jawaban:", None),
    ],
)
def test_robust_extract_cases(reply, labels, tag, want):
    assert robust_extract(reply, labels, tag) == want


def test_strip_reasoning_keeps_the_answer_part():
    assert strip_reasoning("<think>x</think>Jawaban: A").strip() == "Jawaban: A"
