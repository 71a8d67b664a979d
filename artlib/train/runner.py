"""The worker: one stage-run, manifest → task rows → model → caches → training → run_dir/stages/<stage>/….

:func:`train_stage_run` trains one stage for one seed on one split whose source stage-run exists, writes the
stage-run's folder and returns its results row. A finished stage-run (same settings, same data) is not retrained
unless ``force``; an interrupted one resumes. The driver (:func:`artlib.train.driver.run_stages`) is the one
entry point and the only writer of results.csv.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from artlib import atomic, rundir
from artlib.data.manifest import manifest_split_seeds, read_manifest
from artlib.errors import DataError
from artlib.metrics import (class_weights, classification_metrics, emotion9_metrics, majority_class, prior_by_group,
                            score, scored)
from artlib.models import checkpoints
from artlib.models.backbone import ArtNet, pick_device, pick_precision
from artlib.models.weights import Weights, resolve_weights
from artlib.models.stored import load_stage_model
from artlib.stages import Stage, get_stage
from artlib.train.config import TrainConfig
from artlib.train.inputs import FeatureSource, StageInputs, TaskData, stage_inputs, task_data
from artlib.train.losses import SoftTargetKL
from artlib.train.loop import EpochCallback, LoopResult, evaluate, set_seeds, train_loop
from artlib.train import resume
from artlib.train.probe import fit_probe
from artlib.train.allocator import freed_memory_kept
from artlib.train.heap import earlier_objects_frozen
from artlib.train.threads import cpu_share, one_core_spared

log = logging.getLogger(__name__)


def prepare_report(run_dir: Path) -> dict:
    """The run directory's prepare_report.json (data root, the labels' settings), with a clear error if missing."""
    report = rundir.prepare_report(run_dir)
    if not report.is_file():
        raise DataError(f"{report}: missing; run notebook 02 (or `python -m artlib prepare`) for this run directory.")
    return atomic.read_json(report, "rerun prepare (notebook 02, or `python -m artlib prepare`)")


def data_root_of(run_dir: Path) -> Path:
    """The data root the run directory's manifest was prepared from (recorded in prepare_report.json)."""
    return Path(prepare_report(run_dir)["data_root"])


def labelling(run_dir: Path) -> dict[str, str]:
    """What the stage-run's labels came from: label rule, era map and the manifest's digest (results columns)."""
    config = prepare_report(run_dir).get("config", {})
    digest = checkpoints.file_sha256(rundir.manifest(run_dir))[:16]
    return {"label_rule": str(config.get("label_rule", "")), "era_map": str(config.get("era_map", "")),
            "manifest_sha256": digest}


def resolve_split_seeds(run_dir: Path, requested: int | None = None) -> list[int]:
    """Split seeds 0 … K−1 to train on: the first ``requested`` ones, or (None) every one the manifest holds."""
    path = rundir.manifest(run_dir)
    if requested is not None and requested < 1:
        raise DataError(f"--split-seeds {requested}: train on at least one split (1 = the manifest's column split).")
    if not path.is_file():  # training stops on the missing manifest, with its own message
        return list(range(requested or 1))
    available = max(manifest_split_seeds(path), 1)
    if requested is None:
        return list(range(available))
    if requested > available:
        raise DataError(f"--split-seeds {requested}: {path} holds {available} split(s); rerun prepare with "
                        f"--split-seeds {requested}.")
    return list(range(requested))


def _digest(*parts: object) -> str:
    """Short stable hash of JSON-able parts."""
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


# ---- identity ----------------------------------------------------------------------------
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
                   progress: bool = True, split_seed: int = 0) -> StageIdentity:
    """Resolve weights, device and precision and hash them with the stage, settings, split seed and data.

    Split seed 0 hashes as before 0.3 (finished runs stay reusable); another split seed enters the hash.
    """
    device = pick_device(config.device)
    precision = pick_precision(config.precision, device)
    if stage.init_from is None:
        weights: Weights | None = resolve_weights(config.weights, verbose=progress, backbone=config.backbone)
        origin = {"weights": weights.label, "digest": weights.digest}
        label = weights.label
    else:
        weights = None
        source = atomic.read_json(rundir.stage_run(run_dir, stage.init_from, seed, split_seed, config.backbone).metrics,
                                  f"retrain {stage.init_from} (train it with --force)")
        origin = {"stage": stage.init_from, "config_hash": source["config_hash"], "model_sha256": source["model_sha256"]}
        label = source["result"]["backbone_weights"]
    settings = config.result_fields() | {"precision": precision} | ({"split_seed": split_seed} if split_seed else {})
    config_hash = _digest(asdict(stage), seed, settings, origin, _digest(data.identity_rows()))
    return StageIdentity(config_hash, origin, label, weights, device, precision)


