"""artlib.data.prepare.prepare on tiny hand-built data roots: joins, labels, exclusions, contract, caps, layout, cache."""

from __future__ import annotations

import re

import json
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import artlib.data.archive
from artlib.errors import DataError
from artlib.data.images import ImageCheck, load_rgb
from artlib.data.manifest import export_layout, read_manifest
from artlib.data.prepare import PrepareConfig, PrepareResult, prepare
from conftest import ARTEMIS_CSV, CLASSES_CSV, Painting, annotation_rows, write_jpeg

CONTRACT_COLUMNS = ("image_path", "art_style", "painting", "artist", "era", "emotion", "n_positive", "n_negative",
                    "n_something_else", "split")
REASONS = ("missing_image", "unreadable_image", "unsafe_path", "unknown_style")

MakeRoot = Callable[..., Path]


def run(root: Path, out: Path | None = None, **config: object) -> PrepareResult:
    """prepare() in-process (one worker, no progress bar) with the given config options."""
    return prepare(root, out, PrepareConfig(workers=1, **config), progress=False)


def by_path(result: PrepareResult) -> dict[str, dict]:
    """Manifest rows keyed by image_path."""
    return {r["image_path"]: r for r in result.manifest.to_dict(orient="records")}


def funnel_count(result: PrepareResult, step: str) -> int:
    """The count of one funnel step (which must occur exactly once)."""
    hits = result.funnel.loc[result.funnel["step"] == step, "count"].tolist()
    assert len(hits) == 1, (step, result.funnel)
    return int(hits[0])


def excluded(result: PrepareResult) -> dict[str, list[str]]:
    """The report's excluded lists, reason → paths."""
    return result.report["excluded"]


# --- the manifest contract -------------------------------------------------------------------

def test_manifest_contract(make_root: MakeRoot, tmp_path: Path) -> None:
    """Columns, values and types of manifest.csv match design.md §5, in memory and on disk."""
    root = make_root([
        Painting("Impressionism", "claude-monet_water-lilies", ("awe", "contentment", "something else"),
                 size=(50, 40), phash="aaaa"),
        Painting("Baroque", "rembrandt_night-watch", ("fear", "sadness"), size=(36, 48)),
        Painting("Action_painting", "jackson-pollock_no-5", ("awe", "anger")),
        Painting("Pop_Art", "andy-warhol_soup", in_artemis=False),
    ])
    out = tmp_path / "out"
    result = run(root, out)
    manifest = result.manifest
    assert set(CONTRACT_COLUMNS) <= set(manifest.columns)
    assert list(manifest.columns[: len(CONTRACT_COLUMNS)]) == list(CONTRACT_COLUMNS)
    rows = by_path(result)
    assert sorted(rows) == ["Action_painting/jackson-pollock_no-5.jpg", "Baroque/rembrandt_night-watch.jpg",
                            "Impressionism/claude-monet_water-lilies.jpg", "Pop_Art/andy-warhol_soup.jpg"]
    monet = rows["Impressionism/claude-monet_water-lilies.jpg"]
    assert {k: monet[k] for k in (*CONTRACT_COLUMNS[:-1], "phash", "genres", "in_artemis", "in_classes", "width",
                                  "height")} == {
        "image_path": "Impressionism/claude-monet_water-lilies.jpg", "art_style": "Impressionism",
        "painting": "claude-monet_water-lilies", "artist": "claude-monet", "era": "Modern", "emotion": "positive",
        "n_positive": 2, "n_negative": 0, "n_something_else": 1, "phash": "aaaa", "genres": "Impressionism",
        "in_artemis": True, "in_classes": True, "width": 50, "height": 40}
    rembrandt = rows["Baroque/rembrandt_night-watch.jpg"]
    assert (rembrandt["era"], rembrandt["emotion"], rembrandt["n_negative"], rembrandt["width"],
            rembrandt["height"]) == ("Post-Renaissance", "negative", 2, 36, 48)
    pollock = rows["Action_painting/jackson-pollock_no-5.jpg"]
    assert (pollock["era"], pollock["emotion"], pollock["n_positive"], pollock["n_negative"]) == ("Contemporary", "", 1, 1)
    warhol = rows["Pop_Art/andy-warhol_soup.jpg"]
    assert (warhol["era"], warhol["emotion"], warhol["in_artemis"], warhol["n_positive"]) == ("Contemporary", "", False, 0)
    assert set(manifest["split"]) <= {"train", "val", "test"}
    assert all(excluded(result)[r] == [] for r in REASONS)

    # On disk: the same table; read_manifest gives the same values back.
    on_disk = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert list(on_disk.columns) == list(manifest.columns)
    assert on_disk["image_path"].tolist() == manifest["image_path"].tolist()
    assert on_disk["emotion"].tolist() == manifest["emotion"].tolist()
    again = read_manifest(out / "manifest.csv")
    assert again["n_positive"].tolist() == manifest["n_positive"].tolist()
    report = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))
    assert set(REASONS) <= set(report["excluded"])
    assert report["config"]["label_rule"] == "unanimous" and report["config"]["era_map"] == "chronological"
    assert report["counts"]["manifest_rows"] == 4


