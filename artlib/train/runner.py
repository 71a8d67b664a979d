"""Running stages: manifest → task rows → model → caches → training → run_dir/stages/<stage>/seed_<n>/.

    run_stages(["genre_conv4", "genre_conv4_then_emotion_conv5"], run_dir, TrainConfig(), seeds=[0, 1])

A stage whose starting stage is missing runs that one first. A finished stage (same
settings, same data) is not retrained unless ``force``; an interrupted one resumes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from artlib import atomic, results
from artlib.models import checkpoints
from artlib.models.backbone import ArtNet, Weights, pick_device, pick_precision, resolve_weights
from artlib.errors import DataError
from artlib.train.features import as_input, build_feature_cache
from artlib.train.imagecache import ImageCache, build_image_cache
from artlib.data.images import load_square
from artlib.data.manifest import read_manifest
from artlib.metrics import class_weights, classification_metrics, majority_class
from artlib.stages import TASK_COLUMN, Stage, dependency_chain, get_stage
from artlib.train.loop import LoopResult, TrainConfig, evaluate, set_seeds, train_loop


# ---- inputs ------------------------------------------------------------------------------
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
        """float32 features (NCHW view of channels-last data) for these positions."""
        if self.resident is not None:
            index = torch.as_tensor(positions, device=self.device)
            return self.resident.index_select(0, index).to(self.dtype).permute(0, 3, 1, 2)
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
    """Inputs decoded from the files every time (the naive pipeline, for benchmarks)."""

    start = None

    def __init__(self, archive: Path, image_paths: list[str], rows: np.ndarray, size: int, threads: int = 2,
                 draft: bool = False):
        from concurrent.futures import ThreadPoolExecutor

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
    """The manifest rows of one task with integer labels and split positions."""

    rows: np.ndarray  # manifest row indices
    labels: np.ndarray  # class index per task position
    positions: dict[str, np.ndarray]  # split → task positions
    frame: pd.DataFrame  # the task's manifest rows


def task_data(manifest: pd.DataFrame, stage: Stage, manifest_path: Path | str = "manifest.csv") -> TaskData:
    """Select the rows labelled for the stage's task and check every split can be used."""
    column = TASK_COLUMN[stage.task]
    mask = manifest[column].astype(str) != ""
    frame = manifest.loc[mask]
    unknown = sorted(set(frame[column]) - set(stage.classes))
    if unknown:
        raise DataError(f"{manifest_path}: column '{column}' has values {unknown}; expected {stage.classes}.")
    labels = frame[column].map({c: i for i, c in enumerate(stage.classes)}).to_numpy(np.int64)
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
    return TaskData(rows=np.flatnonzero(mask.to_numpy()), labels=labels, positions=positions, frame=frame)


def data_root_of(run_dir: Path) -> Path:
    """The data root the run directory's manifest was prepared from (recorded in prepare_report.json)."""
    report = run_dir / "prepare_report.json"
    if not report.is_file():
        raise DataError(f"{report}: missing; run notebook 02 (or `python -m artlib prepare`) for this run directory.")
    return Path(json.loads(report.read_text())["data_root"])


def _digest(*parts: Any) -> str:
    """Short stable hash of JSON-able parts."""
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


def stage_dir(run_dir: Path, stage: str, seed: int) -> Path:
    """run_dir/stages/<stage>/seed_<seed>/."""
    return Path(run_dir) / "stages" / stage / f"seed_{seed}"


def load_stage_model(run_dir: Path, stage: str, seed: int, task: str | None = None) -> tuple[ArtNet, dict]:
    """A finished stage's best model (validated: architecture, task, recorded hash) and its metrics."""
    folder = stage_dir(run_dir, stage, seed)
    metrics_file = folder / "metrics.json"
    if not metrics_file.is_file():
        raise FileNotFoundError(f"{folder}: stage {stage} (seed {seed}) has not finished; run it first.")
    metrics = json.loads(metrics_file.read_text())
    expect = {"kind": "model", "stage": stage}
    if task is not None:
        expect["task"] = task
    payload = checkpoints.load(folder / "model.pt", expect=expect, sha256=metrics.get("model_sha256"))
    meta = payload["meta"]
    model = ArtNet.from_state(len(meta["classes"]), payload["state_dict"], meta["mean"], meta["std"])
    return model.eval(), metrics


