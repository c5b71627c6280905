"""Structured output: JSON schemas and forced tool calls enforced while decoding (xgrammar).

Three pieces, used by the request engine's step loop:

1. :func:`constraint_for` turns a request's OpenAI ``response_format`` / ``tools`` /
   ``tool_choice`` into a :class:`ConstraintSpec` (or ``None``: free text), validating shapes.
2. :class:`GrammarCache` (one per loaded model) compiles specs against the model's tokenizer
   with xgrammar and keeps the compiled grammars, keyed by the spec's text.
3. :class:`Constraint` (one per request) follows the tokens the request emits;
   :func:`apply_constraints` masks one decode step's logits for a whole batch at once, so rows
   may join and leave between steps.

Stop tokens: each :class:`Constraint` gets the model's end-of-turn ids and hands them to
xgrammar as the grammar's terminators (``override_stop_tokens``): they are allowed exactly when
the grammar is complete (never inside, e.g., a JSON string), and accepting one terminates the
matcher. Other control tokens (``<|im_start|>``, image placeholders...) are special tokens whose
text a grammar's free-text parts would otherwise accept; they are masked unless the grammar
asks for them by name (e.g. Gemma 4's ``<|"|>``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import xgrammar as xgr

from sealion_vl.errors import StructuredOutputError
from sealion_vl.families.tool_grammar import (
    check_json_schema,
    grammar_tokens,
    tool_call_grammar,
    xgrammar_schema,
)

__all__ = [
    "Constraint",
    "ConstraintSpec",
    "GrammarCache",
    "apply_constraints",
    "constraint_for",
]

# With ``compact_json=False``: whitespace allowed per gap between JSON tokens, room to
# pretty-print a few levels deep while a model still cannot loop on newlines forever (a known
# failure of grammar-forced JSON).
JSON_MAX_WHITESPACE = 16


@dataclass(frozen=True)
class ConstraintSpec:
    """What one request's output must match; hashable, and its ``text`` is the cache key.

    Attributes:
        kind: ``json_schema`` (``text`` is the schema as JSON), ``json_object`` (any JSON
            object) or ``structural_tag`` (``text`` is an xgrammar structural tag, e.g. a forced
            tool call).
        text: the schema / structural tag as JSON text (key order kept: it is the order the
            properties are written in).
        name: a label for messages (the schema's name, or ``tool_call``).
        tokens: token strings the grammar matches as whole tokens (kept out of the control-token
            mask).
    """

    kind: Literal["json_schema", "json_object", "structural_tag"]
    text: str
    name: str = ""
    tokens: tuple[str, ...] = ()


_JSON_OBJECT = ConstraintSpec("json_object", '{"type": "object"}', "json_object")


def _forces_tool(tool_choice) -> bool:
    if tool_choice is None or tool_choice in ("auto", "none"):
        return False
    return True  # "required", a named function, or a shape tool_call_grammar will reject


def constraint_for(
    response_format: dict | None,
    *,
    tools: list | None = None,
    tool_choice=None,
    family: str | None = None,
    parallel_tool_calls: bool = False,
) -> ConstraintSpec | None:
    """The decoding constraint a request asks for, or ``None`` for free text.

    Args:
        response_format: OpenAI shape: ``None`` / ``{"type": "text"}`` (free text),
            ``{"type": "json_object"}`` (any JSON object), or ``{"type": "json_schema",
            "json_schema": {"name": ..., "schema": {...}, "strict": ...}}``.
        tools: OpenAI tool list (needed when ``tool_choice`` forces a call).
        tool_choice: ``None`` / ``"auto"`` / ``"none"`` leave the reply free; ``"required"``
            forces one call to any of ``tools``; ``{"type": "function", "function": {"name":
            N}}`` forces one call to N. A forced call wins over ``response_format`` (the reply
            then holds no content to format), though ``response_format`` is still validated.
        family: ``gemma3`` | ``qwen3_vl`` | ``gemma4``: whose tool-call format to force.
        parallel_tool_calls: let a forced reply hold several calls (default: exactly one).

    Returns:
        A :class:`ConstraintSpec`, or ``None`` when nothing is constrained.

    Raises:
        StructuredOutputError: a malformed field; the message names it.
    """
    spec = _response_format_spec(response_format)
    if not _forces_tool(tool_choice):
        if tool_choice is not None and not isinstance(tool_choice, str | dict):
            raise StructuredOutputError(f"tool_choice: unexpected value {tool_choice!r:.80}")
        return spec
    if family is None:
        raise StructuredOutputError(
            "family: a forced tool_choice needs the model family to know the call format"
        )
    text = tool_call_grammar(family, tools, tool_choice, parallel=parallel_tool_calls)
    return ConstraintSpec("structural_tag", text, "tool_call", grammar_tokens(text))


def _response_format_spec(response_format) -> ConstraintSpec | None:
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise StructuredOutputError(
            f'response_format: expected an object such as {{"type": "json_object"}}, '
            f"got {type(response_format).__name__}"
        )
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return _JSON_OBJECT
    if kind != "json_schema":
        raise StructuredOutputError(
            f"response_format.type: {kind!r} is not one of text, json_object, json_schema"
        )
    js = response_format.get("json_schema")
    if not isinstance(js, dict):
        raise StructuredOutputError(
            "response_format.json_schema: required for type json_schema, as "
            '{"name": ..., "schema": {...}}'
        )
    name = js.get("name", "")
    if not isinstance(name, str):
        raise StructuredOutputError(
            f"response_format.json_schema.name: must be a string, got {type(name).__name__}"
        )
    if js.get("strict") is not None and not isinstance(js.get("strict"), bool):
        raise StructuredOutputError("response_format.json_schema.strict: must be true or false")
    if "schema" not in js:
        raise StructuredOutputError("response_format.json_schema.schema: missing")
    schema = js["schema"]
    if not isinstance(schema, dict):
        raise StructuredOutputError(
            "response_format.json_schema.schema: must be a JSON Schema object, got "
            f"{type(schema).__name__}"
        )
    check_json_schema(schema, "response_format.json_schema.schema")
    return ConstraintSpec("json_schema", json.dumps(schema), name or "schema")


class GrammarCache:
    """One model's grammar compiler and its compiled grammars (thread-safe).

    Built once per loaded model; every request's :class:`Constraint` comes from here.

    Args:
        tokenizer: the model's Hugging Face tokenizer.
        vocab_size: the width of the model's logits (may exceed ``len(tokenizer)``; the
            extra ids are never allowed under a constraint).
        stop_token_ids: the model's end-of-turn ids, the default for :meth:`constraint`.
        compact_json: JSON replies written like ``json.dumps`` (``{"a": 1, "b": [2, 3]}``): no
            free whitespace, so no whitespace loops and fewer tokens. ``False`` allows up to
            ``JSON_MAX_WHITESPACE`` whitespace characters between JSON tokens (pretty-printing).
        max_threads: xgrammar's compile threads.
    """

    def __init__(
        self,
        tokenizer,
        vocab_size: int,
        *,
        stop_token_ids: Sequence[int] | None = None,
        compact_json: bool = True,
        max_threads: int = 2,
    ):
        self.tokenizer = tokenizer
        self.vocab_size = int(vocab_size)
        self.stop_token_ids = list(stop_token_ids or [])
        info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=self.vocab_size, stop_token_ids=self.stop_token_ids or None
        )
        self._compiler = xgr.GrammarCompiler(info, max_threads=max_threads)
        self._json_format = (
            {"any_whitespace": False}
            if compact_json
            else {"any_whitespace": True, "max_whitespace_cnt": JSON_MAX_WHITESPACE}
        )
        self._compiled: dict[tuple[str, str], xgr.CompiledGrammar] = {}
        self._keep: dict[tuple, torch.Tensor] = {}
        self._lock = threading.Lock()
        self._special = _control_token_ids(tokenizer, self.vocab_size)

    def compile(self, spec: ConstraintSpec) -> xgr.CompiledGrammar:
        """The compiled grammar for ``spec`` (compiled on first use, then shared)."""
        key = (spec.kind, spec.text)
        with self._lock:
            hit = self._compiled.get(key)
        if hit is not None:
            return hit
        # Compile outside the lock: two threads may both compile one new key; one result wins.
        try:
            if spec.kind == "json_schema":
                schema = json.dumps(xgrammar_schema(json.loads(spec.text)))
                compiled = self._compiler.compile_json_schema(schema, **self._json_format)
            elif spec.kind == "json_object":
                compiled = self._compiler.compile_json_schema(
                    '{"type": "object", "additionalProperties": true}',
                    strict_mode=False,
                    **self._json_format,
                )
            else:
                compiled = self._compiler.compile_structural_tag(spec.text)
        except Exception as e:  # xgrammar raises several RuntimeError/ValueError subclasses
            where = "response_format.json_schema.schema" if spec.kind == "json_schema" else "tools"
            raise StructuredOutputError(f"{where}: cannot be enforced: {e}") from None
        with self._lock:
            return self._compiled.setdefault(key, compiled)

    def constraint(
        self, spec: ConstraintSpec, stop_token_ids: Sequence[int] | None = None
    ) -> Constraint:
        """A fresh per-request matcher for ``spec``.

        Args:
            spec: from :func:`constraint_for`.
            stop_token_ids: the ids that end this reply (default: the cache's); allowed once the
                grammar is complete and never before.
        """
        stops = list(stop_token_ids if stop_token_ids is not None else self.stop_token_ids)
        if not stops:
            raise StructuredOutputError(
                "stop_token_ids: a constrained reply needs at least one stop token to end on"
            )
        return Constraint(
            self.compile(spec),
            stop_token_ids=stops,
            keep=self._keep_mask(spec.tokens, stops),
            vocab_size=self.vocab_size,
        )

    def _keep_mask(self, tokens: tuple[str, ...], stops: list[int]) -> torch.Tensor | None:
        key = (tokens, tuple(stops))
        with self._lock:
            hit = self._keep.get(key)
        if hit is not None:
            return hit
        wanted = {self.tokenizer.convert_tokens_to_ids(t) for t in tokens} | set(stops)
        keep = _bitmask_row(self.vocab_size, sorted(self._special - wanted), allow=False)
        with self._lock:
            return self._keep.setdefault(key, keep)


def _bitmask_row(vocab_size: int, ids: Sequence[int], *, allow: bool) -> torch.Tensor:
    """One bitmask row allowing exactly ``ids`` (``allow``) or everything but ``ids``."""
    words = xgr.get_bitmask_shape(1, vocab_size)[1]
    bits = np.full(words * 32, not allow, dtype=bool)
    bits[list(ids)] = allow
    # xgrammar's layout: bit (i % 32) of int32 word i // 32, least significant bit first
    packed = np.packbits(bits, bitorder="little").view("<u4").view(np.int32)
    return torch.from_numpy(packed.copy())


def _control_token_ids(tokenizer, vocab_size: int) -> set[int]:
    """Ids of the tokenizer's special (control) tokens below ``vocab_size``."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    ids |= {i for i, t in decoder.items() if getattr(t, "special", False)}
    return {i for i in ids if i is not None and 0 <= i < vocab_size}


class Constraint:
    """One request's grammar state: which tokens may come next, and the tokens so far.

    Made by :meth:`GrammarCache.constraint`; not shared between requests or threads.
    """

    def __init__(
        self,
        compiled: xgr.CompiledGrammar,
        *,
        stop_token_ids: Sequence[int],
        keep: torch.Tensor | None = None,
        vocab_size: int,
    ):
        self.vocab_size = vocab_size
        self.stop_token_ids = list(stop_token_ids)
        self._matcher = xgr.GrammarMatcher(compiled, override_stop_tokens=self.stop_token_ids)
        self._keep = keep
        self._stops_only = _bitmask_row(vocab_size, self.stop_token_ids, allow=True)

    def fill_bitmask(self, bitmask: torch.Tensor, row: int) -> None:
        """Write the allowed next tokens into ``bitmask[row]`` (int32, CPU, 1 bit per id).

        Args:
            bitmask: (B, ceil(V / 32)) from ``xgrammar.allocate_token_bitmask(B, V)``.
            row: this request's row in the batch.

        A finished (terminated) request only allows its stop tokens, so an engine that keeps
        its row one step longer does not fail.
        """
        if self._matcher.is_terminated():
            bitmask[row] = self._stops_only
            return
        self._matcher.fill_next_token_bitmask(bitmask, row)
        if self._keep is not None:
            bitmask[row] &= self._keep

    def accept(self, token_id: int) -> bool:
        """Advance by the sampled token; ``False`` if the grammar does not allow it."""
        return bool(self._matcher.accept_token(int(token_id)))

    def is_terminated(self) -> bool:
        """True once a stop token was accepted after a complete match."""
        return bool(self._matcher.is_terminated())

    def is_completed(self) -> bool:
        """True when the output so far is a complete match (a stop token may come next)."""
        return bool(self._matcher.is_completed())


def apply_constraints(logits: torch.Tensor, constraints: Sequence[Constraint | None]) -> None:
    """Mask one decode step's logits in place: disallowed tokens become ``-inf``.

    Args:
        logits: (B, V) next-token logits, any float dtype, CPU or GPU.
        constraints: one entry per row; ``None`` rows are left untouched.

    Raises:
        ValueError: the list length is not B, or V differs from a constraint's vocab width.
    """
    if logits.dim() != 2 or logits.shape[0] != len(constraints):
        raise ValueError(
            f"apply_constraints: logits {tuple(logits.shape)} need one constraint per row, "
            f"got {len(constraints)}"
        )
    rows = [i for i, c in enumerate(constraints) if c is not None]
    if not rows:
        return
    width = logits.shape[1]
    for i in rows:
        if constraints[i].vocab_size != width:
            raise ValueError(
                f"apply_constraints: row {i}'s grammar was built for {constraints[i].vocab_size} "
                f"token ids but the logits are {width} wide; build the GrammarCache with the "
                "model's logits width"
            )
    bitmask = xgr.allocate_token_bitmask(len(constraints), width)
    for i in rows:
        constraints[i].fill_bitmask(bitmask, i)
    xgr.apply_token_bitmask_inplace(
        logits, bitmask.to(logits.device, non_blocking=True), vocab_size=width, indices=rows
    )
