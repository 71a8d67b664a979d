"""The training loop: Adam, early stopping, best-epoch restore, resume from a checkpoint after every epoch.

Correct where the original was not: per-class weights, early stopping in the right
direction for the monitored metric, test metrics from the best epoch's weights, seeded data
order. A checkpoint (trainable weights, optimizer, epoch, history, RNG state, best weights so
far) is written atomically after every epoch, so a killed run loses only the epoch in progress
and resumes to exactly the same result.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from artlib import metrics
from artlib.models import checkpoints
from artlib.models.backbone import ArtNet, autocast
from artlib.train.config import MONITORS, TrainConfig
from artlib.log import progress as progress_bar

log = logging.getLogger(__name__)
EpochCallback = Callable[[int, dict[str, float]], None]
"""Called after each epoch (and its checkpoint) with the epoch number and its history row."""


class Source(Protocol):
    """Where a batch of inputs comes from: cached features, cached images or files."""

    start: str | None  # the block the inputs enter (None: raw images)

    def get(self, positions: np.ndarray, epoch: int) -> torch.Tensor:
        """Inputs for these task positions (epoch seeds augmentation)."""


def set_seeds(seed: int) -> None:
    """Seed python, numpy and torch (data order itself is seeded per epoch, see :func:`epoch_order`)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_order(positions: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The training order of an epoch: a permutation depending only on (seed, epoch), so resumes match."""
    return np.random.default_rng([seed, epoch]).permutation(positions)


def batches(order: np.ndarray, batch_size: int, drop_single: bool = True) -> Iterator[np.ndarray]:
    """Consecutive batches; a trailing batch of one is dropped (BatchNorm cannot train on it)."""
    for lo in range(0, len(order), batch_size):
        chunk = order[lo: lo + batch_size]
        if drop_single and len(chunk) < 2:
            return
        yield chunk


def trainable_state(model: ArtNet, copy: bool = True) -> dict[str, torch.Tensor]:
    """Weights and buffers of the trainable blocks and the head (what training changes); copies unless told not to."""
    keys = model.trainable_keys()
    state = {k: v.detach() for k, v in model.state_dict().items() if k in keys}
    return {k: v.cpu().clone() for k, v in state.items()} if copy else state


def _rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in a weights_only-loadable form."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "numpy_pos": int(np_state[2]), "python": list(random.getstate()[1])}


def _set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`_rng_state` saved."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))


@dataclass
class LoopResult:
    """What the loop hands back: the best weights are loaded into the model already."""

    history: list[dict[str, float]]
    best_epoch: int
    epochs_run: int
    seconds: float
    resumed_from: int  # 0 when started fresh


def evaluate(model: ArtNet, source: Source, positions: np.ndarray, labels: np.ndarray, criterion: nn.Module,
             device: torch.device, precision: str, batch_size: int) -> tuple[float, np.ndarray]:
    """Mean loss and class probabilities [n, k] on these positions, in eval mode."""
    was = model.training
    model.eval()
    probs, total, n = [], 0.0, 0
    with torch.no_grad():
        for chunk in batches(positions, batch_size, drop_single=False):
            x = source.get(chunk, epoch=-1).to(device)
            y = torch.from_numpy(labels[chunk]).to(device)
            with autocast(device, precision):
                logits = model.forward_blocks(x, source.start, None)
            logits = logits.float()
            total += float(criterion(logits, y)) * len(chunk)
            n += len(chunk)
            probs.append(torch.softmax(logits, dim=1).cpu().numpy())
    model.train(was)
    k = model.head.out_features
    return (total / max(n, 1), np.concatenate(probs) if probs else np.zeros((0, k), np.float32))


@dataclass
class _Best:
    """The best epoch so far, its monitored score and its trainable weights."""

    epoch: int = 0
    score: float | None = None
    state: dict[str, torch.Tensor] | None = None

    def improves(self, score: float, mode: str) -> bool:
        """Whether ``score`` beats the best one in the monitored direction."""
        return self.score is None or (score < self.score if mode == "min" else score > self.score)


@dataclass
class _Progress:
    """Where a (possibly resumed) loop stands."""

    history: list[dict[str, float]]
    best: _Best
    start_epoch: int = 1
    train_seconds: float = 0.0


def _resume(checkpoint_path: Path, meta: dict[str, Any], model: ArtNet, optimizer: torch.optim.Optimizer,
            epochs: int) -> _Progress:
    """The state of an earlier run of this stage from its checkpoint, or a fresh start (loudly, if damaged)."""
    fresh = _Progress(history=[], best=_Best())
    if not checkpoint_path.is_file():
        return fresh
    try:
        ck = checkpoints.load(checkpoint_path, expect={k: meta[k] for k in ("kind", "config_hash", "task", "stage")})
    except Exception as exc:  # noqa: BLE001 (damaged or stale: start over, loudly)
        log.warning("ignoring checkpoint %s (training from epoch 1 instead): %s", checkpoint_path.name, exc)
        return fresh
    model.load_state_dict({**model.state_dict(), **ck["trainable_state"]})
    optimizer.load_state_dict(ck["optimizer"])
    best_state = ck.get("best_state") if ck.get("best_state") is not None else ck["trainable_state"]
    _set_rng_state(ck["rng"])
    start = epochs + 1 if ck.get("stopped") else int(ck["epoch"]) + 1
    log.info("resuming from epoch %d of %d (%s)", start - 1, epochs, checkpoint_path)
    return _Progress(list(ck["history"]), _Best(ck["best_epoch"], ck["best_score"], best_state), start,
                     float(ck.get("train_seconds", 0.0)))


def _train_epoch(model: ArtNet, source: Source, targets: np.ndarray, order: np.ndarray, epoch: int,
                 criterion: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, precision: str,
                 batch_size: int, progress: bool) -> tuple[float, float]:
    """One pass over the training order; mean loss and accuracy (against the top target)."""
    model.train()
    total, correct, seen = 0.0, 0, 0
    for chunk in progress_bar(list(batches(order, batch_size)), desc=f"epoch {epoch}", leave=False, enabled=progress,
                      unit="batch"):
        x = source.get(chunk, epoch=epoch).to(device, non_blocking=True)
        y = torch.from_numpy(targets[chunk]).to(device)
        with autocast(device, precision):
            logits = model.forward_blocks(x, source.start, None)
        loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(chunk)
        top = y if y.ndim == 1 else y.argmax(1)
        correct += int((logits.argmax(1) == top).sum())
        seen += len(chunk)
    return total / max(seen, 1), correct / max(seen, 1)


def validation_row(model: ArtNet, source: Source, targets: np.ndarray, val_pos: np.ndarray, criterion: nn.Module,
                    device: torch.device, precision: str, batch_size: int) -> dict[str, float]:
    """Validation loss, accuracy, F1 and balanced accuracy (against the top target)."""
    val_loss, val_probs = evaluate(model, source, val_pos, targets, criterion, device, precision, batch_size)
    k = model.head.out_features
    top = targets[val_pos] if targets.ndim == 1 else targets[val_pos].argmax(1)
    conf = metrics.confusion(top, val_probs.argmax(1), k)
    return {"val_loss": val_loss, **{f"val_{m}": float(metrics.from_confusion(conf, m, k))
                                     for m in ("accuracy", "f1", "balanced_accuracy")}}


def train_loop(model: ArtNet, source: Source, targets: np.ndarray, train_pos: np.ndarray, val_pos: np.ndarray,
               config: TrainConfig, seed: int, device: torch.device, precision: str, criterion: nn.Module,
               checkpoint_path: Path, meta: dict[str, Any], progress: bool = True,
               on_epoch_end: EpochCallback | None = None) -> LoopResult:
    """Train the model's trainable blocks; resume from ``checkpoint_path`` if it holds an earlier epoch.

    ``targets`` are class indices (n,) or target distributions (n, k), as ``criterion`` expects. History rows time
    the epoch (``seconds``: training and validation passes), its validation (``val_seconds``) and its checkpoint.
    """
    model.to(device)
    optimizer = make_adam([p for p in model.parameters() if p.requires_grad], config.lr, config.weight_decay)
    state = _resume(checkpoint_path, meta, model, optimizer, config.epochs)
    resumed_from = state.start_epoch - 1
    epochs_bar = progress_bar(range(state.start_epoch, config.epochs + 1), desc=meta.get("stage", "training"), unit="epoch",
                      enabled=progress, initial=resumed_from, total=config.epochs)
    for epoch in epochs_bar:
        t0 = time.perf_counter()
        train_loss, train_acc = _train_epoch(model, source, targets, epoch_order(train_pos, seed, epoch), epoch,
                                             criterion, optimizer, device, precision, config.batch_size, progress)
        t_val = time.perf_counter()
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
               **validation_row(model, source, targets, val_pos, criterion, device, precision, config.batch_size)}
        t_end = time.perf_counter()
        row["seconds"], row["val_seconds"] = t_end - t0, t_end - t_val  # the epoch (training + validation), validation
        state.history.append(row)
        state.train_seconds += row["seconds"]
        current = trainable_state(model, copy=False)  # saved right away, before training changes it again
        if state.best.improves(row[config.monitor], MONITORS[config.monitor]):
            state.best = _Best(epoch, row[config.monitor], {k: v.clone() for k, v in current.items()})
        stopped = config.patience is not None and epoch - state.best.epoch >= config.patience
        final = stopped or epoch == config.epochs
        if not final:
            # (After the final epoch the stage's results are written next; a crash before that replays
            # that deterministic epoch from this previous checkpoint, so writing one more only costs time.)
            t_save = time.perf_counter()
            _save_checkpoint(checkpoint_path, meta, epoch, current, optimizer, state, stopped)
        # outside ``seconds``; reaches the next checkpoint's copy of the history (empty in a row resumed from its own)
        row["checkpoint_seconds"] = 0.0 if final else time.perf_counter() - t_save
        epochs_bar.set_postfix(train_loss=f"{train_loss:.3f}", val_loss=f"{row['val_loss']:.3f}",
                               val_acc=f"{row['val_accuracy']:.3f}", best=state.best.epoch)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        if final:
            break
    epochs_bar.close()
    if state.best.state is not None:
        model.load_state_dict({**model.state_dict(), **state.best.state})
    return LoopResult(history=state.history, best_epoch=int(state.best.epoch), epochs_run=len(state.history),
                      seconds=state.train_seconds, resumed_from=resumed_from)


def _save_checkpoint(path: Path, meta: dict[str, Any], epoch: int, current: dict[str, torch.Tensor],
                     optimizer: torch.optim.Optimizer, state: _Progress, stopped: bool) -> None:
    """Write the resumable state after an epoch (the best weights separately only when not the current ones)."""
    best = state.best
    checkpoints.save(path, {
        "meta": meta, "epoch": epoch, "trainable_state": current, "optimizer": optimizer.state_dict(),
        "history": list(state.history), "best_epoch": best.epoch, "best_score": best.score,
        "best_state": None if best.epoch == epoch else best.state,
        "rng": _rng_state(), "train_seconds": state.train_seconds, "stopped": stopped})


def make_adam(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch build has it (3× faster steps on CPU), else foreach."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)
