"""A rich progress bar per task: items done of total (resumed items counted at once),
items/s over the generated ones, and ETA."""

from __future__ import annotations

import threading
import time

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Rate(ProgressColumn):
    def render(self, task) -> Text:
        rate = task.fields.get("rate")
        return Text(f"{rate:.2f} items/s" if rate else "- items/s", style="cyan")


class EvalProgress:
    """One bar per task; thread-safe ``advance`` (endpoint replies arrive concurrently)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bars: dict = {}
        self._lock = threading.Lock()
        self._progress = (
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _Rate(),
                TimeRemainingColumn(),
                transient=False,
            )
            if enabled
            else None
        )

    def __enter__(self) -> EvalProgress:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress:
            self._progress.stop()

    def start(self, name: str, total: int, already: int) -> None:
        """A bar for ``name``; ``already`` items came from the store (a resumed run)."""
        with self._lock:
            tid = None
            if self._progress:
                tid = self._progress.add_task(name, total=total, completed=already)
            self._bars[name] = [tid, time.perf_counter(), 0, total]

    def advance(self, name: str) -> None:
        with self._lock:
            bar = self._bars[name]
            bar[2] += 1
            if self._progress:
                rate = bar[2] / max(time.perf_counter() - bar[1], 1e-9)
                self._progress.update(bar[0], advance=1, rate=rate)

    def finish(self, name: str) -> None:
        with self._lock:
            bar = self._bars[name]
            if self._progress:
                self._progress.update(bar[0], completed=bar[3])
