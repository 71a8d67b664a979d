"""Issue #6, bad inputs: every broken input gives a clear DataError or a reasoned exclusion, never a traceback.

Complements test_readers.py and test_prepare.py (which cover the readers' column, delimiter and encoding
errors in isolation, the exclusion reasons, symlink escapes and JPEG decompression bombs): here the same
inputs go through ``prepare`` and the command line, plus the image modes that must be converted (not
excluded), the empty archive, and images that break between ``prepare`` and training.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import artlib.train.runner
from artlib import rundir
from artlib.data.archive import unsafe_reason
from artlib.data.demo import DemoSpec, generate
from artlib.errors import DataError
from artlib.data.images import check_image, load_square
from artlib.data.manifest import read_manifest
from artlib.data.prepare import PrepareConfig, PrepareResult, prepare
from artlib.train.grid import GridFailure
from conftest import train_one
from artlib.rundir import stage_dir
from artlib.train.config import TrainConfig
from conftest import (ARTEMIS_CSV, ARTEMIS_HEADER, CLASSES_CSV, CLASSES_HEADER, Painting, annotation_rows, classes_row,
                      write_csv_rows)

REPO = Path(__file__).resolve().parent.parent
MakeRoot = Callable[..., Path]
TINY = TrainConfig(image_size=32, epochs=1, batch_size=16, lr=1e-3, weights="none", precision="fp32", workers=1,
                   patience=None)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(root: Path, out: Path | None = None, **config: object) -> PrepareResult:
    """prepare() in-process with one worker and no progress bar."""
    return prepare(root, out, PrepareConfig(workers=1, **config), progress=False)


# --- image files that are valid and must be converted, not excluded ------------------------------

def _noise(h: int = 30, w: int = 40, seed: int = 0) -> np.ndarray:
    """A seeded h×w×3 uint8 noise picture."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_kind(path: Path, kind: str) -> None:
    """Write one unusual-but-valid image of ``kind`` to ``path`` (the name keeps '.jpg', as in the archive)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(_noise())
    if kind == "rgba_png":
        rgba = np.dstack([_noise(), np.full((30, 40), 255, np.uint8)])
        rgba[:, :20, 3] = 0  # left half fully transparent: must come out white
        Image.fromarray(rgba, "RGBA").save(path, format="PNG")
    elif kind == "la_png":
        rgb.convert("LA").save(path, format="PNG")
    elif kind == "palette_transparent_png":
        rgb.convert("P").save(path, format="PNG", transparency=0)
    elif kind == "16bit_png":
        Image.fromarray(np.full((30, 40), 65535, np.uint16)).save(path, format="PNG")
    elif kind == "animated_gif":
        frames = [Image.fromarray(np.full((30, 40, 3), v, np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE)
                  for v in (200, 10, 90)]
        frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    elif kind == "cmyk_jpeg":
        rgb.convert("CMYK").save(path, format="JPEG")
    elif kind == "cmyk_tiff":
        rgb.convert("CMYK").save(path, format="TIFF")
    elif kind == "bilevel_png":
        rgb.convert("1").save(path, format="PNG")
    elif kind == "gray_jpeg":
        rgb.convert("L").save(path, format="JPEG")
    elif kind == "webp":
        rgb.save(path, format="WEBP")
    else:
        raise ValueError(kind)


VALID_KINDS = ("rgba_png", "la_png", "palette_transparent_png", "16bit_png", "animated_gif", "cmyk_jpeg",
               "cmyk_tiff", "bilevel_png", "gray_jpeg", "webp")
SOURCE_MODE = {"rgba_png": "RGBA", "la_png": "LA", "palette_transparent_png": "P", "16bit_png": "I;16",
               "animated_gif": "P", "cmyk_jpeg": "CMYK", "cmyk_tiff": "CMYK", "bilevel_png": "1", "gray_jpeg": "L",
               "webp": "RGB"}


@pytest.mark.parametrize("kind", VALID_KINDS)
def test_unusual_modes_load_as_square_rgb(tmp_path: Path, kind: str) -> None:
    """Every Pillow mode (RGBA, LA, P, I;16, animated GIF, CMYK, 1, L, WebP) becomes an (S, S, 3) uint8 array."""
    path = tmp_path / f"{kind}.jpg"
    _write_kind(path, kind)
    with Image.open(path) as im:
        assert im.mode == SOURCE_MODE[kind]  # the file really is in the awkward mode
    arr = load_square(path, 24)
    assert arr.shape == (24, 24, 3) and arr.dtype == np.uint8
    assert check_image(path).reason is None and (check_image(path).width, check_image(path).height) == (40, 30)
    if kind == "rgba_png":
        assert (arr[:, :8] == 255).all()  # transparent pixels over white, not black
    if kind == "16bit_png":
        assert (arr == 255).all()  # 65535 scales to 255, not clipped garbage
    if kind == "animated_gif":
        assert (arr == 200).all()  # the first frame (not a later one, not a blend)


def test_unusual_modes_are_kept_by_prepare(make_root: MakeRoot, tmp_path: Path) -> None:
    """Through prepare, every convertible file is kept with its size; prepare_report.json excludes none."""
    paintings = [Painting("Baroque", f"p_{kind}", ("awe",), image="none") for kind in VALID_KINDS]
    root = make_root(paintings)
    for kind in VALID_KINDS:
        _write_kind(root / "archive" / "Baroque" / f"p_{kind}.jpg", kind)
    out = tmp_path / "out"
    result = run(root, out)
    assert sorted(result.manifest["image_path"]) == sorted(f"Baroque/p_{k}.jpg" for k in VALID_KINDS)
    assert set(result.manifest["width"]) == {40} and set(result.manifest["height"]) == {30}
    report = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))
    assert all(paths == [] for paths in report["excluded"].values())


def test_huge_non_jpeg_is_excluded_with_the_reason(make_root: MakeRoot, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A PNG beyond twice the bomb limit (no draft mode for PNG) is excluded naming the limit; one below is kept."""
    root = make_root([Painting("Baroque", "huge_png", image="none"), Painting("Baroque", "big_png", image="none"),
                      Painting("Baroque", "small_one")])
    Image.fromarray(_noise(100, 120)).save(root / "archive" / "Baroque" / "huge_png.jpg", format="PNG")
    Image.fromarray(_noise(50, 60)).save(root / "archive" / "Baroque" / "big_png.jpg", format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # errors above 4000 px: 12000 is out, 3000 only warns
    out = tmp_path / "out"
    result = run(root, out)
    assert sorted(result.manifest["image_path"]) == ["Baroque/big_png.jpg", "Baroque/small_one.jpg"]
    report = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))
    assert report["excluded"]["unreadable_image"] == ["Baroque/huge_png.jpg"]
    detail = report["details"]["unreadable_image"]["Baroque/huge_png.jpg"]
    assert detail.startswith("DecompressionBombError:") and "12000 pixels" in detail


