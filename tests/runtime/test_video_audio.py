"""Video (Qwen3-VL, Gemma 4) and audio (Gemma 4) on generated clips."""

import base64

import pytest
import torch


def _conv(kind, src):
    return [
        {
            "role": "user",
            "content": [{"type": kind, "path": src}, {"type": "text", "text": "What happens?"}],
        }
    ]


@pytest.mark.parametrize("family", ["qwen3_vl", "gemma4"])
def test_video_reaches_the_model(chat_model, media_dir, family):
    m = chat_model(family)
    conv = _conv("video", str(media_dir / "clip.mp4"))
    with_video = m.chat(conv, max_new_tokens=6, temperature=0)
    text_only = m.count_tokens([{"role": "user", "content": "What happens?"}])
    assert with_video.prompt_tokens > text_only + 8  # video soft tokens were inserted
    # batching a video conversation beside a text one changes nothing
    batch = m.chat_batch([conv, [{"role": "user", "content": "Hi"}]], max_new_tokens=6)
    assert batch[0].text == with_video.text


def test_audio_and_openai_input_audio_agree(chat_model, media_dir):
    m = chat_model("gemma4")
    wav = media_dir / "tone.wav"
    by_path = m.chat(_conv("audio", str(wav)), max_new_tokens=6, temperature=0)
    openai = [
        {
            "role": "user",
            "content": [
                {
                    "type": "input_audio",
                    "input_audio": {
                        "data": base64.b64encode(wav.read_bytes()).decode(),
                        "format": "wav",
                    },
                },
                {"type": "text", "text": "What happens?"},
            ],
        }
    ]
    by_b64 = m.chat(openai, max_new_tokens=6, temperature=0)
    assert by_path.text == by_b64.text
    audio_id = m.tokenizer.convert_tokens_to_ids("<|audio|>")
    enc = m.encoder.encode(_conv("audio", str(wav)))
    assert int((enc["input_ids"] == audio_id).sum()) > 0
    assert "input_features" in enc and torch.isfinite(enc["input_features"]).all()
