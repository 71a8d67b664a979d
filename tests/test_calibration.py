"""The verdict procedure calibrated by simulation, in the settings real WikiArt data has.

Every simulated study goes through the functions notebooks 06/08 and ``python -m artlib compare`` call
(:func:`artlib.analysis.evidence.measure` and :func:`artlib.analysis.verdicts.judge`), on data built the
way WikiArt's is: test paintings clustered by artist (1–30 paintings each), a stage × artist affinity (a
stage suits some artists better than its rival does), a stage × painting affinity, seeds that shift a whole
model, and the regimes an independent review found hard: test sets dominated by a few large artists, skewed
per-artist differences under the null, seeds that vary a lot without artists, two pooled splits. With no true
difference, "improved" + "worse" must not be detectably above 5% (tolerance 2 Monte Carlo standard errors) per
comparison and family-wise under Holm for a family of 7; power for +5 and +10 points is printed (``pytest -s``)
and quoted in the README.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import numpy as np
import pytest
from scipy.special import logit

from artlib.analysis.evidence import SplitData, measure
from artlib.analysis.stats import crossed_mean
from artlib.analysis.verdicts import judge
from artlib.stages import COMPARISONS

TEST_SHARE = 0.15 / 0.70  # n_test / n_train of the default 70/15/15 split
COMPARISON = COMPARISONS[0]
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _cheap_gc() -> Iterator[None]:
    """statsmodels' Holm calls gc.collect() every time; freezing the suite's objects keeps that cheap."""
    gc.freeze()
    yield
    gc.unfreeze()


def artists_of(rng: np.random.Generator, n: int, largest: int = 30) -> np.ndarray:
    """Artist codes of ``n`` paintings, each artist with 1..``largest`` paintings (uniform)."""
    sizes = rng.integers(1, largest + 1, size=n)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n)) + 1]
    sizes[-1] -= int(sizes.sum()) - n
    return np.repeat(np.arange(len(sizes)), sizes)


def study(rng: np.random.Generator, n: int = 1500, seeds: int = 3, artist_sd: float = 0.6, seed_sd: float = 0.1,
          shift: float = 0.0, painting_sd: float = 1.0, largest: int = 30, sizes: np.ndarray | None = None,
          skewed: float = 0.0) -> SplitData:
    """One split of a simulated study: a stage (better by ``shift`` logits) and its rival on the same paintings.

    Logit of a right answer = shared difficulty (painting and artist) + the model's affinity with the artist
    (sd ``artist_sd``) and with the painting (sd ``painting_sd``) + the seed's shift (sd ``seed_sd``) + noise.
    ``sizes`` fixes the artists' sizes (else uniform 1..``largest``). ``skewed`` > 0 replaces the stage's
    artist affinity by a skewed one (+0.4 on 80% of artists, −1.6 on the rest) shifted by ``skewed`` logits
    (choose it so the expected accuracies are equal: a null with skewed per-artist differences).
    The majority baseline (62% positive) is right on a painting independently of the models.
    """
    artists = artists_of(rng, n, largest) if sizes is None else np.repeat(np.arange(len(sizes)), sizes)
    n, groups = len(artists), int(artists.max()) + 1
    difficulty = rng.normal(logit(0.72), 1.2, n) + rng.normal(0, 0.8, groups)[artists]

    def model(extra: float, by_artist: np.ndarray) -> np.ndarray:
        affinity = by_artist[artists] + rng.normal(0, painting_sd, n)
        seed_shift = rng.normal(0, seed_sd, (seeds, 1))
        return (difficulty + extra + affinity + seed_shift + 0.7 * rng.logistic(size=(seeds, n)) > 0).astype(np.int8)

    stage_by_artist = (np.where(rng.random(groups) < 0.8, 0.4, -1.6) + skewed if skewed
                       else rng.normal(0, artist_sd, groups))
    stage = model(shift, stage_by_artist)
    rival = model(0.0, np.zeros(groups) if skewed else rng.normal(0, artist_sd, groups))
    majority = (rng.random(n) < 0.62).astype(np.int8)
    return SplitData(stage, rival, {"majority": majority}, artists.astype(str))


def heavy_sizes(rng: np.random.Generator, n: int = 1200) -> np.ndarray:
    """Three large artists (300, 150, 100 paintings) and the rest of artists of 1–30, as real test splits hold."""
    rest = artists_of(rng, n - 550)
    return np.concatenate([[300, 150, 100], np.bincount(rest)])


def lognormal_sizes(rng: np.random.Generator, artists: int = 170) -> np.ndarray:
    """WikiArt-like artist sizes: lognormal around 25 paintings, a long tail of prolific artists."""
    return np.maximum(1, np.round(rng.lognormal(np.log(25), 1.4, artists))).astype(int)


def skew_shift() -> float:
    """The shift that gives the skewed stage the rival's expected accuracy (large Monte Carlo draw, seeded)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    rng = np.random.default_rng(1)
    base = rng.normal(logit(0.72), 1.2, 400_000) + rng.normal(0, 0.8, 400_000) + rng.normal(0, 1.0, 400_000)
    mix = np.where(rng.random(400_000) < 0.8, 0.4, -1.6)
    target = expit(base / 0.7).mean()
    return float(brentq(lambda c: expit((base + mix + c) / 0.7).mean() - target, -2, 3))


