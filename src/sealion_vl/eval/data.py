"""Dataset access for evaluation tasks: the Hugging Face hub (cached) or a local copy.

Both ways go through ``datasets.load_dataset`` so a local snapshot and the hub give the same
rows, in the same order, with the same features. A local copy lives at
``<data_dir>/<owner>/<name>/``, laid out as ``huggingface-cli download --repo-type dataset
--local-dir`` writes it (parquet files, config subfolders, the README's ``configs:`` block).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from sealion_vl.errors import EvalDataError


def local_root(path: str, data_dir: Path | None) -> Path | None:
    """Where the local copy of the hub dataset ``path`` would be under ``data_dir`` (or None)."""
    if data_dir is None:
        return None
    return Path(data_dir).expanduser() / path


def _how_to_get(path: str, data_dir: Path | None) -> str:
    where = local_root(path, data_dir) or Path("<data-dir>") / path
    return (
        f"get it with `huggingface-cli download --repo-type dataset {path} --local-dir {where}` "
        f"and pass --data-dir, or run once online so the Hugging Face cache holds it"
    )


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
        ds = datasets.load_dataset(source, config, split=split)
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
    """Encoded image bytes from a ``datasets`` image cell ({bytes, path}), bytes or a path."""
    if value is None:
        return None
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
