"""Training recipes: one pydantic model is the single source of truth for YAML keys and help.

A recipe file is validated before anything loads; unknown keys are errors (a typo must not
silently train with a default). The resolved recipe is saved beside every output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


R = TypeVar("R", bound="TrainingRun")


class DataConfig(_Strict):
    train: str = Field(description="JSONL file/folder, WebDataset shards, or a datasets folder")
    image_root: str | None = Field(None, description="folder image paths are relative to")
    kind: Literal["auto", "caption", "conversation"] = "auto"
    caption_prompt: str = Field("", description="user text shown with the image in cpt")
    max_image_pixels: int | None = Field(
        None, gt=0, description="downscale larger images to this many pixels (memory cap)"
    )
    shuffle_buffer: int = Field(1000, ge=1, description="seeded shuffle window (streaming)")
    cache_mb: int = Field(
        1024,
        ge=0,
        description="keep encoded samples in memory, up to this many MB per process, so "
        "later epochs skip image decoding and the processor (0: off; never changes results)",
    )


class FreezeConfig(_Strict):
    vision: bool = Field(True, description="freeze the vision (and audio) tower")
    projector: bool = Field(False, description="freeze the multimodal projector")
    language: bool = Field(False, description="freeze the language model (and lm_head)")


class LoraConfig(_Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
        description="linear layer names inside the language model that get adapters",
    )


class OptimConfig(_Strict):
    lr: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float | None = Field(1.0, gt=0)
    lr_scale: dict[Literal["vision", "projector", "language"], float] = Field(
        default_factory=dict,
        description="multiply lr for a module group (e.g. a vision tower trained from scratch "
        "learns through the language model's gradients and needs a larger step); default 1",
    )

    @field_validator("lr_scale")
    @classmethod
    def _positive_scales(cls, v: dict) -> dict:
        bad = {k: x for k, x in v.items() if not x > 0}
        if bad:
            raise ValueError(f"lr_scale factors must be > 0, got {bad}")
        return v


class BatchConfig(_Strict):
    micro_batch_size: int = Field(1, ge=1, description="rows per forward pass")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_seq_len: int = Field(2048, ge=16, description="tokens per row; longer samples skipped")
    packing: bool = Field(True, description="pack several samples per row, attention isolated")


class TrainingRun(_Strict):
    """The settings every training run shares: ``train`` (:class:`Recipe`) and ``distill``.

    Why a base class: both jobs stream, pack, schedule, checkpoint and resume through the
    same code (:mod:`sealion_vl.train.optim`, :mod:`sealion_vl.train.checkpoint`), so the
    keys that drive that code are declared once and mean the same in both recipes.
    """

    output_dir: str
    data: DataConfig
    freeze: FreezeConfig = FreezeConfig()
    optim: OptimConfig = OptimConfig()
    batch: BatchConfig = BatchConfig()
    max_steps: int | None = Field(None, ge=1, description="optimizer steps (or use epochs)")
    epochs: int | None = Field(None, ge=1)
    precision: Literal["fp32", "bf16"] = "fp32"
    attn_implementation: (
        Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"] | None
    ) = Field(
        None,
        description="attention kernel while training (default: the model's own, sdpa); on a "
        "CPU, eager is faster for small heads over packed rows (the mask is dense either way)",
    )
    seed: int = 0
    save_every: int | None = Field(None, ge=1, description="checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(1, ge=1)
    dummy_image_for_text_batches: bool = Field(
        True, description="give text-only batches a masked dummy image (ZeRO-3/FSDP need it)"
    )

    @model_validator(mode="after")
    def _length(self) -> TrainingRun:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("set exactly one of max_steps or epochs")
        return self


class Recipe(TrainingRun):
    """A complete training run (stage cpt or sft) for a Gemma 3 / Qwen3-VL / Gemma 4 model."""

    stage: Literal["cpt", "sft"]
    model: str = Field(description="checkpoint folder, catalog short name or HF id")
    lora: LoraConfig | None = None


def read_recipe(cls: type[R], path: str | Path, overrides: dict | None = None) -> R:
    """Read a recipe YAML into ``cls``; ``overrides`` are dotted keys (``optim.lr``).

    Relative data paths that exist beside the recipe file are made relative to it, so a
    recipe runs from any working directory.
    """
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    base = Path(path).parent
    recipe = cls.model_validate(raw)
    for attr in ("train", "image_root"):
        val = getattr(recipe.data, attr)
        if val and not Path(val).is_absolute() and (base / val).exists():
            setattr(recipe.data, attr, str(base / val))
    return recipe


def load_recipe(path: str | Path, overrides: dict | None = None) -> Recipe:
    """Read and validate a recipe YAML; ``overrides`` are dotted keys (``optim.lr``)."""
    return read_recipe(Recipe, path, overrides)


def dump_recipe(recipe: TrainingRun) -> str:
    """The resolved recipe as YAML (saved beside every output).

    The recipe's own keys (``stage``, ``model``; ``teacher``, ``student``) come first, where a
    reader looks for what was trained, then the shared :class:`TrainingRun` keys.
    """
    raw = recipe.model_dump(mode="json")
    own = [k for k in raw if k not in TrainingRun.model_fields]
    raw = {k: raw[k] for k in own + [k for k in raw if k not in own]}
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
