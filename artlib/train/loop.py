"""The training loop: Adam, early stopping, best-epoch restore, resume from a checkpoint after every epoch.

Correct where the original was not: per-class weights, early stopping in the right
direction for the monitored metric, test metrics from the best epoch's weights, seeded data
order. A checkpoint (trainable weights, optimizer, epoch, history, RNG state, best weights so
far) is durable after every epoch before the next one starts, so a killed run loses only the epoch in
progress and resumes to exactly the same result; its weights are written before validation and reach the disk
while it runs (:mod:`artlib.train.resume`).
"""

from __future__ import annotations

import contextlib
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
from artlib.models.backbone import ArtNet, autocast
from artlib.train import resume
from artlib.train.config import MONITORS, TrainConfig
from artlib.log import progress as progress_bar

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
    state = resume.load(checkpoint_path, meta, model, optimizer, config.epochs)
    resumed_from = int(state.history[-1]["epoch"]) if state.history else 0
    epochs_bar = progress_bar(range(state.start_epoch, config.epochs + 1), desc=meta.get("stage", "training"), unit="epoch",
                      enabled=progress, initial=state.start_epoch - 1, total=config.epochs)
    for epoch in epochs_bar:
        t0 = time.perf_counter()
        train_loss, train_acc = _train_epoch(model, source, targets, epoch_order(train_pos, seed, epoch), epoch,
                                             criterion, optimizer, device, precision, config.batch_size, progress)
        t_trained = time.perf_counter()
        # The epoch's state is written now (validation changes none of it) and reaches the disk while validation
        # runs. The last epoch writes no slot: after it, resume.finish records the best epoch's slot as the end of
        # training, or, where the last epoch is the best, a crash before the results replays it.
        with (resume.SlotWriter(checkpoint_path, state.busy_slots(), model, optimizer) if epoch < config.epochs
              else contextlib.nullcontext()) as writer:  # on an error or interrupt, waited for before it passes on
            t_val = time.perf_counter()
            row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
                   **validation_row(model, source, targets, val_pos, criterion, device, precision, config.batch_size)}
            t_end = time.perf_counter()
            # the epoch: its training and validation passes (the slot's writing is the checkpoint's)
            row["seconds"], row["val_seconds"] = (t_trained - t0) + (t_end - t_val), t_end - t_val
            state.history.append(row)
            state.train_seconds += row["seconds"]
            if state.best.improves(row[config.monitor], MONITORS[config.monitor]):
                state.best = resume.Best(epoch, row[config.monitor], resume.copy_trainable(model, state.best.state))
            stopped = config.patience is not None and epoch - state.best.epoch >= config.patience
            final = stopped or epoch == config.epochs
            if writer is not None:  # the slot must be durable before the record, the record before the next epoch
                _commit(writer, state, epoch, checkpoint_path, meta, optimizer, stopped, final, config.epochs)
        # writing the slot, waiting for the disk, then the record: outside ``seconds``; reaches the next checkpoint's
        # copy of the history (empty in a row resumed from its own)
        row["checkpoint_seconds"] = 0.0 if writer is None else (t_val - t_trained) + time.perf_counter() - t_end
        epochs_bar.set_postfix(train_loss=f"{train_loss:.3f}", val_loss=f"{row['val_loss']:.3f}",
                               val_acc=f"{row['val_accuracy']:.3f}", best=state.best.epoch)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        if final:
            break
    epochs_bar.close()
    resume.finish(checkpoint_path, meta, optimizer, state)  # (the other slots are deleted while the results compute)
    if state.best.state is not None:
        model.load_state_dict({**model.state_dict(), **state.best.state})
    return LoopResult(history=state.history, best_epoch=int(state.best.epoch), epochs_run=len(state.history),
                      seconds=state.train_seconds, resumed_from=resumed_from)


def _commit(writer: resume.SlotWriter, state: resume.Progress, epoch: int, path: Path, meta: dict[str, Any],
            optimizer: torch.optim.Optimizer, stopped: bool, final: bool, epochs: int) -> None:
    """Wait for the epoch's slot, then, unless the loop ends here, write the record naming it; after the record of
    the last epoch that writes a slot, start deleting the slots no record will name again (in the background)."""
    state.current = writer.wait()
    state.best.slot = state.current if state.best.epoch == epoch else state.best.slot
    if final:
        return
    resume.save_record(path, meta, epoch, optimizer, state, stopped)
    if epoch + 1 == epochs:
        resume.remove_free_slots(path, state.busy_slots())


def make_adam(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch build has it (3× faster steps on CPU), else foreach."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)
