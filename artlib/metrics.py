"""Classification metrics on plain arrays (scikit-learn), with the trivial baseline always beside them.

No model code here: metrics can be recomputed from predictions.csv files after the fact.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score


def f1_for_task(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """F1 as the study reports it: positive class (index 1) for binary tasks, macro-averaged otherwise."""
    labels = list(range(n_classes))
    if n_classes == 2:
        return float(f1_score(y_true, y_pred, pos_label=1, average="binary", labels=labels, zero_division=0))
    return float(f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0))


def majority_class(y_train: np.ndarray, n_classes: int) -> int:
    """The most frequent training class (lowest index on ties): what 'always answer X' answers."""
    return int(np.argmax(np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes)))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                           baseline_class: int | None = None) -> dict:
    """Accuracy, F1, balanced accuracy, confusion matrix, and the majority baseline on the same items."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    labels = list(range(n_classes))
    out = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan"),
        "f1": f1_for_task(y_true, y_pred, n_classes) if len(y_true) else float("nan"),
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if baseline_class is not None:
        always = np.full_like(y_true, baseline_class)
        out["majority_baseline_class"] = int(baseline_class)
        out["majority_baseline_accuracy"] = float(np.mean(y_true == baseline_class)) if len(y_true) else float("nan")
        out["majority_baseline_f1"] = f1_for_task(y_true, always, n_classes) if len(y_true) else float("nan")
    return out


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class recall over the classes present (NaN for no items)."""
    if len(y_true) == 0:
        return float("nan")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true" is fine here
        return float(balanced_accuracy_score(y_true, y_pred))


def class_weights(y_train: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-CLASS weights n / (k · count_c) (sklearn's 'balanced'); classes absent from training get 0."""
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights
