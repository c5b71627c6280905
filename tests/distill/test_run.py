"""Offline and online distillation on tiny Gemma 3 checkpoints: loss falls, resume, load."""

import json

import pytest
import torch

from sealion_vl.distill import DistillRecipe, distill
from sealion_vl.distill.cache import TopKCache
from sealion_vl.errors import SealionError


def _recipe(tmp_path, teacher, student, data, name, **extra):
    fields = dict(
        teacher=str(teacher),
        student=str(student),
        output_dir=str(tmp_path / name),
        data={"train": str(data), "shuffle_buffer": 4},
        k=16,
        alpha=1.0,
        teacher_batch_size=4,
        optim={"lr": 3e-3, "warmup_steps": 0, "schedule": "constant"},
        batch={"micro_batch_size": 2, "grad_accum": 1, "max_seq_len": 256},
        max_steps=8,
        seed=1,
    )
    fields.update(extra)
    return DistillRecipe.model_validate(fields)


def _metrics(out):
    return [json.loads(x) for x in (out / "distill_metrics.jsonl").read_text().splitlines()]


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_offline_distillation_learns_resumes_and_loads(tmp_path, teacher, student, sft_data):
    import sealion_vl

    r = _recipe(tmp_path, teacher, student, sft_data, "a", max_steps=12, save_every=6)
    out = distill(r, progress=False)
    cache = TopKCache(r.cache_path())
    assert cache.header["teacher"] == str(teacher) and cache.header["k"] == 16
    assert cache.bytes_per_token == 68 and cache.n_tokens > 0
    assert len(cache.rows) == 12  # every sample has assistant tokens
    rows = _metrics(out)
    assert [m["step"] for m in rows] == list(range(1, 13))
    first = sum(m["divergence"] for m in rows[:3]) / 3
    last = sum(m["divergence"] for m in rows[-3:]) / 3
    assert last < 0.8 * first, (first, last)
    assert (out / "distill.resolved.yaml").is_file() and (out / "DONE").is_file()
    model = sealion_vl.load(out)
    reply = model.chat([{"role": "user", "content": "Apa warna ini?"}], max_new_tokens=3)
    assert isinstance(reply.text, str)

    # a second run, resumed from its step-6 checkpoint, ends with the same weights
    r2 = _recipe(tmp_path, teacher, student, sft_data, "b", max_steps=12, save_every=6,
                 cache=str(r.cache_path()))  # fmt: skip
    b = tmp_path / "b"
    distill(r2, progress=False)
    from sealion_vl.train import checkpoint

    assert checkpoint.latest(b).name == "step-6"
    for f in b.glob("model*.safetensors"):
        f.unlink()
    mtime = r.cache_path().stat().st_mtime
    distill(r2, resume=True, progress=False)  # steps 7-12 again, reusing the cache
    assert r.cache_path().stat().st_mtime == mtime
    steps = [m["step"] for m in _metrics(b)]
    assert steps[-6:] == list(range(7, 13))
    wa, wb = _weights(out), _weights(b)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_online_learns_and_equals_offline_with_the_whole_vocabulary(
    tmp_path, teacher, student, sft_data
):
    on = _recipe(tmp_path, teacher, student, sft_data, "online", online=True, max_steps=5)
    distill(on, progress=False)
    assert not on.cache_path().exists()
    online = _metrics(tmp_path / "online")
    assert online[-1]["divergence"] < 0.9 * online[0]["divergence"], online
    # k >= vocabulary: the cache holds the whole distribution, so the same run follows
    off = _recipe(tmp_path, teacher, student, sft_data, "offline", k=4096, max_steps=5)
    distill(off, progress=False)
    assert TopKCache(off.cache_path()).k == 512  # capped at the tokenizer's size
    offline = _metrics(tmp_path / "offline")
    for a, b in zip(online, offline, strict=True):
        assert a["divergence"] == pytest.approx(b["divergence"], rel=1e-4)


def test_cache_built_with_other_settings_is_refused(tmp_path, teacher, student, sft_data):
    r = _recipe(tmp_path, teacher, student, sft_data, "c", max_steps=1)
    distill(r, progress=False)
    with pytest.raises(SealionError, match="k: cache 16 vs recipe 8"):
        distill(r.model_copy(update={"k": 8}), progress=False)


def test_another_tokenizer_is_refused(tmp_path, teacher, checkpoint, sft_data):
    r = _recipe(tmp_path, teacher, checkpoint("qwen3_vl"), sft_data, "d", max_steps=1)
    with pytest.raises(SealionError, match="tokenizers differ"):
        distill(r, progress=False)


def test_rows_that_changed_since_the_cache_was_built_are_refused(
    tmp_path, teacher, student, sft_data
):
    r = _recipe(tmp_path, teacher, student, sft_data, "e", max_steps=1, k=4)
    distill(r, progress=False)
    changed = tmp_path / "changed.jsonl"
    lines = sft_data.read_text().splitlines()
    changed.write_text("\n".join(x.replace("Warna ", "Warnanya ") for x in lines) + "\n")
    for f in sft_data.parent.glob("*.png"):  # the images beside the data
        (tmp_path / f.name).write_bytes(f.read_bytes())
    data = r.data.model_copy(update={"train": str(changed)})
    update = {"data": data, "output_dir": str(tmp_path / "e2"), "cache": str(r.cache_path())}
    r2 = r.model_copy(update=update)
    with pytest.raises(SealionError, match="target tokens differ from the cached ones"):
        distill(r2, progress=False)