def test_broken_files_load_square_raises_image_load_error(tmp_path: Path) -> None:
    """load_square on a missing, empty, truncated or non-image file raises ImageLoadError with its reason."""
    from artlib.data.images import ImageLoadError

    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("<html>403</html>")
    Image.fromarray(_noise()).save(tmp_path / "full.jpg", format="JPEG")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    expected = {"missing.jpg": ("missing_image", "file not found"), "zero.jpg": ("unreadable_image", "zero bytes"),
                "text.jpg": ("unreadable_image", "UnidentifiedImageError"), "cut.jpg": ("unreadable_image", "OSError")}
    for name, (reason, detail) in expected.items():
        with pytest.raises(ImageLoadError) as info:
            load_square(tmp_path / name, 24)
        assert (info.value.reason, info.value.path) == (reason, str(tmp_path / name))
        assert detail in info.value.detail
        again = pickle.loads(pickle.dumps(info.value))  # as a worker process hands it back
        assert (type(again), again.path, again.reason, again.detail, str(again)) == \
            (ImageLoadError, info.value.path, reason, info.value.detail, str(info.value))


# --- CSV problems through prepare --------------------------------------------------------------

def test_semicolon_and_cp1252_inputs_prepare_normally(make_root: MakeRoot, tmp_path: Path) -> None:
    """A semicolon ArtEmis file and a cp1252 classes.csv still give the right manifest; the report notes both."""
    paintings = [Painting("Impressionism", "joaquín-sorolla_beach", ("awe", "contentment")),
                 Painting("Baroque", "rembrandt_night", ("fear",))]
    root = make_root(paintings)
    write_csv_rows(root / ARTEMIS_CSV, ARTEMIS_HEADER,
                   [r for p in paintings for r in annotation_rows(p.style, p.name, p.emotions)], delimiter=";")
    write_csv_rows(root / CLASSES_CSV, CLASSES_HEADER, [classes_row(p) for p in paintings],
                   encoding="cp1252")
    out = tmp_path / "out"
    result = run(root, out)
    rows = {r["image_path"]: r for r in result.manifest.to_dict(orient="records")}
    assert sorted(rows) == ["Baroque/rembrandt_night.jpg", "Impressionism/joaquín-sorolla_beach.jpg"]
    assert rows["Impressionism/joaquín-sorolla_beach.jpg"]["emotion"] == "positive"
    assert rows["Impressionism/joaquín-sorolla_beach.jpg"]["in_classes"]
    assert rows["Baroque/rembrandt_night.jpg"]["emotion"] == "negative"
    read = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))["read"]
    assert read["artemis"]["delimiter"] == ";" and "not commas" in read["artemis"]["warnings"][0]
    assert read["classes"]["encoding"] == "cp1252"
    assert read["classes"]["warnings"] == [f"{root / CLASSES_CSV}: not valid UTF-8; read as cp1252 (Windows). "
                                           f"Save it as UTF-8 to silence this."]