def test_image_path_uses_forward_slashes(make_root: MakeRoot) -> None:
    """A Windows-style filename in classes.csv still gives Style/file.jpg."""
    root = make_root([Painting("Cubism", "georges-braque_guitar", filename="Cubism\\georges-braque_guitar.jpg",
                               disk_name="Cubism/georges-braque_guitar.jpg")])
    assert run(root).manifest["image_path"].tolist() == ["Cubism/georges-braque_guitar.jpg"]


# --- counts and labels -----------------------------------------------------------------------

@pytest.mark.parametrize("rule, expected", [
    ("unanimous", {"a": "positive", "b": "negative", "c": "", "d": "", "e": "", "f": ""}),
    ("majority", {"a": "positive", "b": "negative", "c": "positive", "d": "", "e": "", "f": "negative"}),
])
def test_counts_and_labels_exact(make_root: MakeRoot, rule: str, expected: dict[str, str]) -> None:
    """n_positive / n_negative / n_something_else and the label of each rule, exactly."""
    patterns = {
        "a": ("awe", "amusement", "something else"),         # 2/0/1
        "b": ("fear", "disgust", "anger", "sadness"),         # 0/4/0
        "c": ("awe", "excitement", "contentment", "fear"),    # 3/1/0
        "d": ("awe", "fear", "something else", "something else"),  # 1/1/2
        "e": ("something else",) * 3,                         # 0/0/3
        "f": ("awe", "fear", "sadness", "something else"),    # 1/2/1
    }
    root = make_root([Painting("Realism", f"artist-{k}_p", emotions) for k, emotions in patterns.items()])
    result = run(root, label_rule=rule)
    rows = {r["painting"].split("-")[1][0]: r for r in result.manifest.to_dict(orient="records")}
    got = {k: (r["n_positive"], r["n_negative"], r["n_something_else"]) for k, r in rows.items()}
    assert got == {"a": (2, 0, 1), "b": (0, 4, 0), "c": (3, 1, 0), "d": (1, 1, 2), "e": (0, 0, 3), "f": (1, 2, 1)}
    assert {k: r["emotion"] for k, r in rows.items()} == expected
    if rule == "unanimous":
        assert funnel_count(result, "no emotion: mixed positive and negative") == 3
    else:
        assert funnel_count(result, "no emotion: tie") == 1
    assert funnel_count(result, "no emotion: only 'something else'") == 1


def test_bad_annotation_rows_are_counted_not_used(make_root: MakeRoot) -> None:
    """Exact duplicates, unknown emotions and rows without a name are dropped, reported with CSV line numbers."""
    base = annotation_rows("Romanticism", "caspar-friedrich_wanderer", ["awe", "fear"])
    extra = [
        dict(base[1]),  # exact duplicate of the 'fear' row → CSV line 4
        {"art_style": "Romanticism", "painting": "caspar-friedrich_wanderer", "emotion": "joy", "utterance": "u"},
        {"art_style": "Romanticism", "painting": "", "emotion": "awe", "utterance": "v"},
        {"art_style": "Romanticism", "painting": "caspar-friedrich_wanderer", "emotion": " Something_Else ",
         "utterance": "w"},
    ]
    root = make_root([Painting("Romanticism", "caspar-friedrich_wanderer", in_artemis=False)],
                     extra_annotations=[*base, *extra])
    result = run(root)
    row = result.manifest.iloc[0]
    assert (row["n_positive"], row["n_negative"], row["n_something_else"]) == (1, 1, 1)
    ann = result.report["annotations"]
    assert ann["duplicate_rows"] == {"rows": 1, "lines": [4]}
    assert ann["unknown_emotion"] == {"rows": 1, "lines": [5], "values": ["joy"]}
    assert ann["missing_painting_or_style"] == {"rows": 1, "lines": [6]}
    assert funnel_count(result, "rows read") == 6
    assert funnel_count(result, "rows used") == 3


