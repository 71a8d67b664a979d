"""artlib.metrics and artlib.analysis.stats: hand-computed cases for metrics, spread and exact paired tests."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

from artlib.metrics import f1_for_task, from_confusion
from artlib.analysis.stats import binomial_tail_half, exact_two_sided_p, mcnemar_exact, mean_std, paired_predictions


# ---- mean_std ----------------------------------------------------------------------------
def test_mean_std_small_lists() -> None:
    """Sample std (ddof=1): [1, 2, 3, 4] → mean 2.5, std sqrt(5/3); [0.6, 0.8] → 0.7, sqrt(0.02)."""
    mean, std = mean_std([1, 2, 3, 4])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))
    mean, std = mean_std(np.array([0.6, 0.8]))
    assert mean == pytest.approx(0.7) and std == pytest.approx(math.sqrt(0.02))


def test_mean_std_one_value_has_unknown_spread() -> None:
    """One seed: the mean is the value, the std is NaN (not 0: spread is unknown)."""
    mean, std = mean_std([0.689])
    assert mean == 0.689 and math.isnan(std)
    assert all(math.isnan(v) for v in mean_std([]))


# ---- McNemar -----------------------------------------------------------------------------
@pytest.mark.parametrize(("b", "c", "p"), [
    (1, 6, 0.125),  # 2 · (1 + 7) / 2**7
    (10, 2, 0.0386),  # 2 · (1 + 12 + 66) / 2**12 = 0.03857…
    (0, 0, 1.0),  # no discordant pairs
    (5, 5, 1.0),  # capped at 1
    (3, 0, 0.25),  # 2 / 2**3
])
def test_exact_two_sided_p_textbook(b: int, c: int, p: float) -> None:
    """The exact binomial McNemar p matches hand computation (and is symmetric in b, c)."""
    assert exact_two_sided_p(b, c) == pytest.approx(p, abs=5e-5)
    assert exact_two_sided_p(c, b) == exact_two_sided_p(b, c)
    assert exact_two_sided_p(10, 2) == pytest.approx(2 * 79 / 4096, rel=1e-12)


def test_mcnemar_from_correctness_vectors() -> None:
    """b counts 'only A right', c 'only B right'; concordant paintings do not matter."""
    a = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1, 0])
    b = np.array([0, 1, 1, 1, 1, 1, 1, 1, 0, 0])
    out = mcnemar_exact(a, b)
    assert (out["b"], out["c"], out["n"], out["n_discordant"]) == (2, 6, 10, 8)
    assert out["p_value"] == pytest.approx(2 * (1 + 8 + 28) / 256)
    assert mcnemar_exact([True, False], [True, False])["p_value"] == 1.0
    with pytest.raises(ValueError, match="paired"):
        mcnemar_exact([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_exact([2, 0], [1, 0])


def test_binomial_tail_exact_and_log_space_agree() -> None:
    """The log-space branch (n > 5000) continues the exact one smoothly, and big n never overflows."""
    assert binomial_tail_half(2, 4) == pytest.approx(11 / 16)
    assert binomial_tail_half(5, 5) == 1.0
    exact = binomial_tail_half(2400, 5000)
    logged = binomial_tail_half(2400, 5001)
    assert 0.0020 < logged < exact < 0.0026
    assert exact_two_sided_p(4000, 3000) == pytest.approx(5.7143e-33, rel=1e-4)
    assert exact_two_sided_p(30000, 30500) < 0.05


def test_exact_p_agrees_with_scipy_when_available() -> None:
    """Cross-check against scipy's binomtest (scipy is optional; skipped without it)."""
    stats = pytest.importorskip("scipy.stats")
    for b, c in [(1, 6), (17, 30), (100, 130), (2600, 2800), (6000, 6300)]:
        assert exact_two_sided_p(b, c) == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_metrics_match_sklearn(k: int) -> None:
    """Every metric (from the confusion matrix) equals scikit-learn's, bit for bit, incl. a never-predicted class."""
    from artlib.metrics import classification_metrics, confusion, score

    rng = np.random.default_rng(5 + k)
    y = rng.integers(0, k, 60)
    p = rng.integers(0, k - 1, 60)  # one class never predicted: zero_division path
    labels = list(range(k))
    assert np.array_equal(confusion(y, p, k), confusion_matrix(y, p, labels=labels))
    conf = confusion(y, p, k)
    assert from_confusion(conf, "accuracy", k) == np.mean(y == p)
    sk_f1 = f1_score(y, p, average="binary" if k == 2 else "macro", labels=labels, zero_division=0)
    assert from_confusion(conf, "f1", k) == sk_f1 == f1_for_task(y, p, k)
    assert from_confusion(conf, "balanced_accuracy", k) == balanced_accuracy_score(y, p) == score(y, p, "balanced_accuracy", k)
    m = classification_metrics(y, p, k, baseline_class=0)
    assert (m["accuracy"], m["f1"], m["balanced_accuracy"]) == (np.mean(y == p), sk_f1, balanced_accuracy_score(y, p))
    assert m["majority_baseline_accuracy"] == np.mean(y == 0)


