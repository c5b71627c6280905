"""One task of the SEA filter job (:mod:`sealion_vl.data.sea.filter`), and the pool running them.

A task is one shard, or a byte range of an uncompressed JSONL shard; it streams its rows one
at a time through :func:`~sealion_vl.data.sea.score.score_caption` into two temp part files
(kept rows, reasons lines) that the job assembles afterwards. Tasks run in spawned worker
processes, so everything here is picklable and imported by each worker.
"""

from __future__ import annotations

import gzip
import io
import json
import multiprocessing
import re
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealion_vl.data.readers import split_key
from sealion_vl.data.sea.score import ScoreResult, score_caption

_CAPTION_KEYS = ("caption", "text", "alt", "alt_text", "alttext", "txt", "captions", "description")
_ID_KEYS = ("id", "key", "__key__", "uid", "sample_id", "image_id")
_TAR_TEXT_EXTS = ("txt", "text", "caption")
MAX_BAD_EXAMPLES = 100
_TICK_EVERY = 500
_TICK: Callable[[int], None] | None = None  # progress hook, set per process


@dataclass
class Task:
    index: int
    shard: str  # input path
    name: str  # output file name
    kind: str  # "jsonl" | "tar"
    start: int
    end: int | None
    kept_path: str
    reasons_path: str
    min_score: float
    text_field: str | None


@dataclass
class TaskResult:
    index: int
    rows: int = 0
    kept: int = 0
    bad: int = 0
    lines: int = 0
    languages: dict[str, list[int]] = field(default_factory=dict)
    reasons: Counter = field(default_factory=Counter)
    bad_examples: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _get_path(row: Any, path: str) -> Any:
    """``meta.caption`` / ``captions[0]`` style lookup; None when absent."""
    cur = row
    for part in path.split("."):
        m = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])*)", part)
        if m is None:
            return None
        if m.group(1):
            cur = cur.get(m.group(1)) if isinstance(cur, Mapping) else None
        for idx in re.findall(r"\[(\d+)\]", m.group(2)):
            cur = cur[int(idx)] if isinstance(cur, list) and int(idx) < len(cur) else None
    return cur


def _as_text(value: Any) -> str | None:
    if isinstance(value, list):  # captions: ["first", "second"]
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _caption(row: Mapping[str, Any], text_field: str | None) -> str | None:
    if text_field:
        return _as_text(_get_path(row, text_field))
    for k in _CAPTION_KEYS:
        for key in (k, k.upper(), k.capitalize()):
            if key in row:
                return _as_text(row[key])
    return None


def _row_id(row: Mapping[str, Any]) -> str | None:
    for k in _ID_KEYS:
        v = row.get(k)
        if isinstance(v, str | int) and not isinstance(v, bool):
            return str(v)
    return None


def _no_caption(text_field: str | None) -> str:
    return (
        f"no caption in field {text_field!r}"
        if text_field
        else f"no caption (looked for {', '.join(_CAPTION_KEYS)}; use --text-field)"
    )


class _Sink:
    """Per-task writer of reasons lines and counters."""

    def __init__(self, task: Task, reasons_file: Any) -> None:
        self.task, self.out, self.res = task, reasons_file, TaskResult(task.index)
        self._pending = 0

    def _tick(self) -> None:
        self._pending += 1
        if self._pending >= _TICK_EVERY:
            self.flush_ticks()

    def flush_ticks(self) -> None:
        if _TICK is not None and self._pending:
            _TICK(self._pending)
        self._pending = 0

    def _loc(self, line: int | None, key: str | None) -> dict[str, Any]:
        loc: dict[str, Any] = {"shard": self.task.name}
        if key is not None and line is None:
            loc["key"] = key
        else:
            loc["line"] = line
        return loc

    def bad(self, line: int | None, key: str | None, row_id: str | None, error: str) -> None:
        r = self.res
        r.rows += 1
        r.bad += 1
        rec = self._loc(line, key) | {"id": row_id, "kept": False, "error": error}
        if len(r.bad_examples) < MAX_BAD_EXAMPLES:
            r.bad_examples.append(self._loc(line, key) | {"error": error})
        self.out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._tick()

    def scored(
        self, line: int | None, key: str | None, row_id: str | None, res: ScoreResult
    ) -> bool:
        kept = res.score >= self.task.min_score
        r = self.res
        r.rows += 1
        r.kept += kept
        lang = r.languages.setdefault(res.language, [0, 0])
        lang[0] += 1
        lang[1] += kept
        r.reasons.update(res.reasons)
        rec = self._loc(line, key) | {
            "id": row_id,
            "score": res.score,
            "kept": kept,
            "language": res.language,
            "reasons": res.reasons,
        }
        self.out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._tick()
        return kept


def _jsonl_lines(task: Task) -> Iterator[bytes]:
    """The task's raw lines, read one at a time (byte range: lines that start inside it)."""
    if task.shard.endswith(".gz"):
        with gzip.open(task.shard, "rb") as f:
            yield from f
        return
    with open(task.shard, "rb") as f:
        pos = task.start
        if pos > 0:
            f.seek(pos - 1)
            pos += len(f.readline()) - 1  # skip the line that started in the previous range
        while task.end is None or pos < task.end:
            line = f.readline()
            if not line:
                return
            pos += len(line)
            yield line


