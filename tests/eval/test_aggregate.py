"""Roll-up on a hand-made two-language example checked by hand; the run bootstrap and
SEA-HELM's question bootstrap checked against direct numpy computations."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from sealion_vl.errors import EvalDataError
from sealion_vl.eval import aggregate

HEADLINE = {
    "cvqa": "normalized_accuracy",
    "marvl": "normalized_accuracy",
    "world_cuisine_task1": "normalized_accuracy",
    "world_cuisine_task2": "normalized_accuracy",
    "xm3600": "normalized_refclipscore",
    "if-eval": "overall_lang_normalized_acc",
}
GROUPS = {"world_cuisine_task1": "world_cuisine", "world_cuisine_task2": "world_cuisine"}


def per_task(shift: float = 0.0):
    return {
        ("id", "vision", "cvqa"): {"normalized_accuracy": 40.0 + shift, "null_count": 2},
        ("id", "vision", "world_cuisine_task1"): {"normalized_accuracy": 30.0 + shift},
        ("id", "vision", "world_cuisine_task2"): {"normalized_accuracy": 50.0 + shift},
        ("id", "vision", "xm3600"): {"normalized_refclipscore": 70.0 + shift, "clipscore": 0.7},
        ("id", "instruction-following", "if-eval"): {"overall_lang_normalized_acc": 80.0},
        ("zh", "vision", "marvl"): {"normalized_accuracy": 20.0 + shift},
        ("zh", "vision", "world_cuisine_task1"): {"normalized_accuracy": 60.0},
    }


def test_rollup_by_hand():
    nest = aggregate.rollup(per_task(), HEADLINE, GROUPS)
    # id/vision: cvqa 40, world_cuisine (30+50)/2 = 40, xm3600 70 -> 50
    assert nest["id"]["vision"]["world_cuisine"] == 40.0
    assert nest["id"]["vision"]["total"] == 50.0
    assert nest["id"]["instruction-following"]["total"] == 80.0
    assert nest["id"]["total"] == 65.0  # (50 + 80) / 2
    # zh/vision: marvl 20, world_cuisine 60 (one member) -> 40
    assert nest["zh"]["vision"] == {
        "marvl": {"normalized_accuracy": 20.0},
        "world_cuisine_task1": {"normalized_accuracy": 60.0},
        "world_cuisine": 60.0,
        "total": 40.0,
    }
    assert nest["zh"]["total"] == 40.0
    assert nest["total"] == 52.5  # (65 + 40) / 2
    assert nest["id"]["vision"]["cvqa"] == {"normalized_accuracy": 40.0, "null_count": 2}


def test_rollup_refuses_unknown_headline():
    with pytest.raises(EvalDataError, match="xm3600"):
        aggregate.rollup(per_task(), {**HEADLINE, "xm3600": "refclip_x100"}, GROUPS)
    with pytest.raises(EvalDataError, match="marvl"):
        aggregate.rollup(per_task(), {k: v for k, v in HEADLINE.items() if k != "marvl"}, GROUPS)


def test_run_bootstrap_matches_numpy_and_is_reproducible():
    shifts = [0.0, 4.0, -2.0, 10.0, 1.0, 3.0, -5.0, 7.0]
    runs = [aggregate.rollup(per_task(s), HEADLINE, GROUPS) for s in shifts]
    mean, err = aggregate.bootstrap(runs)
    again = aggregate.bootstrap(runs)
    assert (mean, err) == again

    idx = np.random.default_rng(94370244).integers(0, 8, size=(30, 8))
    for path in [("total",), ("id", "vision", "cvqa", "normalized_accuracy"), ("zh", "total")]:
        values = []
        for run in runs:
            node = run
            for key in path:
                node = node[key]
            values.append(node)
        reps = np.array(values)[idx].mean(axis=1)
        got_mean, got_err = mean, err
        for key in path:
            got_mean, got_err = got_mean[key], got_err[key]
        assert got_mean == pytest.approx(reps.mean())
        assert got_err == pytest.approx(reps.std(ddof=1))
        assert got_err > 0
    # a leaf that does not vary has no error and keeps its value
    assert err["id"]["instruction-following"]["total"] == pytest.approx(0.0)
    assert mean["zh"]["vision"]["world_cuisine_task1"]["normalized_accuracy"] == 60.0
    other, _ = aggregate.bootstrap(runs, seed=1)
    assert other["total"] != mean["total"]


def test_run_bootstrap_edge_cases():
    one = aggregate.rollup(per_task(), HEADLINE, GROUPS)
    mean, err = aggregate.bootstrap([one])
    assert mean["total"] == one["total"] and err["total"] == 0.0
    broken = aggregate.rollup(
        {k: v for k, v in per_task().items() if k[2] != "marvl"}, HEADLINE, GROUPS
    )
    with pytest.raises(EvalDataError, match="marvl"):
        aggregate.bootstrap([one, broken])
    with pytest.raises(EvalDataError):
        aggregate.bootstrap([])


def direct_replicate(scores, labels, seed, native_max=1.0):
    """SEA-HELM's replicate written out independently (bootstrap.py + probabilistic_accuracy)."""
    rng = np.random.default_rng(seed)
    if labels is not None:
        labels = np.array(labels)
        parts = []
        for lab in sorted(set(labels.tolist())):
            pos = np.where(labels == lab)[0]
            parts.append(rng.choice(pos, size=len(pos), replace=True))
        idx = np.concatenate(parts)
        conf, lab = np.array(scores)[idx] / native_max, labels[idx]
        recalls = [conf[lab == c].sum() / (lab == c).sum() for c in sorted(set(lab.tolist()))]
        k = len(set(labels.tolist()))
        return max((np.mean(recalls) - 1 / k) / (1 - 1 / k), 0) * 100
    idx = rng.integers(0, len(scores), size=len(scores))
    return max(np.mean(np.array(scores)[idx]), 0) * 100 / native_max


