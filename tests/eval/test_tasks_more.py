"""SEA-HELM 1.2's newer vision tasks, the Math-Verify scorer, and nano's synthetic tasks."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import datasets
import pytest

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.metrics import mathans
from sealion_vl.eval.scoring import score_task
from sealion_vl.eval.task import available_tasks, load_task
from sealion_vl.eval.tasks import nano_common
from sealion_vl.eval.types import Item
from tests.fixtures import eval_data_more as fx

datasets.disable_progress_bars()

SEAHELM = {  # task -> (scorer, headline, aggregation group, competency)
    "mmstar": ("mcq", "normalized_accuracy", None, "vision"),
    "hallusionbench": ("mcq", "normalized_accuracy", None, "hallucinations"),
    "hallusionbench_image": ("mcq", "normalized_accuracy", None, "vision"),
    "erqa": ("mcq", "normalized_accuracy", None, "vision"),
    "mmmu_pro_10_options": ("mcq", "normalized_accuracy", None, "vision"),
    "mmmu_pro_4_options": ("mcq", "normalized_accuracy", None, "vision"),
    "mmmu_pro_vision": ("mcq", "normalized_accuracy", None, "vision"),
    "mathvista_mini_multi_choice": ("mcq", "normalized_accuracy", "mathvista", "vision"),
    "mathvista_mini_free_form": ("math", "normalized_math_verify_score", "mathvista", "vision"),
}
NANO = ["nano_vqa", "nano_mcq", "nano_lookup", "nano_marvl", "nano_caption", "nano_toolcall"]
LETTER_FORMAT = (
    'Use the following format to provide the answer:\n"Answer: ANSWER"\n'
    "Replace ANSWER with the correct option letter, e.g. A, B, C, D.\n\n"
)
MMMU_FORMAT = (
    'Provide your answer at the end using the following format:\n"Answer: ANSWER"\n'
    "Replace ANSWER with the correct option letter, e.g. {letters}."
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return fx.write_all(tmp_path_factory.mktemp("eval-data-more"))


def _items(name: str, data_root: Path):
    return load_task(name).items("en", data_dir=data_root)


def test_shipped_specs():
    tasks = available_tasks()
    for name, (scorer, metric, group, competency) in SEAHELM.items():
        assert name in tasks
        task = load_task(name)
        assert (task.scorer, task.metric, task.aggregation_group) == (scorer, metric, group)
        assert task.competency == competency and task.languages == ["en"]
        assert task.default_group is False and task.score_hook() is None
        header = (task.folder / "task.yaml").read_text(encoding="utf-8")
        assert header.startswith("#") and "Source: SEA-HELM" in header
        assert f"Run: sealion-vl eval run --model MODEL --tasks {name}" in header
        assert task.fingerprint("en") == load_task(name).fingerprint("en")
    with pytest.raises(EvalDataError, match="no language 'id'"):
        load_task("mmstar").lang_spec("id")


def test_mmstar(data_root):
    items = _items("mmstar", data_root)
    assert [(it.id, it.gold) for it in items] == [("7", "A"), ("9", "C")]
    assert items[0].prompt == LETTER_FORMAT + fx.MMSTAR_ROWS[0]["question"]
    assert items[0].images == [fx.png((200, 0, 0))] and items[0].max_tokens == 1024
    assert items[0].labels == ["A", "B", "C", "D"] and items[0].answer_tag == "Answer:"
    assert items[1].meta == {"category": "math", "l2_category": "numeric", "source": "MathVista"}


def test_hallusionbench_both_splits(data_root):
    text = _items("hallusionbench", data_root)
    assert [it.gold for it in text] == ["TRUE", "FALSE", "FALSE"]
    assert all(it.images == [] for it in text)  # split non_image: nothing is sent
    assert text[0].prompt == (
        'Use the following format to provide the answer:\n"Answer: ANSWER"\n'
        "Replace ANSWER with either TRUE or FALSE.\n\nIs Paris the capital of France?"
    )
    assert text[0].id == "VS/chart/2/0/2"
    image = _items("hallusionbench_image", data_root)
    assert [it.gold for it in image] == ["TRUE", "FALSE"]
    assert [len(it.images) for it in image] == [1, 1]
    # SEA-HELM's regex: the tag, then TRUE|FALSE, case-insensitive; fallback whole reply
    task = load_task("hallusionbench")
    replies = ["Answer: **true**", "answer:\nFALSE.", "Yes"]
    ts = score_task(task, "en", text, replies)
    assert [p["extracted"] for p in ts.per_item] == ["TRUE", "FALSE", "null"]
    assert ts.metrics["accuracy"] == pytest.approx(100 * (1 + 0.5) / 2)


def test_erqa_question_rewrite_and_images(data_root):
    items = _items("erqa", data_root)
    assert items[0].prompt == LETTER_FORMAT + (
        "Which way should the arm move to reach the cup?\nChoices:\nA.  Left.\nB.  Right.\n"
        "C.  Up.\nD.  Down."
    )
    assert items[0].images == [fx.png((1, 2, 3)), fx.png((4, 5, 6))]  # the list, in order
    assert [(it.id, it.gold) for it in items] == [("erqa-1", "B"), ("erqa-2", "A")]
    # SEA-HELM quirk: the unescaped "." matches any character (" CD " is rewritten too)
    hooks = load_task("erqa")._hooks
    assert hooks.question("Is a CD player here? Choices: A. Yes.") == (
        "Is a\nC.  player here?\nChoices:\nA.  Yes."
    )


def test_mmmu_pro_three_settings(data_root):
    ten = _items("mmmu_pro_10_options", data_root)[0]
    letters = "ABCDEFGHIJ"
    options = "\n".join(f"{k}: option {k.lower()}" for k in letters)
    assert ten.prompt == (
        MMMU_FORMAT.format(letters=", ".join(letters))
        + "\n\nWhich painting is older? <image 1> 1\nOptions:\n"
        + options
    )
    assert (ten.gold, ten.labels, ten.id) == ("J", list(letters), "validation_Art_1")
    assert ten.images == [fx.png((1, 1, 0)), fx.png((2, 1, 0))]  # image_1, image_2 (3-7 None)
    four = _items("mmmu_pro_4_options", data_root)[0]
    assert four.prompt.endswith("Options:\nA: Monet\nB: Manet\nC: Degas\nD: Renoir")
    assert four.prompt.startswith(MMMU_FORMAT.format(letters="A, B, C, D") + "\n\n")
    assert (four.gold, four.labels) == ("B", ["A", "B", "C", "D"])
    vision = _items("mmmu_pro_vision", data_root)[0]
    assert vision.prompt == MMMU_FORMAT.format(letters=", ".join(letters))  # preamble only
    assert (vision.gold, vision.images) == ("D", [fx.png((5, 5, 5))])


def test_mathvista_both_kinds(data_root):
    mc = _items("mathvista_mini_multi_choice", data_root)
    assert [(it.id, it.gold) for it in mc] == [("3", "B"), ("4", "B")]
    assert mc[0].prompt == (
        "Please answer the question.\n\nProvide your answer at the end using the following "
        'format:\n"Answer: ANSWER"\nReplace ANSWER with the correct option letter, e.g. A, B, '
        "C, D.\n\nQuestion:\nAs shown in the figure, find the angle.\nChoices:\n(A) 30°\n"
        "(B) 40°\n(C) 50°\n(D) 60°"
    )
    ff = _items("mathvista_mini_free_form", data_root)
    assert [(it.id, it.gold) for it in ff] == [("1", "1.2"), ("2", "1000")]
    assert ff[1].prompt == (
        'Please answer the question.\n\nProvide your answer at the end using the format "$\\boxed'
        '{ANSWER}$" where ANSWER is the number or expression that solves the problem. If units '
        "are provided, do not include the units in the answer.\n\nQuestion:\nwhat is the total "
        "volume of the measuring cup? (Unit: g)"
    )
    assert ff[0].images == [fx.png((1, 0, 0))] and ff[0].labels == []
    ts = score_task(load_task("mathvista_mini_free_form"), "en", ff, ["$\\boxed{1.2}$", "500"])
    assert ts.metrics == {"math_verify_score": 50.0, "normalized_math_verify_score": 50.0}


def test_bad_gold_rows_are_refused_naming_them(tmp_path):
    rows = [dict(fx.MMSTAR_ROWS[0]), {**fx.MMSTAR_ROWS[1], "answer": "E"}]
    fx.mmstar(tmp_path, rows)
    with pytest.raises(EvalDataError) as err:
        load_task("mmstar").items("en", data_dir=tmp_path)
    assert str(err.value).startswith(
        "task 'mmstar' [en]: 1 of 2 rows have no gold answer among ['A', 'B', 'C', 'D']"
    ) and str(err.value).endswith("Rows: 9 (gold 'E')")
    # Task.validate checks every hook's gold the same way, naming all bad rows at once
    key = {"category": "c", "subcategory": "s", "set_id": 0, "figure_id": 0}
    docs = [{**key, "question_id": i, "gt_answer": g} for i, g in enumerate(["1", "-1", "2"])]
    with pytest.raises(EvalDataError) as err:
        load_task("hallusionbench_image").validate(docs, "en")
    assert "task 'hallusionbench_image' [en]: 2 of 3 rows" in str(err.value)
    assert str(err.value).endswith("Rows: c/s/0/0/1 (gold None), c/s/0/0/2 (gold None)")
    free = load_task("mathvista_mini_free_form")  # no label words: only a missing gold
    free.validate([{"pid": "1", "answer": "3"}], "en")
    with pytest.raises(EvalDataError, match=r"1 of 2 rows have no gold answer or .*: 2 \(gold"):
        free.validate([{"pid": "1", "answer": "3"}, {"pid": "2", "answer": " "}], "en")
    mmmu = load_task("mmmu_pro_4_options")
    rows = [
        {"id": "a", "question": "q", "options": "['x', 'y'", "answer": "A"},
        {"id": "b", "question": "q", "options": "['x', 'y']", "answer": "E"},
        {"id": "c", "question": "q", "options": "['x', 'y']", "answer": "B"},
    ]
    with pytest.raises(
        EvalDataError, match=r"2 of 3 rows.* a \(options not a list .*, b \(gold 'E'\)$"
    ):
        mmmu.validate(rows, "en")
    with pytest.raises(EvalDataError, match=r"'mmmu_pro_4_options' \[en\].* a \(options not"):
        mmmu.item(rows[0], "en")  # one row alone: the same refusal
    assert mmmu.item(rows[2], "en").gold == "B"
    hooks = load_task("mathvista_mini_multi_choice")._hooks
    assert hooks.gold_letter({"choices": ["1", "2"], "answer": "2"}) == "B"
    assert hooks.gold_letter({"choices": ["1", "2"], "answer": "3"}) is None
    bench = load_task("hallusionbench")._hooks
    assert bench.to_fields(None, {"gt_answer": "-1"}, "en")["gold"] is None


MATH_CASES = [  # (gold, reply, correct): hand-checked
    ("0.5", "So the answer is $\\boxed{\\frac{1}{2}}$.", True),
    ("1000", "The cup holds $\\boxed{1000}$ g.", True),
    ("1.2", "k = 1.2", True),  # no box: Math-Verify reads the expression
    ("1.2", "\\boxed{1.20}", True),
    ("3", "First 5.\n\nFinally $\\boxed{3}$", True),  # the whole reply, not its first line
    ("12", "Answer: 13", False),
    ("40", "\\boxed{41}", False),
    ("12", None, False),  # a failed request is "" (SEA-HELM)
    ("12", "", False),
]


def _math_items():
    return [Item(task="m", lang="en", id=str(i), prompt="", gold=g) for i, (g, _, _) in
            enumerate(MATH_CASES)]  # fmt: skip


def test_mathans_hand_checked_cases():
    ts = mathans.score(_math_items(), [r for _, r, _ in MATH_CASES], lang="en")
    assert [p["score"] for p in ts.per_item] == [int(ok) for _, _, ok in MATH_CASES]
    assert ts.per_item[0]["extracted"] == "\\frac{1}{2}" and ts.per_item[7]["extracted"] is None
    expected = 100 * 5 / 9
    assert ts.metrics["math_verify_score"] == pytest.approx(expected)
    assert ts.metrics["normalized_math_verify_score"] == pytest.approx(expected)
    with pytest.raises(EvalDataError, match="2 responses"):
        mathans.score(_math_items(), ["a", "b"], lang="en")


def test_mathans_same_answers_off_the_main_thread():
    out = {}
    t = threading.Thread(
        target=lambda: out.update(
            ts=mathans.score(_math_items(), [r for _, r, _ in MATH_CASES], lang="en")
        )  # fmt: skip
    )
    t.start()
    t.join()
    assert [p["score"] for p in out["ts"].per_item] == [int(ok) for _, _, ok in MATH_CASES]


# -- nano's synthetic held-out tasks ------------------------------------------------------


@pytest.fixture(scope="module")
def nano_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nano-data")


def _gold_replies(task, lang: str, data_dir: Path) -> list[str]:
    return [d["messages"][-1]["content"] for d in task.load_docs(lang, data_dir=data_dir)]


def test_nano_specs_follow_the_synthetic_world():
    from sealion_vl.nano.synth import LANGUAGES, lang

    for name in NANO:
        task = load_task(name)
        assert task.languages == list(LANGUAGES) and task.score_hook() is not None
        for code in LANGUAGES:
            spec, table = task.lang_spec(code), lang(code)
            if name in ("nano_mcq", "nano_lookup"):
                assert (spec.labels, spec.prompt_template.answer_tag) == (
                    ["A", "B", "C", "D"], table["answer_tag"])  # fmt: skip
            elif name == "nano_marvl":
                assert spec.labels == [table["true_word"], table["false_word"]]
            else:
                assert spec.labels == []
        # one shared hooks module (nano_common), told the item kind by the task's params
        assert not (task.folder / "hooks.py").exists() and task.spec.params == {"kind": name[5:]}
        assert task._hooks is nano_common  # its source is what the fingerprint hashes
        assert task._hooks_source == Path(nano_common.__file__).read_text(encoding="utf-8")


def test_nano_items_are_deterministic_and_held_out(nano_dir, tmp_path):
    import json

    from sealion_vl.nano.build import BuildPlan
    from sealion_vl.nano.synth import generate

    task = load_task("nano_mcq")
    first = task.items("th", data_dir=nano_dir)
    again = task.items("th", data_dir=tmp_path / "again")  # generated afresh elsewhere
    assert [(i.id, i.prompt, i.gold, i.images) for i in first] == [
        (i.id, i.prompt, i.gold, i.images) for i in again
    ]
    manifest = json.loads((nano_dir / "sea/heldout/synth.json").read_text())
    plan = BuildPlan()
    assert (manifest["split"], manifest["n"], manifest["seed"]) == (
        "heldout", plan.n_heldout, plan.seed)  # fmt: skip
    # no held-out image is also a training image (separate seed streams per split)
    generate(tmp_path / "train", part="sea", split="train", n=300, seed=plan.seed)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    train = {digest(p) for p in (tmp_path / "train/images").iterdir()}
    held = {digest(p) for p in (nano_dir / "sea/heldout/images").iterdir()}
    assert train and held and not train & held
    # a training split is never evaluated
    generate(tmp_path / "wrong/sea/heldout", part="sea", split="train", n=4, seed=0)
    with pytest.raises(EvalDataError, match="split 'train'"):
        task.items("en", data_dir=tmp_path / "wrong")


@pytest.mark.parametrize(
    ("name", "headline"),
    [("nano_vqa", "accuracy"), ("nano_mcq", "normalized_accuracy"),
     ("nano_lookup", "normalized_accuracy"), ("nano_marvl", "normalized_accuracy"),
     ("nano_toolcall", "accuracy"), ("nano_caption", "chrf++")],
)  # fmt: skip
def test_nano_gold_replies_score_full_and_wrong_ones_nothing(nano_dir, name, headline):
    task = load_task(name)
    assert task.metric == headline
    items = task.items("id", data_dir=nano_dir)
    assert items and all(it.task == name and it.lang == "id" for it in items)
    gold = score_task(task, "id", items, _gold_replies(task, "id", nano_dir))
    assert gold.metrics[headline] == pytest.approx(100.0)
    wrong = score_task(task, "id", items, ["Tidak tahu."] * len(items))
    if name == "nano_caption":  # chrF++ gives partial credit for shared characters
        from sacrebleu.metrics import CHRF

        refs = [it.gold[0] for it in items]
        alone = CHRF(word_order=2).corpus_score(["Tidak tahu."] * len(items), [refs]).score
        assert wrong.metrics[headline] == pytest.approx(alone) and alone < 15.0
        return
    assert wrong.metrics[headline] == 0.0
    assert all(p["score"] == 1 for p in gold.per_item)
    assert all(p["score"] == 0 for p in wrong.per_item)
    assert gold.diagnostics["raw_accuracy"] == 100.0


def test_nano_item_is_the_evaluated_conversation(nano_dir):
    from sealion_vl.nano.synth import TOOL_SYSTEM

    call = load_task("nano_toolcall").items("en", data_dir=nano_dir)[0]
    assert call.prompt.startswith(TOOL_SYSTEM.strip() + "\n\n") and len(call.images) == 1
    assert call.images[0].startswith(b"\x89PNG")
    task = load_task("nano_marvl")
    marvl = task.items("vi", data_dir=nano_dir)[0]
    assert len(marvl.images) == 2 and marvl.prompt.endswith("\nĐúng hay Sai?")
    # sent as nano learnt it: a system turn for tools, images before the text
    assert call.conversation[0] == {"role": "system", "content": TOOL_SYSTEM}
    user = marvl.conversation[-1]["content"]
    assert [p["type"] for p in user] == ["image", "image", "text"]
    assert [p["image"] for p in user[:2]] == marvl.images
    # a replies file's doc (image files elsewhere) gives the same prompt and gold
    again = task.item(dict(marvl.doc, messages=[
        {**m, "content": [{**p, "path": "gone.png"} if p.get("type") == "image" else p
                          for p in m["content"]]} if isinstance(m["content"], list) else m
        for m in marvl.doc["messages"]]), "vi")  # fmt: skip
    assert (again.prompt, again.gold, again.images) == (marvl.prompt, marvl.gold, [])
    with pytest.raises(EvalDataError, match="not a nano held-out record"):
        task.item({"id": "x", "messages": []}, "vi")


def test_nano_rules_are_nanos(nano_dir):
    marvl = load_task("nano_marvl")
    items = marvl.items("id", data_dir=nano_dir)
    it = next(i for i in items if i.gold == "Salah")
    ts = score_task(marvl, "id", [it, it], ["Benar\nSalah", "Salah\nBenar"])  # last line counts
    assert [p["score"] for p in ts.per_item] == [1, 0]
    mcq = load_task("nano_mcq")
    it = mcq.items("ms", data_dir=nano_dir)[0]
    other = next(x for x in "ABCD" if x != it.gold)
    ts = score_task(mcq, "ms", [it] * 3, [f"Jawapan: **{it.gold}**", it.gold, f"Jawapan: {other}"])
    assert [p["score"] for p in ts.per_item] == [1, 1, 0]
    tool = load_task("nano_toolcall")
    it = tool.items("en", data_dir=nano_dir)[0]
    city = tool.load_docs("en", data_dir=nano_dir)[0]["meta"]["arguments"]["city"]
    replies = [f'[get_weather(city="{city}")]', '```tool_code\nget_weather(city="Atlantis")\n```']
    ts = score_task(tool, "en", [it, it], replies)
    assert [p["score"] for p in ts.per_item] == [1, 0]


def test_erqa_doc_keeps_no_image_bytes(data_root):
    item = _items("erqa", data_root)[0]
    assert "images" not in item.doc and item.doc["question"] == fx.ERQA_QUESTION


def test_reply_file_docs_build_the_same_items(data_root):
    """``eval score`` builds items from public rows alone (images optional, or data: URLs)."""
    import base64

    task = load_task("erqa")
    loaded = task.items("en", data_dir=data_root)[0]
    doc = dict(loaded.doc)
    url = "data:image/png;base64," + base64.b64encode(fx.png((1, 2, 3))).decode()
    rebuilt = task.item({**doc, "images": [url]}, "en")
    assert (rebuilt.prompt, rebuilt.gold, rebuilt.images) == (
        loaded.prompt, loaded.gold, [fx.png((1, 2, 3))])  # fmt: skip
    assert task.item(doc, "en").images == []
    for name in ("hallusionbench", "mathvista_mini_free_form", "mmmu_pro_4_options"):
        t = load_task(name)
        it = t.items("en", data_dir=data_root)[0]
        again = t.item(dict(it.doc), "en")
        assert (again.id, again.prompt, again.gold) == (it.id, it.prompt, it.gold)
