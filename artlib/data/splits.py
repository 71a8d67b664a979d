"""One train/val/test split per painting, shared by every task.

Groups (near-duplicates with the same phash, or whole artists) never straddle two
splits; within that constraint the splits are stratified by a label (era × emotion).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def check_fractions(fractions: tuple[float, float, float]) -> np.ndarray:
    """Validate train/val/test fractions (non-negative, summing to 1) and return them as an array."""
    arr = np.asarray(fractions, dtype=float)
    if arr.shape != (3,) or (arr < 0).any() or not np.isclose(arr.sum(), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    return arr


def assign_splits(
    strata: pd.Series,
    groups: pd.Series,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> pd.Series:
    """Assign 'train'/'val'/'test' to each row so that groups stay whole and strata keep their fractions.

    ``strata`` and ``groups`` are aligned by position; the result has ``strata``'s index.

    Greedy and deterministic for a given seed: groups are visited largest first (ties in a
    seeded random order) and each goes to the split whose share of the group's strata is
    furthest below its target.
    """
    target = check_fractions(fractions)
    index = strata.index
    strata = strata.astype(str).to_numpy()
    groups = groups.astype(str).to_numpy()
    if len(strata) == 0:
        return pd.Series([], dtype=str, index=index)
    stratum_codes, stratum_ids = np.unique(strata, return_inverse=True)
    group_codes, group_ids = np.unique(groups, return_inverse=True)
    n_groups, n_strata = len(group_codes), len(stratum_codes)
    # counts[g, k]: rows of group g in stratum k
    counts = np.zeros((n_groups, n_strata), dtype=np.int64)
    np.add.at(counts, (group_ids, stratum_ids), 1)
    totals = counts.sum(axis=0).astype(float)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    sizes = counts.sum(axis=1)
    order = order[np.argsort(-sizes[order], kind="stable")]
    assigned = np.zeros((3, n_strata), dtype=float)
    group_split = np.full(n_groups, -1, dtype=np.int64)
    # 1) groups of several rows, greedily (largest first)
    for g in order[sizes[order] > 1]:
        row = counts[g]
        nz = np.flatnonzero(row)
        need = (target[:, None] * totals[nz] - assigned[:, nz]) / totals[nz]
        score = (need * row[nz]).sum(axis=1)
        score = score + 1e-9 * (target * len(strata) - assigned.sum(axis=1))  # tie-break: overall deficit
        score[target == 0] = -np.inf
        s = int(np.argmax(score))
        group_split[g] = s
        assigned[s, nz] += row[nz]
    # 2) single rows, per stratum: fill each split's remaining quota exactly (largest remainder)
    singles = order[sizes[order] == 1]
    single_stratum = counts[singles].argmax(axis=1)
    for k in range(n_strata):
        members = singles[single_stratum == k]
        if len(members) == 0:
            continue
        want = np.clip(target * totals[k] - assigned[:, k], 0, None)
        want = want / want.sum() * len(members) if want.sum() > 0 else target * len(members)
        quota = np.floor(want).astype(np.int64)
        rest = len(members) - quota.sum()
        quota[np.argsort(-(want - quota), kind="stable")[:rest]] += 1
        group_split[members] = np.repeat(np.arange(3), quota)
        assigned[:, k] += quota
    return pd.Series(np.asarray(SPLITS)[group_split[group_ids]], index=index, name="split")
