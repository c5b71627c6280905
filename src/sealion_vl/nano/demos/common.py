"""What every nano demonstration shares: nano's synthetic data, measuring a checkpoint with
the eval runner (as ``sealion-vl eval run`` does), and saving the numbers atomically.

Why the eval runner and not ``nano.evaluate``: the issue asks for numbers a user can check
with the public command, so each measurement is a real ``run_eval`` into its own folder
(resumable, with items.jsonl and the replies) and the equivalent command line is saved next
to the number.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

FOLDERS = ("warmup/train", "general/train", "general/heldout", "sea/train", "sea/heldout")


#: Held-out sizes of the smoke runs: SMOKE's own (24 items) leave some task and language
#: empty, which the nano tasks refuse; these cover every kind in every language.
SMOKE_HELDOUT = {"sea/heldout": 240, "general/heldout": 60}


def sizes(smoke: bool) -> dict[str, tuple[str, str, int]]:
    """``{folder: (part, split, n)}`` of the build (or the smoke version)."""
    from sealion_vl.nano.build import SMOKE, BuildPlan, data_folders

    out = {k: v for k, v in data_folders(SMOKE if smoke else BuildPlan()).items() if k in FOLDERS}
    if smoke:
        for rel, n in SMOKE_HELDOUT.items():
            out[rel] = (*out[rel][:2], n)
    return out


def data_dir(
    work: Path, *folders: str, smoke: bool = False, progress: bool = True, seed: int | None = None
) -> Path:
    """``work/data`` holding nano's synthetic ``folders`` (see :data:`FOLDERS`).

    Each folder is generated, if absent, with the build's sizes and seed (``BuildPlan``;
    ``SMOKE``'s with ``smoke``), so ``sea/heldout`` and ``general/heldout`` are exactly the
    held-out splits on nano's card and the nano eval tasks read them with ``--data-dir``.
    ``seed`` (not the build's) writes ``work/data-seed<seed>`` instead: validation copies
    drawn from another random stream, for choosing settings without touching the held-out
    items that are reported.
    """
    from sealion_vl.nano.build import BuildPlan
    from sealion_vl.nano.synth import generate

    table = sizes(smoke)
    unknown = [f for f in folders if f not in table]
    if unknown:
        raise ValueError(f"unknown nano data folders {unknown}; known: {', '.join(FOLDERS)}")
    build_seed = BuildPlan().seed
    if seed is None or seed == build_seed:
        root, seed = Path(work) / "data", build_seed
    else:
        root = Path(work) / f"data-seed{seed}"
    for rel in folders:
        if not (root / rel / "sft.jsonl").is_file():
            part, split, n = table[rel]
            generate(root / rel, part=part, split=split, n=n, seed=seed, progress=progress)
    return root


def eval_command(model, tasks: list[str], out: Path, *, data: Path, limit=None, langs=None) -> str:
    """The ``sealion-vl eval run`` command line that :func:`measure` runs."""
    args = [
        "sealion-vl",
        "eval",
        "run",
        "--model",
        str(model),
        "--tasks",
        ",".join(tasks),
        "--runs",
        "1",
        "--data-dir",
        str(data),
        "--out",
        str(out),
    ]
    if limit is not None:
        args += ["--limit", str(limit)]
    if langs:
        args += ["--langs", ",".join(langs)]
    return shlex.join(args)


def measure(
    model,
    tasks: list[str],
    out: Path,
    *,
    data: Path,
    limit: int | None = None,
    langs: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate ``model`` on ``tasks`` with the eval runner, one greedy run, into ``out``.

    Returns:
        ``{"command", "by_task": {task: {lang: headline}}, "by_lang": {lang: total},
        "all": mean of the language totals, "en": English total (if run), "sea": mean of the
        other languages' totals (if any), "n": items per task}``.
    """
    from sealion_vl.eval.runner import EvalRunConfig, run_eval

    cfg = EvalRunConfig(
        model=str(model),
        tasks=tasks,
        out=Path(out),
        runs=1,
        limit=limit,
        langs=langs,
        data_dir=Path(data),
    )
    results = run_eval(cfg, progress=progress)
    headline = json.loads((Path(out) / "headline.json").read_text(encoding="utf-8"))
    by_task: dict[str, dict[str, float]] = {}
    by_lang: dict[str, float] = {}
    for lang, groups in results.items():
        if not isinstance(groups, dict) or "total" not in groups:
            continue
        by_lang[lang] = round(float(groups["total"]), 2)
        for tasks_ in groups.values():
            if not isinstance(tasks_, dict):
                continue
            for task, metrics in tasks_.items():
                if task in headline and isinstance(metrics, dict):
                    by_task.setdefault(task, {})[lang] = round(float(metrics[headline[task]]), 2)
    n = _item_counts(Path(out))
    sea = [v for k, v in by_lang.items() if k != "en"]
    summary = {
        "command": eval_command(model, tasks, out, data=data, limit=limit, langs=langs),
        "by_task": by_task,
        "by_lang": by_lang,
        "all": round(sum(by_lang.values()) / len(by_lang), 2),
        "n": n,
    }
    if "en" in by_lang:
        summary["en"] = by_lang["en"]
    if sea:
        summary["sea"] = round(sum(sea) / len(sea), 2)
    return summary


def _item_counts(out: Path) -> dict[str, int]:
    """Items per task in the run (from its items.jsonl)."""
    counts: dict[str, int] = {}
    with open(out / "items.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                task = json.loads(line)["task"]
                counts[task] = counts.get(task, 0) + 1
    return counts


def save(work: Path, name: str, result: dict) -> Path:
    """Write ``result`` to ``work/<name>.json`` atomically (temporary file, then rename)."""
    path = Path(work) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
