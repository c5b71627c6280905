"""What goes beside the merged weights: the reference model's config, tokenizer, processor
and chat template, the merge card (README.md) and the resolved config (merge_config.yaml)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import torch
import yaml

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".msgpack", ".h5")
_SKIP = {
    "README.md",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "merge_config.yaml",
}
_TOKENIZER_FILES = ("tokenizer", "special_tokens_map", "added_tokens", "vocab", "merges")


def copy_support_files(
    src: Path, dst: Path, cfg, inputs: dict, out_dtype: torch.dtype | None
) -> None:
    """Copy every non-weight file of the reference checkpoint; apply ``tokenizer_source``,
    ``chat_template`` and the output dtype."""
    for p in sorted(src.iterdir()):
        if (
            p.is_file()
            and not p.name.startswith(".")
            and p.name not in _SKIP
            and not p.name.endswith(_WEIGHT_SUFFIXES)
        ):
            shutil.copy2(p, dst / p.name)
    if cfg.tokenizer_source not in (None, "base"):
        tok_src = inputs[cfg.tokenizer_source].folder if cfg.tokenizer_source in inputs else None
        if tok_src is None:
            from sealion_vl.merge.config import MergeError

            raise MergeError(
                f"tokenizer_source {cfg.tokenizer_source!r} is not one of the merged models"
            )
        for p in tok_src.iterdir():
            if p.is_file() and p.name.startswith(_TOKENIZER_FILES):
                shutil.copy2(p, dst / p.name)
    if cfg.chat_template:
        (dst / "chat_template.jinja").write_text(cfg.chat_template, encoding="utf-8")
        (dst / "chat_template.json").unlink(missing_ok=True)
        tc = dst / "tokenizer_config.json"
        if tc.is_file():
            data = json.loads(tc.read_text())
            if "chat_template" in data:
                data["chat_template"] = cfg.chat_template
                tc.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    config = dst / "config.json"
    if out_dtype is not None and config.is_file():
        data = json.loads(config.read_text())
        name = str(out_dtype).removeprefix("torch.")

        def set_dtype(d: dict) -> None:
            for k in ("dtype", "torch_dtype"):
                if k in d:
                    d[k] = name
            for v in d.values():
                if isinstance(v, dict):
                    set_dtype(v)

        data.setdefault("dtype", name)
        set_dtype(data)
        config.write_text(json.dumps(data, indent=2) + "\n")


def resolved(cfg, folders: dict[str, str], family: str, rules: dict, n_tensors: int) -> dict:
    """The config as run: the user's keys, plus where each model came from and which
    method made how many tensors."""
    made = Counter(f"keep {r.keep}" if r.keep else r.method for r in rules.values())
    return {
        **cfg.model_dump(
            mode="json",
            exclude_none=True,
            exclude={"layer_range"} if cfg.layer_range is None else set(),
        ),
        "resolved": {
            "family": family,
            "reference_model": cfg.reference_model(),
            "model_folders": folders,
            "tensors": n_tensors,
            "tensors_by_method": dict(made),
        },
    }


def write_card(
    dst: Path, cfg, folders: dict[str, str], family: str, rules: dict, n_tensors: int
) -> None:
    """README.md (a model card naming the parents and the method) and merge_config.yaml."""
    res = resolved(cfg, folders, family, rules, n_tensors)
    text = yaml.safe_dump(res, sort_keys=False, allow_unicode=True)
    (dst / "merge_config.yaml").write_text(text, encoding="utf-8")
    parents = cfg.all_models()
    front = yaml.safe_dump(
        {
            "base_model": parents,
            "library_name": "transformers",
            "pipeline_tag": "image-text-to-text",
            "tags": ["merge", "sealion-vl"],
        },
        sort_keys=False,
    )
    per_module = ""
    if cfg.modules:
        rows = "\n".join(
            f"| {m} | {'keep ' + c.keep if c.keep else (c.merge_method or cfg.merge_method)} |"
            for m, c in cfg.modules.items()
        )
        per_module = f"\n| module | made by |\n|---|---|\n{rows}\n"
    body = (
        f"---\n{front}---\n\n# {dst.name.split('.partial-')[0].lstrip('.')}\n\n"
        f"A merge of {len(parents)} {family} checkpoints made with `sealion-vl merge` "
        f"({cfg.merge_method}"
        + (f", base {cfg.base_model}" if cfg.base_model else "")
        + f"): {', '.join(parents)}.\n{per_module}\n"
        f"All {n_tensors} tensors of every input were matched one to one.\n\n"
        "## Configuration (resolved)\n\n```yaml\n" + text + "```\n"
    )
    (dst / "README.md").write_text(body, encoding="utf-8")
