"""Grad-CAM heatmaps, prediction on new images (function and CLI), and the HTML report of the series."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from artlib.models.backbone import ArtNet
from artlib.analysis.explain import gradcam, overlay, pick_examples
from artlib.analysis.predict import predict_images
from conftest import train_one
from artlib.series import run_series
from conftest import TINY, write_image_kind, write_jpeg


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Four seeded 128 px noise images (conv5 sees them as 4×4 maps)."""
    return (np.random.default_rng(0).random((4, 128, 128, 3)) * 255).astype(np.uint8)


def test_gradcam_shape_range_and_target(images: np.ndarray) -> None:
    """Heatmaps have the images' size, are finite and in [0, 1], are not constant, and depend on the target."""
    model = ArtNet.build(2, seed=0)  # random weights; seeded, so the maps below are reproducible
    heat0 = gradcam(model, images, 0)
    heat1 = gradcam(model, images, 1)
    assert heat0.shape == images.shape[:3]
    assert np.isfinite(heat0).all() and heat0.min() >= 0 and heat0.max() <= 1
    assert all(h.std() > 0 for h in heat0) and all(h.std() > 0 for h in heat1)
    assert not np.allclose(heat0, heat1)
    raw = gradcam(model, images[:1], [1], normalise=False)
    assert raw.max() > 0 and np.isfinite(raw).all()


def test_overlay_and_examples(images: np.ndarray) -> None:
    """The overlay keeps the image's shape and dtype; examples cover each (label, correct) group."""
    blended = overlay(images[0], np.linspace(0, 1, 128 * 128).reshape(128, 128))
    assert blended.shape == images[0].shape and blended.dtype == np.uint8
    import pandas as pd

    preds = pd.DataFrame({"image_path": [f"p{i}" for i in range(8)],
                          "label": ["positive"] * 4 + ["negative"] * 4,
                          "predicted": ["positive", "positive", "negative", "negative"] * 2})
    picked = pick_examples(preds, per_group=1, seed=0)
    assert len(picked) == 4
    assert set(zip(picked["label"], picked["correct"])) == {("positive", True), ("positive", False),
                                                           ("negative", True), ("negative", False)}


@pytest.fixture
def trained_run(run_dir: Path) -> Path:
    """A run directory with genre_conv4 and the carried emotion stage trained (tiny)."""
    train_one("genre_conv4_then_emotion_conv5", run_dir, TINY, seed=0, progress=False)
    return run_dir


def test_predict_function_gives_emotion_and_era(trained_run: Path, tmp_path: Path) -> None:
    """Emotion probabilities sum to one; the genre source stage adds era probabilities; errors are rows."""
    ok = write_jpeg(tmp_path / "painting.jpg", (300, 200), seed=1)
    gray = write_jpeg(tmp_path / "gray.jpg", (120, 160), mode="L", seed=2)
    broken = tmp_path / "broken.jpg"
    write_image_kind(broken, "truncated", (200, 150), seed=3)
    frame = predict_images(trained_run, [ok, gray, broken], gradcam_dir=tmp_path / "cams")
    assert frame["stage"].unique().tolist() == ["genre_conv4_then_emotion_conv5"]
    good = frame[frame["error"] == ""]
    assert len(good) == 2
    assert np.allclose(good["p_negative"] + good["p_positive"], 1.0, atol=1e-5)
    eras = ["p_Renaissance", "p_Post-Renaissance", "p_Modern", "p_Contemporary"]
    assert np.allclose(good[eras].sum(axis=1), 1.0, atol=1e-5)
    assert set(good["genre_stage"]) == {"genre_conv4"}
    assert all(Path(p).is_file() for p in good["gradcam"])
    bad = frame[frame["error"] != ""]
    assert bad["image"].tolist() == [str(broken)] and "unreadable_image" in bad["error"].iloc[0]


def test_predict_cli(trained_run: Path, tmp_path: Path) -> None:
    """The CLI prints a table for readable images, one error line per unreadable file, and exits 1."""
    ok = write_jpeg(tmp_path / "ok.jpg", (90, 90), seed=4)
    gray = write_jpeg(tmp_path / "gray.jpg", (90, 90), mode="L", seed=5)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_text("not an image")
    done = subprocess.run([sys.executable, "-m", "artlib", "predict", "--run-dir", str(trained_run),
                           str(ok), str(gray), str(corrupt)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "ok.jpg" in done.stdout and "gray.jpg" in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {corrupt}: unreadable_image")
    assert "Traceback" not in done.stderr
    only_ok = subprocess.run([sys.executable, "-m", "artlib", "predict", "--run-dir", str(trained_run), str(ok)],
                             capture_output=True, text=True, timeout=300)
    assert only_ok.returncode == 0


def test_series_writes_html_report(tmp_path: Path) -> None:
    """run_series executes notebooks in order into run_dir/notebooks and renders them as HTML."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    for i, src in enumerate(["run_dir = 'x'\nvalue = 1", "run_dir = 'x'\nprint('second', run_dir)"]):
        cell = new_code_cell(src, metadata={"tags": ["parameters"]} if i == 0 else {})
        cells = [cell] if i == 0 else [new_code_cell("run_dir = 'x'", metadata={"tags": ["parameters"]}), cell]
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                  "language": "python"}})
        nbformat.write(nb, folder / f"0{i + 1}_nb.ipynb")
    result = run_series(tmp_path / "run", notebooks=sorted(folder.glob("*.ipynb")))
    assert result.failed is None and len(result.executed) == 2
    assert (tmp_path / "run" / "report" / "index.html").is_file()
    html = (tmp_path / "run" / "report" / "02_nb.html").read_text()
    assert "second" in html and str(tmp_path / "run") in html


def test_predict_adds_the_nine_emotion_distribution(trained_run: Path, tmp_path: Path) -> None:
    """With a finished nine-emotion stage, predict also reports the top emotion and the nine probabilities."""
    from artlib.data.labels import ARTEMIS_EMOTIONS

    train_one("emotion9_conv5", trained_run, TINY, seed=0, progress=False)
    frame = predict_images(trained_run, [write_jpeg(tmp_path / "p.jpg", (120, 90), seed=7)])
    row = frame.iloc[0]
    assert row["emotion9_stage"] == "emotion9_conv5" and row["top_emotion"] in ARTEMIS_EMOTIONS
    assert abs(sum(row[f"p_{e}"] for e in ARTEMIS_EMOTIONS) - 1) < 1e-5


def test_report_index_leads_with_the_verdicts(tmp_path: Path) -> None:
    """The HTML report's front page shows the verdicts table (before the notebook links) and the key figures."""
    import pandas as pd

    from artlib.series import report_index

    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "06_verdicts.png").write_bytes(b"png")
    pd.DataFrame([{"comparison": "genre → conv5 vs matched control", "kind": "matched control",
                   "verdict": "inconclusive", "reason": "too few seeds (2 < 3)", "difference": 0.02, "ci_low": -0.1,
                   "ci_high": 0.14, "p_adjusted": 0.6, "n_seeds": 2}]).to_csv(run / "verdicts.csv", index=False)
    page = report_index(run, [run / "report" / "06_compare_results.html"])
    assert page.index("Verdicts") < page.index("genre → conv5 vs matched control") < page.index("Notebooks")
    assert "too few seeds (2 &lt; 3)" in page and "../figures/06_verdicts.png" in page
