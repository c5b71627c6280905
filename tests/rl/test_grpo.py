"""A tiny GRPO run through TRL on image prompts: it trains, saves a loadable checkpoint, resumes.

Tiny random Gemma 3 (the family of nano, whose ``token_type_ids`` TRL must carry): a random
model's replies never hold the right number, so beside the built-in ``numeric`` reward the
run uses ``spread`` (imported by its path, as recipes may), which differs between two random
replies and so gives GRPO a non-zero advantage to learn from.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from sealion_vl.rl.config import RecipeError, RLRecipe, load_rl_recipe
from sealion_vl.rl.rewards import completion_text
from sealion_vl.rl.run import RLDataError, build_dataset, rl


def spread(prompts, completions, **columns):
    """A reward that differs between random replies: their distinct characters, scaled."""
    return [len(set(completion_text(c))) / 10 for c in completions]


def _prompts(folder, n=4):
    colours = ["red", "blue", "green", "yellow"]
    rows = []
    for i in range(n):
        Image.new("RGB", (32, 32), colours[i % 4]).save(folder / f"{i}.png")
        rows.append({"prompt": "How many shapes?", "images": [f"{i}.png"], "answer": i + 1})
    path = folder / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _recipe(model, data, out, **grpo) -> RLRecipe:
    return RLRecipe.model_validate(
        {
            "model": str(model),
            "output_dir": str(out),
            "data": {"train": str(data)},
            "rewards": [{"name": "numeric"}, {"name": "tests.rl.test_grpo:spread", "weight": 2}],
            "grpo": {
                "num_generations": 2,
                "prompts_per_step": 2,
                "max_completion_length": 6,
                "learning_rate": 1e-3,
                "max_steps": 2,
                "save_every": 1,
                **grpo,
            },
            "seed": 0,
        }
    )


def test_grpo_trains_saves_loadable_checkpoint_and_resumes(checkpoint, tmp_path):
    import sealion_vl

    model = checkpoint("gemma3")
    data = _prompts(tmp_path)
    out = tmp_path / "run"
    assert rl(_recipe(model, data, out), progress=False) == out
    before, after = load_file(model / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # (names as saved on disk: transformers' serialised Gemma 3 layout)
    vision = [k for k in before if k.startswith("vision_tower.")]
    assert vision and not changed & set(vision)  # freeze.vision (the default) held
    assert any(k.startswith("language_model.") for k in changed)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    # TRL called both rewards, by name, and weighted their sum as the recipe says
    for r in rows:
        assert r["rewards/numeric/mean"] == 0.0
        assert r["reward"] == pytest.approx(2 * r["rewards/tests.rl.test_grpo:spread/mean"])
    for name in ("chat_template.jinja", "processor_config.json", "recipe.resolved.yaml", "DONE"):
        assert (out / name).is_file(), name
    assert yaml.safe_load((out / "recipe.resolved.yaml").read_text())["grpo"]["max_steps"] == 2
    chat = sealion_vl.load(out, device="cpu")
    reply = chat.chat(
        [{"role": "user", "content": [{"type": "image", "path": str(tmp_path / "0.png")},
                                      {"type": "text", "text": "How many?"}]}],
        max_new_tokens=3,
        temperature=0,
    )  # fmt: skip
    assert isinstance(reply.text, str)

    # resume: one step more from the step-2 trainer checkpoint
    out2 = rl(_recipe(model, data, out, max_steps=3), resume=True, progress=False)
    report = json.loads((out2 / "rl_report.json").read_text())
    assert report["steps"] == 3 and report["resumed_from"].endswith("checkpoint-2")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    resumed = load_file(out / "model.safetensors")
    assert any(not torch.equal(resumed[k], after[k]) for k in after)  # step 3 trained


def test_data_errors_name_the_row(tmp_path):
    data = _prompts(tmp_path)
    (tmp_path / "2.png").unlink()
    with pytest.raises(RLDataError, match=r"prompts.jsonl:3: image '2.png' not found"):
        build_dataset(_recipe("unused", data, tmp_path / "o"))
    data.write_text('{"images": ["0.png"]}\n')
    with pytest.raises(RLDataError, match=r":1: no text in 'prompt'"):
        build_dataset(_recipe("unused", data, tmp_path / "o"))


def test_dataset_rows_as_trl_reads_them(tmp_path):
    data = _prompts(tmp_path, n=2)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    rows[0]["kwargs"], rows[1]["kwargs"] = {"num_words": 3}, {"relation": "at least"}
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = build_dataset(_recipe("unused", data, tmp_path / "o"))
    assert ds[0]["prompt"] == [{"role": "user", "content": "How many shapes?"}]
    assert ds[1]["images"][0].size == (32, 32) and ds[1]["answer"] == 2
    assert json.loads(ds[0]["kwargs"]) == {"num_words": 3}  # mixed dicts kept as JSON


def test_recipes_validate(tmp_path):
    from importlib import resources

    folder = resources.files("sealion_vl.rl") / "recipes"
    shipped = [p for p in folder.iterdir() if p.name.endswith(".yaml")]
    assert shipped
    for p in shipped:
        r = load_rl_recipe(str(p))
        assert r.rewards and r.grpo.max_steps > 0
    bad = tmp_path / "bad.yaml"
    base = yaml.safe_load(shipped[0].read_text())
    bad.write_text(yaml.safe_dump({**base, "grpo": {**base["grpo"], "num_generation": 4}}))
    with pytest.raises(RecipeError, match="num_generation"):
        load_rl_recipe(bad)
    bad.write_text(yaml.safe_dump({**base, "rewards": [{"name": "accuracy"}]}))
    with pytest.raises(RecipeError, match="unknown reward 'accuracy'"):
        load_rl_recipe(bad)
    r = load_rl_recipe(shipped[0], {"grpo.max_steps": 3})
    assert r.grpo.max_steps == 3


def test_cli_reports_a_bad_recipe_clearly(tmp_path):
    import typer
    from typer.testing import CliRunner

    from sealion_vl.rl.cli import rl_command

    app = typer.Typer()
    app.command("rl")(rl_command)
    app.command("other")(lambda: None)  # two commands: typer keeps `rl` as a subcommand
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: nano\noutput_dir: x\n")
    res = CliRunner().invoke(app, ["rl", str(recipe), "--set", "grpo.max_steps=2"])
    assert res.exit_code == 2
    assert "invalid RL recipe" in res.output and "data" in res.output
    res = CliRunner().invoke(app, ["rl", str(recipe), "--set", "oops"])
    assert res.exit_code == 2 and "--set takes KEY=VALUE" in res.output
