"""Counting prompts for GRPO on nano, and the greedy counting reward of a checkpoint.

Why counting: nano's SFT answers most count questions but not all (its card: 91% on
shape counts, 96% on fruit counts, greedy), so a numeric reward has room to rise, and the
reward is exact (``numeric_match`` against the number drawn). Images come from nano's own
synthetic world (``sealion_vl.nano.synth``) with their own seed stream, so neither split
repeats an image nano was trained on, and ``train`` and ``heldout`` never share one.

Commands (the header of ``recipes/nano-counting.yaml`` has the whole demonstration)::

    python -m sealion_vl.rl.nano_counting prompts data/rl-count-train --split train --n 256
    python -m sealion_vl.rl.nano_counting measure nano data/rl-count-heldout/prompts.jsonl
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Annotated

import typer

from sealion_vl.rl.rewards import numeric_match

_KINDS = {"scene": "count", "fruit": "fruit_count"}


def write_prompts(out_dir: str | Path, *, n: int, split: str = "train", seed: int = 0) -> Path:
    """Write ``n`` count questions (images + ``prompts.jsonl``) to ``out_dir``, atomically.

    Rows: ``{"id", "prompt", "images": [path], "answer": count, "lang", "question"}``;
    languages cycle through nano's eight, image kinds alternate between shape scenes and fruit.

    Returns:
        the ``prompts.jsonl`` path.
    """
    from sealion_vl.nano.synth import LANGUAGES, lang, render

    out = Path(out_dir)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        rng = random.Random(f"rl-count/{seed}/{split}/{i}")
        code = LANGUAGES[i % len(LANGUAGES)]
        kind = ("scene", "fruit")[(i // len(LANGUAGES)) % 2]
        image, facts = render(rng, kind)
        question = _KINDS[kind]
        name = f"images/{split}-{i}.png"
        image.save(tmp / name)
        rows.append(
            {
                "id": f"{split}-{i}",
                "prompt": rng.choice(lang(code)["questions"][question]),
                "images": [name],
                "answer": facts["count"],
                "lang": code,
                "question": question,
            }
        )
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (tmp / "prompts.jsonl").write_text(text, encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out / "prompts.jsonl"


def measure(model: str, prompts: str | Path, *, batch_size: int = 16, max_new_tokens: int = 16):
    """The mean ``numeric_match`` reward of ``model``'s greedy replies to ``prompts``.

    Returns:
        ``{"n", "reward", "by_lang": {lang: reward}, "by_question": {question: reward}}``,
        rewards as fractions (0-1).
    """
    import sealion_vl

    path = Path(prompts)
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    chat = sealion_vl.load(model, device="cpu")
    replies: list[str] = []
    for start in range(0, len(rows), batch_size):
        convs = [
            [
                {
                    "role": "user",
                    "content": [
                        *({"type": "image", "path": str(path.parent / p)} for p in r["images"]),
                        {"type": "text", "text": r["prompt"]},
                    ],
                }
            ]
            for r in rows[start : start + batch_size]
        ]
        out = chat.chat_batch(convs, max_new_tokens=max_new_tokens, temperature=0)
        replies.extend(x.text for x in out)
    scores = numeric_match(None, replies, answer=[r["answer"] for r in rows])

    def mean_by(key: str) -> dict:
        groups: dict[str, list[float]] = {}
        for r, s in zip(rows, scores, strict=True):
            groups.setdefault(r[key], []).append(s)
        return {k: round(sum(v) / len(v), 4) for k, v in sorted(groups.items())}

    return {
        "n": len(rows),
        "reward": round(sum(scores) / len(scores), 4),
        "by_lang": mean_by("lang"),
        "by_question": mean_by("question"),
    }


app = typer.Typer(add_completion=False, help="Counting prompts for GRPO on nano.")


@app.command("prompts")
def prompts_command(
    out_dir: Annotated[Path, typer.Argument(help="folder to write (replaced if it exists)")],
    n: Annotated[int, typer.Option(help="number of prompts")] = 256,
    split: Annotated[
        str, typer.Option(help="seed stream: train and heldout never share images")
    ] = "train",
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
) -> None:
    """Write count questions about nano's synthetic images."""
    print(write_prompts(out_dir, n=n, split=split, seed=seed))


@app.command("measure")
def measure_command(
    model: Annotated[str, typer.Argument(help="checkpoint folder or short name (nano)")],
    prompts: Annotated[Path, typer.Argument(help="prompts.jsonl written by `prompts`")],
    batch_size: Annotated[int, typer.Option(help="prompts decoded together")] = 16,
) -> None:
    """Print the greedy counting reward of MODEL on PROMPTS as JSON."""
    print(json.dumps(measure(model, prompts, batch_size=batch_size), indent=1))


if __name__ == "__main__":
    app()
