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
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from sealion_vl.data.formats import SkipReport
from sealion_vl.train import checkpoint, optim
from sealion_vl.train.cache import FeatureCache
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


def train(recipe: Recipe, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Run a cpt or sft recipe; the result is a transformers checkpoint in ``output_dir``.

    Args:
        recipe: a validated :class:`Recipe` (see ``load_recipe``).
        resume: continue from the newest checkpoint in ``output_dir/checkpoints``.
        progress: show a rich progress bar (metrics always go to ``metrics.jsonl``).
    """
    from accelerate.utils import set_seed

    accelerator = optim.accelerator_for(recipe.precision)
    set_seed(recipe.seed)
    out = Path(recipe.output_dir)
    parts = optim.load_trainable(recipe.model, recipe.attn_implementation)
    model, processor, adapter = parts.model, parts.processor, parts.adapter
    optim.freeze(model, adapter, recipe.freeze)
    if recipe.lora:
        model = _apply_lora(model, adapter, recipe)
    raw = model
    encoder = FeatureEncoder(
        model, processor, adapter, max_image_pixels=recipe.data.max_image_pixels
    )
    report = SkipReport()
    cache = FeatureCache(recipe.data.cache_mb * 2**20)

    stream = optim.batch_streams(recipe, encoder, accelerator, report, cache)
    total = optim.total_steps(recipe, stream, accelerator)
    groups = optim.param_groups(model, adapter, recipe.optim)
    # the logged lr is the recipe's (unscaled) one, whatever group comes first
    first_scale = groups[0]["lr"] / recipe.optim.lr

    def base_lr() -> float:
        return scheduler.get_last_lr()[0] / first_scale

    params = [p for g in groups for p in g["params"]]
    optimizer = optim.adamw(groups, recipe.optim)
    scheduler = optim.lr_schedule(optimizer, recipe.optim, total)  # unprepared: see its doc
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)

    start, batches = optim.resume_from(accelerator, out, resume, stream, recipe.batch.grad_accum)

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
            ctx = accelerator.no_sync(model) if not sync else nullcontext()
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
    data_report = {**report.to_dict(), "encode_cache": cache.stats()}  # main process's cache
    files = {
        "recipe.resolved.yaml": dump_recipe(recipe),
        "data_report.json": json.dumps(data_report, indent=1),
    }
    optim.save_final(accelerator, model, processor, out, files)
    return TrainResult(out, total, loss_value, tokens_seen, report.to_dict())
