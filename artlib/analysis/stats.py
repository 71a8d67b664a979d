"""Inference with every source of variance random: training seeds, artists, paintings (and splits).

A stage's test accuracy depends on random draws: which training seed produced the model
(initialisation, data order), which artists and which of their paintings happen to be in the test
split, and which split was drawn. WikiArt's paintings cluster by artist: a stage that suits an artist
better than its rival does suits most of that artist's paintings, so the paired differences of one
artist's paintings move together and paintings are not independent units — artists are.

**The model.** For a (seeds × paintings) array ``y[s, i]`` (0/1 correctness for an accuracy; the
difference of two models' correctness, paired by seed and painting, for a comparison) with painting i by
artist g(i): ``y[s, i] = mu + b_s + A_g + P_i + (bA)_sg + e_si`` — seed effects ``b``, artist effects
``A``, painting-within-artist effects ``P``, a seed × artist interaction and residuals, all random. The
grand mean's variance is ``σ_b²/S + σ_A²·Σn_g²/n² + σ_P²/n + σ_bA²·Σn_g²/(S·n²) + σ_e²/(S·n)``. It is
estimated from three pieces (:func:`mean_squares`): *seed*, var(seed means)/S; *cluster*, the
cluster-robust variance of the painting means summed per artist, each artist's square weighted by the
jackknife's (G−1)/G/(1−p_g)² (p_g its share of the paintings; plain G/(G−1) weights are biased low when a
few artists dominate a test set — Bell & McCaffrey 2002); *residual*, the same for the double-centred
seed × artist residuals, which both others contain once. The variance is residual + max(cluster −
residual, 0) + max(seed − residual, 0): each component truncated at 0 (never narrower than the unbiased
estimate). Without artists every painting is its own cluster, the weights are n/(n−1), and the pieces
are exactly MS_seed, MS_painting and MS_residual of the two-way ANOVA over n·S: Clark's (1973) crossed
subjects × items ("The language-as-fixed-effect fallacy", J. Verbal Learning and Verbal Behavior
12:335–359); with artists, its cluster-level analogue in the spirit of two-way clustering (Cameron,
Gelbach & Miller 2011, J. Business & Economic Statistics 29:238–249). Bouthillier et al. (2021),
"Accounting for variance in machine learning benchmarks", MLSys, argue for exactly these sources.

**Degrees of freedom** are Welch–Satterthwaite's (1946) over the pieces actually used, with the seed
piece at its median-unbiased value MS·ν/χ²_ν(0.5) in that formula, the cluster piece at an effective df
(:func:`cluster_df`: G − 1 for equal artists, fewer when a few dominate), and capped at S − 1 whenever
the seed component was truncated — that seeds add nothing then rests on S − 1 seed df; without the cap,
3 seeds that vary a lot were called in 6.2% of null studies (an independent review, 4,000 runs).

**Tests.** A two-sided t test of the mean (the same estimate and df as the interval), made conservative
where the t approximation fails: its p-value is the larger of the t test's and an exact sign test over
the artists (or paintings) whose mean difference is not 0, one-sided in the direction of the mean and
doubled (four paintings of 1,000 better in every one of ten seeds: t p < 0.05, sign-test p = 0.125; a
positive mean carried by 100 paintings against 180 that favour the rival: sign-test p ≈ 1). Holm's
step-down correction within each family (statsmodels). K splits are pooled by :func:`pool_splits`. The
calibration by simulation is in tests/test_calibration.py. Exact McNemar per seed is kept as detail.

**Intervals of one model** (one seed): exact Clopper–Pearson. **Of a stage** (seeds averaged): the
seed- and artist-aware t interval, widened where needed to the exact Clopper–Pearson interval over the
paintings — never of zero width, also for a stage that is right on every painting in every seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests


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


# ---- seed-aware intervals and tests ----------------------------------------------------
@dataclass(frozen=True)
class SeedAwareMean:
    """The mean of a (seeds × paintings) array with its standard error, seeds and clusters of paintings random."""

    estimate: float
    se: float  # standard error with seeds, clusters (artists) and paintings random (NaN if it cannot be estimated)
    df: float  # Welch–Satterthwaite degrees of freedom of the variance actually used
    between_seeds: float  # var(seed means) / S: the whole seed piece (NaN with one seed)
    painting_term: float  # the cluster (artist, or painting) part of the variance, before truncation
    residual_term: float  # the seed × cluster interaction, which both of the above contain once
    per_seed: tuple[float, ...]  # the mean of each seed
    n_paintings: int
    sign_p: float = 1.0  # exact sign test over clusters, one-sided in the estimate's direction, doubled (a p floor)
    n_clusters: int = 0  # how many independent units (artists, or paintings when none are known)
    unit: str = "painting"  # what a cluster is: "artist" or "painting"
    n_splits: int = 1  # how many train/val/test splits the estimate pools (1: conditional on that split)
    nu_units: float = float("nan")  # effective df of the units' piece (G − 1 for equal clusters)

    @property
    def n_seeds(self) -> int:
        """How many seeds the estimate averages."""
        return len(self.per_seed)

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Two-sided t interval (estimate ± t·se); (estimate, estimate) when se is 0, NaN when unknown."""
        if not np.isfinite(self.se):
            return float("nan"), float("nan")
        half = float(sps.t.ppf(0.5 + confidence / 2, self.df)) * self.se if self.se > 0 else 0.0
        return self.estimate - half, self.estimate + half

    def t_p_value(self) -> float:
        """Two-sided p of 'the true mean is 0' from the t statistic alone (1 when estimate and se are both 0)."""
        if not np.isfinite(self.se):
            return float("nan")
        if self.se == 0:
            return 1.0 if self.estimate == 0 else 0.0
        return float(2 * sps.t.sf(abs(self.estimate) / self.se, self.df))

    def p_value(self) -> float:
        """Two-sided p: the larger of the t test's and the directional sign test's (few differing units break t)."""
        p = self.t_p_value()
        return p if not np.isfinite(p) else max(p, self.sign_p)

    def detectable(self, alpha: float = 0.05, power: float = 0.8) -> float:
        """About the smallest true mean detected with ``power`` at two-sided ``alpha`` (se treated as known)."""
        if not np.isfinite(self.se) or self.se == 0:
            return float("nan")
        return float((sps.t.ppf(1 - alpha / 2, self.df) + sps.t.ppf(power, self.df)) * self.se)


