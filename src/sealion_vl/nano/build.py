"""``sealion-vl nano build``: nano from nothing, with the toolkit's own recipes.

synthetic SEA world -> byte-level BPE tokenizer (Gemma 3 tokens) -> random Gemma 3 VLM ->
stage 0 warm-up (text-only option lookup) -> stage 1 general SFT (English shape scenes) ->
stage 2 SEA captions cpt -> stage 3 SEA SFT -> held-out evaluation (warm-up, general and
final model) -> model card. Every stage is a shipped recipe (``train/recipes/nano-*.yaml``)
run through ``sealion_vl.train.run``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from sealion_vl.nano.model import SIZES, init_checkpoint
from sealion_vl.nano.tokenizer import train_tokenizer

STAGES = ("nano-warmup", "nano-general", "nano-cpt", "nano-sft")
CARD_FILES = ("README.md", "eval.json")


@dataclass(frozen=True)
class BuildPlan:
    """How much of everything; ``smoke`` is the seconds-long version CI runs."""

    size: str = "nano"
    n_warmup: int = 30000  # text only, ~56 per step: 400 steps read ~22k, none twice
    n_general: int = 20000  # stage 1 sees each image about twice: no memorising
    n_sea: int = 30000
    n_heldout: int = 1600  # held-out mix: ~290 MCQ, ~220 MARVL, ~70 per scene question
    n_general_heldout: int = 240  # English shape scenes: what stage 1 alone learned
    n_warmup_heldout: int = 200  # option lookup: what stage 0 alone learned
    steps: tuple[int, int, int, int] | None = None  # None: the recipes' max_steps
    seed: int = 0


SMOKE = BuildPlan(
    size="smoke",
    n_warmup=40,
    n_general=40,
    n_sea=80,
    n_heldout=24,
    n_general_heldout=12,
    n_warmup_heldout=8,
    steps=(2, 3, 2, 3),
)


def recipe_path(name: str) -> Path:
    """The shipped recipe ``train/recipes/<name>.yaml`` (e.g. ``nano-sft``)."""
    return Path(str(resources.files("sealion_vl"))) / "train" / "recipes" / f"{name}.yaml"


def _corpus(folders: list[Path]):
    """Every text of the training records: what the tokenizer must encode compactly."""
    for folder in folders:
        for name in ("sft.jsonl", "captions.jsonl"):
            path = folder / name
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                if "caption" in rec:
                    yield rec["caption"]
                for m in rec.get("messages", []):
                    c = m["content"]
                    yield (
                        c
                        if isinstance(c, str)
                        else " ".join(p.get("text", "") for p in c if p.get("type") == "text")
                    )


def data_folders(plan: BuildPlan) -> dict[str, tuple[str, str, int]]:
    """``{folder under work/data: (part, split, n)}``: the synthetic splits a build uses."""
    return {
        "warmup/train": ("warmup", "train", plan.n_warmup),
        "warmup/heldout": ("warmup", "heldout", plan.n_warmup_heldout),
        "general/train": ("general", "train", plan.n_general),
        "sea/train": ("sea", "train", plan.n_sea),
        "sea/heldout": ("sea", "heldout", plan.n_heldout),
        "general/heldout": ("general", "heldout", plan.n_general_heldout),
    }


def train_stages(
    out: Path,
    plan: BuildPlan = BuildPlan(),
    *,
    until: str = STAGES[-1],
    progress: bool = True,
    log=print,
) -> tuple[dict[str, Path], dict[str, float], dict[str, str]]:
    """Generate the data, tokenizer and initial model, then train the stages up to and
    including ``until`` into ``out/work`` (finished stages are kept and reused).

    The nano demonstrations call this with ``until="nano-general"`` to rebuild the general
    model (the same bytes as the build's, so it merges with the shipped nano).

    Returns:
        ``({stage: checkpoint folder}, {stage: training seconds}, {stage: precision})``.
    """
    from sealion_vl.nano.synth import generate
    from sealion_vl.train import load_recipe, run

    if until not in STAGES:
        raise ValueError(f"unknown nano stage {until!r}; the stages are {', '.join(STAGES)}")
    work = out / "work"
    data = work / "data"
    for rel, (part, split, n) in data_folders(plan).items():
        if not (data / rel / "sft.jsonl").exists():
            log(f"[nano] generating {rel} ({n} items)")
            generate(data / rel, part=part, split=split, n=n, seed=plan.seed, progress=progress)
    size = SIZES[plan.size]
    init = work / "nano-init"
    if not (init / "config.json").exists():
        log("[nano] training the tokenizer and initialising the model")
        corpus = list(_corpus([data / f"{p}/train" for p in ("warmup", "general", "sea")]))
        tok = train_tokenizer("gemma3", corpus, vocab_size=size.vocab)
        init_checkpoint(init, tok, size, seed=plan.seed)
    train_data = {
        "nano-warmup": data / "warmup/train/sft.jsonl",
        "nano-general": data / "general/train/sft.jsonl",
        "nano-cpt": data / "sea/train/captions.jsonl",
        "nano-sft": data / "sea/train/sft.jsonl",
    }
    previous = init
    folders_out, timings, precision = {}, {}, {}
    for i, stage in enumerate(STAGES[: STAGES.index(until) + 1]):
        target = work / stage
        overrides = {
            "model": str(previous),
            "output_dir": str(target),
            "data.train": str(train_data[stage]),
        }
        if plan.steps:
            overrides["max_steps"] = plan.steps[i]
            overrides["optim.warmup_steps"] = 0
        recipe = load_recipe(recipe_path(stage), overrides)
        # each recipe keeps its own seed; the plan's seed shifts them all
        recipe = recipe.model_copy(update={"seed": recipe.seed + plan.seed})
        if not (target / "DONE").exists():
            log(f"[nano] {stage}: {recipe.max_steps} steps")
            run(recipe, resume=True, progress=progress)
        # the stage's own clock (kept with it, so a resumed build still reports every stage)
        last = (target / "metrics.jsonl").read_text().strip().splitlines()[-1]
        timings[stage] = json.loads(last)["elapsed_s"]
        precision[stage] = recipe.precision
        folders_out[stage] = target
        previous = target
    return folders_out, timings, precision


def build_nano(
    out: Path, plan: BuildPlan = BuildPlan(), *, progress: bool = True, log=print
) -> dict:
    """Build nano into ``out`` (the final checkpoint + card); work files go to out/work.

    Returns:
        The evaluation dict written to ``out/eval.json``.
    """
    from sealion_vl import load
    from sealion_vl.nano.evaluate import evaluate

    t0 = time.perf_counter()
    work = out / "work"
    data = work / "data"
    _, timings, precision = train_stages(out, plan, progress=progress, log=log)
    heldout = data / "sea/heldout"
    log("[nano] evaluating the warm-up, general and final models on held-out items")
    warmup = evaluate(load(work / "nano-warmup"), data / "warmup/heldout")
    general_model, final_model = load(work / "nano-general"), load(work / "nano-sft")
    general = evaluate(general_model, heldout)
    final = evaluate(final_model, heldout)
    english = {
        "general": evaluate(general_model, data / "general/heldout"),
        "final": evaluate(final_model, data / "general/heldout"),
    }
    result = {
        "plan": asdict(plan),
        "warmup": warmup,
        "general": general,
        "final": final,
        "english_scenes": english,
        "train_seconds": timings,
        "precision": precision,
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    _ship(work / "nano-sft", out, result)
    return result


def _ship(src: Path, out: Path, result: dict) -> None:
    """Copy the final checkpoint (not the training state) and write eval.json + card."""
    from sealion_vl.nano.card import write_card
    from sealion_vl.nano.demos.card import SAVED, apply_saved

    keep = {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "processor_config.json",
        "chat_template.jinja",
        "recipe.resolved.yaml",
        "preprocessor_config.json",
        "special_tokens_map.json",
    }
    tmp = out / ".ship-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in src.iterdir():
        if f.name in keep:
            shutil.copy2(f, tmp / f.name)
    (tmp / "eval.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    write_card(tmp / "README.md", result)
    # keep the demonstrations' numbers (saved by `nano demo --card`) across rebuilds
    if (out / SAVED).is_file():
        shutil.copy2(out / SAVED, tmp / SAVED)
        apply_saved(tmp / "README.md", tmp / SAVED)
    for f in tmp.iterdir():
        f.replace(out / f.name)
    tmp.rmdir()