def test_metric_edge_cases() -> None:
    """No positive predictions: F1 0 like sklearn's zero_division=0; no items: NaN; unknown names refused."""
    y = np.array([0, 0, 1, 1])
    conf = confusion_matrix(y, [0, 0, 0, 0], labels=[0, 1])
    assert from_confusion(conf, "f1", 2) == 0.0 == f1_score(y, [0, 0, 0, 0], zero_division=0)
    assert np.isnan(from_confusion(np.zeros((2, 2)), "accuracy", 2))
    with pytest.raises(ValueError, match="unknown metric"):
        from_confusion(conf, "auc", 2)


def test_metrics_equal_hand_computed_values() -> None:
    """Exact cases computed from the definitions (independent of scikit-learn and of the confusion-matrix path):
    binary F1 of class 1, macro F1 over all k (an unseen class scores 0), balanced accuracy over the classes
    present in y_true, NaN for no items, balanced class weights with 0 for an absent class."""
    from artlib.metrics import class_weights, classification_metrics, confusion, score

    # k = 3: recalls 2/3, 1/2, 1; per-class F1 = 2·tp / (true + predicted) = 4/5, 2/4, 2/3.
    y, p = [0, 0, 0, 1, 1, 2], [0, 1, 0, 1, 2, 2]
    assert confusion(y, p, 3).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert score(y, p, "accuracy", 3) == 4 / 6
    assert score(y, p, "balanced_accuracy", 3) == (2 / 3 + 1 / 2 + 1) / 3
    assert score(y, p, "f1", 3) == (4 / 5 + 2 / 4 + 2 / 3) / 3 == score(y, p, "f1_macro", 3)
    assert score(y, p, "f1_binary", 3) == 2 / 4  # class 1 alone
    # k = 2: F1 of class 1 (tp 1, 3 true, 2 predicted), not the macro mean; recalls 1/2 and 1/3.
    y, p = [1, 1, 1, 0, 0], [1, 0, 0, 1, 0]
    assert (f1_for_task(y, p, 2), score(y, p, "accuracy", 2), score(y, p, "balanced_accuracy", 2)) == \
        (2 / 5, 2 / 5, (1 / 2 + 1 / 3) / 2)
    # Class 2 only predicted: left out of balanced accuracy (1/2, not 1/3), an F1 of 0 in the macro mean.
    y, p = [0, 0, 1, 1], [0, 2, 1, 2]
    assert score(y, p, "balanced_accuracy", 3) == (1 / 2 + 1 / 2) / 2
    assert score(y, p, "f1", 3) == (2 / 3 + 2 / 3 + 0) / 3
    # Class 3 neither true nor predicted: macro F1 over all four classes.
    assert score([0, 1, 2], [0, 1, 2], "f1", 4) == 3 / 4 and score([0, 1, 2], [0, 1, 2], "balanced_accuracy", 4) == 1.0
    # Never predicting the positive class: F1 0 (zero_division=0), no warning.
    assert f1_for_task([0, 0, 1, 1], [0, 0, 0, 0], 2) == 0.0
    # No items: NaN everywhere, a zero confusion matrix; a stack keeps its shape, NaN for its empty matrix.
    m = classification_metrics(np.array([], dtype=int), np.array([], dtype=int), 3, baseline_class=0)
    assert m["n"] == 0 and m["confusion_matrix"] == [[0] * 3] * 3
    assert all(math.isnan(m[x]) for x in ("accuracy", "f1", "balanced_accuracy", "majority_baseline_accuracy",
                                          "majority_baseline_f1"))
    stack = np.stack([confusion([0, 0, 1], [0, 1, 1], 2), np.zeros((2, 2), dtype=int)])
    out = from_confusion(stack, "accuracy", 2)
    assert out.shape == (2,) and out[0] == 2 / 3 and math.isnan(out[1])
    # Balanced class weights n / (k_present · count); the absent class 3 gets 0.
    assert class_weights([0, 0, 0, 1, 2, 2], 4).tolist() == [6 / (3 * 3), 6 / (3 * 1), 6 / (3 * 2), 0.0]
    assert class_weights([], 2).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="labels must be 0..2"):
        confusion([0, 3], [0, 1], 3)


