"""Sources -> normalised records: JSONL, WebDataset tar shards and HF ``datasets``.

Each reader streams one source as :mod:`sealion_vl.data.records` dicts and never decodes an
image; :func:`open_source` checks a whole ``iter_samples`` source up front (so a missing file
raises at call time, not mid-epoch) and returns one lazy thunk per part. Relative image paths
resolve against ``image_root`` or else the JSONL's (dataset's) folder.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from sealion_vl.data.records import IMAGE_KEYS, TEXT_KEYS, SkipRecord, error_record, normalise
from sealion_vl.media import MediaLimits

_IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
_JSONL_EXTS = (".jsonl", ".jsonl.gz")
_TAR_EXTS = (".tar", ".tar.gz", ".tgz")
_HF_FILES = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}


def _path_resolver(root: Path) -> Callable[[str], str]:
    return lambda p: str(root / os.path.expanduser(p))


# --------------------------------------------------------------------------- readers


def read_jsonl(
    path: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    kind: str = "auto",
    caption_prompt: str = "",
) -> Iterator[dict]:
    """Stream a ``.jsonl`` / ``.jsonl.gz`` file as normalised records, one line at a time.

    Args:
        path: The file. Blank lines are ignored; lines that are not JSON objects, and a
            truncated gzip tail, come out as ``bad_record`` error records.
        image_root: Folder relative image paths start from (default: the file's folder).
        kind: ``"auto"``, ``"caption"`` or ``"conversation"`` (others become ``bad_record``).
        caption_prompt: User text put after the image in caption samples.

    Returns:
        An iterator of ``{"id", "kind", "messages", "meta"}`` or ``{"id", "error", "detail",
        "meta"}`` dicts; images are resolved to absolute paths but not opened.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSONL file {str(path)!r} does not exist.")
    resolve = _path_resolver(Path(image_root) if image_root else path.parent.resolve())
    return _jsonl_records(path, resolve, kind, caption_prompt)


def _jsonl_records(path: Path, resolve, kind: str, prompt: str) -> Iterator[dict]:
    line_no = 0
    try:
        with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as fh:
            for line_no, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                meta = {"source": str(path), "line": line_no}
                fallback = f"{path.name}:{line_no}"
                try:
                    record = json.loads(raw)
                except ValueError as exc:  # includes UnicodeDecodeError
                    yield error_record(fallback, "bad_record", f"invalid JSON: {exc}", meta)
                    continue
                yield normalise(record, fallback, meta, kind, prompt, resolve)
    except (OSError, EOFError, zlib.error) as exc:
        detail = f"file unreadable after line {line_no}: {exc}"
        yield error_record(
            f"{path.name}:{line_no + 1}", "bad_record", detail, {"source": str(path)}
        )


def split_key(name: str) -> tuple[str, str]:
    """WebDataset convention: the key runs to the first dot of the base name.

    ``dir/KEY.ext.ext2`` -> (``dir/KEY``, ``ext.ext2``); the SEA filter groups tar members
    with it too.
    """
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def read_tar(
    path: str | os.PathLike,
    *,
    kind: str = "auto",
    caption_prompt: str = "",
    limits: MediaLimits | None = None,
) -> Iterator[dict]:
    """Stream a WebDataset shard (``.tar``, ``.tar.gz``) as normalised records.

    Members are grouped by key: ``KEY.jpg|jpeg|png|webp`` (several as ``KEY.0.jpg``,
    ``KEY.1.jpg``...) with ``KEY.txt`` (the caption) and/or ``KEY.json`` (caption and meta,
    or a conversation with ``"messages"`` whose placeholders take the images in order). The
    shard is read once, front to back (``mode="r|*"``), so it may be a pipe or a huge file;
    a truncated shard ends with a ``bad_record`` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"WebDataset shard {str(path)!r} does not exist.")
    return _tar_records(path, kind, caption_prompt, limits or MediaLimits())


def _tar_records(path: Path, kind: str, prompt: str, limits: MediaLimits) -> Iterator[dict]:
    key, members, count = None, {}, 0
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for info in tar:
                name_key, ext = split_key(info.name)
                if not info.isfile() or name_key.rpartition("/")[2].startswith("."):
                    continue
                if key is not None and name_key != key:
                    yield _tar_sample(path, key, members, kind, prompt)
                    members, count = {}, count + 1
                key = name_key
                fh = tar.extractfile(info)
                too_big = info.size > limits.max_bytes
                members[ext] = None if too_big or fh is None else fh.read()
            # tarfile ends quietly when a shard is cut inside a header; a whole tar ends
            # with two zero blocks, so at least one must follow the one tarfile consumed.
            if len(tar.fileobj.read(512)) < 512:
                raise tarfile.ReadError("unexpected end of data (no end-of-archive blocks)")
        if key is not None:
            yield _tar_sample(path, key, members, kind, prompt)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        detail = f"shard unreadable after {count} samples: {exc}"
        yield error_record(f"{path.name}:{key}", "bad_record", detail, {"source": str(path)})


def _tar_sample(path: Path, key: str, members: dict, kind: str, prompt: str) -> dict:
    meta = {"source": str(path), "key": key}

    def order(ext: str) -> tuple:
        head = ext.partition(".")[0]
        return (0, int(head), ext) if head.isdigit() else (1, 0, ext)

    image_exts = sorted((e for e in members if e.rpartition(".")[2] in _IMAGE_EXTS), key=order)

    def fail(reason: str, detail: str) -> dict:
        return error_record(key, reason, detail, meta)

    if any(members[e] is None for e in image_exts):
        return fail("corrupt_image", "an image member is over MediaLimits.max_bytes")
    try:
        record = json.loads(members["json"]) if members.get("json") is not None else {}
        text = members["txt"].decode("utf-8") if members.get("txt") is not None else None
    except ValueError as exc:
        return fail("bad_record", f"unreadable .json/.txt member: {exc}")
    if not isinstance(record, dict):
        return fail("bad_record", "the .json member is not an object")
    record.setdefault("__key__", key)
    stem = key.rpartition("/")[2]

    def resolve(ref: str) -> bytes:  # an image named inside the json: "jpg" or "KEY.jpg"
        ext = ref.lower().removeprefix(stem.lower() + ".")
        if members.get(ext) is None:
            raise SkipRecord("missing_image", f"no member {ref!r} under key {key!r}")
        return members[ext]

    if "messages" in record or "conversations" in record:
        record.setdefault("images", [members[e] for e in image_exts])
    else:
        if not image_exts:
            return fail("missing_image", f"no .{'/.'.join(_IMAGE_EXTS)} member for {key!r}")
        record["image"] = members[image_exts[0]]
        if text is not None:
            record["caption"] = text
        elif not any(k in record for k in TEXT_KEYS):
            return fail("bad_record", "neither a .txt nor a caption in .json")
    return normalise(record, key, meta, kind, prompt, resolve)


def read_dataset(
    dataset: Any,
    *,
    split: str = "train",
    image_root: str | os.PathLike | None = None,
    kind: str = "auto",
    caption_prompt: str = "",
    name: str = "",
) -> Iterator[dict]:
    """Stream a ``datasets`` Dataset / IterableDataset (or a split of a *Dict) as records.

    ``Image`` columns are read undecoded (``{"bytes", "path"}``) and decoded later by
    :func:`load_image`, so a corrupt image is a skipped row, not an exception inside
    ``datasets``. A record without a usual image key takes the dataset's single ``Image``
    column as ``image`` or its ``List(Image)`` column as ``images``.
    """
    datasets = _datasets()
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if split not in dataset:
            raise KeyError(f"split {split!r} not in the dataset; it has {sorted(dataset)}")
        dataset = dataset[split]
    image_col, images_col = None, None
    for col, feat in (dataset.features or {}).items():
        if isinstance(feat, datasets.Image):
            image_col = image_col or col
        elif isinstance(getattr(feat, "feature", None), datasets.Image):
            images_col = images_col or col
    name = name or getattr(dataset.info, "dataset_name", None) or "dataset"
    root = Path(image_root) if image_root else Path.cwd()
    if isinstance(dataset, datasets.IterableDataset):
        rows: Iterable[dict] = dataset.decode(False)
    else:
        rows = (r for b in dataset.with_format("arrow").iter(batch_size=64) for r in b.to_pylist())
    return _dataset_records(rows, name, image_col, images_col, root, kind, caption_prompt)


def _dataset_records(rows, name, image_col, images_col, root, kind, prompt) -> Iterator[dict]:
    resolve = _path_resolver(root)
    for index, row in enumerate(rows):
        record = dict(row)
        if image_col and not any(record.get(k) is not None for k in IMAGE_KEYS):
            record["image"] = record.pop(image_col)
        if images_col and "images" not in record:
            record["images"] = record.pop(images_col)
        meta = {"source": name, "index": index}
        yield normalise(record, f"{name}:{index}", meta, kind, prompt, resolve)


# --------------------------------------------------------------------------- sources


def _expand(pattern: str) -> list[Path]:
    """Brace ranges (``shard-{000..009}.tar``, WebDataset style) and globs, sorted."""
    match = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if match:
        lo, hi = match.group(1), match.group(2)
        width = len(lo) if lo.startswith("0") else 0
        return [
            p
            for n in range(int(lo), int(hi) + 1)
            for p in _expand(
                pattern[: match.start()] + str(n).zfill(width) + pattern[match.end() :]
            )
        ]
    if glob.has_magic(pattern):
        return sorted(Path(p) for p in glob.glob(pattern, recursive=True))
    return [Path(pattern)]


def open_source(source: Any, image_root, split, kind, prompt, limits) -> list[Callable]:
    """Check the source now; return thunks that open each part lazily, in order."""
    opts = {"kind": kind, "caption_prompt": prompt}
    if (type(source).__module__ or "").startswith("datasets"):
        return [partial(read_dataset, source, split=split, image_root=image_root, **opts)]
    if isinstance(source, (list, tuple)):
        return [t for s in source for t in open_source(s, image_root, split, kind, prompt, limits)]
    paths = _expand(str(source)) if isinstance(source, str) else [Path(source)]
    if not paths:
        raise FileNotFoundError(f"No file matches {source!r}.")
    thunks: list[Callable] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(
                f"Training data {str(path)!r} does not exist. Pass a .jsonl(.gz) file, .tar "
                "shards, a dataset folder, or a datasets.Dataset (e.g. from load_dataset)."
            )
        files = [path]
        if path.is_dir():
            globs = [f"*{ext}" for ext in _JSONL_EXTS + _TAR_EXTS]
            files = sorted({p for g in globs for p in path.rglob(g) if p.is_file()})
            saved = (path / "dataset_dict.json").exists() or (path / "state.json").exists()
            if saved or not files:  # save_to_disk output, or parquet/csv/arrow for datasets
                ds = _hf_folder(path, split, saved)
                root = image_root or path
                thunks.append(partial(read_dataset, ds, split=split, image_root=root, **opts))
                continue
        for f in files:
            if f.name.endswith(_JSONL_EXTS):
                thunks.append(partial(read_jsonl, f, image_root=image_root, **opts))
            elif f.name.endswith(_TAR_EXTS):
                thunks.append(partial(read_tar, f, limits=limits, **opts))
            elif f.suffix in _HF_FILES:
                ds = _datasets().load_dataset(
                    _HF_FILES[f.suffix], data_files=str(f), split="train", streaming=True
                )
                root = image_root or f.parent
                thunks.append(partial(read_dataset, ds, image_root=root, name=f.name, **opts))
            else:
                raise ValueError(
                    f"Do not know how to read {str(f)!r}: expected .jsonl, .jsonl.gz, .tar, "
                    ".tar.gz, .parquet, .arrow or .csv."
                )
    return thunks


def _datasets():
    import datasets  # optional: only these sources need it

    return datasets


def _hf_folder(path: Path, split: str, saved: bool) -> Any:
    """A ``save_to_disk`` folder, or a folder of parquet/arrow/csv files (streamed)."""
    if saved:
        return _datasets().load_from_disk(str(path))
    if not any(next(path.rglob(f"*{ext}"), None) for ext in _HF_FILES):
        raise ValueError(
            f"No training data in folder {str(path)!r}: expected .jsonl(.gz) or .tar files, "
            "parquet/arrow/csv files, or a datasets save_to_disk folder."
        )
    # Streaming: no Arrow copy of a large parquet folder in the cache, and lazy like the rest.
    ds = _datasets().load_dataset(str(path), streaming=True)
    if split not in ds:
        raise KeyError(f"split {split!r} not in {str(path)!r}; it has {sorted(ds)}")
    return ds[split]
