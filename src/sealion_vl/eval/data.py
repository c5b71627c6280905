"""Dataset access for evaluation tasks: the Hugging Face hub (cached) or a local copy.

Both ways go through ``datasets.load_dataset`` so a local snapshot and the hub give the same
rows, in the same order, with the same features. A local copy lives at
``<data_dir>/<owner>/<name>/``, laid out as ``huggingface-cli download --repo-type dataset
--local-dir`` writes it (parquet files, config subfolders, the README's ``configs:`` block).
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

from sealion_vl.errors import EvalDataError


def local_root(path: str, data_dir: Path | None) -> Path | None:
    """Where the local copy of the hub dataset ``path`` would be under ``data_dir`` (or None)."""
    if data_dir is None:
        return None
    return Path(data_dir).expanduser() / path


_DATA_SUFFIXES = {".parquet", ".arrow", ".json", ".jsonl", ".csv", ".md", ".txt"}


def _local_cache_dir(root: Path) -> Path:
    """A ``datasets`` cache folder private to this exact local copy (path + file stats).

    Why: ``datasets`` names the cache of a local folder by the folder's name and data-file
    names, so two copies of the same repo (or one rewritten in place) would share a stale
    cache and return the other's rows.
    """
    import datasets

    h = hashlib.sha256(str(root.resolve()).encode())
    for p in sorted(root.rglob("*")):
        if p.suffix in _DATA_SUFFIXES and p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return Path(datasets.config.HF_DATASETS_CACHE) / "sealion_vl_local" / h.hexdigest()[:20]


def _how_to_get(path: str, data_dir: Path | None) -> str:
    where = local_root(path, data_dir) or Path("<data-dir>") / path
    return (
        f"get it with `huggingface-cli download --repo-type dataset {path} --local-dir {where}` "
        f"and pass --data-dir, or run once online so the Hugging Face cache holds it"
    )


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def get_path(doc: dict, path: str) -> Any:
    """Read ``a.b[0].c`` from a row; a missing step gives None (the caller decides)."""
    cur: Any = doc
    for key, idx in _PATH_TOKEN.findall(path):
        if cur is None:
            return None
        if key:
            cur = cur.get(key) if isinstance(cur, dict) else None
        else:
            i = int(idx)
            cur = cur[i] if isinstance(cur, (list, tuple)) and -len(cur) <= i < len(cur) else None
    return cur


def json_safe(value: Any) -> Any:
    """A row made JSON-serialisable: bytes (images) dropped, numpy values made plain."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items() if not isinstance(v, bytes)}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return json_safe(value.tolist())
    if isinstance(value, bytes):
        return None
    return str(value)


def load_rows(
    path: str,
    config: str | None,
    split: str,
    *,
    data_dir: Path | None = None,
    image_columns: list[str] | tuple[str, ...] = (),
) -> Any:
    """Load one split as a ``datasets.Dataset``, image columns left as encoded bytes.

    Why both places: evaluation must run offline (CI, air-gapped boxes) from a plain folder,
    and also straight from the hub cache for users who have it. The local copy wins when it
    exists; otherwise the hub is asked (``HF_HUB_OFFLINE=1`` makes that cache-only).
    Image columns are cast to ``Image(decode=False)`` so SEA-HELM's raw bytes are kept.
    """
    import datasets

    root = local_root(path, data_dir)
    source = str(root) if root is not None and root.is_dir() else path
    try:
        if source == path:
            ds = datasets.load_dataset(source, config, split=split)
        else:  # a private cache per copy (see _local_cache_dir)
            ds = datasets.load_dataset(
                source, config, split=split, cache_dir=str(_local_cache_dir(Path(source)))
            )
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear message
        looked = []
        if root is not None:
            looked.append(f"local copy {root} ({'present' if root.is_dir() else 'missing'})")
        looked.append(f"Hugging Face hub/cache {path!r}")
        raise EvalDataError(
            f"dataset {path!r} (config {config!r}, split {split!r}) could not be loaded; "
            f"looked at: {'; '.join(looked)}. {_how_to_get(path, data_dir)}. "
            f"Cause: {type(exc).__name__}: {exc}"
        ) from exc
    for col in image_columns:
        if col in ds.column_names:
            ds = ds.cast_column(col, datasets.Image(decode=False))
    return ds


def dataset_root(path: str, *, data_dir: Path | None = None) -> Path:
    """The folder holding the dataset repo's files (for datasets that refer to files by path).

    WorldCuisines' rows name their image by a path inside the repo; SEA-HELM resolves it
    against ``snapshot_download``'s folder, so we do the same (or against the local copy).
    """
    root = local_root(path, data_dir)
    if root is not None and root.is_dir():
        return root
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=path, repo_type="dataset"))
    except Exception as exc:  # noqa: BLE001
        raise EvalDataError(
            f"files of dataset {path!r} not found: local copy "
            f"{root if root is not None else '(no --data-dir)'} and the Hugging Face cache were "
            f"looked at. {_how_to_get(path, data_dir)}. Cause: {type(exc).__name__}: {exc}"
        ) from exc


