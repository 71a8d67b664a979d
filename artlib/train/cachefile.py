"""The lifecycle both caches share: a memory-mapped .npy with a JSON sidecar, built under a file lock.

A cache file is trusted only when its sidecar exists, names the same key and says ``complete``;
the sidecar is written (atomically) after the array it vouches for is flushed. Arrays are built in
a temporary file beside the target and renamed into place, so a killed build leaves a temporary
file (removed by the next build) and never a half-written cache.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from artlib import atomic


def cache_bytes(shape: tuple[int, ...], dtype: np.dtype | type | str) -> int:
    """The bytes a cache array of this shape and dtype takes as a .npy file (header included): the one formula
    the caches' free-space checks and the plan share."""
    dtype = np.dtype(dtype)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype.str, "fortran_order": False,
                                                  "shape": tuple(int(v) for v in shape)})
    return len(header.getvalue()) + int(np.prod(shape)) * dtype.itemsize


class CacheFile:
    """One cache array at ``path`` (``.npy``) with its sidecar ``path.with_suffix('.json')``, for one key."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = Path(path), key
        self.meta_path = self.path.with_suffix(".json")

    def lock(self) -> FileLock:
        """The inter-process lock every reader and builder of this cache holds."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path) + ".lock")

    def meta(self) -> dict[str, Any] | None:
        """The sidecar when it is complete and for this key; None when absent, damaged or for another key."""
        if not (self.path.is_file() and self.meta_path.is_file()):
            return None
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("key") != self.key or not meta.get("complete"):
            return None
        return meta

    def open(self, writable: bool = False) -> np.ndarray | None:
        """The array, memory-mapped (read-only unless ``writable``); None when it cannot be read."""
        try:
            return np.load(self.path, mmap_mode="r+" if writable else "r")
        except (OSError, ValueError):
            return None

    def remove_stale(self) -> None:
        """Delete temporary files a killed build left beside the cache."""
        for stale in self.path.parent.glob(f".{self.path.name}.*"):
            stale.unlink(missing_ok=True)

    @contextlib.contextmanager
    def create(self, shape: tuple[int, ...], dtype: np.dtype | type) -> Iterator[np.ndarray]:
        """Yield a new writable array of ``shape``; on success it is flushed and renamed onto ``path``."""
        self.remove_stale()
        with atomic.atomic_path(self.path, ".npy") as tmp:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            yield array
            array.flush()
            del array

    def write_meta(self, **fields: Any) -> None:
        """Write the sidecar (key, complete, and the caller's fields) atomically, after the array is flushed."""
        atomic.write_json(self.meta_path, {"key": self.key, "complete": True, **fields})