def test_question_bootstrap_matches_direct_computation():
    rng = np.random.default_rng(0)
    labels = list(rng.choice(list("ABCD"), size=40))
    mcq_runs = [list(rng.integers(0, 2, size=40).astype(float)) for _ in range(3)]
    gen_runs = [list(rng.uniform(0, 1, size=25)) for _ in range(3)]
    tasks = {
        ("id", "vision", "cvqa"): {"scores": mcq_runs, "labels": labels},
        ("id", "vision", "xm3600"): {"scores": gen_runs, "labels": None},
        ("id", "vision", "world_cuisine_task1"): {"scores": mcq_runs, "labels": labels},
        ("id", "vision", "world_cuisine_task2"): {"scores": [[], *mcq_runs[:2]], "labels": labels},
    }
    out = aggregate.question_bootstrap(tasks, GROUPS, n_bootstraps=50)
    assert out == aggregate.question_bootstrap(tasks, GROUPS, n_bootstraps=50)

    gen = np.random.default_rng(94370244)
    seeds = [gen.integers(0, 2**32 - 1, size=50) for _ in range(4)]
    mcq_scores = np.mean(mcq_runs, axis=0)
    v_cvqa = [direct_replicate(mcq_scores, labels, s) for s in seeds[0]]
    v_xm = [direct_replicate(np.mean(gen_runs, axis=0), None, s) for s in seeds[1]]
    v_w1 = [direct_replicate(mcq_scores, labels, s) for s in seeds[2]]
    v_w2 = [direct_replicate(np.mean(mcq_runs[:2], axis=0), labels, s) for s in seeds[3]]

    node = out["id"]["vision"]
    assert node["tasks"]["cvqa"]["mean"] == pytest.approx(statistics.mean(v_cvqa))
    assert node["tasks"]["cvqa"]["ci"] == pytest.approx(list(np.percentile(v_cvqa, [2.5, 97.5])))
    assert node["tasks"]["xm3600"]["mean"] == pytest.approx(statistics.mean(v_xm))
    group = (np.array(v_w1) + np.array(v_w2)) / 2
    assert node["aggregation_groups"]["world_cuisine"]["mean"] == pytest.approx(group.mean())
    comp = (np.array(v_cvqa) + np.array(v_xm) + group) / 3
    assert node["mean"] == pytest.approx(comp.mean())
    assert node["ci"] == pytest.approx(list(np.percentile(comp, [2.5, 97.5])))
    assert out["mean"] == pytest.approx(comp.mean()) and out["sea_mean"] == out["mean"]
    # stratified: every replicate keeps each class's support, so a perfect task stays 100
    perfect = {("zh", "vision", "marvl"): {"scores": [[1.0] * 40], "labels": labels}}
    assert aggregate.question_bootstrap(perfect, n_bootstraps=5)["zh"]["mean"] == 100.0
    assert "sea_mean" not in aggregate.question_bootstrap(perfect, n_bootstraps=5)
