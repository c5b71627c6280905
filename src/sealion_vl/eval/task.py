"""Tasks as data: one folder per task, a ``task.yaml`` spec plus optional ``hooks.py``.

Why data: SEA-HELM's prompts, answer tags and label words are the strings our scores depend
on, so they live verbatim in YAML where they can be diffed against SEA-HELM's configs, and a
user can add a task folder (``--task-dir``) without touching the package. Per-row logic that
a table cannot say (WorldCuisines' seeded option re-ordering, MARVL's OpenCC) goes in the
folder's ``hooks.py``; the Task calls these functions when they exist:

- ``load_docs(task, lang, *, data_dir, limit) -> list[dict]`` replaces the default loader
  (``task.default_load_docs`` is there to build on);
- ``to_fields(task, doc, lang) -> dict`` returns overrides of the default per-row fields
  (``values`` for the template, ``id``, ``gold``, ``meta``, ``images``);
- ``score(...)`` replaces the scorer named in the spec (see :meth:`Task.score_hook`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sealion_vl.errors import EvalDataError
from sealion_vl.eval import data
from sealion_vl.eval.data import get_path, json_safe
from sealion_vl.eval.types import Item

SHIPPED_TASKS = Path(__file__).parent / "tasks"


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


def _load_hooks(folder: Path, name: str) -> tuple[Any, str]:
    path = folder / "hooks.py"
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


class Task:
    """One evaluation task: its spec, its hooks, and how rows become :class:`Item` objects."""

    def __init__(self, spec: TaskSpec, folder: Path):
        self.spec = spec
        self.folder = Path(folder)
        self.name = spec.name
        self.version = spec.version
        self.competency = spec.competency
        self.scorer = spec.scorer
        self.metric = spec.metric
        self.aggregation_group = spec.aggregation_group
        self.default_group = spec.default_group
        self.languages = list(spec.languages)
        self._hooks, self._hooks_source = _load_hooks(self.folder, spec.name)

    def __repr__(self) -> str:
        return f"Task({self.name!r}, version={self.version!r}, languages={self.languages})"

    # -- spec access -------------------------------------------------------------------
    @property
    def default_group_languages(self) -> list[str]:
        """Languages for which SEA-HELM's default ``vision`` group (task_config.yaml) runs it.

        The group is per language there (e.g. cvqa for id/tl/zh/ta/ms, not jv/su), so a
        language's ``default_group`` overrides the task-level flag.
        """
        return [
            lang
            for lang, ls in self.spec.languages.items()
            if (self.default_group if ls.default_group is None else ls.default_group)
        ]

    def lang_spec(self, lang: str) -> LanguageSpec:
        """The language's spec; an unknown language is an error listing the known ones."""
        if lang not in self.spec.languages:
            raise EvalDataError(
                f"task {self.name!r} has no language {lang!r}; it has: {', '.join(self.languages)}"
            )
        return self.spec.languages[lang]

    def source(self, lang: str) -> SourceSpec:
        """The task's dataset source with the language's overrides, ``{lang}`` filled in."""
        merged = self.spec.source.model_dump()
        merged.update({k: v for k, v in self.lang_spec(lang).source.model_dump().items() if v})
        for key in ("config", "split"):
            if isinstance(merged.get(key), str):
                merged[key] = merged[key].replace("{lang}", lang)
        src = SourceSpec(**merged)
        if not src.path or not src.split:
            raise EvalDataError(f"task {self.name!r} [{lang}]: source needs a path and a split")
        return src

    def hook(self, name: str) -> Any:
        """The hooks.py function ``name``, or None."""
        return getattr(self._hooks, name, None) if self._hooks is not None else None

    def score_hook(self) -> Any:
        """The hooks.py ``score`` function (replaces the named scorer), or None."""
        return self.hook("score")

    # -- loading -----------------------------------------------------------------------
    def default_load_docs(
        self, lang: str, *, data_dir: Path | None = None, limit: int | None = None
    ) -> list[dict]:
        """Rows of the language's split, filtered, cut to ``limit``; images as bytes."""
        src = self.source(lang)
        ds = data.load_rows(
            src.path,
            src.config,
            src.split,
            data_dir=data_dir,
            image_columns=self.spec.image_columns,
        )
        if src.filter:
            missing = [c for c in src.filter if c not in ds.column_names]
            if missing:
                raise EvalDataError(
                    f"task {self.name!r} [{lang}]: filter columns {missing} not in dataset "
                    f"{src.path!r} (columns: {ds.column_names})"
                )
            want = dict(src.filter)
            cols = list(want)
            ds = ds.filter(
                lambda *vals: all(v == want[c] for c, v in zip(cols, vals, strict=True)),
                input_columns=cols,
            )
        drop = [c for c in self.spec.drop_columns if c in ds.column_names]
        if drop:
            ds = ds.remove_columns(drop)
        if limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        rows = ds.to_list()
        for row in rows:
            for col in self.spec.image_columns:
                if col in row:
                    row[col] = data.image_bytes(row[col])
        return rows

    def load_docs(
        self, lang: str, *, data_dir: Path | None = None, limit: int | None = None
    ) -> list[dict]:
        """Public-schema rows in SEA-HELM's order, after SEA-HELM's loader transforms."""
        self.lang_spec(lang)
        fn = self.hook("load_docs")
        if fn is not None:
            return fn(self, lang, data_dir=data_dir, limit=limit)
        return self.default_load_docs(lang, data_dir=data_dir, limit=limit)

    # -- labels ------------------------------------------------------------------------
    def _bad_label(self, doc: dict, lang: str) -> bool:
        g = self.spec.gold
        if g is None:
            return False
        v = get_path(doc, g.column)
        if g.kind == "index":
            n = len(self.lang_spec(lang).labels)
            return not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n)
        if g.kind == "bool":
            return not isinstance(v, bool)
        return not (isinstance(v, list) and v and all(isinstance(x, str) for x in v))

    def validate(self, docs: list[dict], lang: str) -> None:
        """Refuse rows whose label is missing or out of range (CVQA's public -1).

        SEA-HELM quirk avoided: SEA-HELM maps CVQA's -1 to "D" via ``"ABCD"[-1]`` and scores
        it; we raise instead, naming the rows, so nothing is scored on hidden labels.
        """
        bad = [d for d in docs if self._bad_label(d, lang)]
        if not bad:
            return
        g = self.spec.gold
        shown = ", ".join(
            f"{get_path(d, self.spec.id_column)} ({get_path(d, g.column)!r})" for d in bad[:20]
        )
        more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
        valid = (
            f"0..{len(self.lang_spec(lang).labels) - 1}"
            if g.kind == "index"
            else ("true/false" if g.kind == "bool" else "a non-empty list of strings")
        )
        raise EvalDataError(
            f"task {self.name!r} [{lang}]: {len(bad)} of {len(docs)} rows have a missing or "
            f"out-of-range label in column {g.column!r} (valid: {valid}); refusing to score "
            f"them. Rows: {shown}{more}"
        )

    # -- items -------------------------------------------------------------------------
    def _default_fields(self, doc: dict, lang: str) -> dict:
        ls = self.lang_spec(lang)
        values = {k: get_path(doc, p) for k, p in self.spec.fields.items()}
        gold = None
        g = self.spec.gold
        if g is not None:
            v = get_path(doc, g.column)
            if g.kind == "index":
                gold = ls.labels[v]
            elif g.kind == "bool":
                gold = ls.labels[0] if v else ls.labels[1]
            else:
                gold = list(v)
        images = [
            data.image_bytes(doc[c]) for c in self.spec.image_columns if doc.get(c) is not None
        ]
        return {
            "id": get_path(doc, self.spec.id_column),
            "values": values,
            "gold": gold,
            "meta": {k: get_path(doc, p) for k, p in self.spec.meta.items()},
            "images": images,
        }

    def item(self, doc: dict, lang: str) -> Item:
        """One row as the model sees it: SEA-HELM's prompt text, images, gold and labels."""
        ls = self.lang_spec(lang)
        self.validate([doc], lang)
        fields = self._default_fields(doc, lang)
        fn = self.hook("to_fields")
        if fn is not None:
            fields.update(fn(self, doc, lang) or {})
        try:
            prompt = format_prompt(ls.prompt_template, fields["values"])
        except (KeyError, IndexError) as exc:
            raise EvalDataError(
                f"task {self.name!r} [{lang}]: row {fields['id']!r} lacks template field {exc}"
            ) from exc
        hidden = {*self.spec.image_columns, *self.spec.drop_columns}
        doc_out = {k: v for k, v in doc.items() if k not in hidden}
        row_id = fields["id"]
        if row_id is None:  # no id column in this copy: a stable id from the row itself
            blob = json.dumps(json_safe(doc_out), sort_keys=True, ensure_ascii=False)
            row_id = "row-" + hashlib.sha256(blob.encode()).hexdigest()[:12]
        return Item(
            task=self.name,
            lang=lang,
            id=str(row_id),
            prompt=prompt,
            images=[b for b in fields["images"] if b is not None],
            gold=fields["gold"],
            labels=list(ls.labels),
            answer_tag=ls.prompt_template.answer_tag,
            max_tokens=ls.max_tokens,
            doc=json_safe(doc_out),
            meta=json_safe(fields["meta"]),
            conversation=fields.get("conversation"),  # hooks only (nano's own shape)
        )

    def items(
        self, lang: str, *, data_dir: Path | None = None, limit: int | None = None
    ) -> list[Item]:
        """Load, validate every label (one error naming all bad rows), then build items."""
        docs = self.load_docs(lang, data_dir=data_dir, limit=limit)
        self.validate(docs, lang)
        return [self.item(d, lang) for d in docs]

    def fingerprint(self, lang: str) -> str:
        """Stable sha256 of version + resolved language spec + hooks source (for the store)."""
        # group membership does not change what is asked or scored, so it is left out
        task_level = self.spec.model_dump(exclude={"languages", "default_group"})
        payload = {
            "task": task_level,
            "lang": lang,
            "language": self.lang_spec(lang).model_dump(exclude={"default_group"}),
            "source": self.source(lang).model_dump(),
            "hooks": self._hooks_source,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# -- discovery ---------------------------------------------------------------------------
def _task_folders(root: Path) -> list[Path]:
    if (root / "task.yaml").is_file():
        return [root]
    return [p for p in sorted(root.iterdir()) if (p / "task.yaml").is_file()]


def _read_yaml(folder: Path) -> dict:
    path = folder / "task.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise EvalDataError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise EvalDataError(f"{path}: expected a mapping at the top level")
    return raw


def available_tasks(task_dirs: Sequence[Path] = ()) -> dict[str, Path]:
    """Task name -> folder, shipped tasks first; a user folder's task of the same name wins.

    Each entry of ``task_dirs`` is a task folder (holding task.yaml) or a folder of them.
    """
    out: dict[str, Path] = {}
    roots = [(SHIPPED_TASKS, False)] + [(Path(d).expanduser(), True) for d in task_dirs]
    for root, user in roots:
        if not root.is_dir():
            if user:
                raise EvalDataError(f"task directory {root} does not exist")
            continue
        for folder in _task_folders(root):
            out[str(_read_yaml(folder).get("name") or folder.name)] = folder
    return out


def load_task(name_or_folder: str | Path, task_dirs: Sequence[Path] = ()) -> Task:
    """A task by name (shipped or from ``task_dirs``) or by the path of its folder."""
    p = Path(name_or_folder).expanduser()
    if p.is_dir() and (p / "task.yaml").is_file():
        folder = p
    else:
        tasks = available_tasks(task_dirs)
        if str(name_or_folder) not in tasks:
            raise EvalDataError(
                f"unknown task {str(name_or_folder)!r}; available: {', '.join(sorted(tasks))}"
            )
        folder = tasks[str(name_or_folder)]
    try:
        spec = TaskSpec.model_validate(_read_yaml(folder))
    except ValidationError as exc:
        raise EvalDataError(f"{folder / 'task.yaml'}: invalid task spec: {exc}") from exc
    return Task(spec, folder)
