"""The ``sealion-vl`` command. Each subcommand is a thin shell over one public function."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sealion_vl import catalog
from sealion_vl.cli_flags import check_generation, generation_flags, model_flags
from sealion_vl.data.filter_cli import data_app
from sealion_vl.distill.cli import distill_command
from sealion_vl.errors import SealionError
from sealion_vl.eval.cli import eval_app
from sealion_vl.merge.cli import merge_command
from sealion_vl.nano.cli import nano_app
from sealion_vl.rl.cli import rl_command
from sealion_vl.serve.config import ServeConfig

app = typer.Typer(
    help="Run, serve, adapt and evaluate AI Singapore's SEA-LION vision-language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(nano_app, name="nano")
app.add_typer(eval_app, name="eval")
app.command("merge")(merge_command)
app.command("distill")(distill_command)
app.command("rl")(rl_command)
out = Console()
err = Console(stderr=True)


def _fail(e: Exception) -> None:
    err.print(f"[bold red]error:[/] {e}", highlight=False)
    raise typer.Exit(2)


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False,
    sealion_only: Annotated[
        bool, typer.Option("--sealion", help="Only AI Singapore's releases, not base models.")
    ] = False,
) -> None:
    """List the checkpoints sealion-vl knows by name (short name, family, size, context...)."""
    entries = catalog.list_models(sealion_only=sealion_only)
    if as_json:
        print(json.dumps([e.model_dump(exclude_none=True) for e in entries], indent=2))
        return
    table = Table(title="sealion-vl model catalog", show_lines=False)
    for col in (
        "short name",
        "Hugging Face id",
        "family",
        "params",
        "context",
        "inputs",
        "tools",
        "reasoning",
        "licence",
    ):
        table.add_column(col)
    for e in entries:
        params = f"{e.params_b:g}B" + (f" ({e.params_total_b:g}B)" if e.params_total_b else "")
        table.add_row(
            e.short,
            e.id,
            e.family,
            params,
            f"{e.context // 1024}k",
            ",".join(e.modalities),
            e.tool_format,
            "yes" if e.reasoning else "no",
            e.license,
        )
    out.print(table)


def _user_turn(prompt: str, images: list[str], videos: list[str], audios: list[str]) -> dict:
    parts: list[dict] = [{"type": "image", "path": p} for p in images]
    parts += [{"type": "video", "path": p} for p in videos]
    parts += [{"type": "audio", "path": p} for p in audios]
    parts.append({"type": "text", "text": prompt})
    return {"role": "user", "content": parts}


def _read_json(path: Path | None, flag: str):
    """A JSON file given on the command line, or a clear error naming the flag."""
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        _fail(SealionError(f"{flag} {path}: no such file"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        _fail(SealionError(f"{flag} {path}: not valid JSON ({e})"))


def _request_options(tools_file, tool_choice, schema_file, reasoning) -> dict:
    opts: dict = {}
    tools = _read_json(tools_file, "--tools")
    if tools is not None:
        opts["tools"] = tools
        opts["tool_choice"] = tool_choice
    schema = _read_json(schema_file, "--json-schema")
    if schema is not None:
        opts["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema_file.stem, "schema": schema},
        }
    if reasoning:
        opts["reasoning"] = True
    return opts


@app.command()
@generation_flags
def chat(
    prompt: Annotated[
        str | None, typer.Argument(help="The question. Leave out for an interactive session.")
    ] = None,
    *,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Short name, Hugging Face id or checkpoint folder "
            "(default: nano, the small offline demo model shipped with sealion-vl).",
        ),
    ] = "nano",
    image: Annotated[
        list[Path] | None, typer.Option("--image", "-i", help="Image file; repeat for several.")
    ] = None,
    video: Annotated[
        list[Path] | None, typer.Option("--video", help="Video file (Qwen3-VL, Gemma 4).")
    ] = None,
    audio: Annotated[
        list[Path] | None, typer.Option("--audio", help="Audio file (Gemma 4).")
    ] = None,
    system: Annotated[str | None, typer.Option("--system", help="System prompt.")] = None,
    tools: Annotated[
        Path | None,
        typer.Option(
            "--tools",
            help="JSON file with OpenAI-style tool definitions the model may call; "
            "calls are printed as JSON.",
        ),
    ] = None,
    tool_choice: Annotated[
        str,
        typer.Option(
            "--tool-choice",
            help="auto (the model decides), required (must call a tool), none, "
            "or a tool name (must call that one).",
        ),
    ] = "auto",
    json_schema: Annotated[
        Path | None,
        typer.Option(
            "--json-schema",
            help="JSON Schema file: the reply is forced to be JSON that validates against it.",
        ),
    ] = None,
    reasoning: Annotated[
        bool, typer.Option("--reasoning", help="Switch thinking on (Gemma 4, Qwen thinking).")
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, bfloat16, float16 or float32.")] = "auto",
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print answer, reasoning, tool calls, token counts and timings as JSON."
        ),
    ] = False,
    gen: dict,
) -> None:
    """Chat with a model about images (and video/audio where the model takes them).

    With a PROMPT it prints one answer. Without one it opens a multi-turn session:
    type a message; `/image PATH` attaches an image to the next message, `/reset` starts
    over, Ctrl-D quits.
    """
    import sealion_vl

    bad = check_generation(gen)
    if bad:
        _fail(SealionError(bad))
    if tool_choice not in ("auto", "required", "none"):
        tool_choice = {"type": "function", "function": {"name": tool_choice}}
    opts = _request_options(tools, tool_choice, json_schema, reasoning)
    for kind, paths in (("image", image), ("video", video), ("audio", audio)):
        for p in paths or []:  # fail before the (slow) model load, not after
            if not p.is_file():
                _fail(SealionError(f"--{kind} {p}: no such file"))
    try:
        with err.status(f"Loading {model} …"):
            m = sealion_vl.load(model, device=device, dtype=dtype)
    except SealionError as e:
        _fail(e)
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    files = (
        [str(p) for p in image or []],
        [str(p) for p in video or []],
        [str(p) for p in audio or []],
    )
    if prompt is not None:
        try:
            result = m.chat(history + [_user_turn(prompt, *files)], **gen, **opts)
        except SealionError as e:
            _fail(e)
        if as_json:
            payload = {"model": m.name, "answer": result.text, **result.to_dict()}
            print(json.dumps(payload, ensure_ascii=False))
            return
        if result.reasoning:
            err.print(f"[dim]{result.reasoning}[/]", highlight=False)
        if result.text or not result.tool_calls:
            print(result.text)
        for call in result.tool_calls:
            print(json.dumps(call["function"], ensure_ascii=False))
        return
    _interactive(m, history, files, {**gen, **opts})


def _interactive(m, history: list[dict], files, gen: dict) -> None:
    """A multi-turn session on stdin; replies stream as they are generated."""
    start = list(history)
    pending_images = list(files[0])
    err.print(f"[dim]{m.name}: /image PATH attaches, /reset starts over, Ctrl-D quits[/]")
    while True:
        try:
            line = input("> " if sys.stdin.isatty() else "")
        except (EOFError, KeyboardInterrupt):
            err.print()
            return
        line = line.strip()
        if not line:
            continue
        if line == "/reset":
            history, pending_images = list(start), []
            err.print("[dim]conversation cleared[/]")
            continue
        if line.startswith("/image"):
            path = line[len("/image") :].strip()
            if not Path(path).is_file():
                err.print(f"[red]no such image file: {path!r}[/]")
            else:
                pending_images.append(path)
                err.print(f"[dim]attached {path}[/]")
            continue
        turn = _user_turn(line, pending_images, list(files[1]), list(files[2]))
        files = (files[0], [], [])
        reply, calls = [], {}
        try:
            for delta in m.stream(history + [turn], **gen):
                kind = type(delta).__name__
                if kind == "ContentDelta":
                    reply.append(delta.text)
                    print(delta.text, end="", flush=True)
                elif kind == "ReasoningDelta":
                    err.print(f"[dim]{delta.text}[/]", end="", highlight=False)
                else:  # a tool call, sent whole
                    calls[delta.index] = delta
                    print(json.dumps({"name": delta.name, "arguments": delta.arguments_delta}))
        except SealionError as e:
            err.print(f"[red]error:[/] {e}")
            continue
        print(flush=True)
        history += [turn, {"role": "assistant", "content": "".join(reply)}]
        pending_images = []


def _parse_sets(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SealionError(
                f"--set takes KEY=VALUE (dotted keys like optim.lr=1e-4), got {pair!r}"
            )
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command()
def train(
    recipe: Annotated[
        Path, typer.Argument(help="Recipe YAML (stage cpt or sft).", exists=True, dir_okay=False)
    ],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the newest checkpoint in output_dir.")
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key, e.g. --set optim.lr=1e-4 (repeat)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Continued pre-training (cpt) or SFT from a recipe; writes a transformers checkpoint.

    Multi-GPU / multi-process: `accelerate launch --config_file
    src/sealion_vl/train/launch/ddp.yaml -m sealion_vl.cli train RECIPE` (fsdp.yaml and
    zero3.yaml too), or `torchrun --nproc_per_node N -m sealion_vl.cli train RECIPE`.
    """
    from pydantic import ValidationError

    from sealion_vl.train import load_recipe, run

    try:
        r = load_recipe(recipe, _parse_sets(set_ or []))
    except (ValidationError, SealionError) as e:
        _fail(SealionError(f"{recipe}: {e}"))
    try:
        result = run(r, resume=resume, progress=progress)
    except SealionError as e:
        _fail(e)
    _end_process_group()  # after success only: a failed rank must not wait in a barrier
    err.print(
        f"trained {result.steps} steps, final loss {result.last_loss:.4f}, "
        f"{result.tokens} loss tokens; checkpoint in {result.output_dir}"
    )
    skipped = result.skipped.get("total_skipped", 0)
    if skipped:
        err.print(f"[yellow]{skipped} rows skipped[/] (see {result.output_dir}/data_report.json)")


