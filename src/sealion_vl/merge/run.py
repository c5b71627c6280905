"""``merge``: one config and an output folder in, a merged checkpoint out.

The whole model is never in memory: the plan (which tensors, which method, which shard) is
made from the safetensors headers alone, then each output tensor is read from every input,
merged and written before the next one is read.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from sealion_vl.errors import SealionError
from sealion_vl.families import adapter_for_architecture
from sealion_vl.merge import methods, names
from sealion_vl.merge.card import copy_support_files, write_card
from sealion_vl.merge.config import MergeConfig, MergeError, ModuleChoice, load_config
from sealion_vl.merge.io import CheckpointReader, ShardedWriter, parse_size
from sealion_vl.merge.params import resolve

_TORCH_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


def _listing(items: list[str], limit: int = 20) -> str:
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def resolve_model(ref: str) -> Path:
    """A model reference (folder, catalog name or hub id, optionally ``id@revision``) -> folder."""
    if "+" in ref and not Path(ref).exists():
        raise MergeError(
            f"{ref!r}: LoRA-on-the-fly references (model+lora) are not supported; "
            "merge the adapter into its model first"
        )
    if Path(ref).expanduser().is_dir():
        return Path(ref).expanduser()
    from sealion_vl.runtime.load import resolve

    try:
        repo, revision = (ref.split("@", 1) + [None])[:2] if "@" in ref else (ref, None)
        source, _ = resolve(repo)
        if Path(source).is_dir():
            return Path(source)
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                source,
                revision=revision,
                allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.md"],
            )
        )
    except SealionError as e:
        raise MergeError(f"model {ref!r}: {e}") from None
    except Exception as e:  # hub errors (offline, gated, missing) become one clear message
        raise MergeError(f"model {ref!r} could not be fetched: {e}") from None


@dataclass
class _Input:
    ref: str
    folder: Path
    reader: CheckpointReader
    config: dict
    by_canon: dict[str, str]  # canonical name -> name in this checkpoint


def _open(ref: str) -> _Input:
    folder = resolve_model(ref)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise MergeError(f"model {ref!r} ({folder}) has no config.json")
    try:
        reader = CheckpointReader(folder)
    except (FileNotFoundError, ValueError) as e:
        raise MergeError(f"model {ref!r}: {e}") from None
    by_canon: dict[str, str] = {}
    for n in reader.tensors:
        c = names.canonical(n)
        if c in by_canon:
            raise MergeError(
                f"model {ref!r} holds both {by_canon[c]} and {n} (one tensor in two layouts)"
            )
        by_canon[c] = n
    return _Input(ref, folder, reader, json.loads(cfg_path.read_text()), by_canon)


def _check_family(inputs: list[_Input]):
    archs = {}
    for i in inputs:
        arch = (i.config.get("architectures") or [None])[0]
        if arch is None:
            raise MergeError(f"model {i.ref!r}: config.json names no architectures")
        try:
            adapter, _ = adapter_for_architecture(arch)
        except SealionError as e:
            raise MergeError(f"model {i.ref!r}: {e}") from None
        archs[i.ref] = (arch, adapter)
    if len({a.name for _, a in archs.values()}) > 1 or len({a for a, _ in archs.values()}) > 1:
        desc = "; ".join(f"{r}: {a} ({ad.name})" for r, (a, ad) in archs.items())
        raise MergeError(f"one merge takes checkpoints of one family and architecture; got {desc}")
    return next(iter(archs.values()))[1]


def _match_names(ref: _Input, inputs: list[_Input]) -> dict[str, dict[str, str]]:
    """Per input: canonical name -> its own name, after tied-embedding aliasing; errors on
    anything unmatched."""
    want = set(ref.by_canon)
    out = {}
    problems = []
    for i in inputs:
        have = dict(i.by_canon)
        if names.LM_HEAD in want and names.LM_HEAD not in have and names.EMBED in have:
            have[names.LM_HEAD] = have[names.EMBED]  # tied: its output head is the embedding
        if names.LM_HEAD in have and names.LM_HEAD not in want and i is not ref:
            raise MergeError(
                f"model {i.ref!r} has its own lm_head.weight but the reference {ref.ref!r} ties "
                "it to the embeddings, so the merged head would be lost; make an untied model "
                "the base_model (or first in models:)"
            )
        missing, extra = sorted(want - set(have)), sorted(set(have) - want)
        if missing:
            problems.append(
                f"{i.ref!r} lacks {len(missing)} tensors of {ref.ref!r}: {_listing(missing)}"
            )
        if extra:
            problems.append(
                f"{i.ref!r} has {len(extra)} tensors {ref.ref!r} lacks: {_listing(extra)}"
            )
        out[i.ref] = have
    if problems:
        raise MergeError("the inputs' tensors do not match one to one:\n  " + "\n  ".join(problems))
    return out


def _check_meta(inputs: list[_Input], maps: dict, canon: list[str], cast: bool) -> None:
    bad_shape, bad_dtype = [], []
    for c in canon:
        infos = [(i.ref, i.reader.tensors[maps[i.ref][c]]) for i in inputs]
        shapes = {inf.shape for _, inf in infos}
        if len(shapes) > 1:
            bad_shape.append(
                f"{c} (" + ", ".join(f"{r}: {list(inf.shape)}" for r, inf in infos) + ")"
            )
        dts = {inf.dtype for _, inf in infos}
        if len(dts) > 1 and not (cast and all(d.is_floating_point for d in dts)):
            bad_dtype.append(f"{c} (" + ", ".join(f"{r}: {inf.dtype}" for r, inf in infos) + ")")
    if bad_shape:
        raise MergeError(f"shape mismatch in {len(bad_shape)} tensors: {_listing(bad_shape, 10)}")
    if bad_dtype:
        raise MergeError(
            f"dtype mismatch in {len(bad_dtype)} tensors: {_listing(bad_dtype, 10)}; "
            "set `dtype:` in the config to cast every input to one dtype"
        )


@dataclass
class _Rule:
    method: str | None  # None: keep
    keep: str | None
    choice: ModuleChoice | None


def _rules(cfg: MergeConfig, adapter, canon: list[str]) -> dict[str, _Rule]:
    top = _Rule(cfg.merge_method, None, None)
    if not cfg.modules:
        return dict.fromkeys(canon, top)
    groups = {c: names.group_of(c, adapter.module_groups) for c in canon}
    loose = [c for c, g in groups.items() if g is None]
    if loose:
        raise MergeError(
            f"modules: {len(loose)} tensors belong to none of {adapter.name}'s module groups "
            f"({', '.join(adapter.module_groups)}): {_listing(loose)}"
        )
    out = {}
    for c, g in groups.items():
        ch = cfg.modules.get(g)
        if ch is None:
            out[c] = top
        elif ch.keep:
            out[c] = _Rule(None, ch.keep, ch)
        else:
            out[c] = _Rule(ch.merge_method or cfg.merge_method, None, ch)
    return out


def _check_method(cfg: MergeConfig, method: str, where: str) -> tuple[list[str], int | None]:
    """The inputs (model refs, in order) a method reads, and where the base sits."""
    spec = methods.METHODS[method]
    refs = [m.model for m in cfg.models]
    if method == "linear" and cfg.base_model and cfg.base_model not in refs:
        refs = [cfg.base_model, *refs]  # as mergekit does: the base joins, with a weight
    if spec.needs_base:
        if not cfg.base_model:
            raise MergeError(f"{where}: {method} needs a base_model")
        if cfg.base_model not in refs:
            refs = [cfg.base_model, *refs]
    if spec.exactly_two and len(refs) != 2:
        raise MergeError(
            f"{where}: {method} merges the base with exactly one other model; "
            f"got {len(refs)} inputs"
        )
    if method == "linear" and len(refs) < 1:
        raise MergeError(f"{where}: linear needs models")
    base_index = refs.index(cfg.base_model) if cfg.base_model in refs else None
    return refs, base_index


def _sources(cfg: MergeConfig, choice: ModuleChoice | None, model: str | None) -> list[dict | None]:
    top_model = (
        next((m.parameters for m in cfg.models if m.model == model), None) if model else None
    )
    if choice is None:
        return [top_model, cfg.parameters] if model else [cfg.parameters]
    own = (
        next((m.parameters for m in choice.models or [] if m.model == model), None)
        if model
        else None
    )
    if model:
        return [own, choice.parameters, top_model, cfg.parameters]
    return [choice.parameters, cfg.parameters]


def _merge_one(cfg, rule, c, t, tensors, refs, base_index):
    spec = methods.METHODS[rule.method]
    shared = {
        k: resolve(k, d, _sources(cfg, rule.choice, None), c, t) for k, d in spec.shared.items()
    }
    per_model = []
    for j, r in enumerate(refs):
        if j == base_index and rule.method not in ("linear",):
            per_model.append({})
            continue
        src = _sources(cfg, rule.choice, r)
        per_model.append({k: resolve(k, d, src, c, t, r) for k, d in spec.per_model.items()})
    gens = None
    if rule.method.startswith("dare"):
        gens = [
            torch.Generator().manual_seed(zlib.crc32(f"{cfg.seed}:{c}:{r}".encode())) for r in refs
        ]
    return methods.apply(rule.method, tensors, base_index, shared, per_model, gens)


def _return_freed_buffers() -> None:
    """Make glibc hand large freed buffers straight back to the OS.

    glibc raises its mmap threshold after the first large free, so later tensor-sized
    buffers come from the heap and stay resident after ``del``: a merge's memory would creep
    towards the model size even though only a few tensors are ever live. A fixed threshold
    (1 MiB) keeps every tensor buffer in its own mapping, released on free.
    """
    import ctypes
    import ctypes.util
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, 1 << 20)
        except (OSError, AttributeError):  # not glibc (musl): nothing to tune
            pass


def merge(
    config: MergeConfig | Path | str,
    out: Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
    max_shard_size: str | int = "5GB",
) -> Path:
    """Merge checkpoints of one family as ``config`` says and write the result to ``out``.

    Args:
        config: a :class:`MergeConfig`, or the path of its YAML (mergekit's format plus
            ``modules:``).
        out: the output folder; written to a temporary sibling and renamed when complete.
        progress: show a progress bar.
        overwrite: replace an existing ``out`` (otherwise an existing, non-empty ``out`` is
            an error).
        max_shard_size: largest output shard (``"5GB"``, ``"500MB"`` or bytes).

    Returns:
        ``out``: safetensors shards with ``model.safetensors.index.json``, the reference
        model's config, generation config, tokenizer, processor and chat template, a merge
        card (README.md) and the resolved config (``merge_config.yaml``).

    Raises:
        MergeError: a bad config, mixed families, or tensors that do not match one to one
            (named), in shape or dtype.
    """
    cfg = load_config(config)
    _return_freed_buffers()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MergeError(
            f"{out} exists and is not empty; choose a new folder or overwrite it (--overwrite)"
        )
    inputs = [_open(r) for r in cfg.all_models()]
    by_ref = {i.ref: i for i in inputs}
    ref = by_ref[cfg.reference_model()]
    adapter = _check_family(inputs)
    maps = _match_names(ref, inputs)
    canon = list(ref.by_canon)  # the reference's file order: sequential reads and writes
    _check_meta(inputs, maps, canon, cast=cfg.dtype is not None)
    if cfg.layer_range is not None:
        n = names.language_layers(canon)
        if tuple(cfg.layer_range) != (0, n):
            raise MergeError(
                f"slices: layer_range {list(cfg.layer_range)} does not cover the language model's "
                f"{n} layers ([0, {n}]); sealion-vl merges whole models"
            )
    rules = _rules(cfg, adapter, canon)
    plans = {}
    for rule in {r.method for r in rules.values() if r.method}:
        plans[rule] = _check_method(
            cfg, rule, "modules" if rule != cfg.merge_method else "merge_method"
        )
    ts = names.layer_positions(canon)
    work = _TORCH_DTYPES.get(cfg.dtype) if cfg.dtype else None
    out_dtype = _TORCH_DTYPES.get(cfg.out_dtype or cfg.dtype or "")

    def target(c: str) -> torch.dtype:
        dt = ref.reader.tensors[ref.by_canon[c]].dtype
        return out_dtype if (out_dtype and dt.is_floating_point) else dt

    plan = [(ref.by_canon[c], ref.reader.tensors[ref.by_canon[c]].shape, target(c)) for c in canon]
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        writer = ShardedWriter(tmp, plan, parse_size(max_shard_size))
        with _bar(progress, writer.total) as advance:
            for c in canon:
                rule = rules[c]
                dt = target(c)
                if rule.keep:
                    src = by_ref[rule.keep]
                    result = src.reader.read(maps[src.ref][c])
                else:
                    refs, base_index = plans[rule.method]
                    tensors = [by_ref[r].reader.read(maps[r][c]) for r in refs]
                    same = all(torch.equal(x, tensors[0]) for x in tensors[1:])
                    if same and rule.method != "linear":
                        # identical inputs merge to themselves under every method but
                        # unnormalised linear; this also keeps inf-valued buffers (Gemma 4's
                        # audio clip bounds) from becoming inf - inf = nan
                        result = tensors[0]
                    elif not tensors[0].is_floating_point():
                        if not same:
                            raise MergeError(
                                f"non-float tensor {c} differs between inputs and cannot be merged"
                            )
                        result = tensors[0]
                    else:
                        if work is not None:
                            tensors = [x.to(work) for x in tensors]
                        result = _merge_one(cfg, rule, c, ts[c], tensors, refs, base_index)
                    del tensors
                result = result.to(dt)
                writer.write(ref.by_canon[c], result)
                advance(result.numel() * result.element_size())
                del result
        writer.close()
        copy_support_files(ref.folder, tmp, cfg, by_ref, out_dtype)
        write_card(
            tmp, cfg, {i.ref: str(i.folder) for i in inputs}, adapter.name, rules, len(canon)
        )
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_in(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _bar:
    """A rich progress bar over bytes written (or nothing when disabled)."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self._p = enabled, total, None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            TextColumn("[bold]merge"), BarColumn(), DownloadColumn(), TimeRemainingColumn()
        )
        self._p.start()
        task = self._p.add_task("merge", total=self.total)
        return lambda n: self._p.advance(task, n)

    def __exit__(self, *exc):
        if self._p:
            self._p.stop()
        return False
