"""Every shipped recipe and launch config validates; bad recipes name the problem."""

from importlib import resources
from pathlib import Path

import pytest
from pydantic import ValidationError

from sealion_vl.train.recipe import load_recipe

ROOT = Path(str(resources.files("sealion_vl"))) / "train"
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
LAUNCH = sorted((ROOT / "launch").glob("*.yaml"))


def test_recipes_and_launch_configs_are_shipped():
    assert len(RECIPES) >= 4 and {p.stem for p in LAUNCH} == {"ddp", "fsdp", "zero3"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_validates_and_names_its_launch_command(path):
    recipe = load_recipe(path)
    assert recipe.stage in ("cpt", "sft")
    assert "launch:" in path.read_text().split("\n", 3)[1] + path.read_text()[:400]


@pytest.mark.parametrize("path", LAUNCH, ids=lambda p: p.stem)
def test_launch_configs_parse_with_accelerate(path):
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(path))
    assert str(cfg.distributed_type).split(".")[-1] in ("MULTI_GPU", "FSDP", "DEEPSPEED")


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"optim": {"lrr": 1}}, "lrr"),
        ({"max_steps": 5, "epochs": 1}, "exactly one"),
        ({"stage": "pretrain"}, "stage"),
        ({"batch": {"micro_batch_size": 0}}, "micro_batch_size"),
        ({"attn_implementation": "fast"}, "attn_implementation"),
        ({"data": {"train": "d", "cache_mb": -1}}, "cache_mb"),
    ],
)
def test_bad_recipe_is_refused(tmp_path, patch, words):
    import yaml

    raw = {"stage": "sft", "model": "x", "output_dir": "o", "data": {"train": "d"}, "max_steps": 1}
    raw.update(patch)
    if "epochs" in patch and "max_steps" not in patch:
        raw.pop("max_steps")
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationError, match=words):
        load_recipe(p)


def test_overrides_use_dotted_keys(tmp_path):
    import yaml

    p = tmp_path / "r.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "stage": "sft",
                "model": "x",
                "output_dir": "o",
                "data": {"train": "d"},
                "max_steps": 1,
            }
        )
    )
    assert load_recipe(p, {"optim.lr": 0.5, "batch.packing": False}).optim.lr == 0.5
