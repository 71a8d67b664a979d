"""Where a stage-run's batches come from: the task's manifest rows, then cached features, cached images or files.

    task_data(manifest, stage)  →  TaskData (rows, labels, split positions)
    stage_inputs(...)           →  StageInputs (a source of batches, usable positions, what was skipped)

The input pipeline follows :class:`~artlib.train.config.TrainConfig`: decoded-image cache or files
decoded every batch, JPEG draft decoding, the frozen-prefix feature cache, the memory layout.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from artlib import atomic, rundir
from artlib.data.images import load_square
from artlib.data.splits import split_column
from artlib.errors import DataError
from artlib.models.backbone import ArtNet
from artlib.stages import Stage
from artlib.train.config import TrainConfig
from artlib.train.features import as_input, build_feature_cache
from artlib.train.imagecache import ImageCache, build_image_cache

log = logging.getLogger(__name__)


class FeatureSource:
    """Inputs from a feature cache (rows aligned with task positions).

    On a GPU with room for it, the whole cache is copied to device memory once (``resident``) and
    batches are gathered there; otherwise batches are read from the memory-mapped file (pinned on CUDA).
    """

    def __init__(self, array: np.ndarray, start: str, device: torch.device | None = None, resident: bool = False,
                 dtype: torch.dtype = torch.float32):
        self.array, self.start, self.dtype = array, start, dtype
        self.device = device or torch.device("cpu")
        self.resident = None
        if resident:
            self.resident = torch.from_numpy(np.array(array)).to(self.device)  # one copy into device memory

    def get(self, positions: np.ndarray, epoch: int) -> torch.Tensor:
        """float32 features (NCHW view of channels-last maps; tokens and pooled features as stored) for these positions."""
        if self.resident is not None:
            index = torch.as_tensor(positions, device=self.device)
            batch = self.resident.index_select(0, index).to(self.dtype)
            return batch.permute(0, 3, 1, 2) if batch.dim() == 4 else batch
        order = np.argsort(positions)
        batch = as_input(self.array[positions[order]][np.argsort(order)], self.dtype)
        return batch.pin_memory() if self.device.type == "cuda" else batch


def prefers_channels_last(input_hw: int) -> bool:
    """Whether the trainable blocks run faster in channels_last for inputs of this spatial size.

    Measured on the 2-core dev machine (bf16 and fp32 alike): channels_last is 15% faster for
    conv4+conv5 on 14×14 inputs, equal at 14×14 for conv5 alone, and 3–9% slower on 7×7 and 4×4.
    """
    return input_hw >= 14


def inference_batch(config: TrainConfig, device: torch.device) -> int:
    """Batch size for no-grad passes: the training batch on CPU (larger ones measured slower: cache misses), 4× on GPUs."""
    return config.batch_size * (4 if device.type == "cuda" else 1)


def fits_on_device(nbytes: int, device: torch.device, fraction: float = 0.5) -> bool:
    """True on CUDA when ``nbytes`` takes at most ``fraction`` of the free device memory."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= fraction * free


class ImageSource:
    """Inputs from the decoded-image cache, optionally augmented (flip, small rotation/shift/zoom)."""

    start = None

    def __init__(self, cache: ImageCache, rows: np.ndarray, augment: bool = False, seed: int = 0,
                 device: torch.device | None = None):
        self.cache, self.rows, self.augment, self.seed = cache, rows, augment, seed
        self.pin = device is not None and device.type == "cuda"
        self._transform = None
        if augment:
            from torchvision.transforms import v2

            self._transform = v2.Compose([v2.RandomHorizontalFlip(),
                                          v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1))])

    def get(self, positions: np.ndarray, epoch: int) -> torch.Tensor:
        """uint8 NHWC images for these positions (augmented during training epochs)."""
        idx = self.rows[positions]
        order = np.argsort(idx)
        x = torch.from_numpy(np.ascontiguousarray(self.cache.array[idx[order]][np.argsort(order)]))
        if self._transform is None or epoch < 0:
            return x.pin_memory() if self.pin else x
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, epoch, int(positions[0]))) % (2**31))
            chw = x.permute(0, 3, 1, 2)
            out = torch.stack([self._transform(img) for img in chw])
        out = out.permute(0, 2, 3, 1).contiguous()
        return out.pin_memory() if self.pin else out


