"""Distillation recipes: the YAML keys, their checks and help, in one pydantic model.

The training settings are :class:`~sealion_vl.train.recipe.TrainingRun`'s, the base of the
SFT recipe too (data, freeze, optim, batch, steps, precision, checkpointing), so a
distillation run streams, packs, schedules and resumes as ``sealion-vl train`` does;
:meth:`DistillRecipe.train_recipe` hands them to that code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from sealion_vl.train.recipe import Recipe, TrainingRun, dump_recipe, read_recipe


class DistillRecipe(TrainingRun):
    """A teacher -> student logit distillation run (images and text).

    The training keys (``output_dir``, ``data``, ``freeze``, ``optim``, ``batch``, steps,
    precision, checkpointing) are :class:`TrainingRun`'s, shared with training recipes;
    unknown keys are errors there too (a typo must not silently train with a default).
    """

    teacher: str = Field(description="teacher checkpoint: folder, catalog short name or HF id")
    student: str = Field(description="student checkpoint to train (same tokenizer as the teacher)")
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

    def cache_path(self) -> Path:
        """The teacher cache file: ``cache``, else ``OUTPUT_DIR/teacher-topk.bin``."""
        return Path(self.cache) if self.cache else Path(self.output_dir) / "teacher-topk.bin"

    def train_recipe(self) -> Recipe:
        """The student's training settings as an SFT :class:`Recipe` (stream, packing, steps)."""
        shared = {k: getattr(self, k) for k in TrainingRun.model_fields}
        return Recipe(stage="sft", model=self.student, **shared)


def load_distill_recipe(path: str | Path, overrides: dict | None = None) -> DistillRecipe:
    """Read and validate a distillation recipe; ``overrides`` are dotted keys (``optim.lr``).

    Relative data paths are relative to the recipe file, as in training recipes.
    """
    return read_recipe(DistillRecipe, path, overrides)


def dump_distill_recipe(recipe: DistillRecipe) -> str:
    """The resolved distillation recipe as YAML (``distill.resolved.yaml``)."""
    return dump_recipe(recipe)
