"""Which paintings must share a split: near-duplicates, listed duplicates and (optionally) artists, composed.

Each source links pairs of paintings; the split's groups are the connected components of all links
together, so a group of one source never straddles two splits even when another source joins it with
more paintings (an artist-disjoint split still keeps the same image under two artist names together).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from artlib.data import phash

log = logging.getLogger(__name__)
CHAIN_WARNING = 10
"""Warn when a near-duplicate group is larger: ArtEmis's curated duplicate list has no group above 3 paintings,
so ten or more usually means a chain of similar but distinct paintings (a series on one ground), not one image."""
LARGE_GROUP_SHARE = 1 / 3
"""Report a group of any kind (artist, near-duplicates, listed, combined) holding more paintings than this share of
the smallest split's target (5% of the data with 70/15/15): drawn into that split it would make up over a third of
it, so that split's verdicts would lean on one artist or series; it also leaves the strata little room to balance."""


def large_group_limit(n: int, fractions: tuple[float, float, float]) -> int:
    """The size above which a group is reported as large: LARGE_GROUP_SHARE of the smallest split's target."""
    smallest = min((f for f in fractions if f > 0), default=1.0)
    return int(n * smallest * LARGE_GROUP_SHARE)


@dataclass
class Links:
    """Pairs of row indices one source says belong together, and what to report about them."""

    source: str
    pairs: np.ndarray  # (k, 2) int64
    examples: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component id of each of n rows under these links (rows without links are alone)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def summarise(n: int, links: Links, limit: int | None = None, names: pd.Series | None = None) -> dict:
    """Groups formed (≥ 2 paintings), paintings joined, the largest group and those above ``limit``, for one source."""
    ids = components(n, links.pairs)
    sizes = np.bincount(ids) if n else np.zeros(0, dtype=np.int64)
    grouped = sizes[sizes >= 2]
    out = {"groups": int(len(grouped)), "paintings_joined": int(grouped.sum()),
           "largest_group": int(grouped.max()) if len(grouped) else 1, "examples": links.examples[:5], **links.notes}
    if limit is not None:
        out["large_groups"] = large_groups(ids, sizes, limit, n, names)
    return out


def large_groups(ids: np.ndarray, sizes: np.ndarray, limit: int, n: int, names: pd.Series | None) -> list[dict]:
    """The groups above ``limit`` paintings, largest first (at most 20): size, share of the data, one painting."""
    big = [g for g in np.argsort(-sizes, kind="stable")[:20] if sizes[g] > max(limit, 1)]
    first = {g: int(np.flatnonzero(ids == g)[0]) for g in big}
    return [{"paintings": int(sizes[g]), "share": round(float(sizes[g]) / n, 4),
             "example": str(names.iloc[first[g]]) if names is not None else first[g]} for g in big]


def near_duplicate_links(hashes: pd.Series, paths: pd.Series, max_distance: int) -> Links:
    """Paintings whose 64-bit phash differ in at most ``max_distance`` bits (rows without a hash take no part)."""
    values, valid = phash.parse(hashes)
    rows = np.flatnonzero(valid)
    pairs, dist = phash.close_pairs(values[rows], max_distance)
    pairs = rows[pairs] if len(pairs) else pairs
    order = np.argsort(-dist, kind="stable")[:5]  # the farthest pairs joined are the ones worth checking by eye
    examples = [[str(paths.iloc[i]), str(paths.iloc[j]), int(d)] for (i, j), d in zip(pairs[order], dist[order])]
    return Links("near_duplicates", pairs, examples, {"max_distance": int(max_distance),
                                                      "paintings_without_phash": int((~valid).sum())})


def listed_links(keys: pd.Series, groups: list[list[str]]) -> Links:
    """Pairs from a list of duplicate groups (canonical 'Style/painting.jpg' keys), matched also ignoring case."""
    exact = {k: i for i, k in enumerate(keys)}
    folded: dict[str, int | None] = {}
    for i, k in enumerate(keys):
        folded[k.casefold()] = None if k.casefold() in folded else i  # ambiguous when two keys fold alike
    pairs, missing, examples = [], 0, []
    for group in groups:
        rows = [exact.get(m, folded.get(m.casefold())) for m in group]
        missing += sum(r is None for r in rows)
        rows = [r for r in rows if r is not None]
        pairs += [(rows[0], r) for r in rows[1:]]
        if len(rows) >= 2 and len(examples) < 5:
            examples.append([str(keys.iloc[r]) for r in rows])
    return Links("listed_duplicates", np.asarray(pairs, dtype=np.int64).reshape(-1, 2), examples,
                 {"listed_groups": len(groups), "listed_paintings_not_in_manifest": int(missing)})


def artist_links(artists: pd.Series) -> Links:
    """Every painting of an artist linked to the artist's first painting (paintings without an artist stay alone)."""
    frame = pd.DataFrame({"artist": artists.fillna("").astype(str).to_numpy(), "row": np.arange(len(artists))})
    frame = frame[frame["artist"] != ""]
    first = frame.groupby("artist")["row"].transform("min").to_numpy()
    pairs = np.stack([first, frame["row"].to_numpy()], axis=1)
    return Links("artists", pairs[pairs[:, 0] != pairs[:, 1]])


def compose(n: int, sources: list[Links], limit: int | None = None,
            names: pd.Series | None = None) -> tuple[np.ndarray, dict]:
    """Group id per row from every source's links together, and the report per source and combined.

    With ``limit``, every source's groups above that many paintings (and the combined ones) are reported
    (``large_groups``) and logged as a warning with their kind and size.
    """
    report = {s.source: summarise(n, s, limit, names) for s in sources}
    near = report.get("near_duplicates")
    if near and near["largest_group"] > CHAIN_WARNING:
        log.warning("a near-duplicate group holds %d paintings (more than %d): probably a chain of similar, distinct "
                    "paintings; check prepare_report.json's examples, or lower --phash-distance",
                    near["largest_group"], CHAIN_WARNING)
        near["warning"] = f"largest group above {CHAIN_WARNING}: check for a chain of distinct paintings"
    pairs = np.concatenate([s.pairs for s in sources]) if sources else np.zeros((0, 2), dtype=np.int64)
    ids = components(n, pairs)
    combined = summarise(n, Links("combined", pairs), limit, names)
    combined.pop("examples")
    report["combined"] = combined
    if limit is not None:
        warn_large(report, limit, n)
    return ids, report


def warn_large(report: dict, limit: int, n: int) -> None:
    """One warning per kind of group holding groups above ``limit`` paintings (kind, count, the largest)."""
    warned = False
    for kind, numbers in report.items():
        found = numbers.get("large_groups", [])
        if found and (kind != "combined" or not warned):  # combined: only groups that joining sources made
            warned = True
            log.warning("%s: %d group(s) above %d paintings (%.1f%% of %d; a third of the smallest split's target), the "
                        "largest %d (e.g. %s) — a split holding it leans on it; see prepare_report.json's grouping",
                        kind.replace("_", " "), len(found), limit, 100 * limit / max(n, 1), n,
                        found[0]["paintings"], found[0]["example"])
