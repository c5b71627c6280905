"""Southeast-Asian relevance filter for image-caption data.

``score_caption`` (:mod:`sealion_vl.data.sea.score`) scores one caption; ``filter_captions``
streams JSONL files, folders of JSONL shards or WebDataset tar shards through it over several
processes. Both are exported by :mod:`sealion_vl.data.sea`.

Input: one JSONL file, or a folder of shards (*.jsonl, *.jsonl.gz, *.tar, *.tar.gz, *.tgz).
Work unit: a task (:mod:`sealion_vl.data.sea.task`) = one shard, or a byte range of an
uncompressed JSONL shard when workers > 1 (so a single big JSONL file also spreads over
processes). Each task streams its rows one at a time into temp part files in OUT; once every
task is done, a shard's parts are renamed (or concatenated, for byte ranges) to the shard's
final name, and the reasons parts are joined into reasons.jsonl in input order. Output is
therefore identical for any number of workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sealion_vl.data.sea.index import entity_index
from sealion_vl.data.sea.task import MAX_BAD_EXAMPLES, Task, TaskResult, execute_tasks
from sealion_vl.errors import SealionError

__all__ = [
    "BadRow",
    "FilterError",
    "FilterReport",
    "LanguageCount",
    "ShardFailure",
    "ShardStats",
    "filter_captions",
]

_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_RESERVED = ("reasons.jsonl", "report.json")
_COPY_BUFFER = 256 << 10  # bytes per read when joining part files: memory stays bounded


class FilterError(SealionError, ValueError):
    """The filter's input or output could not be used (message says which and why)."""


class LanguageCount(BaseModel):
    rows: int = 0
    kept: int = 0


class BadRow(BaseModel):
    shard: str
    line: int | None = None
    key: str | None = None
    error: str


class ShardStats(BaseModel):
    shard: str
    rows: int
    kept: int
    bad: int
    seconds: float


class ShardFailure(BaseModel):
    shard: str
    error: str


class FilterReport(BaseModel):
    """What ``filter_captions`` did; also written to ``OUT/report.json``.

    ``rows`` counts every non-blank input row of the shards that succeeded, ``bad_rows`` those
    that could not be scored (invalid JSON, no caption), listed (first 100) in
    ``bad_row_examples``. ``reasons`` counts each reason over scored rows; ``languages`` gives
    rows and kept rows per detected language. Failed shards wrote no output and are listed in
    ``failed_shards``.
    """

    input: str
    output: str
    min_score: float
    workers: int
    text_field: str | None
    rows: int = 0
    kept: int = 0
    bad_rows: int = 0
    kept_fraction: float = 0.0
    languages: dict[str, LanguageCount] = {}
    reasons: dict[str, int] = {}
    bad_row_examples: list[BadRow] = []
    shards: list[ShardStats] = []
    failed_shards: list[ShardFailure] = []
    seconds: float = 0.0
    rows_per_second: float = 0.0


def _discover(inp: Path) -> list[tuple[Path, str]]:
    def kind(p: Path) -> str | None:
        n = p.name.lower()
        if n.endswith(_JSONL_SUFFIXES):
            return "jsonl"
        return "tar" if n.endswith(_TAR_SUFFIXES) else None

    if inp.is_file():
        k = kind(inp)
        if k is None:
            raise FilterError(
                f"{inp}: not a caption file; expected .jsonl, .jsonl.gz, .tar, .tar.gz or .tgz"
            )
        return [(inp, k)]
    if inp.is_dir():
        shards = [(p, k) for p in sorted(inp.iterdir()) if p.is_file() and (k := kind(p))]
        if not shards:
            raise FilterError(f"{inp}: no *.jsonl, *.jsonl.gz or *.tar shards in this folder")
        return shards
    raise FilterError(f"{inp}: no such file or folder")