def test_only_unknown_emotions_is_a_data_error(make_root: MakeRoot) -> None:
    """An emotion column with no ArtEmis emotion at all is a DataError naming the file."""
    root = make_root([Painting("Realism", "a_b", ("happy", "sad"))])
    with pytest.raises(DataError, match="holds no ArtEmis emotion") as exc:
        run(root)
    assert str(root / ARTEMIS_CSV) in str(exc.value)


def test_seed_era_map_and_the_neither_drop(make_root: MakeRoot) -> None:
    """era_map='seed': Action_painting has no era; without an emotion too, it is dropped."""
    root = make_root([
        Painting("Action_painting", "pollock_labelled", ("awe",)),
        Painting("Action_painting", "pollock_unlabelled", ("something else",)),
        Painting("Pointillism", "seurat_p", ("awe",)),
        Painting("Contemporary_Realism", "freud_p", ("fear",)),
    ])
    seed = run(root, era_map="seed")
    assert {r["painting"]: r["era"] for r in seed.manifest.to_dict(orient="records")} == {
        "pollock_labelled": "", "seurat_p": "Contemporary", "freud_p": "Post-Renaissance"}
    assert funnel_count(seed, "dropped: neither era nor emotion") == 1
    assert funnel_count(seed, "no era: style not in the 'seed' map") == 2
    chrono = run(root)
    assert {r["painting"]: r["era"] for r in chrono.manifest.to_dict(orient="records")} == {
        "pollock_labelled": "Contemporary", "pollock_unlabelled": "Contemporary", "seurat_p": "Modern",
        "freud_p": "Contemporary"}


def test_one_csv_only_paintings(make_root: MakeRoot) -> None:
    """ArtEmis-only paintings get the artist from their name and no phash; classes-only ones no emotion."""
    root = make_root([
        Painting("Fauvism", "henri-matisse_dance", ("awe",), in_classes=False),
        Painting("Fauvism", "andre-derain_boats", in_artemis=False, artist="André Derain"),
    ])
    rows = by_path(run(root))
    matisse = rows["Fauvism/henri-matisse_dance.jpg"]
    assert (matisse["artist"], matisse["in_classes"], matisse["in_artemis"], matisse["emotion"]) == (
        "henri-matisse", False, True, "positive")
    assert re.fullmatch(r"[0-9a-f]{16}", matisse["phash"])  # not in classes.csv: hashed with its image check
    derain = rows["Fauvism/andre-derain_boats.jpg"]
    assert (derain["artist"], derain["in_artemis"], derain["emotion"], derain["era"]) == (
        "André Derain", False, "", "Modern")


# --- the name join ---------------------------------------------------------------------------

NAME = "joaquín-sorolla_sewing-the-sail"
MOJIBAKE = "joaquã\xadn-sorolla_sewing-the-sail"


@pytest.mark.parametrize("classes_form, disk_form", [("NFC", "NFC"), ("NFC", "NFD"), ("NFD", "NFC"), ("NFD", "NFD")])
def test_mojibake_join(make_root: MakeRoot, classes_form: str, disk_form: str) -> None:
    """ArtEmis 'joaquã\\xadn-…' meets classes.csv/disk 'joaquín-…' in any Unicode form: one row, nothing dropped."""
    assert NAME.encode("utf-8").decode("latin-1").lower() == MOJIBAKE
    disk = unicodedata.normalize(disk_form, f"Impressionism/{NAME}.jpg")
    root = make_root([Painting("Impressionism", NAME, ("awe", "awe", "something else"), artemis_name=MOJIBAKE,
                               filename=unicodedata.normalize(classes_form, f"Impressionism/{NAME}.jpg"),
                               disk_name=disk)])
    result = run(root)
    assert len(result.manifest) == 1
    row = result.manifest.iloc[0]
    assert row["image_path"] == disk  # as on disk
    assert row["painting"] == NAME  # canonical (NFC, repaired)
    assert (row["in_artemis"], row["in_classes"], row["emotion"]) == (True, True, "positive")
    assert (row["n_positive"], row["n_negative"], row["n_something_else"]) == (2, 0, 1)
    assert all(excluded(result)[r] == [] for r in REASONS)
    assert funnel_count(result, "in both CSVs") == 1
    assert funnel_count(result, "in ArtEmis only") == 0
    assert result.report["names_repaired"] >= 1


