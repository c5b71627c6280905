"""Resolving a merge parameter for one tensor, as mergekit does.

A setting is a scalar, a gradient (a list of numbers interpolated over the layer position
``t`` in [0, 1]; a list of non-numbers picks an entry), or a list of ``{filter, value}``
conditions where the first whose ``filter`` is a substring of the tensor name (or absent /
``"*"``) applies. Sources are tried from highest precedence down; the first that yields a
value wins; the method's default applies after that, and a parameter without default is an
error naming the tensor and model.
"""

from __future__ import annotations

from typing import Any

from sealion_vl.merge.config import MergeError
from sealion_vl.merge.methods import REQUIRED

_BOOLS = {"normalize", "rescale", "int8_mask"}


def _validate(name: str, value: Any) -> Any:
    if name in _BOOLS:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, (bool, int)):
            raise MergeError(f"parameter {name} must be true or false, got {value!r}")
        return bool(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MergeError(f"parameter {name} must be a number, got {value!r}") from None


def evaluate(name: str, setting: Any, tensor: str, t: float) -> Any:
    """The value of one setting for ``tensor`` at layer position ``t`` (``None``: no match)."""
    if isinstance(setting, dict):
        setting = [setting]
    if isinstance(setting, (bool, int, float, str)):
        return _validate(name, setting)
    if isinstance(setting, list):
        if not setting:
            return None
        if all(isinstance(e, (bool, int, float, str)) for e in setting):
            values = [_validate(name, e) for e in setting]
            if any(isinstance(v, bool) for v in values):
                return values[int(t * (len(values) - 1))]
            scaled = t * (len(values) - 1)
            i0 = int(scaled)
            i1 = min(len(values) - 1, i0 + 1)
            frac = scaled - i0
            return (1 - frac) * values[i0] + frac * values[i1]
        for cond in setting:
            if not isinstance(cond, dict) or "value" not in cond:
                raise MergeError(
                    f"parameter {name}: list entries need {{filter, value}}, got {cond!r}"
                )
            filt = cond.get("filter")
            if filt is None or filt == "*" or filt in tensor:
                return evaluate(name, cond["value"], tensor, t)
        return None
    raise MergeError(f"parameter {name}: unexpected setting {setting!r}")


def resolve(
    name: str,
    default: Any,
    sources: list[dict | None],
    tensor: str,
    t: float,
    model: str | None = None,
) -> Any:
    """The value of parameter ``name`` for ``tensor`` from ``sources`` (highest first)."""
    for scope in sources:
        if scope and name in scope:
            value = evaluate(name, scope[name], tensor, t)
            if value is not None:
                return value
    if default is REQUIRED:
        where = f"{model}: " if model else ""
        raise MergeError(f"{where}missing required parameter {name!r} for tensor {tensor}")
    return default
