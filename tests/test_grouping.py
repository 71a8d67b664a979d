"""Leak-proof splits: near-duplicates by phash distance, ArtEmis's duplicate list, artists, all composed."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from artlib.data.duplicates import read_duplicates
from artlib.data.labels import KNOWN_STYLES, era_table, eras_for_genres
from artlib.data.names import repair_candidates
from artlib.data.phash import close_pairs, distance, parse
from artlib.data.prepare import PrepareConfig, PrepareResult, prepare
from artlib.errors import DataError

from conftest import Painting

BASE = 0x0F0F_0F0F_0F0F_0F0F


def flip(value: int, *bits: int) -> str:
    """``value`` with these bits flipped, as a 16-hex-digit phash."""
    for b in bits:
        value ^= 1 << b
    return f"{value:016x}"


def run(root: Path, **options: object) -> PrepareResult:
    """prepare() with one worker and no progress bars."""
    return prepare(root, None, PrepareConfig(workers=1, **options), progress=False)


def split_of(result: PrepareResult) -> dict[str, str]:
    """image_path → split."""
    return dict(zip(result.manifest["image_path"], result.manifest["split"]))


# ---- distance search ------------------------------------------------------------------------
@pytest.mark.parametrize("max_distance", [0, 2, 8, 10, 13])
def test_close_pairs_equal_the_all_pairs_answer(max_distance: int) -> None:
    """Multi-index search finds exactly the pairs an all-pairs scan finds (random hashes plus planted copies)."""
    rng = np.random.default_rng(max_distance)
    hashes = list(rng.integers(0, 2**63, 1500, dtype=np.uint64))
    for _ in range(150):
        value = int(hashes[int(rng.integers(len(hashes)))])
        bits = [int(b) for b in rng.choice(64, size=int(rng.integers(0, 14)), replace=False)]
        hashes.append(np.uint64(int(flip(value, *bits), 16)))
    hashes = np.array(hashes, dtype=np.uint64)
    pairs, dist = close_pairs(hashes, max_distance)
    full = distance(hashes[:, None], hashes[None, :])
    i, j = np.triu_indices(len(hashes), 1)
    expected = {(int(a), int(b)) for a, b in zip(i[full[i, j] <= max_distance], j[full[i, j] <= max_distance])}
    assert {tuple(p) for p in pairs.tolist()} == expected
    assert (dist == full[pairs[:, 0], pairs[:, 1]]).all()


def test_parse_rejects_what_is_not_a_hash() -> None:
    """Empty, non-hex and too-long strings are invalid; valid ones parse as uint64."""
    hashes, valid = parse(["ffffffffffffffff", "", "xyz", "0" * 17, "1a"])
    assert valid.tolist() == [True, False, False, False, True]
    assert hashes[0] == np.uint64(2**64 - 1) and hashes[4] == 26


# ---- near-duplicate groups in prepare -----------------------------------------------------------
def test_distance_groups_are_transitive_chains_and_never_straddle(make_root) -> None:  # noqa: ANN001
    """A–B 6 bits, B–C 6 bits (A–C 12): one group of 3 at distance 8; none at distance 4; D far away stays alone."""
    chain = [flip(BASE), flip(BASE, 1, 2, 3, 4, 5, 6), flip(BASE, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)]
    paintings = [Painting("Baroque", f"chain_{i}", ("awe",), phash=h) for i, h in enumerate(chain)]
    paintings += [Painting("Baroque", "far", ("awe",), phash=flip(BASE, *range(20, 52)))]
    paintings += [Painting("Rococo", f"other_{i}", ("fear",)) for i in range(16)]
    root = make_root(paintings)
    result = run(root, phash_distance=8)
    near = result.report["grouping"]["near_duplicates"]
    assert (near["groups"], near["paintings_joined"], near["largest_group"], near["max_distance"]) == (1, 3, 3, 8)
    splits = split_of(result)
    assert len({splits[f"Baroque/chain_{i}.jpg"] for i in range(3)}) == 1
    assert result.report["grouping"]["groups_straddling_splits"] == 0
    assert run(root, phash_distance=4).report["grouping"]["near_duplicates"]["groups"] == 0
    assert run(root, phash_distance=12).report["grouping"]["near_duplicates"]["paintings_joined"] == 3


def test_artists_and_near_duplicates_compose(make_root) -> None:  # noqa: ANN001
    """The same image under two artist names joins both artists: all their paintings share one split."""
    same = flip(BASE)
    paintings = [Painting("Romanticism", f"william-hunt_p{i}", ("awe",), artist="william-hunt") for i in range(3)]
    paintings += [Painting("Romanticism", f"dante-rossetti_p{i}", ("awe",), artist="dante-rossetti") for i in range(3)]
    paintings[0].phash = same
    paintings[3].phash = flip(BASE, 5, 9)  # the same portrait under the other artist, 2 bits away
    paintings += [Painting("Realism", f"artist{i}_x", ("fear",) if i % 2 else ("awe",)) for i in range(24)]
    result = run(make_root(paintings), group_by="artist")
    grouping = result.report["grouping"]
    assert (grouping["near_duplicates"]["groups"], grouping["near_duplicates"]["paintings_joined"]) == (1, 2)
    assert grouping["artists"]["groups"] == 2 and grouping["artists"]["paintings_joined"] == 6
    assert grouping["combined"]["largest_group"] == 6
    splits = split_of(result)
    assert len({splits[f"Romanticism/{p.name}.jpg"] for p in paintings[:6]}) == 1


# ---- ArtEmis's duplicate list -----------------------------------------------------------------
def artemis_pickle(path: Path, groups: list[list[tuple[str, str]]]) -> Path:
    """A file in ArtEmis's format: pickle_data(file, groups) = an int count, then the list, protocol 2."""
    with open(path, "wb") as fh:
        pickle.dump(1, fh, protocol=2)
        pickle.dump(groups, fh, protocol=2)
    return path


