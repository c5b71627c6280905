"""Training progress: a rich bar (loss, tokens/s, ETA), metrics.jsonl, TensorBoard if present."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, out: Path, *, total: int, start: int, enabled: bool, bar: bool) -> None:
        """``enabled``: this process writes metrics (the main one); ``bar``: draw the bar."""
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.tokens = 0
        self.path = out / "metrics.jsonl"
        self._bar = None
        self._tb = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # tensorboard is optional
            self._tb = None
        if not bar:
            return
        self._bar = RichProgress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self._task = self._bar.add_task("train", total=total, completed=start, loss="-", tps="-")
        self._bar.start()

    def step(self, step: int, loss: float, lr: float, tokens: int) -> None:
        if not self.enabled:
            return
        self.tokens += tokens
        elapsed = time.perf_counter() - self.t0
        tps = self.tokens / elapsed if elapsed > 0 else 0.0
        row = {
            "step": step,
            "loss": round(loss, 6),
            "lr": lr,
            "tokens": tokens,
            "tokens_per_s": round(tps, 1),
            "elapsed_s": round(elapsed, 2),
        }
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            self._tb.add_scalar("loss", loss, step)
            self._tb.add_scalar("lr", lr, step)
            self._tb.add_scalar("tokens_per_s", tps, step)
        if self._bar is not None:
            self._bar.update(self._task, completed=step, loss=f"{loss:.4f}", tps=f"{tps:.0f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self._tb is not None:
            self._tb.close()
