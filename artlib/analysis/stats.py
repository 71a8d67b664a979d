"""Statistics on plain arrays: seed spread, bootstrap intervals, exact paired tests.

No model code and no scipy: everything works on numpy arrays (and pandas frames of
predictions.csv), so a comparison can be recomputed from a run directory long after
training. Conventions used throughout:

- **Bootstrap** resamples *test paintings* with replacement (percentile interval). A 2-D
  input ``(n_seeds, n_paintings)`` holds several training seeds evaluated on the same
  paintings: each resample draws one set of paintings, applies it to every seed, and the
  statistic is averaged over seeds. The interval is therefore the CI of the *seed-averaged*
  metric and reflects test-set sampling only; the spread over seeds is ``mean_std``'s job.
- **McNemar** (exact, two-sided): ``b`` = paintings A got right and B wrong, ``c`` = the
  reverse; ``p = min(1, 2·P(X <= min(b, c)))`` with ``X ~ Bin(b + c, 1/2)``; ``p = 1`` when
  ``b + c == 0``.
- :func:`paired_permutation_test` generalises McNemar to several seeds: per painting,
  d = A's mean correctness over seeds minus B's; the exact sign-flip (Fisher–Pitman)
  distribution of the sum of d gives a two-sided p for "mean accuracy A = B". With one
  seed it *is* exact McNemar. Each painting counts once: summing per-seed discordant
  counts instead would treat every seed as new paintings and give p-values that are too
  small; a sign test on d would test a median and can contradict the mean difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Union

import numpy as np
import pandas as pd

from artlib.metrics import NAMED_METRICS, from_confusion

MetricArg = Union[str, Callable[[np.ndarray, np.ndarray], float]]
_CHUNK = 256  # bootstrap resamples drawn per block: bounds memory, and fixes the random stream


# ---- spread over seeds -------------------------------------------------------------------
def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of seed results; std is NaN for a single value (no spread known)."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return mean, std


# ---- bootstrap ---------------------------------------------------------------------------
def _resample_blocks(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Index blocks (≤ _CHUNK × n) of a seeded bootstrap; every caller sees the same resamples for a seed."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        size = min(_CHUNK, n_boot - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each painting occurs in each resample (rows of ``idx``) → (rows, n) int array."""
    rows = idx.shape[0]
    flat = (idx + (np.arange(rows)[:, None] * n)).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n)


def _check_boot(n_boot: int, confidence: float) -> None:
    """Reject bootstrap settings that cannot give an interval."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def _percentiles(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval of bootstrap statistics (NaN statistics ignored)."""
    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def _as_seed_matrix(values: np.ndarray | Sequence, name: str) -> np.ndarray:
    """1-D (paintings) or 2-D (seeds × paintings) input as a 2-D array."""
    arr = np.asarray(values)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D (paintings) or 2-D (seeds × paintings), got shape {arr.shape}")
    return arr