def _plan(
    shards: list[tuple[Path, str]], out: Path, workers: int, chunk_bytes: int, opts: dict
) -> list[Task]:
    tasks: list[Task] = []
    tag = f"{os.getpid()}"
    for path, kind in shards:
        ranges: list[tuple[int, int | None]] = [(0, None)]
        size = path.stat().st_size
        if kind == "jsonl" and not path.name.endswith(".gz") and workers > 1 and size > chunk_bytes:
            starts = list(range(0, size, chunk_bytes))
            ranges = [(s, s + chunk_bytes if s + chunk_bytes < size else None) for s in starts]
        for part, (start, end) in enumerate(ranges):
            stem = f".{path.name}.part{part}.{tag}"
            tasks.append(
                Task(
                    index=len(tasks),
                    shard=str(path),
                    name=path.name,
                    kind=kind,
                    start=start,
                    end=end,
                    kept_path=str(out / f"{stem}.tmp"),
                    reasons_path=str(out / f"{stem}.reasons.tmp"),
                    **opts,
                )
            )
    return tasks


def _append(dst: Any, src_path: str, line_offset: int) -> None:
    with open(src_path, "rb") as src:
        if line_offset == 0:
            shutil.copyfileobj(src, dst, _COPY_BUFFER)
            return
        for line in src:  # a later byte range: make its line numbers file-wide
            rec = json.loads(line)
            if rec.get("line") is not None:
                rec["line"] += line_offset
            dst.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))


def _assemble(
    tasks: list[Task], results: dict[int, TaskResult | str], out: Path, report: FilterReport
) -> None:
    """Rename/concatenate finished parts to final names; join reasons in input order."""
    by_shard: dict[str, list[Task]] = {}
    for t in tasks:
        by_shard.setdefault(t.name, []).append(t)
    reasons_tmp = out / f".reasons.jsonl.{os.getpid()}.tmp"
    with open(reasons_tmp, "wb") as reasons:
        for name, parts in by_shard.items():
            errors = [results[t.index] for t in parts if isinstance(results[t.index], str)]
            if errors:
                report.failed_shards.append(ShardFailure(shard=name, error=str(errors[0])))
                continue
            final = out / name
            if len(parts) == 1:
                os.replace(parts[0].kept_path, final)
            else:
                tmp = out / f".{name}.{os.getpid()}.tmp"
                with open(tmp, "wb") as dst:
                    for t in parts:
                        with open(t.kept_path, "rb") as src:
                            shutil.copyfileobj(src, dst, _COPY_BUFFER)
                os.replace(tmp, final)
            offset = 0
            stats = ShardStats(shard=name, rows=0, kept=0, bad=0, seconds=0.0)
            for t in parts:
                res = results[t.index]
                assert isinstance(res, TaskResult)
                _append(reasons, t.reasons_path, offset)
                for ex in res.bad_examples:
                    if len(report.bad_row_examples) < MAX_BAD_EXAMPLES:
                        if ex.get("line") is not None:
                            ex["line"] += offset
                        report.bad_row_examples.append(BadRow(**ex))
                offset += res.lines
                stats.rows += res.rows
                stats.kept += res.kept
                stats.bad += res.bad
                stats.seconds += res.seconds
                for lang, (n, k) in res.languages.items():
                    lc = report.languages.setdefault(lang, LanguageCount())
                    lc.rows += n
                    lc.kept += k
                for reason, n in res.reasons.items():
                    report.reasons[reason] = report.reasons.get(reason, 0) + n
            stats.seconds = round(stats.seconds, 3)
            report.shards.append(stats)
            report.rows += stats.rows
            report.kept += stats.kept
            report.bad_rows += stats.bad
    os.replace(reasons_tmp, out / "reasons.jsonl")


