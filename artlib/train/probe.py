"""The linear-probe stage: a logistic regression on the frozen backbone's pooled features, the field's baseline.

No block trains. The pooled features come from the feature cache (computed once per backbone and weights); a
scikit-learn ``LogisticRegression`` (L2, lbfgs, multinomial) is fitted on the training paintings for each value of
the regularisation ``C`` in :data:`C_GRID`, and the ``C`` whose validation score is best (the stage's ``monitor``,
as for the fine-tuned stages: validation loss by default) is kept. Its coefficients become the model's linear head
(standardisation folded in), so predictions, checkpoints, ``predict`` and every comparison treat the probe like any
stage.

- Binary and genre tasks: class-weighted ('balanced', like the fine-tuned stages' loss) when ``class_weights``.
- Nine emotions: scikit-learn takes hard labels only, so each painting enters once per emotion it received votes
  for, weighted by that emotion's share of its votes. The weighted log-loss of that table is exactly the
  cross-entropy to the vote distribution (the KL loss of the fine-tuned stages, up to a constant), so this is the
  soft-target multinomial regression itself, not an approximation.
- Seeds: the fit is convex and deterministic, so with pretrained weights every seed gives the same head (and the
  same predictions); with random weights each seed has its own backbone. Seeds are kept so comparisons pair them.

The history has one row per ``C`` (``epoch`` = its position in the grid) with the training loss and the validation
figures.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from torch import nn

from artlib.models.backbone import ArtNet
from artlib.train.config import MONITORS, TrainConfig
from artlib.train.inputs import FeatureSource
from artlib.train.loop import LoopResult, evaluate, validation_row

log = logging.getLogger(__name__)

C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 7))
"""Inverse L2 strengths tried, strongest regularisation first (on standardised features)."""
ABSENT_LOGIT = -14.0
"""The logit of a class no training painting has (probability about 1e-6 beside a logit of 0): rare, not impossible,
so a validation vote for it keeps the loss finite."""


def _features(source: FeatureSource, positions: np.ndarray) -> np.ndarray:
    """The cached pooled features of these task positions as float64 (what scikit-learn fits best on)."""
    return np.asarray(source.array[np.sort(positions)][np.argsort(np.argsort(positions))], dtype=np.float64)


def _design(x: np.ndarray, targets: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """(rows, labels, sample weights) to fit: class-weighted hard labels, or one row per voted emotion by share."""
    if targets.ndim == 1:
        w = np.ones(len(targets)) if weights is None else weights[targets]
        return x, targets, w
    painting, emotion = np.nonzero(targets > 0)
    return x[painting], emotion, targets[painting, emotion].astype(np.float64)


def _to_head(model: ArtNet, fit: LogisticRegression, mean: np.ndarray, scale: np.ndarray, k: int) -> None:
    """Write a fitted regression into the model's linear head, folding the standardisation into its weights."""
    coef, intercept, present = fit.coef_, fit.intercept_, fit.classes_
    full_w, full_b = np.zeros((k, coef.shape[1])), np.full(k, ABSENT_LOGIT)
    if coef.shape[0] == 1:  # two classes: scikit-learn keeps the logit of the second against the first
        full_w[present[1]], full_b[present[1]], full_b[present[0]] = coef[0], intercept[0], 0.0
    else:
        full_w[present], full_b[present] = coef, intercept
    w = full_w / scale
    b = full_b - w @ mean
    with torch.no_grad():
        model.head.weight.copy_(torch.as_tensor(w, dtype=model.head.weight.dtype))
        model.head.bias.copy_(torch.as_tensor(b, dtype=model.head.bias.dtype))


def fit_probe(model: ArtNet, source: FeatureSource, targets: np.ndarray, positions: dict[str, np.ndarray],
              config: TrainConfig, device: torch.device, precision: str, criterion: nn.Module,
              class_weights: np.ndarray | None) -> LoopResult:
    """Fit the logistic-regression head for every C, keep the best on validation; the model's head holds it."""
    t0 = time.perf_counter()
    x = _features(source, positions["train"])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    rows, labels, weights = _design((x - mean) / scale, targets[positions["train"]], class_weights)
    k = model.head.out_features
    mode = MONITORS[config.monitor]
    history, best = [], None
    model.to(device)
    for epoch, c in enumerate(C_GRID, 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            fit = LogisticRegression(C=c, max_iter=2000).fit(rows, labels, sample_weight=weights)
        _to_head(model, fit, mean, scale, k)
        train_loss, _ = evaluate(model, source, positions["train"], targets, criterion, device, precision,
                                 config.batch_size)
        row = {"epoch": epoch, "C": c, "converged": not any(isinstance(w.message, ConvergenceWarning) for w in caught),
               "train_loss": train_loss, **validation_row(model, source, targets, positions["val"], criterion, device,
                                                          precision, config.batch_size)}
        history.append(row)
        score = row[config.monitor]
        if best is None or (score < best[0] if mode == "min" else score > best[0]):
            best = (score, epoch, fit)
    assert best is not None
    _to_head(model, best[2], mean, scale, k)
    if best[1] in (1, len(C_GRID)):
        log.warning("linear probe: the best C (%g) is at the edge of the grid %s — the optimum may lie beyond it",
                    C_GRID[best[1] - 1], C_GRID)
    return LoopResult(history=history, best_epoch=best[1], epochs_run=len(C_GRID),
                      seconds=time.perf_counter() - t0, resumed_from=0)
