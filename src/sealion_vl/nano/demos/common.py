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


def eval_command(
    model,
    tasks: list[str],
    out: Path,
    *,
    data: Path,
    limit=None,
    langs=None,
    runs: int = 1,
    temperature: float | None = None,
) -> str:
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
        str(runs),
        "--data-dir",
        str(data),
        "--out",
        str(out),
    ]
    if limit is not None:
        args += ["--limit", str(limit)]
    if langs:
        args += ["--langs", ",".join(langs)]
    if temperature is not None:
        args += ["--temperature", str(temperature)]
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
    runs: int = 1,
    temperature: float | None = None,
) -> dict:
    """Evaluate ``model`` on ``tasks`` with the eval runner into ``out``: one greedy run, or
    ``runs`` runs (SEA-HELM's seeds) sampled at ``temperature``, scores averaged over runs.

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
        runs=runs,
        limit=limit,
        langs=langs,
        data_dir=Path(data),
        generation={} if temperature is None else {"temperature": temperature},
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
        "command": eval_command(
            model,
            tasks,
            out,
            data=data,
            limit=limit,
            langs=langs,
            runs=runs,
            temperature=temperature,
        ),  # fmt: skip
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


def _rows(out: Path):
    """The rows of an eval folder's items.jsonl (one per run and item)."""
    with open(Path(out) / "items.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def mean_item_score(out: Path, task: str) -> dict:
    """The mean per-item score of ``task`` over every run and item of an eval folder (for a
    0/1 rule: the share correct, i.e. the mean reward), ``{"by_lang", "all", "n"}``; in %
    for 0/1 scores."""
    sums: dict[str, list[float]] = {}
    for row in _rows(out):
        if row["task"] == task and row["score"] is not None:
            sums.setdefault(row["lang"], []).append(float(row["score"]))
    if not sums:
        raise ValueError(f"{out}: no scored items of task {task!r}")
    scale = 100.0 if all(v in (0.0, 1.0) for xs in sums.values() for v in xs) else 1.0
    every = [v for xs in sums.values() for v in xs]
    return {
        "by_lang": {k: round(scale * sum(v) / len(v), 2) for k, v in sums.items()},
        "all": round(scale * sum(every) / len(every), 2),
        "n": len(every),
    }


def _item_counts(out: Path) -> dict[str, int]:
    """Items per task in the run (from its items.jsonl)."""
    counts: dict[str, int] = {}
    for row in _rows(out):
        counts[row["task"]] = counts.get(row["task"], 0) + 1
    return counts


def save(work: Path, name: str, result: dict) -> Path:
    """Write ``result`` to ``work/<name>.json`` atomically (temporary file, then rename)."""
    path = Path(work) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _cell_headline(metric: str, rows: list[dict]) -> float:
    """The headline ``metric`` (the run's headline.json) of one nano task and language from
    its items.jsonl rows, as ``nano_common`` scores it: normalised balanced accuracy (choice
    tasks), corpus chrF++ (captions) or the share correct.

    Written out rather than calling ``nano_common``'s scikit-learn metrics: those take ~12 ms
    a cell, and a bootstrap rescores ~50k cells; a test checks the two agree on real runs.
    """
    if metric == "normalized_accuracy":
        golds = [str(r["gold"]) for r in rows]
        classes = sorted(set(golds))
        recalls = []
        for c in classes:
            mine = [r for r, g in zip(rows, golds, strict=True) if g == c]
            recalls.append(sum(str(r["extracted"]) == c for r in mine) / len(mine))
        k = len(classes)
        acc = sum(recalls) / k
        return 0.0 if k <= 1 else 100.0 * max((acc - 1 / k) / (1 - 1 / k), 0.0)
    if metric == "chrf++":
        from sacrebleu.metrics import CHRF

        hyps = [r["extracted"] or "" for r in rows]
        refs = [r["gold"][0] if isinstance(r["gold"], list) else r["gold"] for r in rows]
        return float(CHRF(word_order=2).corpus_score(hyps, [refs]).score)
    return 100.0 * sum(float(r["score"] or 0) for r in rows) / len(rows)


def headline_bootstrap(a: Path, b: Path, *, resamples: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap of the overall headline (mean over task x language cells) of eval
    run ``b`` minus run ``a`` (one greedy run each, the same nano items).

    Why: the headline weighs every task and language alike, so a per-item mean (dominated by
    the many VQA items) tests another quantity. Each resample redraws the items of every
    cell with replacement, the same draw for both runs, and rescores the cell as the task
    does (:func:`_cell_headline`).

    Returns:
        ``{"diff": observed b - a, "ci95": [lo, hi], "resamples", "share_b_better"}``.
    """
    import random

    def cells(run: Path) -> dict:
        out: dict[tuple[str, str], dict[str, dict]] = {}
        for r in _rows(run):
            out.setdefault((r["task"], r["lang"]), {})[r["id"]] = r
        return out

    ca, cb = cells(a), cells(b)
    if {k: set(v) for k, v in ca.items()} != {k: set(v) for k, v in cb.items()}:
        raise ValueError(f"eval runs {a} and {b} hold different items; cannot pair them")
    metric = json.loads((Path(a) / "headline.json").read_text(encoding="utf-8"))
    keys = sorted(ca)
    ids = {k: sorted(ca[k]) for k in keys}

    def overall(cellrows: dict, draw: dict) -> float:
        vals = [_cell_headline(metric[k[0]], [cellrows[k][i] for i in draw[k]]) for k in keys]
        return sum(vals) / len(vals)

    observed = overall(cb, ids) - overall(ca, ids)
    rng = random.Random(seed)
    diffs = []
    for _ in range(resamples):
        draw = {k: [rng.choice(ids[k]) for _ in ids[k]] for k in keys}
        diffs.append(overall(cb, draw) - overall(ca, draw))
    diffs.sort()
    return {
        "diff": round(observed, 2),
        "ci95": [
            round(diffs[int(0.025 * resamples)], 2),
            round(diffs[int(0.975 * resamples) - 1], 2),
        ],
        "resamples": resamples,
        "share_b_better": round(sum(d > 0 for d in diffs) / resamples, 4),
    }


def paired(a: Path, b: Path, *, seed: int = 0, resamples: int = 2000) -> dict:
    """Item by item, eval run ``b`` minus eval run ``a`` (same items, same order of tasks).

    Why: per item, both arms answered the same prompt, so the paired difference and a
    bootstrap over items say whether a gap is more than which items were drawn. Item scores
    are put on 0-100 (accuracy items 0 or 100, captions their sentence chrF++) and averaged
    over the runs of a sampled evaluation (so an item's score is its mean reward).

    Returns:
        ``{"items", "mean_diff", "ci95": [lo, hi], "better", "worse"}`` (items where b scored
        higher / lower than a).
    """
    import random

    def scores(run: Path) -> dict:
        out: dict[tuple, list[float]] = {}
        for r in _rows(run):
            scale = 1.0 if r["task"].endswith("_caption") else 100.0
            key = (r["task"], r["lang"], r["id"])
            out.setdefault(key, []).append(float(r["score"] or 0.0) * scale)
        return {k: sum(v) / len(v) for k, v in out.items()}

    sa, sb = scores(a), scores(b)
    if set(sa) != set(sb):
        raise ValueError(f"eval runs {a} and {b} scored different items; cannot pair them")
    diffs = [sb[k] - sa[k] for k in sorted(sa)]
    n = len(diffs)
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo, hi = means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]
    return {
        "items": n,
        "mean_diff": round(sum(diffs) / n, 2),
        "ci95": [round(lo, 2), round(hi, 2)],
        "better": sum(d > 0 for d in diffs),
        "worse": sum(d < 0 for d in diffs),
    }
