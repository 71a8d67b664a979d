"""The eager limits artlib's training rows are measured against, and the pieces compile_trial.py reuses.

* **train-step limit** — one stage's trainable blocks and head: forward, backward and an Adam step
  (artlib's ``make_adam``) on random tensors of the cached features' shape, dtype and layout, batch
  ``batch_size``, under artlib's autocast; nothing else (no reading of the cache, no bookkeeping).
  artlib's epochs cannot beat it.
* **prefix forward limit** — the frozen prefix (everything below the first trainable block) on random
  uint8 images of the cached images' shape, ``no_grad``, under artlib's autocast, in the layout cache
  building runs it in (channels_last, how ``ArtNet.build`` makes the model), batch ``inference_batch``.
  The feature cache cannot beat it.
* **decode limit** — decoding the stage's own JPEG files to the cached images' size (``load_square``: Pillow's
  draft-scale decode, RGB, resize, crop; the arithmetic of the image cache), handed 8 files at a time to as many
  worker processes as the image cache uses (already started), as its pool hands them, the results dropped; nothing
  else (no pool start, no cache file, no passing of arrays between processes). The image cache cannot beat it; the
  whole cache building (decoding, then the prefix, one after the other) cannot beat the two limits' times added.

All are measured with the C allocator set as artlib's stage-runs set it (``artlib.train.allocator``: freed memory
kept for reuse), so that what it gives is not counted as artlib beating the limit; the prefix forward is measured
with glibc's defaults too (``prefix_limit_default_allocator``), which shows what that setting gives eager PyTorch.

The limits use the library's public model API (``ArtNet.build``, ``freeze_all().unfreeze``, ``forward_blocks``,
``autocast``, ``make_adam``, ``prefers_channels_last``) and set the thread count, precision and layout the
artlib row recorded, so the only differences from artlib's own numbers are what artlib does around them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from artlib import rundir
from artlib.data.images import ImageLoadError, load_square
from artlib.data.manifest import read_manifest
from artlib.models.backbone import ArtNet, autocast
from artlib.models.weights import resolve_weights
from artlib.stages import get_stage
from artlib.train.allocator import freed_memory_kept
from artlib.train.features import build_feature_cache
from artlib.train.imagecache import POOL_CHUNK, build_image_cache, pool_context, uses_pool
from artlib.train.config import TrainConfig
from artlib.train.inputs import prefers_channels_last, task_data
from artlib.train.loop import make_adam

Step = Callable[[torch.Tensor, torch.Tensor], Any]


def stage_model(stage_name: str, image_size: int, weights: str = "none", seed: int = 0) -> ArtNet:
    """The stage's starting model as artlib builds it (pretrained or random backbone, fresh head, its blocks trainable)."""
    stage = get_stage(stage_name)
    model = ArtNet.build(len(stage.classes), resolve_weights(weights, verbose=False), seed=seed, image_size=image_size)
    return model.freeze_all().unfreeze(*stage.blocks)


def feature_shape(model: ArtNet, image_size: int) -> tuple[int, ...]:
    """One cached feature's shape as stored (H, W, C: channels-last), from a forward pass of the prefix."""
    x = torch.zeros(2, image_size, image_size, 3, dtype=torch.uint8)
    with torch.no_grad():
        f = model.eval().forward_blocks(x, None, model.feature_start())
    return tuple(f.permute(0, 2, 3, 1).shape[1:]) if f.dim() == 4 else tuple(f.shape[1:])


def uses_channels_last(layout: str, shape: tuple[int, ...]) -> bool:
    """The trainable blocks' layout artlib picks for ``TrainConfig.layout`` on features of this shape."""
    if layout == "auto":
        return len(shape) == 3 and prefers_channels_last(int(shape[0]))
    return layout == "channels_last" and len(shape) == 3