@dataclass(frozen=True)
class MeanSquares:
    """The three variance pieces of a (seeds × clusters) design, each already divided to a variance of the mean."""

    seed: float  # var(seed means) / S: seed effects plus what each seed's interaction adds
    cluster: float  # cluster-robust (jackknife-weighted) variance of the painting means over clusters (artists)
    residual: float  # the seed × cluster interaction: contained once in each of the two above
    nu_seed: float
    nu_cluster: float  # G − 1 for equal clusters; fewer when a few clusters hold most paintings
    nu_residual: float


def _cluster_ids(clusters: np.ndarray | Sequence | None, n: int) -> np.ndarray:
    """Integer cluster codes per painting; every painting its own cluster when ``clusters`` is None."""
    if clusters is None:
        return np.arange(n)
    codes = np.unique(np.asarray(clusters).astype(str), return_inverse=True)[1]
    if codes.size != n:
        raise ValueError(f"clusters has {codes.size} entries for {n} paintings")
    return codes


def mean_squares(y: np.ndarray, codes: np.ndarray) -> MeanSquares:
    """Variance pieces of the grand mean of ``y`` (seeds × paintings) with paintings clustered by ``codes``.

    Each cluster's squared sum is weighted by the jackknife's (G−1)/G/(1−p_g)², p_g its share of the
    paintings (Bell & McCaffrey 2002; MacKinnon & White 1985): plain CR1 weights G/(G−1) are biased low
    when a few artists hold much of the test set. With every painting its own cluster the weights are
    n/(n−1) and the pieces are exactly MS_seed, MS_painting and MS_residual of the two-way ANOVA over n·S.
    """
    n_seeds, n = y.shape
    groups = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=groups).astype(float)
    weight = (groups - 1) / groups / (1 - sizes / n) ** 2
    grand, by_seed, painting_means = y.mean(), y.mean(axis=1), y.mean(axis=0)
    sums = np.zeros(groups)
    np.add.at(sums, codes, painting_means - grand)
    cluster = float((weight * sums**2).sum()) / n**2
    residual = y - by_seed[:, None] - painting_means[None, :] + grand
    cell = np.zeros((n_seeds, groups))
    np.add.at(cell.T, codes, residual.T)
    inter = n_seeds / (n_seeds - 1) * float((weight[None, :] * cell**2).sum()) / (n * n_seeds) ** 2
    nu = cluster_df(painting_means, codes, sizes)
    return MeanSquares(float(by_seed.var(ddof=1)) / n_seeds, cluster, inter, n_seeds - 1, nu, (n_seeds - 1) * nu)


