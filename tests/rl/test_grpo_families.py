"""One GRPO step through TRL on tiny Qwen3-VL and Gemma 4: the other families train too.

(Gemma 3, nano's family, gets the full run in test_grpo.py.) TRL 1.16 carries Qwen3-VL's
``mm_token_type_ids`` / ``image_grid_thw`` and Gemma 4's image inputs itself.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tests.rl.test_grpo import _prompts, _recipe


@pytest.mark.parametrize("kind", ["qwen3_vl", "gemma4"])
def test_one_grpo_step_trains_and_saves(kind, checkpoint, tmp_path):
    import sealion_vl
    from sealion_vl.rl.run import rl

    model = checkpoint(kind)
    out = rl(
        _recipe(model, _prompts(tmp_path), tmp_path / "run", max_steps=1, save_every=None),
        progress=False,
    )
    before, after = load_file(model / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert sealion_vl.load(out, device="cpu").name == "run"
