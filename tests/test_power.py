"""The power plan: from a run's own variance components, the seeds and splits that would detect 2, 5, 10 points."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from artlib.analysis import power
from artlib.analysis.stats import SeedAwareMean, crossed_mean


def _estimate(seed_piece: float, unit_piece: float, residual: float, seeds: int = 3) -> SeedAwareMean:
    """A difference's estimate with chosen variance pieces (each a variance of the mean), 1,000 painting units."""
    return SeedAwareMean(0.0, 0.0, 10.0, seed_piece, unit_piece, residual, (0.0,) * seeds, 1000, n_clusters=1000,
                         nu_units=999.0)


def test_detectable_follows_the_components() -> None:
    """(seed + interaction) / S + units, with the estimate's own truncation and degrees-of-freedom rules."""
    d = _estimate(seed_piece=4e-4, unit_piece=3e-4, residual=1e-4)
    seed, interaction, fixed = power.components(d)
    assert (seed, interaction, fixed) == pytest.approx((3 * 3e-4, 3 * 1e-4, 2e-4))
    at_three = power.detectable(d, 3, 1, 0.05, 0.2)
    assert at_three > (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * np.sqrt(4e-4 + 3e-4 - 1e-4)  # t, not z
    assert power.detectable(d, 10, 1, 0.05, 0.2) < at_three
    # K splits: seeds' parts shrink by 1/(S·K), the units' by (1/K + n_test/n_train); df = K − 1
    variance = (seed + interaction) / 15 + fixed * (0.2 + 0.2)
    t5 = sps.t.ppf(1 - 0.05 / 2, 4) + sps.t.ppf(0.8, 4)
    assert power.detectable(d, 3, 5, 0.05, 0.2) == pytest.approx(t5 * np.sqrt(variance))


def test_seeds_cannot_beat_the_artists_variance() -> None:
    """When artists dominate, no number of seeds on one split detects 2 points; splits are what the plan asks for."""
    d = _estimate(seed_piece=1e-5, unit_piece=2e-4, residual=1e-5)
    assert power.fewest(d, 0.02, 0.05 / 7, 0.2) is None or power.fewest(d, 0.02, 0.05 / 7, 0.2)[1] > 1
    table = power.plan_table({"c": d}, 0.05 / 7, 0.2)
    assert table["difference_points"].tolist() == [2, 5, 10]
    assert "Power plan" in power.plan_text(table, 0.05 / 7)


def test_the_plan_of_a_real_estimate_is_consistent_with_its_interval() -> None:
    """With this run's seeds and one split, the plan's 'detectable now' is the estimate's own."""
    rng = np.random.default_rng(0)
    diff = (rng.random((3, 800)) < 0.75).astype(float) - (rng.random((3, 800)) < 0.7)
    est = crossed_mean(diff)
    now = power.detectable(est, 3, 1, 0.05, 0.2)
    assert now == pytest.approx(est.detectable(0.05), rel=1e-6)
