"""Streaming safetensors: read one tensor at a time, write shards one tensor at a time.

Why by hand rather than ``safetensors.safe_open`` / ``save_file``: ``safe_open`` memory-maps
the shards, and every page a merge touches stays counted in the process's resident memory
until the kernel evicts it, so a merge of two 27B checkpoints would look (and, under memory
pressure, behave) like it holds both; ``save_file`` needs the whole state dict. Here a
tensor is read with one ``readinto`` into its own buffer and freed after use, and output
shards are written from a header planned up front (shapes and dtypes are known before any
tensor is merged), so memory is bounded by the few tensors in flight. The format is the
documented safetensors layout: 8-byte little-endian header length, JSON header, raw data.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
_NAMES = {v: k for k, v in _DTYPES.items()}
INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: its shard, byte range in the data section, shape and dtype."""

    name: str
    file: Path
    start: int  # absolute file offset of the first byte
    nbytes: int
    shape: tuple[int, ...]
    dtype: torch.dtype


def read_header(path: Path) -> dict[str, TensorInfo]:
    """The tensors of one ``.safetensors`` file, without reading their data."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path} is not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw)
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{path} is not a safetensors file (bad header)") from None
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {meta['dtype']}")
        a, b = meta["data_offsets"]
        out[name] = TensorInfo(
            name, path, 8 + n + a, b - a, tuple(meta["shape"]), _DTYPES[meta["dtype"]]
        )
    return out


class CheckpointReader:
    """The weights of one checkpoint folder: sharded (with an index) or a single file.

    Attributes:
        folder: the checkpoint folder.
        tensors: name -> :class:`TensorInfo`, in file then offset order.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        index = self.folder / INDEX
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = sorted(set(weight_map.values()))
        else:
            files = sorted(p.name for p in self.folder.glob("*.safetensors"))
            weight_map = None
        if not files:
            raise FileNotFoundError(
                f"{self.folder} holds no .safetensors weights (sealion-vl merges safetensors "
                "checkpoints; convert .bin ones with transformers' save_pretrained)"
            )
        found: dict[str, TensorInfo] = {}
        for name in files:
            path = self.folder / name
            if not path.is_file():
                raise FileNotFoundError(f"{index} names shard {name}, which is missing")
            found.update(read_header(path))
        if weight_map is not None:
            absent = sorted(set(weight_map) - set(found))
            if absent:
                raise ValueError(f"{index} lists tensors no shard holds: {', '.join(absent[:20])}")
        self.tensors = dict(sorted(found.items(), key=lambda kv: (kv[1].file.name, kv[1].start)))

    def read(self, name: str) -> torch.Tensor:
        """One tensor, read into its own (non-mapped) buffer."""
        info = self.tensors[name]
        flat = torch.empty(info.nbytes, dtype=torch.uint8)
        with open(info.file, "rb") as f:
            f.seek(info.start)
            if info.nbytes and f.readinto(memoryview(flat.numpy())) != info.nbytes:
                raise ValueError(f"{info.file}: tensor {name} is truncated")
        return flat.view(info.dtype).reshape(info.shape)


def parse_size(size: str | int) -> int:
    """``"5GB"``, ``"500MB"``, ``"2GiB"`` or a byte count -> bytes."""
    if isinstance(size, int):
        return size
    text = size.strip().upper()
    units = {
        "KIB": 2**10,
        "MIB": 2**20,
        "GIB": 2**30,
        "KB": 10**3,
        "MB": 10**6,
        "GB": 10**9,
        "B": 1,
    }
    for unit, mult in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * mult)
    return int(text)


def _nbytes(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    n = 1
    for d in shape:
        n *= d
    return n * torch.empty(0, dtype=dtype).element_size()


class ShardedWriter:
    """Writes planned tensors, in plan order, into ``model-0000i-of-0000n.safetensors`` shards.

    Args:
        folder: where the shards and ``model.safetensors.index.json`` go.
        plan: (name, shape, dtype) for every tensor, in the order they will be written.
        max_shard_size: bytes per shard at most (a larger single tensor gets its own shard).
    """

    def __init__(
        self,
        folder: Path,
        plan: list[tuple[str, tuple[int, ...], torch.dtype]],
        max_shard_size: int,
    ):
        self.folder = Path(folder)
        shards: list[list[tuple[str, tuple[int, ...], torch.dtype, int]]] = [[]]
        size = 0
        for name, shape, dtype in plan:
            nb = _nbytes(shape, dtype)
            if shards[-1] and size + nb > max_shard_size:
                shards.append([])
                size = 0
            shards[-1].append((name, shape, dtype, nb))
            size += nb
        n = len(shards)
        self.files = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        self.shards = shards
        self.total = sum(nb for s in shards for *_, nb in s)
        self._queue = [(i, e) for i, s in enumerate(shards) for e in s]
        self._pos = 0
        self._shard = -1
        self._fh = None

    def _open(self, i: int) -> None:
        if self._fh:
            self._fh.close()
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, dtype, nb in self.shards[i]:
            header[name] = {
                "dtype": _NAMES[dtype],
                "shape": list(shape),
                "data_offsets": [off, off + nb],
            }
            off += nb
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # the format aligns the data section to 8 bytes
        self._fh = open(self.folder / self.files[i], "wb")
        self._fh.write(struct.pack("<Q", len(raw)) + raw)
        self._shard = i

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write the next planned tensor (must come in plan order, with the planned shape
        and dtype)."""
        i, (want, shape, dtype, nb) = self._queue[self._pos]
        if name != want or tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise RuntimeError(
                f"writer expected {want} {shape} {dtype}, "
                f"got {name} {tuple(tensor.shape)} {tensor.dtype}"
            )
        if i != self._shard:
            self._open(i)
        data = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
        self._fh.write(memoryview(data.numpy()))
        self._pos += 1

    def close(self) -> None:
        """Finish the last shard and write the index; every planned tensor must be written."""
        if self._fh:
            self._fh.close()
            self._fh = None
        if self._pos != len(self._queue):
            missing = [e[0] for _, e in self._queue[self._pos :]]
            raise RuntimeError(
                f"merge stopped before writing {len(missing)} tensors: {missing[:10]}"
            )
        weight_map = {e[0]: self.files[i] for i, e in self._queue}
        index = {"metadata": {"total_size": self.total}, "weight_map": weight_map}
        (self.folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")