def finished_row(run_dir: Path, name: str, seed: int, identity: StageIdentity, split_seed: int = 0,
                 backbone: str = rundir.DEFAULT_BACKBONE) -> dict | None:
    """The results row of a stage-run already finished with this identity and an intact model, else None."""
    try:
        done = atomic.read_json(rundir.stage_run(run_dir, name, seed, split_seed, backbone).metrics,
                                f"retrain {name} (train it with --force)")
        if done.get("config_hash") != identity.config_hash:
            return None
        if get_stage(name).spec.scores_subset and "n_all_test" not in done["result"]:
            log.warning("%s (seed %d): scored on every test painting (before 0.3) — training it again to score it on "
                        "the > 50%% subset like every nine-emotion figure", name, seed)
            return None
        model = rundir.stage_run(run_dir, name, seed, split_seed, backbone).model
        if not model.is_file() or checkpoints.file_sha256(model) != done.get("model_sha256"):
            log.warning("%s (seed %d): its model.pt is missing or no longer matches the hash recorded when it was "
                        "written (corrupted or modified) — training the stage again", name, seed)
            return None
        log.warning("%s (seed %d): finished earlier with these settings — reusing it (accuracy %.3f); pass "
                    "force=True (CLI: --force) to retrain", name, seed, done["result"]["accuracy"])
        return {**done["result"], "split_seed": split_seed, "backbone": backbone}
    except (OSError, ValueError, KeyError):
        return None  # absent or unreadable metrics: train


def start_model(stage: Stage, run_dir: Path, seed: int, identity: StageIdentity, config: TrainConfig,
                split_seed: int = 0) -> ArtNet:
    """The stage's starting model: pretrained or the source stage-run's backbone (same seed, split and backbone),
    a fresh head."""
    set_seeds(seed)
    if stage.init_from is None:
        model = ArtNet.build(len(stage.classes), identity.weights, seed=seed, backbone=config.backbone,
                             image_size=config.image_size)
    else:
        source, _ = load_stage_model(run_dir, stage.init_from, seed, split_seed=split_seed, backbone=config.backbone)
        carried = Weights(label="carried", source="memory", mean=tuple(source.mean.flatten().tolist()),
                          std=tuple(source.std.flatten().tolist()), backbone=config.backbone)
        model = ArtNet.build(len(stage.classes), carried, seed=seed, state=source.backbone_state(),
                             image_size=config.image_size)
    return model.freeze_all().unfreeze(*stage.blocks)


def class_weights_for(stage: Stage, data: TaskData, inputs: StageInputs, config: TrainConfig) -> np.ndarray | None:
    """The per-class weights the stage's loss uses (None: unweighted, as for a distribution task)."""
    if stage.spec.loss == "soft_kl" or not config.class_weights:
        return None
    return class_weights(data.labels[inputs.positions["train"]], len(stage.classes))


def criterion_for(stage: Stage, y_train: np.ndarray, config: TrainConfig, device: torch.device) -> nn.Module:
    """The stage's loss: KL divergence to the vote distribution (nine emotions), else class-weighted cross-entropy."""
    if stage.spec.loss == "soft_kl":
        return SoftTargetKL()  # ArtEmis's loss; it fits the distribution, so no class weights
    weights = class_weights(y_train, len(stage.classes)) if config.class_weights else None
    return nn.CrossEntropyLoss(weight=None if weights is None else torch.tensor(weights, dtype=torch.float32,
                                                                                 device=device))


# ---- recording ---------------------------------------------------------------------------
def _results_row(stage: Stage, seed: int, m: dict, baseline: int, inputs: StageInputs, loop: LoopResult,
                 config: TrainConfig, identity: StageIdentity, run_dir: Path, split_seed: int = 0) -> dict:
    """The stage-run's results.csv row."""
    pos = inputs.positions
    return {
        "configuration": stage.configuration_name, "stage": stage.name, "task": stage.task,
        "trained_blocks": stage.trained_blocks, "init_from": stage.init_from or "pretrained", "seed": seed,
        "split_seed": split_seed, "backbone": config.backbone,
        "accuracy": m["accuracy"], "f1": m["f1"], "balanced_accuracy": m["balanced_accuracy"], "n_test": m["n"],
        "majority_baseline_accuracy": m["majority_baseline_accuracy"], "majority_baseline_f1": m["majority_baseline_f1"],
        "majority_class": stage.classes[baseline], "backbone_weights": identity.backbone_label,
        "best_epoch": loop.best_epoch, "epochs_run": loop.epochs_run, "train_seconds": round(loop.seconds, 2),
        "cache_seconds": round(inputs.seconds, 2), "n_train": int(len(pos["train"])), "n_val": int(len(pos["val"])),
        "skipped_images": len(inputs.skipped), "image_size": config.image_size, "epochs": config.epochs,
        "batch_size": config.batch_size, "lr": config.lr, "monitor": config.monitor, "augment": config.augment,
        "feature_cache": isinstance(inputs.source, FeatureSource), "device": str(identity.device),
        "precision": identity.precision, "config_hash": identity.config_hash, **labelling(run_dir),
    }


