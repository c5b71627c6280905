"""A TrainerCallback that shows GRPO as a rich bar (step, reward, loss) and logs metrics.jsonl.

TRL logs through transformers' callback system; turning its tqdm bar off and listening to
``on_log`` gives the same bar and metrics file as ``sealion-vl train``.
"""

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
from transformers import TrainerCallback


class RLProgress(TrainerCallback):
    """Appends one JSON row per logged step to ``out/metrics.jsonl``; draws the bar if asked."""

    def __init__(self, out: Path, *, total: int, bar: bool) -> None:
        self.path = Path(out) / "metrics.jsonl"
        self.t0 = time.perf_counter()
        self.last: dict = {}
        self._bar = None
        if bar:
            self._bar = RichProgress(
                TextColumn("[bold]rl"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("reward {task.fields[reward]}"),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self._task = self._bar.add_task("rl", total=total, reward="-", loss="-")
            self._bar.start()

    def on_train_begin(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.update(self._task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "reward" not in logs:
            return
        row = {"step": state.global_step, "elapsed_s": round(time.perf_counter() - self.t0, 2)}
        row |= {k: v for k, v in logs.items() if isinstance(v, (int, float))}
        self.last = row
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=state.global_step,
                reward=f"{logs['reward']:.3f}",
                loss=f"{logs.get('loss', float('nan')):.4f}",
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
