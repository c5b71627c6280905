"""Exact resume after SIGKILL, and 2-process DDP (gloo, CPU) == 1 process with twice the batch.

Both run the real CLI in subprocesses, as a user would.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.fixtures import datasets

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _weights(folder):
    from transformers import AutoModelForImageTextToText

    m = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _cli(recipe, *extra):
    return [sys.executable, "-m", "sealion_vl.cli", "train", str(recipe), "--no-progress", *extra]


def test_sigkill_then_resume_ends_with_the_same_weights(tmp_path, checkpoint):
    data = datasets.sft_jsonl(tmp_path / "data", n=12)
    fields = dict(
        stage="sft",
        model=str(checkpoint("gemma3")),
        data={"train": str(data), "shuffle_buffer": 5},
        batch={"micro_batch_size": 2, "grad_accum": 3, "max_seq_len": 512},
        optim={"lr": 1e-3, "warmup_steps": 2},
        max_steps=24,
        save_every=4,
        seed=3,
    )
    full = datasets.recipe(tmp_path / "full.yaml", output_dir=str(tmp_path / "full"), **fields)
    killed = datasets.recipe(
        tmp_path / "killed.yaml", output_dir=str(tmp_path / "killed"), **fields
    )
    subprocess.run(_cli(full), check=True, env=ENV, capture_output=True, timeout=600)

    proc = subprocess.Popen(
        _cli(killed), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while not (ckpts / "step-8").is_dir() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "DONE").exists(), "the run finished before it was killed"
    assert (ckpts / "step-8").is_dir()

    res = subprocess.run(
        _cli(killed, "--resume"), env=ENV, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-2000:]
    steps = [
        int(line.split('"step": ')[1].split(",")[0])
        for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps[-1] == 24 and steps.count(24) == 1
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "killed")
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.skipif(sys.platform != "linux", reason="gloo multi-process test on Linux")
def test_two_process_ddp_equals_one_process_with_double_batch(tmp_path, checkpoint):
    data = datasets.sft_jsonl(tmp_path / "data", n=12)
    common = dict(
        stage="sft",
        model=str(checkpoint("qwen3_vl")),
        data={"train": str(data), "shuffle_buffer": 4},
        optim={"lr": 1e-3, "warmup_steps": 0},
        max_steps=3,
        seed=1,
    )
    two = datasets.recipe(
        tmp_path / "two.yaml",
        output_dir=str(tmp_path / "two"),
        **common,
        batch={"micro_batch_size": 1, "grad_accum": 2, "max_seq_len": 512, "packing": False},
    )
    one = datasets.recipe(
        tmp_path / "one.yaml",
        output_dir=str(tmp_path / "one"),
        **common,
        batch={"micro_batch_size": 2, "grad_accum": 2, "max_seq_len": 512, "packing": False},
    )
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "sealion_vl.cli",
        "train",
        str(two),
        "--no-progress",
    ]
    res = subprocess.run(torchrun, env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    subprocess.run(_cli(one), check=True, env=ENV, capture_output=True, timeout=600)
    base = _weights(checkpoint("qwen3_vl"))
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    moved = max((a[k] - base[k]).abs().max().item() for k in a)
    gap = max((a[k] - b[k]).abs().max().item() for k in a)
    assert moved > 1e-3  # training really changed the weights...
    assert gap < 2e-5, gap  # ...and the two runs agree to float rounding (Adam, 3 steps)
