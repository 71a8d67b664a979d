"""Classification metrics on plain arrays — one implementation each, used by training, tables and tests.

Accuracy, balanced accuracy, F1, the confusion matrix and balanced class weights are scikit-learn's
(``sklearn.metrics`` / ``sklearn.utils.class_weight``); this module fixes the arguments that make them the
study's metrics (labels 0..k-1, F1 of class 1 for two classes and macro otherwise, zero_division=0, NaN for no
items) and keeps the confusion-matrix form: :func:`from_confusion` hands each matrix's cells to scikit-learn as
weighted (true, predicted) pairs, so a stack of seeds' matrices needs no predictions. No model code and no
torch: metrics can be recomputed from predictions.csv files long after training.

Measured cost (2 shared cores, sklearn 1.9.1, 2,000 and 12,000 test paintings, k = 2 and 9): scikit-learn's
input validation makes a metric 0.5-1.7 ms a call against 10-30 µs for the numpy formulas it replaced (50-350×);
per call site that is 6-10 ms per validation epoch (confusion + three metrics), 8-13 ms per stage-run's test
metrics, 14-16 ms per stage in a comparison (three metrics on five seeds' matrices). Nothing calls them in a
loop (no bootstrap; a 1,000-matrix bootstrap would take 0.7 s instead of 0.4 ms), so none keeps a numpy path.
Importing this module imports ``sklearn.metrics``: 0.88 s instead of 0.06 s alone, +0.12 s for
artlib.analysis.compare (pandas and scipy already loaded), +0.7 s for artlib.train.runner (after torch's 2.4 s).
The data layer (artlib.data, artlib.tasks, artlib.stages) does not import it.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score
from sklearn.utils.class_weight import compute_class_weight

NAMED_METRICS = ("accuracy", "f1", "f1_binary", "f1_macro", "balanced_accuracy")


def _labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Integer labels as a flat int64 array, refused unless in 0..n_classes-1 (scikit-learn would drop the rest)."""
    y = np.asarray(y, dtype=np.int64).ravel()
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be 0..{n_classes - 1}; got {y.min()}..{y.max()}")
    return y


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """The (n_classes × n_classes) confusion matrix of integer labels, rows = true class (sklearn's, labels 0..k-1)."""
    y_true, y_pred = _labels(y_true, n_classes), _labels(y_pred, n_classes)
    if not len(y_true) and not len(y_pred):
        return np.zeros((n_classes, n_classes), dtype=np.int64)  # sklearn 1.9 refuses empty input
    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)).astype(np.int64, copy=False)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of items whose prediction equals the label (any label type; sklearn's accuracy_score), NaN for none."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    return float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan")


def _metric(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray, metric: str, k: int) -> float:
    """One named metric by scikit-learn of weighted (true, predicted) pairs with labels 0..k-1 (at least one item).

    F1: zero_division=0 (a class never true nor predicted scores 0, no warning). Balanced accuracy: the mean
    recall over the classes present in ``y_true``; a class only predicted is left out, which is sklearn's rule
    too — its 'y_pred contains classes not in y_true' warning is silenced here, and so is 1.9's warning that a
    single label makes its internal confusion matrix 1×1 (that matrix's shape does not change the mean recall).
    Against the definitions (artlib's former numpy formulas) accuracy and F1 are equal exactly and balanced accuracy
    to 1e-15: sklearn averages only the present recalls, the former formula summed zeros in, so the float sum is
    grouped differently (tests/test_stats.py::test_the_scikit_learn_metrics_equal_their_definitions…).
    """
    if metric == "accuracy":
        return float(accuracy_score(y_true, y_pred, sample_weight=weight))
    if metric in ("f1_binary", "f1") and (metric == "f1_binary" or k == 2):
        return float(f1_score(y_true, y_pred, labels=[1], average=None, sample_weight=weight, zero_division=0)[0])
    if metric in ("f1", "f1_macro"):
        return float(f1_score(y_true, y_pred, labels=np.arange(k), average="macro", sample_weight=weight,
                              zero_division=0))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found in 'y_true' and 'y_pred'")
        return float(balanced_accuracy_score(y_true, y_pred, sample_weight=weight))


def from_confusion(conf: np.ndarray, metric: str, n_classes: int | None = None) -> np.ndarray:
    """A named metric from confusion matrices (..., k, k), computed by scikit-learn; NaN where there are no items.

    'f1' is the study's F1 (class index 1 for two classes, macro over all k classes otherwise; 0 where
    undefined); 'balanced_accuracy' averages recall over the classes present. Each matrix's non-zero cells
    are passed to scikit-learn as (row, column) pairs weighted by the count — the same sums, so the same
    value as scikit-learn on the predictions themselves.
    """
    if metric not in NAMED_METRICS:
        raise ValueError(f"unknown metric {metric!r}; named metrics are {NAMED_METRICS}")
    conf = np.asarray(conf, dtype=np.float64)
    size = conf.shape[-1]
    k = size if n_classes is None else n_classes
    rows, cols = np.divmod(np.arange(size * size), size)
    out = np.full(conf.shape[:-2], np.nan)
    for index in np.ndindex(out.shape):
        cells = conf[index].ravel()
        nonzero = cells != 0
        if cells.sum() > 0:
            out[index] = _metric(rows[nonzero], cols[nonzero], cells[nonzero], metric, k)
    return out


def score(y_true: np.ndarray, y_pred: np.ndarray, metric: str, n_classes: int) -> float:
    """One named metric of integer labels and predictions (NaN for no items)."""
    return float(from_confusion(confusion(y_true, y_pred, n_classes), metric, n_classes))


def f1_for_task(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """F1 as the study reports it: positive class (index 1) for binary tasks, macro-averaged otherwise."""
    return score(y_true, y_pred, "f1", n_classes)


def majority_class(y_train: np.ndarray, n_classes: int) -> int:
    """The most frequent training class (lowest index on ties): what 'always answer X' answers."""
    return int(np.argmax(np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes)))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                           baseline_class: int | None = None) -> dict:
    """Accuracy, F1, balanced accuracy, confusion matrix, and the majority baseline on the same items."""
    y_true = np.asarray(y_true, dtype=np.int64)
    conf = confusion(y_true, y_pred, n_classes)
    out = {"n": int(len(y_true)), "confusion_matrix": conf.tolist(),
           **{m: float(from_confusion(conf, m, n_classes)) for m in ("accuracy", "f1", "balanced_accuracy")}}
    if baseline_class is not None:
        always = np.full_like(y_true, baseline_class)
        out["majority_baseline_class"] = int(baseline_class)
        out["majority_baseline_accuracy"] = score(y_true, always, "accuracy", n_classes)
        out["majority_baseline_f1"] = f1_for_task(y_true, always, n_classes) if len(y_true) else float("nan")
    return out


