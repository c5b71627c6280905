"""A teacher (the tiny Gemma 3 test checkpoint) and a smaller student with its tokenizer."""

from __future__ import annotations

import dataclasses

import pytest

from tests.fixtures import datasets, tiny


@pytest.fixture(scope="session")
def teacher(checkpoint):
    return checkpoint("gemma3")


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