def test_mojibake_artemis_only_painting_found_on_disk(make_root: MakeRoot) -> None:
    """Without a classes.csv row, the mojibake ArtEmis name still finds the (NFD) file on disk."""
    disk = unicodedata.normalize("NFD", f"Impressionism/{NAME}.jpg")
    root = make_root([Painting("Impressionism", NAME, ("fear",), artemis_name=MOJIBAKE, in_classes=False,
                               disk_name=disk),
                      Painting("Baroque", "filler_classes-only", in_artemis=False)])
    result = run(root)
    assert result.manifest["image_path"].tolist() == ["Baroque/filler_classes-only.jpg", disk]
    assert result.manifest["emotion"].tolist() == ["", "negative"]
    assert excluded(result)["missing_image"] == []


def test_case_insensitive_join_merges_counts(make_root: MakeRoot) -> None:
    """An ArtEmis name differing only in case joins the classes.csv row; its votes are added."""
    root = make_root(
        [Painting("Impressionism", "claude-monet_water-lilies", ("awe", "awe"))],
        extra_annotations=annotation_rows("impressionism", "Claude-Monet_Water-Lilies", ["fear"], tag="x"))
    result = run(root)
    assert len(result.manifest) == 1
    row = result.manifest.iloc[0]
    assert (row["n_positive"], row["n_negative"], row["emotion"]) == (2, 1, "")
    assert result.report["names_matched_case_insensitively"] == 1


# --- exclusions ------------------------------------------------------------------------------

def test_every_exclusion_reason(make_root: MakeRoot, tmp_path: Path) -> None:
    """Each broken entry lands under its reason with its path; everything else is kept."""
    outside = tmp_path / "outside"
    write_jpeg(outside / "secret.jpg", seed=1)
    write_jpeg(outside / "styledir" / "hidden.jpg", seed=2)
    root = make_root(
        [
            Painting("Baroque", "ok_fine", ("awe",)),
            Painting("Baroque", "gone_missing", ("awe",), image="none"),
            Painting("Baroque", "zero_bytes", ("awe",), image="zero"),
            Painting("Baroque", "cut_truncated", ("fear",), image="truncated"),
            Painting("Baroque", "html_not-an-image", ("fear",), image="text"),
            Painting("Fantasy_Art", "anna_dragon", ("awe",)),
            Painting("Baroque", "evil_link", ("awe",), image="none"),
            Painting("Baroque", "alias_inside", ("awe",), image="none"),
            Painting("Rococo", "hidden", ("awe",), image="none"),
        ],
        extra_annotations=[
            *annotation_rows("Baroque", "../../../etc/passwd", ["awe"]),
            *annotation_rows("..", "escape", ["fear"]),
        ],
        extra_classes=[
            {"filename": "/etc/absolute.jpg", "artist": "x", "genre": "['Baroque']", "phash": "1"},
            {"filename": "loose-file.jpg", "artist": "y", "genre": "['Baroque']", "phash": "2"},
        ],
    )
    archive = root / "archive"
    os.symlink(outside / "secret.jpg", archive / "Baroque" / "evil_link.jpg")  # file link leaving archive/
    os.symlink(archive / "Baroque" / "ok_fine.jpg", archive / "Baroque" / "alias_inside.jpg")  # stays inside
    os.symlink(outside / "styledir", archive / "Rococo")  # a whole style folder leaving archive/

    result = run(root)
    ex = excluded(result)
    assert ex["missing_image"] == ["Baroque/gone_missing.jpg"]
    assert ex["unreadable_image"] == ["Baroque/cut_truncated.jpg", "Baroque/html_not-an-image.jpg",
                                      "Baroque/zero_bytes.jpg"]
    assert ex["unsafe_path"] == sorted(["../escape.jpg", "/etc/absolute.jpg", "Baroque/../../../etc/passwd.jpg",
                                        "Baroque/evil_link.jpg", "Rococo/hidden.jpg"])
    assert ex["unknown_style"] == ["Fantasy_Art/anna_dragon.jpg", "loose-file.jpg"]
    assert sorted(result.manifest["image_path"]) == ["Baroque/alias_inside.jpg", "Baroque/ok_fine.jpg"]
    details = result.report["details"]
    assert details["unsafe_path"]["Baroque/../../../etc/passwd.jpg"] == "contains '..'"
    assert details["unsafe_path"]["/etc/absolute.jpg"] == "absolute path"
    assert details["unreadable_image"]["Baroque/zero_bytes.jpg"] == "zero bytes"
    assert set(details["unreadable_image"]) == set(ex["unreadable_image"])
    assert result.report["counts"]["excluded"] == {"missing_image": 1, "unreadable_image": 3, "unsafe_path": 5,
                                                   "unknown_style": 2}
    assert funnel_count(result, "excluded: unsafe path") == 3
    assert funnel_count(result, "excluded: path resolves outside archive/") == 2
    assert funnel_count(result, "excluded: unknown style") == 2
    assert funnel_count(result, "excluded: missing image") == 1
    assert funnel_count(result, "excluded: unreadable image (zero bytes, truncated, not an image, too large)") == 3


