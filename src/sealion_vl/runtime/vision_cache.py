"""Vision-encoder outputs kept across requests, so the next turn about an image is cheap.

A chat about a photo sends the same image with every turn; without a cache the vision tower
runs again each time (on a real 4B model, most of a short turn's prefill). Entries are keyed
by the hash of the processed pixels (:func:`sealion_vl.families.inference.tensor_key`), so a
processor setting that changes pixels is a different entry, and evicted least recently used
first once their bytes pass the budget.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class VisionCache:
    """An LRU map from image key to encoded features, bounded in bytes.

    Args:
        max_bytes: budget; 0 switches the cache off (every image is encoded each time).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str):
        """The features stored under ``key``, or None (counted as a miss)."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: str, value, nbytes: int) -> None:
        """Store ``value``; entries larger than the whole budget are not kept."""
        if nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            self._items[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes:
                _, (_, n) = self._items.popitem(last=False)
                self._bytes -= n

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def stats(self) -> dict:
        """Entries, bytes held, hits and misses since the start."""
        with self._lock:
            return {
                "entries": len(self._items),
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
                "hits": self.hits,
                "misses": self.misses,
            }
