"""nano's general-stage held-out split (English shape scenes) as eval tasks: the English
side of the merge demonstration, read and scored exactly as nano's card scores it."""

from __future__ import annotations

import json

import pytest

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.scoring import score_task
from sealion_vl.eval.task import load_task

KINDS = {"vqa": "accuracy", "mcq": "normalized_accuracy", "lookup": "normalized_accuracy",
         "caption": "chrf++"}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tmp_path_factory.mktemp("nano-general-data")


def test_specs_read_the_general_part_in_english():
    for kind, headline in KINDS.items():
        task = load_task(f"nano_general_{kind}")
        assert task.languages == ["en"] and task.metric == headline
        assert task.spec.params == {"kind": kind, "part": "general"}
        assert task.competency == "nano_general"


def test_items_are_the_builds_general_heldout_split(data):
    from sealion_vl.nano.build import BuildPlan
    from sealion_vl.nano.evaluate import load_items

    items = {k: load_task(f"nano_general_{k}").items("en", data_dir=data) for k in KINDS}
    manifest = json.loads((data / "general/heldout/synth.json").read_text())
    plan = BuildPlan()
    assert (manifest["part"], manifest["n"], manifest["seed"]) == (
        "general", plan.n_general_heldout, plan.seed)  # fmt: skip
    records = load_items(data / "general/heldout")
    for kind, its in items.items():
        want = [r["id"] for r in records if r["meta"]["task"] == kind]
        assert [it.id for it in its] == want and want
    assert not (data / "sea").exists()  # the SEA split is neither read nor generated


def test_gold_replies_score_full_wrong_ones_not(data):
    for kind, headline in KINDS.items():
        task = load_task(f"nano_general_{kind}")
        items = task.items("en", data_dir=data)
        golds = [d["messages"][-1]["content"] for d in task.load_docs("en", data_dir=data)]
        assert score_task(task, "en", items, golds).metrics[headline] == pytest.approx(100.0)
        wrong = score_task(task, "en", items, ["no idea"] * len(items)).metrics[headline]
        assert wrong < 20.0


def test_a_sea_folder_is_not_taken_for_the_general_split(tmp_path):
    from sealion_vl.nano.synth import generate

    generate(tmp_path / "general/heldout", part="sea", split="heldout", n=8, seed=0)
    with pytest.raises(EvalDataError, match="part 'sea'.*evaluates only part 'general'"):
        load_task("nano_general_vqa").items("en", data_dir=tmp_path)
    spec = load_task("nano_general_vqa")
    spec.spec.params["part"] = "moon"
    with pytest.raises(EvalDataError, match="params.part is 'moon'"):
        spec.items("en", data_dir=tmp_path)
