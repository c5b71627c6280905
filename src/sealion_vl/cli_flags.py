"""Command-line flags made from pydantic models, declared once for every command.

Typer reads a command's parameters from its signature, so :func:`model_flags` rewrites the
signature: each field of the model becomes an option whose type, default and help come from
the pydantic field. A new field shows up in every command that uses the model, with no change
to the commands (``chat`` and ``serve`` take :class:`GenerationSettings`' flags this way,
``serve`` its :class:`~sealion_vl.serve.ServeConfig`'s). Values the user left unset are not
passed on, so the model's defaults (the checkpoint's generation_config, an environment
fallback) decide them.
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from sealion_vl.runtime.generation import GenerationSettings


def flag(name: str) -> str:
    """The option spelling of a field name: ``max_new_tokens`` -> ``--max-new-tokens``."""
    return "--" + name.replace("_", "-")


def model_flags(model: type[BaseModel], param: str):
    """Add one Typer option per field of ``model`` to a command.

    The command receives the values the user gave (unset flags left out) as ``param: dict``.
    """

    def unset(field):
        return None if field.default_factory is not None else field.default

    def decorate(fn):
        sig = inspect.signature(fn, eval_str=True)  # resolve `from __future__` annotations
        params = [p for p in sig.parameters.values() if p.name != param]
        extra = []
        for name, field in model.model_fields.items():
            option = typer.Option(flag(name), help=field.description or name.replace("_", " "))
            extra.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=unset(field),
                    annotation=Annotated[field.annotation, option],
                )
            )

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any):
            given = {}
            for name, field in model.model_fields.items():
                value = kwargs.pop(name, None)
                if value is not None and value != unset(field) and value != []:
                    given[name] = value
            return fn(*args, **{param: given}, **kwargs)

        keyword = [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]
        positional = [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
        new = sig.replace(parameters=positional + keyword + extra)
        wrapper.__signature__ = new
        wrapper.__annotations__ = {p.name: p.annotation for p in new.parameters.values()}
        return wrapper

    return decorate


generation_flags = model_flags(GenerationSettings, "gen")


def check_generation(gen: dict) -> str | None:
    """A one-line complaint naming each bad flag, or None when the values are valid."""
    from pydantic import ValidationError

    try:
        GenerationSettings(**gen)
    except ValidationError as e:
        return "; ".join(
            f"{flag('_'.join(str(x) for x in err['loc']))}: {err['msg']}" for err in e.errors()
        )
    return None