def _run_jsonl(task: Task, sink: _Sink, kept_out: Any) -> None:
    for n, raw in enumerate(_jsonl_lines(task), 1):
        sink.res.lines = n
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
            sink.bad(n, None, None, f"invalid JSON: {e}")
            continue
        if not isinstance(row, dict):
            sink.bad(n, None, None, f"not a JSON object: {type(row).__name__}")
            continue
        text = _caption(row, task.text_field)
        if text is None:
            sink.bad(n, None, _row_id(row), _no_caption(task.text_field))
            continue
        if sink.scored(n, None, _row_id(row), score_caption(text, row)):
            kept_out.write(raw if raw.endswith(b"\n") else raw + b"\n")


def _tar_samples(path: str) -> Iterator[tuple[str, list[tuple[tarfile.TarInfo, str, bytes]]]]:
    """Consecutive members sharing a key, streamed (``r|*``: no seeking, no index)."""
    with tarfile.open(path, mode="r|*") as tf:
        key, group = None, []
        for m in tf:
            if not m.isfile():
                continue
            k, ext = split_key(m.name)
            f = tf.extractfile(m)
            data = f.read() if f is not None else b""
            if k != key and group:
                yield key, group
                group = []
            key = k
            group.append((m, ext, data))
        if group:
            yield key, group


def _run_tar(task: Task, sink: _Sink, kept_tar: tarfile.TarFile) -> None:
    for key, members in _tar_samples(task.shard):
        texts: dict[str, str | None] = {}
        meta: Any = {}
        error = None
        for _, ext, data in members:
            if ext == "json":
                try:
                    meta = json.loads(data)
                except ValueError as e:
                    error = f"invalid JSON in {key}.json: {e}"
                if not isinstance(meta, dict):
                    error, meta = error or f"{key}.json is not a JSON object", {}
            elif ext in _TAR_TEXT_EXTS:
                texts.setdefault(ext, _as_text(data.decode("utf-8", errors="replace")))
        if task.text_field:  # a key of KEY.json, else a text member's extension ("txt")
            text = _caption(meta, task.text_field) or texts.get(task.text_field)
        else:
            text = next((t for t in texts.values() if t), None) or _caption(meta, None)
        row_id = _row_id(meta) or key
        if error is None and text is None:
            error = f"sample {key}: no .txt member and " + _no_caption(task.text_field)
        if error is not None:
            sink.bad(None, key, row_id, error)
            continue
        if sink.scored(None, key, row_id, score_caption(text, meta)):
            for info, _, data in members:
                kept_tar.addfile(info, io.BytesIO(data))


def _run_task(task: Task) -> TaskResult:
    """Process one task into its two part files; on any error remove them and raise."""
    t0 = time.perf_counter()
    try:
        with (
            open(task.kept_path, "wb") as raw_out,
            open(task.reasons_path, "w", encoding="utf-8") as reasons,
        ):
            sink = _Sink(task, reasons)
            gz = task.name.endswith((".gz", ".tgz"))
            # mtime=0: byte-identical output from run to run
            out = gzip.GzipFile(fileobj=raw_out, mode="wb", mtime=0) if gz else raw_out
            try:
                if task.kind == "jsonl":
                    _run_jsonl(task, sink, out)
                else:
                    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
                        _run_tar(task, sink, tf)
            finally:
                if gz:
                    out.close()
            sink.flush_ticks()
    except BaseException as e:
        for p in (task.kept_path, task.reasons_path):
            Path(p).unlink(missing_ok=True)
        if isinstance(e, Exception):
            raise _TaskFailed(f"{type(e).__name__}: {e}") from None
        raise
    sink.res.seconds = time.perf_counter() - t0
    return sink.res


class _TaskFailed(Exception):
    """A shard could not be read (corrupt gzip/tar, unreadable file); picklable across processes."""


def _init_worker(counter: Any) -> None:
    global _TICK

    def tick(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    _TICK = tick


def execute_tasks(
    tasks: list[Task], workers: int, on_rows: Callable[[int, int], None]
) -> dict[int, TaskResult | str]:
    """Run every task; a failed task maps to its error message. on_rows(rows, tasks_done)."""
    global _TICK
    results: dict[int, TaskResult | str] = {}
    if workers <= 1 or len(tasks) <= 1:
        rows = [0]

        def tick(n: int) -> None:
            rows[0] += n
            on_rows(rows[0], len(results))

        _TICK = tick
        try:
            for t in tasks:
                try:
                    results[t.index] = _run_task(t)
                except _TaskFailed as e:
                    results[t.index] = str(e)
                on_rows(rows[0], len(results))
        finally:
            _TICK = None
        return results
    # spawn: safe with threads in the parent (fork is not), same behaviour on every OS
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    with ProcessPoolExecutor(
        min(workers, len(tasks)), mp_context=ctx, initializer=_init_worker, initargs=(counter,)
    ) as pool:
        futures = {pool.submit(_run_task, t): t.index for t in tasks}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in done:
                    try:
                        results[futures[fut]] = fut.result()
                    except Exception as e:  # _TaskFailed, or a worker that died
                        results[futures[fut]] = str(e) or type(e).__name__
                on_rows(counter.value, len(results))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results