def feature_batches(shape: tuple[int, ...], batch: int, precision: str, count: int = 4,
                    seed: int = 0) -> list[torch.Tensor]:
    """Random non-negative feature batches as artlib's FeatureSource hands them over: bf16 under bf16 autocast, else
    float32; maps as an NCHW view of NHWC storage."""
    g = torch.Generator().manual_seed(seed)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    out = []
    for _ in range(count):
        t = torch.randn(batch, *shape, generator=g).relu_().to(dtype)
        out.append(t.permute(0, 3, 1, 2) if t.dim() == 4 else t)
    return out


def image_batches(image_size: int, batch: int, count: int = 4, seed: int = 0) -> list[torch.Tensor]:
    """Random uint8 NHWC image batches, as the image cache hands them to the prefix."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (batch, image_size, image_size, 3), generator=g, dtype=torch.uint8)
            for _ in range(count)]


def train_step(model: ArtNet, precision: str, forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
               lr: float = 1e-4) -> Step:
    """One training step of the trainable blocks and head as artlib's loop takes it (autocast forward, float loss,
    backward, Adam); ``forward`` replaces ``model.forward_blocks(x, start, None)`` (e.g. a compiled one)."""
    device, start = torch.device("cpu"), model.feature_start()
    optimizer = make_adam([p for p in model.parameters() if p.requires_grad], lr, 0.0)
    criterion = nn.CrossEntropyLoss(weight=torch.ones(model.head.out_features))
    run = forward or (lambda x: model.forward_blocks(x, start, None))

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward, backward, Adam step; returns the loss."""
        with autocast(device, precision):
            logits = run(x)
        loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return step


