"""``sealion-vl eval run|score|report|tasks``: thin shells over the eval package's functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sealion_vl.cli_flags import check_generation, generation_flags
from sealion_vl.errors import SealionError

eval_app = typer.Typer(
    help="Evaluate on SEA-HELM's vision and instruction-following tasks, SEA-HELM's scores.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

TaskDirs = Annotated[
    list[Path] | None,
    typer.Option("--task-dir", help="A folder of extra task folders (repeatable)."),
]


def _fail(e: Exception) -> None:
    err.print(f"[bold red]error:[/] {e}", highlight=False)
    raise typer.Exit(2)


def _split(csv: str | None) -> list[str] | None:
    return [x.strip() for x in csv.split(",") if x.strip()] if csv else None


@eval_app.command("run")
@generation_flags
def run(
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder; rerun to resume.")],
    tasks: Annotated[
        str,
        typer.Option(
            help="Comma-separated task names (see `eval tasks`) or groups: `vision` (SEA-HELM's "
            "default vision group, its languages), `seahelm` (vision + sea_ifeval), `nano`."
        ),
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Checkpoint, or the model name at --endpoint.")
    ] = "nano",
    langs: Annotated[
        str | None, typer.Option(help="Comma-separated languages (default: all of each task).")
    ] = None,
    runs: Annotated[int, typer.Option(help="Runs, with SEA-HELM's seeds in its order.")] = 8,
    seeds: Annotated[
        str | None, typer.Option(help="Comma-separated seeds instead of SEA-HELM's.")
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="OpenAI-compatible API base (http://host:port/v1) instead of a local model."
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="SEALION_API_KEY", help="Bearer token for --endpoint.")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at --endpoint.")] = 8,
    limit: Annotated[int | None, typer.Option(help="First N items per task and language.")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Local dataset copies (<dir>/<owner>/<name>/) instead of the Hub."),
    ] = None,
    task_dir: TaskDirs = None,
    clip_model: Annotated[
        str | None, typer.Option(help="CLIP model for XM3600's RefCLIPScore (folder or name).")
    ] = None,
    retry_errors: Annotated[
        bool, typer.Option(help="Regenerate items a previous run recorded as errors.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per task.")] = True,
    *,
    gen: dict,
) -> None:
    """Generate and score; killed runs resume from OUT without regenerating anything.

    Writes OUT/results.json (SEA-HELM's nest, mean over runs), results_stderr.json, items.jsonl,
    diagnostics.json, runs/<seed>/ and config.json.
    """
    from sealion_vl.eval.runner import EvalRunConfig, run_eval

    if problem := check_generation(gen):
        _fail(ValueError(problem))
    _quiet_datasets()
    try:
        cfg = EvalRunConfig(
            model=model,
            tasks=_split(tasks) or [],
            out=out_dir,
            langs=_split(langs),
            runs=runs,
            seeds=[int(s) for s in _split(seeds)] if seeds else None,
            endpoint=endpoint,
            api_key=api_key,
            concurrency=concurrency,
            limit=limit,
            data_dir=data_dir,
            task_dirs=task_dir or [],
            generation=gen,
            clip_model=clip_model,
            retry_errors=retry_errors,
        )
        result = run_eval(cfg, progress=progress)
    except (SealionError, ValueError, OSError) as e:
        _fail(e)
    _print_totals(result)
    err.print(f"results in {out_dir}")


@eval_app.command("score")
def score(
    replies: Annotated[Path, typer.Argument(help="JSONL: {task, lang, doc, response} per line.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for results.json, items.jsonl.")],
    task_dir: TaskDirs = None,
    clip_model: Annotated[
        str | None, typer.Option(help="CLIP model for XM3600's RefCLIPScore (folder or name).")
    ] = None,
) -> None:
    """Score replies made anywhere exactly as SEA-HELM does, without running a model."""
    from sealion_vl.eval.score import score_replies

    try:
        result = score_replies(replies, out_dir, task_dirs=task_dir or [], clip_model=clip_model)
    except (SealionError, ValueError, OSError) as e:
        _fail(e)
    _print_totals(result)
    err.print(f"results in {out_dir}")


@eval_app.command("report")
def report(
    dirs: Annotated[list[Path], typer.Argument(help="Evaluation output folders to compare.")],
    out_file: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path(
        "report.html"
    ),
    title: Annotated[str | None, typer.Option(help="Page title.")] = None,
    examples: Annotated[int, typer.Option(help="Example items shown per task and language.")] = 3,
) -> None:
    """A self-contained HTML page comparing models per language and task, with charts."""
    from sealion_vl.eval.report import build_report

    try:
        path = build_report(dirs, out_file, title=title, examples=examples)
    except (SealionError, ValueError, OSError) as e:
        _fail(e)
    err.print(f"report written to {path}")


@eval_app.command("tasks")
def tasks_(
    task_dir: TaskDirs = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the tasks (shipped and from --task-dir) with their languages and metric."""
    from sealion_vl.eval.task import available_tasks, load_task

    try:
        rows = []
        for name, folder in sorted(available_tasks(task_dir or []).items()):
            t = load_task(folder)
            rows.append(
                {
                    "name": name,
                    "version": t.version,
                    "languages": t.languages,
                    "metric": t.metric,
                    "default_group": t.default_group_languages,
                    "folder": str(folder),
                }
            )
    except SealionError as e:
        _fail(e)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table()
    for col in ("task", "languages", "metric", "in SEA-HELM's vision group"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["name"], ",".join(r["languages"]), r["metric"], ",".join(r["default_group"])
        )
    out.print(table)


def _quiet_datasets() -> None:
    """Our bar per task says how far a run is; the datasets library's per-split bars would
    interleave with it."""
    import datasets

    datasets.disable_progress_bars()


def _print_totals(result: dict) -> None:
    table = Table("language", "total")
    for lang, v in result.items():
        if isinstance(v, dict):
            table.add_row(lang, f"{v.get('total', float('nan')):.2f}")
    if "total" in result:
        table.add_row("[bold]all", f"{result['total']:.2f}")
    err.print(table)