def test_exclusions_reach_the_report_file(make_root: MakeRoot, tmp_path: Path) -> None:
    """prepare_report.json on disk lists the same exclusions (non-ASCII paths kept readable)."""
    root = make_root([Painting("Baroque", "ok_fine", ("awe",)),
                      Painting("Baroque", "józef_missing", ("awe",), image="none")])
    out = tmp_path / "out"
    result = run(root, out)
    text = (out / "prepare_report.json").read_text(encoding="utf-8")
    assert "józef_missing" in text
    assert json.loads(text)["excluded"] == result.report["excluded"]
    assert json.loads(text)["excluded"]["missing_image"] == ["Baroque/józef_missing.jpg"]


def test_unusual_images_are_valid(make_root: MakeRoot) -> None:
    """Grayscale and CMYK JPEGs are kept, with their real sizes."""
    root = make_root([Painting("Baroque", "a_gray", image="gray", size=(33, 44)),
                      Painting("Baroque", "b_cmyk", image="cmyk", size=(45, 34)),
                      Painting("Baroque", "c_rgb", image="rgb")])
    result = run(root)
    rows = by_path(result)
    assert sorted(rows) == ["Baroque/a_gray.jpg", "Baroque/b_cmyk.jpg", "Baroque/c_rgb.jpg"]
    assert (rows["Baroque/a_gray.jpg"]["width"], rows["Baroque/a_gray.jpg"]["height"]) == (33, 44)
    assert (rows["Baroque/b_cmyk.jpg"]["width"], rows["Baroque/b_cmyk.jpg"]["height"]) == (45, 34)
    assert excluded(result)["unreadable_image"] == []
    with Image.open(root / "archive" / "Baroque" / "b_cmyk.jpg") as im:
        assert im.mode == "CMYK"