def prefix_forward(model: ArtNet, precision: str,
                   forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Callable[[torch.Tensor], Any]:
    """The frozen prefix's no-grad forward as cache building runs it (eval mode, autocast, float output)."""
    device, start = torch.device("cpu"), model.feature_start()
    run = forward or (lambda x: model.forward_blocks(x, None, start))

    def call(x: torch.Tensor) -> torch.Tensor:
        """Prefix features of one batch."""
        with torch.no_grad(), autocast(device, precision):
            return run(x).float()

    return call


def time_calls(call: Callable[[], Any], warmup: int = 2, min_calls: int = 10, min_seconds: float = 3.0) -> dict[str, Any]:
    """Seconds per call after ``warmup`` calls: at least ``min_calls`` calls and ``min_seconds``; median and mean."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        call()
    warm = time.perf_counter() - t0
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    times.sort()
    return {"warmup_seconds": warm, "calls": len(times), "median_seconds": times[len(times) // 2],
            "mean_seconds": sum(times) / len(times)}


def train_step_limit(job: dict[str, Any]) -> dict[str, Any]:
    """The eager train-step limit of ``job['stage']`` in this process: img/s at the artlib row's threads, precision,
    layout and batch size, freed memory kept as in a stage-run."""
    with freed_memory_kept():
        return _train_step_limit(job)


def _train_step_limit(job: dict[str, Any]) -> dict[str, Any]:
    """train_step_limit's measurement, with the allocator as it is."""
    torch.set_num_threads(int(job["threads"]))
    model = stage_model(job["stage"], job["image_size"], job["weights"], job["seed"])
    shape = feature_shape(model, job["image_size"])
    channels_last = uses_channels_last(job["layout"], shape)
    model.use_channels_last(channels_last).train()
    xs = feature_batches(shape, job["batch_size"], job["precision"])
    y = torch.randint(0, model.head.out_features, (job["batch_size"],), generator=torch.Generator().manual_seed(1))
    step = train_step(model, job["precision"])
    i = iter(range(1 << 30))
    timing = time_calls(lambda: step(xs[next(i) % len(xs)], y), min_seconds=job["limit_seconds"])
    return {"limit": "train_step", "stage": job["stage"], "threads": torch.get_num_threads(),
            "precision": job["precision"], "layout": "channels_last" if channels_last else "contiguous",
            "feature_shape": list(shape), "batch_size": job["batch_size"], **timing,
            "images_per_s": job["batch_size"] / timing["median_seconds"]}


def prefix_limit(job: dict[str, Any]) -> dict[str, Any]:
    """The frozen prefix's eager forward limit of ``job['stage']`` in this process (img/s), as cache building runs it,
    freed memory kept as in a stage-run."""
    with freed_memory_kept():
        return _prefix_limit(job)


def prefix_limit_default_allocator(job: dict[str, Any]) -> dict[str, Any]:
    """The same forward with glibc's default allocator (in a process of its own: the setting is process-wide)."""
    return {**_prefix_limit(job), "limit": "prefix_forward_default_allocator"}


def _prefix_limit(job: dict[str, Any]) -> dict[str, Any]:
    """prefix_limit's measurement, with the allocator as it is."""
    torch.set_num_threads(int(job["threads"]))
    model = stage_model(job["stage"], job["image_size"], job["weights"], job["seed"]).eval()  # built channels_last
    xs = image_batches(job["image_size"], job["inference_batch"])
    forward = prefix_forward(model, job["precision"])
    i = iter(range(1 << 30))
    timing = time_calls(lambda: forward(xs[next(i) % len(xs)]), min_seconds=job["limit_seconds"])
    return {"limit": "prefix_forward", "stage": job["stage"], "threads": torch.get_num_threads(),
            "precision": job["precision"], "layout": "channels_last", "start": model.feature_start(),
            "batch_size": job["inference_batch"], **timing,
            "images_per_s": job["inference_batch"] / timing["median_seconds"]}


def paired_cache(job: dict[str, Any]) -> dict[str, Any]:
    """artlib's feature-cache building against the prefix limit on the same images, alternating in one process.

    Rows and limits run in separate processes minutes apart, and this machine's speed drifts by 10–25% between runs;
    here the public ``build_feature_cache`` (key, file, fp16 conversion, writes and fsync: everything) and the
    bare prefix forward over the same ``job['n_images']`` random images in the same batches take turns, ``rounds``
    times (6: artlib first in every other round, so each order counts alike; the first round is cold, as in a fresh
    stage-run). Each round's efficiency is
    limit seconds / artlib seconds; the result is their median, with the cold round's beside it. Freed memory is
    kept for both, as in a stage-run.
    """
    with freed_memory_kept():
        return _paired_cache(job)


def _paired_cache(job: dict[str, Any]) -> dict[str, Any]:
    """paired_cache's measurement, with the allocator as it is."""
    torch.set_num_threads(int(job["threads"]))
    model = stage_model(job["stage"], job["image_size"], job["weights"], job["seed"]).eval()
    n, size, batch = int(job["n_images"]), int(job["image_size"]), int(job["inference_batch"])
    images = np.random.default_rng(job["seed"]).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    tensors = [torch.from_numpy(images[lo: lo + batch]) for lo in range(0, n, batch)]
    forward, cpu = prefix_forward(model, job["precision"]), torch.device("cpu")
    rounds = []
    Path(job["tmp_dir"]).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=job["tmp_dir"]) as tmp:  # the disk the run directories are on, not /tmp
        for k in range(int(job.get("rounds", 6))):
            seconds: dict[str, float] = {}
            for part in (("artlib", "limit") if k % 2 == 0 else ("limit", "artlib")):
                t0 = time.perf_counter()
                if part == "limit":
                    for x in tensors:
                        forward(x)
                else:
                    build_feature_cache(model, images, np.arange(n), f"paired-{k}", tmp, cpu, job["precision"],
                                        "float16", batch, progress=False)
                seconds[part] = time.perf_counter() - t0
            rounds.append({**seconds, "efficiency": seconds["limit"] / seconds["artlib"]})
    artlib = float(np.median([r["artlib"] for r in rounds]))
    return {"limit": "paired_cache", "stage": job["stage"], "threads": torch.get_num_threads(),
            "precision": job["precision"], "layout": "channels_last", "batch_size": batch, "calls": len(rounds),
            "rounds": rounds, "efficiency": float(np.median([r["efficiency"] for r in rounds])),
            "efficiency_cold": rounds[0]["efficiency"], "images_per_s": n / artlib,
            "median_seconds": artlib / len(tensors)}  # (artlib's own: its median round's mean batch)