# ---- one stage ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StageIdentity:
    """Everything a stage's result depends on; finished work with the same ``config_hash`` is reused."""

    config_hash: str
    origin: dict  # the pretrained weights, or the source stage (its hash and model digest)
    backbone_label: str  # recorded as results.csv backbone_weights
    weights: Weights | None  # None for a carried stage
    device: torch.device
    precision: str


def stage_identity(stage: Stage, run_dir: Path, config: TrainConfig, seed: int, data: TaskData,
                   progress: bool = True) -> StageIdentity:
    """Resolve weights, device and precision and hash them with the stage, settings and data."""
    device = pick_device(config.device)
    precision = pick_precision(config.precision, device)
    if stage.init_from is None:
        weights: Weights | None = resolve_weights(config.weights, verbose=progress)
        origin = {"weights": weights.label, "digest": weights.digest}
        label = weights.label
    else:
        weights = None
        source = json.loads((stage_dir(run_dir, stage.init_from, seed) / "metrics.json").read_text())
        origin = {"stage": stage.init_from, "config_hash": source["config_hash"], "model_sha256": source["model_sha256"]}
        label = source["result"]["backbone_weights"]
    task_rows = data.frame[["image_path", TASK_COLUMN[stage.task], "split"]].to_numpy().tolist()
    config_hash = _digest(asdict(stage), seed, config.result_fields() | {"precision": precision}, origin,
                          _digest(task_rows))
    return StageIdentity(config_hash, origin, label, weights, device, precision)


def finished_row(run_dir: Path, name: str, seed: int, identity: StageIdentity) -> dict | None:
    """The results row of a stage already finished with this identity and an intact model, else None."""
    folder = stage_dir(run_dir, name, seed)
    try:
        done = json.loads((folder / "metrics.json").read_text())
        if done.get("config_hash") != identity.config_hash:
            return None
        if not (folder / "model.pt").is_file() or \
                checkpoints.file_sha256(folder / "model.pt") != done.get("model_sha256"):
            print(f"{name} (seed {seed}): its model.pt is missing or no longer matches the hash recorded when it "
                  f"was written (corrupted or modified) — training the stage again")
            return None
        print(f"{name} (seed {seed}): finished earlier with these settings — reusing it "
              f"(accuracy {done['result']['accuracy']:.3f}); pass force=True (CLI: --force) to retrain")
        return done["result"]
    except (OSError, ValueError, KeyError):
        return None  # absent or unreadable metrics: train


def start_model(stage: Stage, run_dir: Path, seed: int, identity: StageIdentity) -> ArtNet:
    """The stage's starting model: pretrained or the source stage's backbone, a fresh seeded head, blocks set."""
    set_seeds(seed)
    if stage.init_from is None:
        model = ArtNet.build(len(stage.classes), identity.weights, seed=seed)
    else:
        source, _ = load_stage_model(run_dir, stage.init_from, seed)
        carried = Weights(label="carried", source="memory", mean=tuple(source.mean.flatten().tolist()),
                          std=tuple(source.std.flatten().tolist()))
        model = ArtNet.build(len(stage.classes), carried, seed=seed, state=source.backbone_state())
    return model.freeze_all().unfreeze(*stage.blocks)


@dataclass
class StageInputs:
    """Where batches come from, the usable positions per split, what was skipped and what caching cost."""

    source: Any
    positions: dict[str, np.ndarray]
    skipped: dict[str, str]
    seconds: float