def cluster_df(painting_means: np.ndarray, codes: np.ndarray, sizes: np.ndarray) -> float:
    """Effective df of the cluster piece, (Σv_g)²/Σv_g² with v_g = n_g²σ²_between + n_g·σ²_within, capped at G − 1.

    From a one-way ANOVA of the painting means by cluster: equal clusters give G − 1; a test set dominated by
    a few artists gives about as many df as it has dominant artists (Satterthwaite's argument per cluster).
    """
    groups, n = len(sizes), len(painting_means)
    grand = painting_means.mean()
    cluster_means = np.bincount(codes, weights=painting_means, minlength=groups) / sizes
    between = float((sizes * (cluster_means - grand) ** 2).sum()) / (groups - 1)
    within = float(((painting_means - cluster_means[codes]) ** 2).sum()) / max(n - groups, 1)
    n0 = (n - float((sizes**2).sum()) / n) / (groups - 1)
    v = sizes**2 * max((between - within) / n0, 0.0) + sizes * within
    if not (v**2).sum() > 0:
        return float(groups - 1)
    return float(min(groups - 1, max(1.0, v.sum() ** 2 / (v**2).sum())))


def used_coefficients(ms: MeanSquares) -> dict[str, float]:
    """Coefficient of each piece in the variance estimate actually used: a component truncated at 0 drops out."""
    coef = {"residual": 1.0, "cluster": 0.0, "seed": 0.0}
    for name in ("cluster", "seed"):
        if getattr(ms, name) > ms.residual:
            coef[name], coef["residual"] = 1.0, coef["residual"] - 1.0
    return coef


def satterthwaite_df(ms: MeanSquares, coef: dict[str, float], cap: bool = True) -> float:
    """Welch–Satterthwaite df of Σ coef·piece, the seed piece at its median-unbiased value (2 seed df are few).

    When the seed component was truncated at 0 the df are capped at S − 1: that the seeds add nothing rests on a
    seed mean square with S − 1 df, and without the cap 3 seeds with a real seed effect (3.3 points per model)
    are called in 6.2% of null studies at α = 5% (independent review, 4,000 runs); with it, at most 4.9%.
    ``cap=False`` for a stage's descriptive accuracy interval (its coverage is tested separately).
    """
    seed = ms.seed * ms.nu_seed / float(sps.chi2.ppf(0.5, ms.nu_seed))
    pieces = {"seed": (seed, ms.nu_seed), "cluster": (ms.cluster, ms.nu_cluster),
              "residual": (ms.residual, ms.nu_residual)}
    total = sum(coef[k] * p for k, (p, _) in pieces.items())
    denom = sum((coef[k] * p) ** 2 / nu for k, (p, nu) in pieces.items() if coef[k] != 0)
    df = float(total**2 / denom) if denom > 0 and total > 0 else float(ms.nu_residual)
    return min(df, float(ms.nu_seed)) if cap and coef["seed"] == 0 else df