class FileSource:
    """Inputs decoded from the JPEG files for every batch (``images="files"``: the original study's pipeline)."""

    start = None

    def __init__(self, archive: Path, image_paths: list[str], rows: np.ndarray, size: int, threads: int = 2,
                 draft: bool = False):
        self.paths = [str(archive / image_paths[r]) for r in rows]
        self.size, self.draft = size, draft
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads))

    def get(self, positions: np.ndarray, epoch: int) -> torch.Tensor:
        """Decode these images now (Pillow releases the GIL, so threads decode in parallel)."""
        arrays = list(self._pool.map(lambda p: load_square(self.paths[p], self.size, draft=self.draft), positions))
        return torch.from_numpy(np.stack(arrays))


# ---- task data ---------------------------------------------------------------------------
@dataclass
class TaskData:
    """The manifest rows of one task with integer labels, soft targets (distribution tasks) and split positions."""

    rows: np.ndarray  # manifest row indices
    labels: np.ndarray  # class index per task position (the top emotion for a distribution task)
    positions: dict[str, np.ndarray]  # split → task positions
    frame: pd.DataFrame  # the task's manifest rows
    column: str  # the manifest column holding the label ('' for a distribution task)
    targets: np.ndarray | None = None  # (n, k) float32 distributions for a distribution task, else None
    count_columns: tuple[str, ...] = ()  # the manifest's vote-count columns of a distribution task

    @property
    def fitted(self) -> np.ndarray:
        """What the loss is fitted to: the distributions of a distribution task, else the labels."""
        return self.targets if self.targets is not None else self.labels

    def identity_rows(self) -> list:
        """The task's data as hashed into a stage's identity (paths, the split used and labels or vote counts)."""
        columns = ["image_path", self.column, "split"] if self.column else \
            ["image_path", "split", *self.count_columns]
        return self.frame[columns].to_numpy().tolist()


def _selection(manifest: pd.DataFrame, stage: Stage, min_annotations: int,
               manifest_path: Path | str) -> tuple[pd.Series, np.ndarray, np.ndarray | None, str]:
    """The task's rows (mask), their label indices, their target distributions (or None) and the label column."""
    task = stage.spec
    if task.soft:
        counts = manifest[list(task.count_columns)].to_numpy(dtype=np.float64)
        total = counts.sum(axis=1)
        mask = pd.Series(total >= max(min_annotations, 1), index=manifest.index)
        targets = (counts[mask.to_numpy()] / total[mask.to_numpy(), None]).astype(np.float32)
        return mask, targets.argmax(axis=1).astype(np.int64), targets, ""
    column = task.column
    mask = manifest[column].astype(str) != ""
    frame = manifest.loc[mask]
    unknown = sorted(set(frame[column]) - set(stage.classes))
    if unknown:
        raise DataError(f"{manifest_path}: column '{column}' has values {unknown}; expected {stage.classes}.")
    return mask, frame[column].map({c: i for i, c in enumerate(stage.classes)}).to_numpy(np.int64), None, column


def task_data(manifest: pd.DataFrame, stage: Stage, manifest_path: Path | str = "the manifest",
              min_annotations: int = 5, split_seed: int = 0) -> TaskData:
    """Select the rows of the stage's task on one split seed (its column becomes the frame's 'split'); check every split."""
    split_name = split_column(split_seed)
    if split_name not in manifest.columns:
        raise DataError(f"{manifest_path}: no column {split_name} for split seed {split_seed}; rerun prepare with "
                        f"--split-seeds {split_seed + 1} (or more).")
    mask, labels, targets, column = _selection(manifest, stage, min_annotations, manifest_path)
    frame = manifest.loc[mask]
    frame = frame.assign(split=frame[split_name]) if split_seed else frame
    split = frame["split"].to_numpy()
    positions = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
    for s, pos in positions.items():
        if len(pos) == 0:
            raise DataError(f"{manifest_path}: no '{s}' paintings for the {stage.task} task; use more data or "
                            f"other split fractions in notebook 02.")
    present = np.unique(labels[positions["train"]])
    if len(present) < 2:
        raise DataError(f"{manifest_path}: the {stage.task} task has a single class in train "
                        f"({stage.classes[present[0]]}); nothing to learn.")
    return TaskData(rows=np.flatnonzero(mask.to_numpy()), labels=labels, positions=positions, frame=frame,
                    column=column, targets=targets, count_columns=stage.spec.count_columns)


