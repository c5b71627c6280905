"""``sealion-vl distill CONFIG.yaml``: the command over :func:`sealion_vl.distill.distill`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _overrides(pairs: list[str]) -> dict:
    import yaml

    from sealion_vl.errors import SealionError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SealionError(
                f"--set takes KEY=VALUE (dotted keys like optim.lr=1e-4), got {pair!r}"
            )
        out[key.strip()] = yaml.safe_load(value)
    return out


def distill_command(
    config: Annotated[
        Path,
        typer.Argument(
            help="Distillation recipe YAML (teacher, student, data, k, loss...).",
            exists=True,
            dir_okay=False,
        ),
    ],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the newest checkpoint in output_dir.")
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a recipe key, e.g. --set k=32, --set optim.lr=1e-4 (repeat)."
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option(help="Show progress bars (teacher cache, training).")
    ] = True,
) -> None:
    """Distil a teacher into a student (logit KL / JSD) and write the student's checkpoint.

    Offline (default): the teacher's top-k log-probs per loss token are cached once in a
    compact file (OUTPUT_DIR/teacher-topk.bin unless `cache:` says otherwise) and reused by
    later and resumed runs. Online (`online: true`): the teacher runs beside the student.
    """
    from pydantic import ValidationError
    from rich.console import Console

    from sealion_vl.distill import distill, load_distill_recipe
    from sealion_vl.errors import SealionError

    err = Console(stderr=True)
    try:
        recipe = load_distill_recipe(config, _overrides(set_ or []))
    except (ValidationError, SealionError) as e:
        err.print(f"[red]error:[/] {config}: {e}")
        raise typer.Exit(2) from None
    try:
        out = distill(recipe, resume=resume, progress=progress)
    except SealionError as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from None
    if not recipe.online:
        from sealion_vl.distill.cache import TopKCache

        cache = TopKCache(recipe.cache_path())
        err.print(
            f"teacher cache {cache.path}: {cache.n_tokens} tokens, k = {cache.k}, "
            f"{cache.bytes_per_token:.0f} bytes per token"
        )
    err.print(f"distilled {recipe.teacher} into {recipe.student}; checkpoint in {out}")
