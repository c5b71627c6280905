"""The encoded-sample cache: later epochs come from memory and train on exactly the same data."""

import json

import pytest
import torch

from sealion_vl.data.formats import SkipReport
from sealion_vl.train import data as data_mod
from sealion_vl.train import load_recipe, run
from sealion_vl.train.cache import FeatureCache, feature_bytes
from sealion_vl.train.data import BatchStream
from sealion_vl.train.features import FeatureEncoder
from tests.fixtures import datasets


def _rows_with_a_bad_one(tmp_path):
    data = datasets.sft_jsonl(tmp_path / "data", n=14)
    lines = data.read_text().splitlines()
    huge = {"role": "user", "content": "kata " * 600}
    lines.insert(5, json.dumps({"id": "huge", "messages": [huge, _say("ok")]}))
    lines.append("{not json")
    data.write_text("\n".join(lines) + "\n")
    return data


def _say(text):
    return {"role": "assistant", "content": text}


def _recipe(tmp_path, data, **batch):
    path = datasets.recipe(
        tmp_path / "recipe.yaml",
        stage="sft",
        model="unused",
        output_dir=str(tmp_path / "out"),
        data={"train": str(data), "shuffle_buffer": 4},
        epochs=3,
        batch={"micro_batch_size": 2, "max_seq_len": 512, "packing": True, **batch},
    )
    return load_recipe(path)


def _batches(recipe, encoder, cache, *, rank=0, world=1):
    report = SkipReport()
    stream = BatchStream(recipe, encoder, rank=rank, world=world, report=report, cache=cache)
    return list(stream), report


def _same(a: list[dict], b: list[dict]) -> bool:
    if len(a) != len(b):
        return False
    pairs = zip(a, b, strict=True)
    return all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in pairs)


@pytest.fixture
def source_reads(monkeypatch):
    """Counts how often the stream opens the source (a spy around the real reader)."""
    calls = []
    real = data_mod.iter_samples

    def spy(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(data_mod, "iter_samples", spy)
    return calls


@pytest.mark.parametrize("world", [1, 2])
def test_cached_epochs_give_the_same_batches_without_reading_the_source(
    tmp_path, chat_model, source_reads, world
):
    m = chat_model("gemma3")
    encoder = FeatureEncoder(m.model, m.processor, m.adapter)
    recipe = _recipe(tmp_path, _rows_with_a_bad_one(tmp_path))
    for rank in range(world):
        source_reads.clear()
        plain, plain_report = _batches(recipe, encoder, FeatureCache(0), rank=rank, world=world)
        assert len(source_reads) == 3  # no room: every epoch reads and encodes again
        cache = FeatureCache(10**9)
        cached, cached_report = _batches(recipe, encoder, cache, rank=rank, world=world)
        assert _same(plain, cached) and len(plain) >= 3
        assert plain_report.counts == cached_report.counts
        assert plain_report.yielded == cached_report.yielded == 15  # each row counted once
        assert cache.stats()["hits"] > 0
        assert cache.used > 0 and cache.stats()["megabytes"] == round(cache.used / 2**20, 1)
        if world == 1:
            # epoch 1 reads the source and keeps all 14 good rows; epochs 2 and 3 are memory
            assert len(source_reads) == 3 + 1
            assert cache.stats()["cached"] == 14 and cache.stats()["skipped"] == 1
            for report in (plain_report, cached_report):  # each bad row once, not per epoch
                assert report.counts["too_long"] == 1 and report.counts["bad_record"] == 1
        else:
            # epoch 2 needs rows the other rank encoded in epoch 1, so it reads the source
            assert 3 + 2 <= len(source_reads) <= 3 + 3
            assert 7 <= cache.stats()["cached"] <= 14


def test_a_byte_cap_bounds_memory_and_changes_nothing(tmp_path, chat_model, source_reads):
    m = chat_model("gemma3")
    encoder = FeatureEncoder(m.model, m.processor, m.adapter)
    recipe = _recipe(tmp_path, _rows_with_a_bad_one(tmp_path))
    full = FeatureCache(10**9)
    reference, _ = _batches(recipe, encoder, full)
    one = max(feature_bytes(f) for f in full._features.values())
    cap = 3 * one
    small = FeatureCache(cap)
    source_reads.clear()
    capped, report = _batches(recipe, encoder, small)
    assert _same(reference, capped)
    assert 0 < small.used <= cap and 3 <= small.stats()["cached"] < 14
    assert len(source_reads) == 3  # not all of it fits: later epochs read the source again
    assert small.stats()["hits"] > 0 and small.stats()["misses"] > 14
    assert report.counts["too_long"] == 1


def test_training_with_and_without_the_cache_gives_identical_weights(tmp_path, checkpoint):
    from safetensors.torch import load_file

    data = datasets.sft_jsonl(tmp_path / "data", n=8)
    weights, reports = [], []
    for mb in (0, 64):
        path = datasets.recipe(
            tmp_path / f"r{mb}.yaml",
            stage="sft",
            model=str(checkpoint("gemma3")),
            output_dir=str(tmp_path / f"out{mb}"),
            data={"train": str(data), "cache_mb": mb, "shuffle_buffer": 4},
            epochs=3,
            batch={"micro_batch_size": 2, "max_seq_len": 512},
            optim={"lr": 1e-3, "warmup_steps": 0},
        )
        out = run(load_recipe(path), progress=False).output_dir
        weights.append(load_file(out / "model.safetensors"))
        reports.append(json.loads((out / "data_report.json").read_text()))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert reports[0]["encode_cache"]["cached"] == 0
    # the step-counting pass encoded everything; all three training epochs came from memory
    assert reports[1]["encode_cache"]["cached"] == 8
    assert reports[1]["encode_cache"]["hits"] >= 3 * 8


def test_a_negative_cap_is_refused():
    with pytest.raises(ValueError, match="max_bytes"):
        FeatureCache(-1)


def test_every_epoch_keeps_the_seeded_shuffle_order_of_the_source(tmp_path, chat_model):
    """Epochs served from memory visit samples in the order a plain reader would."""
    from sealion_vl.data.formats import iter_samples
    from sealion_vl.train.data import shuffled

    m = chat_model("gemma3")
    recipe = _recipe(tmp_path, _rows_with_a_bad_one(tmp_path))
    for rank, world in ((0, 1), (1, 2)):
        stream = BatchStream(
            recipe,
            FeatureEncoder(m.model, m.processor, m.adapter),
            rank=rank,
            world=world,
            cache=FeatureCache(10**9),
        )
        for epoch in range(3):
            rows = iter_samples(recipe.data.train, report=SkipReport())
            order = shuffled(rows, recipe.data.shuffle_buffer, recipe.seed + epoch)
            want = [s.id for pos, s in enumerate(order) if pos % world == rank and s.id != "huge"]
            assert [f.id for f in stream._features(epoch)] == want, (rank, epoch)
        assert stream.cache.n_source == 15
