"""Loading by folder / name / hub id, and every documented bad input's error."""

import base64
import json

import pytest

import sealion_vl
from sealion_vl.errors import (
    CheckpointNotFoundError,
    ContextLengthError,
    MediaError,
    ModalityError,
    UnsupportedModelError,
)


def test_load_returns_family_and_modalities(chat_model):
    assert chat_model("gemma3").adapter.name == "gemma3"
    assert chat_model("qwen3_vl").modalities == ("text", "image", "video")
    assert chat_model("gemma4").modalities == ("text", "image", "video", "audio")
    assert chat_model("gemma3_text").modalities == ("text",)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint folder at"):
        sealion_vl.load(tmp_path / "nope")


def test_folder_without_config_is_named(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(CheckpointNotFoundError, match="not a transformers checkpoint"):
        sealion_vl.load(tmp_path)


def test_hub_id_offline_says_how_to_fix():
    with pytest.raises(CheckpointNotFoundError, match="HF_HUB_OFFLINE=1") as e:
        sealion_vl.load("gemma-4b-vl")  # catalog short name -> hub id, not cached here
    assert "aisingapore/Gemma-SEA-LION-v4-4B-VL" in str(e.value)


def test_unsupported_architecture(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(
        tmp_path
    )
    with pytest.raises(UnsupportedModelError, match="GPT2LMHeadModel"):
        sealion_vl.load(tmp_path)


def test_text_only_checkpoint_refuses_an_image(chat_model, media_dir):
    m = chat_model("gemma3_text")
    assert m.chat("Hello", max_new_tokens=3).completion_tokens == 3
    conv = [
        {
            "role": "user",
            "content": [
                {"type": "image", "path": str(media_dir / "a.png")},
                {"type": "text", "text": "What?"},
            ],
        }
    ]
    with pytest.raises(ModalityError, match="image part.*takes only text"):
        m.chat(conv)


@pytest.mark.parametrize(
    ("family", "kind"), [("gemma3", "video"), ("gemma3", "audio"), ("qwen3_vl", "audio")]
)
def test_family_without_a_modality_names_it(chat_model, media_dir, family, kind):
    src = str(media_dir / ("clip.mp4" if kind == "video" else "tone.wav"))
    conv = [{"role": "user", "content": [{"type": kind, "path": src}]}]
    with pytest.raises(ModalityError, match=kind):
        chat_model(family).chat(conv)


def test_prompt_longer_than_context(chat_model):
    m = chat_model("gemma3_text")  # its config holds 256 positions
    with pytest.raises(ContextLengthError, match="holds 256"):
        m.chat("word " * 400)


def test_unreadable_image_names_the_input(chat_model, tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    conv = [{"role": "user", "content": [{"type": "image", "path": str(bad)}]}]
    with pytest.raises(MediaError, match="not-an-image.png"):
        chat_model("gemma3").chat(conv)


def test_openai_data_uri_image_equals_path(chat_model, media_dir):
    m = chat_model("qwen3_vl")
    raw = (media_dir / "a.png").read_bytes()
    uri = "data:image/png;base64," + base64.b64encode(raw).decode()
    by_uri = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": uri}},
                {"type": "text", "text": "?"},
            ],
        }
    ]
    by_path = [
        {
            "role": "user",
            "content": [
                {"type": "image", "path": str(media_dir / "a.png")},
                {"type": "text", "text": "?"},
            ],
        }
    ]
    assert m.chat(by_uri, max_new_tokens=6).text == m.chat(by_path, max_new_tokens=6).text


def test_bad_generation_setting_is_refused(chat_model):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_new_tokens"):
        chat_model("gemma3").chat("hi", max_new_tokens=0)
    with pytest.raises(ValidationError, match="temprature"):
        chat_model("gemma3").chat("hi", temprature=0.3)


def test_processor_from_fallback(checkpoint, tmp_path):
    """A checkpoint folder without processor files borrows one (as the Qwen cards do)."""
    import shutil

    src = checkpoint("qwen3_vl")
    dst = tmp_path / "no-processor"
    shutil.copytree(src, dst)
    for name in (
        "processor_config.json",
        "preprocessor_config.json",
        "video_preprocessor_config.json",
    ):
        (dst / name).unlink(missing_ok=True)
    cfg = json.loads((dst / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3VLForConditionalGeneration"]
    m = sealion_vl.load(dst, processor_from=str(src))
    assert m.chat("hi", max_new_tokens=2).completion_tokens == 2
