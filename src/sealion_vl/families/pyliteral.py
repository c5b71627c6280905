"""Python-style tool calls (Gemma 3): ``name(key=literal, ...)`` read without ever running code.

Why by hand: Gemma 3 writes calls as Python source (``[f(a=1)]`` or a ``tool_code`` fence) and
the only safe reader is a parse tree walked node by node. :func:`ast.parse` builds the tree
(nothing is compiled or executed); the walker below accepts only literals (str, int, float,
bool, None, lists, tuples, dicts with string keys, plus JSON's true/false/null spelled as
bare names) and call nodes whose callee is a plain or dotted name. Anything else
(``__import__('os')``, attribute access on values, f-strings, operators, ``**kw``) makes the
whole call text invalid, and the caller keeps it as plain text.
"""

from __future__ import annotations

import ast
import json
import math
from typing import Any

_JSON_NAMES = {"true": True, "false": False, "null": None}
_MAX_DEPTH = 64


class NotACall(ValueError):
    """The text is not a list of safe Python-style calls."""


def parse_call_list(source: str) -> list[tuple[str, dict]]:
    """``[f(a=1), g(b='x')]`` → ``[("f", {"a": 1}), ("g", {"b": "x"})]``.

    Raises:
        NotACall: not a non-empty list of calls with literal keyword arguments.
    """
    tree = _parse(source, "eval")
    if not isinstance(tree.body, ast.List) or not tree.body.elts:
        raise NotACall("not a non-empty list")
    return [_call(node) for node in tree.body.elts]


def parse_call_block(source: str) -> list[tuple[str, dict]]:
    """The body of a ``tool_code`` fence: one call per statement (``print(call)`` unwrapped,
    a bracketed list of calls allowed too).

    Raises:
        NotACall: anything but calls with literal keyword arguments.
    """
    tree = _parse(source.strip(), "exec")
    calls: list[tuple[str, dict]] = []
    for stmt in tree.body:
        if not isinstance(stmt, ast.Expr):
            raise NotACall("only call expressions are allowed")
        node = stmt.value
        if isinstance(node, ast.List) and node.elts:
            calls.extend(_call(n) for n in node.elts)
            continue
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
            and len(node.args) == 1
            and not node.keywords
        ):
            node = node.args[0]
        calls.append(_call(node))
    if not calls:
        raise NotACall("no call")
    return calls


def format_call(name: str, arguments: dict) -> str:
    """``name(key=literal, ...)``: the Python spelling :func:`parse_call_block` reads back."""
    args = ", ".join(f"{k}={to_python(v)}" for k, v in arguments.items())
    return f"{name}({args})"


def to_python(value: Any) -> str:
    """A JSON value as Python literal source (``true`` → ``True``).

    Strings are written in double quotes (JSON's escapes, every one of which Python reads
    the same way), as SEA-LION's tool-calling guide shows them and as the forced-call
    grammar and nano's training data write them.
    """
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{to_python(str(k))}: {to_python(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_python(v) for v in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _parse(source: str, mode: str) -> Any:
    try:
        return ast.parse(source, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        raise NotACall(f"not Python: {exc}") from None


def _call(node: ast.AST) -> tuple[str, dict]:
    if not isinstance(node, ast.Call):
        raise NotACall("not a call")
    if node.args:
        raise NotACall("positional arguments are not allowed (keyword arguments only)")
    args: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise NotACall("**kwargs is not allowed")
        args[kw.arg] = _literal(kw.value, 0)
    return _callee(node.func), args


def _callee(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return _callee(node.value) + "." + node.attr
    raise NotACall("the callee must be a plain or dotted name")


def _literal(node: ast.AST, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise NotACall("nested too deeply")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (str, int, float, bool)) or node.value is None:
            if isinstance(node.value, float) and not math.isfinite(node.value):
                raise NotACall("inf and nan are not JSON")
            return node.value
        raise NotACall(f"unsupported constant {type(node.value).__name__}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = node.operand
        if (
            isinstance(inner, ast.Constant)
            and isinstance(inner.value, (int, float))
            and not isinstance(inner.value, bool)
        ):
            if isinstance(inner.value, float) and not math.isfinite(inner.value):
                raise NotACall("inf and nan are not JSON")
            return -inner.value if isinstance(node.op, ast.USub) else inner.value
        raise NotACall("a sign applies to numbers only")
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, depth + 1) for e in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                raise NotACall("dict keys must be strings")
            out[k.value] = _literal(v, depth + 1)
        return out
    if isinstance(node, ast.Name) and node.id in _JSON_NAMES:
        return _JSON_NAMES[node.id]
    raise NotACall(f"not a literal: {type(node).__name__}")
