"""Shared fixtures: tiny checkpoints of the real architectures, built once per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from tests.fixtures import clips, tiny  # noqa: E402

FAMILIES = ["gemma3", "qwen3_vl", "gemma4"]


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-checkpoints")


@pytest.fixture(scope="session")
def checkpoint(tiny_root):
    """checkpoint(kind) -> folder of the tiny checkpoint ``kind`` (built on first use)."""
    return lambda kind: tiny.build(kind, tiny_root)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    clips.make_image(d / "a.png", size=(48, 40), seed=1)
    clips.make_image(d / "b.jpg", size=(40, 56), seed=2)
    clips.make_video(d / "clip.mp4")
    clips.make_tone(d / "tone.wav")
    return d


_models: dict = {}


@pytest.fixture(scope="session")
def chat_model(checkpoint):
    """chat_model(kind) -> a ChatModel loaded through the public sealion_vl.load (cached)."""
    import sealion_vl

    def get(kind: str):
        if kind not in _models:
            _models[kind] = sealion_vl.load(checkpoint(kind))
        return _models[kind]

    return get
