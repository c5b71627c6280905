"""Running the teacher: logits at the student's loss positions, and the offline cache pass.

The teacher reads each training sample through its own :class:`FeatureEncoder` (the same
template, media and loss-mask rules as training), so its loss tokens are the student's loss
tokens: same tokenizer, same assistant text. The number of image tokens may differ between
the two processors; only the order of loss tokens within a sample matters, and that order is
checked against the cache's per-row target hash when the student trains.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sealion_vl.data.formats import SkipReport, iter_samples
from sealion_vl.distill.cache import TopKWriter
from sealion_vl.distill.config import DistillRecipe
from sealion_vl.distill.losses import shared_vocab, tokenizer_hash, topk_of
from sealion_vl.errors import SealionError
from sealion_vl.train.features import IGNORE, FeatureEncoder
from sealion_vl.train.packing import collate, label_logits

#: batch keys distillation adds, never model inputs
NOT_INPUTS = ("distill_index",)


def logits_at_labels(model, batch: dict, adapter, raw_model=None):
    """(N, V) logits at the N positions that carry a label, and the (N,) labels, row-major.

    Training's :func:`~sealion_vl.train.packing.label_logits` (labelled positions only, packed
    rows masked per sequence) on a batch without distillation's own keys, so student and
    teacher see exactly the positions and masks SFT does.
    """
    inputs = {k: v for k, v in batch.items() if k not in NOT_INPUTS}
    return label_logits(model, inputs, adapter, raw_model)


class Teacher:
    """The teacher model in eval mode, its encoder, and its tokenizer fingerprint."""

    def __init__(
        self,
        name: str,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        max_image_pixels: int | None = None,
    ) -> None:
        from sealion_vl.runtime.load import load_parts

        parts = load_parts(name, device=device, dtype=dtype, multimodal_only=True)
        self.name = name
        self.model = parts.model.eval().requires_grad_(False)
        self.processor = parts.processor
        self.adapter = parts.adapter
        self.encoder = FeatureEncoder(
            self.model, self.processor, self.adapter, max_image_pixels=max_image_pixels
        )
        tok = self.processor.tokenizer
        self.tokenizer_hash = tokenizer_hash(tok)
        self.n_tokens = len(tok)
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])

    @torch.no_grad()
    def logits(self, batch: dict) -> torch.Tensor:
        """(N, V) teacher logits at the batch's label positions."""
        device = self.model.device
        batch = {k: v.to(device) for k, v in batch.items()}
        return logits_at_labels(self.model, batch, self.adapter)[0]


def build_cache(
    recipe: DistillRecipe, *, student_hash: str | None = None, progress: bool = True
) -> Path:
    """Run the teacher over the recipe's training rows and write its top-k cache.

    Every row with loss tokens is cached (the student's own skips, e.g. ``max_seq_len``,
    happen later and simply leave rows unread). ``student_hash`` (the student's
    :func:`tokenizer_hash`) is checked before the teacher pass. Returns the cache path.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    teacher = Teacher(
        recipe.teacher, dtype=recipe.teacher_dtype, max_image_pixels=recipe.data.max_image_pixels
    )
    if student_hash is not None:
        shared_vocab(
            teacher.tokenizer_hash,
            student_hash,
            teacher.n_tokens,
            teacher.vocab_size,
            teacher.vocab_size,
        )
    header = {
        "teacher": recipe.teacher,
        "tokenizer_hash": teacher.tokenizer_hash,
        "k": min(recipe.k, teacher.n_tokens),
        "teacher_vocab": teacher.vocab_size,
        "n_vocab": teacher.n_tokens,
        "temperature": recipe.temperature,
        "data": recipe.data.train,
    }
    writer = TopKWriter(recipe.cache_path(), header)
    report = SkipReport()
    samples = iter_samples(
        recipe.data.train,
        image_root=recipe.data.image_root,
        kind=recipe.data.kind,
        caption_prompt=recipe.data.caption_prompt,
        report=report,
    )
    bar = Progress(
        TextColumn("[bold]teacher cache"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[tokens]} tokens"),
        disable=not progress,
    )
    try:
        with bar:
            task = bar.add_task("cache", total=None, tokens=0)
            pending = []
            for s in samples:
                f = teacher.encoder(s.id, s.messages)
                if f.n_loss:
                    pending.append(f)
                if len(pending) == recipe.teacher_batch_size:
                    _write_batch(teacher, writer, pending, recipe)
                    bar.update(task, advance=len(pending), tokens=writer.n_tokens)
                    pending = []
            if pending:
                _write_batch(teacher, writer, pending, recipe)
                bar.update(task, advance=len(pending), tokens=writer.n_tokens)
    except BaseException:
        writer.abort()
        raise
    if not writer.rows:
        writer.abort()
        raise SealionError(
            f"no training rows with assistant tokens in {recipe.data.train!r}; skipped: "
            f"{report.to_dict()}"
        )
    return writer.close()


def _write_batch(teacher: Teacher, writer: TopKWriter, feats: list, recipe: DistillRecipe) -> None:
    """One unpacked teacher forward over several samples; rows split by their loss counts."""
    batch = collate([[f] for f in feats], pad_id=teacher.encoder.pad_id, packed=False)
    logits = teacher.logits(batch).cpu()
    n_vocab = writer.header["n_vocab"]
    start = 0
    for f in feats:
        n = f.n_loss
        top = topk_of(
            logits[start : start + n], writer.k, temperature=recipe.temperature, n_vocab=n_vocab
        )
        targets = f.tokens["labels"][f.tokens["labels"] != IGNORE]
        writer.add(f.id, top, targets)
        start += n
