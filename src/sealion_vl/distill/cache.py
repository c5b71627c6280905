"""The offline teacher cache: per loss token, the teacher's top-k ids and log-probs.

File layout (one file, little-endian)::

    b"SLVLTOPK" | u32 version | u64 header length | header JSON | zero pad to 64 bytes
    entries: u32[T, k]   each = (token id << logp_bits) | quantised -log p
    tails:   f32[T]      log of the teacher's probability outside the k ids (-inf if none)

Why packed u32 entries rather than int32 ids + float16 log-probs (6 bytes an entry, 388 B a
token at k = 64): a token id needs only ceil(log2 vocab) bits (18 for Gemma's 262,144), and
the rest of the 32 bits hold -log p quantised uniformly on [0, 40] (14 bits for Gemma:
steps of 0.0024 nats, a 0.12 % probability error; finer for smaller vocabularies). So a
token costs 4k + 4 bytes, 260 B at k = 64, under DistillKit's ~300 B. A probability below
e^-40 is stored as e^-40: it changes no loss measurably.

The header holds the teacher, the tokenizer hash, k, the vocabulary sizes, the temperature
and an index: sample id -> (first token, token count, hash of the sample's target tokens),
so a row is read lazily (the arrays are memory-mapped) and a training row whose targets
differ from the cached ones (other data, another tokenizer) is refused rather than misread.
Rows are the loss tokens of one sample, in order; the student's packing never changes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch

from sealion_vl.distill.losses import TopK
from sealion_vl.errors import SealionError

MAGIC = b"SLVLTOPK"
VERSION = 1
LOGP_RANGE = 40.0
_ALIGN = 64


def labels_hash(targets: torch.Tensor) -> str:
    """Fingerprint of a sample's target token ids (its loss tokens, in order)."""
    data = targets.to(torch.int64).numpy().astype("<i8").tobytes()
    return hashlib.sha1(data).hexdigest()[:16]


def id_bits(vocab: int) -> int:
    """Bits a token id needs for ``vocab`` ids."""
    bits = max(1, (vocab - 1).bit_length())
    if bits > 24:
        raise SealionError(f"vocabulary of {vocab} ids is too large for the top-k cache (max 2^24)")
    return bits


