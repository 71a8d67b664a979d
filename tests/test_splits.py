"""artlib.data.splits and prepare's split column: one leakage-free, stratified split per painting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artlib.data.prepare import PrepareConfig, PrepareResult, prepare
from artlib.data.splits import SPLITS, assign_splits, check_fractions, split_column, split_seeds_in, stream

ERAS = ("Renaissance", "Post-Renaissance", "Modern", "Contemporary")
EMOTIONS = ("positive", "negative", "")


def synthetic_rows(n: int = 3000, n_phash: int = 2600, n_artists: int = 150, seed: int = 0) -> pd.DataFrame:
    """n rows with era×emotion strata, phash groups (many near-duplicate pairs/triples) and artists."""
    rng = np.random.default_rng(seed)
    era = rng.choice(ERAS, n, p=[0.3, 0.3, 0.3, 0.1])
    emotion = rng.choice(EMOTIONS, n, p=[0.5, 0.3, 0.2])
    return pd.DataFrame({
        "stratum": [f"{a}|{b}" for a, b in zip(era, emotion)],
        "phash": [f"{v:016x}" for v in rng.integers(0, n_phash, n)],
        "artist": [f"artist-{v}" for v in rng.integers(0, n_artists, n)],
    })


def split_of(rows: pd.DataFrame, group: str = "phash", seed: int = 0,
             fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> pd.Series:
    """assign_splits on a synthetic frame, grouped by the named column."""
    return assign_splits(rows["stratum"], rows[group], fractions, seed)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """A few thousand synthetic rows (module-wide, read-only)."""
    return synthetic_rows()


def test_every_row_gets_one_valid_split(rows: pd.DataFrame) -> None:
    """One of train/val/test per row, no gaps."""
    split = split_of(rows)
    assert len(split) == len(rows)
    assert set(split) == set(SPLITS)
    assert split.notna().all()


@pytest.mark.parametrize("group", ["phash", "artist"])
def test_groups_never_straddle_splits(rows: pd.DataFrame, group: str) -> None:
    """Same phash ⇒ same split; group_by artist ⇒ artist-disjoint splits."""
    split = split_of(rows, group)
    per_group = pd.DataFrame({"g": rows[group], "s": split.to_numpy()}).groupby("g")["s"].nunique()
    assert rows[group].duplicated().any()  # the test data does hold multi-row groups
    assert per_group.max() == 1


def test_same_seed_same_split(rows: pd.DataFrame) -> None:
    """The split is a pure function of the inputs and the seed."""
    assert split_of(rows, seed=3).tolist() == split_of(rows, seed=3).tolist()


def test_different_seed_different_split(rows: pd.DataFrame) -> None:
    """Another seed gives another split (of the same sizes per stratum, roughly)."""
    a, b = split_of(rows, seed=0), split_of(rows, seed=1)
    assert (a.to_numpy() != b.to_numpy()).sum() > len(rows) // 10


@pytest.mark.parametrize("group, tolerance", [("phash", 0.05), ("artist", 0.05)])
def test_stratified_within_tolerance(rows: pd.DataFrame, group: str, tolerance: float) -> None:
    """Every era×emotion stratum's train share is within ±tolerance of 0.70 (val/test of 0.15 for phash)."""
    split = split_of(rows, group)
    share = pd.crosstab(rows["stratum"], split.to_numpy(), normalize="index")
    assert len(share) == 12
    assert (share["train"] - 0.70).abs().max() <= tolerance, share
    if group == "phash":
        assert (share["val"] - 0.15).abs().max() <= tolerance, share
        assert (share["test"] - 0.15).abs().max() <= tolerance, share


def test_overall_sizes_match_fractions(rows: pd.DataFrame) -> None:
    """Overall split sizes are within 1% of the fractions."""
    counts = split_of(rows).value_counts()
    n = len(rows)
    for name, frac in zip(SPLITS, (0.7, 0.15, 0.15)):
        assert abs(counts[name] / n - frac) <= 0.01


def test_singletons_fill_quotas_exactly() -> None:
    """With no multi-row groups, each stratum of 100 rows splits exactly 70/15/15."""
    strata = pd.Series(["a"] * 100 + ["b"] * 100)
    split = assign_splits(strata, pd.Series([str(i) for i in range(200)]), seed=5)
    table = pd.crosstab(strata, split.to_numpy())
    assert table.loc["a"].to_dict() == {"test": 15, "train": 70, "val": 15}
    assert table.loc["b"].to_dict() == {"test": 15, "train": 70, "val": 15}


def test_zero_fraction_split_stays_empty(rows: pd.DataFrame) -> None:
    """A split with fraction 0 receives nothing, also from multi-row groups."""
    split = split_of(rows, fractions=(0.8, 0.2, 0.0))
    assert "test" not in set(split)
    assert abs((split == "train").mean() - 0.8) <= 0.01