def is_scored(data: TaskData, positions: np.ndarray) -> np.ndarray:
    """Per task position: whether it counts for the task's metrics (nine emotions: a > 50% emotion; else all)."""
    counts = data.frame[list(data.count_columns)].to_numpy()[positions] if data.count_columns else None
    return scored(counts, len(positions))


def _predictions(stage: Stage, data: TaskData, pos: dict[str, np.ndarray], probs: np.ndarray) -> pd.DataFrame:
    """predictions.csv: each test painting's label, prediction, probabilities, the era-prior baseline's answer and
    whether it is scored (1: it counts for the task's metrics).

    The era prior is chosen on the scored training paintings. For a distribution task also the painting's votes per
    emotion (n_<emotion>) and its binary label (polarity), so every ArtEmis metric can be recomputed from the file.
    """
    frame = data.frame.iloc[pos["test"]]
    y_test, pred = data.labels[pos["test"]], probs.argmax(1)
    eras = data.frame["era"].to_numpy()
    train = pos["train"][is_scored(data, pos["train"])]
    prior = prior_by_group(eras[train], data.labels[train], eras[pos["test"]], len(stage.classes))
    out = pd.DataFrame({
        "image_path": frame["image_path"].to_numpy(), "era": frame["era"].to_numpy(),
        "label": [stage.classes[i] for i in y_test], "predicted": [stage.classes[i] for i in pred],
        "probability": probs[np.arange(len(pred)), pred], "era_prior": [stage.classes[i] for i in prior],
        "scored": is_scored(data, pos["test"]).astype(np.int64),
        **{f"p_{c}": probs[:, i] for i, c in enumerate(stage.classes)}})
    if stage.spec.soft:
        for column in stage.spec.count_columns:
            out[column] = frame[column].to_numpy()
        out["polarity"] = frame["emotion"].to_numpy()
    return out


def _test_metrics(stage: Stage, data: TaskData, pos: dict[str, np.ndarray], probs: np.ndarray,
                  predictions: pd.DataFrame) -> tuple[dict, int]:
    """Test metrics on the scored test paintings with both trivial baselines, chosen on the scored training paintings
    (for a distribution task also ArtEmis's metrics and the accuracy on every test painting); the majority class."""
    k = len(stage.classes)
    y_test, pred = data.labels[pos["test"]], probs.argmax(1)
    keep = predictions["scored"].to_numpy() == 1
    baseline = majority_class(data.labels[pos["train"][is_scored(data, pos["train"])]], k)
    m = classification_metrics(y_test[keep], pred[keep], k, baseline)
    hits = (predictions["era_prior"] == predictions["label"]).to_numpy()[keep]
    m["era_prior_baseline_accuracy"] = float(np.mean(hits)) if len(hits) else float("nan")
    if stage.spec.extra_metrics:
        m["accuracy_all_test"], m["n_all_test"] = score(y_test, pred, "accuracy", k), int(len(y_test))
        counts = predictions[list(stage.spec.count_columns)].to_numpy()
        m.update(emotion9_metrics(counts, probs, predictions["polarity"].to_numpy(), baseline))
    return m, baseline


def stage_timing(startup: float, model: float, inputs: StageInputs, loop: LoopResult) -> dict[str, float]:
    """Where a stage-run's time went, in seconds (metrics.json ``timing``; the epochs' parts summed over history.csv)."""
    def total(column: str) -> float:
        """A history column's sum (rows without it, e.g. resumed from their own checkpoint, count 0)."""
        return sum(float(r.get(column) or 0.0) for r in loop.history)

    validation = total("val_seconds")
    parts = {"startup_seconds": startup, "model_seconds": model,
             "image_cache_seconds": inputs.seconds - inputs.feature_seconds, "feature_cache_seconds": inputs.feature_seconds,
             "training_seconds": loop.seconds - validation, "validation_seconds": validation,
             "checkpoint_seconds": total("checkpoint_seconds")}
    return {k: round(v, 4) for k, v in parts.items()}


