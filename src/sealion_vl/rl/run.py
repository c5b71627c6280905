"""``sealion_vl.rl.rl``: GRPO on image+text prompts with verifiable rewards, through TRL.

Why TRL's ``GRPOTrainer`` and not our own loop: rollout generation, group advantages, the
clipped policy loss, KL to a reference, and trainer checkpoints are all there, and it
drives the three families we run (Gemma 3 with its ``token_type_ids``, Qwen3-VL with
``mm_token_type_ids``/``image_grid_thw``, Gemma 4) unchanged when given the processor as
``processing_class`` and an ``images`` column. What we add: the recipe, the JSONL loader,
the reward registry, the freeze switches by the family adapter's module groups, a rich
progress bar with ``metrics.jsonl``, and an atomic, loadable final checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch

from sealion_vl.errors import SealionError
from sealion_vl.rl.config import RLRecipe, dump_rl_recipe
from sealion_vl.rl.registry import bind


class RLDataError(SealionError, ValueError):
    """The RL prompts file is missing or a row cannot be used (no prompt, missing image...)."""


def _read_rows(recipe: RLRecipe) -> list[dict]:
    """JSONL rows as TRL wants them: a conversational ``prompt``, an ``images`` list of paths,
    and every other key as a reward column (dicts and lists stored as JSON strings, which the
    rewards decode, so rows with different kwargs do not fight over one Arrow type)."""
    d = recipe.data
    path = Path(d.train)
    if not path.is_file():
        raise RLDataError(f"no RL prompts file at {str(path)!r} (data.train)")
    root = Path(d.image_root) if d.image_root else path.parent
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise RLDataError(f"{path}:{n}: not JSON ({e})") from None
            text = raw.pop(d.prompt_field, None)
            if not isinstance(text, str) or not text.strip():
                raise RLDataError(f"{path}:{n}: no text in {d.prompt_field!r} (data.prompt_field)")
            images = raw.pop(d.images_field, None) or []
            images = [images] if isinstance(images, str) else list(images)
            paths = []
            for img in images:
                p = Path(img) if Path(img).is_absolute() else root / img
                if not p.is_file():
                    raise RLDataError(f"{path}:{n}: image {img!r} not found (looked at {p})")
                paths.append(str(p))
            prompt = [{"role": "user", "content": text}]
            if d.system:
                prompt.insert(0, {"role": "system", "content": d.system})
            cols = {
                k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                for k, v in raw.items()
            }
            rows.append({"prompt": prompt, "images": paths, **cols})
            if d.max_rows and len(rows) >= d.max_rows:
                break
    if not rows:
        raise RLDataError(f"{path}: no rows")
    if len({tuple(sorted(r)) for r in rows}) > 1:
        raise RLDataError(f"{path}: rows have different keys; every row needs the same columns")
    return rows


def build_dataset(recipe: RLRecipe):
    """The ``datasets.Dataset`` GRPOTrainer reads (images decoded lazily from their paths)."""
    from datasets import Dataset, Image, List

    ds = Dataset.from_list(_read_rows(recipe))
    return ds.cast_column("images", List(Image()))


def _freeze(model, adapter, recipe: RLRecipe) -> int:
    """Freeze module groups by the adapter's name prefixes; returns trainable parameters."""
    frozen = [g for g in ("vision", "projector", "language") if getattr(recipe.freeze, g)]
    prefixes = [adapter.module_groups[g] for g in frozen]
    trainable = 0
    for name, p in model.named_parameters():
        keep = not any(name.startswith(pre) for pre in prefixes)
        p.requires_grad_(keep)
        trainable += p.numel() if keep else 0
    if not trainable:
        raise SealionError("every parameter is frozen (freeze.*): nothing for RL to train")
    return trainable


def _grpo_config(recipe: RLRecipe, out: Path):
    from trl import GRPOConfig

    g = recipe.grpo
    return GRPOConfig(
        output_dir=str(out / "checkpoints"),
        num_generations=g.num_generations,
        per_device_train_batch_size=g.prompts_per_step * g.num_generations,
        max_completion_length=g.max_completion_length,
        learning_rate=g.learning_rate,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=g.warmup_steps,
        max_steps=g.max_steps,
        beta=g.beta,
        temperature=g.temperature,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        max_grad_norm=g.max_grad_norm,
        reward_weights=[r.weight for r in recipe.rewards],
        seed=recipe.seed,
        data_seed=recipe.seed,
        bf16=recipe.precision == "bf16",
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=False,  # TRL turns it on by default; on small models it only slows
        save_strategy="steps" if g.save_every else "no",
        save_steps=g.save_every or 500,
        save_total_limit=g.keep_checkpoints,
        logging_steps=1,
        report_to=[],
        disable_tqdm=True,  # our rich bar instead
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )


def rl(recipe: RLRecipe, *, resume: bool = False, progress: bool = True) -> Path:
    """Run a GRPO recipe; the result is a transformers checkpoint folder (``output_dir``).

    Args:
        recipe: a validated :class:`RLRecipe` (see ``load_rl_recipe``).
        resume: continue from the newest trainer checkpoint in ``output_dir/checkpoints``
            (written every ``grpo.save_every`` steps); without one, start afresh.
        progress: show a rich progress bar (metrics always go to ``metrics.jsonl``).

    Returns:
        ``output_dir``, holding the weights, processor, chat template, the resolved recipe
        (``recipe.resolved.yaml``) and ``rl_report.json``; ``sealion_vl.load`` opens it.
    """
    try:
        from trl import GRPOTrainer
    except ImportError:  # pragma: no cover - depends on the environment
        raise SealionError("`sealion-vl rl` needs TRL: pip install trl==1.16.0") from None
    from transformers.trainer_utils import get_last_checkpoint

    from sealion_vl.rl.progress import RLProgress
    from sealion_vl.runtime.load import load_parts

    out = Path(recipe.output_dir)
    dataset = build_dataset(recipe)  # data errors before the model loads
    rewards = [bind(r.name, **r.params) for r in recipe.rewards]
    parts = load_parts(recipe.model, device="cpu", dtype="float32", multimodal_only=True)
    model, processor = parts.model, parts.processor
    _freeze(model, parts.adapter, recipe)
    out.mkdir(parents=True, exist_ok=True)
    config = _grpo_config(recipe, out)
    bar = RLProgress(out, total=recipe.grpo.max_steps, bar=progress)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=config,
        train_dataset=dataset,
        processing_class=processor,
        callbacks=[bar],
    )
    # metrics.jsonl (and the rich bar) replace transformers' printed log dicts
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    ckpts = Path(config.output_dir)
    last = get_last_checkpoint(str(ckpts)) if resume and ckpts.is_dir() else None
    t0 = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=last)
    finally:
        bar.close()
    report = {
        "steps": trainer.state.global_step,
        "resumed_from": last,
        "seconds": round(time.perf_counter() - t0, 1),
        "last_log": bar.last,
    }
    _save_final(trainer.model, processor, recipe, report, out)
    return out


def _save_final(model, processor, recipe: RLRecipe, report: dict, out: Path) -> None:
    """A standard checkpoint folder, written to a temporary folder then moved in file by file
    (each a rename); ``DONE`` marks a complete one."""
    tmp = out / ".final-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    (tmp / "recipe.resolved.yaml").write_text(dump_rl_recipe(recipe), encoding="utf-8")
    (tmp / "rl_report.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "DONE").unlink(missing_ok=True)
    for f in tmp.iterdir():
        if (out / f.name).is_dir():
            shutil.rmtree(out / f.name)
        os.replace(f, out / f.name)
    tmp.rmdir()
    (out / "DONE").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
