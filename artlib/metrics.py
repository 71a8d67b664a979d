"""Classification metrics on plain arrays — one implementation each, used by training, tables and tests.

Every metric is computed from a confusion matrix (rows = true class), vectorised over any
leading axes so a bootstrap or a stack of seeds costs one call. No model code and no
scikit-learn here (the tests cross-check every metric against scikit-learn): metrics can be
recomputed from predictions.csv files long after training.
"""

from __future__ import annotations

import numpy as np

NAMED_METRICS = ("accuracy", "f1", "f1_binary", "f1_macro", "balanced_accuracy")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """The (n_classes × n_classes) confusion matrix of integer labels, rows = true class."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    cells = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return cells.reshape(n_classes, n_classes)


def from_confusion(conf: np.ndarray, metric: str, n_classes: int | None = None) -> np.ndarray:
    """A named metric from confusion matrices (..., k, k); NaN where there are no items.

    'f1' is the study's F1 (class index 1 for two classes, macro otherwise; 0 where undefined);
    'balanced_accuracy' averages recall over the classes present.
    """
    conf = np.asarray(conf, dtype=np.float64)
    k = conf.shape[-1] if n_classes is None else n_classes
    total = conf.sum(axis=(-2, -1))
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    true_n, pred_n = conf.sum(axis=-1), conf.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return np.where(total > 0, tp.sum(axis=-1) / total, np.nan)
        if metric in ("f1", "f1_binary", "f1_macro"):
            denom = true_n + pred_n
            f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
            binary = metric == "f1_binary" or (metric == "f1" and k == 2)
            return np.where(total > 0, f1[..., 1] if binary else f1.mean(axis=-1), np.nan)
        if metric == "balanced_accuracy":
            present = true_n > 0
            recall = np.where(present, tp / np.where(present, true_n, 1), 0.0)
            n_present = present.sum(axis=-1)
            return np.where(n_present > 0, recall.sum(axis=-1) / np.where(n_present > 0, n_present, 1), np.nan)
    raise ValueError(f"unknown metric {metric!r}; named metrics are {NAMED_METRICS}")


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
    """Per-CLASS weights n / (k · count_c) (sklearn's 'balanced'); classes absent from training get 0."""
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
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
        out[f"{name}_accuracy"] = float(np.mean(pred[mask] == top[mask])) if mask.any() else float("nan")
        out[f"{name}_majority_baseline_accuracy"] = float(np.mean(top[mask] == majority)) if mask.any() \
            else float("nan")
    shares = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None)
    out["mean_kl"] = mean_kl(shares, probs)
    labelled = np.asarray(polarity) != ""
    out["polarity_n"] = int(labelled.sum())
    out["polarity_accuracy"] = float(np.mean(polarity_of(probs)[labelled] == np.asarray(polarity)[labelled])) \
        if labelled.any() else float("nan")
    return out
