"""Frozen-prefix feature cache: compute once what the frozen blocks make of each image.

Without augmentation, every block below the first trainable one is a fixed function of the
image, so its output is computed once (under ``torch.no_grad``, never ``inference_mode``:
those tensors could not enter autograd), written to disk batch by batch (fp16 by default), read back
memory-mapped, and training runs only the trainable blocks on it. The key covers the prefix weights (and
normalisation), the image cache, the rows and the storage dtype.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from artlib.train.cachefile import CacheFile, cache_bytes
from artlib.models.backbone import ArtNet, autocast
from artlib.log import progress as progress_bar


@dataclass
class FeatureCache:
    """Prefix outputs [n_rows, H, W, C] (channels-last, like the images; a ViT's tokens [n_rows, N, D]; pooled
    features [n_rows, D] for a linear probe) and the block they enter."""

    array: np.ndarray
    start: str  # the first trainable block: features are its input
    key: str
    path: Path
    seconds: float = 0.0


DTYPES = {"float16": np.float16, "float32": np.float32, "uint8": np.uint8}
TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32, "uint8": torch.uint8}


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
    start = model.feature_start()
    if start == "stem":
        raise ValueError("a feature cache needs frozen blocks before the first trainable one")
    if dtype not in DTYPES:
        raise ValueError(f"cache dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
    key = feature_key(model, start, image_key, rows, dtype, precision)
    file = CacheFile(Path(cache_dir) / f"features_{start}_{key}.npy", key)
    with file.lock():
        if file.meta() is not None and (array := file.open()) is not None and array.shape[0] == len(rows):
            return FeatureCache(array, start, key, file.path)
        if len(rows) == 0:
            raise ValueError("no rows to cache")
        t0 = time.perf_counter()
        was_training = model.training
        model.eval().to(device)
        try:
            shape = _compute_into(file, model, images, rows, start, device, precision, DTYPES[dtype], batch_size,
                                  progress, check_space)
        finally:
            model.train(was_training)
        file.write_meta(start=start, shape=list(shape), dtype=dtype, precision=precision)
        array = file.open()
        assert array is not None
        return FeatureCache(array, start, key, file.path, seconds=time.perf_counter() - t0)


def _prefix_batch(model: ArtNet, images: np.ndarray, idx: np.ndarray, start: str, device: torch.device,
                  precision: str, dtype: type) -> np.ndarray:
    """The frozen prefix's output for images[idx] (any order): maps NHWC, tokens and pooled features as they are, in
    the storage dtype."""
    x = torch.from_numpy(np.ascontiguousarray(images[np.sort(idx)][np.argsort(np.argsort(idx))]))
    with autocast(device, precision):
        f = model.forward_blocks(x.to(device), None, start)
    f = f.permute(0, 2, 3, 1) if f.dim() == 4 else f  # a channels_last map: already NHWC in memory, no copy
    # converted by torch (vectorised; the same rounding as through float32, measured 5x faster than numpy's astype)
    return f.to(TORCH_DTYPES[np.dtype(dtype).name]).contiguous().cpu().numpy()


def _compute_into(file: CacheFile, model: ArtNet, images: np.ndarray, rows: np.ndarray, start: str,
                  device: torch.device, precision: str, dtype: type, batch_size: int, progress: bool,
                  check_space: Callable[[Path, int], None] | None) -> tuple[int, ...]:
    """Run the prefix over every row in batches into a new cache array; returns its shape."""
    bar = progress_bar(total=len(rows), desc=f"caching features below {start}", unit="img", enabled=progress)
    with torch.no_grad():
        first = _prefix_batch(model, images, rows[:batch_size], start, device, precision, dtype)
        shape = (len(rows), *first.shape[1:])
        if check_space is not None:
            check_space(file.path.parent, cache_bytes(shape, first.dtype))
        with file.create_rows(shape, dtype) as out:
            out.write(0, first)
            bar.update(len(first))
            for lo in range(batch_size, len(rows), batch_size):
                idx = rows[lo: lo + batch_size]
                out.write(lo, _prefix_batch(model, images, idx, start, device, precision, dtype))
                bar.update(len(idx))
    bar.close()
    return shape


def as_input(block: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Cached NHWC features as the NCHW (channels_last) tensor the next block takes (tokens, pooled features as they are).

    Under bf16 autocast the next block only feeds them to convolutions, which cast to bf16 anyway;
    converting once here (fp16 → bf16 is exact through fp32) saves that work and half the memory traffic.
    """
    tensor = torch.from_numpy(np.array(block)).to(dtype)
    return tensor.permute(0, 3, 1, 2) if tensor.dim() == 4 else tensor
