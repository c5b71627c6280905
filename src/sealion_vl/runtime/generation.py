"""Generation settings, results, and the text helpers every request's decoding needs."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class GenerationSettings(BaseModel):
    """Sampling settings; ``None`` means "the checkpoint's generation_config decides".

    ``temperature=0`` means greedy decoding, as in the OpenAI API.
    """

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int | None = Field(
        None, ge=1, description="Most tokens to generate (default: the checkpoint's)."
    )
    temperature: float | None = Field(
        None, ge=0, description="0 for greedy; default: the checkpoint's setting."
    )
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass.")
    top_k: int | None = Field(None, ge=0, description="Sample from the k likeliest tokens.")
    repetition_penalty: float | None = Field(
        None, gt=0, description=">1 discourages repeating tokens."
    )
    seed: int | None = Field(None, description="Seed for reproducible sampling.")
    stop: list[str] | None = Field(
        None, description="Stop string (not included in the reply); repeat for several."
    )
    do_sample: bool | None = Field(None, description="Force sampling on or off.")
    ignore_eos: bool = Field(
        False, description="Keep generating past end-of-turn tokens (benchmarks, load tests)."
    )

    def apply(self, base, default_max_new_tokens: int = 512):
        """A copy of the model's GenerationConfig with these settings laid over it."""
        cfg = copy.deepcopy(base)
        cfg.max_new_tokens = self.max_new_tokens or cfg.max_new_tokens or default_max_new_tokens
        cfg.max_length = None
        for key in ("top_p", "top_k", "repetition_penalty"):
            if getattr(self, key) is not None:
                setattr(cfg, key, getattr(self, key))
        if self.temperature is not None:
            if self.temperature == 0:
                cfg.do_sample = False
            else:
                cfg.temperature = self.temperature
                cfg.do_sample = True
        if self.do_sample is not None:
            cfg.do_sample = self.do_sample
        if not cfg.do_sample:
            # Greedy: drop sampling knobs so transformers does not warn they are unused.
            cfg.temperature, cfg.top_p, cfg.top_k = None, None, None
        return cfg


@dataclass
class ChatResult:
    """One reply.

    Attributes:
        text: the assistant's content (special tokens, reasoning and tool-call markup removed,
            stop string cut off).
        finish_reason: ``"stop"`` (end of turn or a stop string), ``"length"``,
            ``"tool_calls"`` (the reply called tools), ``"cancelled"`` or ``"timeout"``.
        prompt_tokens / completion_tokens: token counts as the model saw them.
        reasoning: the thinking text (Gemma 4 ``<|channel>thought``, Qwen ``<think>``), or None.
        tool_calls: OpenAI-shaped calls ``{"id", "type": "function", "function": {"name",
            "arguments": <JSON string>}}``.
        timings: seconds from submission to the first new token (``prefill_s``, queueing
            included) and to the end (``total_s``), and ``tokens_per_s`` over the decode phase.
        raw_text: the reply as decoded, markup included (what :func:`sealion_vl.parse_reply`
            takes).
        logprobs: with ``logprobs=True``, one entry per generated token in OpenAI's shape
            (``token``, ``logprob``, ``bytes``, ``top_logprobs``).
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    timings: dict = field(default_factory=dict)
    token_ids: list[int] = field(default_factory=list, repr=False)
    reasoning: str | None = None
    tool_calls: list[dict] = field(default_factory=list)
    raw_text: str = field(default="", repr=False)
    logprobs: list[dict] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        out = {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
            "timings": self.timings,
        }
        if self.reasoning is not None:
            out["reasoning"] = self.reasoning
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        return out


class IncrementalDecoder:
    """The text of a growing list of token ids, decoding a short window per new token.

    Re-decoding every id at every step costs O(n) per token, O(n^2) per reply: measured
    0.13 s over a 1000-token stream and growing fourfold per doubling (long reasoning). Here
    each step decodes only the ids since the last emitted piece, twice: with and without the
    new id, and appends the difference. Both decodes start at the same id, so decoders that
    treat a first token specially (a stripped leading space) cancel out; a piece ending in
    U+FFFD (half a multi-byte character) waits for the next id.
    """

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self.decode = decode
        self.ids: list[int] = []
        self.text = ""
        self._start = 0  # first id of the window
        self._done = 0  # ids up to here are already in ``text``

    def add(self, token: int) -> str:
        """Append ``token``; returns all complete text so far."""
        self.ids.append(token)
        before = self.decode(self.ids[self._start : self._done])
        after = self.decode(self.ids[self._start :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before) :]
            self._start, self._done = self._done, len(self.ids)
        return self.text

    def full(self) -> str:
        """All text, including a trailing incomplete piece (as one full decode would give)."""
        before = self.decode(self.ids[self._start : self._done])
        return self.text + self.decode(self.ids[self._start :])[len(before) :]


def cut_at_stop(text: str, stops: list[str] | None) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    best = -1
    for s in stops or []:
        i = text.find(s)
        if i != -1 and (best == -1 or i < best):
            best = i
    return (text[:best], True) if best != -1 else (text, False)


def holdback(text: str, stops: list[str] | None) -> int:
    """How many trailing characters might still become a stop string (or a split UTF-8 char)."""
    n = 0
    for s in stops or []:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                n = max(n, k)
                break
    # a byte-level tokenizer decodes half a multi-byte character as U+FFFD; wait for the rest.
    # A UTF-8 character is at most 4 bytes, so only the last 3 can still be completed.
    tail = min(3, len(text) - len(text.rstrip("\ufffd")))
    return max(n, tail)
