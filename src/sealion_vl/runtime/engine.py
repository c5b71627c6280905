"""The Engine: the one object between the jobs (chat, serve, eval) and a loaded model.

It renders conversations with the checkpoint's chat template (falling back to the family
adapter's), batches them with left padding, runs ``generate`` and decodes the replies.
Everything family-specific is asked of ``self.adapter``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers import StoppingCriteriaList

from sealion_vl.errors import ContextLengthError
from sealion_vl.families import FamilyAdapter
from sealion_vl.media import MediaLimits
from sealion_vl.messages import Message, parse_conversation, to_template_messages
from sealion_vl.runtime import batching
from sealion_vl.runtime.generation import (
    Cancelled,
    ChatResult,
    GenerationSettings,
    IncrementalDecoder,
    TokenClock,
    TokenQueue,
    cut_at_stop,
    holdback,
)


class ChatModel:
    """A loaded SEA-LION-VL (or compatible) checkpoint you can talk to.

    Build it with :func:`sealion_vl.load`. Conversations are lists of OpenAI- or HF-style
    message dicts; generation settings default to the checkpoint's generation_config.
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
    ) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = tokenizer
        self.adapter = adapter
        self.name = name
        self.multimodal = multimodal
        self.context_length = context_length
        self.media_limits = media_limits or MediaLimits()
        self.modalities = adapter.modalities if multimodal else ("text",)
        self._template = getattr(processor or tokenizer, "chat_template", None)
        self._template = self._template or adapter.chat_template
        self._stop_ids = self._resolve_stop_ids()
        self._lock = threading.Lock()  # generate() is not re-entrant on one model

    # ----------------------------------------------------------------- public API
    def chat(self, messages: Any, **gen: Any) -> ChatResult:
        """Reply to one conversation.

        Args:
            messages: list of message dicts (OpenAI or HF style) or a plain user string.
            **gen: :class:`GenerationSettings` fields (max_new_tokens, temperature, top_p,
                top_k, repetition_penalty, seed, stop, do_sample) and ``reasoning``.
        """
        return self.chat_batch([messages], **gen)[0]

    def chat_batch(self, conversations: Sequence[Any], **gen: Any) -> list[ChatResult]:
        """Reply to several conversations in one padded batch (any mix of media counts).

        Under greedy decoding the texts equal one-at-a-time :meth:`chat` results.
        """
        reasoning = gen.pop("reasoning", None)
        settings = GenerationSettings(**gen)
        inputs = self._encode(conversations, reasoning)
        cfg = self._generation_config(settings)
        prompt_len = inputs["input_ids"].shape[1]
        self._check_context(inputs, cfg.max_new_tokens)
        clock = TokenClock()
        with self._lock, torch.inference_mode():
            self._seed(settings.seed)
            out = self.model.generate(**inputs, generation_config=cfg, streamer=clock)
        total = time.perf_counter() - clock.start
        results = []
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        for row, n_prompt in zip(out[:, prompt_len:].tolist(), prompt_tokens, strict=True):
            ids, ended = self._until_eos(row)
            text, stopped = cut_at_stop(self._decode(ids), settings.stop)
            finish = "stop" if (ended or stopped) else "length"
            results.append(
                ChatResult(text, finish, int(n_prompt), len(ids) + int(ended), token_ids=ids)
            )
        self._add_timings(results, clock, total)
        return results

    def stream(self, messages: Any, **gen: Any) -> Iterator[str]:
        """Yield the reply to one conversation as text deltas.

        The concatenated deltas equal ``chat(messages, **gen).text``: each step decodes
        the new token in a short window (:class:`IncrementalDecoder`) and yields only what is
        new, holding back a possible partial stop string or half a multi-byte character.
        """
        reasoning = gen.pop("reasoning", None)
        settings = GenerationSettings(**gen)
        inputs = self._encode([messages], reasoning)
        cfg = self._generation_config(settings)
        self._check_context(inputs, cfg.max_new_tokens)
        tq = TokenQueue()
        cancel = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self._seed(settings.seed)
                    self.model.generate(
                        **inputs,
                        generation_config=cfg,
                        streamer=tq,
                        stopping_criteria=StoppingCriteriaList([Cancelled(cancel)]),
                    )
            except BaseException as e:  # surfaced to the consumer below
                error.append(e)
                tq.end()

        with self._lock:
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            decoder = IncrementalDecoder(self._decode)
            sent = ""
            try:
                while (tok := tq.q.get()) is not None:
                    if tok in self._stop_ids:
                        break
                    text, stopped = cut_at_stop(decoder.add(tok), settings.stop)
                    if stopped:
                        if text.startswith(sent):
                            yield text[len(sent) :]
                        return
                    ready = text[: len(text) - holdback(text, settings.stop)]
                    if ready.startswith(sent) and len(ready) > len(sent):
                        yield ready[len(sent) :]
                        sent = ready
                if error:
                    raise error[0]
                final, _ = cut_at_stop(decoder.full(), settings.stop)
                if final.startswith(sent) and len(final) > len(sent):
                    yield final[len(sent) :]
            finally:
                cancel.set()  # a stop string or a closed consumer ends generation early
                worker.join()

    def render(self, messages: Any, reasoning: bool | None = None) -> str:
        """The exact prompt string the model will see for ``messages`` (before media expansion)."""
        conv = self.adapter.prepare(parse_conversation(messages))
        return self._render(to_template_messages(conv), reasoning)

    def count_tokens(self, messages: Any, reasoning: bool | None = None) -> int:
        """Prompt length in tokens (media expanded) for one conversation."""
        return int(self._encode([messages], reasoning)["attention_mask"].sum())

    # ----------------------------------------------------------------- internals
    def _render(self, template_messages: list[dict], reasoning: bool | None) -> str:
        owner = self.processor if self.processor is not None else self.tokenizer
        return owner.apply_chat_template(
            template_messages,
            chat_template=self._template,
            tokenize=False,
            add_generation_prompt=True,
            **self.adapter.template_kwargs(reasoning),
        )

    def _encode(self, conversations: Sequence[Any], reasoning: bool | None):
        if not conversations:
            raise ValueError("chat_batch needs at least one conversation")
        prepared = []
        for conv in conversations:
            messages: list[Message] = parse_conversation(conv)
            batching.check_modalities(messages, self.modalities, self.name)
            prepared.append(
                batching.prepare(
                    self.adapter.prepare(messages),
                    render=lambda tm: self._render(tm, reasoning),
                    limits=self.media_limits,
                    audio_sampling_rate=self._audio_rate(),
                )
            )
        self.tokenizer.padding_side = "left"
        if self.processor is None:
            enc = self.tokenizer(
                [p.text for p in prepared],
                padding=True,
                return_tensors="pt",
                add_special_tokens=False,
            )
        else:
            enc = batching.collate(self.processor, prepared, sampling_rate=self._audio_rate())
        return enc.to(self.model.device)

    def _audio_rate(self) -> int:
        fe = getattr(self.processor, "feature_extractor", None)
        return int(getattr(fe, "sampling_rate", 16000) or 16000)

    def _check_context(self, inputs, max_new_tokens: int) -> None:
        n = int(inputs["input_ids"].shape[1])
        if n > self.context_length:
            raise ContextLengthError(
                f"the prompt is {n} tokens (media included) but {self.name} holds "
                f"{self.context_length}; shorten the conversation or send fewer/smaller images"
            )

    def _resolve_stop_ids(self) -> set[int]:
        ids: set[int] = set()
        eos = self.model.generation_config.eos_token_id
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[t] for t in self.adapter.stop_tokens if t in vocab)
        return ids

    def _generation_config(self, settings):
        """The per-call config: the settings over the model's, stopping on every stop id.

        generate() must stop on the adapter's turn-end tokens too, not only the config's;
        they go into this call's copy, so the model object a user passed in is left as is.
        """
        cfg = settings.apply(self.model.generation_config)
        cfg.eos_token_id = sorted(self._stop_ids)
        return cfg

    def _until_eos(self, row: list[int]) -> tuple[list[int], bool]:
        pad = self.tokenizer.pad_token_id
        for i, t in enumerate(row):
            if t in self._stop_ids:
                return row[:i], True
        while row and row[-1] == pad and pad not in self._stop_ids:
            row = row[:-1]
        return row, False

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @staticmethod
    def _seed(seed: int | None) -> None:
        if seed is not None:
            torch.manual_seed(seed)

    @staticmethod
    def _add_timings(results: list[ChatResult], clock: TokenClock, total: float) -> None:
        prefill = (clock.first_token or time.perf_counter()) - clock.start
        decoded = max(r.completion_tokens for r in results) if results else 0
        rate = (decoded - 1) / (total - prefill) if decoded > 1 and total > prefill else 0.0
        for r in results:
            r.timings = {
                "prefill_s": round(prefill, 4),
                "total_s": round(total, 4),
                "tokens_per_s": round(rate, 2),
            }

    def __repr__(self) -> str:
        return f"ChatModel({self.name!r}, family={self.adapter.name}, device={self.model.device})"
