"""Continuous batching: one thread owns the model and runs the decode step loop.

Requests join the running batch at a step boundary and leave it the moment they finish,
are cancelled or pass their deadline; nobody waits for the longest reply of a batch.

How the batch is kept (why this works for all three families without recomputing a KV
cache): every row of the batch cache is left-padded, so a row's real tokens are contiguous
and end at the last column. A newcomer is prefilled alone (batch of one, images included),
then its cache is left-padded to the batch width (or the batch to its width) and stacked
under the others. Causal and sliding-window masks are built on column indices, and
distances between a row's own tokens are the same in column space as in the row's own
positions, so padding changes nothing but the ``attention_mask`` zeros. RoPE positions
come from each row's own counter (Qwen3-VL: its M-RoPE offset), not from the column.
Sliding-window layers keep full-length keys here (plain ``DynamicLayer``) so rows of
different lengths can be stacked; the window itself is still applied by the mask.
Gemma 4's KV-sharing layers never store anything and are skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from sealion_vl.runtime.generation import IncrementalDecoder, cut_at_stop
from sealion_vl.runtime.sampling import Sampling, choose, penalise_repeats
from sealion_vl.runtime.vision_cache import VisionCache


@dataclass
class Request:
    """One generation request as the scheduler sees it.

    ``sink`` receives events from the scheduler thread and must never block:
    ``("text", text_so_far, n_tokens)`` whenever the reply's text grows, then exactly one of
    ``("done", Finished)`` or ``("error", exception)``.
    """

    inputs: Any
    sampling: Sampling
    max_new_tokens: int
    stop_strings: list[str]
    sink: Callable[[tuple], None]
    decode: Callable[[list[int]], str]
    constraint: Any = None
    ignore_eos: bool = False
    logprobs: int | None = None  # None: none; k >= 0: the chosen token's and k alternatives
    deadline: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    # filled in by the scheduler
    tokens: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    t_submit: float = field(default_factory=time.perf_counter)
    t_first: float | None = None
    next_pos: int = 0
    last: int = 0
    seen: torch.Tensor | None = None
    text: str = ""
    decoder: IncrementalDecoder | None = None
    token_logprobs: list = field(default_factory=list)


@dataclass
class Finished:
    """How a request ended. ``finish_reason``: stop, length, cancelled or timeout."""

    text: str
    token_ids: list[int]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    t_submit: float
    t_first: float | None
    t_end: float
    logprobs: list | None = None  # per token: (id, logprob, [(alt id, logprob), ...])


class Scheduler:
    """Owns the model; runs prefill and batched decode steps in its own thread.

    Args:
        model: a transformers ``*ForConditionalGeneration`` / ``*ForCausalLM`` in eval mode.
        hooks: the family's :class:`~sealion_vl.families.inference.VisionHooks`.
        stop_ids: token ids that end a reply.
        vision_cache: encoded images kept across requests (None: no cache).
        max_batch: most rows decoded together.
    """

    def __init__(
        self,
        model,
        hooks,
        stop_ids: set[int],
        *,
        vision_cache: VisionCache | None = None,
        max_batch: int = 32,
        multimodal: bool = True,
    ) -> None:
        self.model = model
        self.hooks = hooks
        self.stop_ids = stop_ids
        self.vision_cache = vision_cache
        self.max_batch = max_batch
        self.multimodal = multimodal
        self._waiting: list[Request] = []
        self._rows: list[Request] = []
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self.steps = 0

    # ------------------------------------------------------------------ public
    def add(self, req: Request) -> None:
        """Queue ``req``; it joins the batch at the next step boundary."""
        with self._cv:
            self._waiting.append(req)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="sealion-vl-scheduler", daemon=True
                )
                self._thread.start()
            self._cv.notify()

    def wake(self) -> None:
        """Make the loop look at cancellations now (a cancelled waiting request)."""
        with self._cv:
            self._cv.notify()

    @property
    def load(self) -> dict:
        """Waiting and running request counts."""
        with self._cv:
            return {"waiting": len(self._waiting), "running": len(self._rows)}

    # ------------------------------------------------------------------ loop
    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._waiting and not self._rows:
                    self._cv.wait()
                room = max(0, self.max_batch - len(self._rows))
                joining, self._waiting = self._waiting[:room], self._waiting[room:]
            try:
                with torch.inference_mode():
                    ready = self._encode_images(joining)
                    for req in joining:
                        self._admit(req, ready)
                    if self._rows:
                        self._step()
            except Exception as e:  # never let the loop die: fail what it was holding
                self._fail(joining + self._rows, e)

    def _fail(self, reqs: list[Request], error: Exception) -> None:
        for r in reqs:
            try:
                r.sink(("error", error))
            except Exception:  # a broken consumer must not stop the others being told
                pass
        self._rows, self._cache, self._mask = [], None, None

    def _admit(self, req: Request, ready: dict) -> None:
        if self._ended_early(req):
            return
        try:
            logits, cache, width = self._prefill(req, ready)
        except Exception as e:  # this request's input broke the model call: only it fails
            req.sink(("error", e))
            return
        req.t_first = time.perf_counter()
        if self._advance(req, self._shape_logits([req], logits)[0]):
            return
        self._join(req, cache, width)

    def _prefill(self, req: Request, ready: dict):
        inputs = dict(req.inputs)
        ids = inputs["input_ids"]
        req.prompt_tokens = int(ids.shape[1])
        req.seen = ids[0].clone()
        req.decoder = IncrementalDecoder(req.decode)
        kwargs = dict(inputs)
        if self.multimodal:
            positions, req.next_pos = self.hooks.positions(self.model, inputs)
            features = self._images(inputs, ready)
            if features is not None:
                for key in self.hooks.image_keys:
                    if key != "image_grid_thw":  # Qwen3-VL still needs the grid for M-RoPE
                        kwargs.pop(key, None)
                kwargs["mm_encoder_outputs"] = {"image": features}
        else:
            positions, req.next_pos = torch.arange(ids.shape[1]).unsqueeze(0), int(ids.shape[1])
        device = self.model.device
        kwargs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in kwargs.items()}
        cache = DynamicCache()
        out = self.model(
            **kwargs,
            position_ids=positions.to(device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :], cache, int(ids.shape[1])

    def _image_items(self, inputs) -> list:
        """(key, item) per image of a request whose images take the cached-features path.

        Requests with video keep the model's own pixel path: Qwen3-VL and Gemma 4 refuse
        precomputed image features next to raw video pixels.
        """
        if not self.multimodal or inputs.get("pixel_values_videos") is not None:
            return []
        return [(self.hooks.key(it), it) for it in self.hooks.split(inputs)]

    def _encode_images(self, joining: list[Request]) -> dict:
        """Features of every image the joining requests show: from the cache where held,
        the rest encoded together in one vision-tower call. Keyed by content hash."""
        ready: dict = {}
        missing: dict = {}
        for req in joining:
            try:
                items = self._image_items(req.inputs)
            except Exception:  # its own prefill will fail and report it
                continue
            for key, item in items:
                if key in ready or key in missing:
                    continue
                feat = self.vision_cache.get(key) if self.vision_cache else None
                if feat is None:
                    missing[key] = item
                else:
                    ready[key] = feat
        if missing:
            device = self.model.device
            items = [{k: v.to(device) for k, v in it.items()} for it in missing.values()]
            try:
                feats = self.hooks.encode_many(self.model, items)
            except Exception:  # one broken image: encode one by one in each prefill instead
                return ready
            for key, feat in zip(missing, feats, strict=True):
                ready[key] = feat
                if self.vision_cache:
                    self.vision_cache.put(key, feat, self.hooks.nbytes(feat))
        return ready

    def _images(self, inputs, ready: dict):
        """Encoder outputs for the request's images (None: use the model's pixel path)."""
        items = self._image_items(inputs)
        if not items:
            return None
        device = self.model.device
        features = []
        for key, item in items:
            feat = ready.get(key)
            if feat is None:
                feat = self.hooks.encode(self.model, {k: v.to(device) for k, v in item.items()})
            features.append(feat)
        return self.hooks.assemble(features)

    def _join(self, req: Request, cache: DynamicCache, width: int) -> None:
        """Stack a prefilled request's cache under the batch, left-padding the narrower side."""
        mask = torch.ones(1, width, dtype=torch.long, device=self.model.device)
        if not self._rows:
            self._cache, self._mask, self._rows = cache, mask, [req]
            return
        batch_width = int(self._mask.shape[1])
        full = max(batch_width, width)
        for mine, theirs in zip(self._cache.layers, cache.layers, strict=False):
            if not theirs.is_initialized:  # KV-sharing layer: stores nothing
                continue
            mine.keys = torch.cat([_pad(mine.keys, full), _pad(theirs.keys, full)], 0)
            mine.values = torch.cat([_pad(mine.values, full), _pad(theirs.values, full)], 0)
        self._mask = torch.cat([_pad(self._mask, full, dim=1), _pad(mask, full, dim=1)], 0)
        self._rows.append(req)

    def _step(self) -> None:
        """One decode step for every running row; finished rows leave the batch."""
        rows = self._rows
        device = self.model.device
        ids = torch.tensor([[r.last] for r in rows], device=device)
        mask = torch.cat([self._mask, torch.ones(len(rows), 1, dtype=torch.long, device=device)], 1)
        nxt = torch.tensor([r.next_pos for r in rows], device=device)
        try:
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=self.hooks.step_positions(nxt),
                past_key_values=self._cache,
                use_cache=True,
            )
        except Exception as e:  # the batch is unusable: fail its rows, keep serving others
            self._fail(rows, e)
            return
        self.steps += 1
        self._mask = mask
        logits = self._shape_logits(rows, out.logits[:, -1, :])
        for r in rows:
            r.next_pos += 1
        keep = [i for i, r in enumerate(rows) if not self._advance(r, logits[i])]
        if len(keep) < len(rows):
            self._drop(keep)

    def _drop(self, keep: list[int]) -> None:
        if not keep:
            self._rows, self._cache, self._mask = [], None, None
            return
        idx = torch.tensor(keep, device=self._mask.device)
        self._rows = [self._rows[i] for i in keep]
        self._mask = self._mask.index_select(0, idx)
        # columns that are padding in every remaining row are dead weight: cut them
        live = self._mask.any(dim=0).nonzero()
        start = int(live[0]) if live.numel() else 0
        for layer in self._cache.layers:
            if layer.is_initialized and layer.keys.numel():
                layer.keys = layer.keys.index_select(0, idx)[:, :, start:]
                layer.values = layer.values.index_select(0, idx)[:, :, start:]
        self._mask = self._mask[:, start:]

    # ------------------------------------------------------------------ per-row logic
    @staticmethod
    def _shape_logits(rows: list[Request], logits: torch.Tensor) -> torch.Tensor:
        """Each row's repetition penalty, then the structured-output masks of the whole
        batch in one bitmask pass (rows without a constraint are left alone)."""
        logits = logits.float().clone()
        for i, r in enumerate(rows):
            penalise_repeats(logits[i], r.seen, r.sampling.repetition_penalty)
        if any(r.constraint is not None for r in rows):
            from sealion_vl.runtime.structured import apply_constraints

            apply_constraints(logits, [r.constraint for r in rows])
        return logits

    def _advance(self, r: Request, row: torch.Tensor) -> bool:
        """Choose ``r``'s next token from its (shaped) logits row; True when ``r`` is done."""
        if self._ended_early(r):
            return True
        token = choose(row, r.sampling)
        if r.logprobs is not None:
            r.token_logprobs.append(_logprobs(row, token, r.logprobs))
        if r.constraint is not None:
            r.constraint.accept(token)
        if token in self.stop_ids and not r.ignore_eos:
            self._finish(r, "stop", ended=True)
            return True
        r.tokens.append(token)
        r.seen = torch.cat([r.seen, r.seen.new_tensor([token])])
        r.last = token
        text = r.decoder.add(token)
        cut, stopped = cut_at_stop(text, r.stop_strings)
        if stopped:
            self._finish(r, "stop", text=cut)
            return True
        if len(text) > len(r.text):
            r.text = text
            r.sink(("text", text, len(r.tokens)))
        if r.constraint is not None and r.constraint.is_terminated():
            self._finish(r, "stop")
            return True
        if len(r.tokens) >= r.max_new_tokens:
            self._finish(r, "length")
            return True
        return False

    def _ended_early(self, r: Request) -> bool:
        if r.cancel.is_set():
            self._finish(r, "cancelled")
            return True
        if r.deadline is not None and time.monotonic() > r.deadline:
            self._finish(r, "timeout")
            return True
        return False

    def _finish(
        self, r: Request, reason: str, ended: bool = False, text: str | None = None
    ) -> None:
        """Send the final event. ``ended``: the model emitted a stop token (counted as a
        completion token, as OpenAI does); ``text``: already cut at a stop string."""
        if text is None:
            full = r.decoder.full() if r.decoder is not None else ""
            text = cut_at_stop(full, r.stop_strings)[0]
        r.text = text
        r.sink(
            (
                "done",
                Finished(
                    text=text,
                    token_ids=list(r.tokens),
                    finish_reason=reason,
                    prompt_tokens=r.prompt_tokens,
                    completion_tokens=len(r.tokens) + int(ended),
                    t_submit=r.t_submit,
                    t_first=r.t_first,
                    t_end=time.perf_counter(),
                    logprobs=r.token_logprobs if r.logprobs is not None else None,
                ),
            )
        )


def _logprobs(row: torch.Tensor, token: int, k: int) -> tuple:
    """The chosen token's log-probability and the k likeliest alternatives, under the
    distribution it was chosen from (after repetition penalty and any grammar mask)."""
    lp = row.float().log_softmax(-1)
    top = []
    if k:
        values, ids = torch.topk(lp, k)
        top = list(zip(ids.tolist(), values.tolist(), strict=True))
    return token, float(lp[token]), top


def _pad(t: torch.Tensor, width: int, dim: int = 2) -> torch.Tensor:
    """Left-pad ``t`` with zeros along ``dim`` up to ``width``."""
    missing = width - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim)
