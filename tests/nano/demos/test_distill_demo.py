"""The distillation demo end to end at smoke size: real training, real eval runs."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import sealion_vl
from sealion_vl.distill.cache import TopKCache
from sealion_vl.errors import SealionError
from sealion_vl.nano.demos import distill as demo


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("distill-demo")
    logs: list[str] = []
    result = demo.run(work, smoke=True, progress=False, log=logs.append)
    return work, result, logs


def _weights(folder: Path) -> dict:
    return load_file(str(folder / "model.safetensors"))


def test_both_arms_load_and_differ_from_one_init(smoke_run):
    work, result, _ = smoke_run
    root = work / "distill"
    init = _weights(root / "student-init")
    arms = {arm: _weights(root / arm) for arm in demo.ARMS}
    for arm in demo.ARMS:
        chat = sealion_vl.load(root / arm, device="cpu")
        assert chat.model.config.text_config.hidden_size == demo.student_size(True).hidden
        assert arms[arm].keys() == init.keys()
        assert any(not torch.equal(arms[arm][k], init[k]) for k in init), f"{arm} never trained"
    assert any(not torch.equal(arms["labels"][k], arms["distilled"][k]) for k in init)
    # the arms' recipes differ only in alpha and the output folder
    recipes = {
        arm: yaml.safe_load((root / arm / "distill.resolved.yaml").read_text()) for arm in demo.ARMS
    }
    diff = {k for k in recipes["labels"] if recipes["labels"][k] != recipes["distilled"][k]}
    assert diff == {"alpha", "output_dir"}
    assert recipes["labels"]["alpha"] == 0.0 and recipes["distilled"]["alpha"] > 0
    assert recipes["labels"]["student"] == str(root / "student-init")


def test_labels_arm_loss_is_label_cross_entropy_only(smoke_run):
    work, _, _ = smoke_run
    for arm, alpha in demo.ARMS.items():
        rows = [
            json.loads(line)
            for line in (work / "distill" / arm / "distill_metrics.jsonl").read_text().splitlines()
        ]
        assert len(rows) == demo.SMOKE_STEPS
        for r in rows:
            want = alpha * r["divergence"] + (1 - alpha) * r["label_ce"]
            assert r["loss"] == pytest.approx(want, rel=1e-5)
            assert r["divergence"] > 0  # computed for both arms, weighted 0 in labels


def test_cache_covers_the_transfer_set(smoke_run):
    work, result, _ = smoke_run
    root = work / "distill"
    cache = TopKCache(root / "teacher-topk.bin")
    lines = (root / "train" / "sft.jsonl").read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == demo.SMOKE_ITEMS == result["settings"]["transfer_items"]
    assert set(cache.rows) == set(ids)
    assert cache.header["teacher"] == "nano" and cache.k == 64


def test_saved_numbers_are_the_eval_runs(smoke_run):
    work, result, _ = smoke_run
    saved = json.loads((work / "distill.json").read_text())
    assert saved["heldout"] == result["heldout"]
    for split in ("val", "heldout"):
        block = result["validation" if split == "val" else "heldout"]
        assert set(block) == {"labels", "distilled", "nano (teacher)"}
        for name, summary in block.items():
            out = work / "distill" / "eval" / f"{split}-{name.split(' ')[0]}"
            results = json.loads((out / "results.json").read_text())
            headline = json.loads((out / "headline.json").read_text())
            assert set(summary["by_lang"]) == set(results) - {"total"}
            for lang, total in summary["by_lang"].items():
                assert total == round(results[lang]["total"], 2)
                for task, metric in headline.items():
                    got = results[lang]["nano"][task][metric]
                    assert summary["by_task"][task][lang] == round(got, 2)
            config = json.loads((out / "config.json").read_text())
            seed = "" if split == "heldout" else f"-seed{demo.VALIDATION_SEED}"
            data = work / f"data{seed}"
            assert Path(config["data_dir"]) == data
    assert result["gain"] == round(
        result["heldout"]["distilled"]["all"] - result["heldout"]["labels"]["all"], 2
    )
    for task in result["heldout"]["labels"]["by_task"]:
        assert f"| {task} (n=" in result["table"]
    assert "**all**" in result["table"]


def test_rerun_reuses_cache_arms_and_evals(smoke_run):
    work, first, _ = smoke_run
    root = work / "distill"
    stamps = {
        p: p.stat().st_mtime_ns
        for p in [root / "teacher-topk.bin", *(root / a / "model.safetensors" for a in demo.ARMS)]
    }
    logs: list[str] = []
    again = demo.run(work, smoke=True, progress=False, log=logs.append)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again["heldout"] == first["heldout"]
    assert again["train_seconds"] == first["train_seconds"]


def test_finished_arm_with_another_recipe_is_refused(smoke_run):
    work, _, _ = smoke_run
    recipe = demo.arm_recipe(work / "distill", "distilled", smoke=True)
    assert demo.train_arm(recipe, progress=False)[0] == work / "distill" / "distilled"
    other = recipe.model_copy(update={"alpha": 0.9})
    with pytest.raises(SealionError, match="another recipe"):
        demo.train_arm(other, progress=False)
