"""Plan before you spend: the grid's stage-runs in order, their paintings, cache bytes and an estimated time.

    python -m artlib train --run-dir runs/real --configuration 1 2 3 --seeds 0 1 2 --image-size 224 --plan

Nothing is trained. Cache sizes are computed exactly from the blocks' output shapes (the bytes the
``.npy`` files will take); caches shared between stage-runs (same frozen prefix, same task rows, same
image size) are counted once. Split seeds (``--split-seeds K``) multiply the stage-runs by K but not the
caches of a pretrained prefix: a task's rows are the same on every split (only their train/val/test
labels differ), so the image cache and every pretrained-prefix feature cache serve all K splits; a
carried stage whose prefix was trained by its source has one cache per source stage-run (seed × split).
Times come from a short measurement of the trainable blocks and the frozen prefix on the chosen device,
with random weights (speed does not depend on their values), so they are estimates.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from artlib import rundir
from artlib.data.manifest import read_manifest
from artlib.models.backbone import ArtNet, autocast, pick_device, pick_precision
from artlib.models.networks import create_backbone
from artlib.models.registry import BLOCK_ORDER, DEFAULT_BACKBONE, HEAD, get_backbone
from artlib.stages import get_stage
from artlib.train.cachefile import cache_bytes
from artlib.train.config import TrainConfig
from artlib.train.features import DTYPES
from artlib.train.grid import StageRun, run_label
from artlib.train.inputs import fits_on_device, task_data
from artlib.train.probe import C_GRID


def block_inputs(image_size: int, backbone: str = DEFAULT_BACKBONE) -> dict[str, tuple[int, ...]]:
    """The shape of each block's input as the feature cache stores it, at this image size (on the meta device).

    (H, W, C) for feature maps, (tokens, width) for a ViT, (width,) for the head.
    """
    spec = get_backbone(backbone)
    with torch.device("meta"):
        model = ArtNet(create_backbone(spec, image_size), 2, spec=spec).eval()
        x = torch.zeros(1, image_size, image_size, 3, dtype=torch.uint8)
        shapes, start = {}, None
        for name in (*BLOCK_ORDER[1:], HEAD):
            x = model.forward_blocks(x, start, name)
            shape = tuple(int(v) for v in x.shape[1:])
            shapes[name] = (shape[1], shape[2], shape[0]) if len(shape) == 3 and spec.family != "vit" else shape
            start = name
    return shapes


def feature_start(blocks: tuple[str, ...]) -> str:
    """Where a stage's cached features enter: its first trainable block, or the head for a linear probe."""
    return blocks[0] if blocks else HEAD


def prefix_owner(run: StageRun, weights: str = "auto") -> str:
    """Who last changed the blocks before the stage's first trainable one: the weights or a source stage-run.

    Random initialisation (``weights="none"``) is seeded per stage-run, so its prefix is the seed's own; a
    trained prefix belongs to the source stage-run of the same seed and split.
    """
    stage = get_stage(run.stage)
    start = feature_start(stage.blocks)
    prefix = BLOCK_ORDER if start == HEAD else BLOCK_ORDER[: BLOCK_ORDER.index(start)]
    source = stage.init_from
    while source is not None:
        src = get_stage(source)
        if any(b in prefix for b in src.blocks):
            return run_label(source, run.seed, run.split_seed)
        source = src.init_from
    return f"random init (seed {run.seed})" if weights == "none" else "pretrained"


def measure(config: TrainConfig, device: torch.device, starts: set[tuple[str, ...]],
            batch: int = 8) -> dict[tuple[str, ...], tuple[float, float, float]]:
    """Seconds per image for (frozen prefix forward, training step, evaluation) of each trainable block set."""
    precision = pick_precision(config.precision, device)
    out = {}
    for blocks in sorted(starts):
        start = feature_start(blocks)
        model = ArtNet.build(2, seed=0, backbone=config.backbone, image_size=config.image_size)
        model = model.freeze_all().unfreeze(*blocks).to(device)
        size = config.image_size
        images = torch.randint(0, 255, (batch, size, size, 3), dtype=torch.uint8, device=device)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        with torch.no_grad():
            feats = model.eval().forward_blocks(images, None, start)

        def prefix() -> None:
            """The frozen blocks once (what building the feature cache costs per image)."""
            with torch.no_grad(), autocast(device, precision):
                model.eval().forward_blocks(images, None, start)

        def evaluate() -> None:
            """The trainable blocks and head without gradients (validation, test)."""
            with torch.no_grad(), autocast(device, precision):
                model.eval().forward_blocks(feats, start, None)

        def step() -> None:
            """One training step on cached features: forward, backward, Adam."""
            with autocast(device, precision):
                loss = model.train().forward_blocks(feats, start, None).float().sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        out[blocks] = tuple(_timed(fn, device) / batch for fn in (prefix, step, evaluate))
    return out