def directional_sign_test(cluster_means: np.ndarray, estimate: float) -> float:
    """Exact sign test over clusters, one-sided in the direction of ``estimate``, doubled to compare with a two-sided p.

    Counts the clusters whose mean goes the estimate's way among those not 0; 1 when the estimate is 0.
    """
    if estimate == 0:
        return 1.0
    way = cluster_means > 0 if estimate > 0 else cluster_means < 0
    agree, nonzero = int(way.sum()), int((cluster_means != 0).sum())
    if nonzero == 0:
        return 1.0
    return float(min(1.0, 2 * sps.binomtest(agree, nonzero, alternative="greater").pvalue))


def crossed_mean(values: np.ndarray, clusters: np.ndarray | Sequence | None = None,
                 unit: str | None = None, cap_df: bool = True) -> SeedAwareMean:
    """Grand mean of (seeds × paintings) values, seeds crossed with clusters of paintings (artists), all random.

    Variance of the grand mean: residual + max(cluster − residual, 0) + max(seed − residual, 0), the pieces
    from :func:`mean_squares`; Welch–Satterthwaite degrees of freedom of exactly the pieces used. Without
    ``clusters`` every painting is its own unit (the classic crossed seeds × paintings ANOVA). One seed:
    the seed term is unknown and ``se`` is NaN.
    """
    y = np.asarray(values, dtype=np.float64)
    if y.ndim == 1:
        y = y[None, :]
    n_seeds, n = y.shape
    codes = _cluster_ids(clusters, n)
    unit = unit or ("painting" if clusters is None else "artist")
    per_seed = tuple(float(m) for m in y.mean(axis=1))
    groups = int(codes.max()) + 1 if n else 0
    if n_seeds < 2 or groups < 2:
        nan = float("nan")
        return SeedAwareMean(float(y.mean()) if y.size else nan, nan, nan, nan, nan, nan, per_seed, n,
                             n_clusters=groups, unit=unit)
    ms = mean_squares(y, codes)
    coef = used_coefficients(ms)
    variance = max(coef["seed"] * ms.seed + coef["cluster"] * ms.cluster + coef["residual"] * ms.residual, 0.0)
    df = satterthwaite_df(ms, coef, cap_df)
    cluster_means = np.bincount(codes, weights=y.mean(axis=0)) / np.bincount(codes)
    return SeedAwareMean(float(y.mean()), float(np.sqrt(variance)), df, ms.seed, ms.cluster, ms.residual, per_seed,
                         n, directional_sign_test(cluster_means, float(y.mean())), groups, unit, 1, ms.nu_cluster)


