"""From replies to SEA-HELM-shaped results: pick each task's scorer, score one run, roll up,
and write the output folder. Shared by ``eval run`` and ``eval score`` so both give the same
numbers for the same replies.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealion_vl.eval.types import Item, TaskScore

SCORERS = {
    "mcq": "sealion_vl.eval.metrics.mcq",
    "ifeval": "sealion_vl.eval.metrics.ifeval",
    "refclipscore": "sealion_vl.eval.metrics.refclip",
    "chrf": "sealion_vl.eval.metrics.chrf",
    "math": "sealion_vl.eval.metrics.mathans",
}


@dataclass
class Group:
    """The items of one task in one language, with their replies (one run)."""

    task: Any  # sealion_vl.eval.task.Task
    lang: str
    items: list[Item]
    responses: list[str | None]
    errors: list[str | None] = field(default_factory=list)


def score_task(
    task, lang: str, items: list[Item], responses: list[str | None], **opts
) -> TaskScore:
    """Score one task/language with the task's ``score`` hook or its named scorer."""
    hook = task.score_hook()
    if hook is not None:
        return hook(items, responses, lang=lang, **_accepted(hook, opts))
    module = SCORERS.get(task.scorer)
    if module is None:
        from sealion_vl.errors import EvalDataError

        raise EvalDataError(
            f"task {task.name!r} names scorer {task.scorer!r}; known: {', '.join(sorted(SCORERS))}"
        )
    fn = importlib.import_module(module).score
    return fn(items, responses, lang=lang, **_accepted(fn, opts))


def _accepted(fn, opts: dict) -> dict:
    """Only the options ``fn`` takes (the CLIP model matters to RefCLIPScore alone)."""
    import inspect

    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return opts
    return {k: v for k, v in opts.items() if k in params}


def score_groups(groups: Iterable[Group], *, run: int | None = None, **opts) -> tuple:
    """Score every group of one run.

    Returns:
        ``(nest, diagnostics, rows, headline)``: SEA-HELM's nested results, the
        ``{task: {lang: diagnostics}}`` table, the per-item rows for ``items.jsonl``, and
        ``{task: headline metric}``.
    """
    from sealion_vl.eval.aggregate import rollup

    per_task: dict = {}
    diagnostics: dict = {}
    rows: list[dict] = []
    headline: dict = {}
    groups_of: dict = {}
    for g in groups:
        ts = score_task(g.task, g.lang, g.items, g.responses, **opts)
        per_task[(g.lang, g.task.competency, g.task.name)] = ts.metrics
        headline[g.task.name] = g.task.metric
        if g.task.aggregation_group:
            groups_of[g.task.name] = g.task.aggregation_group
        errors = g.errors or [None] * len(g.items)
        diag = dict(ts.diagnostics)
        diag["errors"] = sum(e is not None for e in errors)
        if run is not None and "disagreements" in diag:
            diag["disagreements"] = [{"run": run, **d} for d in diag["disagreements"]]
        diagnostics.setdefault(g.task.name, {})[g.lang] = diag
        for item, resp, err, scored in zip(g.items, g.responses, errors, ts.per_item, strict=True):
            row = {"run": run} if run is not None else {}
            row.update(task=item.task, lang=item.lang, id=item.id, prompt=item.prompt)
            row.update(response=resp, error=err)
            row.update({k: _jsonable(v) for k, v in scored.items()})
            rows.append(row)
    nest = rollup(per_task, headline, groups_of)
    return nest, diagnostics, rows, headline


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (temp file in the same folder, then rename)."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Write one JSON object per line atomically."""
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
