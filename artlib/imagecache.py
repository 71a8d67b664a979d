"""Decoded-image cache: every painting decoded once, resized, stored as uint8 in a memory-mapped .npy.

Keyed by the preprocessing (size, resize policy) and each file's path, size and mtime, so a
changed file or a different image size gets a new cache; later epochs, stages and seeds read
the same array. Built into a temporary file and renamed, with a JSON sidecar written last:
a cache without a matching sidecar is incomplete and is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from artlib import atomic
from artlib.images import RESIZE_POLICY, ImageLoadError, load_square


@dataclass
class ImageCache:
    """A memory-mapped uint8 array [N, size, size, 3] aligned with a list of image paths."""

    array: np.ndarray
    ok: np.ndarray  # bool [N]: False where the image failed to load when the cache was built
    key: str
    path: Path
    errors: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0  # time spent building (0 when reused)


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


def _meta_path(npy: Path) -> Path:
    """The sidecar JSON of a cache file."""
    return npy.with_suffix(".json")


def open_cache(npy: Path, key: str, n: int, size: int) -> ImageCache | None:
    """Open an existing, complete cache whose sidecar matches ``key``; None if absent or not trustworthy."""
    meta_file = _meta_path(npy)
    if not (npy.is_file() and meta_file.is_file()):
        return None
    try:
        meta = json.loads(meta_file.read_text())
        if not isinstance(meta, dict) or meta.get("key") != key or not meta.get("complete"):
            return None
        array = np.load(npy, mmap_mode="r")
        errors = {int(k): str(v) for k, v in dict(meta.get("errors") or {}).items()}
    except (ValueError, TypeError, OSError, json.JSONDecodeError):
        return None
    if array.shape != (n, size, size, 3) or array.dtype != np.uint8 or any(not 0 <= i < n for i in errors):
        return None
    ok = np.ones(n, dtype=bool)
    ok[list(errors)] = False
    return ImageCache(array=array, ok=ok, key=key, path=npy, errors=errors)


def build_image_cache(archive: str | os.PathLike[str], image_paths: list[str], size: int, cache_dir: str | os.PathLike[str],
                      workers: int | None = None, progress: bool = True, draft: bool = True) -> ImageCache:
    """Return the cache for these images at this size, building it (in parallel) if needed."""
    import time

    from filelock import FileLock

    archive, cache_dir = Path(archive), Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(archive, image_paths, size, draft)
    npy = cache_dir / f"images_{size}px_{key}.npy"
    n = len(image_paths)
    with FileLock(str(npy) + ".lock"):
        found = open_cache(npy, key, n, size)
        if found is not None:
            return found
        t0 = time.perf_counter()
        for stale in cache_dir.glob(f".{npy.name}.*"):
            stale.unlink(missing_ok=True)  # left by a build that was killed
        errors: dict[int, str] = {}
        atomic.check_free_space(cache_dir, n * size * size * 3, "the image cache",
                                "free space, choose a run_dir on a larger disk, or use a smaller image_size")
        with atomic.atomic_path(npy, ".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
            jobs = [(i, str(archive / rel), size, draft) for i, rel in enumerate(image_paths)]
            n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
            bar = tqdm(total=n, desc=f"caching images at {size}px", unit="img", disable=not progress)
            if n_workers > 1 and n >= 64:
                ctx = _pool_context()
                with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
                    for i, arr, err in pool.map(_decode, jobs, chunksize=16):
                        _store(out, i, arr, err, errors)
                        bar.update()
            else:
                for job in jobs:
                    _store(out, *_decode(job), errors)
                    bar.update()
            bar.close()
            out.flush()
            del out
        atomic.write_json(_meta_path(npy), {"key": key, "complete": True, "n": n, "size": size,
                                            "policy": RESIZE_POLICY, "draft": draft, "errors": errors})
        cache = open_cache(npy, key, n, size)
        assert cache is not None
        cache.seconds = time.perf_counter() - t0
        return cache


def _pool_context() -> multiprocessing.context.BaseContext:
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
