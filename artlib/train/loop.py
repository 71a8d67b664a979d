"""The training loop: Adam, class-weighted cross-entropy, early stopping, best-epoch restore, resume.

Correct where the original was not: per-class weights, early stopping in the right
direction for the monitored metric, test metrics from the best epoch's weights, seeded data
order. A checkpoint (trainable weights, optimizer, epoch, history, RNG state, best weights so
far) is written atomically after every epoch, so a killed run loses only the epoch in progress
and resumes to exactly the same result.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from artlib.models import checkpoints
from artlib.models.backbone import ArtNet, autocast
from artlib.metrics import f1_for_task

MONITORS = {"val_loss": "min", "val_accuracy": "max", "val_f1": "max", "val_balanced_accuracy": "max"}


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters and execution choices of one training stage."""

    image_size: int = 112
    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    class_weights: bool = True
    monitor: str = "val_loss"
    patience: int | None = 3  # epochs without improvement before stopping; None = never stop early
    augment: bool = False
    feature_cache: bool | None = None  # None = on whenever augmentation is off
    cache_dtype: str = "float16"
    weights: str = "auto"
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16
    workers: int | None = None  # image decoding processes (None: all cores)
    max_skipped_fraction: float = 0.01  # images failing to load above this stop the stage

    def __post_init__(self) -> None:
        """Reject impossible settings with the valid choices."""
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {tuple(MONITORS)}, got {self.monitor!r}")
        if self.epochs < 1 or self.batch_size < 2 or self.image_size < 32:
            raise ValueError("need epochs >= 1, batch_size >= 2 and image_size >= 32")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")

    @property
    def use_feature_cache(self) -> bool:
        """Whether the frozen prefix is cached (default: whenever there is no augmentation)."""
        return (not self.augment) if self.feature_cache is None else bool(self.feature_cache and not self.augment)

    def result_fields(self) -> dict[str, Any]:
        """The settings that change results (hashed into the stage's identity)."""
        out = asdict(self)
        for k in ("device", "workers", "feature_cache"):
            out.pop(k)
        return out


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
    prefixes = tuple(f"backbone.{m}." for b in model.trainable_blocks for m in _modules_of(b)) + ("head.",)
    state = {k: v.detach() for k, v in model.state_dict().items() if k.startswith(prefixes)}
    return {k: v.cpu().clone() for k, v in state.items()} if copy else state


def _modules_of(block: str) -> tuple[str, ...]:
    """torchvision module names of a block."""
    from artlib.models.backbone import BLOCK_MODULES

    return BLOCK_MODULES[block]


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