def test_all_train() -> None:
    """Fractions (1, 0, 0) put everything in train."""
    split = assign_splits(pd.Series(list("abcab")), pd.Series(list("xxyzz")), (1.0, 0.0, 0.0))
    assert split.tolist() == ["train"] * 5


def test_empty_input() -> None:
    """No rows → an empty result."""
    assert len(assign_splits(pd.Series([], dtype=str), pd.Series([], dtype=str))) == 0


def test_result_is_aligned_with_input_index() -> None:
    """The returned Series carries the input's index, so assigning it to the frame is safe."""
    frame = pd.DataFrame({"stratum": ["a", "b", "a"], "g": ["1", "2", "3"]}, index=[10, 20, 30])
    split = assign_splits(frame["stratum"], frame["g"])
    assert split.index.tolist() == [10, 20, 30]


@pytest.mark.parametrize("fractions", [(0.7, 0.2, 0.2), (0.5, 0.5), (-0.1, 0.6, 0.5), (0.7, 0.15, 0.1), (1, 1, -1)])
def test_fraction_validation(fractions: tuple) -> None:
    """Fractions must be three non-negative numbers summing to 1 (checked by assign_splits and PrepareConfig)."""
    with pytest.raises(ValueError, match="split fractions"):
        check_fractions(fractions)
    with pytest.raises(ValueError, match="split fractions"):
        assign_splits(pd.Series(["a"]), pd.Series(["g"]), fractions)
    with pytest.raises(ValueError, match="split fractions"):
        PrepareConfig(fractions=fractions)


def test_valid_fractions_pass() -> None:
    """Valid fractions come back as an array."""
    assert check_fractions((0.8, 0.1, 0.1)).tolist() == [0.8, 0.1, 0.1]


# --- artist-disjoint splits on WikiArt-like artists (1 to 300 paintings, one era each) -------------------

def artist_rows(seed: int = 0) -> pd.DataFrame:
    """~10k paintings by 400 artists: 20 of 100–300 paintings, 80 of 10–99, 300 of 1–9; an artist paints in one era."""
    rng = np.random.default_rng(seed)
    sizes = np.concatenate([rng.integers(100, 301, 20), rng.integers(10, 100, 80), rng.integers(1, 10, 300)])
    era = rng.choice(ERAS, len(sizes), p=[0.3, 0.3, 0.3, 0.1])
    positive = rng.uniform(0.3, 0.9, len(sizes))
    artist = np.repeat(np.arange(len(sizes)), sizes)
    emotion = np.where(rng.random(len(artist)) < positive[artist], "positive", "negative")
    return pd.DataFrame({"artist": [f"artist-{a}" for a in artist], "size": sizes[artist],
                         "stratum": [f"{era[a]}|{e}" for a, e in zip(artist, emotion)]})


@pytest.fixture(scope="module")
def artists() -> pd.DataFrame:
    """The WikiArt-like artist table (module-wide, read-only)."""
    return artist_rows()


def test_large_artists_land_in_every_split(artists: pd.DataFrame) -> None:
    """Artist-disjoint splits mix: for most seeds test and val each hold an artist of ≥ 100 paintings (0.2: never)."""
    seeds = range(20)
    big = {"val": 0, "test": 0}
    for seed in seeds:
        split = split_of(artists, "artist", seed).to_numpy()
        assert pd.Series(split).groupby(artists["artist"].to_numpy()).nunique().max() == 1  # groups whole
        for name in big:
            big[name] += bool(((split == name) & (artists["size"] >= 100).to_numpy()).any())
    assert big["test"] >= 16 and big["val"] >= 16, big


@pytest.mark.parametrize("seed", range(5))
def test_artist_splits_keep_strata_and_sizes(artists: pd.DataFrame, seed: int) -> None:
    """Drawn artists still give every split its share within 3 points overall and 7 points per era × emotion stratum."""
    split = split_of(artists, "artist", seed)
    overall = split.value_counts(normalize=True)
    assert all(abs(overall[name] - f) <= 0.03 for name, f in zip(SPLITS, (0.7, 0.15, 0.15))), overall
    share = pd.crosstab(artists["stratum"], split.to_numpy(), normalize="index")
    assert len(share) == 8
    for name, f in zip(SPLITS, (0.7, 0.15, 0.15)):
        assert (share[name] - f).abs().max() <= 0.07, share


def test_groups_of_at_most_three_keep_the_neediest_split_rule() -> None:
    """Pairs and triples (near-duplicates) are never drawn: with 30% of rows in pairs they all go to train, as in 0.2."""
    n = 1000
    groups = pd.Series([f"g{i // 2}" if i < 300 else f"s{i}" for i in range(n)])
    strata = pd.Series(["a|positive"] * n)
    for seed in range(5):
        split = assign_splits(strata, groups, seed=seed)
        assert (split[:300] == "train").all()
        assert split.value_counts().to_dict() == {"train": 700, "val": 150, "test": 150}