def test_utf16_csv_from_excel_is_read(make_root: MakeRoot) -> None:
    """An ArtEmis file saved by Excel as 'Unicode Text' (UTF-16 with BOM) is read, not a header full of NULs."""
    root = make_root([Painting("Baroque", "józef_a", ("awe",))])
    text = (root / ARTEMIS_CSV).read_text(encoding="utf-8")
    (root / ARTEMIS_CSV).write_bytes(text.encode("utf-16"))
    result = run(root)
    assert result.manifest["painting"].tolist() == ["józef_a"]
    assert result.report["read"]["artemis"]["encoding"] == "utf-16"


def test_renamed_column_through_prepare(make_root: MakeRoot) -> None:
    """A renamed classes.csv column stops prepare with the file, the column, the close match and the fix."""
    root = make_root([Painting("Baroque", "a_b")])
    path = root / CLASSES_CSV
    path.write_text(path.read_text(encoding="utf-8").replace("phash", "p_hash", 1), encoding="utf-8")
    with pytest.raises(DataError) as info:
        run(root)
    assert str(info.value).startswith(f"{path}: required column 'phash' (found 'p_hash' — misspelt or renamed? "
                                      f"rename it to 'phash') missing.")


def test_missing_names_unknown_emotions_and_duplicates_reach_the_report_file(make_root: MakeRoot,
                                                                              tmp_path: Path) -> None:
    """Empty name cells, unknown emotions and duplicates are counted with CSV line numbers in the report file."""
    good = annotation_rows("Cubism", "georges-braque_violin", ["awe", "fear", "awe"])
    artemis = [
        *good,                                                                                   # lines 2-4
        {"art_style": "Cubism", "painting": "", "emotion": "awe", "utterance": "no name"},       # 5
        {"art_style": "", "painting": "georges-braque_violin", "emotion": "awe", "utterance": "no style"},  # 6
        {"art_style": "Cubism", "painting": "georges-braque_violin", "emotion": "happiness", "utterance": "x"},  # 7
        dict(good[0]),                                                                           # 8 duplicate
        {"art_style": "Cubism", "painting": "georges-braque_violin", "emotion": "", "utterance": "blank"},  # 9
    ]
    root = make_root([Painting("Cubism", "georges-braque_violin", in_artemis=False)], extra_annotations=artemis,
                     extra_classes=[{"filename": "", "artist": "nobody", "genre": "['Cubism']", "phash": "ff"}])
    out = tmp_path / "out"
    result = run(root, out)
    report = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))
    assert report["annotations"] == {
        "missing_painting_or_style": {"rows": 2, "lines": [5, 6]},
        "unknown_emotion": {"rows": 2, "lines": [7, 9], "values": ["<empty>", "happiness"]},
        "duplicate_rows": {"rows": 1, "lines": [8]},
    }
    assert report["classes"]["missing_filename_rows"] == 1
    row = result.manifest.iloc[0]
    assert (row["n_positive"], row["n_negative"]) == (2, 1)  # the duplicate 'awe' is not counted twice


