"""Gemma 4's value syntax for tool calls: ``call:NAME{key:<|"|>text<|"|>,n:42,xs:[1,2]}``.

Close to JSON, but keys are bare and strings sit between ``<|"|>`` tokens (so they need no
escaping). Why by hand: no library reads this syntax; it is small enough for a hand-written
recursive-descent reader. Lenient where it costs nothing (spaces between tokens, a trailing
comma, JSON ``"..."`` strings, ``<|"|>``-quoted keys), strict otherwise: anything it does not
know raises :class:`Gemma4SyntaxError` and the caller keeps the call text as content.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

QUOTE = '<|"|>'
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][\w.\-]*")
_BARE_KEY = re.compile(r"[^\s:,{}\[\]<>\"]+")
_WORDS = {"true": True, "false": False, "null": None}
_MAX_DEPTH = 64


class Gemma4SyntaxError(ValueError):
    """The text is not in Gemma 4's call syntax."""


def parse_call(body: str) -> tuple[str, dict]:
    """``call:NAME{...}`` (between ``<|tool_call>`` and ``<tool_call|>``) → (name, args)."""
    r = _Reader(body)
    r.ws()
    if not r.text.startswith("call:", r.i):
        raise Gemma4SyntaxError("a call starts with 'call:'")
    r.i += len("call:")
    m = _NAME.match(r.text, r.i)
    if not m:
        raise Gemma4SyntaxError("missing function name")
    r.i = m.end()
    r.ws()
    if not r.peek("{"):
        raise Gemma4SyntaxError("arguments must be a {...} object")
    args = r.value(0)
    r.ws()
    if r.i != len(r.text):
        raise Gemma4SyntaxError(f"unexpected text after the arguments: {r.text[r.i : r.i + 20]!r}")
    return m.group(), args


def format_call(name: str, arguments: dict) -> str:
    """``<|tool_call>call:NAME{...}<tool_call|>``, keys sorted as the chat template writes them."""
    return f"<|tool_call>call:{name}{format_value(arguments)}<tool_call|>"


def format_value(value: Any) -> str:
    """A JSON value in Gemma 4's syntax (mappings with sorted bare keys)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return QUOTE + value + QUOTE
    if isinstance(value, dict):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{_key(k)}:{format_value(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) and k not in _WORDS else QUOTE + k + QUOTE


class _Reader:
    def __init__(self, text: str):
        self.text, self.i = text, 0

    def ws(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def peek(self, s: str) -> bool:
        return self.text.startswith(s, self.i)

    def expect(self, s: str) -> None:
        self.ws()
        if not self.peek(s):
            raise Gemma4SyntaxError(f"expected {s!r} at {self.text[self.i : self.i + 20]!r}")
        self.i += len(s)

    def value(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise Gemma4SyntaxError("nested too deeply")
        self.ws()
        if self.peek("{"):
            return self.obj(depth)
        if self.peek("["):
            return self.arr(depth)
        if self.peek(QUOTE) or self.peek('"'):
            return self.string()
        m = _NUMBER.match(self.text, self.i)
        if m:
            self.i = m.end()
            s = m.group()
            if "." in s or "e" in s or "E" in s:
                x = float(s)
                if not math.isfinite(x):
                    raise Gemma4SyntaxError(f"number out of range: {s}")
                return x
            return int(s)
        for word, val in _WORDS.items():
            end = self.i + len(word)
            if self.text.startswith(word, self.i) and not (
                end < len(self.text) and (self.text[end].isalnum() or self.text[end] == "_")
            ):
                self.i = end
                return val
        raise Gemma4SyntaxError(f"unknown value at {self.text[self.i : self.i + 20]!r}")

    def string(self) -> str:
        if self.peek(QUOTE):
            end = self.text.find(QUOTE, self.i + len(QUOTE))
            if end < 0:
                raise Gemma4SyntaxError('unclosed <|"|> string')
            s = self.text[self.i + len(QUOTE) : end]
            self.i = end + len(QUOTE)
            return s
        try:  # a JSON string: let the json module handle the escapes
            s, self.i = json.decoder.scanstring(self.text, self.i + 1)
        except ValueError as exc:
            raise Gemma4SyntaxError(f"bad string: {exc}") from None
        return s

    def key(self) -> str:
        self.ws()
        if self.peek(QUOTE) or self.peek('"'):
            return self.string()
        m = _BARE_KEY.match(self.text, self.i)
        if not m:
            raise Gemma4SyntaxError(f"expected a key at {self.text[self.i : self.i + 20]!r}")
        self.i = m.end()
        return m.group()

    def obj(self, depth: int) -> dict:
        self.i += 1
        out: dict[str, Any] = {}
        while True:
            self.ws()
            if self.peek("}"):
                self.i += 1
                return out
            k = self.key()
            self.expect(":")
            out[k] = self.value(depth + 1)
            self.ws()
            if self.peek(","):
                self.i += 1
            elif not self.peek("}"):
                raise Gemma4SyntaxError(
                    f"expected ',' or '}}' at {self.text[self.i : self.i + 20]!r}"
                )

    def arr(self, depth: int) -> list:
        self.i += 1
        out: list[Any] = []
        while True:
            self.ws()
            if self.peek("]"):
                self.i += 1
                return out
            out.append(self.value(depth + 1))
            self.ws()
            if self.peek(","):
                self.i += 1
            elif not self.peek("]"):
                raise Gemma4SyntaxError(
                    f"expected ',' or ']' at {self.text[self.i : self.i + 20]!r}"
                )
