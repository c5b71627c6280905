"""The merge config: mergekit's YAML, read unchanged, plus a ``modules:`` section.

mergekit keys read here: ``merge_method``, ``base_model``, ``models: [{model, parameters}]``,
a single ``slices:`` entry whose sources all cover the same layer range (the form mergekit's
SLERP examples use: it means the same as ``models:``), top-level ``parameters``, ``dtype``,
``out_dtype``, ``tokenizer_source`` (``base`` or one of the inputs) and ``chat_template``
(a Jinja string). Parameter values may be scalars, gradients (lists interpolated over the
layer index) or ``[{filter, value}]`` lists, with mergekit's meaning.

Our addition, ``modules:``, gives the vision tower, projector and language model each their
own choice::

    modules:
      vision: {keep: google/gemma-3-4b-it}          # copy one parent unchanged
      projector: {merge_method: linear, parameters: {weight: 0.5}}
      language: {merge_method: ties, parameters: {density: 0.5, weight: 0.5}}

A module's own ``parameters`` (and its optional ``models:`` list of per-model parameters)
win over the top-level ones. mergekit's own ``modules:`` (a per-architecture-module list of
models or slices) has a different shape and is refused with a message saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from sealion_vl.errors import SealionError
from sealion_vl.merge.methods import KNOWN_PARAMETERS, METHODS

MODULES = ("vision", "projector", "language")
DTYPES = ("float32", "float16", "bfloat16", "float64")
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16"}


class MergeError(SealionError, ValueError):
    """A merge cannot be done as asked: bad config, mismatched or unaccounted tensors."""


def _check_parameters(params: dict[str, Any] | None, where: str) -> dict[str, Any] | None:
    # mergekit ignores names no method reads, so a typo ("desnity") silently does nothing
    for name in params or {}:
        if name not in KNOWN_PARAMETERS:
            raise ValueError(
                f"{where}: unknown merge parameter {name!r}; "
                f"known: {', '.join(sorted(KNOWN_PARAMETERS))}"
            )
    return params


def _check_method(name: str) -> str:
    if name not in METHODS:
        raise ValueError(
            f"merge_method {name!r} is not supported; sealion-vl merges with: {', '.join(METHODS)}"
        )
    return name


class InputModel(BaseModel):
    """One ``models:`` entry: a checkpoint (folder or hub id) and its own parameters."""

    model_config = ConfigDict(extra="forbid")
    model: str
    parameters: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _params(self):
        _check_parameters(self.parameters, f"models[{self.model}].parameters")
        return self


class ModuleChoice(BaseModel):
    """How one module group (vision / projector / language) is made: kept or merged."""

    model_config = ConfigDict(extra="forbid")
    keep: str | None = None
    merge_method: str | None = None
    parameters: dict[str, Any] | None = None
    models: list[InputModel] | None = None

    @model_validator(mode="after")
    def _one_way(self):
        if self.keep is not None and (self.merge_method or self.parameters or self.models):
            raise ValueError("a module either keeps one model or merges, not both")
        if self.merge_method is not None:
            _check_method(self.merge_method)
        _check_parameters(self.parameters, "module parameters")
        return self


class _SliceSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    layer_range: tuple[int, int]
    parameters: dict[str, Any] | None = None


class _Slice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[_SliceSource]
    base_model: str | None = None
    parameters: dict[str, Any] | None = None
    residual_weight: float | None = None


class MergeConfig(BaseModel):
    """A validated merge config (see the module docstring for the keys)."""

    model_config = ConfigDict(extra="forbid")
    merge_method: str
    base_model: str | None = None
    models: list[InputModel] | None = None
    slices: list[_Slice] | None = None
    parameters: dict[str, Any] | None = None
    dtype: str | None = None
    out_dtype: str | None = None
    tokenizer_source: str | None = None
    chat_template: str | None = None
    modules: dict[str, ModuleChoice] | None = None
    # ours: DARE's random drop is seeded per tensor from this, so a merge is reproducible
    seed: int = 0
    # set when the config came as one mergekit slice: its layer range, checked at merge time
    layer_range: tuple[int, int] | None = None

    @field_validator("merge_method")
    @classmethod
    def _method(cls, v: str) -> str:
        return _check_method(v)

    @field_validator("dtype", "out_dtype")
    @classmethod
    def _dtype(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = _DTYPE_ALIASES.get(v, v)
        if v not in DTYPES:
            raise ValueError(f"dtype {v!r} is not one of {', '.join(DTYPES)}")
        return v

    @field_validator("parameters")
    @classmethod
    def _params(cls, v):
        return _check_parameters(v, "parameters")

    @field_validator("tokenizer_source")
    @classmethod
    def _tok(cls, v):
        if v == "union":
            raise ValueError(
                "tokenizer_source: union (vocabulary merging) is not supported: every input "
                "must share one vocabulary; use 'base' or name one of the inputs"
            )
        return v

    @field_validator("chat_template")
    @classmethod
    def _template(cls, v):
        if v is not None and "{%" not in v and "{{" not in v:
            raise ValueError(
                f"chat_template {v!r}: named templates are not supported; give the Jinja "
                "text itself, or leave it out to keep the base model's template"
            )
        return v

    @model_validator(mode="before")
    @classmethod
    def _mergekit_modules(cls, data):
        mods = data.get("modules") if isinstance(data, dict) else None
        if isinstance(mods, dict):
            for name, body in mods.items():
                if name not in MODULES:
                    shape = (
                        " (this looks like mergekit's per-architecture `modules:`, which "
                        "sealion-vl does not read)"
                        if isinstance(body, dict) and ("slices" in body or "models" in body)
                        else ""
                    )
                    raise ValueError(
                        f"modules: unknown module {name!r}{shape}; use {', '.join(MODULES)}"
                    )
        return data

    @model_validator(mode="after")
    def _inputs(self):
        if self.slices is not None:
            if self.models is not None:
                raise ValueError("give either models: or slices:, not both")
            self._slices_to_models()
        if not self.models:
            raise ValueError("models: lists no checkpoints to merge")
        names = [m.model for m in self.models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"models: {', '.join(dup)} listed more than once")
        known = set(names) | ({self.base_model} if self.base_model else set())
        for mod, choice in (self.modules or {}).items():
            refs = [choice.keep] if choice.keep else [m.model for m in choice.models or []]
            for ref in refs:
                if ref not in known:
                    raise ValueError(
                        f"modules.{mod}: {ref!r} is not one of the merged models "
                        f"({', '.join(sorted(known))})"
                    )
        return self

    def _slices_to_models(self) -> None:
        # mergekit's slices stack layer ranges; only the one-slice, same-range form (what
        # its SLERP examples write) means "merge these models", so only it is read.
        if len(self.slices) != 1:
            raise ValueError(
                "slices: several output slices stack layer ranges (a passthrough/frankenmerge); "
                "sealion-vl merges whole models: use one slice or models:"
            )
        (sl,) = self.slices
        ranges = {tuple(s.layer_range) for s in sl.sources}
        if len(ranges) != 1:
            raise ValueError(
                f"slices: sources cover different layer ranges {sorted(ranges)}; sealion-vl "
                "merges whole models (every source over the same, full range)"
            )
        if sl.residual_weight is not None:
            raise ValueError("slices: residual_weight is not supported")
        self.layer_range = ranges.pop()
        self.models = [InputModel(model=s.model, parameters=s.parameters) for s in sl.sources]
        if sl.base_model:
            self.base_model = sl.base_model
        if sl.parameters:  # slice parameters rank above the top-level ones in mergekit
            self.parameters = {**(self.parameters or {}), **sl.parameters}
        _check_parameters(self.parameters, "slices[0].parameters")
        self.slices = None

    def reference_model(self) -> str:
        """The model whose config, tokenizer, processor and tensor names the output takes."""
        return self.base_model or self.models[0].model

    def all_models(self) -> list[str]:
        """Every checkpoint read, base first when there is one."""
        names = [m.model for m in self.models]
        if self.base_model and self.base_model not in names:
            names.insert(0, self.base_model)
        return names


def load_config(source: MergeConfig | Path | str | dict) -> MergeConfig:
    """A :class:`MergeConfig` from a YAML file path, a dict or an existing config.

    Raises:
        MergeError: the file is missing, not YAML, or not a valid merge config (the message
            names the offending key).
    """
    if isinstance(source, MergeConfig):
        return source
    where = "config"
    if isinstance(source, (str, Path)):
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise MergeError(f"merge config {path} does not exist")
        try:
            source = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise MergeError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(source, dict):
        raise MergeError(f"{where}: a merge config is a mapping with merge_method and models")
    try:
        return MergeConfig.model_validate(source)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "config"
            lines.append(f"  {loc}: {err['msg']}")
        raise MergeError(f"{where} is not a valid merge config:\n" + "\n".join(lines)) from None
