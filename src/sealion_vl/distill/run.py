"""``distill``: train a student on a teacher's distributions (offline cache or online teacher).

Why our own loop and not TRL's GKDTrainer: GKD needs equal vocabularies, has no offline
logit cache and no packed multimodal batches. The loop is the SFT loop's shape: the same
data stream (:class:`~sealion_vl.train.data.BatchStream`: shuffle, encode, pack), the same
token-count loss normalisation, the same accelerate state checkpoints
(:mod:`sealion_vl.train.checkpoint`), so a killed run resumes to the same weights.

Loss per optimizer step: ``(alpha * T^2 * sum of divergences + (1 - alpha) * sum of token
cross-entropies) / loss tokens in the step``. T^2 keeps the distillation gradient's scale
independent of the temperature (Hinton et al.).

Offline mode: each sample's features carry ``distill_index``, the global cache token number
of every loss position (-1 elsewhere), so packing and collation carry the teacher rows to the
right places for free; the cache file is read only at those positions.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import torch

from sealion_vl.data.formats import SkipReport
from sealion_vl.distill.cache import TopKCache, labels_hash
from sealion_vl.distill.config import DistillRecipe, dump_distill_recipe
from sealion_vl.distill.losses import full_divergence, shared_vocab, tokenizer_hash, topk_divergence
from sealion_vl.distill.teacher import Teacher, build_cache, logits_at_labels
from sealion_vl.errors import SealionError
from sealion_vl.train import checkpoint, optim
from sealion_vl.train.cache import FeatureCache
from sealion_vl.train.features import IGNORE, FeatureEncoder
from sealion_vl.train.progress import Progress

INDEX = "distill_index"


class CacheIndexEncoder:
    """The student's encoder, plus each loss token's teacher cache row (``distill_index``)."""

    def __init__(self, encoder: FeatureEncoder, cache: TopKCache) -> None:
        self.encoder, self.cache, self.pad_id = encoder, cache, encoder.pad_id

    def __call__(self, sample_id: str, messages):
        f = self.encoder(sample_id, messages)
        labels = f.tokens["labels"]
        keep = labels != IGNORE
        index = torch.full_like(labels, -1)
        if keep.any():
            entry = self.cache.rows.get(sample_id)
            if entry is None:
                raise SealionError(
                    f"training sample {sample_id!r} is not in the teacher cache {self.cache.path} "
                    "(built from other data?); delete the cache file to rebuild it"
                )
            first, n, digest = entry
            targets = labels[keep]
            if n != targets.numel() or labels_hash(targets) != digest:
                raise SealionError(
                    f"sample {sample_id!r}: its target tokens differ from the cached ones "
                    f"({targets.numel()} vs {n} tokens) in {self.cache.path}; the data or the "
                    "chat template changed since the cache was built: delete it to rebuild"
                )
            index[keep] = torch.arange(first, first + n)
        f.tokens[INDEX] = index
        return f


class SameInputsEncoder:
    """The student's encoder, refusing samples the teacher would see differently (online mode)."""

    def __init__(self, encoder: FeatureEncoder, teacher_encoder: FeatureEncoder) -> None:
        self.encoder, self.teacher, self.pad_id = encoder, teacher_encoder, encoder.pad_id

    def __call__(self, sample_id: str, messages):
        f = self.encoder(sample_id, messages)
        g = self.teacher(sample_id, messages)
        same = torch.equal(f.tokens["input_ids"], g.tokens["input_ids"])
        same = (
            same
            and f.media.keys() == g.media.keys()
            and all(torch.equal(f.media[k], g.media[k]) for k in f.media)
        )
        if not same:
            raise SealionError(
                f"sample {sample_id!r}: the teacher's processor encodes it differently from the "
                "student's (image size or tokens per image differ), so one batch cannot feed "
                "both; use the offline cache (online: false), which aligns tokens per sample"
            )
        return f


def _ensure_cache(recipe: DistillRecipe, accelerator, student_hash: str, progress: bool):
    """Reuse the recipe's cache when it matches the recipe, else build it (main process)."""
    path = recipe.cache_path()
    if accelerator.is_main_process and not path.exists():
        build_cache(recipe, student_hash=student_hash, progress=progress)
    accelerator.wait_for_everyone()
    cache = TopKCache(path)
    h = cache.header
    want = {"teacher": recipe.teacher, "temperature": recipe.temperature}
    wrong = {k: (h.get(k), v) for k, v in want.items() if h.get(k) != v}
    if h["k"] != min(recipe.k, h["n_vocab"]):
        wrong["k"] = (h["k"], recipe.k)
    if wrong:
        detail = ", ".join(f"{k}: cache {a!r} vs recipe {b!r}" for k, (a, b) in wrong.items())
        raise SealionError(
            f"the teacher cache {path} was built with other settings ({detail}); delete it to "
            "rebuild, or set `cache:` to another file"
        )
    return cache


