"""Decoded-image cache: every painting decoded once, resized, stored as uint8 in a memory-mapped .npy.

Keyed by the preprocessing (size, resize policy) and each file's path, size and mtime, so a
changed file or a different image size gets a new cache; later epochs, stages and seeds read
the same array. Built into a temporary file and renamed, with a JSON sidecar written last:
a cache without a matching sidecar is incomplete and is rebuilt, never trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import multiprocessing
import time
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from artlib import atomic
from artlib.train.cachefile import CacheFile, cache_bytes
from artlib.data.images import RESIZE_POLICY, ImageLoadError, load_square
from artlib.log import progress as progress_bar


@dataclass
class ImageCache:
    """A memory-mapped uint8 array [N, size, size, 3] aligned with a list of image paths."""

    array: np.ndarray
    ok: np.ndarray  # bool [N]: decoded successfully (False where loading failed or the row was not requested yet)
    key: str
    path: Path
    errors: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0  # time spent decoding in this call (0 when everything was cached)
    filled: np.ndarray | None = None  # bool [N]: rows decoded so far (successfully or not)


def cache_key(archive: Path, image_paths: list[str], size: int, draft: bool = True) -> str:
    """Hash of the preprocessing and of every file's path, size and modification time."""
    h = hashlib.blake2b(digest_size=10)
    h.update(f"{RESIZE_POLICY}|{size}|draft={draft}|{len(image_paths)}".encode())
    for rel in image_paths:
        try:
            st = os.stat(archive / rel)
            h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{rel}|missing\n".encode())
    return h.hexdigest()


def _decode(args: tuple[int, str, int, bool]) -> tuple[int, np.ndarray | None, str]:
    """Worker: decode one image to a square uint8 array (or report why it failed)."""
    i, path, size, draft = args
    try:
        return i, load_square(path, size, draft=draft), ""
    except ImageLoadError as exc:
        return i, None, f"{exc.reason}: {exc.detail}"


def _pack(mask: np.ndarray) -> str:
    """A boolean mask as compact base64 text (for the JSON sidecar)."""
    return base64.b64encode(np.packbits(mask).tobytes()).decode("ascii")


def _unpack(text: str, n: int) -> np.ndarray:
    """Inverse of :func:`_pack`; raises ValueError when the text does not hold n bits."""
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8))
    if len(bits) < n:
        raise ValueError("filled mask too short")
    return bits[:n].astype(bool)


def open_cache(file: CacheFile, n: int, size: int) -> ImageCache | None:
    """Open an existing cache whose sidecar matches its key; None if absent, incomplete or not trustworthy.

    Rows count as decoded only when the sidecar's ``filled`` mask says so (it is written after their pixels).
    """
    meta = file.meta()
    array = file.open() if meta is not None else None
    if meta is None or array is None:
        return None
    try:
        errors = {int(k): str(v) for k, v in dict(meta.get("errors") or {}).items()}
        filled = _unpack(str(meta.get("filled", "")), n)
    except (ValueError, TypeError, binascii.Error):
        return None
    if array.shape != (n, size, size, 3) or array.dtype != np.uint8 or any(not 0 <= i < n for i in errors):
        return None
    if any(not filled[i] for i in errors):
        return None
    ok = filled.copy()
    ok[list(errors)] = False
    return ImageCache(array=array, ok=ok, key=file.key, path=file.path, errors=errors, filled=filled)


def _write_meta(file: CacheFile, n: int, size: int, draft: bool, filled: np.ndarray, errors: dict[int, str]) -> None:
    """Write the sidecar (atomically, after the pixels it vouches for are flushed)."""
    file.write_meta(n=n, size=size, policy=RESIZE_POLICY, draft=draft, filled=_pack(filled), errors=errors)


def _new_cache(file: CacheFile, n: int, size: int, draft: bool) -> ImageCache:
    """Start an empty cache file (sparse: unfilled rows take no disk) after checking the disk has room."""
    atomic.check_free_space(file.path.parent, cache_bytes((n, size, size, 3), np.uint8), "the image cache",
                            "free space, choose a run_dir on a larger disk, or use a smaller image_size")
    with file.create((n, size, size, 3), np.uint8):
        pass
    _write_meta(file, n, size, draft, np.zeros(n, bool), {})
    cache = open_cache(file, n, size)
    assert cache is not None
    return cache


def build_image_cache(archive: str | os.PathLike[str], image_paths: list[str], size: int, cache_dir: str | os.PathLike[str],
                      workers: int | None = None, progress: bool = True, draft: bool = True,
                      rows: np.ndarray | None = None) -> ImageCache:
    """Return the cache for these images at this size, decoding (in parallel) the requested rows not yet in it.

    One cache file serves every task and stage of a manifest; ``rows`` (default: all) says which
    rows this caller needs, so an emotion-only run never decodes the paintings only genre uses.
    """
    archive, cache_dir = Path(archive), Path(cache_dir)
    key = cache_key(archive, image_paths, size, draft)
    file = CacheFile(cache_dir / f"images_{size}px_{key}.npy", key)
    n = len(image_paths)
    wanted = np.arange(n) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    with file.lock():
        t0 = time.perf_counter()
        cache = open_cache(file, n, size) or _new_cache(file, n, size, draft)
        assert cache.filled is not None
        todo = wanted[~cache.filled[wanted]]
        if len(todo) == 0:
            return cache
        errors, filled = dict(cache.errors), cache.filled.copy()
        out = file.open(writable=True)
        assert out is not None
        _decode_into(out, [(int(i), str(archive / image_paths[i]), size, draft) for i in todo], errors, workers,
                     progress, size)
        out.flush()
        del out
        filled[todo] = True
        _write_meta(file, n, size, draft, filled, errors)
        cache = open_cache(file, n, size)
        assert cache is not None
        cache.seconds = time.perf_counter() - t0
        return cache


POOL_FROM = 64  # images: fewer are decoded in this process (starting processes would cost more than it saves)
POOL_CHUNK = 8  # images handed to a decoding process at a time


def uses_pool(workers: int, images: int) -> bool:
    """Whether this many images are decoded by a pool of ``workers`` processes (else in this process)."""
    return workers > 1 and images >= POOL_FROM


def _decode_into(out: np.ndarray, jobs: list[tuple[int, str, int, bool]], errors: dict[int, str],
                 workers: int | None, progress: bool, size: int) -> None:
    """Decode the jobs into ``out`` (worker processes where :func:`uses_pool`), recording failures in ``errors``."""
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    bar = progress_bar(total=len(jobs), desc=f"caching images at {size}px", unit="img", enabled=progress)
    if uses_pool(n_workers, len(jobs)):
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=pool_context()) as pool:
            for i, arr, err in pool.map(_decode, jobs, chunksize=POOL_CHUNK):
                _store(out, i, arr, err, errors)
                bar.update()
    else:
        for job in jobs:
            _store(out, *_decode(job), errors)
            bar.update()
    bar.close()


def pool_context() -> multiprocessing.context.BaseContext:
    """fork on Linux (as torch's DataLoader does; workers only run Pillow), the platform default elsewhere.

    spawn/forkserver would re-import the caller's main module, which breaks unguarded scripts.
    """
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _store(out: np.ndarray, i: int, arr: np.ndarray | None, err: str, errors: dict[int, str]) -> None:
    """Put one decoded image into the array, or record its error (its slot stays zero)."""
    if arr is None:
        errors[i] = err
    else:
        out[i] = arr
