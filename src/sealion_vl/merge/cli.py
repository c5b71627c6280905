"""``sealion-vl merge CONFIG.yaml OUT``: a thin shell over :func:`sealion_vl.merge.merge`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

err = Console(stderr=True)


def merge_command(
    config: Annotated[
        Path,
        typer.Argument(
            metavar="CONFIG.yaml",
            help="Merge config YAML: mergekit's format (merge_method, base_model, models, "
            "parameters, dtype) plus an optional modules: section for vision / projector / "
            "language choices.",
        ),
    ],
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Output folder for the merged checkpoint.")
    ],
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace OUT if it exists (it is swapped in only when complete)."
        ),
    ] = False,
    max_shard_size: Annotated[
        str, typer.Option(help="Largest output shard, e.g. 5GB, 500MB.")
    ] = "5GB",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Merge checkpoints of one family (linear, slerp, task_arithmetic, ties, dare_linear,
    dare_ties), streaming one tensor at a time; every tensor of every input must match."""
    from sealion_vl.errors import SealionError
    from sealion_vl.merge import merge

    try:
        path = merge(
            config, out, progress=progress, overwrite=overwrite, max_shard_size=max_shard_size
        )
    except SealionError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        raise typer.Exit(2) from None
    err.print(f"merged checkpoint written to {path}", highlight=False)
