"""End-to-end training runs on the tiny checkpoints (a few steps each)."""

import json

import pytest
import torch

import sealion_vl
from sealion_vl.train import load_recipe, run
from tests.fixtures import datasets


def _recipe(tmp_path, ckpt, train, **extra):
    fields = {
        "stage": "sft",
        "model": str(ckpt),
        "output_dir": str(tmp_path / "out"),
        "data": {"train": str(train)},
        "max_steps": 3,
        "batch": {"micro_batch_size": 2, "grad_accum": 1, "max_seq_len": 512},
        "optim": {"lr": 1e-3, "warmup_steps": 0},
    }
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(fields.get(k), dict):
            fields[k] = {**fields[k], **v}
        else:
            fields[k] = v
    return load_recipe(datasets.recipe(tmp_path / "recipe.yaml", **fields))


def load_file(path):
    """A checkpoint's weights under the runtime parameter names (files may use legacy ones)."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(path.parent, dtype=torch.float32)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(before: dict, after: dict, prefix: str) -> bool:
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return any(not torch.equal(before[k], after[k]) for k in keys)


@pytest.mark.parametrize("family", ["gemma3", "qwen3_vl", "gemma4"])
def test_sft_writes_a_checkpoint_the_model_card_snippet_loads(
    tmp_path, checkpoint, family, media_dir
):
    from transformers import pipeline

    data = datasets.sft_jsonl(tmp_path / "data")
    recipe = _recipe(tmp_path, checkpoint(family), data, max_steps=4)
    result = run(recipe, progress=False)
    out = result.output_dir
    before = load_file(checkpoint(family) / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert _changed(before, after, "model.language_model.")
    assert not _changed(before, after, next(iter(recipe_vision_prefix(family))))  # frozen
    assert load_recipe(out / "recipe.resolved.yaml") == recipe
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert all(m["tokens"] > 0 and m["tokens_per_s"] > 0 for m in metrics)
    pipe = pipeline("image-text-to-text", model=str(out))
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "image", "url": str(media_dir / "a.png")},
                {"type": "text", "text": "Apa warna ini?"},
            ],
        }
    ]
    text = pipe(text=msgs, max_new_tokens=4, generate_kwargs={"do_sample": False})
    assert (
        text[0]["generated_text"][-1]["content"]
        == sealion_vl.load(out).chat(msgs, max_new_tokens=4, temperature=0).text
    )


def recipe_vision_prefix(family):
    from sealion_vl.families import get_adapter

    return get_adapter(family).module_groups["vision"]


def test_cpt_on_captions_learns(tmp_path, checkpoint):
    data = datasets.caption_jsonl(tmp_path / "caps")
    recipe = _recipe(
        tmp_path,
        checkpoint("gemma3"),
        data,
        stage="cpt",
        max_steps=12,
        data={"train": str(data), "shuffle_buffer": 1},
        optim={"lr": 5e-3, "schedule": "constant", "warmup_steps": 0},
    )
    run(recipe, progress=False)
    losses = [
        json.loads(x)["loss"] for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    ]
    assert losses[-1] < losses[0] * 0.8, losses  # repeated captions: loss must fall


def test_freeze_switches_and_lora(tmp_path, checkpoint):
    data = datasets.sft_jsonl(tmp_path / "data")
    base = load_file(checkpoint("gemma3") / "model.safetensors")
    r = _recipe(
        tmp_path,
        checkpoint("gemma3"),
        data,
        freeze={"vision": False, "projector": True, "language": True},
    )
    after = load_file(run(r, progress=False).output_dir / "model.safetensors")
    assert _changed(base, after, "model.vision_tower.")
    assert not _changed(base, after, "model.multi_modal_projector.")
    assert not _changed(base, after, "model.language_model.")
    (tmp_path / "lora").mkdir()
    r2 = _recipe(
        tmp_path / "lora",
        checkpoint("gemma3"),
        data,
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
        freeze={"vision": True, "projector": True, "language": True},
    )
    out = run(r2, progress=False).output_dir
    merged = load_file(out / "model.safetensors")
    assert set(merged) == set(base)  # adapters merged: a plain checkpoint, same tensor names
    assert _changed(base, merged, "model.language_model.layers.0.self_attn.q_proj")
    assert not _changed(base, merged, "model.language_model.embed_tokens")
    assert not _changed(base, merged, "model.vision_tower.")


def _max_step(before: dict, after: dict, prefix: str) -> float:
    return max((after[k] - before[k]).abs().max().item() for k in before if k.startswith(prefix))


def test_lr_scale_gives_a_group_its_own_step_size(tmp_path, checkpoint):
    # One AdamW step moves every weight by about lr (the first update is g/|g|), so the
    # largest change per group shows the learning rate the group really got.
    data = datasets.sft_jsonl(tmp_path / "data")
    base = load_file(checkpoint("gemma3") / "model.safetensors")
    r = _recipe(
        tmp_path,
        checkpoint("gemma3"),
        data,
        max_steps=1,
        freeze={"vision": False, "projector": False, "language": False},
        optim={
            "lr": 1e-4,
            "weight_decay": 0.0,
            "schedule": "constant",
            "lr_scale": {"vision": 10.0, "language": 0.5},
        },
    )
    out = run(r, progress=False).output_dir
    after = load_file(out / "model.safetensors")
    vision = _max_step(base, after, "model.vision_tower.")
    projector = _max_step(base, after, "model.multi_modal_projector.")
    language = _max_step(base, after, "model.language_model.")
    assert 0.9e-3 < vision < 1.1e-3 and 0.9e-4 < projector < 1.1e-4, (vision, projector)
    assert 0.45e-4 < language < 0.55e-4, language
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert first["lr"] == pytest.approx(1e-4)  # the log shows the recipe's own lr
    with pytest.raises(ValueError, match="lr_scale"):
        _recipe(tmp_path, checkpoint("gemma3"), data, optim={"lr_scale": {"vision": 0}})
    with pytest.raises(ValueError, match="lr_scale"):
        _recipe(tmp_path, checkpoint("gemma3"), data, optim={"lr_scale": {"eyes": 2}})


def test_text_only_batch_gets_a_masked_dummy_image(tmp_path, chat_model):
    from sealion_vl.data.formats import SkipReport
    from sealion_vl.train.data import BatchStream
    from sealion_vl.train.features import FeatureEncoder
    from sealion_vl.train.packing import token_losses

    m = chat_model("qwen3_vl")
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps(
            {
                "id": "t",
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello."},
                ],
            }
        )
        + "\n"
    )
    recipe = _recipe(tmp_path, "unused", path)
    stream = BatchStream(
        recipe, FeatureEncoder(m.model, m.processor, m.adapter), report=SkipReport()
    )
    batch = next(iter(stream))
    assert "pixel_values" in batch and batch["input_ids"].shape[0] == 2  # + the dummy row
    n_loss = int((batch["labels"] != -100).sum())
    alone = batch["input_ids"][:1]
    assert n_loss == stream.dummy().n_loss + int((batch["labels"][:1] != -100).sum())
    assert stream.dummy().n_loss == 0 and alone.numel() > 0
    m.model.zero_grad()
    token_losses(m.model, batch, m.adapter).sum().backward()
    merger = [p for n, p in m.model.named_parameters() if n.startswith("model.visual.merger")]
    assert all(p.grad is not None and torch.count_nonzero(p.grad) == 0 for p in merger)
    m.model.zero_grad(set_to_none=True)


def test_bad_rows_are_skipped_counted_and_listed(tmp_path, checkpoint):
    data = datasets.sft_jsonl(tmp_path / "data", n=6)
    lines = data.read_text().splitlines()
    lines.append(
        json.dumps(
            {
                "id": "missing",
                "messages": [
                    {"role": "user", "content": [{"type": "image", "path": "nope.png"}]},
                    {"role": "assistant", "content": "x"},
                ],
            }
        )
    )
    lines.append(
        json.dumps(
            {
                "id": "huge",
                "messages": [
                    {"role": "user", "content": "kata " * 600},
                    {"role": "assistant", "content": "ok"},
                ],
            }
        )
    )
    lines.append("{not json")
    data.write_text("\n".join(lines) + "\n")
    out = run(
        _recipe(tmp_path, checkpoint("qwen3_vl"), data, epochs=1, max_steps=None), progress=False
    ).output_dir
    report = json.loads((out / "data_report.json").read_text())
    assert report["reasons"]["missing_image"]["ids"] == ["missing"]
    assert report["reasons"]["too_long"]["ids"] == ["huge"]
    assert report["reasons"]["bad_record"]["count"] == 1
    assert (out / "DONE").exists()


def test_recipe_chooses_the_attention_kernel(tmp_path, checkpoint):
    from sealion_vl.errors import SealionError
    from sealion_vl.train.optim import load_trainable

    def _load(recipe):
        return load_trainable(recipe.model, recipe.attn_implementation).model

    for attn in ("eager", "sdpa"):
        recipe = _recipe(tmp_path, checkpoint("gemma3"), "d.jsonl", attn_implementation=attn)
        model = _load(recipe)
        assert model.config.get_text_config()._attn_implementation == attn
    model = _load(_recipe(tmp_path, checkpoint("gemma3"), "d.jsonl"))  # the model's own
    assert model.config.get_text_config()._attn_implementation == "sdpa"
    # Gemma 4's audio tower has no sdpa: the error names the key and the model
    with pytest.raises(SealionError, match="attn_implementation 'sdpa'.*Gemma4Audio"):
        _load(_recipe(tmp_path, checkpoint("gemma4"), "d.jsonl", attn_implementation="sdpa"))
