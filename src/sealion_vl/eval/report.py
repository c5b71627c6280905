"""``sealion-vl eval report``: one self-contained HTML page comparing evaluated models.

Reads the output folders the runner and ``eval score`` write (``results.json`` and, when there,
``results_stderr.json``, ``headline.json``, ``diagnostics.json``, ``items.jsonl``,
``config.json``) and writes one page with no external requests at all: overview table, per-language
headline tables with standard errors, grouped SVG bar charts, the extraction diagnostics
(SEA-HELM's extraction vs our robust one) and example items, plus each model's config. The page
is meant to be mailed or attached to an issue, so it must open anywhere, offline, and be safe to
open: every folder string is escaped (see :mod:`sealion_vl.eval.report_page`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sealion_vl.errors import EvalDataError
from sealion_vl.eval import report_page as rp
from sealion_vl.eval.report_page import esc, num

# When a folder has no headline.json (``eval score`` output, older runs): the first of these
# metrics a task reports is its headline. Same choice as the model cards' tables.
HEADLINE_FALLBACK = ("normalized_accuracy", "overall_lang_normalized_acc", "refclipscore")
SECRET_KEY = re.compile(r"api[_-]?key|secret|password|authorization|bearer", re.IGNORECASE)


@dataclass
class ModelRun:
    """One output folder, read: what the page needs and nothing more (items are sampled)."""

    name: str
    folder: Path
    config: dict
    results: dict
    stderr: dict
    headline: dict
    diagnostics: dict
    examples: dict[tuple[str, str], dict[str, list[dict]]] = field(default_factory=dict)
    bad_item_lines: int = 0

    def scores(self) -> dict[str, dict[str, tuple[str, str, float | None, float | None]]]:
        """{lang: {task: (competency, headline metric, value, stderr)}} in the file's order."""
        out: dict[str, dict[str, tuple[str, str, float | None, float | None]]] = {}
        for lang, comp, task, metrics in _tasks(self.results):
            metric = self.headline.get(task)
            if not isinstance(metric, str) or metric not in metrics:
                metric = _fallback_metric(metrics)
            se_metrics = _dig(self.stderr, lang, comp, task)
            se = num(se_metrics.get(metric)) if isinstance(se_metrics, dict) else None
            out.setdefault(lang, {})[task] = (comp, metric, num(metrics.get(metric)), se)
        return out

    def metrics(self, lang: str, task: str) -> dict:
        """All SEA-HELM metrics of one task in one language ({} when absent)."""
        for lang_, _comp, task_, metrics in _tasks(self.results):
            if (lang_, task_) == (lang, task):
                return metrics
        return {}


