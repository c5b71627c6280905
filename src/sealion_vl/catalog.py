"""The checkpoints sealion-vl knows by name.

The table itself lives in ``catalog.yaml`` beside this file (data, not logic); this module
validates it with pydantic and answers look-ups by short name or Hugging Face id.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

Family = Literal["gemma3", "qwen3_vl", "gemma4"]
Modality = Literal["text", "image", "video", "audio"]


class CatalogEntry(BaseModel):
    """One checkpoint: what it is, what it can take and where its processor comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Hugging Face repo id")
    short: str = Field(description="short name accepted by load() and --model")
    family: Family
    architecture: str
    params_b: float = Field(gt=0, description="parameters in billions (effective for E2B)")
    params_total_b: float | None = None
    context: int = Field(gt=0, description="context length in tokens")
    languages: list[str]
    license: str
    modalities: list[Modality]
    tool_format: str
    reasoning: bool
    processor_from: str
    base: str | None = None
    sealion: bool
    local_path: str | None = Field(
        default=None,
        description="package-relative folder for checkpoints shipped inside sealion_vl",
    )


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[CatalogEntry]


@lru_cache(maxsize=1)
def catalog() -> tuple[CatalogEntry, ...]:
    """All catalog entries, validated; raises pydantic.ValidationError on a bad table."""
    text = resources.files("sealion_vl").joinpath("catalog.yaml").read_text(encoding="utf-8")
    entries = Catalog.model_validate(yaml.safe_load(text)).models
    seen: set[str] = set()
    for e in entries:
        for key in (e.id.lower(), e.short.lower()):
            if key in seen:
                raise ValueError(f"catalog.yaml: duplicate name {key!r}")
            seen.add(key)
    return tuple(entries)


def find(name: str) -> CatalogEntry | None:
    """The entry whose short name or HF id equals ``name`` (case-insensitive), else None."""
    key = name.strip().lower()
    for e in catalog():
        if key in (e.id.lower(), e.short.lower()):
            return e
    return None


def list_models(sealion_only: bool = False) -> list[CatalogEntry]:
    """The catalog as a list; with ``sealion_only`` just AI Singapore's releases."""
    return [e for e in catalog() if e.sealion or not sealion_only]
