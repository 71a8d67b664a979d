"""Seed-aware statistics and the verdict rule: calibrated by simulation, and right on fabricated scenarios.

The decision procedure is tested the way a reviewer would: simulated runs with NO true difference
(but realistic seed-to-seed variation) must almost never be called "improved", and a real
difference must usually be found. Both rates are printed (run pytest with -s to see them).
"""

from __future__ import annotations

import gc
from dataclasses import replace
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.special import logit

from artlib.analysis.stats import (clopper_pearson, holm, holm_levels, crossed_mean, stage_accuracy_interval)
from artlib.analysis.verdicts import Evidence, decide, sentence

from test_compare import write_stage


# ---- simulation of a study: paintings of varying difficulty, seeds that shift a model ----------------------
def simulate(rng: np.random.Generator, n: int = 1500, seeds: int = 3, shift: float = 0.0,
             seed_sd: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Correctness (seeds × paintings) of a stage and its baseline; ``shift`` (logit) makes the stage better."""
    difficulty = rng.normal(logit(0.7), 1.5, size=n)

    def model(extra: float) -> np.ndarray:
        seed_effect = rng.normal(0, seed_sd, size=(seeds, 1))
        return (difficulty + extra + seed_effect + 0.7 * rng.logistic(size=(seeds, n)) > 0).astype(np.int8)

    return model(shift), model(0.0)


def evidence_of(stage: np.ndarray, baseline: np.ndarray, p_adjusted: float | None = None, level: float = 0.05,
                reference: float = 0.0) -> Evidence:
    """The Evidence the verdict rule sees for two correctness arrays (one comparison in its family)."""
    diff = crossed_mean(stage.astype(float) - baseline)
    low, high = diff.interval(1 - level)
    p = diff.p_value()
    return Evidence("sim", "a", "b", "matched control", "?", stage.shape[0], stage.shape[1], float(stage.mean()),
                    float(baseline.mean()), diff.estimate, diff.per_seed, low, high, 1 - level, p,
                    p if p_adjusted is None else p_adjusted, diff.detectable(level), "majority", reference)


@pytest.mark.slow
def test_seed_aware_variance_matches_the_simulated_spread_of_the_mean() -> None:
    """The ANOVA variance of a mean difference averages to its Monte Carlo variance; the truncated one is never lower."""
    rng = np.random.default_rng(0)
    for seed_sd in (0.0, 0.1, 0.3):
        means, unbiased, used = [], [], []
        for _ in range(500):
            a, b = simulate(rng, n=400, seeds=3, seed_sd=seed_sd)
            est = crossed_mean(a.astype(float) - b)
            means.append(est.estimate)
            unbiased.append(est.between_seeds + est.painting_term - est.residual_term)
            used.append(est.se ** 2)
        truth = np.var(means, ddof=1)
        print(f"seed sd {seed_sd}: unbiased / Monte Carlo variance = {np.mean(unbiased) / truth:.2f}, "
              f"used (seed part truncated at 0) / Monte Carlo = {np.mean(used) / truth:.2f}")
        assert 0.8 < np.mean(unbiased) / truth < 1.2
        assert np.mean(used) / truth > 0.95


def _verdict_rates(rng: np.random.Generator, runs: int, shift: float, seed_sd: float,
                   family: int = 1) -> dict[str, float]:
    """Share of simulated runs (3 seeds, 1,500 paintings) with each verdict, as the smallest p of ``family`` (Holm)."""
    verdicts = []
    for _ in range(runs):
        e = evidence_of(*simulate(rng, shift=shift, seed_sd=seed_sd), level=0.05 / family)
        verdicts.append(decide(replace(e, p_adjusted=min(1.0, e.p_value * family))).verdict)
    return {v: verdicts.count(v) / runs for v in ("improved", "worse")}


@pytest.mark.slow
def test_calibration_no_effect_is_rarely_called_and_a_real_effect_is_found() -> None:
    """1,000 simulated runs per setting: improved + worse ≤ 5% (two-sided, + MC error) with no effect; power printed."""
    rng = np.random.default_rng(2026)
    runs = 1000
    mc = 2 * np.sqrt(0.05 * 0.95 / runs)
    for label, seed_sd in (("seed sd ≈ 1.8 points", 0.1), ("seed sd ≈ 3.4 points", 0.2)):
        r = _verdict_rates(rng, runs, 0.0, seed_sd)
        print(f"no effect, {label}: 'improved' {r['improved']:.1%}, 'worse' {r['worse']:.1%} of {runs} runs")
        assert r["improved"] + r["worse"] <= 0.05 + mc
        assert r["improved"] <= 0.025 + 2 * np.sqrt(0.025 * 0.975 / runs)
    power = {}
    for label, seed_sd, family in (("seed sd ≈ 1 point, α = 5%", 0.03, 1),
                                   ("seed sd ≈ 1.8 points, α = 5%", 0.1, 1),
                                   ("seed sd ≈ 1 point, α/7 (Holm's first step of 7)", 0.03, 7),
                                   ("seed sd ≈ 1.8 points, α/7", 0.1, 7)):
        power[label] = _verdict_rates(rng, runs, 0.3, seed_sd, family)["improved"]
        print(f"+5 points, {label}: found in {power[label]:.1%} of {runs} runs")
    assert power["seed sd ≈ 1 point, α = 5%"] > 0.5


@pytest.mark.slow
def test_holm_family_keeps_false_positives_down() -> None:
    """Seven null comparisons per run: with Holm, any verdict other than inconclusive in ≤ α (+ MC error) of runs."""
    rng = np.random.default_rng(7)
    any_called = 0
    runs = 500
    # statsmodels' Holm runs gc.collect() on every call; freezing what the suite already holds keeps those cheap
    gc.freeze()
    try:
        for _ in range(runs):
            family = [simulate(rng, n=600, seed_sd=0.1) for _ in range(7)]
            raw = [crossed_mean(a.astype(float) - b) for a, b in family]
            adjusted = holm([d.p_value() for d in raw])
            levels = holm_levels([d.p_value() for d in raw])
            verdicts = [decide(evidence_of(a, b, p_adjusted=adj, level=lvl)).verdict
                        for (a, b), adj, lvl in zip(family, adjusted, levels)]
            any_called += any(v != "inconclusive" for v in verdicts)
    finally:
        gc.unfreeze()
    print(f"7 null comparisons with Holm: some 'improved' or 'worse' in {any_called / runs:.1%} of {runs} runs")
    assert any_called / runs <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / runs)


def test_residual_noise_never_gives_a_zero_width_interval() -> None:
    """Each seed right on a different third, baseline always wrong: the residual noise keeps the interval open."""
    stage = np.zeros((3, 300))
    for seed in range(3):
        stage[seed, 100 * seed:100 * (seed + 1)] = 1
    diff = crossed_mean(stage)
    assert diff.estimate == pytest.approx(1 / 3)
    low, high = diff.interval()
    assert diff.se > 0 and low < 1 / 3 < high


def test_few_differing_paintings_are_judged_by_the_exact_sign_test() -> None:
    """Identical seeds, 4 of 1,000 paintings better and none worse: p is the sign test's 0.125, never the t's 0.045."""
    diff_row = np.zeros(1000)
    diff_row[:4] = 1
    diff = crossed_mean(np.tile(diff_row, (3, 1)))
    assert diff.t_p_value() < 0.05
    assert diff.p_value() == pytest.approx(0.125)
    stage = np.tile(diff_row, (3, 1)).astype(np.int8)
    verdict = decide(evidence_of(stage, np.zeros_like(stage)))
    assert verdict.verdict == "inconclusive" and verdict.reason.startswith("few paintings differ")


def test_holm_matches_hand_computation() -> None:
    """Holm: sorted p × (m, m-1, …), running maximum, capped at 1; NaN left out of the family."""
    assert np.allclose(holm([0.01, 0.04, 0.03, np.nan]), [0.03, 0.06, 0.06, np.nan], equal_nan=True)
    assert np.allclose(holm_levels([0.01, 0.04, 0.03]), [0.05 / 3, 0.05, 0.05 / 2])


def test_stage_intervals_are_exact_and_never_of_zero_width() -> None:
    """57 of 57 right: Clopper–Pearson [0.025^(1/57), 1]; a perfect stage over seeds keeps that width."""
    low, high = clopper_pearson(57, 57)
    assert (low, high) == (pytest.approx(0.025 ** (1 / 57)), 1.0) and low < 0.94
    assert stage_accuracy_interval(np.ones((3, 57))) == pytest.approx((low, high))
    assert clopper_pearson(3, 10) == pytest.approx(sps.binomtest(3, 10).proportion_ci(method="exact"))


@pytest.mark.slow
def test_stage_interval_covers_the_truth() -> None:
    """Korn–Graubard interval of a seed-averaged accuracy covers the true accuracy in ≥ 93% of simulations."""
    rng = np.random.default_rng(5)
    covered, runs = 0, 300
    for _ in range(runs):
        difficulty = rng.normal(2.0, 1.5, size=400)
        true = np.mean(1 / (1 + np.exp(-(difficulty - 0))))  # noqa: F841 (documenting the model)
        seed_effect = rng.normal(0, 0.15, size=(3, 1))
        correct = difficulty + seed_effect + rng.logistic(size=(3, 400)) > 0
        # the truth: the expected accuracy over paintings, seeds and noise, by a large draw
        big = rng.normal(2.0, 1.5, size=200_000)
        truth = np.mean(big + rng.normal(0, 0.15, size=200_000) + rng.logistic(size=200_000) > 0)
        low, high = stage_accuracy_interval(correct)
        covered += low <= truth <= high
    print(f"stage interval coverage: {covered / runs:.1%}")
    assert covered / runs >= 0.93


# ---- the verdict rule ----------------------------------------------------------------------
def _evidence(**changes: object) -> Evidence:
    """A clear improvement (3 seeds agree, interval above 0) with fields changed as asked."""
    base = dict(comparison="c", stage="a", baseline="b", kind="matched control", question="?", n_seeds=3, n_test=500,
                stage_accuracy=0.80, baseline_accuracy=0.74, difference=0.06, per_seed=(0.05, 0.06, 0.07),
                ci_low=0.03, ci_high=0.09, confidence=0.95, p_value=0.001, p_adjusted=0.004, detectable=0.03,
                reference="majority", reference_accuracy=0.61)
    return Evidence(**{**base, **changes})


@pytest.mark.parametrize("changes, verdict, reason", [
    ({}, "improved", "excludes 0"),
    ({"difference": -0.06, "per_seed": (-0.05, -0.06, -0.07), "ci_low": -0.09, "ci_high": -0.03}, "worse", "excludes 0"),
    ({"n_seeds": 2, "per_seed": (0.11, -0.02)}, "inconclusive", "too few seeds (2 < 3); seeds disagree"),
    ({"stage_accuracy": 0.58, "baseline_accuracy": 0.52}, "inconclusive", "both models are below the majority"),
    ({"p_adjusted": 0.2, "ci_low": -0.01}, "inconclusive", "spans 0"),
    ({"per_seed": (0.12, 0.08, -0.01)}, "inconclusive", "seeds disagree"),
])
def test_verdict_rule(changes: dict, verdict: str, reason: str) -> None:
    """Each branch of the rule, with the reason it gives."""
    v = decide(_evidence(**changes))
    assert v.verdict == verdict and reason in v.reason


def test_sentences_never_contradict_the_verdict() -> None:
    """'improved'/'worse' appear only as the verdict; the p printed is the Holm-adjusted one the rule used."""
    for changes in ({}, {"p_adjusted": 0.2, "ci_low": -0.01}, {"n_seeds": 2, "per_seed": (0.11, -0.02)}):
        v = decide(_evidence(**changes))
        text = sentence(v)
        assert f"Verdict: {v.verdict.upper()}" in text
        assert "significant" not in text and "did not" not in text
        assert f"p = {v.evidence.p_adjusted:.3f}" in text


# ---- the three fabricated scenarios, on run directories ------------------------------------------
def _scenario(tmp_path: Path, accuracies: dict[str, list[float]], n: int, majority_share: float = 0.5) -> Path:
    """Two emotion stages with exactly these per-seed accuracies on ``n`` shared test paintings."""
    run = tmp_path / "run"
    rng = np.random.default_rng(11)
    labels = np.where(np.arange(n) < int(majority_share * n), "positive", "negative")
    paths = [f"S/p{i:05d}.jpg" for i in range(n)]
    eras = ["Modern"] * n
    for stage, per_seed in accuracies.items():
        for seed, acc in enumerate(per_seed):
            right = np.zeros(n, bool)
            right[rng.permutation(n)[: int(round(acc * n))]] = True
            flipped = np.where(labels == "positive", "negative", "positive")
            write_stage(run, stage, seed, paths, eras, labels, np.where(right, labels, flipped), majority="positive")
    return run


def _verdict_text(run: Path) -> tuple[pd.DataFrame, str]:
    """verdicts and conclusion of a fabricated run, as notebook 06 computes them."""
    from artlib.analysis import compare, verdicts

    results = compare.load_results(run)
    summary = compare.summary_table(results, run)
    found = verdicts.evaluate(run, results)
    return verdicts.verdict_table(found), verdicts.conclusion_text(found, summary)


def test_scenario_seed_flip(tmp_path: Path) -> None:
    """Two seeds, 2,000 paintings: +11 points on seed 0, −2 on seed 1 → inconclusive, never 'improved'."""
    run = _scenario(tmp_path, {"genre_conv4_then_emotion_conv5": [0.71, 0.58],
                               "emotion_conv5": [0.60, 0.60]}, 2000, majority_share=0.5)
    table, text = _verdict_text(run)
    row = table.set_index("comparison").loc["genre → conv5 vs the study's baseline"]
    assert row["verdict"] == "inconclusive" and "too few seeds (2 < 3)" in row["reason"] and "disagree" in row["reason"]
    assert "IMPROVED" not in text and "significant" not in text


def test_scenario_both_below_the_majority(tmp_path: Path) -> None:
    """Both models below always-majority (70%): the sentence says so first, and the verdict is inconclusive."""
    run = _scenario(tmp_path, {"genre_conv4_then_emotion_conv5": [0.66, 0.65, 0.67],
                               "emotion_conv5": [0.55, 0.56, 0.54]}, 1500, majority_share=0.7)
    table, text = _verdict_text(run)
    row = table.set_index("comparison").loc["genre → conv5 vs the study's baseline"]
    assert row["verdict"] == "inconclusive" and row["reason"].startswith("both models are below the majority")
    assert row["sentence"].index("Both models are below") < row["sentence"].index("Verdict")
    assert "First, the baselines" in text


def test_scenario_mean_up_while_more_paintings_favour_the_baseline(tmp_path: Path) -> None:
    """+6.2 points on average, yet more paintings where only the baseline is right: one consistent verdict."""
    run = tmp_path / "run"
    n = 1000
    labels = np.array(["positive"] * 500 + ["negative"] * 500)
    flipped = np.where(labels == "positive", "negative", "positive")
    paths = [f"S/p{i:05d}.jpg" for i in range(n)]
    # stage: right on paintings 0-691 in every seed; baseline right on 0-629 plus a rotating 70 of 630-999
    for seed in range(3):
        stage_right = np.arange(n) < 692
        base_right = np.arange(n) < 560
        base_right[630 + 70 * seed: 700 + 70 * seed] = True
        write_stage(run, "genre_conv4_then_emotion_conv5", seed, paths, ["Modern"] * n, labels,
                    np.where(stage_right, labels, flipped), majority="positive")
        write_stage(run, "emotion_conv5", seed, paths, ["Modern"] * n, labels, np.where(base_right, labels, flipped),
                    majority="positive")
    table, text = _verdict_text(run)
    row = table.set_index("comparison").loc["genre → conv5 vs the study's baseline"]
    assert row["difference"] == pytest.approx(0.062)
    improved = row["verdict"] == "improved"
    assert improved == (row["p_adjusted"] < 0.05 and row["ci_low"] > 0)
    sentence_text = row["sentence"]
    assert "did not" not in sentence_text and "significant" not in sentence_text
    assert re.search(r"Verdict: (IMPROVED|INCONCLUSIVE)", sentence_text)