def test_artemis_duplicate_list_joins_groups_across_styles(make_root, tmp_path: Path) -> None:  # noqa: ANN001
    """Listed pairs (one spelt as lower-cased mojibake) share a split; listed paintings not in the data are counted."""
    paintings = [Painting("Expressionism", "eugène-grasset_la-morphiniste", ("fear",)),
                 Painting("Art_Nouveau_Modern", "eugène-grasset_la-morphiniste", ("fear",)),
                 Painting("Impressionism", "konstantin-makovsky_children", ("awe",)),
                 Painting("Romanticism", "konstantin-makovsky_children", ("awe",))]
    paintings += [Painting("Realism", f"x_{i}", ("awe",) if i % 2 else ("fear",)) for i in range(24)]
    root = make_root(paintings)
    mojibake = "eugène-grasset_la-morphiniste".encode("utf-8").decode("latin-1").lower()
    listed = artemis_pickle(tmp_path / "wiki_art_duplicate_paintings.pkl", [
        [("Expressionism", mojibake), ("Art_Nouveau_Modern", mojibake)],
        [("Impressionism", "konstantin-makovsky_children"), ("Romanticism", "konstantin-makovsky_children")],
        [("Baroque", "not-here_a"), ("Baroque", "not-here_b")]])
    assert read_duplicates(listed)[0] == ["Expressionism/eugène-grasset_la-morphiniste.jpg",
                                          "Art_Nouveau_Modern/eugène-grasset_la-morphiniste.jpg"]
    result = run(root, duplicates=str(listed))
    report = result.report["grouping"]["listed_duplicates"]
    assert (report["listed_groups"], report["groups"], report["paintings_joined"]) == (3, 2, 4)
    assert report["listed_paintings_not_in_manifest"] == 2
    splits = split_of(result)
    assert splits["Expressionism/eugène-grasset_la-morphiniste.jpg"] == \
        splits["Art_Nouveau_Modern/eugène-grasset_la-morphiniste.jpg"]
    assert splits["Impressionism/konstantin-makovsky_children.jpg"] == \
        splits["Romanticism/konstantin-makovsky_children.jpg"]


@pytest.mark.parametrize("layout", ["group", "pairs", "paths"])
def test_duplicate_pairs_as_csv(tmp_path: Path, layout: str) -> None:
    """The same pairs as a CSV, in each accepted layout, give the same groups as the pickle."""
    path = tmp_path / "pairs.csv"
    rows = {"group": "group,art_style,painting\n1,Impressionism,a_b\n1,Romanticism,a_b\n",
            "pairs": "art_style_a,painting_a,art_style_b,painting_b\nImpressionism,a_b,Romanticism,a_b\n",
            "paths": "path_a,path_b\nImpressionism/a_b.jpg,Romanticism/a_b.jpg\n"}[layout]
    path.write_text(rows)
    assert read_duplicates(path) == [["Impressionism/a_b.jpg", "Romanticism/a_b.jpg"]]


