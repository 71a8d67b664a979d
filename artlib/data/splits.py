"""Train/val/test splits per painting, shared by every task; several seeded splits for split-to-split variance.

Groups (near-duplicates with the same phash, listed duplicates, or whole artists) never straddle two
splits; within that constraint the splits are stratified by a label (era × emotion). Groups are visited
largest first; those of more than DRAWN_ABOVE paintings get a seeded random split (so artist-disjoint splits
put large artists in val and test too, where 0.2 sent every large artist to train), smaller ones the neediest
split, single paintings fill the quotas exactly. Against 0.2: ``--group-by phash`` (the default) gives the
identical split unless a near-duplicate group holds more than 3 paintings (those groups, and through the
quotas the single paintings of their strata, may then move); ``--group-by artist`` splits differ by design.

Several splits (``prepare --split-seeds K``) are K repeated random splits of the same paintings:
split seed 0 is the manifest's column ``split`` (the one split of 0.2, unchanged), split seed k ≥ 1
the column ``split_<k>`` (:func:`split_column`), drawn with the random stream ``(seed, k)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")
DRAWN_ABOVE = 3
"""Groups of more paintings than this get a split drawn at random (in proportion to what each split still
needs of the group's strata); smaller ones go to the neediest split. ArtEmis's curated duplicate list has no
group above 3 paintings, so true near-duplicates keep 0.2's deterministic placement, while artists are drawn:
visited largest first with the neediest-split rule, every large artist landed in train."""
DRAWS = 8
"""Placements of the drawn groups tried; the least overfilling is kept (artists paint in one era, so a single draw
can leave a small era's val or test share 10–15 points off; the best of 8 stays within about 6)."""


def split_column(split_seed: int) -> str:
    """The manifest column holding split seed k: 'split' for 0 (0.2's column), 'split_<k>' for k ≥ 1."""
    if split_seed < 0:
        raise ValueError(f"split seeds count from 0, got {split_seed}")
    return "split" if split_seed == 0 else f"split_{int(split_seed)}"


def split_seeds_in(columns: Iterable[str]) -> int:
    """How many split seeds a manifest holds: 'split', then 'split_1', 'split_2', … without a gap."""
    names, k = set(columns), 0
    while split_column(k) in names:
        k += 1
    return k


def stream(seed: int, split_seed: int) -> int | list[int]:
    """The random stream of split seed k under prepare's seed: the seed itself for k = 0 (0.2's split), else (seed, k)."""
    return int(seed) if split_seed == 0 else [int(seed), int(split_seed)]


def check_fractions(fractions: tuple[float, float, float]) -> np.ndarray:
    """Validate train/val/test fractions (non-negative, summing to 1) and return them as an array."""
    arr = np.asarray(fractions, dtype=float)
    if arr.shape != (3,) or (arr < 0).any() or not np.isclose(arr.sum(), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    return arr


def _need(row: np.ndarray, nz: np.ndarray, target: np.ndarray, totals: np.ndarray, assigned: np.ndarray) -> np.ndarray:
    """Per split: how far below its target share it is in the group's strata, weighted by the group's rows."""
    need = (target[:, None] * totals[nz] - assigned[:, nz]) / totals[nz]
    return need * row[nz]


def _place(row: np.ndarray, target: np.ndarray, totals: np.ndarray, assigned: np.ndarray,
           rng: np.random.Generator | None) -> int:
    """A group's split: drawn in proportion to each split's (positive) need when ``rng`` is given, else the neediest."""
    nz = np.flatnonzero(row)
    need = _need(row, nz, target, totals, assigned)
    if rng is not None:
        room = np.clip(target[:, None] * totals[nz] - assigned[:, nz], 0, None).sum(axis=1)
        weight = np.clip(need, 0, None).sum(axis=1) * (room >= row.sum())  # only splits with room for the whole group
        weight[target == 0] = 0
        if weight.sum() > 0:
            return int(rng.choice(3, p=weight / weight.sum()))
    score = need.sum(axis=1) + 1e-9 * (target * totals.sum() - assigned.sum(axis=1))  # tie-break: overall deficit
    score[target == 0] = -np.inf
    return int(np.argmax(score))


def _fill_singles(singles: np.ndarray, single_stratum: np.ndarray, target: np.ndarray, totals: np.ndarray,
                  assigned: np.ndarray, group_split: np.ndarray) -> None:
    """Single rows, per stratum: fill each split's remaining quota exactly (largest remainder)."""
    for k in range(len(totals)):
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


def _drawn(counts: np.ndarray, drawn: np.ndarray, target: np.ndarray, totals: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The best of DRAWS placements of the drawn groups (in visiting order): (their splits, rows per split and stratum).

    Best = least overfilled (the largest share of a stratum placed above the splits' targets): what comes after only
    adds rows where they are still needed, so it can make up a shortfall but never an excess.
    """
    best, best_excess = (np.zeros(0, dtype=np.int64), np.zeros((3, len(totals)))), np.inf
    for _ in range(DRAWS if len(drawn) else 0):
        assigned = np.zeros((3, len(totals)), dtype=float)
        splits = np.empty(len(drawn), dtype=np.int64)
        for i, g in enumerate(drawn):
            splits[i] = _place(counts[g], target, totals, assigned, rng)
            assigned[splits[i]] += counts[g]
        excess = (np.clip(assigned - target[:, None] * totals, 0, None).sum(axis=0) / totals).max()
        if excess < best_excess:
            best, best_excess = (splits, assigned), excess
    return best


def assign_splits(
    strata: pd.Series,
    groups: pd.Series,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int | Sequence[int] = 0,
) -> pd.Series:
    """Assign 'train'/'val'/'test' to each row so that groups stay whole and strata keep their fractions.

    ``strata`` and ``groups`` are aligned by position; the result has ``strata``'s index. Deterministic for a
    given seed: groups are visited largest first (ties in a seeded random order); groups of more than
    DRAWN_ABOVE rows get a split drawn in proportion to what each split still needs of their strata (the least
    overfilling of DRAWS such placements is kept), smaller ones the split furthest below its target; single rows
    then fill every stratum's quotas exactly.
    """
    target = check_fractions(fractions)
    index = strata.index
    if len(strata) == 0:
        return pd.Series([], dtype=str, index=index)
    _, stratum_ids = np.unique(strata.astype(str).to_numpy(), return_inverse=True)
    _, group_ids = np.unique(groups.astype(str).to_numpy(), return_inverse=True)
    counts = np.zeros((group_ids.max() + 1, stratum_ids.max() + 1), dtype=np.int64)  # rows of group g in stratum k
    np.add.at(counts, (group_ids, stratum_ids), 1)
    totals = counts.sum(axis=0).astype(float)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(counts))
    sizes = counts.sum(axis=1)
    order = order[np.argsort(-sizes[order], kind="stable")]
    group_split = np.full(len(counts), -1, dtype=np.int64)
    drawn = order[sizes[order] > DRAWN_ABOVE]  # visited first: largest first
    group_split[drawn], assigned = _drawn(counts, drawn, target, totals, rng)
    for g in order[(sizes[order] > 1) & (sizes[order] <= DRAWN_ABOVE)]:
        group_split[g] = _place(counts[g], target, totals, assigned, None)
        assigned[group_split[g]] += counts[g]
    singles = order[sizes[order] == 1]
    _fill_singles(singles, counts[singles].argmax(axis=1), target, totals, assigned, group_split)
    return pd.Series(np.asarray(SPLITS)[group_split[group_ids]], index=index, name="split")
