"""RL recipes: one pydantic model gives the YAML keys, their checks and the help text.

Like the training recipes, a file is validated before anything loads and unknown keys are
errors (a typo must not silently run GRPO with a default). The resolved recipe is saved
beside the checkpoint the run writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sealion_vl.errors import SealionError
from sealion_vl.rl.registry import REWARDS
from sealion_vl.train.recipe import FreezeConfig


class RecipeError(SealionError, ValueError):
    """An RL recipe file is missing, not YAML, or does not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RLData(_Strict):
    """JSONL rows: a prompt, its images, and the columns the rewards read."""

    train: str = Field(description="JSONL file (one prompt per line)")
    image_root: str | None = Field(
        None, description="folder image paths are relative to (default: the JSONL's folder)"
    )
    prompt_field: str = Field("prompt", description="row key of the user text")
    images_field: str = Field("images", description="row key of the image path(s)")
    system: str | None = Field(None, description="system prompt put before every prompt")
    max_rows: int | None = Field(None, ge=1, description="use only the first N rows")


class RewardSpec(_Strict):
    """One reward: a name from ``sealion_vl.rl.rewards.REWARDS``, its weight, fixed params."""

    name: str = Field(description=f"one of {sorted(REWARDS)}, or 'module:function'")
    weight: float = Field(1.0, description="its weight in the summed reward")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="fixed keyword arguments (e.g. answer_tag, labels); dataset columns of "
        "the same name override them row by row",
    )

    @model_validator(mode="after")
    def _known(self) -> RewardSpec:
        if self.name not in REWARDS and ":" not in self.name:
            raise ValueError(
                f"unknown reward {self.name!r}; known: {sorted(REWARDS)}, or an import path "
                "'module:function'"
            )
        return self


class GRPOSettings(_Strict):
    """The GRPO knobs handed to TRL's ``GRPOConfig``."""

    num_generations: int = Field(4, ge=2, description="completions sampled per prompt")
    prompts_per_step: int = Field(2, ge=1, description="prompts per optimizer step")
    max_completion_length: int = Field(64, ge=1, description="new tokens per completion")
    learning_rate: float = Field(1e-6, gt=0)
    max_steps: int = Field(description="optimizer steps", ge=1)
    beta: float = Field(0.0, ge=0, description="KL penalty to the starting model (0: none)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of rollouts")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = Field(
        "dapo", description="TRL's loss normalisation (dapo: TRL's default)"
    )
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="divide advantages by the reward std of the group, batch, or not"
    )
    max_grad_norm: float = Field(1.0, gt=0)
    warmup_steps: int = Field(0, ge=0)
    save_every: int | None = Field(
        None, ge=1, description="keep a resumable trainer checkpoint every N steps"
    )
    keep_checkpoints: int = Field(2, ge=1)


class RLRecipe(_Strict):
    """A complete GRPO run on image+text prompts for a Gemma 3 / Qwen3-VL / Gemma 4 model."""

    model: str = Field(description="checkpoint folder, catalog short name or HF id")
    output_dir: str
    data: RLData
    rewards: list[RewardSpec] = Field(min_length=1)
    grpo: GRPOSettings
    freeze: FreezeConfig = FreezeConfig()
    precision: Literal["fp32", "bf16"] = "fp32"
    seed: int = 0


def load_rl_recipe(path: str | Path, overrides: dict | None = None) -> RLRecipe:
    """Read and validate an RL recipe YAML; ``overrides`` are dotted keys (``grpo.max_steps``).

    Relative data paths are relative to the recipe file when they exist there.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"no RL recipe at {str(path)!r}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: an RL recipe is a YAML mapping, got {type(raw).__name__}")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    try:
        recipe = RLRecipe.model_validate(raw)
    except ValidationError as e:
        raise RecipeError(f"{path}: invalid RL recipe:\n{e}") from None
    for attr in ("train", "image_root"):
        val = getattr(recipe.data, attr)
        if val and not Path(val).is_absolute() and (path.parent / val).exists():
            setattr(recipe.data, attr, str(path.parent / val))
    return recipe


def dump_rl_recipe(recipe: RLRecipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