def test_split_columns_and_streams() -> None:
    """Split seed 0 is the column 'split' with prepare's seed; split seed k is 'split_<k>' with the stream (seed, k)."""
    assert [split_column(k) for k in range(3)] == ["split", "split_1", "split_2"]
    assert split_seeds_in(["image_path", "split", "split_1", "split_3"]) == 2  # a gap ends the run
    assert split_seeds_in(["image_path"]) == 0
    assert stream(7, 0) == 7 and stream(7, 2) == [7, 2]
    rows = synthetic_rows(600, n_phash=500)
    assert assign_splits(rows["stratum"], rows["phash"], seed=stream(7, 0)).tolist() == split_of(rows, seed=7).tolist()
    with pytest.raises(ValueError):
        split_column(-1)


# --- prepare's split column, on the demo root -------------------------------------------------

def prepared_manifest(root: Path, **config: object) -> pd.DataFrame:
    """prepare() without image checks (fast), returning the manifest."""
    return prepare(root, None, PrepareConfig(check_images=False, workers=1, **config), progress=False).manifest


def test_prepare_one_split_per_painting(demo_prepared: tuple[PrepareResult, Path]) -> None:
    """Every painting appears once in the manifest, with exactly one valid split."""
    manifest = demo_prepared[0].manifest
    assert not manifest["image_path"].duplicated().any()
    assert set(manifest["split"]) == set(SPLITS)


def test_prepare_same_phash_same_split(demo_prepared: tuple[PrepareResult, Path]) -> None:
    """The demo's near-duplicates (shared phash) land in one split."""
    manifest = demo_prepared[0].manifest
    with_phash = manifest[manifest["phash"] != ""]  # ArtEmis-only paintings have no phash
    dup = with_phash[with_phash["phash"].duplicated(keep=False)]
    assert dup["phash"].nunique() >= 10  # the demo holds 12 near-duplicate pairs (some may be excluded)
    assert dup.groupby("phash")["split"].nunique().max() == 1


def test_prepare_group_by_artist_is_artist_disjoint(demo_root: Path) -> None:
    """group_by='artist': no artist in two splits."""
    manifest = prepared_manifest(demo_root, group_by="artist")
    assert manifest.groupby("artist")["split"].nunique().max() == 1
    assert set(manifest["split"]) == set(SPLITS)


def test_prepare_group_by_phash_is_not_artist_disjoint(demo_root: Path) -> None:
    """Sanity check of the previous test: the default grouping does mix artists across splits."""
    manifest = prepared_manifest(demo_root)
    assert manifest.groupby("artist")["split"].nunique().max() > 1


def test_prepare_seed_determinism(demo_root: Path) -> None:
    """Same seed ⇒ identical split column; another seed ⇒ a different one."""
    a = prepared_manifest(demo_root, seed=11)
    b = prepared_manifest(demo_root, seed=11)
    c = prepared_manifest(demo_root, seed=12)
    assert a["image_path"].tolist() == b["image_path"].tolist() == c["image_path"].tolist()
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != c["split"].tolist()


def test_prepare_split_fractions(demo_root: Path) -> None:
    """Custom fractions reach the manifest: (0.8, 0.2, 0) gives no test paintings."""
    manifest = prepared_manifest(demo_root, fractions=(0.8, 0.2, 0.0))
    assert set(manifest["split"]) == {"train", "val"}
    assert abs((manifest["split"] == "train").mean() - 0.8) <= 0.03


def test_prepare_split_seeds_add_columns_and_keep_split_zero(demo_root: Path) -> None:
    """split_seeds=3: split is exactly the one-split manifest's, split_1 and split_2 differ, every group whole in each."""
    one = prepared_manifest(demo_root, group_by="artist")
    three = prepare(demo_root, None, PrepareConfig(check_images=False, workers=1, group_by="artist", split_seeds=3),
                    progress=False)
    manifest = three.manifest
    assert [c for c in manifest.columns if c.startswith("split")] == ["split", "split_1", "split_2"]
    assert manifest["split"].tolist() == one["split"].tolist()
    assert manifest.drop(columns=["split_1", "split_2"]).equals(one)
    for column in ("split", "split_1", "split_2"):
        assert manifest.groupby("artist")[column].nunique().max() == 1
        assert set(manifest[column]) == set(SPLITS)
    assert (manifest["split_1"] != manifest["split"]).sum() > len(manifest) // 10
    assert (manifest["split_2"] != manifest["split_1"]).sum() > len(manifest) // 10
    assert three.report["split_seeds"] == {"count": 3, "columns": ["split", "split_1", "split_2"],
                                           "streams": [0, [0, 1], [0, 2]]}
    assert three.report["grouping"]["groups_straddling_splits"] == 0
