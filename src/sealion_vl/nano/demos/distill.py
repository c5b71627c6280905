"""Distil nano into a smaller student, against the same student trained on labels alone.

The story on nano (the v4.5 E2B card distils a large teacher into a small student): a
student of half nano's width and depth, from random initialisation with nano's tokenizer,
trained on a small transfer set of fresh SEA SFT items (the data-limited regime, where a
teacher's full distributions add the most over one-hot labels). Two arms, identical but
for the loss: ``labels`` (``alpha = 0``: cross-entropy on the reference replies) and
``distilled`` (``alpha > 0``: forward KL to nano's cached top-64 distributions, mixed with
the labels). Same init, data, order, steps, seed and learning rate.

Steps (each reused when rerun):

1. the student's initial checkpoint (:data:`STUDENT`, seed 0) and the transfer set
   (``generate(part="sea", split="train", seed=TRANSFER_SEED)``: items nano never saw);
2. nano's top-k cache over the transfer set (built once, read by the distilled arm; the
   labels arm never reads the teacher's numbers: its loss has weight 0);
3. both arms with :func:`sealion_vl.distill.distill` and the shipped recipe
   ``distill/recipes/nano-distill.yaml`` (settings chosen on a validation split,
   ``VALIDATION_SEED``, never on the held-out items reported);
4. both arms (and nano, for reference) on the validation split, then once on the held-out
   ``nano`` task folders (nano's card split: part sea, split heldout, seed 0).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

from sealion_vl.errors import SealionError
from sealion_vl.nano.demos.common import data_dir, measure, save

#: Arm name -> alpha (the weight of the distillation loss; 1 - alpha goes to the labels).
ARMS = {"labels": 0.0, "distilled": 0.5}
TRANSFER_ITEMS = 4000  # ~83 optimizer steps an epoch: 1200 steps read each item ~14 times
TRANSFER_SEED = 1  # nano's own training items are seed 0: the transfer set is new to nano
VALIDATION_SEED = 7  # the reported held-out split is seed 0
STUDENT_SEED = 0
CHECKPOINT_KEYS = ("save_every", "keep_checkpoints", "log_every")
SMOKE_ITEMS, SMOKE_STEPS, SMOKE_LIMIT = 24, 3, 2
SMOKE_LANGS = ["en", "th"]  # the smoke run checks the pipeline, on two scripts


def student_size(smoke: bool = False):
    """The student's shape: half nano's width and depth (nano is 192 wide, 4 + 3 layers)."""
    from sealion_vl.nano.model import NANO, SMOKE

    if smoke:
        return SMOKE
    return replace(NANO, hidden=128, layers=2, vision_hidden=96, vision_layers=2)


def recipe_file() -> Path:
    """The shipped distillation recipe the demo runs (its defaults are the demo's settings)."""
    return Path(str(resources.files("sealion_vl"))) / "distill" / "recipes" / "nano-distill.yaml"


def make_student(folder: Path, smoke: bool = False) -> Path:
    """A randomly initialised student with nano's tokenizer and chat template in ``folder``."""
    from transformers import AutoTokenizer

    from sealion_vl.nano.model import init_checkpoint
    from sealion_vl.runtime.load import resolve

    if (folder / "DONE").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    tok = AutoTokenizer.from_pretrained(resolve("nano")[0])
    init_checkpoint(tmp, tok, student_size(smoke), seed=STUDENT_SEED)
    (tmp / "DONE").write_text("student init\n", encoding="utf-8")
    if folder.exists():
        raise SealionError(f"{folder} exists but is incomplete (no DONE): delete it and rerun")
    tmp.rename(folder)
    return folder


def transfer_set(folder: Path, smoke: bool = False, progress: bool = True) -> Path:
    """The transfer set's ``sft.jsonl`` (fresh SEA SFT items, generated once)."""
    from sealion_vl.nano.synth import generate

    if not (folder / "sft.jsonl").is_file():
        n = SMOKE_ITEMS if smoke else TRANSFER_ITEMS
        generate(folder, part="sea", split="train", n=n, seed=TRANSFER_SEED, progress=progress)
    return folder / "sft.jsonl"


def arm_recipe(root: Path, arm: str, *, smoke: bool = False):
    """The :class:`~sealion_vl.distill.DistillRecipe` of ``arm``: the shipped recipe with the
    demo's folders, and only ``alpha`` differing between the arms."""
    from sealion_vl.distill import load_distill_recipe

    over = {
        "student": str(root / "student-init"),
        "data.train": str(root / "train" / "sft.jsonl"),
        "output_dir": str(root / arm),
        "cache": str(root / "teacher-topk.bin"),
        "alpha": ARMS[arm],
    }
    if smoke:
        over.update({"max_steps": SMOKE_STEPS, "save_every": 2, "optim.warmup_steps": 1})
        over.update({"batch.micro_batch_size": 4, "batch.max_seq_len": 128})
    return load_distill_recipe(recipe_file(), over)


def train_arm(recipe, *, progress: bool = True) -> tuple[Path, float]:
    """Train one arm (resuming a killed run); returns ``(checkpoint, training seconds)``.

    A finished arm (``DONE``) is reused only if its saved recipe is this one (checkpointing
    keys aside: how often a run saves does not change its weights).
    """
    import yaml

    from sealion_vl.distill import distill
    from sealion_vl.distill.config import dump_distill_recipe

    out = Path(recipe.output_dir)
    if (out / "DONE").is_file():
        saved = yaml.safe_load((out / "distill.resolved.yaml").read_text(encoding="utf-8"))
        if _weights_settings(saved) != _weights_settings(
            yaml.safe_load(dump_distill_recipe(recipe))
        ):
            raise SealionError(
                f"{out} holds an arm trained with another recipe (see its distill.resolved.yaml);"
                " use a new WORK folder or delete that arm"
            )
        return out, _train_seconds(out)
    t0 = time.perf_counter()
    distill(recipe, resume=True, progress=progress)
    seconds = round(time.perf_counter() - t0, 1)
    (out / "demo_seconds.json").write_text(json.dumps({"seconds": seconds}), encoding="utf-8")
    return out, seconds


def _weights_settings(resolved: dict) -> dict:
    """A resolved recipe without the keys that only say how often to save or log."""
    return {k: v for k, v in resolved.items() if k not in CHECKPOINT_KEYS}


def _train_seconds(out: Path) -> float:
    path = out / "demo_seconds.json"
    if path.is_file():
        return float(json.loads(path.read_text(encoding="utf-8"))["seconds"])
    return float("nan")


def n_params(folder: Path) -> int:
    """Parameters in a checkpoint's safetensors files (read from the headers only)."""
    from safetensors import safe_open

    total = 0
    for shard in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(shard, "pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                shape = f.get_slice(name).get_shape()
                size = 1
                for d in shape:
                    size *= d
                total += size
    return total


def run(work: Path, *, smoke: bool = False, progress: bool = True, log=print) -> dict:
    """The whole distillation demonstration into ``work``; returns (and saves) its numbers."""
    from sealion_vl.runtime.load import resolve

    t0 = time.perf_counter()
    work = Path(work)
    root = work / "distill"
    root.mkdir(parents=True, exist_ok=True)
    log(f"[distill] student init and transfer set in {root}")
    make_student(root / "student-init", smoke)
    transfer_set(root / "train", smoke, progress)
    data = data_dir(work, "sea/heldout", smoke=smoke, progress=progress)
    val = data_dir(work, "sea/heldout", smoke=smoke, progress=progress, seed=VALIDATION_SEED)
    limit, langs = (SMOKE_LIMIT, SMOKE_LANGS) if smoke else (None, None)

    recipes = {arm: arm_recipe(root, arm, smoke=smoke) for arm in ARMS}
    trained, seconds = {}, {}
    for arm, recipe in recipes.items():
        log(f"[distill] training arm {arm!r} (alpha {recipe.alpha}, {recipe.max_steps} steps)")
        trained[arm], seconds[arm] = train_arm(recipe, progress=progress)
        log(f"[distill] {arm}: {seconds[arm]:.0f} s")
    teacher = Path(resolve("nano")[0])
    models = {**trained, "nano (teacher)": teacher}
    evals = root / "eval"

    def score(split: str, folder: Path) -> dict:
        return {
            name: measure(
                model,
                ["nano"],
                evals / f"{split}-{_slug(name)}",
                data=folder,
                limit=limit,
                langs=langs,
                progress=progress,
            )
            for name, model in models.items()
        }

    log(f"[distill] validation split (seed {VALIDATION_SEED})")
    validation = score("val", val)
    log("[distill] held-out nano tasks (measured once)")
    heldout = score("heldout", data)
    r = recipes["distilled"]
    result = {
        "demo": "distill",
        "smoke": smoke,
        "settings": {
            "recipe": str(recipe_file()),
            "arms_alpha": ARMS,
            "loss": r.loss,
            "temperature": r.temperature,
            "k": r.k,
            "steps": r.max_steps,
            "lr": r.optim.lr,
            "seed": r.seed,
            "transfer_items": SMOKE_ITEMS if smoke else TRANSFER_ITEMS,
            "transfer_seed": TRANSFER_SEED,
            "validation_seed": VALIDATION_SEED,
            "student_params": n_params(trained["labels"]),
            "teacher_params": n_params(teacher),
        },
        "train_seconds": seconds,
        "validation": validation,
        "heldout": heldout,
        "gain": round(heldout["distilled"]["all"] - heldout["labels"]["all"], 2),
        "seconds": round(time.perf_counter() - t0, 1),
        "command": f"sealion-vl nano demo distill {work}" + (" --smoke" if smoke else ""),
    }
    result["table"] = table(result)
    save(work, "distill", result)
    return result


def _slug(name: str) -> str:
    return name.split(" ")[0]


def table(result: dict) -> str:
    """Markdown rows for nano's card: held-out headline per task, then per language."""
    h = result["heldout"]
    names = list(h)
    n = h[names[0]]["n"]
    head = "| | " + " | ".join(names) + " |"
    rows = [head, "|---" * (len(names) + 1) + "|"]
    for task in h[names[0]]["by_task"]:
        cells = []
        for name in names:
            vals = h[name]["by_task"][task]
            cells.append(f"{sum(vals.values()) / len(vals):.1f}")
        rows.append(f"| {task} (n={n.get(task, '?')}) | " + " | ".join(cells) + " |")
    for lang in h[names[0]]["by_lang"]:
        cells = " | ".join(f"{h[m]['by_lang'][lang]:.1f}" for m in names)
        rows.append(f"| {lang} | {cells} |")
    rows.append("| **all** | " + " | ".join(f"**{h[m]['all']:.1f}**" for m in names) + " |")
    return "\n".join(rows)
