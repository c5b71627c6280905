"""The training data stream: samples -> seeded shuffle -> encode -> (packed) micro-batches.

Deterministic from (recipe, seed, rank, world size), so a resumed run replays the stream
to its saved position and sees exactly the batches the uninterrupted run would have.
Samples are sharded over ranks by index (sample i -> rank i % world), so 2 processes with
micro-batch b see, step for step, the samples 1 process with micro-batch 2b sees.
Encoded samples are kept across epochs in a :class:`FeatureCache` (``data.cache_mb``); it
changes how fast batches come, never which.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import count

from PIL import Image

from sealion_vl.data.formats import SkipReport, iter_samples
from sealion_vl.messages import Message, Part
from sealion_vl.train.cache import FeatureCache
from sealion_vl.train.features import FeatureEncoder, Features
from sealion_vl.train.packing import collate
from sealion_vl.train.recipe import Recipe


def shuffled(items: Iterator, buffer: int, seed: int) -> Iterator:
    """A seeded shuffle window: memory stays at ``buffer`` items however large the input."""
    rng = random.Random(seed)
    window: list = []
    for it in items:
        window.append(it)
        if len(window) >= buffer:
            yield window.pop(rng.randrange(len(window)))
    rng.shuffle(window)
    yield from window


class BatchStream:
    """Yields this rank's micro-batches forever (max_steps) or for the recipe's epochs."""

    def __init__(
        self,
        recipe: Recipe,
        encoder: FeatureEncoder,
        *,
        rank: int = 0,
        world: int = 1,
        report: SkipReport | None = None,
        multimodal: bool = True,
        cache: FeatureCache | None = None,
    ) -> None:
        self.recipe = recipe
        self.encoder = encoder
        self.rank, self.world = rank, world
        self.report = report if report is not None else SkipReport()
        self.multimodal = multimodal
        # share one cache between streams of a run (step count, training, resume replay);
        # a cap of 0 still remembers skipped rows, so each bad row is reported once
        self.cache = cache if cache is not None else FeatureCache(0)
        self._dummy: Features | None = None

    def _features(self, epoch: int) -> Iterator[Features]:
        """This rank's encoded samples for one epoch, in the seeded shuffle order.

        Once a pass has counted the source (``cache.n_source``), the epoch's order is the
        same shuffle applied to positions ``0..n-1``; when the cache holds every position
        this rank needs, the epoch is served from memory without reading the source.
        """
        r, cache = self.recipe, self.cache
        seed = r.seed + epoch
        n = cache.n_source
        # the cheap count first: a cache too small for this rank's share (a cap of 0, say)
        # must not cost a shuffle of every position each epoch
        if n is not None and cache.held() >= len(range(self.rank, n, self.world)):
            order = shuffled(iter(range(n)), r.data.shuffle_buffer, seed)
            mine = [i for pos, i in enumerate(order) if pos % self.world == self.rank]
            if cache.has_all(mine):
                yield from (cache.get(i) for i in mine if not cache.skipped(i))
                return
        # bad rows are reported by the first complete pass only; later passes see the same rows
        source_report = self.report if n is None else SkipReport()
        samples = iter_samples(
            r.data.train,
            image_root=r.data.image_root,
            kind=r.data.kind,
            caption_prompt=r.data.caption_prompt,
            report=source_report,
        )
        read = 0
        for pos, (i, s) in enumerate(shuffled(enumerate(samples), r.data.shuffle_buffer, seed)):
            read = pos + 1
            if pos % self.world == self.rank and (f := self._encode(i, s)) is not None:
                yield f
        cache.n_source = read

    def _encode(self, index: int, sample) -> Features | None:
        """The sample's features (from the cache when held), or None if it must be skipped."""
        cache = self.cache
        if cache.skipped(index):
            return None
        if (f := cache.get(index)) is not None:
            return f
        f = self.encoder(sample.id, sample.messages)
        max_len = self.recipe.batch.max_seq_len
        if f.length > max_len:
            self.report.add(sample.id, "too_long", f"{f.length} > max_seq_len {max_len}")
        elif f.n_loss == 0:
            self.report.add(sample.id, "empty_text", "no assistant tokens to learn from")
        else:
            cache.put(index, f)
            return f
        cache.skip(index)
        return None

    def _rows(self, feats: Iterator[Features]) -> Iterator[list[list[Features]]]:
        """Micro-batches of ``micro_batch_size`` rows.

        Packing keeps twice as many rows open as a batch needs (first fit); when a sample
        fits nowhere, the fullest rows leave as a batch and the emptier ones stay open to be
        filled, so rows end nearly full and padding stays small.
        """
        b = self.recipe.batch
        if not b.packing:
            rows: list[list[Features]] = []
            for f in feats:
                rows.append([f])
                if len(rows) == b.micro_batch_size:
                    yield rows
                    rows = []
            if rows:
                yield rows
            return
        open_rows: list[list[Features]] = []
        room: list[int] = []
        pool = 2 * b.micro_batch_size
        for f in feats:
            fit = next((i for i, free in enumerate(room) if f.length <= free), None)
            if fit is None and len(open_rows) >= pool:
                order = sorted(range(len(open_rows)), key=lambda i: (room[i], i))
                done = set(order[: b.micro_batch_size])
                yield [open_rows[i] for i in sorted(done)]
                open_rows = [r for i, r in enumerate(open_rows) if i not in done]
                room = [x for i, x in enumerate(room) if i not in done]
                fit = next((i for i, free in enumerate(room) if f.length <= free), None)
            if fit is None:
                open_rows.append([f])
                room.append(b.max_seq_len - f.length)
            else:
                open_rows[fit].append(f)
                room[fit] -= f.length
        while open_rows:
            yield open_rows[: b.micro_batch_size]
            open_rows = open_rows[b.micro_batch_size :]

    def dummy(self) -> Features:
        """A masked blank-image sequence: keeps every vision parameter in the graph."""
        if self._dummy is None:
            msg = Message(
                "user", [Part("image", source=Image.new("RGB", (32, 32))), Part.of_text(" ")]
            )
            self._dummy = self.encoder("__dummy__", [msg])
        return self._dummy

    def _batch(self, rows: list[list[Features]]) -> dict:
        has_media = any(f.media for row in rows for f in row)
        if self.multimodal and self.recipe.dummy_image_for_text_batches and not has_media:
            rows = rows + [[self.dummy()]]
        return collate(rows, pad_id=self.encoder.pad_id, packed=self.recipe.batch.packing)

    def __iter__(self) -> Iterator[dict]:
        epochs = range(self.recipe.epochs) if self.recipe.epochs else count()
        for epoch in epochs:
            produced = False
            for rows in self._rows(self._features(epoch)):
                produced = True
                yield self._batch(rows)
            if not produced:
                raise RuntimeError(
                    f"no usable training samples in {self.recipe.data.train!r} for rank "
                    f"{self.rank}; skipped rows: {self.report.to_dict()}"
                )
