"""The output folder of an evaluation, written from scored runs.

Layout (what ``eval report`` reads)::

    config.json            the resolved run configuration
    results.json           SEA-HELM's nest {lang: {competency: {task: metrics}}}, mean over runs
    results_stderr.json    the same shape, SEA-HELM's bootstrap standard errors (runs > 1)
    headline.json          {task: the metric SEA-HELM ranks it by}
    diagnostics.json       {task: {lang: robust extraction numbers, disagreements, errors}}
    items.jsonl            one line per item per run: prompt, response, extracted, gold, score
    runs/<seed>/results.json, runs/<seed>/diagnostics.json

Every file is written to a temporary name and renamed, so a kill never leaves half a file.
"""

from __future__ import annotations

from pathlib import Path

from sealion_vl.eval.scoring import score_groups, write_json, write_jsonl

_MAX_DISAGREEMENTS = 200


def write_run_outputs(out: Path, runs: list, config: dict, *, clip=None) -> dict:
    """Score each ``(seed, groups)`` run, aggregate over runs and write the folder.

    Returns:
        The aggregated (mean) results nest.
    """
    from sealion_vl.eval.aggregate import bootstrap

    clip = _clip(clip, runs)
    nests, diags, rows, headline = [], [], [], {}
    for seed, groups in runs:
        nest, diag, run_rows, head = score_groups(groups, run=seed, clip=clip)
        headline.update(head)
        if seed is not None:  # ``eval score`` scores one unnamed run: no runs/ folder
            write_json(out / "runs" / str(seed) / "results.json", nest)
            write_json(out / "runs" / str(seed) / "diagnostics.json", diag)
        nests.append(nest)
        diags.append(diag)
        rows.extend(run_rows)
    if len(nests) > 1:
        mean, stderr = bootstrap(nests)
        write_json(out / "results_stderr.json", stderr)
    else:
        mean = nests[0]
    write_json(out / "results.json", mean)
    write_json(out / "headline.json", headline)
    write_json(out / "diagnostics.json", merge_diagnostics(diags))
    write_jsonl(out / "items.jsonl", rows)
    write_json(out / "config.json", config)
    return mean


def _clip(clip, runs):
    """Load the CLIP model once for all runs, only when a task scores with RefCLIPScore."""
    needs = any(g.task.scorer == "refclipscore" for _, groups in runs for g in groups)
    if not needs:
        return clip
    from sealion_vl.eval.metrics.refclip import ClipScorer

    return ClipScorer.resolve(clip)  # loads lazily, once, on the first embedding


def merge_diagnostics(per_run: list[dict]) -> dict:
    """Numbers averaged over runs, disagreement lists concatenated (capped), errors summed."""
    merged: dict = {}
    for diag in per_run:
        for task, langs in diag.items():
            for lang, d in langs.items():
                cell = merged.setdefault(task, {}).setdefault(lang, {"_n": 0})
                cell["_n"] += 1
                for k, v in d.items():
                    if k == "errors":
                        cell["errors"] = cell.get("errors", 0) + v
                    elif isinstance(v, list):
                        cell.setdefault(k, []).extend(v)
                    elif isinstance(v, int | float) and not isinstance(v, bool):
                        cell[k] = cell.get(k, 0.0) + v
                    else:
                        cell.setdefault(k, v)
    for langs in merged.values():
        for cell in langs.values():
            n = cell.pop("_n")
            for k, v in list(cell.items()):
                if k != "errors" and isinstance(v, float | int) and not isinstance(v, bool):
                    cell[k] = v / n
                elif isinstance(v, list):
                    cell[k] = v[:_MAX_DISAGREEMENTS]
    return merged
