"""The training plumbing ``train`` and ``distill`` share: accelerator, freezing, optimizer
groups, learning-rate schedule, step count and the final checkpoint.

Why one copy: a distillation run must schedule, resume and save exactly as an SFT run does
(same parameter order in the optimizer state, same schedule, same atomic final folder), so
both loops call these functions instead of keeping their own versions in step.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sealion_vl.train import checkpoint
from sealion_vl.train.data import BatchStream
from sealion_vl.train.recipe import FreezeConfig, OptimConfig, Recipe, TrainingRun

GROUPS = ("vision", "projector", "language")


def accelerator_for(precision: str):
    """A fresh :class:`accelerate.Accelerator` for ``precision`` (``fp32`` or ``bf16``).

    accelerate keeps a process-wide singleton; a second run in one process (nano's three
    stages, a notebook, distillation after training) may want another precision, so the
    state is reset first (the process group itself is kept). ``cpu=True`` on GPU-less
    machines: without it accelerate ignores torchrun's WORLD_SIZE on CPU and every process
    trains alone (gloo is then used for the process group).
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    return Accelerator(
        mixed_precision="bf16" if precision == "bf16" else "no",
        cpu=not torch.cuda.is_available(),
    )


def load_trainable(name: str, attn_implementation: str | None = None):
    """The model to train (float32 on the CPU, for the optimizer to place), its processor and
    adapter, through the same loader chat and serving use."""
    from sealion_vl.runtime.load import load_parts

    return load_parts(
        name,
        device="cpu",
        dtype="float32",
        attn_implementation=attn_implementation,
        multimodal_only=True,
    )


def batch_streams(recipe: Recipe, encoder, accelerator, report, cache) -> Callable[[], BatchStream]:
    """A factory of this process's batch stream (one per pass: step count, then training).

    Every pass shares ``report`` (skips) and ``cache`` (encoded samples), so counting the
    steps of an ``epochs`` run encodes the data once.
    """
    return functools.partial(
        BatchStream,
        recipe,
        encoder,
        rank=accelerator.process_index,
        world=accelerator.num_processes,
        report=report,
        cache=cache,
    )


def group_of(name: str, adapter) -> str | None:
    """The adapter's module group (vision / projector / language) a parameter belongs to."""
    name = name.removeprefix("base_model.model.")  # a PEFT-wrapped model
    return next((g for g, pre in adapter.module_groups.items() if name.startswith(pre)), None)


def freeze(model, adapter, cfg: FreezeConfig) -> None:
    """Apply the freeze switches by the adapter's parameter-name groups (others train)."""
    frozen = [g for g in GROUPS if getattr(cfg, g)]
    for name, p in model.named_parameters():
        p.requires_grad_(group_of(name, adapter) not in frozen)


def param_groups(model, adapter, optim: OptimConfig) -> list[dict]:
    """Trainable parameters, one optimizer group per learning rate (``optim.lr_scale``).

    Groups and their parameters follow the model's own parameter order, so a resumed run's
    optimizer state lines up with the saved one; without ``lr_scale`` there is one group.
    """
    buckets: dict[float, list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            buckets.setdefault(optim.lr_scale.get(group_of(name, adapter), 1.0), []).append(p)
    return [{"params": ps, "lr": optim.lr * f} for f, ps in buckets.items()]


def adamw(groups: list[dict], optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW over ``groups`` with the recipe's betas and weight decay."""
    return torch.optim.AdamW(
        groups,
        lr=optim.lr,
        betas=optim.betas,
        weight_decay=optim.weight_decay,
        foreach=True,  # one multi-tensor kernel per step instead of a Python loop
    )


def lr_factor(optim: OptimConfig, total: int) -> Callable[[int], float]:
    """The learning-rate multiplier at each step: linear warmup, then cosine, linear or flat."""
    warm = optim.warmup_steps

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / max(1, warm)
        if optim.schedule == "constant":
            return 1.0
        done = (step - warm) / max(1, total - warm)
        if optim.schedule == "linear":
            return max(0.0, 1.0 - done)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))

    return factor


def lr_schedule(optimizer, optim: OptimConfig, total: int):
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` of :func:`lr_factor`.

    Keep it unprepared: accelerate would step it once per process per step (it assumes each
    process sees 1/N of the steps); the loops step it once per optimizer step and register it
    for checkpointing.
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(optim, total))


def resume_from(accelerator, out: Path, resume: bool, stream_factory, grad_accum: int):
    """The step to start at and the batch iterator positioned there.

    With ``resume``, the newest checkpoint in ``out/checkpoints`` restores the prepared model,
    optimizer and registered scheduler, and the data stream is replayed to the saved
    position, so a resumed run sees the batches an unbroken one would have.

    Returns:
        ``(start, batches)``: 0 and a fresh stream when there is nothing to resume.
    """
    start = 0
    if resume and (ckpt := checkpoint.latest(out)) is not None:
        start = checkpoint.load(accelerator, ckpt)["step"]
    batches = iter(stream_factory())
    for _ in range(start * grad_accum):
        next(batches)
    return start, batches


def total_steps(recipe: TrainingRun, stream_factory, accelerator) -> int:
    """``max_steps``, or the optimizer steps in ``epochs`` passes (ranks agree on the minimum).

    Counting encodes the data once; the run's shared feature cache keeps what it encoded.
    """
    if recipe.max_steps is not None:
        return recipe.max_steps
    n = max(1, sum(1 for _ in stream_factory()) // recipe.batch.grad_accum)
    if accelerator.num_processes == 1:
        return n
    n = torch.tensor(n, device=accelerator.device)
    return int(accelerator.reduce(n, reduction="min"))


def save_final(accelerator, model, processor, out: Path, files: dict[str, str]) -> None:
    """Write a standard transformers checkpoint folder atomically (tmp dir, then rename).

    ``files`` are extra text files (resolved recipe, data report) saved beside the weights;
    a LoRA model is merged first. ``DONE`` is written last, once everything is in place.
    """
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    is_peft = hasattr(unwrapped, "merge_and_unload")
    # a collective under FSDP / ZeRO-3 (gathers the full weights), so every rank calls it
    state = None if is_peft else accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return
    tmp = out / ".final-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if is_peft:
        unwrapped.merge_and_unload().save_pretrained(tmp)
    else:
        unwrapped.save_pretrained(tmp, state_dict=state)
    processor.save_pretrained(tmp)
    for name, text in files.items():
        (tmp / name).write_text(text, encoding="utf-8")
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    tmp.rmdir()
    (out / "DONE").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
