"""``sealion-vl nano ...``: build nano from scratch, or evaluate a model on the synthetic world."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

nano_app = typer.Typer(
    help="The nano demonstration model: build it from scratch, evaluate it.", no_args_is_help=True
)
err = Console(stderr=True)


@nano_app.command("build")
def build(
    out: Annotated[Path, typer.Argument(help="Folder for the checkpoint, card and work files.")],
    smoke: Annotated[
        bool, typer.Option("--smoke", help="Tiny sizes and a few steps: checks the pipeline.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for data, initialisation and training.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Generate the synthetic SEA world, train nano in four stages, evaluate, write the card.

    About 25 minutes (23 of them training) on a 2-core CPU; a shared
    machine's load moves that by up to a fifth either way.

    Re-running resumes where it stopped (finished stages are kept in OUT/work).
    """
    from dataclasses import replace

    from sealion_vl.nano.build import SMOKE, BuildPlan, build_nano
    from sealion_vl.nano.evaluate import summary

    plan = replace(SMOKE if smoke else BuildPlan(), seed=seed)
    result = build_nano(
        out, plan, progress=progress, log=lambda m: err.print(m, markup=False, highlight=False)
    )
    for bucket, row in summary(result["final"]).items():
        err.print(
            f"{bucket:12s} {row['accuracy']:5.1f}%  (chance {row['chance']:.0f}%, n={row['n']})"
        )
    err.print(f"checkpoint and card in {out}")


@nano_app.command("eval")
def eval_(
    heldout: Annotated[Path, typer.Argument(help="A held-out folder written by the generator.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model to score.")] = "nano",
    limit: Annotated[int | None, typer.Option(help="Score only the first N items.")] = None,
    batch_size: Annotated[int, typer.Option(help="Conversations per generate call.")] = 16,
) -> None:
    """Score a model on held-out synthetic items; prints the result JSON."""
    import sealion_vl
    from sealion_vl.nano.evaluate import evaluate

    if not (heldout / "sft.jsonl").is_file():
        err.print(
            f"error: {heldout} is not a held-out folder written by the generator "
            "(it has no sft.jsonl); make one with sealion_vl.nano.synth.generate(...)"
        )
        raise typer.Exit(2)
    m = sealion_vl.load(model)
    print(
        json.dumps(
            evaluate(m, heldout, limit=limit, batch_size=batch_size), indent=1, ensure_ascii=False
        )
    )


@nano_app.command("demo")
def demo(
    name: Annotated[
        str,
        typer.Argument(
            help="Which demonstration: merge (SEA SFT + general model), distill (a smaller "
            "student, distilled vs labels only) or rl (GRPO with a verifiable reward)."
        ),
    ],
    work: Annotated[
        Path, typer.Argument(help="Work folder: data, checkpoints, eval outputs, NAME.json.")
    ],
    smoke: Annotated[
        bool, typer.Option("--smoke", help="Tiny sizes and a few steps: checks the pipeline.")
    ] = False,
    card: Annotated[
        Path | None,
        typer.Option(
            help="Also put the result (finding, table, command) in this model card's "
            "demonstrations section, replacing the demo's earlier block (e.g. "
            "src/sealion_vl/nano/checkpoint/README.md)."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Reproduce one of the adapt recipe's demonstrations on nano, measured with the eval runner.

    Every demo starts from the shipped nano, keeps finished steps in WORK (rerunning resumes)
    and writes WORK/NAME.json with the numbers on nano's card and the `sealion-vl eval run`
    commands that measured them; the card's markdown table is printed at the end.
    """
    import importlib

    from sealion_vl.nano.demos import DEMOS

    if name not in DEMOS:
        err.print(f"error: unknown demo {name!r}; choose one of: {', '.join(DEMOS)}")
        raise typer.Exit(2)
    if card is not None and not card.is_file():
        err.print(f"error: --card {card}: no such model card (README.md) file")
        raise typer.Exit(2)
    module = importlib.import_module(f"sealion_vl.nano.demos.{name}")
    result = module.run(
        work,
        smoke=smoke,
        progress=progress,
        log=lambda m: err.print(m, markup=False, highlight=False),
    )
    print(result["table"])
    err.print(f"numbers and commands in {work / (name + '.json')}")
    if card is not None:
        from sealion_vl.nano.demos.card import update_card

        update_card(card, name, result)
        err.print(f"card updated: {card}")