def stage_rows(prepared: str | os.PathLike[str], stage: str) -> tuple[list[str], np.ndarray]:
    """Every image path of the prepared manifest and the rows a stage-run of ``stage`` decodes into its image cache:
    its task's rows (``task_data``, as the stage-run selects them, default settings)."""
    manifest_path = rundir.manifest(prepared)
    manifest = read_manifest(manifest_path)
    data = task_data(manifest, get_stage(stage), manifest_path, TrainConfig().min_annotations)
    return manifest["image_path"].tolist(), np.asarray(data.rows)


def stage_image_files(prepared: str | os.PathLike[str], archive: str | os.PathLike[str], stage: str) -> list[str]:
    """The JPEG files a stage-run of ``stage`` decodes into its image cache (:func:`stage_rows`), under ``archive``."""
    paths, rows = stage_rows(prepared, stage)
    return [str(Path(archive) / paths[i]) for i in rows]


def _decode_share(args: tuple[list[str], int, bool]) -> tuple[int, int]:
    """Worker: decode these files to square arrays as the image cache does (a file that cannot be read counts, as the
    image cache records it and goes on), keep nothing; this process's id and how many files it went through."""
    paths, size, draft = args
    done = 0
    for path in paths:
        try:
            load_square(path, size, draft=draft)
        except ImageLoadError:
            pass
        done += 1
    return os.getpid(), done


def _started(_: int) -> int:
    """Worker: nothing (a call that makes the pool start its processes before the timing)."""
    return os.getpid()


def decode_limit(job: dict[str, Any]) -> dict[str, Any]:
    """The decoding limit of ``job['stage']``'s image cache (img/s): its files decoded ``rounds`` times (default 3),
    handed out 8 at a time to ``job['workers']`` processes started beforehand, as the image cache's pool does (one
    worker, or fewer than 64 files: in this process, as the image cache decodes them then), freed memory kept as in a
    stage-run (the decoding processes inherit the setting); the median round."""
    with freed_memory_kept():
        return _decode_limit(job)


@contextlib.contextmanager
def bare_decoder(paths: list[str], size: int, draft: bool, workers: int) -> Iterator[tuple[Callable[[], int], int]]:
    """A call decoding ``paths`` as the decode limit does (files handed out 8 at a time to ``workers`` processes
    started now, as the image cache's pool does; one worker, or fewer than 64 files: in this process, as the image
    cache decodes them then), and the number of processes it uses. Each call returns how many processes took part."""
    chunks = [(paths[lo: lo + POOL_CHUNK], size, draft) for lo in range(0, len(paths), POOL_CHUNK)]

    def counted(done: list[tuple[int, int]]) -> int:
        """The processes that took part (every file gone through, else a bug)."""
        assert sum(n for _, n in done) == len(paths), (done, len(paths))
        return len({pid for pid, _ in done})

    if uses_pool(workers, len(paths)):  # the image cache's own rule, pool and chunks
        with ProcessPoolExecutor(workers, mp_context=pool_context()) as pool:
            for _ in range(100):  # until every process has started (the pool starts them as work arrives)
                if len(set(pool.map(_started, range(4 * workers)))) == workers:
                    break
            else:
                raise RuntimeError(f"the decode limit's pool did not start {workers} processes")
            yield (lambda: counted(list(pool.map(_decode_share, chunks)))), workers
    else:
        yield (lambda: counted([_decode_share(chunk) for chunk in chunks])), 1