def class_weights(y_train: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-CLASS weights n / (k · count_c) by sklearn's compute_class_weight('balanced'), k = the classes present;
    classes absent from training get 0 (sklearn refuses a class absent from y, so only present ones are passed)."""
    y = _labels(y_train, n_classes)
    weights = np.zeros(n_classes)
    present = np.unique(y)
    if len(present):
        weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return weights


def prior_by_group(groups_train: np.ndarray, y_train: np.ndarray, groups_test: np.ndarray,
                   n_classes: int) -> np.ndarray:
    """Per test item, the majority training class of its group (e.g. its era); the overall majority for groups
    absent from training and on ties — the era-prior baseline."""
    overall = majority_class(y_train, n_classes)
    table = {}
    for group in np.unique(groups_train):
        counts = np.bincount(np.asarray(y_train)[groups_train == group], minlength=n_classes)
        top = np.flatnonzero(counts == counts.max())
        table[group] = overall if len(top) > 1 and overall in top else int(top[0])
    return np.array([table.get(g, overall) for g in groups_test], dtype=np.int64)


# ---- the nine-emotion task (ArtEmis's definitions) ----------------------------------------------------
def dominant(counts: np.ndarray, strict: bool = True) -> np.ndarray:
    """Paintings where one emotion has more than half of the votes (``strict``, ArtEmis's headline subset) or at
    least half (a 50/50 tie counts here, not above) — from integer vote counts, so 3 of 6 is exactly half."""
    counts = np.asarray(counts)
    top, total = counts.max(axis=1) * 2, counts.sum(axis=1)
    return (top > total) if strict else (top >= total)


def scored(counts: np.ndarray | None, n: int) -> np.ndarray:
    """Which of ``n`` paintings count for their task's metrics: for a distribution task (its vote ``counts`` given)
    those with a > 50% emotion (ArtEmis's headline subset), for a hard-label task (``counts`` None) every one."""
    return np.ones(n, dtype=bool) if counts is None else dominant(counts, strict=True)


def mean_kl(shares: np.ndarray, probs: np.ndarray) -> float:
    """Mean over paintings of KL(annotated shares ‖ predicted distribution), natural log, 0·log 0 = 0."""
    shares = np.asarray(shares, dtype=np.float64)
    q = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(shares > 0, shares * (np.log(shares) - np.log(q)), 0.0)
    return float(terms.sum(axis=1).mean()) if len(shares) else float("nan")


def polarity_of(probs: np.ndarray, n_positive: int = 4, n_negative: int = 4) -> np.ndarray:
    """'positive' where the four positive emotions' probabilities sum to more than the four negative ones', else
    'negative' (ArtEmis's order: positive emotions first, then negative, then 'something else')."""
    probs = np.asarray(probs, dtype=np.float64)
    positive = probs[:, :n_positive].sum(axis=1)
    negative = probs[:, n_positive:n_positive + n_negative].sum(axis=1)
    return np.where(positive > negative, "positive", "negative")


def emotion9_metrics(counts: np.ndarray, probs: np.ndarray, polarity: np.ndarray, majority: int) -> dict:
    """ArtEmis's metrics of a nine-emotion model on test paintings (see the README for the definitions)."""
    counts = np.asarray(counts)
    top, pred = counts.argmax(axis=1), np.asarray(probs).argmax(axis=1)  # ties: the first emotion, as np.argmax
    out: dict = {}
    for name, strict in (("dominant", True), ("at_least_half", False)):
        mask = dominant(counts, strict)
        out[f"{name}_n"] = int(mask.sum())
        out[f"{name}_share"] = float(mask.mean()) if len(mask) else float("nan")
        out[f"{name}_accuracy"] = accuracy(top[mask], pred[mask])
        out[f"{name}_majority_baseline_accuracy"] = accuracy(top[mask], np.full(int(mask.sum()), majority))
    shares = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None)
    out["mean_kl"] = mean_kl(shares, probs)
    labelled = np.asarray(polarity) != ""
    out["polarity_n"] = int(labelled.sum())
    out["polarity_accuracy"] = accuracy(np.asarray(polarity)[labelled], polarity_of(probs)[labelled])
    return out
