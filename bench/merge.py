"""Merge bench: ``sealion-vl merge`` vs mergekit 0.1.5 on the same two ~300 MB checkpoints.

Run (mergekit is the bench's peer only, LGPL, not a dependency of sealion-vl)::

    pip install mergekit==0.1.5
    python bench/merge.py            # builds bench/.cache/merge/{a,b} once

Two Gemma 3 architecture checkpoints (Gemma3ForConditionalGeneration, random weights,
bfloat16, ~300 MB each, tied embeddings, saved in the hub's older tensor layout
``language_model.model.*``, which is what mergekit's gemma3vl architecture file reads, in two
shards with an index) are merged by each tool with the same config, once per method
(linear, ties). Each tool runs in its own child process; wall time is the child's, peak
memory is the child's maximum resident set (``os.wait4`` rusage), imports included. Both
read ``dtype: float32`` (inputs cast before merging) and write ``out_dtype: bfloat16``, so
the arithmetic is the same; the outputs are compared tensor by tensor (max abs diff) to
show the comparison is the same work. Prints one line per tool and method and the ratios.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

CACHE = Path(__file__).parent / ".cache" / "merge"
OURS = "import sys; from sealion_vl.merge import merge; merge(*sys.argv[1:3], progress=False)"


def _old_layout(name: str) -> str:
    for new, old in (
        ("model.language_model.", "language_model.model."),
        ("model.vision_tower.", "vision_tower.vision_model."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
    ):
        if name.startswith(new):
            return old + name[len(new) :]
    return name


def build(folder: Path, seed: int) -> Path:
    """A ~300 MB bf16 Gemma 3 VLM checkpoint with random weights (built once)."""
    if (folder / ".complete").exists():
        return folder
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    cfg = Gemma3Config(
        text_config=dict(
            vocab_size=32000,
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=7,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=128,
            sliding_window=512,
            tie_word_embeddings=True,
        ),
        vision_config=dict(
            hidden_size=384,
            intermediate_size=1536,
            num_hidden_layers=4,
            num_attention_heads=6,
            image_size=224,
            patch_size=14,
        ),
        mm_tokens_per_image=64,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(cfg).to(torch.bfloat16)
    sd = {
        _old_layout(k): v.contiguous()
        for k, v in model.state_dict().items()
        if k != "lm_head.weight"
    }
    names = list(sd)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:])):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({n: sd[n] for n in part}, folder / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    total = sum(t.numel() * t.element_size() for t in sd.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )
    model.config.dtype = "bfloat16"
    model.config.architectures = ["Gemma3ForConditionalGeneration"]
    model.config.save_pretrained(folder)
    (folder / ".complete").write_text("ok")
    return folder


def configs(a: Path, b: Path) -> dict[str, dict]:
    common = {"dtype": "float32", "out_dtype": "bfloat16"}
    return {
        "linear": {
            "merge_method": "linear",
            "models": [
                {"model": str(a), "parameters": {"weight": 0.6}},
                {"model": str(b), "parameters": {"weight": 0.4}},
            ],
            **common,
        },
        "ties": {
            "merge_method": "ties",
            "base_model": str(a),
            "models": [{"model": str(b), "parameters": {"weight": 0.7, "density": 0.5}}],
            "parameters": {"normalize": True},
            **common,
        },
    }


def run_child(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{proc.stderr.read().decode()[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def tensors(folder: Path) -> dict[str, str]:
    """name -> shard file, from the index or (one file) from the file itself."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return json.loads(index.read_text())["weight_map"]
    out = {}
    for f in folder.glob("*.safetensors"):
        with safe_open(f, "pt") as fh:
            out.update(dict.fromkeys(fh.keys(), f.name))
    return out


def compare(x: Path, y: Path) -> tuple[float, float, list[str]]:
    """(max |x - y| over shared tensors, fraction of elements that differ, names only in x)."""
    mx, my = tensors(x), tensors(y)
    worst, differ, total = 0.0, 0, 0
    for name in mx:
        if name not in my:
            continue
        with safe_open(x / mx[name], "pt") as fx, safe_open(y / my[name], "pt") as fy:
            d = (fx.get_tensor(name).float() - fy.get_tensor(name).float()).abs()
            worst = max(worst, float(d.max()))
            differ += int((d > 0).sum())
            total += d.numel()
    return worst, differ / max(total, 1), sorted(set(mx) - set(my))


def main() -> None:
    a, b = build(CACHE / "a", 1), build(CACHE / "b", 2)
    size = sum(f.stat().st_size for f in a.glob("*.safetensors")) / 1e6
    print(f"inputs: 2 x {size:.0f} MB (bf16 Gemma 3, {len(tensors(a))} tensors, 2 shards each)")
    mergekit = shutil.which("mergekit-yaml")
    if mergekit is None:
        raise SystemExit("mergekit-yaml not found: pip install mergekit==0.1.5")
    work = CACHE / "runs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for method, cfg in configs(a, b).items():
        path = work / f"{method}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        out_ours, out_mk = work / f"{method}-ours", work / f"{method}-mergekit"
        ours = run_child([sys.executable, "-c", OURS, str(path), str(out_ours)])
        peer = run_child([mergekit, str(path), str(out_mk), "--quiet", "--no-copy-tokenizer"])
        diff, frac, only_ours = compare(out_ours, out_mk)
        n_ours, n_mk = len(tensors(out_ours)), len(tensors(out_mk))
        print(
            f"{method:7s} ours     {ours[0]:6.1f} s  {ours[1]:7.0f} MB peak RSS  ({n_ours} tensors)"
        )
        print(
            f"{method:7s} mergekit {peer[0]:6.1f} s  {peer[1]:7.0f} MB peak RSS  ({n_mk} tensors)"
        )
        print(
            f"{method:7s} ratio    time {peer[0] / ours[0]:.2f}x faster, "
            f"memory {peer[1] / ours[1]:.2f}x less; shared tensors: max abs diff {diff:.3g}, "
            f"{frac:.2e} of elements differ"
        )
        if only_ours:
            print(
                f"{method:7s} mergekit's output lacks {len(only_ours)} input tensors: {only_ours}"
            )


if __name__ == "__main__":
    main()
