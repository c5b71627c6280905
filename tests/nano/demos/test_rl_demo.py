"""``sealion-vl nano demo rl --smoke``: the whole RL demonstration on tiny sizes, through the
CLI; its saved numbers are the eval runner's, its model is nano changed where GRPO trains."""

from __future__ import annotations

import hashlib
import json

import pytest
from safetensors.torch import load_file

from sealion_vl.nano.demos.rl import SMOKE, TRAIN_SEED
from sealion_vl.runtime.load import resolve
from tests.fixtures.demos import run_smoke_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("rl-demo")
    return work, run_smoke_demo("rl", work)


def _items(folder) -> list[dict]:
    return [json.loads(x) for x in (folder / "items.jsonl").read_text().splitlines() if x]


def test_saved_numbers_are_the_eval_runs(demo):
    work, output = demo
    result = json.loads((work / "rl.json").read_text())
    assert result["table"] in output
    for arm, tag in (("nano", "nano"), ("nano + GRPO", "rl")):
        for split, prefix in (("heldout", "heldout"), ("validation", "val")):
            got = result[split][arm]
            folder = work / "eval" / f"{prefix}-{tag}-mcq"
            res = json.loads((folder / "results.json").read_text())
            langs = [x for x in res if x != "total"]
            assert len(langs) == 8
            heads = [res[x]["nano"]["nano_mcq"]["normalized_accuracy"] for x in langs]
            assert got["headline"] == pytest.approx(sum(heads) / 8, abs=0.01)
            items = _items(folder)  # raw accuracy: the plain share of items scored right
            assert got["raw"]["n"] == len(items) == 8 * SMOKE["limit"]
            raw = 100 * sum(i["score"] for i in items) / len(items)
            assert got["raw"]["all"] == pytest.approx(raw, abs=0.01)
            model = "nano" if tag == "nano" else str(work / "rl-model")
            assert got["command"].startswith(f"sealion-vl eval run --model {model} ")
    held = result["heldout"]
    gain = held["nano + GRPO"]["headline"] - held["nano"]["headline"]
    assert result["gain"] == pytest.approx(gain, abs=0.01)
    for arm in ("nano", "nano + GRPO"):  # the all-task check covers every nano task
        assert set(result["check"][arm]["by_task"]) >= {"nano_mcq", "nano_vqa", "nano_marvl"}


def test_validation_and_training_items_are_not_the_reported_ones(demo):
    work, _ = demo
    held = json.loads((work / "data/sea/heldout/synth.json").read_text())
    val = json.loads((work / "data-seed1/sea/heldout/synth.json").read_text())
    train = json.loads((work / "rl-prompts/synth.json").read_text())
    assert (held["seed"], val["seed"]) == (0, 1)
    assert (train["split"], train["seed"], train["kinds"]) == ("train", TRAIN_SEED, ["mcq"])

    def digests(folder):
        return {hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("images/*.png")}

    assert not digests(work / "rl-prompts") & digests(work / "data/sea/heldout")
    rows = [json.loads(x) for x in (work / "rl-prompts/prompts.jsonl").read_text().splitlines()]
    sft = [json.loads(x) for x in (work / "rl-prompts/sft.jsonl").read_text().splitlines()]
    assert len(rows) == SMOKE["n_train"]
    for row, rec in zip(rows, sft, strict=True):  # the gold letter is the gold reply's
        assert rec["messages"][-1]["content"].endswith(f"{row['answer_tag']} {row['letter']}")
        assert (work / "rl-prompts" / row["images"][0]).is_file()


def test_rl_model_loads_and_differs_from_nano_where_trained(demo):
    import sealion_vl

    work, _ = demo
    model = work / "rl-model"
    assert (model / "DONE").is_file()
    report = json.loads((model / "rl_report.json").read_text())
    assert report["steps"] == SMOKE["grpo"]["max_steps"]
    reply = sealion_vl.load(str(model), device="cpu").chat("Hi", max_new_tokens=4)
    assert isinstance(reply.text, str)
    nano = load_file(f"{resolve('nano')[0]}/model.safetensors")
    rl = load_file(model / "model.safetensors")
    assert set(rl) == set(nano)
    changed = {k for k in nano if not rl[k].float().equal(nano[k].float())}
    metrics = [json.loads(x) for x in (model / "metrics.jsonl").read_text().splitlines() if x]
    learned = any(m.get("frac_reward_zero_std", 1.0) < 1.0 for m in metrics)
    assert learned  # some group's samples disagreed (at temperature 1.5 on 8 prompts)
    assert any("language_model" in k for k in changed)
    assert not any("vision_tower" in k for k in changed)  # freeze.vision


def test_rerun_reuses_the_trained_model(demo):
    work, _ = demo
    weights = work / "rl-model" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    first = json.loads((work / "rl.json").read_text())
    run_smoke_demo("rl", work)
    assert weights.stat().st_mtime_ns == before
    again = json.loads((work / "rl.json").read_text())
    assert again["heldout"] == first["heldout"] and again["check"] == first["check"]


def test_sampled_reward_is_the_mean_over_sampled_runs(demo):
    work, _ = demo
    result = json.loads((work / "rl.json").read_text())
    for split in ("heldout", "validation"):
        for arm, tag in (("nano", "nano"), ("nano + GRPO", "rl")):
            got = result["sampled"][split][arm]
            folder = work / "eval" / f"{split}-{tag}-mcq-sampled"
            rows = _items(folder)
            assert len({r["run"] for r in rows}) == got["runs"] == 2
            assert len(rows) == 2 * 8 * SMOKE["limit"] == got["reward"]["n"]
            mean = 100 * sum(r["score"] for r in rows) / len(rows)
            assert got["reward"]["all"] == pytest.approx(mean, abs=0.01)
            config = json.loads((folder / "config.json").read_text())
            assert config["generation"]["temperature"] == SMOKE["grpo"]["temperature"]
            assert f"--temperature {SMOKE['grpo']['temperature']}" in got["command"]
    held = result["sampled"]["heldout"]
    gain = held["nano + GRPO"]["reward"]["all"] - held["nano"]["reward"]["all"]
    assert result["gain_sampled_reward"] == pytest.approx(gain, abs=0.01)
    # paired over items (each item's mean over the runs): the same gain, with an interval
    pair = result["sampled_paired"]
    assert pair["items"] == 8 * SMOKE["limit"]
    assert pair["mean_diff"] == pytest.approx(gain, abs=0.02)
    assert pair["ci95"][0] <= pair["mean_diff"] <= pair["ci95"][1]
    assert "mean reward, sampled" in result["table"] and result["finding"]
