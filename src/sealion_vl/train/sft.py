"""``sealion_vl.train``: continued pre-training (cpt) and SFT for Gemma 3 / Qwen3-VL / Gemma 4.

Why our own loop rather than TRL's SFTTrainer: for VLMs it refuses packing, padding-free
batches and assistant-only loss, which are the point here. The loop stays small by
leaning on accelerate (DDP / FSDP / DeepSpeed, mixed precision, state saving) and peft.

Loss: summed token cross-entropy divided by the number of loss tokens in the whole
optimizer step across all processes (all-reduced), times the world size because DDP
averages gradients. So N processes with micro-batch b give the gradients of one process
with micro-batch N*b, and packing does not reweight long vs short samples.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from sealion_vl.data.formats import SkipReport
from sealion_vl.train import checkpoint
from sealion_vl.train.cache import FeatureCache
from sealion_vl.train.data import BatchStream
from sealion_vl.train.features import FeatureEncoder
from sealion_vl.train.packing import token_losses
from sealion_vl.train.progress import Progress
from sealion_vl.train.recipe import Recipe, dump_recipe


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    last_loss: float
    tokens: int
    skipped: dict


def _load(recipe: Recipe):
    """The model (float32 on the CPU, for the optimiser to place), processor and adapter,
    through the same loader chat and serving use."""
    from sealion_vl.runtime.load import load_parts

    p = load_parts(
        recipe.model,
        device="cpu",
        dtype="float32",
        attn_implementation=recipe.attn_implementation,
        multimodal_only=True,
    )
    return p.model, p.processor, p.adapter


def _freeze(model, adapter, recipe: Recipe) -> None:
    """Apply the freeze switches (and LoRA) by the adapter's parameter-name groups."""
    frozen = [g for g in ("vision", "projector", "language") if getattr(recipe.freeze, g)]
    for name, p in model.named_parameters():
        p.requires_grad_(_group_of(name, adapter) not in frozen)


def _group_of(name: str, adapter) -> str | None:
    """The adapter's module group (vision / projector / language) a parameter belongs to."""
    name = name.removeprefix("base_model.model.")  # a PEFT-wrapped model
    return next((g for g, pre in adapter.module_groups.items() if name.startswith(pre)), None)


