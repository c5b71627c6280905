"""Resumable training state: model, optimizer, scheduler, RNG and data position.

Each checkpoint is written to a temporary folder and renamed into place, so a run killed
mid-save (even by SIGKILL) leaves the previous checkpoint intact and never a half one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

STATE = "trainer_state.json"


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def latest(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if p.name.startswith("step-") and (p / STATE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def save(accelerator, output_dir: str | Path, step: int, state: dict, keep: int) -> Path:
    """Save accelerate's state (weights, optimizer, scheduler, RNG) plus ``state`` for step."""
    root = checkpoints_dir(output_dir)
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE).write_text(json.dumps({"step": step, **state}, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        old = sorted(
            (p for p in root.iterdir() if p.name.startswith("step-")),
            key=lambda p: int(p.name.split("-")[1]),
        )
        for p in old[:-keep]:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load(accelerator, path: Path) -> dict:
    """Restore accelerate's state from ``path``; returns the saved trainer state."""
    accelerator.load_state(str(path))
    return json.loads((path / STATE).read_text())