@dataclass
class StageInputs:
    """Where batches come from, the usable positions per split, what was skipped and what caching cost."""

    source: Any
    positions: dict[str, np.ndarray]
    skipped: dict[str, str]
    seconds: float  # building (or opening) the image and feature caches
    feature_seconds: float = 0.0  # of which the feature cache


def _usable(stage: Stage, data: TaskData, images: ImageCache, archive: Path,
            config: TrainConfig) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Split positions whose image decoded, and the skipped images (stop above the allowed fraction)."""
    ok = images.ok[data.rows]
    skipped = {str(data.frame["image_path"].iloc[p]): images.errors.get(int(data.rows[p]), "")
               for p in np.flatnonzero(~ok)}
    if len(skipped) > config.max_skipped_fraction * len(data.rows):
        raise DataError(f"{len(skipped)} of {len(data.rows)} images of the {stage.task} task could not be loaded "
                        f"(e.g. {next(iter(skipped.items()))}); above the {config.max_skipped_fraction:.0%} limit. "
                        f"Check {archive}, then rerun notebook 02 to re-check the images.")
    if skipped:
        log.warning("skipping %d image(s) that failed to load: %s …", len(skipped), list(skipped)[:3])
    return {s: p[ok[p]] for s, p in data.positions.items()}, skipped


def _layout(config: TrainConfig, input_hw: int) -> bool:
    """Whether the trainable blocks run in channels_last, from ``config.layout``."""
    if config.layout == "auto":
        return prefers_channels_last(input_hw)
    return config.layout == "channels_last"


def stage_inputs(model: ArtNet, stage: Stage, data: TaskData, manifest: pd.DataFrame, archive: Path, run_dir: Path,
                 config: TrainConfig, seed: int, device: torch.device, precision: str,
                 progress: bool = True) -> StageInputs:
    """The decoded-image cache for the task's rows (or the files), then, without augmentation, the feature cache."""
    t0 = time.perf_counter()
    if config.images == "files" and not stage.probe:  # a linear probe always fits cached features
        model.use_channels_last(config.layout == "channels_last")
        source: Any = FileSource(archive, manifest["image_path"].tolist(), data.rows, config.image_size,
                                 threads=config.workers or 2, draft=config.draft)
        return StageInputs(source, dict(data.positions), {}, time.perf_counter() - t0)
    cache_dir = rundir.cache_dir(run_dir)
    images = build_image_cache(archive, manifest["image_path"].tolist(), config.image_size, cache_dir,
                               workers=config.workers, progress=progress, rows=data.rows, draft=config.draft)
    positions, skipped = _usable(stage, data, images, archive, config)
    start = model.feature_start()
    if (config.use_feature_cache or stage.probe) and start != "stem":  # a linear probe always fits cached features
        # free space is checked only when the cache must be built: a complete one is reused on any disk
        t_features = time.perf_counter()
        features = build_feature_cache(model, images.array, data.rows, images.key, cache_dir, device, precision,
                                       config.cache_dtype, batch_size=inference_batch(config, device),
                                       progress=progress, check_space=_check_free_space)
        feature_seconds = time.perf_counter() - t_features
        model.use_channels_last(features.array.ndim == 4 and _layout(config, int(features.array.shape[1])))
        resident = fits_on_device(features.array.nbytes, device)
        dtype = torch.bfloat16 if precision == "bf16" and not stage.probe else torch.float32  # a probe's head: fp32
        source = FeatureSource(features.array, features.start, device, resident=resident, dtype=dtype)
    else:
        model.use_channels_last(config.layout != "contiguous")
        source, feature_seconds = ImageSource(images, data.rows, augment=config.augment, seed=seed, device=device), 0.0
    return StageInputs(source, positions, skipped, time.perf_counter() - t0, feature_seconds)


def _check_free_space(folder: Path, need: int) -> None:
    """Fail before building a feature cache that would not fit on the disk."""
    atomic.check_free_space(folder, need, "the feature cache",
                            "free space, use a smaller image_size, or set feature_cache=False")