def evaluate_and_record(model: ArtNet, stage: Stage, seed: int, data: TaskData, inputs: StageInputs, loop: LoopResult,
                        config: TrainConfig, identity: StageIdentity, criterion: nn.Module, run_dir: Path,
                        threads: int = 0, split_seed: int = 0, timing: dict[str, float] | None = None) -> dict:
    """Score the best weights on the test split; write predictions, history and model.pt (written while the test
    pass runs), then, last, metrics.json.

    ``timing`` (see :func:`stage_timing`) is recorded in metrics.json with this call's own time (``test_seconds``).
    """
    t0 = time.perf_counter()
    files = rundir.stage_run(run_dir, stage.name, seed, split_seed, config.backbone)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="artlib-model") as saving, one_core_spared():
        # model.pt is written (and waited for on the disk) while the test pass computes: the weights are final and
        # the test pass only reads them; metrics.json, which records the file's hash, comes after it is durable
        # the snapshot is taken here: device work stays on this thread (two threads using MPS at once can crash)
        saved = saving.submit(checkpoints.save, files.model, _model_payload(model, stage, seed, config, identity,
                                                                             split_seed), digest=True)
        pos = inputs.positions
        test_loss, probs = evaluate(model, inputs.source, pos["test"], data.fitted, criterion, identity.device,
                                    identity.precision, config.batch_size)
        predictions = _predictions(stage, data, pos, probs)
        m, baseline = _test_metrics(stage, data, pos, probs, predictions)
        atomic.write_csv(files.predictions, predictions)
        atomic.write_csv(files.history, pd.DataFrame(loop.history))
        sha = saved.result()
    row = {**_results_row(stage, seed, m, baseline, inputs, loop, config, identity, run_dir, split_seed),
           "threads": threads,
           "era_prior_baseline_accuracy": m["era_prior_baseline_accuracy"],
           **{k: m[k] for k in EMOTION9_RESULT_COLUMNS if k in m}}
    layout = "channels_last" if model.memory_format == torch.channels_last else "contiguous"
    atomic.write_json(files.metrics, {
        "result": row, "metrics": m, "test_loss": test_loss, "config_hash": identity.config_hash,
        "model_sha256": sha, "classes": list(stage.classes), "skipped_images": inputs.skipped,
        "resumed_from_epoch": loop.resumed_from, "layout": layout,
        "timing": {**(timing or {}), "test_seconds": round(time.perf_counter() - t0, 4)}})
    return row


def _model_payload(model: ArtNet, stage: Stage, seed: int, config: TrainConfig, identity: StageIdentity,
                   split_seed: int) -> dict:
    """What the stage-run's model.pt holds: its weights (on the CPU) and the metadata saying what they are."""
    model_meta = checkpoints.make_meta(kind="model", stage=stage.name, task=stage.task, classes=list(stage.classes),
                                       seed=seed, config_hash=identity.config_hash, image_size=config.image_size,
                                       mean=model.mean.flatten().tolist(), std=model.std.flatten().tolist(),
                                       backbone_weights=identity.backbone_label, trained_blocks=list(stage.blocks),
                                       **({"backbone": config.backbone} if config.backbone != rundir.DEFAULT_BACKBONE
                                          else {}),
                                       **({"split_seed": split_seed} if split_seed else {}))
    return {"meta": model_meta, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


EMOTION9_RESULT_COLUMNS = ("dominant_accuracy", "dominant_share", "dominant_majority_baseline_accuracy",
                           "at_least_half_accuracy", "at_least_half_share", "mean_kl", "polarity_accuracy",
                           "polarity_n", "accuracy_all_test", "n_all_test")
"""The nine-emotion task's extra results.csv columns (ArtEmis's metrics; see artlib.metrics). Its accuracy, f1,
balanced_accuracy, n_test and baselines are on the scored (> 50%) subset, like every column not named otherwise;
``accuracy_all_test`` / ``n_all_test`` are over every test painting, the ``at_least_half_*`` ones on the ≥ 50% subset,
``mean_kl`` over every test painting, ``polarity_*`` on those with a binary label."""


# ---- running -----------------------------------------------------------------------------
def _prepare_folder(files: rundir.StageRunFiles, stage: Stage, seed: int, config: TrainConfig, identity: StageIdentity,
                    force: bool, split_seed: int = 0) -> None:
    """Make the stage-run's folder writable and fresh: stale temporary files gone, config.json written."""
    if force:
        resume.remove(files.checkpoint)
    atomic.check_writable(files.folder, "write", "choose another run_dir")  # before any work; creates the folder
    for stale in files.folder.glob(".*.tmp*"):
        stale.unlink(missing_ok=True)  # a temporary file of a run killed while saving (checkpoints are ~100s of MB)
    worker = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}  # who trains it, since when
    atomic.write_json(files.config, {"stage": asdict(stage), "seed": seed, "split_seed": split_seed,
                                               "config": asdict(config),
                                               "precision": identity.precision, "device": str(identity.device),
                                               "origin": identity.origin, "config_hash": identity.config_hash,
                                               "worker": worker})


