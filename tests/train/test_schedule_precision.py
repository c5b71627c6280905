"""Learning-rate schedules, image pixel caps, bf16 runs and the TensorBoard/JSONL metrics."""

import json

import pytest
import torch
from PIL import Image

from sealion_vl.train import load_recipe, run
from sealion_vl.train.features import cap_pixels
from sealion_vl.train.optim import lr_schedule
from tests.fixtures import datasets


def _lrs(tmp_path, schedule, total=10, warm=2):
    r = load_recipe(
        datasets.recipe(
            tmp_path / f"{schedule}.yaml",
            stage="sft",
            model="x",
            output_dir="o",
            data={"train": "d"},
            max_steps=total,
            optim={"lr": 1.0, "warmup_steps": warm, "schedule": schedule},
        )
    )
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = lr_schedule(opt, r.optim, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_then_cosine_linear_constant(tmp_path):
    cos, lin, const = (_lrs(tmp_path, s) for s in ("cosine", "linear", "constant"))
    assert cos[:2] == [0.5, 1.0] and lin[:2] == [0.5, 1.0] and const[:2] == [0.5, 1.0]
    assert const[2:] == [1.0] * 8
    assert lin[2:] == pytest.approx([1 - i / 8 for i in range(8)])
    assert (
        cos[2] == 1.0
        and cos[6] == pytest.approx(0.5)
        and all(a > b for a, b in zip(cos[2:], cos[3:], strict=False))
    )


def test_pixel_cap_keeps_aspect_and_small_images():
    big = Image.new("RGB", (4000, 3000))
    capped = cap_pixels(big, 1_000_000)
    assert capped.width * capped.height <= 1_000_000
    assert abs(capped.width / capped.height - 4 / 3) < 0.01
    small = Image.new("RGB", (64, 48))
    assert cap_pixels(small, 1_000_000) is small


def test_bf16_run_with_pixel_cap_writes_metrics_and_tensorboard(tmp_path, checkpoint):
    data = datasets.sft_jsonl(tmp_path / "data", n=6)
    recipe = load_recipe(
        datasets.recipe(
            tmp_path / "r.yaml",
            stage="sft",
            model=str(checkpoint("gemma4")),
            output_dir=str(tmp_path / "out"),
            data={"train": str(data), "max_image_pixels": 16 * 16},
            batch={"micro_batch_size": 2, "grad_accum": 2, "max_seq_len": 512},
            max_steps=2,
            precision="bf16",
            log_every=1,
        )
    )
    result = run(recipe, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss"] > 0 for r in rows)
    assert result.last_loss == pytest.approx(rows[-1]["loss"], rel=1e-5)
    events = list((tmp_path / "out" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