def stage_inputs(model: ArtNet, stage: Stage, data: TaskData, manifest: pd.DataFrame, archive: Path, run_dir: Path,
                 config: TrainConfig, seed: int, identity: StageIdentity, progress: bool = True) -> StageInputs:
    """Decoded-image cache for the task's rows, then (no augmentation) the frozen-prefix feature cache."""
    t0 = time.perf_counter()
    cache_dir = run_dir / "cache"
    images = build_image_cache(archive, manifest["image_path"].tolist(), config.image_size, cache_dir,
                               workers=config.workers, progress=progress, rows=data.rows)
    ok = images.ok[data.rows]
    skipped = {str(data.frame["image_path"].iloc[p]): images.errors.get(int(data.rows[p]), "")
               for p in np.flatnonzero(~ok)}
    if len(skipped) > config.max_skipped_fraction * len(data.rows):
        raise DataError(f"{len(skipped)} of {len(data.rows)} images of the {stage.task} task could not be loaded "
                        f"(e.g. {next(iter(skipped.items()))}); above the {config.max_skipped_fraction:.0%} limit. "
                        f"Check {archive}, then rerun notebook 02 to re-check the images.")
    if skipped:
        print(f"skipping {len(skipped)} image(s) that failed to load: {list(skipped)[:3]} …")
    positions = {s: p[ok[p]] for s, p in data.positions.items()}
    start = model.first_trainable()
    if config.use_feature_cache and start not in (None, "stem"):
        # free space is checked only when the cache must be built: a complete one is reused on any disk
        features = build_feature_cache(model, images.array, data.rows, images.key, cache_dir, identity.device,
                                       identity.precision, config.cache_dtype, batch_size=inference_batch(config, identity.device),
                                       progress=progress, check_space=_check_free_space)
        model.use_channels_last(prefers_channels_last(int(features.array.shape[1])))
        resident = fits_on_device(features.array.nbytes, identity.device)
        dtype = torch.bfloat16 if identity.precision == "bf16" else torch.float32
        source: Any = FeatureSource(features.array, features.start, identity.device, resident=resident, dtype=dtype)
    else:
        source = ImageSource(images, data.rows, augment=config.augment, seed=seed, device=identity.device)
    return StageInputs(source, positions, skipped, time.perf_counter() - t0)


def evaluate_and_record(model: ArtNet, stage: Stage, seed: int, data: TaskData, inputs: StageInputs, loop: LoopResult,
                    config: TrainConfig, identity: StageIdentity, run_dir: Path) -> dict:
    """Score the best weights on the test split; write predictions, history, model and (last) metrics.json."""
    folder = stage_dir(run_dir, stage.name, seed)
    pos = inputs.positions
    y_train, y_test = data.labels[pos["train"]], data.labels[pos["test"]]
    weights_vec = class_weights(y_train, len(stage.classes)) if config.class_weights else None
    criterion = nn.CrossEntropyLoss(weight=None if weights_vec is None else torch.tensor(
        weights_vec, dtype=torch.float32, device=identity.device))
    test_loss, probs = evaluate(model, inputs.source, pos["test"], data.labels, criterion, identity.device,
                                identity.precision, config.batch_size)
    pred = probs.argmax(1)
    baseline = majority_class(y_train, len(stage.classes))
    m = classification_metrics(y_test, pred, len(stage.classes), baseline)
    test_frame = data.frame.iloc[pos["test"]]
    atomic.write_csv(folder / "predictions.csv", pd.DataFrame({
        "image_path": test_frame["image_path"].to_numpy(), "era": test_frame["era"].to_numpy(),
        "label": [stage.classes[i] for i in y_test], "predicted": [stage.classes[i] for i in pred],
        "probability": probs[np.arange(len(pred)), pred],
        **{f"p_{c}": probs[:, i] for i, c in enumerate(stage.classes)}}))
    atomic.write_csv(folder / "history.csv", pd.DataFrame(loop.history))
    model_meta = checkpoints.make_meta(kind="model", stage=stage.name, task=stage.task, classes=list(stage.classes),
                                       seed=seed, config_hash=identity.config_hash, image_size=config.image_size,
                                       mean=model.mean.flatten().tolist(), std=model.std.flatten().tolist(),
                                       backbone_weights=identity.backbone_label, trained_blocks=list(stage.blocks))
    sha = checkpoints.save(folder / "model.pt", {"meta": model_meta, "state_dict": {
        k: v.detach().cpu() for k, v in model.state_dict().items()}}, digest=True)
    row = {
        "configuration": stage.configuration_name, "stage": stage.name, "task": stage.task,
        "trained_blocks": stage.trained_blocks, "init_from": stage.init_from or "pretrained", "seed": seed,
        "accuracy": m["accuracy"], "f1": m["f1"], "balanced_accuracy": m["balanced_accuracy"], "n_test": m["n"],
        "majority_baseline_accuracy": m["majority_baseline_accuracy"], "majority_baseline_f1": m["majority_baseline_f1"],
        "majority_class": stage.classes[baseline], "backbone_weights": identity.backbone_label,
        "best_epoch": loop.best_epoch, "epochs_run": loop.epochs_run, "train_seconds": round(loop.seconds, 2),
        "cache_seconds": round(inputs.seconds, 2), "n_train": int(len(pos["train"])), "n_val": int(len(pos["val"])),
        "skipped_images": len(inputs.skipped), "image_size": config.image_size, "epochs": config.epochs,
        "batch_size": config.batch_size, "lr": config.lr, "monitor": config.monitor, "augment": config.augment,
        "feature_cache": isinstance(inputs.source, FeatureSource), "device": str(identity.device),
        "precision": identity.precision, "config_hash": identity.config_hash,
    }
    atomic.write_json(folder / "metrics.json", {
        "result": row, "metrics": m, "test_loss": test_loss, "config_hash": identity.config_hash,
        "model_sha256": sha, "classes": list(stage.classes), "skipped_images": inputs.skipped,
        "resumed_from_epoch": loop.resumed_from})
    return row