def _dig(nest: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(nest, dict):
            return None
        nest = nest.get(key)
    return nest


def _tasks(results: dict) -> Iterator[tuple[str, str, str, dict]]:
    """(lang, competency, task, metrics) for every task in SEA-HELM's nest.

    In the nest, dict values under a competency are tasks; numbers are the competency's
    aggregation groups (``world_cuisine``) and its ``total``, which are not tasks.
    """
    for lang, comps in results.items():
        if not isinstance(comps, dict):
            continue
        for comp, tasks in comps.items():
            if not isinstance(tasks, dict):
                continue
            for task, metrics in tasks.items():
                if isinstance(metrics, dict):
                    yield str(lang), str(comp), str(task), metrics


def _fallback_metric(metrics: dict) -> str:
    for name in HEADLINE_FALLBACK:
        if name in metrics:
            return name
    numeric = [k for k, v in metrics.items() if num(v) is not None and k != "null_count"]
    return str(numeric[0]) if numeric else ""


def _read_json(path: Path, *, required: bool) -> dict:
    if not path.is_file():
        if required:
            raise EvalDataError(
                f"{path.parent}: not an evaluation output folder, {path.name} is missing "
                "(run `sealion-vl eval run` or `eval score` with --out here first)"
            )
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalDataError(f"{path}: not readable as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise EvalDataError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _bucket(item: dict) -> str:
    """correct / wrong / other: binary scores split; continuous ones (RefCLIPScore) are 'other'."""
    score = item.get("score")
    if item.get("error") or score is None or score is False:
        return "wrong"
    if score is True:
        return "correct"
    value = num(score)
    if value == 1:
        return "correct"
    return "wrong" if value == 0 else "other"


def _sample_items(path: Path, per_bucket: int) -> tuple[dict, int]:
    """Stream items.jsonl, keeping at most ``per_bucket`` items per (task, lang) and bucket.

    The file can hold every reply of 8 runs of every task: it is read line by line, never
    loaded whole. Unparseable lines (a run killed mid-write) are counted, not fatal.
    """
    kept: dict[tuple[str, str], dict[str, list[dict]]] = {}
    bad = 0
    if per_bucket <= 0 or not path.is_file():
        return kept, bad
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if not isinstance(item, dict):
                bad += 1
                continue
            key = (str(item.get("task")), str(item.get("lang")))
            bucket = kept.setdefault(key, {"correct": [], "wrong": [], "other": []})[_bucket(item)]
            if len(bucket) < per_bucket:
                bucket.append(item)
    return kept, bad


def load_run(folder: Path, examples: int = 3) -> ModelRun:
    """Read one output folder; only results.json is required (EvalDataError names the folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalDataError(f"{folder}: no such evaluation output folder")
    results = _read_json(folder / "results.json", required=True)
    config = _read_json(folder / "config.json", required=False)
    model = config.get("model")
    examples_, bad = _sample_items(folder / "items.jsonl", examples)
    return ModelRun(
        name=str(model) if isinstance(model, str) and model else folder.resolve().name,
        folder=folder,
        config=config,
        results=results,
        stderr=_read_json(folder / "results_stderr.json", required=False),
        headline=_read_json(folder / "headline.json", required=False),
        diagnostics=_read_json(folder / "diagnostics.json", required=False),
        examples=examples_,
        bad_item_lines=bad,
    )


def _unique_names(runs: list[ModelRun]) -> None:
    """Two folders of the same model (say two settings) get their folder name added."""
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
    used: set[str] = set()
    for run in runs:
        if seen[run.name] > 1:
            run.name = f"{run.name} ({run.folder.resolve().name})"
        base, n = run.name, 2
        while run.name in used:
            run.name, n = f"{base} #{n}", n + 1
        used.add(run.name)


def _model_head(runs: list[ModelRun]) -> str:
    return "".join(f"<th>{rp.swatch(i)}{esc(r.name)}</th>" for i, r in enumerate(runs))


def _overview(runs: list[ModelRun], langs: list[str]) -> str:
    head = "".join(f"<th>{esc(lang)}</th>" for lang in langs)
    rows = []
    for i, run in enumerate(runs):
        cells = [
            rp.score_cell(
                num(_dig(run.results, lang, "total")),
                num(_dig(run.stderr, lang, "total")),
                attrs=f' data-lang="{esc(lang)}"',
            )
            for lang in langs
        ]
        overall = rp.score_cell(
            num(run.results.get("total")), num(run.stderr.get("total")), attrs=' data-lang="total"'
        )
        rows.append(
            f'<tr data-model="{esc(run.name)}"><th>{rp.swatch(i)}{esc(run.name)}</th>'
            f"{''.join(cells)}{overall}</tr>"
        )
    return (
        '<h2 id="overview">Overview</h2><p class="note">Language totals as SEA-HELM aggregates '
        "them (task → competency → language), mean over runs ± standard error.</p>"
        f'<table class="overview"><tr><th>model</th>{head}<th>overall</th></tr>'
        f"{''.join(rows)}</table>"
    )


def _language(runs: list[ModelRun], lang: str, scores: list[dict]) -> str:
    tasks: list[str] = []
    for per_model in scores:
        tasks += [t for t in per_model.get(lang, {}) if t not in tasks]
    rows, values = [], {}
    for task in tasks:
        entries = [s.get(lang, {}).get(task) for s in scores]
        present = [e[2] for e in entries if e and e[2] is not None]
        best = max(present) if len(present) > 1 and max(present) > min(present) else None
        metric = next((e[1] for e in entries if e), "")
        cells = []
        for run, entry in zip(runs, entries, strict=True):
            value, se = (entry[2], entry[3]) if entry else (None, None)
            if value is not None:
                values[(run.name, task)] = value
            attrs = f' data-model="{esc(run.name)}"'
            cells.append(rp.score_cell(value, se, best=value == best, attrs=attrs))
        rows.append(
            f'<tr data-task="{esc(task)}"><th>{esc(task)}</th><td>{esc(metric)}</td>'
            f"{''.join(cells)}</tr>"
        )
    chart = rp.bar_chart(lang, tasks, [r.name for r in runs], values)
    legend = " ".join(f"{rp.swatch(i)}{esc(r.name)}" for i, r in enumerate(runs))
    return (
        f'<h3 id="lang-{esc(lang)}">Language: {esc(lang)}</h3>'
        f'<table class="tasks" data-lang="{esc(lang)}"><tr><th>task</th><th>headline metric</th>'
        f"{_model_head(runs)}</tr>{''.join(rows)}</table>{chart}<p class='note'>{legend}</p>"
    )


def _examples(run: ModelRun) -> str:
    if not run.examples:
        return f"<h3>{esc(run.name)}</h3><p class='note'>No items.jsonl in this folder.</p>"
    out = [f"<h3>{esc(run.name)}</h3>"]
    if run.bad_item_lines:
        out.append(f"<p class='note'>{run.bad_item_lines} unreadable line(s) skipped.</p>")
    for (task, lang), buckets in run.examples.items():
        out.append(f"<h4>{esc(task)} · {esc(lang)}</h4>")
        for kind in ("correct", "wrong", "other"):
            for item in buckets[kind]:
                label = "error" if item.get("error") else kind
                error = item.get("error")
                out.append(
                    f'<div class="item {kind}" data-model="{esc(run.name)}" '
                    f'data-task="{esc(task)}" data-lang="{esc(lang)}">'
                    f'<span class="badge {kind}">{esc(label)}</span> id {esc(item.get("id"))}, '
                    f"run {esc(item.get('run'))}, score {esc(rp.show(item.get('score')))}"
                    f"<details><summary>prompt</summary><pre>{esc(rp.show(item.get('prompt')))}"
                    f'</pre></details><div>response</div><pre class="response">'
                    f"{esc(rp.show(item.get('response')))}</pre>"
                    f"<div>extracted: <code>{esc(rp.show(item.get('extracted')))}</code> · gold: "
                    f"<code>{esc(rp.show(item.get('gold')))}</code></div>"
                    + (f"<div>error: <code>{esc(rp.show(error))}</code></div>" if error else "")
                    + "</div>"
                )
    return "".join(out)


def _redact(value: Any) -> Any:
    """Configs are shown whole, but never a credential someone put in one."""
    if isinstance(value, dict):
        return {
            k: "[redacted]" if SECRET_KEY.search(str(k)) else _redact(v) for k, v in value.items()
        }
    return [_redact(v) for v in value] if isinstance(value, list) else value


def _footer(runs: list[ModelRun]) -> str:
    parts = ["<h2 id='configs'>Configurations</h2>"]
    for run in runs:
        config = json.dumps(_redact(run.config), indent=2, ensure_ascii=False, sort_keys=True)
        parts.append(
            f"<h3>{esc(run.name)}</h3><p class='note'>folder: {esc(run.folder)}</p>"
            f"<pre>{esc(config if run.config else '(no config.json)')}</pre>"
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<p class='note'>Report written by sealion-vl at {stamp}.</p>")
    return "".join(parts)


def _write_atomic(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_report(
    dirs: Sequence[Path], out: Path, *, title: str | None = None, examples: int = 3
) -> Path:
    """Write the HTML report comparing the evaluation output folders ``dirs``; return ``out``.

    Why one self-contained page: results get shared as attachments and opened offline, so the
    page makes no request of any kind (inline CSS and SVG, a CSP forbidding the rest).
    ``examples`` is how many correct and how many wrong items are shown per task and language
    (and how many extraction disagreements). Folders are read in full before anything is
    written, so a bad folder (EvalDataError naming it) leaves any earlier report untouched.
    """
    if not dirs:
        raise EvalDataError("eval report: give at least one evaluation output folder")
    runs = [load_run(Path(d), examples) for d in dirs]
    _unique_names(runs)
    scores = [run.scores() for run in runs]
    langs: list[str] = []
    for per_model in scores:
        langs += [lang for lang in per_model if lang not in langs]
    title = title or "SEA-HELM evaluation: " + ", ".join(r.name for r in runs)
    nav = " · ".join(f'<a href="#lang-{esc(x)}">{esc(x)}</a>' for x in langs)
    body = [
        f"<p class='note'>{len(runs)} model(s), {len(langs)} language(s). {nav}</p>",
        _overview(runs, langs),
        "<h2 id='languages'>Per language: headline score per task</h2>",
        *(_language(runs, lang, scores) for lang in langs),
        "<h2 id='diagnostics'>Extraction diagnostics</h2><p class='note'>SEA-HELM's answer "
        "extraction beside a robust one; a large Δ means the score reflects answer format, "
        "not knowledge.</p>",
        *(rp.diagnostics_section(run, examples) for run in runs),
        "<h2 id='examples'>Example items</h2>",
        *(_examples(run) for run in runs),
    ]
    _write_atomic(Path(out), rp.page(title, "".join(body), _footer(runs)))
    return Path(out)