def distill(recipe: DistillRecipe, *, resume: bool = False, progress: bool = True) -> Path:
    """Distil ``recipe.teacher`` into ``recipe.student``; returns the checkpoint folder.

    Args:
        recipe: a validated :class:`DistillRecipe` (see ``load_distill_recipe``).
        resume: continue from the newest checkpoint in ``output_dir/checkpoints``.
        progress: show rich progress bars (metrics always go to ``metrics.jsonl``).

    Returns:
        ``output_dir``: a transformers checkpoint (loads with ``sealion_vl.load``), the
        resolved recipe and ``distill_metrics.jsonl`` (divergence and label loss per step).
    """
    from accelerate.utils import set_seed

    accelerator = optim.accelerator_for(recipe.precision)
    set_seed(recipe.seed)
    out = Path(recipe.output_dir)
    parts = optim.load_trainable(recipe.student, recipe.attn_implementation)
    model, processor, adapter = parts.model, parts.processor, parts.adapter
    s_hash = tokenizer_hash(processor.tokenizer)
    s_vocab = int(model.get_output_embeddings().weight.shape[0])
    encoder = FeatureEncoder(
        model, processor, adapter, max_image_pixels=recipe.data.max_image_pixels
    )
    teacher = cache = None
    if recipe.online:
        teacher = Teacher(
            recipe.teacher,
            dtype=recipe.teacher_dtype,
            device=str(accelerator.device),
            max_image_pixels=recipe.data.max_image_pixels,
        )
        n_vocab = shared_vocab(
            teacher.tokenizer_hash, s_hash, teacher.n_tokens, teacher.vocab_size, s_vocab
        )
        encoder = SameInputsEncoder(encoder, teacher.encoder)
    else:
        cache = _ensure_cache(recipe, accelerator, s_hash, progress)
        h = cache.header
        n_vocab = shared_vocab(
            h["tokenizer_hash"], s_hash, h["n_vocab"], h["teacher_vocab"], s_vocab
        )
        encoder = CacheIndexEncoder(encoder, cache)
    report, feature_cache = SkipReport(), FeatureCache(recipe.data.cache_mb * 2**20)
    stream = optim.batch_streams(recipe.train_recipe(), encoder, accelerator, report, feature_cache)
    total = optim.total_steps(recipe, stream, accelerator)
    optim.freeze(model, adapter, recipe.freeze)
    groups = optim.param_groups(model, adapter, recipe.optim)
    params = [p for g in groups for p in g["params"]]
    optimizer = optim.adamw(groups, recipe.optim)
    scheduler = optim.lr_schedule(optimizer, recipe.optim, total)
    raw = model
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)  # stepped once per step, as in train
    start, batches = optim.resume_from(accelerator, out, resume, stream, recipe.batch.grad_accum)

    main = accelerator.is_main_process
    log = Progress(out, total=total, start=start, enabled=main, bar=progress)
    t2, alpha = recipe.temperature**2, recipe.alpha
    model.train()
    for step in range(start, total):
        micro = [next(batches) for _ in range(recipe.batch.grad_accum)]
        n_tok = torch.tensor(
            sum(int((b["labels"] != IGNORE).sum()) for b in micro),
            device=accelerator.device,
            dtype=torch.float64,
        )
        if accelerator.num_processes > 1:
            n_tok = accelerator.reduce(n_tok, reduction="sum")
        scale = accelerator.num_processes / max(1.0, float(n_tok))
        sums = torch.zeros(2, dtype=torch.float64)
        for i, b in enumerate(micro):
            b = {k: v.to(accelerator.device) for k, v in b.items()}
            ctx = accelerator.no_sync(model) if i < len(micro) - 1 else nullcontext()
            with ctx, accelerator.autocast():
                logits, labels = logits_at_labels(model, b, adapter, raw)
                if teacher is not None:
                    div = full_divergence(
                        logits,
                        teacher.logits(b),
                        recipe.loss,
                        temperature=recipe.temperature,
                        n_vocab=n_vocab,
                    )
                else:
                    top = cache.gather(b[INDEX][b["labels"] != IGNORE])
                    div = topk_divergence(
                        logits, top, recipe.loss, temperature=recipe.temperature, n_vocab=n_vocab
                    )
                kd = div.sum() * t2
                ce = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum")
                accelerator.backward((alpha * kd + (1 - alpha) * ce) * scale)
            sums += torch.tensor([float(kd.detach()), float(ce.detach())], dtype=torch.float64)
        if recipe.optim.max_grad_norm:
            accelerator.clip_grad_norm_(params, recipe.optim.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if accelerator.num_processes > 1:
            sums = accelerator.reduce(sums.to(accelerator.device), reduction="sum").cpu()
        kd_mean, ce_mean = (sums / max(1.0, float(n_tok))).tolist()
        loss = alpha * kd_mean + (1 - alpha) * ce_mean
        if main and (step + 1) % recipe.log_every == 0:
            log.step(step + 1, loss, scheduler.get_last_lr()[0], int(n_tok))
            with (out / "distill_metrics.jsonl").open("a", encoding="utf-8") as f:
                row = {"step": step + 1, "loss": loss, "divergence": kd_mean, "label_ce": ce_mean}
                f.write(json.dumps(row) + "\n")
        if recipe.save_every and (step + 1) % recipe.save_every == 0 and step + 1 < total:
            checkpoint.save(accelerator, out, step + 1, {}, recipe.keep_checkpoints)
    log.close()
    files = {
        "distill.resolved.yaml": dump_distill_recipe(recipe),
        "data_report.json": json.dumps(report.to_dict(), indent=1),
    }
    optim.save_final(accelerator, model, processor, out, files)
    return out
