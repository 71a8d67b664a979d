"""Plan the next run: how many seeds (and splits) would detect a difference of 2, 5 or 10 points.

From a comparison's own variance components (:class:`artlib.analysis.stats.SeedAwareMean`'s pieces), the
variance of the mean difference with S seeds on one split is

    (σ²_seed + σ²_seed×units) / S + σ²_units

— the seed part shrinks with seeds, the artists' (or paintings') part does not: only more test artists
do, which K splits bring, approximately by Nadeau & Bengio's factor (1/K + n_test/n_train). The
smallest difference found with 80% power at two-sided level a is about (t_{1−a/2} + t_{0.8}) times the
standard error (t quantiles at the planned variance's Satterthwaite df); a is the family's strictest Holm level,
α / m. Approximate: the split's own variance is unknown from one split (taken as 0, so split rows are optimistic
there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from scipy import stats as sps

from artlib.analysis.stats import MeanSquares, SeedAwareMean, satterthwaite_df, used_coefficients

SEEDS = (3, 5, 10, 20, 50)
SPLITS = (1, 3, 5, 10)
TARGETS = (0.02, 0.05, 0.10)


def components(d: SeedAwareMean) -> tuple[float, float, float]:
    """(seed, seed × unit interaction, units) components of one split's mean difference, each truncated at 0.

    The first two are per seed (they shrink as 1/S); the units' component does not shrink with seeds.
    """
    seeds = d.n_seeds
    return (seeds * max(d.between_seeds - d.residual_term, 0.0), seeds * d.residual_term,
            max(d.painting_term - d.residual_term, 0.0))


def detectable(d: SeedAwareMean, seeds: int, splits: int, level: float, test_share: float,
               power: float = 0.8) -> float:
    """About the smallest difference found with ``power`` at two-sided ``level`` with these seeds and splits.

    The planned run's mean squares are what the components predict for ``seeds`` seeds; its variance and t
    degrees of freedom follow the same rules as the estimate's own (:func:`crossed_mean`), so a plan with few
    seeds is not promised the power of a normal approximation.
    """
    seed, interaction, fixed = components(d)
    if splits > 1:  # seeds' parts shrink with every split's own seeds; the units' part by Nadeau–Bengio's factor
        variance = (seed + interaction) / (seeds * splits) + fixed * (1.0 / splits + test_share)
        df = float(splits - 1)  # what pooling K splits may rest on (the spread between them)
    else:
        nu = d.nu_units if math.isfinite(d.nu_units) else float(max(d.n_clusters - 1, 1))
        planned = MeanSquares((seed + interaction) / seeds, fixed + interaction / seeds, interaction / seeds,
                              seeds - 1, nu, (seeds - 1) * nu)
        coef = used_coefficients(planned)
        variance = coef["seed"] * planned.seed + coef["cluster"] * planned.cluster + coef["residual"] * planned.residual
        df = satterthwaite_df(planned, coef) if seeds > 1 else float(nu)
    t = sps.t.ppf(1 - level / 2, df) + sps.t.ppf(power, df)
    return float(t * math.sqrt(max(variance, 0.0)))


def fewest(d: SeedAwareMean, target: float, level: float, test_share: float) -> tuple[int, int] | None:
    """The cheapest (seeds, splits) of the grid that detects ``target`` (fewest stage-runs), or None."""
    options = [(s * k, s, k) for s in SEEDS for k in SPLITS
               if detectable(d, s, k, level, test_share) <= target]
    return min(options)[1:] if options else None


def plan_table(estimates: dict[str, SeedAwareMean], level: float, test_share: float,
               targets: Sequence[float] = TARGETS) -> pd.DataFrame:
    """Per comparison and target difference: the cheapest seeds × splits that would detect it (80% power)."""
    rows = []
    for name, d in estimates.items():
        if not all(math.isfinite(x) for x in (d.between_seeds, d.painting_term, d.residual_term)) or d.n_seeds < 2:
            continue
        for target in targets:
            best = fewest(d, target, level, test_share)
            rows.append({"comparison": name, "difference_points": round(target * 100),
                         "seeds": best[0] if best else None, "splits": best[1] if best else None,
                         "detectable_now": detectable(d, d.n_seeds, d.n_splits, level, test_share)})
    return pd.DataFrame(rows, columns=["comparison", "difference_points", "seeds", "splits", "detectable_now"])


def plan_text(table: pd.DataFrame, level: float) -> str:
    """The plan in words: per comparison, what would detect 2, 5 and 10 points."""
    if table.empty:
        return "Power plan: no comparison has two or more seeds yet, so there is no variance to plan from."
    lines = [f"Power plan (approximate; 80% power at the family's strictest Holm level {level:.3g}; the split's own "
             f"variance is unknown from one split and taken as 0):"]
    for name, part in table.groupby("comparison", sort=False):
        parts = []
        for r in part.itertuples():
            if r.seeds is None or pd.isna(r.seeds):
                parts.append(f"±{r.difference_points}: more than {SEEDS[-1]} seeds × {SPLITS[-1]} splits "
                             f"(more test artists needed)")
            else:
                where = "one split" if int(r.splits) == 1 else f"{int(r.splits)} splits (prepare --split-seeds)"
                parts.append(f"±{r.difference_points}: {int(r.seeds)} seeds on {where}")
        lines.append(f"- {name} (now ±{part['detectable_now'].iloc[0] * 100:.1f} points): " + "; ".join(parts))
    return "\n".join(lines)
