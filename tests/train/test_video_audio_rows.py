"""Video and audio rows train: the training encoder is the engine's encoder, so a JSONL row
with a video (Qwen3-VL, Gemma 4) or an audio clip (Gemma 4) reaches the model, not a
"Found 1 <|video_pad|> tokens ... but no videos were passed" crash."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from sealion_vl.data.formats import SkipReport
from sealion_vl.train import run
from sealion_vl.train.data import BatchStream
from sealion_vl.train.features import FeatureEncoder
from sealion_vl.train.packing import token_losses
from tests.train.test_trainer import _recipe


def _rows(folder, kind: str, n: int = 4) -> str:
    rows = []
    for i in range(n):
        media = {"type": kind, "path": f"{kind}.{'mp4' if kind == 'video' else 'wav'}"}
        rows.append(
            {
                "id": f"{kind}-{i}",
                "messages": [
                    {"role": "user", "content": [media, {"type": "text", "text": f"Apa ini? {i}"}]},
                    {"role": "assistant", "content": f"Ini {kind} nombor {i}."},
                ],
            }
        )
    path = folder / f"{kind}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


@pytest.mark.parametrize(
    ("family", "kind"), [("qwen3_vl", "video"), ("gemma4", "video"), ("gemma4", "audio")]
)
def test_media_rows_give_loss_and_gradients(tmp_path, chat_model, media_dir, family, kind):
    m = chat_model(family)
    src = media_dir / ("clip.mp4" if kind == "video" else "tone.wav")
    shutil.copy(src, tmp_path / f"{kind}.{src.suffix[1:]}")
    batch_cfg = {"max_seq_len": 1024}  # Gemma 4: 4 frames x 70 soft tokens, plus timestamps
    recipe = _recipe(tmp_path, "unused", _rows(tmp_path, kind), batch=batch_cfg)
    report = SkipReport()
    stream = BatchStream(recipe, FeatureEncoder(m.model, m.processor, m.adapter), report=report)
    batch = next(iter(stream))
    assert report.to_dict().get("total_skipped", 0) == 0
    key = "pixel_values_videos" if kind == "video" else "input_features"
    assert key in batch, sorted(batch)
    m.model.zero_grad()
    losses = token_losses(m.model, batch, m.adapter)
    assert torch.isfinite(losses).all() and losses.sum() > 0
    losses.sum().backward()
    tower = (
        "model.visual."
        if family == "qwen3_vl"
        else ("model.vision_tower." if kind == "video" else "model.audio_tower.")
    )
    grads = [p.grad for n, p in m.model.named_parameters() if n.startswith(tower)]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), tower
    m.model.zero_grad()


def test_a_video_recipe_runs_end_to_end(tmp_path, checkpoint, media_dir):
    shutil.copy(media_dir / "clip.mp4", tmp_path / "video.mp4")
    recipe = _recipe(tmp_path, checkpoint("qwen3_vl"), _rows(tmp_path, "video"), max_steps=2)
    result = run(recipe, progress=False)
    assert result.steps == 2 and result.skipped.get("total_skipped", 0) == 0