def called(parts: list[list[SplitData]], alpha: float = 0.05) -> list[str]:
    """The verdicts of one family of comparisons (one list of splits each), Holm within the family."""
    measured = [measure(p, TEST_SHARE) for p in parts]
    return [v.verdict for v in judge([COMPARISON] * len(parts), measured, alpha)]


def rates(runs: int, seed: int, family: int = 1, **setting: float) -> dict[str, float]:
    """Share of ``runs`` simulated families with some 'improved' / 'worse' verdict."""
    rng = np.random.default_rng(seed)
    improved = worse = 0
    for _ in range(runs):
        verdicts = called([[study(rng, **setting)] for _ in range(family)])
        improved += "improved" in verdicts
        worse += "worse" in verdicts
    return {"improved": improved / runs, "worse": worse / runs}


NULL_SETTINGS = [  # seeds, test paintings, largest artist, stage × artist sd, seed sd (logit per model; 0.28 ≈ 4.6 points)
    dict(seeds=3, n=300, largest=30, artist_sd=1.0, seed_sd=0.2),
    dict(seeds=3, n=1200, largest=10, artist_sd=0.6, seed_sd=0.1),
    dict(seeds=3, n=3000, largest=30, artist_sd=1.0, seed_sd=0.28),
    dict(seeds=3, n=1200, largest=30, artist_sd=1.0, seed_sd=0.0),
    dict(seeds=5, n=1500, largest=30, artist_sd=0.0, seed_sd=0.0),
    dict(seeds=5, n=600, largest=1, artist_sd=0.0, seed_sd=0.2),
    dict(seeds=5, n=3000, largest=30, artist_sd=0.6, seed_sd=0.28),
    dict(seeds=10, n=300, largest=30, artist_sd=0.6, seed_sd=0.05),
    dict(seeds=10, n=3000, largest=20, artist_sd=1.0, seed_sd=0.1),
    dict(seeds=3, n=1200, largest=1, artist_sd=0.0, seed_sd=0.2),  # no artists, seeds varying a lot
    dict(seeds=3, n=1200, largest=1, artist_sd=0.0, seed_sd=0.3),
]


@pytest.mark.parametrize("kind", ["three large artists", "lognormal sizes", "skewed, three large artists",
                                  "skewed, lognormal sizes"])
def test_unequal_artists_and_skewed_differences_are_rarely_called(kind: str) -> None:
    """Test sets dominated by a few artists, and a null whose per-artist differences are skewed (most artists
    favour the stage a little, a few favour the rival a lot, equal expected accuracy): ≤ 5% (+ 2 MC SE)."""
    runs, rng = 800, np.random.default_rng(len(kind))
    shift = skew_shift() if kind.startswith("skewed") else 0.0
    calls = 0
    for _ in range(runs):
        sizes = heavy_sizes(rng) if "three" in kind else lognormal_sizes(rng)
        calls += called([[study(rng, sizes=sizes, artist_sd=1.0, skewed=shift)]])[0] != "inconclusive"
    print(f"no effect, {kind}: some verdict in {calls / runs:.1%} of {runs}")
    assert calls / runs <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / runs)


@pytest.mark.parametrize("setting", NULL_SETTINGS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_no_true_difference_is_rarely_called(setting: dict) -> None:
    """1,000 null studies per setting: 'improved' + 'worse' not detectably above 5% (tolerance 2 Monte Carlo SE)."""
    runs = 1000
    r = rates(runs, seed=sum(int(v * 100) for v in setting.values()), **setting)
    print(f"no effect, {setting}: improved {r['improved']:.1%}, worse {r['worse']:.1%} of {runs}")
    assert r["improved"] + r["worse"] <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / runs)


