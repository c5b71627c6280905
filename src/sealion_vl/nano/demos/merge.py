"""Merge nano's SEA-SFT model back with its general model, as the 27B-VL card does.

The story on nano: stage 1 ("general") learns English shape scenes; stages 2-3 teach the
SEA languages, flags and fruit, and cost some English skill (captions, shape names). A merge
should keep the general model's English scores while keeping most of the SEA gain.

Steps (each reused when rerun):

1. rebuild the general model: nano's build through stage 1 (``train_stages``, the same
   recipes and seed as the shipped nano, so the two share every tensor name and shape);
2. candidate merges (:data:`CANDIDATES`: linear averages and TIES over the general base);
3. **choose on validation splits** (the same generator, another seed; never the held-out
   items reported): the candidate with the best SEA score among those whose English score is
   within :data:`ENGLISH_SLACK` points of the general model's (if none is, the best sum);
4. measure the general model, nano and the chosen merge once on the held-out task folders:
   ``nano_general`` (English shape scenes) and ``nano`` (the SEA split, eight languages).

The smoke version merges a smoke build's own stage 3 with its stage 1 (the shipped nano has
another size), on the smoke sizes.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from sealion_vl.nano.demos.common import data_dir, measure, save

#: Merge candidates: name -> (method, parameters of the SEA model, top-level parameters).
CANDIDATES = {
    "linear-0.5": ("linear", {"weight": 0.5}, {}),
    "linear-0.8": ("linear", {"weight": 0.8}, {}),
    "ties-0.5": ("ties", {"weight": 1.0, "density": 0.5}, {}),
    "ties-0.7": ("ties", {"weight": 1.0, "density": 0.7}, {}),
    "ties-0.9": ("ties", {"weight": 1.0, "density": 0.9}, {}),
    "slerp-0.85": ("slerp", {"t": 0.85}, {}),
}
ENGLISH_SLACK = 3.0  # "within a few points" of the general model, in the words
VALIDATION_SEED = 1  # the held-out splits use the build's seed 0
VALIDATION_LIMIT = 20  # items per task and language on validation: enough to rank merges
SMOKE_LIMIT = 2  # the smoke run only checks the pipeline
SMOKE_CANDIDATES = ("linear-0.8", "ties-0.5")  # one of each kind: the smoke run is a test


def merge_config(name: str, general: Path, sea: Path) -> dict:
    """mergekit-style YAML (as a dict) for candidate ``name`` of :data:`CANDIDATES`."""
    method, params, top = CANDIDATES[name]
    if method == "slerp":  # t: how far from the general model towards the SEA model
        models = [{"model": str(general)}, {"model": str(sea)}]
        return {"merge_method": "slerp", "base_model": str(general), "models": models,
                "parameters": dict(params), "dtype": "float32", **top}  # fmt: skip
    if method == "linear":
        models = [
            {"model": str(sea), "parameters": {"weight": params["weight"]}},
            {"model": str(general), "parameters": {"weight": round(1 - params["weight"], 6)}},
        ]
        return {"merge_method": "linear", "models": models, "dtype": "float32", **top}
    return {
        "merge_method": method,
        "base_model": str(general),
        "models": [{"model": str(sea), "parameters": params}],
        "dtype": "float32",
        **top,
    }


def _score(model, work: Path, tag: str, data: Path, limit, progress, *, smoke: bool) -> dict:
    """English (nano_general, every item: 240) and SEA (nano, languages other than English,
    ``limit`` items per task and language) of ``model``."""
    english = measure(
        model,
        ["nano_general"],
        work / "eval" / f"{tag}-english",
        data=data,
        limit=SMOKE_LIMIT if smoke else None,  # 240 items: a limit would make it noise
        progress=progress,
    )
    sea = measure(
        model, ["nano"], work / "eval" / f"{tag}-sea", data=data, limit=limit, progress=progress
    )
    return {
        "english": english["all"],
        "sea": sea["sea"],
        "sea_en_items": sea.get("en"),
        "commands": [english["command"], sea["command"]],
        "by_task": {**english["by_task"], **sea["by_task"]},
        "by_lang": sea["by_lang"],
    }


def _training_minutes(clocks: dict[str, float], smoke: bool) -> float:
    """Minutes of training the demo needs from nothing: the warm-up and general stages as
    timed by the build that made the shipped nano (its eval.json; a resumed or contended
    rebuild's own clocks say little), or this run's clocks for the smoke build."""
    import json

    from sealion_vl.runtime.load import resolve

    if not smoke:
        shipped = Path(resolve("nano")[0]) / "eval.json"
        timed = json.loads(shipped.read_text(encoding="utf-8")).get("train_seconds", {})
        if all(stage in timed for stage in clocks):
            clocks = {stage: timed[stage] for stage in clocks}
    return round(sum(clocks.values()) / 60, 1)


def choose(general: dict, scores: dict[str, dict]) -> str:
    """The candidate with the best SEA score whose English is within :data:`ENGLISH_SLACK`
    of the general model's; if none qualifies, the best English + SEA sum."""
    keep = [n for n, s in scores.items() if s["english"] >= general["english"] - ENGLISH_SLACK]
    if keep:
        return max(keep, key=lambda n: (scores[n]["sea"], scores[n]["english"]))
    return max(scores, key=lambda n: scores[n]["english"] + scores[n]["sea"])


def run(work: Path, *, smoke: bool = False, progress: bool = True, log=print) -> dict:
    """The whole merge demonstration into ``work``; returns (and saves) its numbers."""
    from sealion_vl.merge import merge
    from sealion_vl.nano.build import SMOKE, BuildPlan, train_stages
    from sealion_vl.runtime.load import resolve

    t0 = time.perf_counter()
    work = Path(work)
    plan = SMOKE if smoke else BuildPlan()
    until = "nano-sft" if smoke else "nano-general"
    log(f"[merge] rebuilding nano's stages up to {until} in {work / 'build'}")
    stages, clocks, _ = train_stages(work / "build", plan, until=until, progress=progress, log=log)
    general = stages["nano-general"]
    sea_model = stages["nano-sft"] if smoke else Path(resolve("nano")[0])
    splits = ("sea/heldout", "general/heldout")
    data = data_dir(work, *splits, smoke=smoke, progress=progress)  # the card's (seed 0)
    val = data_dir(work, *splits, smoke=smoke, progress=progress, seed=VALIDATION_SEED)
    val_limit = SMOKE_LIMIT if smoke else VALIDATION_LIMIT
    held_limit = SMOKE_LIMIT if smoke else None

    log("[merge] validation: the general model and each candidate merge")
    val_general = _score(general, work, "val-general", val, val_limit, progress, smoke=smoke)
    val_scores = {}
    for name in SMOKE_CANDIDATES if smoke else CANDIDATES:
        folder = work / "merges" / name
        if not (folder / "config.json").is_file():
            cfg = work / "merges" / f"{name}.yaml"
            cfg.parent.mkdir(parents=True, exist_ok=True)
            cfg.write_text(yaml.safe_dump(merge_config(name, general, sea_model), sort_keys=False))
            merge(cfg, folder, progress=progress, overwrite=True)
        val_scores[name] = _score(
            folder, work, f"val-{name}", val, val_limit, progress, smoke=smoke
        )
        log(
            f"[merge] {name}: English {val_scores[name]['english']:.2f}, "
            f"SEA {val_scores[name]['sea']:.2f} (validation)"
        )
    chosen = choose(val_general, val_scores)
    log(f"[merge] chosen on validation: {chosen}")

    log("[merge] held-out: the general model, nano and the chosen merge")
    arms = {  # arm -> (checkpoint, eval folder tag)
        "general (stage 1)": (general, "heldout-general"),
        "nano (SEA SFT)": (sea_model, "heldout-nano"),
        f"merge {chosen}": (work / "merges" / chosen, f"heldout-{chosen}"),
    }
    heldout = {
        arm: _score(model, work, tag, data, held_limit, progress, smoke=smoke)
        for arm, (model, tag) in arms.items()
    }
    g, s, m = (heldout[a] for a in arms)
    gain = s["sea"] - g["sea"]
    kept = (m["sea"] - g["sea"]) / gain if gain else 0.0
    result = {
        "demo": "merge",
        "smoke": smoke,
        "chosen": chosen,
        "chosen_config": merge_config(chosen, general, sea_model),
        "selection_rule": f"the best SEA score among candidates whose English is at least the "
        f"general model's - {ENGLISH_SLACK} (else the best English + SEA), on validation splits "
        f"drawn with seed {VALIDATION_SEED} (English: every item; SEA: {val_limit} items per "
        "task and language)",
        "validation": {"general": val_general, **val_scores},
        "heldout": heldout,
        "english_drop_vs_general": round(g["english"] - m["english"], 2),
        "sea_gain_kept": round(kept, 4),
        "seconds_this_invocation": round(time.perf_counter() - t0, 1),
        "minutes": _training_minutes(clocks, smoke),
        "command": f"sealion-vl nano demo merge {work}" + (" --smoke" if smoke else ""),
    }
    result["table"] = table(result, list(arms))
    result["finding"] = finding(result, list(arms))
    save(work, "merge", result)
    return result


def table(result: dict, arms: list[str]) -> str:
    """Markdown rows for nano's card: English and SEA scores of the three models (held-out),
    then every candidate's validation scores."""
    rows = [
        "| model | English shape scenes (`nano_general`) | SEA languages (`nano`, 7 languages) |",
        "|---|---|---|",
    ]
    for arm in arms:
        s = result["heldout"][arm]
        rows.append(f"| {arm} | {s['english']:.2f} | {s['sea']:.2f} |")
    val = result["validation"]
    cells = ", ".join(f"{name} {v['english']:.1f} / {v['sea']:.1f}" for name, v in val.items())
    rows += ["", f"Validation (seed {VALIDATION_SEED}; English / SEA): {cells}."]
    return "\n".join(rows)


def finding(result: dict, arms: list[str]) -> str:
    """One honest paragraph with the numbers: English kept, SEA gain kept, and what the
    validation split said."""
    g, s, m = (result["heldout"][a] for a in arms)
    drop = g["english"] - m["english"]
    side = f"{drop:.2f} points below" if drop >= 0 else f"{-drop:.2f} points above"
    text = (
        f"The merge chosen on validation ({result['chosen']}, base = the general model) "
        f"scores {m['english']:.2f} on the English shape scenes, {side} the general model "
        f"({g['english']:.2f}; nano itself: {s['english']:.2f}), and keeps "
        f"{100 * result['sea_gain_kept']:.1f}% of nano's SEA gain ({m['sea']:.2f} vs "
        f"{s['sea']:.2f} for nano and {g['sea']:.2f} for the general model). Rule: "
        f"{result['selection_rule']}."
    )
    val = dict(result["validation"])
    general = val.pop("general")
    if val and not any(v["english"] >= general["english"] - ENGLISH_SLACK for v in val.values()):
        best = max(val, key=lambda n: val[n]["english"])
        text += (
            f" On validation no candidate came within {ENGLISH_SLACK:g} points of the general "
            f"model's English ({general['english']:.1f}; best {best} {val[best]['english']:.1f}),"
            " so the fallback chose."
        )
    if abs(m["english"] - s["english"]) < 1.0:
        text += (
            " The merge's English is nano's own: on nano, merging keeps the general model's "
            "English within a few points but does not restore what SEA training cost."
        )
    return text