def _timed(fn: Callable[[], None], device: torch.device, repeats: int = 2) -> float:
    """Best of ``repeats`` timed calls after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def plan_grid(runs: list[StageRun], run_dir: Path, config: TrainConfig, gpus_per_stage: float = 0.0) -> pd.DataFrame:
    """One row per stage-run in order: paintings per split, feature-cache bytes (once per shared cache), est. time."""
    manifest = read_manifest(rundir.manifest(run_dir))
    device = pick_device(config.device)
    shapes = block_inputs(config.image_size, config.backbone)
    speed = measure(config, device, {get_stage(r.stage).blocks for r in runs})
    rows, seen = [], set()
    for order, run in enumerate(runs, 1):
        stage = get_stage(run.stage)
        data = task_data(manifest, stage, rundir.manifest(run_dir), config.min_annotations, run.split_seed)
        n = {s: int(len(p)) for s, p in data.positions.items()}
        start = feature_start(stage.blocks)
        cache = (start, prefix_owner(run, config.weights), stage.task)
        cached = config.use_feature_cache or stage.probe
        size = cache_bytes((len(data.rows), *shapes[start]), DTYPES[config.cache_dtype]) if cached else 0
        shared = cache in seen
        seen.add(cache)
        epochs = len(C_GRID) if stage.probe else config.epochs  # a probe fits once per C (an upper bound: no backward)
        seconds = estimated_seconds(n, len(data.rows), speed[stage.blocks], epochs, cached, shared)
        rows.append({"order": order, "stage": run.stage, "backbone": config.backbone, "seed": run.seed,
                     "split_seed": run.split_seed,
                     "after": run_label(*run.source) if run.source else "",
                     "task": stage.task, "trains": stage.trained_blocks, **{f"n_{s}": v for s, v in n.items()},
                     "cache_from": f"{start} input, prefix {cache[1]}", "cache_bytes": 0 if shared else size,
                     "cache_shared": shared,
                     "gpu_bytes": size if device.type == "cuda" and fits_on_device(size, device) else 0,
                     "est_seconds": round(seconds, 1)})
    table = pd.DataFrame(rows)
    image_bytes = cache_bytes((len(manifest), config.image_size, config.image_size, 3), np.uint8)
    table.attrs.update(device=str(device), image_bytes=image_bytes,
                       free_bytes=shutil.disk_usage(rundir.cache_dir(run_dir).parent).free,
                       gpus_per_stage=gpus_per_stage)
    return table


def estimated_seconds(n: dict[str, int], n_rows: int, speed: tuple[float, float, float], epochs: int, cached: bool,
                      shared: bool) -> float:
    """A stage-run's time from seconds per image (frozen prefix, training step, evaluation).

    With a feature cache the frozen blocks run once per painting (nothing when the cache is shared); without one
    they run again for every image of every epoch, and for the test.
    """
    prefix, step, evaluate = speed
    if cached:
        build = 0.0 if shared else n_rows * prefix
        return epochs * (n["train"] * step + n["val"] * evaluate) + n["test"] * evaluate + build
    return epochs * (n["train"] * (prefix + step) + n["val"] * (prefix + evaluate)) + n["test"] * (prefix + evaluate)


def critical_path(table: pd.DataFrame) -> float:
    """The longest chain of stage-runs that must run one after another (seconds): no machine count beats it."""
    finish: dict[str, float] = {}
    for row in table.itertuples():
        finish[run_label(row.stage, row.seed, row.split_seed)] = finish.get(row.after, 0.0) + row.est_seconds
    return max(finish.values(), default=0.0)


def print_plan(table: pd.DataFrame) -> None:
    """Print the plan and its totals: cache bytes against free disk, time on 1 and N devices (estimates)."""
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(table.to_string(index=False))
    total, path = float(table["est_seconds"].sum()), critical_path(table)
    cache = int(table["cache_bytes"].sum()) + int(table.attrs.get("image_bytes", 0))
    splits = table["split_seed"].nunique() if len(table) else 0
    print(f"\n{len(table)} stage-runs ({splits} split seed(s)) on {table.attrs.get('device')}: feature caches "
          f"{table['cache_bytes'].sum() / 1e9:.2f} "
          f"GB + image cache {table.attrs.get('image_bytes', 0) / 1e9:.2f} GB; {table.attrs.get('free_bytes', 0) / 1e9:.1f} "
          f"GB free in the run directory" + ("  ← NOT ENOUGH" if cache > table.attrs.get("free_bytes", cache) else ""))
    print(f"estimated time: {total / 3600:.2f} h one after another; with N devices at least "
          f"max({path / 3600:.2f} h critical path, {total / 3600:.2f} h / N) — an estimate from a short measurement")
