"""A teacher (the tiny Gemma 3 test checkpoint) and a smaller student with its tokenizer."""

from __future__ import annotations

import dataclasses

import pytest

from tests.fixtures import datasets, tiny


@pytest.fixture(scope="session")
def teacher(checkpoint, tiny_root):
    """The tiny Gemma 3 with its output layer scaled up: a random model's next-token
    distribution is nearly uniform, which leaves a student nothing to learn from it."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    out = tiny_root / "gemma3-sharp-teacher"
    if not (out / "config.json").is_file():
        shutil.copytree(checkpoint("gemma3"), out, dirs_exist_ok=True)
        weights = load_file(str(out / "model.safetensors"))
        key = next(k for k in weights if k.endswith("lm_head.weight"))
        weights[key] = weights[key] * 60.0
        save_file(
            {k: v.contiguous() for k, v in weights.items()},
            str(out / "model.safetensors"),
            metadata={"format": "pt"},
        )
        assert torch.isfinite(weights[key]).all()
    return out


@pytest.fixture(scope="session")
def student(tiny_root):
    """Half the teacher's width, one layer fewer image encoder; same processor settings."""
    from sealion_vl.nano.model import init_checkpoint

    out = tiny_root / "gemma3-student"
    if not (out / "config.json").is_file():
        size = dataclasses.replace(tiny.GEMMA3_TINY, hidden=32, heads=2, kv_heads=1)
        init_checkpoint(out, tiny.build_tokenizer("gemma3"), size, seed=5)
    return out


@pytest.fixture(scope="session")
def sft_data(tmp_path_factory):
    return datasets.sft_jsonl(tmp_path_factory.mktemp("distill-data"), n=12)