class TopKWriter:
    """Appends rows to a new cache; :meth:`close` writes the file atomically.

    Args:
        path: the cache file to create (replaced only when complete).
        header: teacher, tokenizer_hash, k, teacher_vocab, n_vocab, temperature, data...
            (stored as given; ``k`` and ``n_vocab`` decide the layout).
    """

    def __init__(self, path: str | Path, header: dict) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.k = int(header["k"])
        self.id_bits = id_bits(int(header["n_vocab"]))
        self.lp_bits = 32 - self.id_bits
        self.header = {**header, "version": VERSION, "id_bits": self.id_bits}
        self.header.update(lp_bits=self.lp_bits, logp_range=LOGP_RANGE)
        self.rows: dict[str, list] = {}
        self.n_tokens = 0
        self._dir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self._entries = open(self._dir / "entries", "wb")  # noqa: SIM115 - closed in close()
        self._tails = open(self._dir / "tails", "wb")  # noqa: SIM115

    def add(self, row_id: str, topk: TopK, targets: torch.Tensor) -> None:
        """Store one sample's loss tokens: ``topk`` for N tokens, ``targets`` (N,) their labels."""
        if row_id in self.rows:
            self.abort()
            raise SealionError(
                f"sample id {row_id!r} appears twice in the data; the teacher cache keys rows "
                "by id, so ids must be unique"
            )
        n = int(targets.shape[0])
        if topk.ids.shape != (n, self.k):
            self.abort()
            raise SealionError(
                f"row {row_id!r}: top-k of shape {tuple(topk.ids.shape)}, expected ({n}, {self.k})"
            )
        levels = (1 << self.lp_bits) - 1
        q = (-topk.logp.float()).clamp(0, LOGP_RANGE) * (levels / LOGP_RANGE)
        packed = (topk.ids.to(torch.int64) << self.lp_bits) | q.round().to(torch.int64)
        self._entries.write(packed.numpy().astype("<u4").tobytes())
        self._tails.write(topk.log_tail.float().numpy().astype("<f4").tobytes())
        self.rows[row_id] = [self.n_tokens, n, labels_hash(targets)]
        self.n_tokens += n

    def close(self) -> Path:
        """Assemble header + arrays into ``path`` (temporary file, then rename)."""
        self._entries.close()
        self._tails.close()
        header = {**self.header, "n_tokens": self.n_tokens, "bytes_per_token": 4 * self.k + 4}
        header["rows"] = self.rows
        blob = json.dumps(header, ensure_ascii=False).encode()
        tmp = self._dir / "cache"
        with open(tmp, "wb") as out:
            out.write(MAGIC + struct.pack("<IQ", VERSION, len(blob)) + blob)
            out.write(b"\0" * (-out.tell() % _ALIGN))
            for part in ("entries", "tails"):
                with open(self._dir / part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        os.replace(tmp, self.path)
        shutil.rmtree(self._dir, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far (the target file is left as it was)."""
        self._entries.close()
        self._tails.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class TopKCache:
    """A cache file opened for reading: rows and token gathers read the memory map lazily."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SealionError(f"no teacher cache at {str(self.path)!r}")
        with open(self.path, "rb") as f:
            head = f.read(len(MAGIC) + 12)
            if len(head) < len(MAGIC) + 12 or head[: len(MAGIC)] != MAGIC:
                raise SealionError(
                    f"{str(self.path)!r} is not a sealion-vl teacher cache (bad magic); "
                    "delete it or point `cache:` elsewhere"
                )
            version, size = struct.unpack("<IQ", head[len(MAGIC) :])
            if version != VERSION:
                raise SealionError(
                    f"{str(self.path)!r}: cache version {version}, expected "
                    f"{VERSION}; rebuild it (delete the file)"
                )
            self.header: dict = json.loads(f.read(size))
            start = f.tell() + (-f.tell() % _ALIGN)
        self.header_bytes = start
        self.rows: dict[str, list] = self.header.pop("rows")
        self.k = int(self.header["k"])
        self.n_tokens = int(self.header["n_tokens"])
        self.lp_bits = int(self.header["lp_bits"])
        self._entries = (
            np.memmap(self.path, dtype="<u4", mode="r", offset=start, shape=(self.n_tokens, self.k))
            if self.n_tokens
            else np.zeros((0, self.k), "<u4")
        )
        tail_at = start + 4 * self.n_tokens * self.k
        self._tails = (
            np.memmap(self.path, dtype="<f4", mode="r", offset=tail_at, shape=(self.n_tokens,))
            if self.n_tokens
            else np.zeros((0,), "<f4")
        )

    @property
    def bytes_per_token(self) -> float:
        """Bytes the arrays take per cached token (the header excluded)."""
        return 4.0 * self.k + 4.0

    def _decode(self, entries: np.ndarray, tails: np.ndarray) -> TopK:
        e = torch.from_numpy(entries.astype(np.int64))
        levels = (1 << self.lp_bits) - 1
        logp = -(e & levels).to(torch.float32) * (LOGP_RANGE / levels)
        return TopK(e >> self.lp_bits, logp, torch.from_numpy(tails.astype(np.float32)))

    def row(self, row_id: str) -> TopK:
        """The teacher's top-k for one sample's loss tokens."""
        if row_id not in self.rows:
            raise SealionError(f"sample {row_id!r} is not in the teacher cache {self.path}")
        first, n, _ = self.rows[row_id]
        return self._decode(self._entries[first : first + n], self._tails[first : first + n])

    def gather(self, index: torch.Tensor) -> TopK:
        """The top-k of cached tokens ``index`` (global token numbers, any order)."""
        i = index.cpu().numpy()
        if i.size and (i.min() < 0 or i.max() >= self.n_tokens):
            raise SealionError(
                f"a loss token has no teacher entry in {self.path} (index out of range)"
            )
        return self._decode(self._entries[i], self._tails[i])