def test_image_above_decompression_bomb_limit_is_valid(make_root: MakeRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    """A JPEG beyond Pillow's bomb limit (lowered here) is decoded in draft mode and kept, full size recorded."""
    root = make_root([Painting("Baroque", "huge_one", size=(400, 300)), Painting("Baroque", "small_one")])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # error threshold 4000 px; 400×300 = 120000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(root / "archive" / "Baroque" / "huge_one.jpg")
    result = run(root)
    rows = by_path(result)
    assert sorted(rows) == ["Baroque/huge_one.jpg", "Baroque/small_one.jpg"]
    assert (rows["Baroque/huge_one.jpg"]["width"], rows["Baroque/huge_one.jpg"]["height"]) == (400, 300)
    assert excluded(result)["unreadable_image"] == []


def test_image_too_large_even_at_one_eighth_is_unreadable(make_root: MakeRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard stays on: beyond the limit even at 1/8 scale, the image is excluded as unreadable."""
    root = make_root([Painting("Baroque", "huge_one", size=(640, 480)), Painting("Baroque", "small_one")])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # threshold 2000 px; 1/8 of 640×480 is 80×60 = 4800
    result = run(root)
    assert excluded(result)["unreadable_image"] == ["Baroque/huge_one.jpg"]
    assert "too large" in result.report["details"]["unreadable_image"]["Baroque/huge_one.jpg"]
    assert result.manifest["image_path"].tolist() == ["Baroque/small_one.jpg"]


def test_draft_reduces_further_to_stay_within_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the draft scale for min_size is still above the bomb limit, decoding reduces further (up to 1/8)."""
    path = write_jpeg(tmp_path / "big.jpg", (400, 300))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # error threshold 10000 px
    assert load_rgb(path, min_size=150).size == (100, 75)  # 1/4 is the least reduction within the limit


def test_everything_excluded_gives_an_empty_manifest(make_root: MakeRoot, tmp_path: Path) -> None:
    """When no painting survives, the manifest is empty but has the contract columns, and is written."""
    root = make_root([Painting("Fantasy_Art", "a_dragon", ("awe",)), Painting("Baroque", "b_gone", image="none")])
    out = tmp_path / "out"
    result = run(root, out)
    assert len(result.manifest) == 0
    assert set(CONTRACT_COLUMNS) <= set(result.manifest.columns)
    assert excluded(result)["unknown_style"] == ["Fantasy_Art/a_dragon.jpg"]
    assert excluded(result)["missing_image"] == ["Baroque/b_gone.jpg"]
    assert (out / "manifest.csv").read_text(encoding="utf-8").startswith("image_path,art_style,painting,")


@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_everything_excluded_without_deprecation_warnings(make_root: MakeRoot) -> None:
    """The empty case raises no deprecation warning (it would become an error in the next pandas)."""
    root = make_root([Painting("Fantasy_Art", "a_dragon", ("awe",))])
    assert len(run(root).manifest) == 0


def test_check_images_off(make_root: MakeRoot) -> None:
    """check_images=False only looks files up: broken files stay, sizes are 0, missing ones still go."""
    root = make_root([Painting("Baroque", "a_zero", image="zero"), Painting("Baroque", "b_none", image="none")])
    result = run(root, check_images=False)
    assert result.manifest["image_path"].tolist() == ["Baroque/a_zero.jpg"]
    assert result.manifest["width"].tolist() == [0]
    assert excluded(result)["missing_image"] == ["Baroque/b_none.jpg"]
    assert funnel_count(result, "image checks skipped") == 1


# --- bad data roots --------------------------------------------------------------------------

def test_missing_data_root(tmp_path: Path) -> None:
    """A data root that does not exist: DataError naming it."""
    missing = tmp_path / "no-such-root"
    with pytest.raises(DataError, match="data root does not exist") as exc:
        run(missing)
    assert str(missing) in str(exc.value)


@pytest.mark.parametrize("remove", [ARTEMIS_CSV, CLASSES_CSV, Path("archive")])
def test_missing_input_named(make_root: MakeRoot, remove: Path) -> None:
    """A missing CSV or archive/: DataError naming the missing path."""
    root = make_root([Painting("Baroque", "a_b")])
    target = root / remove
    if target.is_dir():
        for f in target.rglob("*.jpg"):
            f.unlink()
        for d in sorted(target.rglob("*"), reverse=True):
            d.rmdir()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(DataError, match="missing") as exc:
        run(root)
    assert str(target) in str(exc.value)


def test_archive_is_a_file(make_root: MakeRoot) -> None:
    """archive/ being a file is a DataError naming it."""
    root = make_root([Painting("Baroque", "a_b", image="none")])
    (root / "archive").rmdir()
    (root / "archive").write_text("not a folder")
    with pytest.raises(DataError, match="not a directory") as exc:
        run(root)
    assert str(root / "archive") in str(exc.value)


def test_empty_csv_is_a_data_error(make_root: MakeRoot) -> None:
    """An empty classes.csv stops prepare with a DataError naming the file."""
    root = make_root([Painting("Baroque", "a_b")])
    (root / CLASSES_CSV).write_bytes(b"")
    with pytest.raises(DataError, match="empty") as exc:
        run(root)
    assert str(root / CLASSES_CSV) in str(exc.value)


@pytest.mark.parametrize("options", [dict(label_rule="plurality"), dict(era_map="alpha"), dict(group_by="museum"),
                                     dict(cap_per_era=0), dict(cap_per_emotion=-3)])
def test_config_validation(options: dict) -> None:
    """Unknown options and non-positive caps are rejected when the config is made."""
    with pytest.raises(ValueError):
        PrepareConfig(**options)


# --- caps --------------------------------------------------------------------------------------

def capped_root(make_root: MakeRoot) -> Path:
    """10 Renaissance (8 positive, 2 only-SE), 6 Modern (5 negative, 1 positive), 3 Contemporary (unlabelled)."""
    paintings = [Painting("Early_Renaissance", f"r_{i}", ("awe",) if i < 8 else ("something else",)) for i in range(10)]
    paintings += [Painting("Cubism", f"m_{i}", ("fear",) if i < 5 else ("awe",)) for i in range(6)]
    paintings += [Painting("Pop_Art", f"c_{i}", in_artemis=False) for i in range(3)]
    return make_root(paintings)


def test_cap_per_era_exact(make_root: MakeRoot) -> None:
    """At most N per era: the excess loses its era (genre task) but stays, with its emotion, for the emotion task."""
    uncapped = run(capped_root(make_root)).manifest
    result = run(capped_root(make_root), cap_per_era=4)
    manifest = result.manifest
    assert len(manifest) == len(uncapped) == 19
    assert manifest["era"].value_counts().to_dict() == {"": 8, "Renaissance": 4, "Modern": 4, "Contemporary": 3}
    assert manifest["emotion"].tolist() == uncapped["emotion"].tolist()  # the emotion study is untouched
    assert manifest["split"].tolist() == uncapped["split"].tolist()
    assert funnel_count(result, "cap of 4 per era: era cleared, so out of the genre task") == 8


def test_cap_per_emotion_exact(make_root: MakeRoot) -> None:
    """At most N per emotion class; unlabelled paintings are never capped; eras stay for the genre task."""
    uncapped = run(capped_root(make_root)).manifest
    result = run(capped_root(make_root), cap_per_emotion=3)
    assert result.manifest["emotion"].value_counts().to_dict() == {"": 13, "positive": 3, "negative": 3}
    assert result.manifest["era"].tolist() == uncapped["era"].tolist()
    assert funnel_count(result, "cap of 3 per emotion: emotion cleared, so out of the emotion task") == 6 + 2


def test_both_caps_and_seeding(make_root: MakeRoot) -> None:
    """Each cap clears only its own label, exactly; the same seed clears the same paintings, another seed others."""
    paintings = [Painting("High_Renaissance", f"r_{i}", ("awe",)) for i in range(10)]
    paintings += [Painting("Expressionism", f"m_{i}", ("fear",)) for i in range(6)]
    paintings += [Painting("Minimalism", f"c_{i}", in_artemis=False) for i in range(3)]
    root = make_root(paintings)
    a = run(root, cap_per_era=5, cap_per_emotion=4, seed=1)
    b = run(root, cap_per_era=5, cap_per_emotion=4, seed=1)
    c = run(root, cap_per_era=5, cap_per_emotion=4, seed=2)
    assert len(a.manifest) == 19
    assert a.manifest["era"].value_counts().to_dict() == {"": 6, "Renaissance": 5, "Modern": 5, "Contemporary": 3}
    assert a.manifest["emotion"].value_counts().to_dict() == {"": 11, "positive": 4, "negative": 4}
    assert funnel_count(a, "cap of 5 per era: era cleared, so out of the genre task") == 5 + 1
    assert funnel_count(a, "cap of 4 per emotion: emotion cleared, so out of the emotion task") == 6 + 2
    labels = ["image_path", "era", "emotion"]
    assert a.manifest[labels].equals(b.manifest[labels])
    assert not a.manifest[labels].equals(c.manifest[labels])


# --- export_layout -----------------------------------------------------------------------------

def test_export_layout(make_root: MakeRoot, tmp_path: Path) -> None:
    """dest/{genre,emotion}/<split>/<class>/<Style__file> symlinks to the archive, one per labelled painting."""
    root = capped_root(make_root)
    result = run(root)
    dest = tmp_path / "layout"
    (dest / "stale").mkdir(parents=True)  # an earlier export (it has the marker) is replaced, not merged
    (dest / ".artlib-layout").touch()
    counts = export_layout(result.manifest, root / "archive", dest)
    manifest = result.manifest
    assert counts == {"genre": int((manifest["era"] != "").sum()), "emotion": int((manifest["emotion"] != "").sum())}
    assert counts == {"genre": 19, "emotion": 14}
    expected = set()
    for row in manifest.to_dict(orient="records"):
        name = row["image_path"].replace("/", "__")
        if row["era"]:
            expected.add(f"genre/{row['split']}/{row['era']}/{name}")
        if row["emotion"]:
            expected.add(f"emotion/{row['split']}/{row['emotion']}/{name}")
    links = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_symlink()}
    assert links == expected
    assert {p.name for p in dest.iterdir()} == {"genre", "emotion", ".artlib-layout"}
    for rel in links:
        link = dest / rel
        original = root / "archive" / rel.split("/")[-1].replace("__", "/")
        assert link.resolve() == original.resolve()
        assert link.read_bytes() == original.read_bytes()
    assert not list(tmp_path.glob(".layout.*"))  # no temporary folder left behind


# --- the image-check cache ----------------------------------------------------------------------

def test_image_check_cache_reused_and_invalidated(make_root: MakeRoot, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """out/image_checks.csv is reused for unchanged files; a changed file is checked again."""
    root = make_root([Painting("Baroque", f"p_{i}", ("awe",)) for i in range(4)])
    out = tmp_path / "out"
    first = run(root, out)
    cache = out / "image_checks.csv"
    assert cache.is_file()
    table = pd.read_csv(cache, dtype=str, keep_default_na=False)
    assert sorted(table["path"]) == [f"Baroque/p_{i}.jpg" for i in range(4)]
    assert set(table["reason"]) == {""}

    checked: list[str] = []
    original = artlib.data.archive.check_image

    def counting(path: str) -> ImageCheck:
        """check_image that records which files it was asked about."""
        checked.append(Path(path).name)
        return original(path)

    monkeypatch.setattr(artlib.data.archive, "check_image", counting)
    second = run(root, out)
    assert checked == []
    assert second.manifest["image_path"].tolist() == first.manifest["image_path"].tolist()
    assert second.manifest["width"].tolist() == first.manifest["width"].tolist()

    # Change one file's content (and size), and another's mtime only.
    (root / "archive" / "Baroque" / "p_1.jpg").write_text("not a jpeg any more")
    st = os.stat(root / "archive" / "Baroque" / "p_2.jpg")
    os.utime(root / "archive" / "Baroque" / "p_2.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    third = run(root, out)
    assert sorted(checked) == ["p_1.jpg", "p_2.jpg"]
    assert excluded(third)["unreadable_image"] == ["Baroque/p_1.jpg"]
    assert sorted(third.manifest["image_path"]) == ["Baroque/p_0.jpg", "Baroque/p_2.jpg", "Baroque/p_3.jpg"]
    refreshed = pd.read_csv(cache, dtype=str, keep_default_na=False).set_index("path")
    assert refreshed.loc["Baroque/p_1.jpg", "reason"] == "unreadable_image"
    assert len(refreshed) == 4

    checked.clear()
    run(root, out)
    assert checked == []


def test_damaged_cache_is_rebuilt(make_root: MakeRoot, tmp_path: Path) -> None:
    """A cache file that is not a valid table is ignored and rewritten."""
    root = make_root([Painting("Baroque", "p_0", ("awe",))])
    out = tmp_path / "out"
    out.mkdir()
    (out / "image_checks.csv").write_bytes(b"\x00\xffgarbage\n\"unterminated")
    result = run(root, out)
    assert result.manifest["image_path"].tolist() == ["Baroque/p_0.jpg"]
    table = pd.read_csv(out / "image_checks.csv", dtype=str, keep_default_na=False)
    assert table["path"].tolist() == ["Baroque/p_0.jpg"]


def test_no_out_writes_nothing(make_root: MakeRoot) -> None:
    """prepare(out=None) writes no files into the data root."""
    root = make_root([Painting("Baroque", "p_0", ("awe",))])
    before = sorted(p for p in root.rglob("*"))
    run(root)
    assert sorted(p for p in root.rglob("*")) == before


def test_phashless_paintings_are_not_one_group(make_root: MakeRoot) -> None:
    """Paintings without a classes.csv phash (ArtEmis-only) get a computed one and are split individually."""
    root = make_root([Painting("Baroque", f"p_{i}", ("awe",), in_classes=False) for i in range(40)]
                     + [Painting("Rococo", "filler_classes-only", in_artemis=False)])
    manifest = run(root).manifest
    manifest = manifest[manifest["art_style"] == "Baroque"]
    assert len(manifest) == 40 and manifest["phash"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert manifest["split"].value_counts().to_dict() == {"train": 28, "val": 6, "test": 6}