def _param_groups(model, adapter, recipe: Recipe) -> list[dict]:
    """Trainable parameters, one optimizer group per learning rate (``optim.lr_scale``).

    Groups and their parameters follow the model's own parameter order, so a resumed run's
    optimizer state lines up with the saved one; without ``lr_scale`` there is one group.
    """
    scale = recipe.optim.lr_scale
    buckets: dict[float, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        factor = scale.get(_group_of(name, adapter), 1.0)
        buckets.setdefault(factor, []).append(p)
    return [{"params": ps, "lr": recipe.optim.lr * f} for f, ps in buckets.items()]


def _apply_lora(model, adapter, recipe: Recipe):
    from peft import LoraConfig, get_peft_model

    names = "|".join(recipe.lora.target_modules)
    lang = [p.rstrip(".") for p in adapter.module_groups["language"] if p != "lm_head."]
    pattern = r"(" + "|".join(x.replace(".", r"\.") for x in lang) + r")\..*\.(" + names + ")"
    cfg = LoraConfig(
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        target_modules=pattern,
    )
    trainable_non_lang = {
        n
        for n, p in model.named_parameters()
        if p.requires_grad and not any(n.startswith(x) for x in adapter.module_groups["language"])
    }
    with warnings.catch_warnings():
        # peft 0.21 asks transformers 5.23 the deprecated is_gradient_checkpointing; not ours
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        model = get_peft_model(model, cfg)
    for n, p in model.named_parameters():  # keep unfrozen projector / vision trainable too
        if n.removeprefix("base_model.model.") in trainable_non_lang:
            p.requires_grad_(True)
    return model


def _scheduler(optimizer, recipe: Recipe, total: int):
    warm = recipe.optim.warmup_steps

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / max(1, warm)
        if recipe.optim.schedule == "constant":
            return 1.0
        done = (step - warm) / max(1, total - warm)
        if recipe.optim.schedule == "linear":
            return max(0.0, 1.0 - done)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _count_steps(recipe: Recipe, stream_factory) -> int:
    """Steps in ``epochs`` passes (ranks agree on the minimum).

    It encodes the data once; the run's shared cache keeps what it encoded for training.
    """
    batches = sum(1 for _ in stream_factory())
    return max(1, batches // recipe.batch.grad_accum)


def train(recipe: Recipe, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Run a cpt or sft recipe; the result is a transformers checkpoint in ``output_dir``.

    Args:
        recipe: a validated :class:`Recipe` (see ``load_recipe``).
        resume: continue from the newest checkpoint in ``output_dir/checkpoints``.
        progress: show a rich progress bar (metrics always go to ``metrics.jsonl``).
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed

    # accelerate keeps a process-wide singleton; a second run() in one process (nano's three
    # stages, a notebook) may want another precision. The process group itself is kept.
    AcceleratorState._reset_state()
    # cpu=True on GPU-less machines: without it accelerate ignores torchrun's WORLD_SIZE on
    # CPU and every process trains alone (gloo is then used for the process group)
    accelerator = Accelerator(
        mixed_precision="bf16" if recipe.precision == "bf16" else "no",
        cpu=not torch.cuda.is_available(),
    )
    set_seed(recipe.seed)
    out = Path(recipe.output_dir)
    model, processor, adapter = _load(recipe)
    _freeze(model, adapter, recipe)
    if recipe.lora:
        model = _apply_lora(model, adapter, recipe)
    raw = model
    encoder = FeatureEncoder(
        model, processor, adapter, max_image_pixels=recipe.data.max_image_pixels
    )
    report = SkipReport()
    cache = FeatureCache(recipe.data.cache_mb * 2**20)

    def stream():
        return BatchStream(
            recipe,
            encoder,
            rank=accelerator.process_index,
            world=accelerator.num_processes,
            report=report,
            cache=cache,
        )

    total = recipe.max_steps
    if total is None:
        n = torch.tensor(_count_steps(recipe, stream), device=accelerator.device)
        total = int(accelerator.reduce(n, reduction="min") if accelerator.num_processes > 1 else n)
    groups = _param_groups(model, adapter, recipe)
    # the logged lr is the recipe's (unscaled) one, whatever group comes first
    first_scale = groups[0]["lr"] / recipe.optim.lr

    def base_lr() -> float:
        return scheduler.get_last_lr()[0] / first_scale

    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(
        groups,
        lr=recipe.optim.lr,
        betas=recipe.optim.betas,
        weight_decay=recipe.optim.weight_decay,
        foreach=True,  # one multi-tensor kernel per step instead of a Python loop
    )
    scheduler = _scheduler(optimizer, recipe, total)
    # The scheduler stays unprepared: accelerate would step it once per process per step
    # (it assumes each process sees 1/N of the steps); we step it once per optimizer step.
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)

    start = 0
    if resume and (ckpt := checkpoint.latest(out)) is not None:
        start = checkpoint.load(accelerator, ckpt)["step"]
    batches = iter(stream())
    for _ in range(start * recipe.batch.grad_accum):  # replay the data to the saved position
        next(batches)

    log = Progress(out, total=total, start=start, enabled=accelerator.is_main_process, bar=progress)
    loss_value, tokens_seen = float("nan"), 0
    model.train()
    for step in range(start, total):
        micro = [next(batches) for _ in range(recipe.batch.grad_accum)]
        n_tok = torch.tensor(
            sum(int((b["labels"] != -100).sum()) for b in micro),
            device=accelerator.device,
            dtype=torch.float64,
        )
        global_tok = (
            accelerator.reduce(n_tok, reduction="sum") if accelerator.num_processes > 1 else n_tok
        )
        scale = accelerator.num_processes / max(1.0, float(global_tok))
        step_loss = 0.0
        for i, b in enumerate(micro):
            b = {k: v.to(accelerator.device) for k, v in b.items()}
            sync = i == len(micro) - 1
            ctx = accelerator.no_sync(model) if not sync else _null()
            with ctx, accelerator.autocast():
                loss_sum = token_losses(model, b, adapter, raw).sum()
                accelerator.backward(loss_sum * scale)
            step_loss += float(loss_sum.detach())
        if recipe.optim.max_grad_norm:
            accelerator.clip_grad_norm_(params, recipe.optim.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tot = torch.tensor(
            [step_loss, float(n_tok)], device=accelerator.device, dtype=torch.float64
        )
        if accelerator.num_processes > 1:
            tot = accelerator.reduce(tot, reduction="sum")
        loss_value = float(tot[0] / max(1.0, float(tot[1])))
        tokens_seen += int(tot[1])
        if accelerator.is_main_process and (step + 1) % recipe.log_every == 0:
            log.step(step + 1, loss_value, base_lr(), int(tot[1]))
        if recipe.save_every and (step + 1) % recipe.save_every == 0 and step + 1 < total:
            checkpoint.save(
                accelerator, out, step + 1, {"tokens": tokens_seen}, recipe.keep_checkpoints
            )
    log.close()
    _save_final(accelerator, model, processor, recipe, report, out, cache.stats())
    return TrainResult(out, total, loss_value, tokens_seen, report.to_dict())


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _save_final(
    accelerator, model, processor, recipe: Recipe, report, out: Path, cache_stats: dict
) -> None:
    """Write a standard transformers checkpoint folder atomically (tmp dir, then rename)."""
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
    (tmp / "recipe.resolved.yaml").write_text(dump_recipe(recipe), encoding="utf-8")
    data_report = {**report.to_dict(), "encode_cache": cache_stats}  # main process's cache
    (tmp / "data_report.json").write_text(json.dumps(data_report, indent=1))
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    tmp.rmdir()
    (out / "DONE").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
