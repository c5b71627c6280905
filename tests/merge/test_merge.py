"""Per-module choices, accounting errors, layouts, tied heads, atomic output, loading, CLI."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import typer
from safetensors.torch import save_file
from typer.testing import CliRunner

from sealion_vl.families import get_adapter
from sealion_vl.merge import MergeError, merge
from sealion_vl.merge.cli import merge_command
from sealion_vl.merge.names import canonical, group_of
from tests.conftest import FAMILIES
from tests.merge.test_methods import close, weights


def rewrite(src, dst, edit, config_edit=None):
    """Copy checkpoint ``src`` to ``dst`` with its tensors passed through ``edit(dict)``."""
    shutil.copytree(src, dst)
    for f in [*dst.glob("*.safetensors"), *dst.glob("*.index.json")]:
        f.unlink()
    save_file(edit(weights(src)), dst / "model.safetensors")
    if config_edit:
        cfg = json.loads((dst / "config.json").read_text())
        config_edit(cfg)
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def ta(base, other, w=0.5):
    return {
        "merge_method": "task_arithmetic",
        "base_model": str(base),
        "models": [{"model": str(other), "parameters": {"weight": w}}],
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_per_module_keep_linear_and_ties(parents, tmp_path, family):
    b, m1, m2 = parents(family)
    B, X, Y = weights(b), weights(m1), weights(m2)
    cfg = {
        "merge_method": "task_arithmetic",
        "base_model": str(b),
        "models": [
            {"model": str(m1), "parameters": {"weight": 0.5}},
            {"model": str(m2), "parameters": {"weight": 0.25}},
        ],
        "modules": {
            "vision": {"keep": str(m1)},
            "projector": {
                "merge_method": "linear",
                "parameters": {"weight": 1.0},  # the module's own setting wins
            },
        },
    }
    out = weights(merge(cfg, tmp_path / "o", progress=False))
    groups = get_adapter(family).module_groups
    seen = set()
    for n in B:
        g = group_of(canonical(n), groups)
        seen.add(g)
        if g == "vision":
            want = X[n]
        elif g == "projector":
            want = (B[n] + X[n] + Y[n]) / 3
        elif torch.equal(X[n], B[n]) and torch.equal(Y[n], B[n]):
            want = B[n]
        else:
            want = B[n] + 0.5 * (X[n] - B[n]) + 0.25 * (Y[n] - B[n])
        assert close(out[n], want), (g, n)
    assert seen == {"vision", "projector", "language"}


def test_old_hub_layout_matches_new_and_output_keeps_reference_names(parents, tmp_path):
    b, m1, _ = parents("qwen3_vl")  # saved by transformers 5: model.language_model...
    old = {"model.language_model.": "model.", "model.visual.": "visual."}

    def to_old(sd):
        out = {}
        for n, t in sd.items():
            for new, legacy in old.items():
                if n.startswith(new):
                    n = legacy + n[len(new) :]
                    break
            out[n] = t
        return out

    legacy = rewrite(m1, tmp_path / "legacy", to_old)
    assert any(n.startswith("model.layers.") for n in weights(legacy))
    out = weights(merge(ta(b, legacy), tmp_path / "o", progress=False))
    B, X = weights(b), weights(m1)
    assert set(out) == set(B)
    n = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert close(out[n], B[n] + 0.5 * (X[n] - B[n]))


def test_missing_and_extra_tensors_are_listed(parents, tmp_path):
    b, m1, _ = parents("gemma4")
    gone = "model.language_model.layers.1.mlp.down_proj.weight"

    def edit(sd):
        sd.pop(gone)
        sd["model.language_model.layers.1.mlp.surprise.weight"] = torch.zeros(2)
        return sd

    broken = rewrite(m1, tmp_path / "broken", edit)
    with pytest.raises(MergeError) as e:
        merge(ta(b, broken), tmp_path / "o", progress=False)
    msg = str(e.value)
    assert "lacks 1 tensors" in msg and gone in msg
    assert "has 1 tensors" in msg and "mlp.surprise.weight" in msg
    assert not (tmp_path / "o").exists()


def test_unclassified_tensor_is_an_error_only_with_modules(parents, tmp_path):
    b, m1, _ = parents("gemma3")

    def add(sd):
        sd["rogue_adapter.weight"] = torch.ones(3)
        return sd

    rb, rm = rewrite(b, tmp_path / "rb", add), rewrite(m1, tmp_path / "rm", add)
    cfg = {**ta(rb, rm), "modules": {"vision": {"keep": str(rb)}}}
    with pytest.raises(MergeError, match="belong to none of gemma3's module groups.*rogue_adapter"):
        merge(cfg, tmp_path / "o", progress=False)
    out = weights(merge(ta(rb, rm), tmp_path / "o2", progress=False))
    assert torch.equal(out["rogue_adapter.weight"], torch.ones(3))  # carried, never dropped


def test_family_shape_and_dtype_mismatches(parents, tmp_path):
    g, _, _ = parents("gemma3")
    q, q1, _ = parents("qwen3_vl")
    with pytest.raises(MergeError, match="one family.*Gemma3ForConditionalGeneration.*Qwen3VL"):
        merge(ta(g, q), tmp_path / "o", progress=False)
    n = "model.language_model.norm.weight"

    def grow(sd):
        sd[n] = torch.ones(sd[n].shape[0] + 1)
        return sd

    wide = rewrite(q1, tmp_path / "wide", grow)
    with pytest.raises(MergeError, match=rf"shape mismatch in 1 tensors: {n}"):
        merge(ta(q, wide), tmp_path / "o", progress=False)
    half = rewrite(q1, tmp_path / "half", lambda sd: {k: v.bfloat16() for k, v in sd.items()})
    with pytest.raises(MergeError, match="dtype mismatch.*set `dtype:`"):
        merge(ta(q, half), tmp_path / "o", progress=False)
    out = weights(merge({**ta(q, half), "dtype": "float32"}, tmp_path / "o", progress=False))
    assert out[n].dtype == torch.float32


def test_tied_embeddings(parents, tmp_path):
    b, m1, _ = parents("qwen3_vl")

    def tie(cfg):
        cfg["tie_word_embeddings"] = True
        cfg["text_config"]["tie_word_embeddings"] = True

    untie = lambda sd: {k: v for k, v in sd.items() if k != "lm_head.weight"}  # noqa: E731
    tb = rewrite(b, tmp_path / "tb", untie, tie)
    tm = rewrite(m1, tmp_path / "tm", untie, tie)
    out = merge(ta(tb, tm), tmp_path / "o", progress=False)
    W = weights(out)
    assert "lm_head.weight" not in W
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(out)
    emb = "model.language_model.embed_tokens.weight"
    assert torch.equal(model.lm_head.weight, W[emb])
    # an untied base and a tied parent: the parent's head is its embedding
    mixed = weights(merge(ta(b, tm), tmp_path / "o2", progress=False))
    B, X = weights(b), weights(m1)
    assert close(
        mixed["lm_head.weight"], B["lm_head.weight"] + 0.5 * (X[emb] - B["lm_head.weight"])
    )
    # a tied base would have to drop the parent's own head: refused
    with pytest.raises(MergeError, match="own lm_head.weight.*ties it"):
        merge(ta(tb, m1), tmp_path / "o3", progress=False)


def test_output_is_sharded_atomic_loads_and_chats(parents, tmp_path, media_dir):
    from transformers import AutoModelForImageTextToText, pipeline

    import sealion_vl

    b, m1, _ = parents("gemma3")
    out = tmp_path / "merged"
    merge({**ta(b, m1), "out_dtype": "bfloat16"}, out, progress=False, max_shard_size="300KB")
    shards = sorted(out.glob("model-*.safetensors"))
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(shards) > 1 and set(index["weight_map"].values()) == {s.name for s in shards}
    for f in ("config.json", "generation_config.json", "tokenizer.json", "chat_template.jinja"):
        assert (out / f).is_file(), f
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    card = (out / "README.md").read_text()
    assert "task_arithmetic" in card and str(m1) in card and "weight: 0.5" in card
    assert "tensors_by_method" in (out / "merge_config.yaml").read_text()

    model = AutoModelForImageTextToText.from_pretrained(out)
    assert model.dtype == torch.bfloat16
    chat = sealion_vl.load(out)
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "image", "url": str(media_dir / "a.png")},
                {"type": "text", "text": "What is this?"},
            ],
        }
    ]
    res = chat.chat(msgs, max_new_tokens=4, temperature=0)
    assert res.completion_tokens > 0
    pipe = pipeline("image-text-to-text", model=str(out))
    text = pipe(text=msgs, max_new_tokens=4, generate_kwargs={"do_sample": False})
    assert isinstance(text[0]["generated_text"][-1]["content"], str)

    # an existing output is never clobbered unless asked; a failed merge leaves no trace
    with pytest.raises(MergeError, match="exists and is not empty"):
        merge(ta(b, m1), out, progress=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(MergeError):
        merge({**ta(b, m1), "parameters": {"lambda": "heavy"}}, out, overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (out / "README.md").read_text() == card
    merge(ta(b, m1, 0.9), out, overwrite=True, progress=False)
    assert "weight: 0.9" in (out / "README.md").read_text()


def test_cli_help_and_run(parents, tmp_path):
    b, m1, _ = parents("gemma3")
    app = typer.Typer()
    app.command()(merge_command)
    runner = CliRunner()
    help_text = runner.invoke(app, ["--help"]).output
    for flag in ("--overwrite", "--max-shard-size", "--progress", "CONFIG.yaml", "OUT"):
        assert flag in help_text
    cfg = tmp_path / "m.yaml"
    cfg.write_text(json.dumps(ta(b, m1)))  # JSON is YAML
    res = runner.invoke(app, [str(cfg), str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "model.safetensors.index.json").is_file()
    res = runner.invoke(app, [str(cfg), str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 2 and "exists and is not empty" in " ".join(res.output.split())


# Linux: writing 5 to clear_refs resets the peak-RSS mark (VmHWM) to the current RSS, so the
# peak after the merge is the merge's own, not the imports'
_PEAK = """
import json, sys
from pathlib import Path
from sealion_vl.merge import merge
def kb(key):
    return next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith(key))
