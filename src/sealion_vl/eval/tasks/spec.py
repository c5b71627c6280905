"""Reading a task folder: the ``task.yaml`` schema (pydantic, strict), its hooks, and
SEA-HELM's prompt format.

Kept apart from :mod:`sealion_vl.eval.task` (which turns rows into items) so the schema a task
author writes against reads on its own; ``sealion_vl.eval.task`` re-exports these names.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sealion_vl.errors import EvalDataError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Strict):
    """Where rows come from; ``{lang}`` in config/split is replaced by the run's language."""

    path: str | None = None
    config: str | None = None
    split: str | None = None
    filter: dict[str, Any] | None = None  # keep rows whose columns equal these values


class PromptTemplate(_Strict):
    """SEA-HELM's ``prompt_template`` block, copied verbatim."""

    preamble: str = ""
    task_template: str = ""
    answer_template: str = ""
    answer_tag: str = ""


class LanguageSpec(_Strict):
    max_tokens: int
    default_group: bool | None = None  # in SEA-HELM's default group for this language?
    prompt_template: PromptTemplate
    labels: list[str] = Field(default_factory=list)
    source: SourceSpec = Field(default_factory=SourceSpec)
    params: dict[str, Any] = Field(default_factory=dict)


class GoldSpec(_Strict):
    """How the gold answer is read: an option index, a bool (labels[0] = True) or references."""

    column: str
    kind: Literal["index", "bool", "references"]


class TaskSpec(_Strict):
    name: str
    version: str
    competency: str
    scorer: str
    metric: str
    aggregation_group: str | None = None
    default_group: bool = False
    source: SourceSpec
    id_column: str
    image_columns: list[str] = Field(default_factory=list)
    drop_columns: list[str] = Field(default_factory=list)  # unused columns (e.g. extra images)
    params: dict[str, Any] = Field(default_factory=dict)  # task-level settings for hooks
    fields: dict[str, str] = Field(default_factory=dict)  # template field -> column path
    meta: dict[str, str] = Field(default_factory=dict)  # meta key -> column path
    gold: GoldSpec | None = None
    hooks: str | None = None  # a shared hooks module (dotted name) instead of hooks.py
    languages: dict[str, LanguageSpec]

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, v: Any) -> str:
        return str(v)


def format_prompt(template: PromptTemplate, values: dict) -> str:
    """The user text as SEA-HELM builds it for a zero-shot instruct model.

    SEA-HELM: preamble (formatted with the answer tag) + blank line + task template (formatted
    with the row's prompt values only), the whole stripped.
    """
    preamble = template.preamble.format(answer_tag=template.answer_tag)
    return (preamble + "\n\n" + template.task_template.format(**values)).strip()


def read_yaml(folder: Path) -> dict:
    """The folder's task.yaml as a mapping (clear errors for bad YAML)."""
    path = folder / "task.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise EvalDataError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise EvalDataError(f"{path}: expected a mapping at the top level")
    return raw


def read_spec(folder: Path) -> TaskSpec:
    """The folder's validated task spec."""
    try:
        return TaskSpec.model_validate(read_yaml(folder))
    except ValidationError as exc:
        raise EvalDataError(f"{folder / 'task.yaml'}: invalid task spec: {exc}") from exc


def load_hooks(folder: Path, name: str, module: str | None) -> tuple[Any, str]:
    """The task's hooks module and its source (fingerprinted): the shared module the spec
    names, else the folder's ``hooks.py``, else none."""
    path = folder / "hooks.py"
    if module:
        if path.is_file():
            raise EvalDataError(
                f"task {name!r}: task.yaml names hooks module {module!r} and {path} exists too; "
                "keep one of them"
            )
        try:
            mod = importlib.import_module(module)
            return mod, Path(mod.__file__).read_text(encoding="utf-8")
        except Exception as exc:  # noqa: BLE001 - any failure is the spec's hooks not loading
            raise EvalDataError(
                f"task {name!r}: hooks module {module!r} failed to load: {exc}"
            ) from exc
    if not path.is_file():
        return None, ""
    source = path.read_text(encoding="utf-8")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"_sealion_vl_task_hooks_{name}_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001
        raise EvalDataError(f"task {name!r}: {path} failed to import: {exc}") from exc
    return module, source