def filter_captions(
    inp: Path,
    out: Path,
    *,
    min_score: float = 0.5,
    workers: int = 1,
    text_field: str | None = None,
    progress: bool = True,
    chunk_bytes: int = 64 << 20,
) -> FilterReport:
    """Keep the Southeast-Asia-relevant rows of a caption dataset.

    Args:
        inp: a JSONL file (``.jsonl`` / ``.jsonl.gz``), a WebDataset tar shard, or a folder of
            such shards (not recursive). JSONL rows are objects with a caption field; tar
            samples are members grouped by key (``KEY.jpg`` + ``KEY.txt`` and/or ``KEY.json``).
        out: output folder (created). Gets one output shard per input shard, same name and
            format, holding the kept rows (JSONL lines byte-for-byte; tar samples with all
            their members), plus ``reasons.jsonl`` (one line per input row: shard, line or key,
            id, score, kept, language, reasons — or error) and ``report.json``.
        min_score: keep rows with ``score >= min_score`` (0..1).
        workers: processes. Shards are spread over a process pool; an uncompressed JSONL shard
            bigger than ``chunk_bytes`` is split into byte ranges so one big file uses them
            too. Output does not depend on the number of workers. Workers are *spawned*
            (safe with threads, same on every OS): a script calling this with ``workers > 1``
            needs the usual ``if __name__ == "__main__":`` guard.
        text_field: caption field (``caption``, ``meta.text``, ``captions[0]``; for tar, a
            key in ``KEY.json`` or ``txt``); default: the first of caption, text, alt,
            alt_text, txt, captions, description (tar: the ``.txt`` member, then the JSON).
        progress: show a progress bar (rows, shards) on stderr.
        chunk_bytes: byte-range size for splitting JSONL shards when ``workers > 1``.

    Returns:
        The :class:`FilterReport`, also saved as ``out/report.json``.

    Raises:
        FilterError: unusable input/output paths or arguments. Bad rows and unreadable shards
            do not raise: they are counted and listed in the report.
    """
    t0 = time.perf_counter()
    inp, out = Path(inp), Path(out)
    if not 0.0 <= min_score <= 1.0:
        raise FilterError(f"min_score must be between 0 and 1, got {min_score}")
    if workers < 1:
        raise FilterError(f"workers must be at least 1, got {workers}")
    if chunk_bytes < 1:
        raise FilterError(f"chunk_bytes must be positive, got {chunk_bytes}")
    shards = _discover(inp)
    if out.exists() and not out.is_dir():
        raise FilterError(f"{out}: exists and is not a folder; OUT must be a folder")
    for path, _ in shards:
        if path.name in _RESERVED:
            raise FilterError(f"{path}: shard name clashes with the filter's own {path.name}")
        if (out / path.name).resolve() == path.resolve():
            raise FilterError(f"{out}: writing there would overwrite the input {path}")
    out.mkdir(parents=True, exist_ok=True)
    entity_index()  # fail on bad entity data before any work, not once per process
    opts = {"min_score": min_score, "text_field": text_field}
    tasks = _plan(shards, out, workers, chunk_bytes, opts)
    report = FilterReport(
        input=str(inp), output=str(out), min_score=min_score, workers=workers, text_field=text_field
    )
    try:
        with _progress(progress, len(tasks)) as on_rows:
            results = execute_tasks(tasks, workers, on_rows)
        _assemble(tasks, results, out, report)
    finally:  # whatever happened, leave no temp files behind
        for t in tasks:
            Path(t.kept_path).unlink(missing_ok=True)
            Path(t.reasons_path).unlink(missing_ok=True)
        for tmp in out.glob(f".*.{os.getpid()}.tmp"):
            tmp.unlink(missing_ok=True)
    report.reasons = dict(sorted(report.reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    report.languages = dict(sorted(report.languages.items(), key=lambda kv: -kv[1].rows))
    report.kept_fraction = round(report.kept / report.rows, 4) if report.rows else 0.0
    report.seconds = round(time.perf_counter() - t0, 3)
    report.rows_per_second = round(report.rows / report.seconds, 1) if report.seconds else 0.0
    tmp = out / f".report.json.{os.getpid()}.tmp"
    tmp.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, out / "report.json")
    return report


@contextlib.contextmanager
def _progress(enabled: bool, n_tasks: int) -> Iterator[Callable[[int, int], None]]:
    if not enabled:
        yield lambda rows, done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]SEA filter[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("parts · {task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("filter", total=n_tasks, rows=0)
        yield lambda rows, done: bar.update(task, completed=done, rows=rows)