def _decode_limit(job: dict[str, Any]) -> dict[str, Any]:
    """decode_limit's measurement, with the allocator as it is."""
    paths = stage_image_files(job["prepared"], job["archive"], job["stage"])
    seconds, used = [], 0
    with bare_decoder(paths, int(job["image_size"]), bool(job.get("draft", True)), int(job["workers"])) as (decode,
                                                                                                          workers):
        for _ in range(int(job.get("rounds", 3))):
            t0 = time.perf_counter()
            used = max(used, decode())
            seconds.append(time.perf_counter() - t0)
    median = float(np.median(seconds))
    return {"limit": "decode", "stage": job["stage"], "threads": workers, "processes_used": used,
            "precision": "-", "layout": "-", "batch_size": None, "calls": len(seconds), "rounds_seconds": seconds,
            "n_images": len(paths), "median_seconds": median, "images_per_s": len(paths) / median}


def paired_whole_cache(job: dict[str, Any]) -> dict[str, Any]:
    """artlib's whole cache building against its two limits, alternating in one process (see ``paired_cache`` for why).

    artlib: the public ``build_image_cache`` (the stage's rows of the prepared manifest, a new cache folder each round:
    key, pool start, decoding, the memory-mapped file, sidecar) then ``build_feature_cache`` on those images; the
    limits: the bare decode of the same files (:func:`bare_decoder`, processes started once, before the rounds) then
    the bare prefix forward over as many random images in the same batches. ``rounds`` (6) turns, artlib first in every
    other one; each round's efficiency is limit seconds / artlib seconds, the median is reported with the cold round's.
    Freed memory is kept for both, as in a stage-run.
    """
    with freed_memory_kept():
        return _paired_whole_cache(job)


def _paired_whole_cache(job: dict[str, Any]) -> dict[str, Any]:
    """paired_whole_cache's measurement, with the allocator as it is."""
    torch.set_num_threads(int(job["threads"]))
    model = stage_model(job["stage"], job["image_size"], job["weights"], job["seed"]).eval()
    paths, rows = stage_rows(job["prepared"], job["stage"])
    size, batch, draft, workers = int(job["image_size"]), int(job["inference_batch"]), bool(job["draft"]), \
        int(job["workers"])
    images = np.random.default_rng(job["seed"]).integers(0, 256, (len(rows), size, size, 3), dtype=np.uint8)
    tensors = [torch.from_numpy(images[lo: lo + batch]) for lo in range(0, len(rows), batch)]
    forward, cpu, rounds = prefix_forward(model, job["precision"]), torch.device("cpu"), []
    Path(job["tmp_dir"]).mkdir(parents=True, exist_ok=True)
    with bare_decoder([str(Path(job["archive"]) / paths[i]) for i in rows], size, draft, workers) as (decode, _):
        for k in range(int(job.get("rounds", 6))):
            seconds: dict[str, float] = {}
            for part in (("artlib", "limit") if k % 2 == 0 else ("limit", "artlib")):
                t0 = time.perf_counter()
                if part == "limit":
                    decode()
                    for x in tensors:
                        forward(x)
                    seconds[part] = time.perf_counter() - t0
                    continue
                with tempfile.TemporaryDirectory(dir=job["tmp_dir"]) as tmp:  # new caches, on the run directories' disk
                    t0 = time.perf_counter()
                    cache = build_image_cache(job["archive"], paths, size, tmp, workers=workers, progress=False,
                                              draft=draft, rows=rows)
                    build_feature_cache(model, cache.array, rows, cache.key, tmp, cpu, job["precision"], "float16",
                                        batch, progress=False)
                    seconds[part] = time.perf_counter() - t0  # (creating and deleting the folder not counted)
                    del cache
            rounds.append({**seconds, "efficiency": seconds["limit"] / seconds["artlib"]})
    artlib = float(np.median([r["artlib"] for r in rounds]))
    return {"limit": "paired_whole_cache", "stage": job["stage"], "threads": torch.get_num_threads(),
            "precision": job["precision"], "layout": "channels_last", "batch_size": batch, "calls": len(rounds),
            "rounds": rounds, "efficiency": float(np.median([r["efficiency"] for r in rounds])),
            "efficiency_cold": rounds[0]["efficiency"], "images_per_s": len(rows) / artlib,
            "median_seconds": artlib}