def train_stage_run(name: str, run_dir: str | Path, config: TrainConfig = TrainConfig(), seed: int = 0,
                    force: bool = False, progress: bool = True, data_root: str | Path | None = None,
                    on_epoch_end: EpochCallback | None = None, threads: int | None = None,
                    split_seed: int = 0) -> dict:
    """Train one stage for one seed on one split seed whose source stage-run exists; write its folder, return its row.

    The worker of every executor: it never writes results.csv. ``on_epoch_end(epoch, history_row)``
    is called after each epoch's checkpoint (e.g. to report progress, or to stop a run). ``threads``:
    torch threads and image-decoding workers (default: this process's share of the cores, see
    :mod:`artlib.train.threads`). ``split_seed``: the manifest's split column it trains and tests on (0: 'split').
    """
    # (the process's imports left out of GC scans; freed activations reused, not faulted in afresh every batch)
    with cpu_share(threads) as used, earlier_objects_frozen(), freed_memory_kept():
        if config.workers is None:  # image decoding follows the same share as torch's threads
            config = replace(config, workers=used)
        return _train(name, Path(run_dir), config, seed, force, progress, data_root, on_epoch_end, used, split_seed)


def _train(name: str, run_dir: Path, config: TrainConfig, seed: int, force: bool, progress: bool,
           data_root: str | Path | None, on_epoch_end: EpochCallback | None, threads: int, split_seed: int) -> dict:
    """train_stage_run's work, with the thread count already set."""
    t_start = time.perf_counter()
    stage = get_stage(name)
    manifest_path = rundir.manifest(run_dir)
    manifest = read_manifest(manifest_path)
    archive = (Path(data_root) if data_root is not None else data_root_of(run_dir)) / "archive"
    data = task_data(manifest, stage, manifest_path, config.min_annotations, split_seed)
    identity = stage_identity(stage, run_dir, config, seed, data, progress, split_seed)
    files = rundir.stage_run(run_dir, name, seed, split_seed, config.backbone)
    if not force and (row := finished_row(run_dir, name, seed, identity, split_seed, config.backbone)) is not None:
        resume.remove(files.checkpoint)  # left by an interrupted --force rerun: never used
        return row
    _prepare_folder(files, stage, seed, config, identity, force, split_seed)
    t_model = time.perf_counter()
    model = start_model(stage, run_dir, seed, identity, config, split_seed)
    t_inputs = time.perf_counter()
    inputs = stage_inputs(model, stage, data, manifest, archive, run_dir, config, seed, identity.device,
                          identity.precision, progress)
    criterion = criterion_for(stage, data.labels[inputs.positions["train"]], config, identity.device)
    meta = checkpoints.make_meta(kind="checkpoint", stage=name, task=stage.task, classes=list(stage.classes),
                                 seed=seed, config_hash=identity.config_hash)
    if stage.probe:  # the head scikit-learn fitted (in float64) is scored in fp32, never under bf16 autocast
        identity = replace(identity, precision="fp32")
        loop = fit_probe(model, inputs.source, data.fitted, inputs.positions, config, identity.device,
                         identity.precision, criterion, class_weights_for(stage, data, inputs, config))
    else:
        loop = train_loop(model, inputs.source, data.fitted, inputs.positions["train"], inputs.positions["val"],
                          config, seed, identity.device, identity.precision, criterion, files.checkpoint, meta,
                          progress=progress, on_epoch_end=on_epoch_end)
    timing = stage_timing(t_model - t_start, t_inputs - t_model, inputs, loop)
    row = evaluate_and_record(model, stage, seed, data, inputs, loop, config, identity, criterion, run_dir, threads,
                              split_seed, timing)
    resume.remove(files.checkpoint)  # (after any background deletion of its slots)
    return row
