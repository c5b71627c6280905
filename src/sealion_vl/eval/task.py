"""Tasks as data: one folder per task, a ``task.yaml`` spec plus optional hooks.

Why data: SEA-HELM's prompts, answer tags and label words are the strings our scores depend
on, so they live verbatim in YAML where they can be diffed against SEA-HELM's configs, and a
user can add a task folder (``--task-dir``) without touching the package. Per-row logic that
a table cannot say (WorldCuisines' seeded option re-ordering, MARVL's OpenCC) goes in hooks:
the folder's ``hooks.py``, or a module the spec names (``hooks: sealion_vl.eval.tasks.
nano_common``) so that tasks differing only in ``params`` share one module instead of
copies. The Task calls these functions when they exist:

- ``load_docs(task, lang, *, data_dir, limit) -> list[dict]`` replaces the default loader
  (``task.default_load_docs`` is there to build on);
- ``to_fields(task, doc, lang) -> dict`` returns overrides of the default per-row fields
  (``values`` for the template, ``id``, ``gold``, ``meta``, ``images``); a ``gold`` it gives
  is checked by :meth:`Task.validate` (raise :class:`EvalDataError` to refuse a row);
- ``score(items, responses, *, lang, [task])`` replaces the scorer named in the spec (see
  :meth:`Task.score_hook`; a shared module takes ``task`` to read its ``params``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sealion_vl.errors import EvalDataError
from sealion_vl.eval import data
from sealion_vl.eval.data import get_path, json_safe
from sealion_vl.eval.tasks.spec import (  # noqa: F401 - re-exported: the task.yaml schema
    GoldSpec,
    LanguageSpec,
    PromptTemplate,
    SourceSpec,
    TaskSpec,
    format_prompt,
    load_hooks,
    read_spec,
    read_yaml,
)
from sealion_vl.eval.types import Item

SHIPPED_TASKS = Path(__file__).parent / "tasks"


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
        self._hooks, self._hooks_source = load_hooks(self.folder, spec.name, spec.hooks)

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
        """The hooks function ``name``, or None."""
        return getattr(self._hooks, name, None) if self._hooks is not None else None

    def score_hook(self) -> Any:
        """The hooks ``score`` function (replaces the named scorer), or None; one that takes
        ``task`` gets this task bound (a shared module tells its tasks apart by ``params``)."""
        fn = self.hook("score")
        if fn is not None and "task" in inspect.signature(fn).parameters:
            return functools.partial(fn, task=self)
        return fn

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

    def _hook_fields(self, doc: dict, lang: str) -> tuple[dict, str | None]:
        """The ``to_fields`` hook's overrides and why the row cannot be scored (or None).

        A hook's gold that is None, or not one of the language's label words when it has
        some, is refused: SEA-HELM would crash on it or score it as a silent miss.
        """
        fn = self.hook("to_fields")
        if fn is None:
            return {}, None
        try:
            over = fn(self, doc, lang) or {}
        except EvalDataError as exc:
            return {}, str(exc)
        labels = self.lang_spec(lang).labels
        if "gold" in over and (over["gold"] is None or (labels and over["gold"] not in labels)):
            return over, f"gold {over['gold']!r}"
        return over, None

    def _row_id(self, doc: dict, over: dict) -> str:
        """The row's id as its item gets it (hook, id column, else a hash of the row)."""
        row_id = over["id"] if "id" in over else get_path(doc, self.spec.id_column)
        if row_id is None:  # no id column in this copy: a stable id from the row itself
            blob = json.dumps(json_safe(self._public(doc)), sort_keys=True, ensure_ascii=False)
            row_id = "row-" + hashlib.sha256(blob.encode()).hexdigest()[:12]
        return str(row_id)

    def _public(self, doc: dict) -> dict:
        hidden = {*self.spec.image_columns, *self.spec.drop_columns}
        return {k: v for k, v in doc.items() if k not in hidden}

    def _refuse_hooked(self, bad: list[str], total: int, lang: str) -> None:
        labels = self.lang_spec(lang).labels
        among = f" among {labels}" if labels else ""
        more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise EvalDataError(
            f"task {self.name!r} [{lang}]: {len(bad)} of {total} rows have no gold answer{among}"
            f" or are refused by the task's hooks; refusing to score them. "
            f"Rows: {', '.join(bad[:20])}{more}"
        )

    def validate(self, docs: list[dict], lang: str) -> None:
        """Refuse rows that cannot be scored, naming them all in one error.

        Two checks: the spec's gold column must hold a valid label (SEA-HELM quirk avoided:
        it maps CVQA's public -1 to "D" via ``"ABCD"[-1]`` and scores it), and a gold given by
        the ``to_fields`` hook must be present and, when the language has label words, one of
        them (HallusionBench's gt_answer, MathVista's answer, MMStar's letter...). Every task
        gets the second check here instead of a copy of it in each hooks module.
        """
        self._refuse_bad_labels(docs, lang)
        if self.hook("to_fields") is None:
            return
        bad = []
        for doc in docs:
            try:
                over, why = self._hook_fields(doc, lang)
            except (KeyError, TypeError, ValueError, IndexError, OSError):
                continue  # not this task's row shape: item() reports it with its context
            if why:
                bad.append(f"{self._row_id(doc, over)} ({why})")
        if bad:
            self._refuse_hooked(bad, len(docs), lang)

    def _refuse_bad_labels(self, docs: list[dict], lang: str) -> None:
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
        self._refuse_bad_labels([doc], lang)
        fields = self._default_fields(doc, lang)
        over, why = self._hook_fields(doc, lang)
        if why:
            self._refuse_hooked([f"{self._row_id(doc, over)} ({why})"], 1, lang)
        fields.update(over)
        try:
            prompt = format_prompt(ls.prompt_template, fields["values"])
        except (KeyError, IndexError) as exc:
            raise EvalDataError(
                f"task {self.name!r} [{lang}]: row {fields['id']!r} lacks template field {exc}"
            ) from exc
        return Item(
            task=self.name,
            lang=lang,
            id=self._row_id(doc, fields),
            prompt=prompt,
            images=[b for b in fields["images"] if b is not None],
            gold=fields["gold"],
            labels=list(ls.labels),
            answer_tag=ls.prompt_template.answer_tag,
            max_tokens=ls.max_tokens,
            doc=json_safe(self._public(doc)),
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
            out[str(read_yaml(folder).get("name") or folder.name)] = folder
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
    return Task(read_spec(folder), folder)
