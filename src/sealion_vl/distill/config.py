"""Distillation recipes: the YAML keys, their checks and help, in one pydantic model.

The training settings are the SFT recipe's own pieces (data, freeze, optim, batch, steps,
precision, checkpointing), so a distillation run streams, packs, schedules and resumes as
``sealion-vl train`` does; :meth:`DistillRecipe.train_recipe` hands them to that code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sealion_vl.train.recipe import BatchConfig, DataConfig, FreezeConfig, OptimConfig, Recipe


class DistillRecipe(BaseModel):
    """A teacher -> student logit distillation run (images and text)."""

    model_config = ConfigDict(extra="forbid")  # a typo must not silently train with a default

    teacher: str = Field(description="teacher checkpoint: folder, catalog short name or HF id")
    student: str = Field(description="student checkpoint to train (same tokenizer as the teacher)")
    output_dir: str
    data: DataConfig
    k: int = Field(64, ge=1, description="teacher tokens kept per position in the cache")
    loss: Literal["forward_kl", "reverse_kl", "jsd"] = Field(
        "forward_kl", description="divergence between teacher and student distributions"
    )
    temperature: float = Field(1.0, gt=0, description="softmax temperature for both models")
    alpha: float = Field(
        0.5, ge=0, le=1, description="weight of the distillation loss; 1 - alpha goes to labels"
    )
    online: bool = Field(
        False,
        description="run the teacher beside the student (full distributions, no cache); "
        "needs both to take the same inputs (same processor settings)",
    )
    cache: str | None = Field(
        None, description="teacher cache file (default: OUTPUT_DIR/teacher-topk.bin)"
    )
    teacher_batch_size: int = Field(8, ge=1, description="samples per teacher forward pass")
    teacher_dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="teacher weights' dtype"
    )
    freeze: FreezeConfig = FreezeConfig()
    optim: OptimConfig = OptimConfig()
    batch: BatchConfig = BatchConfig()
    max_steps: int | None = Field(None, ge=1, description="optimizer steps (or use epochs)")
    epochs: int | None = Field(None, ge=1)
    precision: Literal["fp32", "bf16"] = "fp32"
    attn_implementation: (
        Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"] | None
    ) = Field(None, description="student attention kernel while training")
    seed: int = 0
    save_every: int | None = Field(None, ge=1, description="checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(1, ge=1)
    dummy_image_for_text_batches: bool = Field(
        True, description="give text-only batches a masked dummy image (ZeRO-3/FSDP need it)"
    )

    @model_validator(mode="after")
    def _length(self) -> DistillRecipe:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("set exactly one of max_steps or epochs")
        return self

    def cache_path(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.output_dir) / "teacher-topk.bin"

    def train_recipe(self) -> Recipe:
        """The student's training settings as an SFT :class:`Recipe` (stream, packing, steps)."""
        shared = {k: getattr(self, k) for k in Recipe.model_fields if k in type(self).model_fields}
        return Recipe(stage="sft", model=self.student, **shared)


def load_distill_recipe(path: str | Path, overrides: dict | None = None) -> DistillRecipe:
    """Read and validate a distillation recipe; ``overrides`` are dotted keys (``optim.lr``).

    Relative data paths are relative to the recipe file, as in training recipes.
    """
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    recipe = DistillRecipe.model_validate(raw)
    base = Path(path).parent
    for attr in ("train", "image_root"):
        val = getattr(recipe.data, attr)
        if val and not Path(val).is_absolute() and (base / val).exists():
            setattr(recipe.data, attr, str(base / val))
    return recipe


def dump_distill_recipe(recipe: DistillRecipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