# ---- paired_predictions ------------------------------------------------------------------
def _preds(paths: list[str], labels: list[str], predicted: list[str]) -> pd.DataFrame:
    """A minimal predictions.csv frame."""
    return pd.DataFrame({"image_path": paths, "label": labels, "predicted": predicted})


def test_paired_predictions_aligns_on_image_path() -> None:
    """Rows in different orders are aligned by image_path before correctness is compared."""
    a = _preds(["x.jpg", "y.jpg", "z.jpg"], ["positive", "negative", "positive"], ["positive", "positive", "positive"])
    b = _preds(["z.jpg", "x.jpg", "y.jpg"], ["positive", "positive", "negative"], ["negative", "positive", "negative"])
    ca, cb = paired_predictions(a, b)
    assert ca.tolist() == [True, False, True]  # x, y, z
    assert cb.tolist() == [True, True, False]


def test_paired_predictions_refuses_different_paintings_naming_stages() -> None:
    """Different test sets, repeated paintings or disagreeing labels are errors that name both stages."""
    a = _preds(["x.jpg", "y.jpg"], ["positive", "negative"], ["positive", "positive"])
    b = _preds(["x.jpg", "w.jpg"], ["positive", "negative"], ["positive", "positive"])
    with pytest.raises(ValueError, match=r"emotion_conv5.*genre_conv4_then_emotion_conv5.*different paintings"):
        paired_predictions(a, b, "emotion_conv5", "genre_conv4_then_emotion_conv5")
    with pytest.raises(ValueError, match="repeat"):
        paired_predictions(pd.concat([a, a]), a, "s1", "s2")
    c = _preds(["x.jpg", "y.jpg"], ["positive", "positive"], ["positive", "positive"])
    with pytest.raises(ValueError, match="s1 and s2 disagree"):
        paired_predictions(a, c, "s1", "s2")


def _definitions(y: np.ndarray, p: np.ndarray, k: int) -> dict[str, float]:
    """The metrics from their definitions (the former numpy formulas), independent of scikit-learn."""
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (y, p), 1)
    tp, true, pred = np.diag(conf).astype(float), conf.sum(1).astype(float), conf.sum(0).astype(float)
    present = true > 0
    f1 = np.divide(2 * tp, true + pred, out=np.zeros(k), where=(true + pred) > 0)
    return {"accuracy": tp.sum() / len(y), "balanced_accuracy": float(np.mean(tp[present] / true[present])),
            "f1": float(f1[1]) if k == 2 else float(f1.mean())}


def test_the_scikit_learn_metrics_equal_their_definitions_on_random_and_edge_cases() -> None:
    """Accuracy and F1 exactly, balanced accuracy to 1e-15 (summation order), on 600 random cases with k = 2, 4, 9,
    skewed classes, classes missing from the predictions or the truth, and single-class truths."""
    rng = np.random.default_rng(5)
    for case in range(600):
        k = (2, 4, 9)[case % 3]
        n = int(rng.integers(1, 60))
        weights = rng.dirichlet(np.ones(k) * (0.3 if case % 2 else 3))
        y, p = rng.choice(k, n, p=weights), rng.choice(k, n, p=rng.dirichlet(np.ones(k)))
        if case % 10 == 0:
            y[:] = y[0]  # a single class in the truth
        expected = _definitions(y, p, k)
        conf = np.zeros((k, k), dtype=np.int64)
        np.add.at(conf, (y, p), 1)
        assert float(from_confusion(conf, "accuracy", k)) == expected["accuracy"]
        assert float(f1_for_task(y, p, k)) == expected["f1"]
        assert abs(float(from_confusion(conf, "balanced_accuracy", k)) - expected["balanced_accuracy"]) <= 1e-15