def pool_splits(parts: Sequence[tuple[np.ndarray, np.ndarray]], test_share: float,
                unit: str = "artist") -> SeedAwareMean:
    """One estimate from K splits' (seeds × paintings) values and cluster labels, the split's variance included.

    Nadeau & Bengio's (2003) corrected resampled variance, (1/K + n_test/n_train)·σ², where σ², the variance
    of one split's estimate, is the larger of the spread between the splits' estimates (df K − 1) and their
    mean within-split variance (seeds, artists, paintings; pooled Satterthwaite df): the spread of K
    overlapping splits underestimates σ², and the within-split part is its floor. With K = 2 the df are 1 (an
    independent review measured 7.5–9.8% false verdicts with the within-split df when each split's training
    shifts the models): use K ≥ 3. The sign-test floor counts each cluster once over all splits. One split
    comes back as :func:`crossed_mean` (conditional on it).
    """
    each = [crossed_mean(values, labels, unit) for values, labels in parts]
    if len(each) == 1:
        return each[0]
    k = len(each)
    if len({e.n_seeds for e in each}) != 1:
        raise ValueError("every split must have the same seeds to pool them")
    points, within = np.array([e.estimate for e in each]), np.array([e.se**2 for e in each])
    spread = float(points.var(ddof=1))
    if np.isfinite(within).all() and within.mean() >= spread:
        dfs = np.array([e.df for e in each])
        sigma2 = float(within.mean())
        df = float(within.sum() ** 2 / (within**2 / dfs).sum()) if (within > 0).any() else float(dfs.sum())
    else:
        sigma2, df = spread, float(k - 1)
    if k == 2:  # two splits cannot tell the split's variance from noise (7.5–9.8% false verdicts otherwise)
        df = 1.0
    labels = np.concatenate([np.asarray(lab).astype(str) for _, lab in parts])
    means = np.concatenate([np.asarray(v, dtype=np.float64).reshape(each[0].n_seeds, -1).mean(axis=0)
                            for v, _ in parts])
    codes = np.unique(labels, return_inverse=True)[1]
    cluster_means = np.bincount(codes, weights=means) / np.bincount(codes)
    per_seed = tuple(float(np.mean([e.per_seed[i] for e in each])) for i in range(each[0].n_seeds))
    estimate = float(points.mean())
    pieces = [float(np.mean([getattr(e, name) for e in each])) for name in ("between_seeds", "painting_term",
                                                                           "residual_term")]
    return SeedAwareMean(estimate, float(np.sqrt((1.0 / k + test_share) * sigma2)), df, *pieces, per_seed,
                         int(sum(e.n_paintings for e in each)),
                         directional_sign_test(cluster_means, estimate), int(codes.max()) + 1, unit, k,
                         float(np.mean([e.nu_units for e in each])))


def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval of a proportion (scipy); never of zero width for n ≥ 1."""
    if n <= 0:
        return float("nan"), float("nan")
    ci = sps.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def stage_accuracy_interval(correct: np.ndarray, confidence: float = 0.95,
                            clusters: np.ndarray | Sequence | None = None) -> tuple[float, float]:
    """Interval of a stage's seed-averaged accuracy: the seed- and artist-aware t interval, never narrower than exact.

    ``correct`` is (seeds × paintings) 0/1, ``clusters`` each painting's artist (None: paintings are
    independent). The t interval of :func:`crossed_mean` (Satterthwaite df of the variance actually used),
    clipped to [0, 1], widened where needed to the exact Clopper–Pearson interval of the mean accuracy over
    the n paintings (so it is never of zero width, also for a stage right on every painting in every seed).
    With one seed this is plain Clopper–Pearson on the paintings. (0.2 used Korn & Graubard's Clopper–Pearson
    at an effective n scaled by (t_{n−1}/t_df)², which collapses to about [0, 1] when the df are near 1: two
    seeds at 98.1% ± 2.7 on 26 paintings got 2.3–100%.)
    """
    c = np.asarray(correct, dtype=np.float64)
    if c.ndim == 1:
        c = c[None, :]
    n = c.shape[1]
    if n == 0:
        return float("nan"), float("nan")
    est = crossed_mean(c, clusters, cap_df=False)  # descriptive: Satterthwaite df of the pieces used, uncapped
    alpha, x = 1 - confidence, est.estimate * n
    low = float(sps.beta.ppf(alpha / 2, x, n - x + 1)) if x > 0 else 0.0
    high = float(sps.beta.ppf(1 - alpha / 2, x + 1, n - x)) if x < n else 1.0
    if c.shape[0] > 1 and np.isfinite(est.se):
        t_low, t_high = est.interval(confidence)
        low, high = max(0.0, min(low, t_low)), min(1.0, max(high, t_high))
    return low, high


def holm(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (statsmodels); NaN entries are left out of the family and stay NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def holm_levels(p_values: np.ndarray | Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """The per-comparison level Holm tests each p-value at: alpha / (m - rank) by ascending p."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    for rank, i in enumerate(order):
        out[i] = alpha / (len(ok) - rank)
    return out


# ---- exact paired tests (per seed, detail) -------------------------------------------------
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