def test_line_numbers_count_lines_not_records(make_root: MakeRoot) -> None:
    """Line numbers are the file's lines even when a quoted utterance spans lines (semicolon, cp1252 file)."""
    rows = annotation_rows("Cubism", "józef_violin", ["awe", "fear"])
    rows[0]["utterance"] = "calm;\nthen\nsad"  # record 1 takes lines 2-4
    rows += [{"art_style": "Cubism", "painting": "józef_violin", "emotion": "joie", "utterance": "x"},  # line 6
             {"art_style": "Cubism", "painting": "", "emotion": "awe", "utterance": "two\nlines"},  # 7-8
             dict(rows[1])]  # line 9, a duplicate of line 5
    root = make_root([Painting("Cubism", "józef_violin", in_artemis=False)])
    write_csv_rows(root / ARTEMIS_CSV, ARTEMIS_HEADER, rows, encoding="cp1252", delimiter=";")
    assert (root / ARTEMIS_CSV).read_bytes().count(b"\n") == 9
    annotations = run(root).report["annotations"]
    assert annotations["unknown_emotion"]["lines"] == [6]
    assert annotations["missing_painting_or_style"]["lines"] == [7]
    assert annotations["duplicate_rows"]["lines"] == [9]


@pytest.mark.parametrize("rel, reason", [
    ("C:\\wikiart\\Baroque\\x.jpg", "absolute path"),
    ("\\\\server\\share\\x.jpg", "absolute path"),
    ("Baroque\\..\\..\\x.jpg", "contains '..'"),
    ("Baroque/./x.jpg", "empty or '.' path component"),
    ("Baroque//x.jpg", "empty or '.' path component"),
    ("Baroque/x\x00.jpg", "empty or contains NUL"),
    ("", "empty or contains NUL"),
    ("Baroque/x..y.jpg", None),
])
def test_unsafe_path_forms(rel: str, reason: str | None) -> None:
    """Windows drive and UNC paths, backslash '..', '.' and empty components and NUL are refused; 'x..y' is fine."""
    assert unsafe_reason(rel) == reason


# --- the empty archive -------------------------------------------------------------------------

@pytest.mark.parametrize("content", ["nothing", "hidden-files-only", "empty-style-folders"])
def test_empty_archive_is_a_data_error(make_root: MakeRoot, content: str) -> None:
    """An archive/ without a single image file is a DataError naming it and the expected layout (not 0 rows)."""
    root = make_root([Painting("Baroque", "a_b", image="none"), Painting("Cubism", "c_d", image="none")])
    archive = root / "archive"
    if content == "hidden-files-only":
        (archive / ".DS_Store").write_bytes(b"\x00")
    elif content == "empty-style-folders":
        (archive / "Baroque").mkdir()
        (archive / "Cubism").mkdir()
    with pytest.raises(DataError) as info:
        run(root)
    assert str(info.value) == (f"{archive}: holds no image files at all. Unpack the WikiArt images there as "
                               f"archive/<Style>/<painting>.jpg "
                               f"(e.g. archive/Impressionism/claude-monet_water-lilies.jpg).")