open("/proc/self/clear_refs", "w").write("5")
before = kb("VmRSS")
merge(json.loads(sys.argv[1]), Path(sys.argv[2]), progress=False, max_shard_size="40MB")
print(json.dumps({"growth_mb": (kb("VmHWM") - before) / 1024}))
"""


def test_streaming_memory_is_bounded_by_a_few_tensors(checkpoint, tmp_path):
    """Two 96 MB checkpoints (12 tensors of 8 MB, two shards each) merge with peak memory
    growing by well under one checkpoint: a merge that held either model (or memory-mapped
    the inputs and kept the touched pages resident) would grow by 96 MB or more."""
    import subprocess
    import sys

    cfg_src = checkpoint("gemma3") / "config.json"
    parents_ = []
    for seed in (0, 1):
        folder = tmp_path / f"big{seed}"
        folder.mkdir()
        shutil.copy(cfg_src, folder / "config.json")
        g = torch.Generator().manual_seed(seed)
        weight_map = {}
        for shard in range(2):
            sd = {
                f"model.language_model.layers.{i}.mlp.big.weight": torch.randn(2**21, generator=g)
                for i in range(shard * 6, shard * 6 + 6)
            }
            name = f"model-{shard + 1:05d}-of-00002.safetensors"
            save_file(sd, folder / name)
            weight_map.update(dict.fromkeys(sd, name))
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map})
        )
        parents_.append(folder)
    cfg = ta(*parents_)
    out = tmp_path / "o"
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, json.dumps(cfg), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    growth = json.loads(proc.stdout.strip().splitlines()[-1])["growth_mb"]
    assert growth < 64, f"peak memory grew by {growth:.0f} MB merging two 96 MB checkpoints"
    assert len(list(out.glob("model-*.safetensors"))) == 3  # 96 MB output in 40 MB shards
    n = "model.language_model.layers.11.mlp.big.weight"
    A, B, merged = weights(parents_[0]), weights(parents_[1]), weights(out)
    assert torch.allclose(merged[n], A[n] + 0.5 * (B[n] - A[n]))