def image_bytes(value: Any, *, base: Path | None = None) -> bytes | None:
    """Encoded image bytes from a ``datasets`` image cell ({bytes, path}), bytes, a path, or
    a base64 ``data:`` URL (how a replies file carries images: JSON has no bytes)."""
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("data:"):
        return _data_url_bytes(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
        if not value:
            return None
    if isinstance(value, (str, Path)):
        p = Path(value)
        if not p.is_absolute() and base is not None:
            p = base / p
        return p.read_bytes()
    if hasattr(value, "save"):  # a PIL image
        buf = io.BytesIO()
        value.save(buf, format=getattr(value, "format", None) or "PNG")
        return buf.getvalue()
    raise EvalDataError(f"not an image cell: {type(value).__name__}")


def _data_url_bytes(url: str) -> bytes:
    import base64
    import binascii

    head, _, payload = url.partition(",")
    if not head.endswith(";base64"):
        raise EvalDataError(f"image data URL {head[:40]!r}...: only base64 data URLs are read")
    try:
        return base64.b64decode(payload, validate=True)
    except binascii.Error as e:
        raise EvalDataError(f"image data URL: bad base64 ({e})") from None


def reencode_jpeg(data: bytes) -> bytes:
    """Decode and save as JPEG (PIL defaults), as SEA-HELM does for images it holds decoded.

    SEA-HELM quirk: WorldCuisines images are decoded by ``datasets`` and re-saved with
    ``PIL.Image.save(format="JPEG")`` (RGBA converted to RGB first) before being sent, so the
    model never sees the original file's bytes. Other modes PIL cannot write as JPEG (P, LA)
    would crash SEA-HELM; we convert them to RGB instead.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode not in ("RGB", "L", "CMYK"):
            im = im.convert("RGB")
        buf = io.BytesIO()
        im.save(buf, format="JPEG")
        return buf.getvalue()


def seeded_positions(n: int, rng: Any) -> list[int]:
    """Where the correct option goes for ``n`` rows of one prompt type (SEA-HELM's scheme).

    SEA-HELM shuffles ``[0, 1, 2, 3, 4] * (n // 5)`` with its generator, which crashes when
    ``n`` is not a multiple of 5 (the list is shorter than the rows). We shuffle
    ``[0..4] * ceil(n / 5)`` and keep the first ``n``: identical to SEA-HELM whenever it
    works, and a balanced-as-possible answer position otherwise. Note the longer list draws
    more from the shared generator, so later prompt types differ from what a (crashing)
    SEA-HELM would have drawn; there is no SEA-HELM number to match in that case.
    """
    positions = [0, 1, 2, 3, 4] * -(-n // 5)
    rng.shuffle(positions)  # a Python list, as SEA-HELM: the same draws as its shuffle
    return positions[:n]


def reorder_world_cuisines(rows: list[dict], prompt_types: list[int], seed: int) -> list[dict]:
    """SEA-HELM's WorldCuisines loader transform, on plain rows.

    Per prompt type in the given order (task1: 1, 3, 4; task2: 2), that type's rows in dataset
    order get new answer positions from ONE ``numpy.random.default_rng(seed)`` shared across
    the types; the correct option is popped and re-inserted there and ``mcq_answer_index``
    updated. Rows of other prompt types are dropped; the result is grouped by prompt type.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    out: list[dict] = []
    for ptype in prompt_types:
        subset = [r for r in rows if r.get("prompt_type") == ptype]
        for row, idx in zip(subset, seeded_positions(len(subset), rng), strict=True):
            options = list(row["options"])
            correct = options.pop(row["mcq_answer_index"])
            options.insert(idx, correct)
            out.append({**row, "options": options, "mcq_answer_index": idx})
    return out


def world_cuisines_docs(
    task: Any, lang: str, *, data_dir: Path | None = None, limit: int | None = None
) -> list[dict]:
    """WorldCuisines rows as SEA-HELM's loader leaves them, with the image as JPEG bytes.

    Order of operations as SEA-HELM: language filter, ``limit`` on the raw rows, label check
    (ours: a bad ``mcq_answer_index`` is refused before it could be moved), re-ordering, then
    the image at ``image_path`` (relative to the dataset repo's folder) read and re-encoded.
    """
    rows = task.default_load_docs(lang, data_dir=data_dir, limit=limit)
    task.validate(rows, lang)
    params = task.spec.params
    rows = reorder_world_cuisines(rows, list(params["prompt_types"]), int(params["seed"]))
    if rows:
        base = dataset_root(task.source(lang).path, data_dir=data_dir)
        for row in rows:
            path = base / row["image_path"]
            if not path.is_file():
                raise EvalDataError(
                    f"task {task.name!r} [{lang}]: image {row['image_path']!r} of row "
                    f"{row.get('qa_id')!r} not found under {base} (SEA-HELM expects the repo's "
                    f"image archive downloaded and extracted there)"
                )
            row["image"] = reencode_jpeg(path.read_bytes())
    return rows
