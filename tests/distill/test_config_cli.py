"""Shipped recipes validate; bad keys are named; the command's help and errors."""

from importlib import resources
from pathlib import Path

import pytest
import typer
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from sealion_vl.distill import load_distill_recipe
from sealion_vl.distill.cli import distill_command

RECIPES = sorted(Path(str(resources.files("sealion_vl.distill") / "recipes")).glob("*.yaml"))


def _app():
    app = typer.Typer()
    app.command("distill")(distill_command)
    app.command("other")(lambda: None)  # two commands: typer keeps the subcommand name
    return app


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    r = load_distill_recipe(path)
    assert "launch:" in path.read_text()
    t = r.train_recipe()  # the training settings are a valid SFT recipe
    assert t.model == r.student and t.batch == r.batch and t.optim == r.optim


def test_unknown_and_bad_keys_are_errors(tmp_path):
    base = {"teacher": "a", "student": "b", "output_dir": "o", "data": {"train": "x"},
            "max_steps": 1}  # fmt: skip
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump({**base, "temprature": 2.0}))
    with pytest.raises(ValidationError, match="temprature"):
        load_distill_recipe(p)
    p.write_text(yaml.safe_dump({**base, "loss": "kl"}))
    with pytest.raises(ValidationError, match="forward_kl"):
        load_distill_recipe(p)
    p.write_text(yaml.safe_dump({**base, "alpha": 1.5}))
    with pytest.raises(ValidationError, match="alpha"):
        load_distill_recipe(p)
    p.write_text(yaml.safe_dump(base))
    r = load_distill_recipe(p, {"k": 8, "optim.lr": 1e-4})
    assert r.k == 8 and r.optim.lr == 1e-4 and str(r.cache_path()) == "o/teacher-topk.bin"


def test_cli_help_and_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(_app(), ["distill", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for flag in ("--resume", "--set", "--no-progress", "config"):
        assert flag in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("teacher: a\nstudent: b\n")
    res = runner.invoke(_app(), ["distill", str(bad)])
    assert res.exit_code == 2 and "output_dir" in res.output
    res = runner.invoke(_app(), ["distill", str(bad), "--set", "novalue"])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output


def test_cli_runs_a_recipe_and_reports_bytes_per_token(tmp_path, teacher, student, sft_data):
    p = tmp_path / "r.yaml"
    fields = {"teacher": str(teacher), "student": str(student), "output_dir": str(tmp_path / "o"),
              "data": {"train": str(sft_data)}, "k": 8, "max_steps": 1,
              "batch": {"micro_batch_size": 2, "max_seq_len": 256}}  # fmt: skip
    p.write_text(yaml.safe_dump(fields))
    res = CliRunner().invoke(_app(), ["distill", str(p), "--no-progress", "--set", "k=4"])
    assert res.exit_code == 0, res.output
    assert "k = 4, 20 bytes per token" in res.output
    assert (tmp_path / "o" / "DONE").is_file()
