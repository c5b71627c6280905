"""The Engine: the one object between the jobs (chat, serve, eval) and a loaded model.

Callers in any thread (or event loop) submit requests; each is encoded in the caller's
thread (templates, media fetching and decoding never touch the model), then handed to the
:class:`~sealion_vl.runtime.scheduler.Scheduler`, whose single thread runs every model call
with continuous batching. Results come back through futures; streams through per-request
queues the scheduler never waits on, so a slow or vanished consumer holds nobody up.
Everything family-specific is asked of ``self.adapter``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from sealion_vl.errors import ContextLengthError
from sealion_vl.families import FamilyAdapter
from sealion_vl.media import MediaLimits
from sealion_vl.runtime.encode import Encoder
from sealion_vl.runtime.futures import ChatFuture, DeltaDecoder
from sealion_vl.runtime.generation import ChatResult, GenerationSettings
from sealion_vl.runtime.sampling import Sampling
from sealion_vl.runtime.scheduler import Finished, Request, Scheduler
from sealion_vl.runtime.vision_cache import VisionCache

_REQUEST_KEYS = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning",
    "timeout_s",
    "logprobs",
    "top_logprobs",
)


def _logprob_count(opts: dict) -> int | None:
    """None (no logprobs) or how many alternatives per token (OpenAI: 0..20)."""
    if not opts.get("logprobs"):
        return None
    k = opts.get("top_logprobs") or 0
    if not isinstance(k, int) or not 0 <= k <= 20:
        raise ValueError(f"top_logprobs must be an integer from 0 to 20, got {k!r}")
    return k


class ChatModel:
    """A loaded SEA-LION-VL (or compatible) checkpoint you can talk to, from many threads.

    Build it with :func:`sealion_vl.load`. Conversations are lists of OpenAI- or HF-style
    message dicts; generation settings default to the checkpoint's generation_config.

    Args:
        vision_cache_mb: memory for encoded images kept across requests (0: none).
        max_batch: most requests decoded together.
    """

    def __init__(
        self,
        model,
        processor,
        tokenizer,
        adapter: FamilyAdapter,
        *,
        name: str,
        multimodal: bool,
        context_length: int,
        media_limits: MediaLimits | None = None,
        vision_cache_mb: float = 256,
        max_batch: int = 32,
    ) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = tokenizer
        self.adapter = adapter
        self.name = name
        self.multimodal = multimodal
        self.context_length = context_length
        self.modalities = adapter.modalities if multimodal else ("text",)
        self.encoder = Encoder(
            processor,
            tokenizer,
            adapter,
            modalities=self.modalities,
            model_name=name,
            media_limits=media_limits,
        )
        self._stop_ids = self._resolve_stop_ids()
        self._drop_ids = self._ids_to_drop()
        self.vision_cache = VisionCache(int(vision_cache_mb * 2**20))
        self.scheduler = Scheduler(
            model,
            adapter.vision,
            self._stop_ids,
            vision_cache=self.vision_cache,
            max_batch=max_batch,
            multimodal=multimodal,
        )
        self._structured = None  # built on first use: compiling the vocabulary costs time
        self._structured_lock = threading.Lock()

    @property
    def model(self):
        return self._model

    @model.setter
    def model(self, model) -> None:
        """Swap the model object (same architecture and tokenizer); the scheduler follows."""
        self._model = model
        if hasattr(self, "scheduler"):
            self.scheduler.model = model

    @property
    def media_limits(self) -> MediaLimits:
        return self.encoder.media_limits

    @media_limits.setter
    def media_limits(self, limits: MediaLimits) -> None:
        self.encoder.media_limits = limits

    # ----------------------------------------------------------------- public API
    def submit(self, messages: Any, **kwargs: Any) -> ChatFuture:
        """Queue one conversation and return at once with a :class:`ChatFuture`.

        Args:
            messages: list of message dicts (OpenAI or HF style, with ``tool_calls`` and
                ``tool`` turns) or a plain user string.
            **kwargs: :class:`GenerationSettings` fields (max_new_tokens, temperature, top_p,
                top_k, repetition_penalty, seed, stop, do_sample) and the request options
                ``tools`` (OpenAI tool list), ``tool_choice`` ("auto", "none", "required" or
                ``{"type": "function", "function": {"name": ...}}``), ``response_format``
                (``{"type": "json_object"}`` / ``{"type": "json_schema", ...}``),
                ``reasoning`` (thinking on/off) and ``timeout_s`` (a deadline).

        Raises (in the caller's thread, before anything is queued):
            ContextLengthError, MessageFormatError, MediaError, ModalityError,
            StructuredOutputError, pydantic.ValidationError for bad settings.
        """
        return self._submit(messages, kwargs, listener=None)

    def chat(self, messages: Any, **kwargs: Any) -> ChatResult:
        """Reply to one conversation (see :meth:`submit` for the arguments)."""
        return self.submit(messages, **kwargs).result()

    def chat_batch(self, conversations: Sequence[Any], **kwargs: Any) -> list[ChatResult]:
        """Reply to several conversations, decoded together by the scheduler.

        Under greedy decoding the texts equal one-at-a-time :meth:`chat` results.
        """
        if not conversations:
            raise ValueError("chat_batch needs at least one conversation")
        futures = [self.submit(c, **kwargs) for c in conversations]
        return [f.result() for f in futures]

    def stream(self, messages: Any, **kwargs: Any) -> Iterator:
        """Yield typed deltas of the reply: content, reasoning and tool-call pieces.

        Content deltas concatenate to ``chat(messages, **kwargs).text``; no partial stop
        string or markup tag is ever yielded. Closing the generator cancels the request.
        """
        events: queue.Queue = queue.Queue()
        fut = self._submit(messages, kwargs, listener=events.put)
        try:
            yield from self._deltas(iter(events.get, None), fut)
        finally:
            if not fut.done():
                fut.cancel()

    async def achat(self, messages: Any, **kwargs: Any) -> ChatResult:
        """:meth:`chat` for asyncio code; encoding runs in a worker thread."""
        fut = await asyncio.to_thread(self.submit, messages, **kwargs)
        try:
            return await asyncio.wrap_future(fut.future)
        except asyncio.CancelledError:
            fut.cancel()
            raise

    async def astream(self, messages: Any, **kwargs: Any) -> AsyncIterator:
        """:meth:`stream` for asyncio code; cancelling the consumer cancels the request."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def push(ev: tuple) -> None:
            loop.call_soon_threadsafe(events.put_nowait, ev)

        fut = await asyncio.to_thread(self._submit, messages, kwargs, push)
        decoder = DeltaDecoder(self.adapter, fut)
        try:
            while True:
                ev = await events.get()
                for d in decoder.feed(ev):
                    yield d
                if ev[0] in ("done", "error"):
                    return
        finally:
            if not fut.done():
                fut.cancel()

    def render(
        self,
        messages: Any,
        reasoning: bool | None = None,
        tools: list[dict] | None = None,
    ) -> str:
        """The exact prompt string the model will see for ``messages`` (before media expansion)."""
        msgs = self.encoder.messages(messages, tools)
        return self.encoder.render(msgs, tools=tools, reasoning=reasoning)

    def count_tokens(self, messages: Any, reasoning: bool | None = None, tools=None) -> int:
        """Prompt length in tokens (media expanded) for one conversation."""
        enc = self.encoder.encode(messages, tools=tools, reasoning=reasoning)
        return int(enc["input_ids"].shape[1])

    # ----------------------------------------------------------------- internals
    def _submit(self, messages: Any, kwargs: dict, listener) -> ChatFuture:
        opts = {k: kwargs.pop(k) for k in _REQUEST_KEYS if k in kwargs}
        clamp = kwargs.pop("clamp_to_context", False)
        settings = GenerationSettings(**kwargs)
        cfg = settings.apply(self.model.generation_config)
        tools = opts.get("tools") or None
        choice = opts.get("tool_choice")
        prompt_tools = None if choice == "none" else tools
        msgs = self.encoder.messages(messages, prompt_tools)
        prompt = self.encoder.render(msgs, tools=prompt_tools, reasoning=opts.get("reasoning"))
        inputs = self.encoder.tokenize(prompt, self.encoder.load_media(msgs))
        n_prompt = int(inputs["input_ids"].shape[1])
        max_new = self._fit_context(n_prompt, cfg.max_new_tokens, settings.max_new_tokens, clamp)
        constraint = self._constraint(
            opts.get("response_format"), prompt_tools, choice, opts.get("parallel_tool_calls")
        )
        fut = ChatFuture(bool(prompt_tools), build=self._result, wake=self.scheduler.wake)
        fut.reasoning_open = self.adapter.prompt_opens_reasoning(prompt)
        fut.stop_strings = list(settings.stop or [])
        if listener is not None:
            fut.listen(listener)
        timeout = opts.get("timeout_s")
        req = Request(
            inputs=inputs,
            sampling=Sampling.from_generation_config(cfg, settings.seed),
            max_new_tokens=max_new,
            stop_strings=list(settings.stop or []),
            sink=fut.sink,
            decode=self._decode,
            constraint=constraint,
            ignore_eos=settings.ignore_eos,
            logprobs=_logprob_count(opts),
            deadline=time.monotonic() + timeout if timeout else None,
            cancel=fut.cancel_event,
        )
        self.scheduler.add(req)
        return fut

    def _fit_context(self, n_prompt: int, max_new: int, asked: int | None, clamp: bool) -> int:
        """max_new_tokens for this request; refuse only the request that cannot fit."""
        room = self.context_length - n_prompt
        if room < 1:
            raise ContextLengthError(
                f"the prompt is {n_prompt} tokens (media included) but {self.name} holds "
                f"{self.context_length}; shorten the conversation or send fewer/smaller images"
            )
        if max_new <= room:
            return max_new
        if asked is None or clamp:  # the checkpoint's default, or the caller allows capping
            return room
        raise ContextLengthError(
            f"the prompt is {n_prompt} tokens (media included) and max_new_tokens is {max_new}: "
            f"{n_prompt + max_new} positions, but {self.name} holds {self.context_length}; "
            f"ask for at most {room} new tokens or shorten the conversation"
        )

    def _constraint(self, response_format, tools, tool_choice, parallel=False):
        """The request's xgrammar matcher, or None for free text (shapes validated here)."""
        from sealion_vl.runtime.structured import GrammarCache, constraint_for

        spec = constraint_for(
            response_format,
            tools=tools,
            tool_choice=tool_choice,
            family=self.adapter.name,
            parallel_tool_calls=bool(parallel),
        )
        if spec is None:
            return None
        with self._structured_lock:
            if self._structured is None:  # compiling the vocabulary once costs a moment
                self._structured = GrammarCache(
                    self.tokenizer, self._logits_width(), stop_token_ids=sorted(self._stop_ids)
                )
        return self._structured.constraint(spec)

    def _logits_width(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    def _result(self, fin: Finished, fut: ChatFuture) -> ChatResult:
        parsed = self.adapter.parse_reply(
            fin.text, tools=fut.parse_tools, reasoning_open=fut.reasoning_open
        )
        reason = "tool_calls" if parsed.tool_calls else fin.finish_reason
        first = fin.t_first or fin.t_end
        decode_s = fin.t_end - first
        n = fin.completion_tokens
        return ChatResult(
            text=parsed.content,
            finish_reason=reason,
            prompt_tokens=fin.prompt_tokens,
            completion_tokens=n,
            token_ids=fin.token_ids,
            reasoning=parsed.reasoning,
            tool_calls=parsed.tool_calls,
            logprobs=self._logprob_entries(fin.logprobs),
            raw_text=fin.text,
            timings={
                "prefill_s": round(first - fin.t_submit, 4),
                "total_s": round(fin.t_end - fin.t_submit, 4),
                "tokens_per_s": round((n - 1) / decode_s, 2) if n > 1 and decode_s > 0 else 0.0,
            },
        )

    def _logprob_entries(self, raw: list | None) -> list[dict] | None:
        """OpenAI's per-token shape: token text, logprob, UTF-8 bytes, top alternatives."""
        if raw is None:
            return None

        def entry(tid: int, lp: float) -> dict:
            text = self.tokenizer.decode([tid], skip_special_tokens=False)
            return {"token": text, "logprob": lp, "bytes": list(text.encode("utf-8"))}

        return [
            {**entry(tid, lp), "top_logprobs": [entry(a, alp) for a, alp in top]}
            for tid, lp, top in raw
        ]

    def _deltas(self, events, fut: ChatFuture) -> Iterator:
        decoder = DeltaDecoder(self.adapter, fut)
        for ev in events:
            yield from decoder.feed(ev)
            if ev[0] in ("done", "error"):
                return

    def _resolve_stop_ids(self) -> set[int]:
        ids: set[int] = set()
        eos = self.model.generation_config.eos_token_id
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[t] for t in self.adapter.stop_tokens if t in vocab)
        return ids

    def _ids_to_drop(self) -> set[int]:
        """Special tokens removed from replies: all but the family's markup tokens
        (tool-call and reasoning delimiters), which the reply parser needs to see."""
        tok = self.tokenizer
        vocab = tok.get_vocab()
        keep = {vocab[t] for t in getattr(self.adapter, "markup_tokens", ()) if t in vocab}
        drop = set(tok.all_special_ids)
        drop.update(i for i, t in tok.added_tokens_decoder.items() if t.special)
        return drop - keep

    def _decode(self, ids: list[int]) -> str:
        drop = self._drop_ids
        return self.tokenizer.decode([i for i in ids if i not in drop], skip_special_tokens=False)

    def __repr__(self) -> str:
        return f"ChatModel({self.name!r}, family={self.adapter.name}, device={self.model.device})"
