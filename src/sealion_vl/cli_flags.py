"""Command-line flags made from :class:`GenerationSettings`, declared once for every command.

Typer reads a command's parameters from its signature, so the decorator below rewrites the
signature: each settings field becomes an option whose type, default and help come from the
pydantic field. A new field shows up in ``chat`` (and every other command that uses the
decorator) with no change to the commands. Values the user left unset are not passed on, so
the checkpoint's generation_config decides them.
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any

import typer

from sealion_vl.runtime.generation import GenerationSettings


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def generation_flags(fn):
    """Add one option per :class:`GenerationSettings` field to a Typer command.

    The command receives the chosen values as ``gen: dict`` (only the flags the user gave).
    """
    sig = inspect.signature(fn, eval_str=True)  # resolve `from __future__` annotations
    params = [p for p in sig.parameters.values() if p.name != "gen"]
    names = list(GenerationSettings.model_fields)
    extra = []
    for name, field in GenerationSettings.model_fields.items():
        annotation = field.annotation
        default = field.default
        option = typer.Option(_flag(name), help=field.description or name.replace("_", " "))
        extra.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[annotation, option],
            )
        )

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        gen = {}
        for name in names:
            value = kwargs.pop(name, None)
            default = GenerationSettings.model_fields[name].default
            if value is not None and value != default and value != []:
                gen[name] = value
        return fn(*args, gen=gen, **kwargs)

    keyword = [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]
    positional = [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
    new = sig.replace(parameters=positional + keyword + extra)
    wrapper.__signature__ = new
    wrapper.__annotations__ = {p.name: p.annotation for p in new.parameters.values()}
    return wrapper


def check_generation(gen: dict) -> str | None:
    """A one-line complaint naming each bad flag, or None when the values are valid."""
    from pydantic import ValidationError

    try:
        GenerationSettings(**gen)
    except ValidationError as e:
        return "; ".join(
            f"{_flag('_'.join(str(x) for x in err['loc']))}: {err['msg']}" for err in e.errors()
        )
    return None
