"""Frozen-prefix feature cache: compute once what the frozen blocks make of each image.

Without augmentation, every block below the first trainable one is a fixed function of the
image, so its output is computed once (under ``torch.no_grad``, never ``inference_mode``:
those tensors could not enter autograd), stored memory-mapped on disk (fp16 by default) and
training runs only the trainable blocks on it. The key covers the prefix weights (and
normalisation), the image cache, the rows and the storage dtype.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from artlib import atomic
from artlib.models.backbone import ArtNet, autocast


@dataclass
class FeatureCache:
    """Prefix outputs [n_rows, H, W, C] (channels-last, like the images) and the block they enter."""

    array: np.ndarray
    start: str  # the first trainable block: features are its input
    key: str
    path: Path
    seconds: float = 0.0


DTYPES = {"float16": np.float16, "float32": np.float32}


def feature_key(model: ArtNet, start: str, image_key: str, rows: np.ndarray, dtype: str, precision: str) -> str:
    """Cache key: prefix weights, image cache, rows, storage dtype and compute precision."""
    h = hashlib.blake2b(digest_size=10)
    h.update(f"{model.prefix_digest(start)}|{image_key}|{dtype}|{precision}|{start}".encode())
    h.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    return h.hexdigest()


def build_feature_cache(model: ArtNet, images: np.ndarray, rows: np.ndarray, image_key: str,
                        cache_dir: str | Path, device: torch.device, precision: str = "fp32",
                        dtype: str = "float16", batch_size: int = 64, progress: bool = True,
                        check_space: Callable[[Path, int], None] | None = None) -> FeatureCache:
    """Return the prefix features of ``images[rows]``, computing and storing them if not cached.

    ``check_space(cache_dir, bytes)`` is called before a new cache is allocated (never when one is reused).
    """
    from filelock import FileLock

    start = model.first_trainable()
    if start is None or start == "stem":
        raise ValueError("a feature cache needs frozen blocks before the first trainable one")
    if dtype not in DTYPES:
        raise ValueError(f"cache dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = feature_key(model, start, image_key, rows, dtype, precision)
    npy = cache_dir / f"features_{start}_{key}.npy"
    meta_file = npy.with_suffix(".json")
    with FileLock(str(npy) + ".lock"):
        if npy.is_file() and meta_file.is_file():
            try:
                meta = json.loads(meta_file.read_text())
                array = np.load(npy, mmap_mode="r")
                if isinstance(meta, dict) and meta.get("key") == key and meta.get("complete") \
                        and array.shape[0] == len(rows):
                    return FeatureCache(array, start, key, npy)
            except (ValueError, OSError, json.JSONDecodeError):
                pass  # damaged: rebuild below
        t0 = time.perf_counter()
        for stale in cache_dir.glob(f".{npy.name}.*"):
            stale.unlink(missing_ok=True)
        was_training = model.training
        model.eval().to(device)
        out = None
        try:
            with atomic.atomic_path(npy, ".npy") as tmp, torch.no_grad():
                bar = tqdm(total=len(rows), desc=f"caching features below {start}", unit="img", disable=not progress)
                for lo in range(0, len(rows), batch_size):
                    idx = rows[lo: lo + batch_size]
                    x = torch.from_numpy(np.ascontiguousarray(images[np.sort(idx)][np.argsort(np.argsort(idx))]))
                    with autocast(device, precision):
                        f = model.forward_blocks(x.to(device), None, start)
                    f = f.float().permute(0, 2, 3, 1).cpu().numpy().astype(DTYPES[dtype])  # stored NHWC
                    if out is None:
                        if check_space is not None:
                            check_space(cache_dir, int(np.prod(f.shape[1:])) * len(rows) * f.dtype.itemsize)
                        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=DTYPES[dtype], shape=(len(rows), *f.shape[1:]))
                    out[lo: lo + len(idx)] = f
                    bar.update(len(idx))
                bar.close()
                if out is None:
                    raise ValueError("no rows to cache")
                out.flush()
                shape = out.shape
                del out
        finally:
            model.train(was_training)
        atomic.write_json(meta_file, {"key": key, "complete": True, "start": start, "shape": list(shape),
                                      "dtype": dtype, "precision": precision})
        return FeatureCache(np.load(npy, mmap_mode="r"), start, key, npy, seconds=time.perf_counter() - t0)


def cache_bytes(model: ArtNet, start: str, image_size: int, n_rows: int, dtype: str = "float16") -> int:
    """Disk bytes a feature cache will need (to check free space before building it)."""
    was_training = model.training
    with torch.no_grad():
        shape = model.eval().forward_blocks(torch.zeros(1, image_size, image_size, 3, dtype=torch.uint8), None, start).shape
    model.train(was_training)
    return int(np.prod(shape[1:])) * n_rows * np.dtype(DTYPES[dtype]).itemsize


def as_input(block: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Cached NHWC features as the NCHW (channels_last) tensor the next block takes.

    Under bf16 autocast the next block only feeds them to convolutions, which cast to bf16 anyway;
    converting once here (fp16 → bf16 is exact through fp32) saves that work and half the memory traffic.
    """
    return torch.from_numpy(np.array(block)).to(dtype).permute(0, 3, 1, 2)
