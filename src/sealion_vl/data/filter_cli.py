"""``sealion-vl data ...``: a typer sub-app (mounted by the main CLI) over the data jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sealion_vl.errors import SealionError

data_app = typer.Typer(
    help="Prepare image-caption data for SEA-LION-VL training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_out = Console()
_err = Console(stderr=True)


@data_app.callback()
def _data() -> None:
    """Prepare image-caption data for SEA-LION-VL training."""


@data_app.command("filter")
def filter_cmd(
    inp: Annotated[
        Path,
        typer.Argument(
            metavar="IN",
            help="A JSONL file (.jsonl, .jsonl.gz), a WebDataset tar shard (.tar, .tar.gz), or "
            "a folder of such shards. JSONL rows need a caption field; tar samples a KEY.txt "
            "caption and/or a KEY.json with one.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Argument(
            metavar="OUT",
            help="Output folder (created). Gets the kept rows, one shard per input shard in "
            "the input's format, plus reasons.jsonl (score, language and reasons for every "
            "row) and report.json (counts per language and reason, bad rows, timing).",
            show_default=False,
        ),
    ],
    min_score: Annotated[
        float,
        typer.Option(
            "--min-score",
            min=0.0,
            max=1.0,
            help="Keep rows scoring at least this (0-1). A SEA-language caption, one strong SEA "
            "entity (dish, city, landmark...) or a SEA locale each score 0.6-0.9 alone.",
        ),
    ] = 0.5,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Processes to use. Shards (and byte ranges of big uncompressed JSONL files) "
            "are spread over them; the output is the same for any number.",
        ),
    ] = 1,
    text_field: Annotated[
        str | None,
        typer.Option(
            "--text-field",
            help="Caption field, e.g. caption, meta.text or captions[0] (for tar: a key of "
            "KEY.json, or txt). Default: the first of caption, text, alt, alt_text, txt, "
            "captions, description (tar: the .txt member first).",
            show_default=False,
        ),
    ] = None,
    no_progress: Annotated[
        bool,
        typer.Option("--no-progress", help="Do not show the progress bar (on stderr)."),
    ] = False,
) -> None:
    """Keep the captions relevant to Southeast Asia: by language, SEA entities and locale."""
    from sealion_vl.data.sea import filter_captions

    try:
        report = filter_captions(
            inp,
            out,
            min_score=min_score,
            workers=workers,
            text_field=text_field,
            progress=not no_progress,
        )
    except SealionError as e:
        _err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    pct = f"{100 * report.kept_fraction:.1f}%"
    _out.print(
        f"kept {report.kept:,} / {report.rows:,} rows ({pct}) in {report.seconds:.1f} s -> {out}",
        highlight=False,
        soft_wrap=True,
    )
    table = Table("language", "rows", "kept", box=None)
    for lang, c in report.languages.items():
        table.add_row(lang, f"{c.rows:,}", f"{c.kept:,}")
    _out.print(table)
    if report.bad_rows:
        _out.print(f"{report.bad_rows:,} bad rows skipped (listed in report.json)")
    for f in report.failed_shards:
        _err.print(
            f"[bold red]failed shard[/] {f.shard}: {f.error}", highlight=False, soft_wrap=True
        )
    if report.failed_shards:
        raise typer.Exit(1)