class _Payload:
    """Pickles to a call that would create a file when unpickled."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self) -> tuple:
        """os.system-style: call Path.touch on the target."""
        return (Path.touch, (self.target,))


def test_a_malicious_pickle_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """A pickle that would call a function is refused with an error naming the file, and the call never happens."""
    target = tmp_path / "pwned"
    path = tmp_path / "duplicates.pkl"
    with open(path, "wb") as fh:
        pickle.dump(1, fh, protocol=2)
        pickle.dump([[("Baroque", "a"), _Payload(target)]], fh, protocol=2)
    with pytest.raises(DataError, match="refused") as info:
        read_duplicates(path)
    assert str(path) in str(info.value) and not target.exists()
    dict_pickle = tmp_path / "dict.pkl"
    dict_pickle.write_bytes(pickle.dumps({"a": 1.5}, protocol=2))
    with pytest.raises(DataError, match="refused"):
        read_duplicates(dict_pickle)


# ---- computed hashes --------------------------------------------------------------------------
def test_missing_phashes_are_computed_and_group_reencoded_copies(make_root) -> None:  # noqa: ANN001
    """No phash in classes.csv: prepare hashes the images; a resized, re-encoded copy joins its original."""
    paintings = [Painting("Cubism", "orig", ("awe",), phash=""), Painting("Cubism", "copy", ("awe",), phash="")]
    paintings += [Painting("Fauvism", f"other_{i}", ("fear",) if i % 2 else ("awe",), phash="") for i in range(20)]
    root = make_root(paintings)
    rng = np.random.default_rng(1)
    smooth = (np.kron(rng.integers(0, 255, (6, 8, 3)), np.ones((20, 20, 1)))).astype(np.uint8)  # blocky, not noise
    Image.fromarray(smooth).save(root / "archive/Cubism/orig.jpg", quality=95)
    Image.fromarray(smooth).resize((80, 60)).save(root / "archive/Cubism/copy.jpg", quality=60)
    result = run(root)
    assert result.report["phashes_computed"] == 22
    rows = result.manifest.set_index("image_path")
    assert distance(int(rows.loc["Cubism/orig.jpg", "phash"], 16), int(rows.loc["Cubism/copy.jpg", "phash"], 16)) <= 8
    assert rows.loc["Cubism/orig.jpg", "split"] == rows.loc["Cubism/copy.jpg", "split"]
    assert result.report["grouping"]["near_duplicates"]["paintings_joined"] == 2


def test_computed_hashes_are_cached_with_the_image_checks(make_root, tmp_path: Path) -> None:  # noqa: ANN001
    """The second prepare into the same folder reuses the checks (and their hashes) instead of decoding again."""
    root = make_root([Painting("Cubism", f"p_{i}", ("awe",), phash="") for i in range(4)])
    first = prepare(root, tmp_path / "out", PrepareConfig(workers=1), progress=False)
    checks = pd.read_csv(tmp_path / "out" / "image_checks.csv", dtype=str, keep_default_na=False)
    assert checks["phash"].str.fullmatch(r"[0-9a-f]{16}").all()
    second = prepare(root, tmp_path / "out", PrepareConfig(workers=1), progress=False)
    assert first.manifest["phash"].tolist() == second.manifest["phash"].tolist()


# ---- the seed preset and ambiguous mojibake ---------------------------------------------------------
@pytest.mark.parametrize("genre, era", [
    ("['Realism', 'Impressionism']", "Modern"),  # Modern is tried before Post-Renaissance
    ("['Action painting']", ""),  # the original's pattern is 'Action Painting': no match
    ("['Contemporary Realism']", "Post-Renaissance"),
    ("['Symbolism', 'Art Nouveau Modern']", "Contemporary"),
    ("['Mannerism Late Renaissance', 'Baroque']", "Post-Renaissance"),
    ("['Early Renaissance']", "Renaissance"),
])
def test_seed_preset_reads_the_genre_list_like_the_original(make_root, genre: str, era: str) -> None:  # noqa: ANN001
    """era_map='seed' assigns eras from classes.csv's genre list (first matching era in the original's order)."""
    paintings = [Painting("Realism", "target_painting", ("awe",), genre=genre)]
    paintings += [Painting("Baroque", f"f_{i}", ("fear",)) for i in range(8)]
    manifest = run(make_root(paintings), era_map="seed").manifest.set_index("image_path")
    assert manifest.loc["Realism/target_painting.jpg", "era"] == era


def test_seed_patterns_reproduce_the_seed_style_table() -> None:
    """For a painting listed under one style, the genre rule and the seed preset's style table agree on all 27."""
    table = era_table("seed")
    assert eras_for_genres(pd.Series(KNOWN_STYLES)).tolist() == [table.get(s, "") for s in KNOWN_STYLES]


def test_ambiguous_lowered_mojibake_is_matched_on_disk(make_root) -> None:  # noqa: ANN001
    """'Ś' (C5 9A) written as lower-cased mojibake reads as 'Ŋ' by default; the reading matching a file wins."""
    real = "Śliwiński_ogród"
    mojibake = real.encode("utf-8").decode("cp1252").lower()
    assert repair_candidates(mojibake)[0] != real and real in repair_candidates(mojibake)
    paintings = [Painting("Symbolism", real, ("awe",), artemis_name=mojibake)]
    paintings += [Painting("Symbolism", f"s_{i}", ("fear",)) for i in range(8)]
    result = run(make_root(paintings))
    row = result.manifest.set_index("image_path").loc[f"Symbolism/{real}.jpg"]
    assert (row["n_positive"], row["in_artemis"]) == (1, True)
    assert result.report["names_matched_by_another_mojibake_reading"] == 1