def test_archive_of_symlinked_style_folders_is_not_empty(make_root: MakeRoot, tmp_path: Path) -> None:
    """Style folders linked in from elsewhere do not count as an empty archive (they are checked later)."""
    root = make_root([Painting("Baroque", "a_b", image="none")])
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "archive" / "Baroque")
    result = run(root)
    assert result.report["excluded"]["missing_image"] == ["Baroque/a_b.jpg"]


# --- the command line: exit code 2 and one 'error:' line -------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``python -m artlib`` in a subprocess from the repository root."""
    return subprocess.run([sys.executable, "-m", "artlib", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def _break(root: Path, how: str, tmp_path: Path) -> tuple[Path, Path, str]:
    """Damage a data root in one way; returns (data root, out dir, the text the error must contain)."""
    out = tmp_path / "out"
    if how == "no-data-root":
        return tmp_path / "nowhere", out, f"{tmp_path / 'nowhere'}: data root does not exist"
    if how == "empty-csv":
        (root / ARTEMIS_CSV).write_bytes(b"")
        return root, out, f"{root / ARTEMIS_CSV}: the file is empty. Download the ArtEmis"
    if how == "renamed-column":
        text = (root / ARTEMIS_CSV).read_text(encoding="utf-8")
        (root / ARTEMIS_CSV).write_text(text.replace("painting", "paintng", 1), encoding="utf-8")
        return root, out, f"{root / ARTEMIS_CSV}: required column 'painting' (found 'paintng'"
    if how == "unknown-delimiter":
        text = (root / CLASSES_CSV).read_text(encoding="utf-8")
        (root / CLASSES_CSV).write_text(text.replace(",", ":"), encoding="utf-8")
        return root, out, f"{root / CLASSES_CSV}: required columns 'filename', 'artist', 'genre', 'phash' missing"
    if how == "unknown-emotions-only":
        text = (root / ARTEMIS_CSV).read_text(encoding="utf-8")
        (root / ARTEMIS_CSV).write_text(text.replace(",awe,", ",joy,"), encoding="utf-8")
        return root, out, f"{root / ARTEMIS_CSV}: column 'emotion' holds no ArtEmis emotion"
    if how == "empty-archive":
        shutil.rmtree(root / "archive")
        (root / "archive").mkdir()
        return root, out, f"{root / 'archive'}: holds no image files at all"
    if how == "out-is-a-file":
        out.write_text("not a folder")
        return root, out, f"{out}: cannot write the manifest here (File exists); choose another output folder."
    raise ValueError(how)


@pytest.mark.parametrize("how", ["no-data-root", "empty-csv", "renamed-column", "unknown-delimiter",
                                 "unknown-emotions-only", "empty-archive", "out-is-a-file"])
def test_cli_prepare_bad_input_is_one_error_line(make_root: MakeRoot, tmp_path: Path, how: str) -> None:
    """`python -m artlib prepare` on broken input: exit code 2, exactly one stderr line 'error: …', no traceback."""
    root = make_root([Painting("Baroque", "a_b", ("awe",)), Painting("Cubism", "c_d", ("awe",))])
    data_root, out, expected = _break(root, how, tmp_path)
    proc = _cli("prepare", "--data-root", str(data_root), "--out", str(out), "--workers", "1")
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (out / "manifest.csv").is_file()


def test_cli_prepare_reports_exclusions_and_succeeds(make_root: MakeRoot, tmp_path: Path) -> None:
    """Excludable problems are not errors: exit 0, a summary of the reasons, and the paths in the report."""
    root = make_root([Painting("Baroque", "ok_a", ("awe",)), Painting("Baroque", "gone_b", ("awe",), image="none"),
                      Painting("Baroque", "cut_c", ("fear",), image="truncated")])
    out = tmp_path / "out"
    proc = _cli("prepare", "--data-root", str(root), "--out", str(out), "--workers", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert (f"excluded images by reason: {{'missing_image': 1, 'unreadable_image': 1}} "
            f"(paths in {out / 'prepare_report.json'})") in proc.stdout
    report = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))
    assert report["excluded"]["missing_image"] == ["Baroque/gone_b.jpg"]
    assert report["excluded"]["unreadable_image"] == ["Baroque/cut_c.jpg"]
    assert pd.read_csv(out / "manifest.csv")["image_path"].tolist() == ["Baroque/ok_a.jpg"]


# --- images that break after prepare: training skips them, up to a limit ---------------------------

def _damaged_copy(tiny_data: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Copy the data root and a run dir; delete one emotion image and overwrite another with text (after prepare)."""
    root, prepared = tiny_data
    data = tmp_path / "data"
    shutil.copytree(root, data, symlinks=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rundir.copy_prepared(prepared, run_dir)
    manifest = read_manifest(run_dir / "manifest.csv")
    victims = sorted(manifest.loc[manifest["emotion"] != "", "image_path"])[:2]
    (data / "archive" / victims[0]).unlink()
    (data / "archive" / victims[1]).write_text("<html>gone</html>")
    return data, run_dir, victims


def test_training_skips_images_broken_after_prepare(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    """Two of 79 images vanish/corrupt before the cache is built: under a 5% limit the stage skips and lists them."""
    data, run_dir, (gone, corrupt) = _damaged_copy(tiny_data, tmp_path)
    n_task = int((read_manifest(run_dir / "manifest.csv")["emotion"] != "").sum())
    config = TrainConfig(**{**TINY.__dict__, "max_skipped_fraction": 0.05})
    row = train_one("emotion_conv5", run_dir, config, seed=0, progress=False, data_root=data)
    assert row["skipped_images"] == 2
    assert row["n_train"] + row["n_val"] + row["n_test"] == n_task - 2
    metrics = json.loads((stage_dir(run_dir, "emotion_conv5", 0) / "metrics.json").read_text())
    assert metrics["skipped_images"] == {
        gone: "missing_image: file not found",
        corrupt: f"unreadable_image: UnidentifiedImageError: cannot identify image file "
                 f"'{data / 'archive' / corrupt}'",
    }
    predicted = pd.read_csv(stage_dir(run_dir, "emotion_conv5", 0) / "predictions.csv")["image_path"]
    assert not set(predicted) & {gone, corrupt}


def test_training_stops_above_the_skip_limit(tiny_data: tuple[Path, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The same two broken images are above the default 1% of 79: a DataError before any training, naming one."""
    data, run_dir, (gone, _) = _damaged_copy(tiny_data, tmp_path)
    n_task = int((read_manifest(run_dir / "manifest.csv")["emotion"] != "").sum())
    monkeypatch.setattr(artlib.train.runner, "train_loop", lambda *a, **k: pytest.fail("training must not start"))
    with pytest.raises(GridFailure) as info:
        train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False, data_root=data)
    assert isinstance(info.value.__cause__, DataError)
    assert str(info.value.__cause__) == (
        f"2 of {n_task} images of the emotion task could not be loaded (e.g. ('{gone}', 'missing_image: file not "
        f"found')); above the 1% limit. Check {data / 'archive'}, then rerun notebook 02 to re-check the images.")
    folder = stage_dir(run_dir, "emotion_conv5", 0)
    assert not any((folder / name).exists() for name in ("checkpoint.pt", "metrics.json", "model.pt"))
    assert not (run_dir / "results.csv").exists()


def test_archive_unpacked_one_level_too_deep(tmp_path: Path) -> None:
    """When none of many paintings is found, prepare says so and shows the folders it did find."""
    root = tmp_path / "root"
    generate(root, DemoSpec(seed=1, scale=0.2, min_side=40, max_side=60, large_side=80))
    nested = root / "archive" / "wikiart"
    nested.mkdir()
    for style in [p for p in (root / "archive").iterdir() if p.name != "wikiart"]:
        style.rename(nested / style.name)
    with pytest.raises(DataError, match=r"none of the .* paintings .* found there.*\['wikiart'\].*one level too deep"):
        prepare(root, None, PrepareConfig(workers=1), progress=False)