def bootstrap_ci(values: np.ndarray | Sequence[float], statistic: str | Callable[[np.ndarray], float] = "mean",
                 n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI over test paintings of a per-painting statistic (e.g. accuracy from 0/1 correctness).

    ``values`` is 1-D (one per painting) or 2-D (seeds × paintings, same paintings): then one
    resample of paintings serves every seed and the statistic is averaged over seeds.
    ``statistic`` is 'mean', 'median' or a callable on a 1-D array. A constant input gives
    (c, c); the same seed gives the same interval.
    """
    _check_boot(n_boot, confidence)
    arr = _as_seed_matrix(values, "values").astype(np.float64)
    n = arr.shape[1]
    if n == 0:
        return float("nan"), float("nan")
    finite = arr[~np.isnan(arr)]
    if finite.size and finite.size == arr.size and np.all(finite == finite.flat[0]):
        c = float(finite.flat[0])
        return c, c
    out: list[np.ndarray] = []
    for idx in _resample_blocks(n, n_boot, seed):
        if statistic == "mean":
            w = _counts(idx, n).astype(np.float64)
            out.append((w @ arr.T).mean(axis=1) / n)  # (rows, seeds) → seed average
        elif statistic == "median":
            out.append(np.median(arr[:, idx], axis=2).mean(axis=0))
        elif callable(statistic):
            out.append(np.array([np.mean([statistic(row[i]) for row in arr]) for i in idx]))
        else:
            raise ValueError(f"statistic must be 'mean', 'median' or a callable, got {statistic!r}")
    return _percentiles(np.concatenate(out), confidence)


def bootstrap_metric_ci(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], metric: MetricArg,
                        n_boot: int = 2000, confidence: float = 0.95, seed: int = 0,
                        n_classes: int | None = None) -> tuple[float, float]:
    """Percentile bootstrap CI over test paintings of any metric(y_true, y_pred), e.g. F1.

    Labels are class indices. ``y_pred`` may be 2-D (seeds × paintings) for seeds evaluated on
    the same paintings ``y_true``: one resample of paintings serves every seed and the metric
    is averaged over seeds. ``metric`` is a callable or a name in NAMED_METRICS (vectorised,
    fast; ``n_classes`` defaults to the largest label + 1). Same seed ⇒ same resamples as
    :func:`bootstrap_ci`, so 'accuracy' here equals ``bootstrap_ci`` of the 0/1 correctness.
    """
    _check_boot(n_boot, confidence)
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    preds = _as_seed_matrix(y_pred, "y_pred").astype(np.int64)
    if preds.shape[1] != y_true.size:
        raise ValueError(f"y_true has {y_true.size} paintings but y_pred has {preds.shape[1]}")
    n = y_true.size
    if n == 0:
        return float("nan"), float("nan")
    out: list[np.ndarray] = []
    if isinstance(metric, str):
        k = int(n_classes) if n_classes is not None else int(max(y_true.max(), preds.max())) + 1
        if metric not in NAMED_METRICS:
            raise ValueError(f"unknown metric {metric!r}; named metrics are {NAMED_METRICS}, or pass a callable")
        cell = y_true[None, :] * k + preds  # (seeds, n) confusion-cell index per painting
        onehots = [np.eye(k * k)[row] for row in cell]  # (n, k²) per seed
        for idx in _resample_blocks(n, n_boot, seed):
            w = _counts(idx, n).astype(np.float64)
            per_seed = [from_confusion((w @ oh).reshape(-1, k, k), metric, k) for oh in onehots]
            out.append(np.mean(per_seed, axis=0))
    elif callable(metric):
        for idx in _resample_blocks(n, n_boot, seed):
            out.append(np.array([np.mean([metric(y_true[i], p[i]) for p in preds]) for i in idx]))
    else:
        raise ValueError(f"metric must be a name in {NAMED_METRICS} or a callable, got {metric!r}")
    return _percentiles(np.concatenate(out), confidence)


# ---- exact paired tests ------------------------------------------------------------------
def binomial_tail_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Bin(n, 1/2): exact integer sums up to n = 5000, log-space sums above."""
    if n < 0 or k < 0:
        return 0.0 if k < 0 else float("nan")
    if k >= n:
        return 1.0
    if n <= 5000:
        total, term = 0, 1  # term = C(n, i), built incrementally
        for i in range(k + 1):
            if i:
                term = term * (n - i + 1) // i
            total += term
        return total / (1 << n)  # int / int: correctly rounded even for huge integers
    log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(k + 1)]
    top = max(log_terms)
    return min(1.0, math.exp(top + math.log(math.fsum(math.exp(t - top) for t in log_terms)) - n * math.log(2)))


def exact_two_sided_p(b: int, c: int) -> float:
    """Exact two-sided binomial p of b vs c discordant pairs: min(1, 2·P(X <= min(b, c))), X ~ Bin(b+c, ½); 1 if none."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return min(1.0, 2.0 * binomial_tail_half(min(b, c), b + c))


def _bool_vector(x: np.ndarray | Sequence, name: str) -> np.ndarray:
    """A 1-D boolean correctness vector (0/1 or bool)."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D per-painting correctness, got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.all(np.isin(arr, (0, 1))):
            raise ValueError(f"{name} must hold only 0/1 or True/False")
        arr = arr.astype(bool)
    return arr


def mcnemar_exact(correct_a: np.ndarray | Sequence, correct_b: np.ndarray | Sequence) -> dict:
    """Exact McNemar test of two classifiers on the same paintings (b: only A right, c: only B right)."""
    a = _bool_vector(correct_a, "correct_a")
    bb = _bool_vector(correct_b, "correct_b")
    if a.shape != bb.shape:
        raise ValueError(f"correct_a has {a.size} paintings but correct_b has {bb.size}; they must be paired")
    b = int(np.sum(a & ~bb))
    c = int(np.sum(~a & bb))
    return {"b": b, "c": c, "n": int(a.size), "n_discordant": b + c, "p_value": exact_two_sided_p(b, c)}


def _binomial_pmf_half(k: int) -> np.ndarray:
    """pmf of Bin(k, 1/2) as floats (log-gamma, so large k neither overflows nor loses the centre)."""
    i = np.arange(k + 1)
    logc = np.array([math.lgamma(k + 1) - math.lgamma(j + 1) - math.lgamma(k - j + 1) for j in i])
    return np.exp(logc - k * math.log(2))


