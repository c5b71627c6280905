"""OpenAI chat-completions wire format: the request model and the response/chunk builders.

Unknown request fields are ignored (clients send many); known ones are validated, and a bad
value is a 400 naming the field. What maps where:

- ``max_completion_tokens`` wins over ``max_tokens``; either is capped at the context left.
- ``reasoning_effort`` ``"none"`` switches thinking off, any other value on;
  ``chat_template_kwargs.enable_thinking`` does the same and wins when both are given.
- ``presence_penalty`` / ``frequency_penalty`` are accepted when 0 and refused otherwise
  (the engine has no such penalties; ``repetition_penalty`` is the one it has), rather than
  silently ignored.
- ``top_k`` and ``repetition_penalty`` are accepted as vLLM does (extensions);
  ``temperature`` below 0.001 is greedy decoding (what it means, without the overflow).
- ``n`` choices are sampled with seeds ``seed, seed+1, ...`` (unseeded without ``seed``);
  usage counts the prompt once and the completion tokens of every choice.
- ``logprobs`` come whole on each choice; when streaming, in the choice's last chunk.
- ``finish_reason`` is OpenAI's ``stop`` / ``length`` / ``tool_calls``, or ``timeout`` when
  the server's ``request_timeout_s`` ended the generation.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1


class _Open(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChatMessage(_Open):
    """One conversation turn; content parts are checked by :mod:`sealion_vl.messages`."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class FunctionSpec(_Open):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Open):
    type: Literal["function"] = "function"
    function: FunctionSpec


class StreamOptions(_Open):
    include_usage: bool = False


class ChatTemplateKwargs(_Open):
    model_config = ConfigDict(extra="allow")

    enable_thinking: bool | None = None


class ChatCompletionRequest(_Open):
    """POST /v1/chat/completions body (OpenAI's fields; others ignored)."""

    model: str | None = Field(
        None, description="Model id from /v1/models (default: the served one)."
    )
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, ge=0.01, le=10)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    n: int = Field(1, ge=1, le=8)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    chat_template_kwargs: ChatTemplateKwargs | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    user: str | None = None

    @model_validator(mode="after")
    def _checks(self) -> ChatCompletionRequest:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise ValueError(
                    f"{name} is not supported (only 0); use repetition_penalty (>1 discourages "
                    "repeats)"
                )
        stops = self.stop_list()
        if len(stops) > 8 or any(not s for s in stops):
            raise ValueError("stop: at most 8 non-empty strings")
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def reasoning(self) -> bool | None:
        """Thinking on/off as asked (None: the checkpoint's default)."""
        kw = self.chat_template_kwargs
        if kw is not None and kw.enable_thinking is not None:
            return kw.enable_thinking
        if self.reasoning_effort is not None:
            return self.reasoning_effort != "none"
        return None

    def engine_kwargs(self, context_timeout_s: float) -> dict[str, Any]:
        """Keyword arguments for ``ChatModel.submit`` (seed set per choice by the caller)."""
        kw: dict[str, Any] = {"clamp_to_context": True, "timeout_s": context_timeout_s}
        max_new = self.max_completion_tokens or self.max_tokens
        if max_new is not None:
            kw["max_new_tokens"] = max_new
        for name in ("temperature", "top_p", "top_k", "repetition_penalty"):
            if getattr(self, name) is not None:
                kw[name] = getattr(self, name)
        if kw.get("temperature", 1) < 1e-3:  # in effect greedy; dividing by it overflows
            kw["temperature"] = 0
        if self.stop is not None:
            kw["stop"] = self.stop_list()
        if self.tools:
            kw["tools"] = [t.model_dump(exclude_none=True) for t in self.tools]
            if self.tool_choice is not None:
                kw["tool_choice"] = self.tool_choice
            if self.parallel_tool_calls is not None:
                kw["parallel_tool_calls"] = self.parallel_tool_calls
        if self.response_format is not None and self.response_format.get("type") != "text":
            kw["response_format"] = self.response_format
        reasoning = self.reasoning()
        if reasoning is not None:
            kw["reasoning"] = reasoning
        if self.logprobs:
            kw["logprobs"] = True
            if self.top_logprobs:
                kw["top_logprobs"] = self.top_logprobs
        return kw


# ------------------------------------------------------------------ responses


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


#: What OpenAI reports for a token the model gave no probability at all (JSON has no -inf).
NO_PROBABILITY = -9999.0


def finite_logprobs(entries: list[dict]) -> list[dict]:
    """Logprob entries with -inf/NaN replaced by :data:`NO_PROBABILITY` (valid JSON)."""

    def fix(e: dict) -> dict:
        out = dict(e)
        lp = out.get("logprob")
        if isinstance(lp, float) and not math.isfinite(lp):
            out["logprob"] = NO_PROBABILITY
        if out.get("top_logprobs"):
            out["top_logprobs"] = [fix(t) for t in out["top_logprobs"]]
        return out

    return [fix(e) for e in entries]


def message_of(result) -> dict[str, Any]:
    """The OpenAI ``message`` of one :class:`~sealion_vl.runtime.ChatResult`."""
    msg: dict[str, Any] = {"role": "assistant", "content": result.text}
    if result.tool_calls:
        msg["tool_calls"] = result.tool_calls
        msg["content"] = result.text or None
    if result.reasoning is not None:
        msg["reasoning_content"] = result.reasoning
    return msg


def completion(cid: str, model: str, results: list, created: int | None = None) -> dict:
    """A whole ``chat.completion`` object for ``results`` (one per choice)."""
    choices = []
    for i, r in enumerate(results):
        choice: dict[str, Any] = {
            "index": i,
            "message": message_of(r),
            "finish_reason": r.finish_reason,
            "logprobs": None,
        }
        lp = getattr(r, "logprobs", None)
        if lp is not None:
            choice["logprobs"] = {"content": finite_logprobs(lp)}
        choices.append(choice)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(  # one prompt, however many choices
            results[0].prompt_tokens, sum(r.completion_tokens for r in results)
        ),
    }


def chunk(
    cid: str,
    model: str,
    created: int,
    index: int | None = None,
    delta: dict | None = None,
    finish_reason: str | None = None,
    usage_: dict | None = None,
    logprobs: list | None = None,
) -> dict:
    """One ``chat.completion.chunk``; a usage-only chunk when ``index`` is None."""
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
    }
    if index is not None:
        choice: dict[str, Any] = {
            "index": index,
            "delta": delta or {},
            "finish_reason": finish_reason,
            "logprobs": {"content": finite_logprobs(logprobs)} if logprobs is not None else None,
        }
        out["choices"].append(choice)
    if usage_ is not None:
        out["usage"] = usage_
    return out
