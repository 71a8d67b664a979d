"""The lifecycle both caches share: a memory-mapped .npy with a JSON sidecar, built under a file lock.

A cache file is trusted only when its sidecar exists, names the same key and says ``complete``;
the sidecar is written (atomically) after the array it vouches for is flushed. Arrays are built in
a temporary file beside the target (through a memory map, or row by row with :class:`RowWriter`), fsynced
and renamed into place, so a killed build leaves a temporary file (removed by the next build) and never a
half-written cache.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from artlib import atomic


def cache_bytes(shape: tuple[int, ...], dtype: np.dtype | type | str) -> int:
    """The bytes a cache array of this shape and dtype takes as a .npy file (header included): the one formula
    the caches' free-space checks and the plan share."""
    return len(_npy_header(shape, dtype)) + int(np.prod(shape)) * np.dtype(dtype).itemsize


def _npy_header(shape: tuple[int, ...], dtype: np.dtype | type | str) -> bytes:
    """The .npy header (format 1.0, C order) of an array of this shape and dtype."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                  "shape": tuple(int(v) for v in shape)})
    return header.getvalue()


class RowWriter:
    """Writes a new cache array's rows at their offsets (``os.pwrite``; lseek and write where it is missing), asking
    the kernel to start writing each batch to the disk at once (Linux), so the fsync at the end finds little left.

    Against the memory map it replaced for the feature cache (2 cores, 438 images at 112 px, 12 rounds alternating
    with the bare prefix forward), it raised building from 79.0% to 83.1% of the forward's speed (conv4+conv5) and
    from 93.4% to 95.5% (conv5): no page faults between the batches, no 88 MB flush waited for at the end.
    """

    def __init__(self, fd: int, shape: tuple[int, ...], dtype: np.dtype, start: int) -> None:
        """Rows of ``shape[1:]`` and ``dtype``; row 0 at byte ``start`` of the open file ``fd``."""
        self.fd, self.shape, self.dtype, self.start = fd, shape, dtype, start
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def write(self, lo: int, rows: np.ndarray) -> None:
        """Store ``rows`` as rows lo … lo + len(rows) − 1."""
        if rows.shape[1:] != self.shape[1:] or rows.dtype != self.dtype or not 0 <= lo <= self.shape[0] - len(rows):
            raise ValueError(f"rows {lo}…{lo + len(rows) - 1} of {rows.dtype} {rows.shape[1:]} do not fit a cache of "
                             f"{self.dtype} {self.shape}")
        if rows.size == 0:
            return
        data = memoryview(np.ascontiguousarray(rows).reshape(-1).view(np.uint8))
        offset = self.start + lo * self.row_bytes
        atomic.write_at(self.fd, data, offset)
        atomic.start_writeback(self.fd, offset, data.nbytes)


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

    @contextlib.contextmanager
    def create_rows(self, shape: tuple[int, ...], dtype: np.dtype | type) -> Iterator[RowWriter]:
        """Yield a writer for a new array of ``shape``, to be filled row by row; on success it is fsynced and renamed
        onto ``path`` (like :meth:`create`, without a memory map)."""
        self.remove_stale()
        header = _npy_header(shape, dtype)
        with atomic.atomic_path(self.path, ".npy") as tmp:
            fd = os.open(tmp, os.O_WRONLY | getattr(os, "O_BINARY", 0))
            try:
                atomic.write_at(fd, memoryview(header), 0)
                os.ftruncate(fd, cache_bytes(shape, dtype))
                yield RowWriter(fd, shape, np.dtype(dtype), len(header))
                os.fsync(fd)  # through this descriptor, so errors of the early write-back are seen here
            finally:
                os.close(fd)

    def write_meta(self, **fields: Any) -> None:
        """Write the sidecar (key, complete, and the caller's fields) atomically, after the array is flushed."""
        atomic.write_json(self.meta_path, {"key": self.key, "complete": True, **fields})
