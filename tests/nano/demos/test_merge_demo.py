"""``sealion-vl nano demo merge --smoke``: the whole merge demonstration on a smoke build,
through the CLI; its saved numbers are the eval runner's, its merges are the methods'."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from sealion_vl.cli import app
from sealion_vl.nano.demos.merge import CANDIDATES, choose
from tests.fixtures.demos import run_smoke_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("merge-demo")
    return work, run_smoke_demo("merge", work)


def _total(folder, lang="en") -> float:
    return json.loads((folder / "results.json").read_text())[lang]["total"]


def test_saved_numbers_are_the_eval_runs(demo):
    work, output = demo
    result = json.loads((work / "merge.json").read_text())
    assert result["chosen"] in CANDIDATES and result["table"] in output
    arms = result["heldout"]
    assert len(arms) == 3 and list(arms)[2] == f"merge {result['chosen']}"
    for arm, tag in zip(arms, ("general", "nano", result["chosen"]), strict=True):
        english = work / "eval" / f"heldout-{tag}-english"
        sea = work / "eval" / f"heldout-{tag}-sea"
        assert arms[arm]["english"] == pytest.approx(_total(english), abs=0.01)
        langs = json.loads((sea / "results.json").read_text())
        want = [langs[x]["total"] for x in langs if x not in ("en", "total")]
        assert len(want) == 7 and arms[arm]["sea"] == pytest.approx(sum(want) / 7, abs=0.01)
        assert arms[arm]["commands"][0].startswith("sealion-vl eval run --model ")
        assert "--tasks nano_general" in arms[arm]["commands"][0]
    # chosen on the validation copies (another seed), never on the reported items
    val = json.loads((work / "data-seed1/sea/heldout/synth.json").read_text())
    held = json.loads((work / "data/sea/heldout/synth.json").read_text())
    assert (val["seed"], held["seed"]) == (1, 0)
    assert result["chosen"] == choose(result["validation"]["general"], {
        k: v for k, v in result["validation"].items() if k != "general"})  # fmt: skip


def test_merged_tensors_are_the_methods(demo):
    work, _ = demo
    stages = work / "build" / "work"
    general = load_file(stages / "nano-general" / "model.safetensors")
    sea = load_file(stages / "nano-sft" / "model.safetensors")
    merged = {}
    for shard in (work / "merges" / "linear-0.8").glob("*.safetensors"):
        merged.update(load_file(shard))
    assert set(merged) == set(general)
    for name, g in general.items():
        assert merged[name].float().allclose(0.8 * sea[name] + 0.2 * g, atol=1e-6), name
    ties = {}
    for shard in (work / "merges" / "ties-0.5").glob("*.safetensors"):
        ties.update(load_file(shard))
    # TIES at density 0.5 with one model: the base plus the larger half of the task vector
    name = next(n for n, g in general.items() if g.numel() >= 64 and g.dim() == 2)
    delta = sea[name] - general[name]
    kept = ties[name] - general[name]
    assert (kept != 0).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert kept[kept != 0].allclose(delta[kept != 0], atol=1e-6)
    assert delta[kept != 0].abs().min() >= delta[kept == 0].abs().max()


def test_rerun_reuses_every_step(demo):
    work, _ = demo
    before = {p: p.stat().st_mtime_ns for p in (work / "merges").rglob("*.safetensors")}
    first = json.loads((work / "merge.json").read_text())
    run_smoke_demo("merge", work)
    assert {p: p.stat().st_mtime_ns for p in before} == before
    again = json.loads((work / "merge.json").read_text())
    assert again["heldout"] == first["heldout"] and again["chosen"] == first["chosen"]


def test_choose_prefers_sea_within_the_english_slack():
    general = {"english": 80.0, "sea": 5.0}
    scores = {"a": {"english": 79.0, "sea": 60.0}, "b": {"english": 70.0, "sea": 90.0},
              "c": {"english": 78.0, "sea": 70.0}}  # fmt: skip
    assert choose(general, scores) == "c"  # b is best on SEA but loses 10 English points
    assert choose(general, {"b": scores["b"], "d": {"english": 60.0, "sea": 95.0}}) == "b"


def test_unknown_demo_is_refused():
    r = CliRunner().invoke(app, ["nano", "demo", "teleport", "/tmp/x"])
    assert r.exit_code == 2 and "unknown demo 'teleport'" in r.output
