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
    arms = {arm: _weights(root / arm) for arm in demo.arms()}
    for arm in demo.arms():
        chat = sealion_vl.load(root / arm, device="cpu")
        assert chat.model.config.text_config.hidden_size == demo.student_size(True).hidden
        assert arms[arm].keys() == init.keys()
        assert any(not torch.equal(arms[arm][k], init[k]) for k in init), f"{arm} never trained"
    recipes = {
        arm: yaml.safe_load((root / arm / "distill.resolved.yaml").read_text())
        for arm in demo.arms()
    }
    assert recipes["labels"]["alpha"] == 0.0 and recipes["labels"]["student"] == str(
        root / "student-init"
    )
    for name, (alpha, temperature) in demo.CANDIDATES.items():
        assert any(not torch.equal(arms["labels"][k], arms[name][k]) for k in init)
        # a candidate's recipe differs from the labels arm's only in the loss's settings
        diff = {k for k in recipes["labels"] if recipes["labels"][k] != recipes[name][k]}
        allowed = {"alpha", "output_dir"}
        if temperature != 1:
            allowed |= {"temperature", "cache"}
        assert diff <= allowed and "alpha" in diff
        assert recipes[name]["alpha"] == alpha > 0


def test_labels_arm_loss_is_label_cross_entropy_only(smoke_run):
    work, _, _ = smoke_run
    for arm, (alpha, _) in demo.arms().items():
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
        arms = [*demo.arms()] if split == "val" else ["labels", result["chosen"]]
        assert set(block) == {*arms, "nano (teacher)"}
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
    chosen = result["chosen"]
    assert chosen == max(demo.CANDIDATES, key=lambda m: result["validation"][m]["all"])
    assert result["gain"] == round(
        result["heldout"][chosen]["all"] - result["heldout"]["labels"]["all"], 2
    )
    for task in result["heldout"]["labels"]["by_task"]:
        assert f"| {task} (n=" in result["table"]
    assert "**all**" in result["table"]
    paired = result["paired"]["heldout"]
    for number in (result["heldout"][chosen]["all"], result["heldout"]["labels"]["all"]):
        assert f"{number:.1f}" in result["finding"]
    assert f"over {paired['items']} held-out items" in result["finding"]
    assert paired["items"] == sum(result["heldout"]["labels"]["n"].values())


def test_rerun_reuses_cache_arms_and_evals(smoke_run):
    work, first, _ = smoke_run
    root = work / "distill"
    stamps = {
        p: p.stat().st_mtime_ns
        for p in [root / "teacher-topk.bin", *(root / a / "model.safetensors" for a in demo.arms())]
    }
    logs: list[str] = []
    again = demo.run(work, smoke=True, progress=False, log=logs.append)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again["heldout"] == first["heldout"]
    assert again["train_seconds"] == first["train_seconds"]


def test_finished_arm_with_another_recipe_is_refused(smoke_run):
    work, _, _ = smoke_run
    recipe = demo.arm_recipe(work / "distill", "kd-0.5", smoke=True)
    assert demo.train_arm(recipe, progress=False)[0] == work / "distill" / "kd-0.5"
    other = recipe.model_copy(update={"alpha": 0.9})
    with pytest.raises(SealionError, match="another recipe"):
        demo.train_arm(other, progress=False)


def test_paired_difference_against_a_direct_count(smoke_run, tmp_path):
    work, result, _ = smoke_run
    evals = work / "distill" / "eval"
    a, b = evals / "heldout-labels", evals / f"heldout-{result['chosen']}"
    assert demo.paired(a, b) == result["paired"]["heldout"]
    assert demo.paired(a, a) == {
        "items": result["paired"]["heldout"]["items"],
        "mean_diff": 0.0,
        "ci95": [0.0, 0.0],
        "better": 0,
        "worse": 0,
    }
    # two hand-written runs: b gets one more accuracy item right and a caption 10 chrF higher
    rows = [
        ("nano_vqa", "en", "1", 0, 1),
        ("nano_vqa", "en", "2", 1, 1),
        ("nano_caption", "en", "3", 50.0, 60.0),
        ("nano_mcq", "th", "4", 1, 0),
    ]
    for name, col in (("a", 3), ("b", 4)):
        (tmp_path / name).mkdir()
        lines = [
            json.dumps({"task": t, "lang": lang, "id": i, "score": r[col]})
            for r in rows
            for t, lang, i in [r[:3]]
        ]
        (tmp_path / name / "items.jsonl").write_text("\n".join(lines) + "\n")
    got = demo.paired(tmp_path / "a", tmp_path / "b")
    assert got["items"] == 4 and got["better"] == 2 and got["worse"] == 1
    assert got["mean_diff"] == round((100 + 0 + 10 - 100) / 4, 2)
    assert got["ci95"][0] <= got["mean_diff"] <= got["ci95"][1]
    (tmp_path / "b" / "items.jsonl").write_text(json.dumps({**json.loads(lines[0]), "id": "9"}))
    with pytest.raises(ValueError, match="different items"):
        demo.paired(tmp_path / "a", tmp_path / "b")


def test_headline_interval_rescores_the_eval_runs(smoke_run):
    from sealion_vl.nano.demos.common import _cell_headline, headline_bootstrap

    work, result, _ = smoke_run
    evals = work / "distill" / "eval"
    chosen, held = result["chosen"], result["heldout"]
    ci = result["headline_ci"]["heldout"]
    # the observed gap is the eval runner's own headline gap, rescored cell by cell
    assert ci["diff"] == pytest.approx(held[chosen]["all"] - held[demo.LABELS]["all"], abs=0.02)
    assert ci["ci95"][0] <= ci["diff"] <= ci["ci95"][1] and ci["resamples"] == 50
    for run in (f"heldout-{demo.LABELS}", f"heldout-{chosen}"):
        results = json.loads((evals / run / "results.json").read_text())
        headline = json.loads((evals / run / "headline.json").read_text())
        cells: dict = {}
        for line in (evals / run / "items.jsonl").read_text().splitlines():
            row = json.loads(line)
            cells.setdefault((row["task"], row["lang"]), []).append(row)
        for (task, lang), rows in cells.items():
            want = results[lang]["nano"][task][headline[task]]
            got = _cell_headline(headline[task], rows)
            assert got == pytest.approx(want, abs=1e-6), (task, lang)
    same = headline_bootstrap(evals / run, evals / run, resamples=20)
    assert same["diff"] == 0 and same["ci95"] == [0, 0] and same["share_b_better"] == 0
    with pytest.raises(ValueError, match="different items"):
        headline_bootstrap(evals / run, evals / f"val-{chosen}", resamples=2)