def paired_permutation_test(correct_a: np.ndarray | Sequence, correct_b: np.ndarray | Sequence) -> dict:
    """Exact paired permutation (sign-flip) test of mean accuracy A − B over paintings; McNemar for one seed.

    Inputs are correctness arrays (seeds × paintings, or 1-D for one seed) on the same
    paintings. Each painting contributes d = (A's mean correctness over seeds) − (B's); under
    the null hypothesis the sign of each d is a fair coin, and the p-value is the exact
    two-sided tail of the sum of d. With one seed (d ∈ {-1, 0, 1}) this is exactly the exact
    McNemar test. Each painting counts once however many seeds there are (seeds are not new
    paintings), and the test is about the mean difference, so its direction always agrees
    with the reported accuracy difference. b/c count paintings where A/B is ahead.
    """
    a = _as_seed_matrix(correct_a, "correct_a").astype(np.float64)
    bb = _as_seed_matrix(correct_b, "correct_b").astype(np.float64)
    if a.shape[1] != bb.shape[1]:
        raise ValueError(f"correct_a has {a.shape[1]} paintings but correct_b has {bb.shape[1]}; they must be paired")
    # Integer differences on the grid 1 / (seeds_a · seeds_b), so exact arithmetic on the magnitudes.
    scale = a.shape[0] * bb.shape[0]
    d = np.rint((a.mean(axis=0) - bb.mean(axis=0)) * scale).astype(np.int64)
    b = int(np.sum(d > 0))
    c = int(np.sum(d < 0))
    out = {"b": b, "c": c, "n": int(d.size), "n_discordant": b + c,
           "mean_difference": float(d.sum() / scale / d.size) if d.size else float("nan")}
    mags = np.abs(d[d != 0])
    if len(np.unique(mags)) <= 1:  # one magnitude: the sum is a scaled binomial → exact integer computation
        out["p_value"] = exact_two_sided_p(b, c)
        return out
    # U = sum of the magnitudes that come up positive; U = sum over magnitudes m of m · Bin(k_m, 1/2).
    dist = np.ones(1)
    for m, k in zip(*np.unique(mags, return_counts=True)):
        spread = np.zeros(int(m) * int(k) + 1)
        spread[:: int(m)] = _binomial_pmf_half(int(k))
        dist = np.convolve(dist, spread)
    total = int(mags.sum())
    u_obs = int(d[d > 0].sum())
    low = min(u_obs, total - u_obs)  # the null distribution is symmetric around total / 2
    out["p_value"] = float(min(1.0, 2.0 * dist[: low + 1].sum()))
    return out


# ---- pairing predictions.csv frames ------------------------------------------------------
def paired_predictions(pred_a: pd.DataFrame, pred_b: pd.DataFrame, name_a: str = "A",
                       name_b: str = "B") -> tuple[np.ndarray, np.ndarray]:
    """Per-painting correctness of two predictions.csv frames aligned on image_path (sorted), for paired tests.

    Raises ValueError naming both stages if they cover different paintings, repeat a painting,
    or disagree on a painting's true label (then they are not the same test set).
    """
    for name, frame in ((name_a, pred_a), (name_b, pred_b)):
        missing = {"image_path", "label", "predicted"} - set(frame.columns)
        if missing:
            raise ValueError(f"{name}: predictions lack column(s) {sorted(missing)}")
        dup = frame["image_path"][frame["image_path"].duplicated()]
        if len(dup):
            raise ValueError(f"{name}: predictions repeat {len(dup)} painting(s), e.g. {dup.iloc[0]!r}")
    paths_a, paths_b = set(pred_a["image_path"]), set(pred_b["image_path"])
    if paths_a != paths_b:
        only_a, only_b = sorted(paths_a - paths_b), sorted(paths_b - paths_a)
        raise ValueError(
            f"{name_a} and {name_b} were tested on different paintings ({len(only_a)} only in {name_a}, "
            f"{len(only_b)} only in {name_b}, e.g. {(only_a or only_b)[0]!r}); a paired test needs the same test "
            f"set — were they trained from different manifests?")
    a = pred_a.set_index("image_path").sort_index()
    b = pred_b.set_index("image_path").loc[a.index]
    mismatch = a["label"].astype(str).to_numpy() != b["label"].astype(str).to_numpy()
    if mismatch.any():
        first = a.index[np.flatnonzero(mismatch)[0]]
        raise ValueError(f"{name_a} and {name_b} disagree on the true label of {int(mismatch.sum())} painting(s), "
                         f"e.g. {first!r}; they are not the same task/test set")
    correct_a = (a["label"].astype(str) == a["predicted"].astype(str)).to_numpy()
    correct_b = (b["label"].astype(str) == b["predicted"].astype(str)).to_numpy()
    return correct_a, correct_b