@app.command()
@model_flags(ServeConfig, "overrides")
def serve(
    *,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Short name, Hugging Face id or checkpoint folder (default: nano).",
        ),
    ] = "nano",
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="sealion (this server), or vllm / sglang: start that engine's OpenAI server "
            "for the model with the right tool and reasoning parsers and these limits.",
        ),
    ] = "sealion",
    engine_python: Annotated[
        str,
        typer.Option(
            "--engine-python",
            help="Python of the environment where vLLM / SGLang is installed (they pin other "
            "transformers versions than sealion-vl, so they live in their own venv).",
        ),
    ] = "python",
    engine_image: Annotated[
        str | None,
        typer.Option("--engine-image", help="Run vLLM / SGLang from this container image."),
    ] = None,
    engine_arg: Annotated[
        list[str] | None,
        typer.Option("--engine-arg", help="Extra argument passed to vLLM / SGLang (repeat)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="With --engine vllm/sglang: print the command, start nothing."
        ),
    ] = False,
    overrides: dict,
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (chat completions, streaming, tools).

    Safe defaults: listens on 127.0.0.1; no local files and no private-network URLs as media;
    bounded queue (503 beyond it) and body size (413). Set --api-key (or SEALION_VL_API_KEY)
    before exposing it. When one machine is not enough, --engine vllm or sglang starts that
    engine's server instead, for the same model and with the same limits and API.
    """
    from pydantic import ValidationError

    from sealion_vl.serve import serve as run_server

    try:
        if engine != "sealion":
            _serve_external(
                engine, model, overrides, engine_python, engine_image, engine_arg, dry_run
            )
            return
        run_server(model, **overrides)
    except ValidationError as e:
        flags = (
            "--" + "-".join(str(x) for x in er["loc"]).replace("_", "-") + f": {er['msg']}"
            for er in e.errors()
        )
        _fail(SealionError("; ".join(flags)))
    except (SealionError, ValueError) as e:
        _fail(e)


def _serve_external(engine, model, overrides, python, image, extra, dry_run) -> None:
    """Hand off to vLLM / SGLang: build their command from our settings, then exec it."""
    import shlex

    from sealion_vl.serve.engines import command_for_config, run_external

    if engine not in ("vllm", "sglang"):
        raise SealionError(f"--engine must be sealion, vllm or sglang, got {engine!r}")
    cfg = ServeConfig(**overrides)
    argv = command_for_config(engine, model, cfg, python=python, image=image, extra=extra or [])
    shown = [("***" if i and argv[i - 1] == "--api-key" else a) for i, a in enumerate(argv)]
    err.print(f"[dim]{shlex.join(shown)}[/]", highlight=False)
    if not dry_run:
        run_external(argv, engine=engine, replace=True)


def _end_process_group() -> None:
    """Tear down torchrun's process group before the interpreter exits.

    run() keeps the group (several runs may share a process); a CLI process is done with it.
    Left to interpreter exit, gloo's threads can abort a rank ("terminate called without an
    active exception") after the training itself succeeded.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
