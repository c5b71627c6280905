"""``sealion-vl rl CONFIG.yaml``: the command over :func:`sealion_vl.rl.rl`.

Registered by the main app as ``app.command("rl")(rl_command)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sealion_vl.errors import SealionError

_err = Console(stderr=True)


def _fail(e: Exception):
    _err.print(f"[bold red]error:[/] {e}", highlight=False)
    raise typer.Exit(2)


def _overrides(pairs: list[str]) -> dict:
    """``--set grpo.max_steps=10`` pairs as {dotted key: YAML-parsed value}."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SealionError(f"--set takes KEY=VALUE (e.g. grpo.max_steps=10), got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def rl_command(
    recipe: Annotated[
        Path,
        typer.Argument(
            help="RL recipe YAML (model, data, rewards, grpo); see "
            "src/sealion_vl/rl/recipes/nano-counting.yaml.",
            exists=True,
            dir_okay=False,
        ),
    ],
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue from the newest trainer checkpoint in output_dir/checkpoints "
            "(written every grpo.save_every steps); starts afresh when there is none.",
        ),
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a recipe key, e.g. --set grpo.max_steps=10 (repeatable)."
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option(help="Show the progress bar (metrics.jsonl is written either way).")
    ] = True,
) -> None:
    """GRPO with verifiable rewards (numeric answer, SEA-IFEval constraints, answer tag, JSON
    schema) on image+text prompts, through TRL; writes a checkpoint to output_dir."""
    from sealion_vl.rl.config import load_rl_recipe
    from sealion_vl.rl.run import rl

    try:
        r = load_rl_recipe(recipe, _overrides(set_ or []))
        out = rl(r, resume=resume, progress=progress)
    except SealionError as e:
        _fail(e)
    _err.print(f"RL done; checkpoint in {out} (metrics in {out / 'metrics.jsonl'})")