def train_loop(model: ArtNet, source: Source, labels: np.ndarray, train_pos: np.ndarray, val_pos: np.ndarray,
               config: TrainConfig, seed: int, device: torch.device, precision: str, weights: np.ndarray | None,
               checkpoint_path: Path, meta: dict[str, Any], progress: bool = True,
               on_epoch_end: Callable[[int], None] | None = None) -> LoopResult:
    """Train the model's trainable blocks; resume from ``checkpoint_path`` if it holds an earlier epoch."""
    n_classes = model.head.out_features
    w = torch.tensor(weights, dtype=torch.float32, device=device) if weights is not None else None
    criterion = nn.CrossEntropyLoss(weight=w)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_adam(params, config.lr, config.weight_decay)
    mode = MONITORS[config.monitor]
    history: list[dict[str, float]] = []
    best = {"epoch": 0, "score": None, "state": None}
    start_epoch, train_seconds = 1, 0.0
    if checkpoint_path.is_file():
        try:
            ck = checkpoints.load(checkpoint_path, expect={k: meta[k] for k in ("kind", "config_hash", "task", "stage")})
        except Exception as exc:  # noqa: BLE001 (damaged or stale: start over, loudly)
            print(f"ignoring checkpoint {checkpoint_path.name} (training from epoch 1 instead): {exc}")
            ck = None
        if ck is not None:
            model.load_state_dict({**model.state_dict(), **ck["trainable_state"]})
            optimizer.load_state_dict(ck["optimizer"])
            history = list(ck["history"])
            best = {"epoch": ck["best_epoch"], "score": ck["best_score"],
                    "state": ck.get("best_state") if ck.get("best_state") is not None else ck["trainable_state"]}
            _set_rng_state(ck["rng"])
            start_epoch = int(ck["epoch"]) + 1
            train_seconds = float(ck.get("train_seconds", 0.0))
            if ck.get("stopped"):
                start_epoch = config.epochs + 1
            print(f"resuming from epoch {start_epoch - 1} of {config.epochs} ({checkpoint_path})")
    resumed_from = start_epoch - 1
    epochs_bar = tqdm(range(start_epoch, config.epochs + 1), desc=meta.get("stage", "training"), unit="epoch",
                      disable=not progress, initial=resumed_from, total=config.epochs)
    stopped = False
    for epoch in epochs_bar:
        t0 = time.perf_counter()
        model.train()
        order = epoch_order(train_pos, seed, epoch)
        total, correct, seen = 0.0, 0, 0
        for chunk in tqdm(list(batches(order, config.batch_size)), desc=f"epoch {epoch}", leave=False,
                          disable=not progress, unit="batch"):
            x = source.get(chunk, epoch=epoch).to(device, non_blocking=True)
            y = torch.from_numpy(labels[chunk]).to(device)
            with autocast(device, precision):
                logits = model.forward_blocks(x, source.start, None)
            loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(chunk)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(chunk)
        val_loss, val_probs = evaluate(model, source, val_pos, labels, criterion, device, precision, config.batch_size)
        val_pred = val_probs.argmax(1)
        y_val = labels[val_pos]
        row = {"epoch": epoch, "train_loss": total / max(seen, 1), "train_accuracy": correct / max(seen, 1),
               "val_loss": val_loss, "val_accuracy": float(np.mean(val_pred == y_val)) if len(y_val) else float("nan"),
               "val_f1": f1_for_task(y_val, val_pred, n_classes) if len(y_val) else float("nan"),
               "val_balanced_accuracy": _balanced(y_val, val_pred), "seconds": time.perf_counter() - t0}
        history.append(row)
        train_seconds += row["seconds"]
        score = row[config.monitor]
        current = trainable_state(model, copy=False)  # saved right away, before training changes it again
        if best["score"] is None or (score < best["score"] if mode == "min" else score > best["score"]):
            best = {"epoch": epoch, "score": score, "state": {k: v.clone() for k, v in current.items()}}
        if config.patience is not None and epoch - best["epoch"] >= config.patience:
            stopped = True
        final = stopped or epoch == config.epochs
        if not final:
            # (After the final epoch the stage's results are written next; a crash before that replays
            # that deterministic epoch from this previous checkpoint, so writing one more only costs time.)
            checkpoints.save(checkpoint_path, {
                "meta": meta, "epoch": epoch, "trainable_state": current, "optimizer": optimizer.state_dict(),
                "history": list(history), "best_epoch": best["epoch"], "best_score": best["score"],
                # the best weights are stored separately only when they are not the current ones
                "best_state": None if best["epoch"] == epoch else best["state"],
                "rng": _rng_state(), "train_seconds": train_seconds, "stopped": stopped})
        epochs_bar.set_postfix(train_loss=f"{row['train_loss']:.3f}", val_loss=f"{val_loss:.3f}",
                               val_acc=f"{row['val_accuracy']:.3f}", best=best["epoch"])
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if final:
            break
    epochs_bar.close()
    if best["state"] is not None:
        model.load_state_dict({**model.state_dict(), **best["state"]})
    return LoopResult(history=history, best_epoch=int(best["epoch"]), epochs_run=len(history),
                      seconds=train_seconds, resumed_from=resumed_from)


def make_adam(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch build has it (3× faster steps on CPU), else foreach."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


def _balanced(y: np.ndarray, pred: np.ndarray) -> float:
    """Balanced accuracy without importing sklearn's warnings for absent classes."""
    if len(y) == 0:
        return float("nan")
    recalls = [float(np.mean(pred[y == c] == c)) for c in np.unique(y)]
    return float(np.mean(recalls))