@pytest.mark.parametrize("artist_sd", [0.0, 0.6, 1.0])
def test_a_family_of_seven_under_holm(artist_sd: float) -> None:
    """Seven null comparisons per study (3 seeds, 1,200 paintings, artists of 1–30): any verdict ≤ 5% + 2 SE."""
    runs = 600
    r = rates(runs, seed=7 + int(10 * artist_sd), family=7, seeds=3, n=1200, artist_sd=artist_sd, seed_sd=0.1)
    share = r["improved"] + r["worse"]  # a family with both is counted twice: an upper bound
    print(f"7 null comparisons, stage × artist sd {artist_sd}: some verdict in ≤ {share:.1%} of {runs} studies")
    assert share <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / runs)


def test_the_variance_matches_the_simulated_spread_with_artists() -> None:
    """The artist-aware variance of a difference averages to the Monte Carlo variance of the estimate."""
    rng = np.random.default_rng(3)
    naive_ratio = {}
    for artist_sd in (0.0, 1.0):
        estimates, variances, naive = [], [], []
        for _ in range(400):
            s = study(rng, n=1200, seeds=3, artist_sd=artist_sd, seed_sd=0.1, largest=20)
            diff = s.stage.astype(float) - s.baseline
            est = crossed_mean(diff, s.units)
            estimates.append(est.estimate)
            variances.append(est.se**2)
            naive.append(crossed_mean(diff).se ** 2)
        truth = np.var(estimates, ddof=1)
        ratio, naive_ratio[artist_sd] = np.mean(variances) / truth, np.mean(naive) / truth
        print(f"stage × artist sd {artist_sd}: artist-aware / Monte Carlo variance {ratio:.2f}, "
              f"paintings-only {naive_ratio[artist_sd]:.2f}")
        assert 0.85 < ratio < 1.3
    assert naive_ratio[1.0] < 0.8  # with artist affinity, paintings treated as independent give too narrow a variance


def test_power_is_printed_for_the_readme() -> None:
    """Power for +5 and +10 points (shift 0.3 / 0.6 logit) at realistic settings; printed, loosely asserted."""
    found = {}
    for seeds in (3, 5, 10):
        for points, shift in ((5, 0.3), (10, 0.6)):
            rng = np.random.default_rng(100 * seeds + points)
            hits = sum(called([[study(rng, n=1500, seeds=seeds, artist_sd=0.6, seed_sd=0.1, shift=shift)]],
                              alpha=0.05 / 7)[0] == "improved" for _ in range(300))
            found[(seeds, points)] = hits / 300
            print(f"+{points} points, {seeds} seeds, 1,500 test paintings (artists of 1–30, stage × artist sd 0.6, "
                  f"seed sd ≈ 1.6 points), α/7: found in {hits / 300:.0%} of 300 studies")
    assert found[(10, 10)] > 0.5 and found[(3, 10)] >= found[(3, 5)]


@pytest.mark.parametrize("splits, split_sd", [(3, 0.1), (2, 0.3), (3, 0.3)])
def test_pooled_splits_keep_the_error_rate(splits: int, split_sd: float) -> None:
    """K splits of one dataset (test artists redrawn, each split's training shifting each model): ≤ 5% + 2 SE."""
    rng = np.random.default_rng(11 + splits)
    runs, wrong = 400, 0
    for _ in range(runs):
        artists = artists_of(rng, 6000)
        groups = int(artists.max()) + 1
        difficulty = rng.normal(logit(0.72), 1.2, 6000) + rng.normal(0, 0.8, groups)[artists]
        affinity = [rng.normal(0, 1.0, groups)[artists] + rng.normal(0, 1.0, 6000) for _ in range(2)]
        majority = (rng.random(6000) < 0.62).astype(np.int8)
        parts = []
        for _ in range(splits):
            test = np.isin(artists, rng.choice(groups, size=int(0.15 * groups), replace=False))
            models = [(difficulty[test] + a[test] + rng.normal(0, split_sd) + rng.normal(0, 0.1, (3, 1))
                       + 0.7 * rng.logistic(size=(3, int(test.sum()))) > 0).astype(np.int8) for a in affinity]
            parts.append(SplitData(models[0], models[1], {"majority": majority[test]}, artists[test].astype(str)))
        wrong += called([parts])[0] != "inconclusive"
    print(f"{splits} pooled splits, split sd {split_sd}, no effect: some verdict in {wrong / runs:.1%} of {runs}")
    assert wrong / runs <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / runs)