def run_stage(name: str, run_dir: str | Path, config: TrainConfig = TrainConfig(), seed: int = 0,
              force: bool = False, progress: bool = True, data_root: str | Path | None = None,
              fail_after_epoch: int | None = None) -> dict:
    """Train one stage for one seed (its source stage first if missing); returns its results row.

    ``fail_after_epoch`` raises after that epoch's checkpoint, to test resumption.
    """
    run_dir = Path(run_dir)
    stage = get_stage(name)
    for dep in dependency_chain(name)[:-1]:
        run_stage(dep.name, run_dir, config, seed, force=False, progress=progress, data_root=data_root)
    manifest_path = run_dir / "manifest.csv"
    manifest = read_manifest(manifest_path)
    archive = Path(data_root) / "archive" if data_root is not None else data_root_of(run_dir) / "archive"
    data = task_data(manifest, stage, manifest_path)
    identity = stage_identity(stage, run_dir, config, seed, data, progress)
    folder = stage_dir(run_dir, name, seed)
    if not force and (row := finished_row(run_dir, name, seed, identity)) is not None:
        (folder / "checkpoint.pt").unlink(missing_ok=True)  # left by an interrupted --force rerun: never used
        results.upsert(run_dir, [row])
        return row
    if force:
        (folder / "checkpoint.pt").unlink(missing_ok=True)
    atomic.check_writable(folder, "write", "choose another run_dir")  # before any work; creates the folder
    for stale in folder.glob(".*.tmp*"):
        stale.unlink(missing_ok=True)  # a temporary file of a run killed while saving (checkpoints are ~100s of MB)
    atomic.write_json(folder / "config.json", {"stage": asdict(stage), "seed": seed, "config": asdict(config),
                                               "precision": identity.precision, "device": str(identity.device),
                                               "origin": identity.origin, "config_hash": identity.config_hash})
    model = start_model(stage, run_dir, seed, identity)
    inputs = stage_inputs(model, stage, data, manifest, archive, run_dir, config, seed, identity, progress)
    y_train = data.labels[inputs.positions["train"]]
    meta = checkpoints.make_meta(kind="checkpoint", stage=name, task=stage.task, classes=list(stage.classes),
                                 seed=seed, config_hash=identity.config_hash)

    def _maybe_fail(epoch: int) -> None:
        """Simulated crash for resumption tests."""
        if fail_after_epoch is not None and epoch >= fail_after_epoch:
            raise RuntimeError(f"simulated failure after epoch {epoch}")

    loop = train_loop(model, inputs.source, data.labels, inputs.positions["train"], inputs.positions["val"], config,
                      seed, identity.device, identity.precision,
                      class_weights(y_train, len(stage.classes)) if config.class_weights else None,
                      folder / "checkpoint.pt", meta, progress=progress, on_epoch_end=_maybe_fail)
    row = evaluate_and_record(model, stage, seed, data, inputs, loop, config, identity, run_dir)
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    results.upsert(run_dir, [row])
    return row


def run_stages(names: list[str] | tuple[str, ...], run_dir: str | Path, config: TrainConfig = TrainConfig(),
               seeds: list[int] | tuple[int, ...] = (0,), force: bool = False, progress: bool = True,
               data_root: str | Path | None = None) -> pd.DataFrame:
    """Run stages for every seed (sources first); returns their results rows."""
    rows = [run_stage(n, run_dir, config, seed, force=force, progress=progress, data_root=data_root)
            for seed in seeds for n in names]
    return pd.DataFrame(rows)


def _check_free_space(folder: Path, need: int) -> None:
    """Fail before building a feature cache that would not fit on the disk."""
    atomic.check_free_space(folder, need, "the feature cache",
                            "free space, use a smaller image_size, or set feature_cache=False")
