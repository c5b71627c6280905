"""Roll task scores up into SEA-HELM's result nest, and summarise several runs.

``rollup`` reproduces SEA-HELM's ``aggregate_metrics`` (one run): tasks of an aggregation group
(WorldCuisines task1/task2 -> ``world_cuisine``) are macro-averaged into the group, a
competency is the mean of its ungrouped tasks and groups, a language the mean of its
competencies, the total the mean of the languages.

Two multi-run summaries, because SEA-HELM has two (facts.md §3; docs vs code differ):

* ``bootstrap`` (what the brief asks for and SEA-HELM's docs/score_calculations.md describe:
  "30 bootstrapped runs drawn from the 8 independent runs"): resample whole runs with
  replacement, 30 times, seed 94370244 (SEA-HELM's aggregator seed). Every numeric leaf of the
  nest is averaged over each resample; the mean nest holds the mean of the 30 resample means
  (SEA-HELM reports the mean of its bootstrap vector, not the plain mean over runs) and the
  error nest their sample standard deviation (ddof=1), i.e. the bootstrap standard error.
* ``question_bootstrap`` (what SEA-HELM's src/aggregation code actually computes at v1.2.x
  HEAD): per task, per-question scores averaged over runs, then 2000 resamples of *questions*
  (stratified by gold label for multiple-choice tasks, scored by expected balanced accuracy),
  seeds drawn task by task from ``default_rng(94370244)``, mean and 2.5/97.5 percentile
  interval at every level. It needs per-item scores, which a result nest does not hold.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np

from sealion_vl.errors import EvalDataError

SEED = 94370244  # SEA-HELM MultiRunAggregator's default seed
N_RUN_RESAMPLES = 30  # SEA-HELM docs: 30 bootstrap runs drawn from the 8 runs
N_QUESTION_BOOTSTRAPS = 2000  # SEA-HELM MultiRunAggregator's default num_bootstraps
SEA_LANGUAGES = ["id", "vi", "th", "ta", "tl", "ms", "my"]  # SEA-HELM constants.SEA_LANGUAGES


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def rollup(
    per_task: dict[tuple[str, str, str], dict],
    headline: dict[str, str],
    groups: dict[str, str],
) -> dict:
    """SEA-HELM's nest ``{lang: {competency: {task: metrics, <group>: v, "total": x}, "total":
    x}, "total": x}`` for one run.

    Args:
        per_task: ``{(lang, competency, task): metrics}`` in the order tasks should appear.
        headline: the headline metric name of each task (SEA-HELM's task ``metric``).
        groups: aggregation group of grouped tasks (``{"world_cuisine_task1":
            "world_cuisine"}``); macro-averaged, as SEA-HELM's default ``aggregation_type``.

    Raises:
        EvalDataError: a task has no headline metric, or its metrics lack it.
    """
    nest: dict = {}
    for (lang, comp, task), metrics in per_task.items():
        nest.setdefault(lang, {}).setdefault(comp, {})[task] = dict(metrics)
    lang_totals = []
    for lang, comps in nest.items():
        comp_totals = []
        for _comp, tasks in comps.items():
            scores: dict[str, float] = {}
            members: dict[str, list[float]] = {}
            for task, metrics in list(tasks.items()):
                name = headline.get(task)
                if name is None or name not in metrics:
                    raise EvalDataError(
                        f"{task} [{lang}]: headline metric {name!r} missing (metrics: "
                        f"{sorted(metrics)}); say which metric is the task's score."
                    )
                group = groups.get(task)
                if group:
                    members.setdefault(group, []).append(float(metrics[name]))
                    scores[group] = _mean(members[group])
                    tasks[group] = scores[group]
                else:
                    scores[task] = float(metrics[name])
            tasks["total"] = _mean(list(scores.values()))
            comp_totals.append(tasks["total"])
        comps["total"] = _mean(comp_totals)
        lang_totals.append(comps["total"])
    if lang_totals:
        nest["total"] = _mean(lang_totals)
    return nest


def _leaves(nest: dict, prefix: tuple = ()) -> dict[tuple, float]:
    out: dict[tuple, float] = {}
    for key, value in nest.items():
        if isinstance(value, dict):
            out.update(_leaves(value, prefix + (key,)))
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            out[prefix + (key,)] = float(value)
    return out


def _build(paths: dict[tuple, float]) -> dict:
    nest: dict = {}
    for path, value in paths.items():
        node = nest
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return nest


def resample_indices(n_runs: int, n_resamples: int = N_RUN_RESAMPLES, seed: int = SEED):
    """The run indices of each resample: ``default_rng(seed).integers(0, n_runs, (B, n_runs))``.

    One draw shared by every leaf, so a resample's totals stay the means of its task scores.
    """
    return np.random.default_rng(seed).integers(0, n_runs, size=(n_resamples, n_runs))


def bootstrap(
    run_nests: list[dict], *, n_resamples: int = N_RUN_RESAMPLES, seed: int = SEED
) -> tuple[dict, dict]:
    """(mean nest, standard-error nest) over runs, by resampling whole runs.

    Each numeric leaf (task metrics, groups, totals) gets: mean = mean over the resamples of
    the resample's mean over its drawn runs; stderr = sample std (ddof=1) of those resample
    means (0 with a single run). Non-numeric leaves are dropped.

    Raises:
        EvalDataError: no runs, or a leaf present in some runs but not others.
    """
    if not run_nests:
        raise EvalDataError("bootstrap needs at least one run's result nest.")
    per_run = [_leaves(n) for n in run_nests]
    paths = list(dict.fromkeys(p for leaves in per_run for p in leaves))
    missing = {p: [i for i, lv in enumerate(per_run) if p not in lv] for p in paths}
    missing = {p: runs for p, runs in missing.items() if runs}
    if missing:
        path, runs = next(iter(missing.items()))
        raise EvalDataError(
            f"runs disagree on their results: {'/'.join(map(str, path))} missing from run(s) "
            f"{runs} ({len(missing)} value(s) in all); score the same tasks in every run."
        )
    values = np.array([[lv[p] for p in paths] for lv in per_run])  # (runs, leaves)
    idx = resample_indices(len(run_nests), n_resamples, seed)
    replicates = values[idx].mean(axis=1)  # (resamples, leaves)
    means = replicates.mean(axis=0)
    errs = replicates.std(axis=0, ddof=1) if n_resamples > 1 else np.zeros(len(paths))
    return (
        _build(dict(zip(paths, means.tolist(), strict=True))),
        _build(dict(zip(paths, errs.tolist(), strict=True))),
    )


def _replicate(scores, labels, multi_choice: bool, native_max: float, rng) -> float:
    """One SEA-HELM bootstrap replicate of one task (src/aggregation/bootstrap.py)."""
    if multi_choice:
        idx = np.concatenate(
            [
                rng.choice(pos, size=pos.size, replace=True)
                for pos in (np.flatnonzero(labels == lab) for lab in np.unique(labels))
            ]
        )
        conf, lab = scores[idx] / native_max, labels[idx]
        # expected balanced accuracy with y_pred = y_true: mean over classes of mean confidence
        acc = float(np.mean([conf[lab == c].mean() for c in np.unique(lab)]))
        k = len(set(labels.tolist()))
        if k == 1:  # SEA-HELM divides by zero here; a one-class task has no chance baseline
            return 0.0
        return max((acc - 1 / k) / (1 - 1 / k), 0) * 100
    idx = rng.integers(0, len(scores), size=len(scores))
    return max(float(statistics.mean(scores[idx].tolist())), 0) * (100.0 / native_max)


def task_replicates(
    run_item_scores: list[list[float]],
    labels: list | None,
    seeds: Sequence[int],
    *,
    native_max: float = 1.0,
) -> list[float]:
    """SEA-HELM's bootstrap vector of one task: per-question means over the runs that have
    scores, then one replicate per seed. Multiple choice when there are labels and fewer
    distinct labels than half the questions (SEA-HELM's heuristic)."""
    runs = [r for r in run_item_scores if len(r)]
    if not runs:
        return [0.0] * len(seeds)
    scores = np.array(runs, dtype=float).mean(axis=0)
    labels_arr = np.array(labels if labels else [])
    multi = labels_arr.size > 0 and len(set(labels_arr.tolist())) < labels_arr.size / 2
    if multi and labels_arr.size != scores.size:
        raise EvalDataError(f"{labels_arr.size} labels for {scores.size} per-question scores")
    return [
        _replicate(scores, labels_arr, multi, native_max, np.random.default_rng(int(s)))
        for s in seeds
    ]


def _summary(vector: list[float], prefix: str = "") -> dict:
    return {
        f"{prefix}mean": statistics.mean(vector),
        f"{prefix}ci": np.percentile(vector, (2.5, 97.5)).tolist(),
    }


def question_bootstrap(
    tasks: dict[tuple[str, str, str], dict],
    groups: dict[str, str] | None = None,
    *,
    n_bootstraps: int = N_QUESTION_BOOTSTRAPS,
    seed: int = SEED,
    sea_languages: Sequence[str] = SEA_LANGUAGES,
) -> dict:
    """SEA-HELM's MultiRunAggregator.aggregate_scores on per-item scores.

    Args:
        tasks: ``{(lang, competency, task): {"scores": [[item scores of run 1], ...],
            "labels": [gold per item] or None, "native_max": 1.0}}``, **in SEA-HELM's order**
            (tasks in config order, each task's languages in order): seeds are drawn from one
            generator in that order, so another order gives other (equally valid) numbers.
        groups: aggregation group of grouped tasks.

    Returns:
        ``{lang: {competency: {"tasks": {task: {mean, ci}}, "aggregation_groups": {g: {mean,
        ci}}, mean, ci}, mean, ci}, mean, ci, sea_mean, sea_ci}``.
    """
    groups = groups or {}
    generator = np.random.default_rng(seed)
    out: dict = {}
    vectors: dict = {}
    for (lang, comp, task), data in tasks.items():
        seeds = generator.integers(0, 2**32 - 1, size=n_bootstraps)
        vec = task_replicates(
            data["scores"], data.get("labels"), seeds, native_max=data.get("native_max", 1.0)
        )
        node = out.setdefault(lang, {}).setdefault(comp, {"tasks": {}, "aggregation_groups": {}})
        node["tasks"][task] = _summary(vec)
        slot = vectors.setdefault(lang, {}).setdefault(comp, {"tasks": {}, "groups": {}})
        if task in groups:
            node["tasks"][task]["aggregation_group"] = groups[task]
            slot["groups"].setdefault(groups[task], []).append(vec)
        else:
            slot["tasks"][task] = vec
    lang_vecs = {}
    for lang, comps in vectors.items():
        comp_vecs = []
        for comp, slot in comps.items():
            children = list(slot["tasks"].values())
            for group, members in slot["groups"].items():
                gvec = np.mean(members, axis=0).tolist()
                out[lang][comp]["aggregation_groups"][group] = _summary(gvec)
                children.append(gvec)
            cvec = np.mean(children, axis=0).tolist()
            out[lang][comp].update(_summary(cvec))
            comp_vecs.append(cvec)
        lang_vecs[lang] = np.mean(comp_vecs, axis=0).tolist()
        out[lang].update(_summary(lang_vecs[lang]))
    if lang_vecs:
        out.update(_summary(np.mean(list(lang_vecs.values()), axis=0).tolist()))
        sea = [v for lang, v in lang_vecs.items() if lang in sea_languages]
        if sea:
            out.update(_summary(np.mean(sea, axis=0).tolist(), prefix="sea_"))
    return out
