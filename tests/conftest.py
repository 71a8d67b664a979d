"""Shared fixtures: tiny data roots built in tmp_path, and the generated demo data root.

Builders are plain functions (importable as ``from conftest import ...``) so a test can
write exactly the case it needs: a classes.csv, an ArtEmis CSV and small seeded JPEGs
under ``archive/<Style>/<painting>.jpg``.
"""

from __future__ import annotations

import csv
import hashlib
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artlib import rundir
from artlib.data.demo import DemoSpec, generate
from artlib.data.prepare import PrepareConfig, PrepareResult, prepare
from artlib.train.config import TrainConfig

CLASSES_HEADER = ("filename", "artist", "genre", "description", "phash", "width", "height", "genre_count", "subset")
ARTEMIS_HEADER = ("art_style", "painting", "emotion", "utterance", "repetition")
CLASSES_CSV = Path("data_gen") / "classes.csv"
ARTEMIS_CSV = Path("data_em") / "artemis_dataset_release_v0.csv"

TINY = TrainConfig(image_size=32, epochs=3, batch_size=16, lr=1e-3, weights="none", precision="fp32", workers=1,
                   patience=None)
"""A training configuration small enough for unit tests (random init, 32 px, fp32 for exactness)."""

# Image kinds a fixture painting can have on disk.
IMAGE_KINDS = ("rgb", "gray", "cmyk", "none", "zero", "truncated", "text")


@dataclass
class Painting:
    """One painting of a fixture root: what goes into each CSV and what lies on disk."""

    style: str
    name: str
    emotions: Sequence[str] = ("awe",)
    image: str = "rgb"
    size: tuple[int, int] = (40, 32)
    in_classes: bool = True
    in_artemis: bool = True
    artist: str | None = None
    phash: str | None = None
    genre: str | None = None
    artemis_name: str | None = None
    artemis_style: str | None = None
    filename: str | None = None
    disk_name: str | None = None
    seed: int = 0

    @property
    def path(self) -> str:
        """The classes.csv filename (Style/painting.jpg) unless overridden."""
        return self.filename if self.filename is not None else f"{self.style}/{self.name}.jpg"


def seed_of(text: str) -> int:
    """A stable per-name seed (crc32), so every fixture image is reproducible."""
    return zlib.crc32(text.encode("utf-8"))


def write_jpeg(path: Path, size: tuple[int, int] = (40, 32), mode: str = "RGB", seed: int = 0, quality: int = 85) -> Path:
    """Write a seeded random-noise JPEG of ``size`` (w, h) in ``mode`` (RGB, L or CMYK)."""
    w, h = size
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8), mode="RGB")
    if mode != "RGB":
        im = im.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format="JPEG", quality=quality)
    return path


def write_image_kind(path: Path, kind: str, size: tuple[int, int] = (40, 32), seed: int = 0) -> None:
    """Put a file of the given kind at ``path`` (see IMAGE_KINDS); 'none' writes nothing."""
    if kind not in IMAGE_KINDS:
        raise ValueError(f"unknown image kind {kind!r}")
    if kind == "none":
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind in ("rgb", "gray", "cmyk"):
        write_jpeg(path, size, {"rgb": "RGB", "gray": "L", "cmyk": "CMYK"}[kind], seed)
    elif kind == "zero":
        path.write_bytes(b"")
    elif kind == "truncated":
        write_jpeg(path, size, "RGB", seed)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:  # text
        path.write_text("<html>403 Forbidden</html>\n", encoding="utf-8")


def write_csv_rows(path: Path, header: Sequence[str], rows: Iterable[dict], encoding: str = "utf-8",
                   delimiter: str = ",") -> Path:
    """Write ``rows`` (dicts keyed by header names, missing keys empty) as a CSV file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(header), delimiter=delimiter, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in header})
    return path


def phash_of(text: str) -> str:
    """A stable 64-bit stand-in phash per name (16 hex digits, far from any other, like distinct paintings)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def classes_row(p: Painting) -> dict:
    """The classes.csv row of a fixture painting."""
    genre = p.genre if p.genre is not None else str([p.style.replace("_", " ")])
    return {"filename": p.path, "artist": p.artist if p.artist is not None else p.name.split("_", 1)[0],
            "genre": genre, "description": p.name.split("_", 1)[-1],
            "phash": p.phash if p.phash is not None else phash_of(p.path),
            "width": p.size[0], "height": p.size[1], "genre_count": 1, "subset": "train"}


def annotation_rows(style: str, painting: str, emotions: Sequence[str], tag: str = "") -> list[dict]:
    """ArtEmis rows for one painting, one per emotion, each with a distinct utterance."""
    return [{"art_style": style, "painting": painting, "emotion": e, "utterance": f"{painting}{tag} says {i}",
             "repetition": len(emotions)} for i, e in enumerate(emotions)]


def write_classes(root: Path, rows: Iterable[dict], **kw: str) -> Path:
    """Write data_gen/classes.csv under ``root``."""
    return write_csv_rows(root / CLASSES_CSV, CLASSES_HEADER, rows, **kw)


def write_artemis(root: Path, rows: Iterable[dict], **kw: str) -> Path:
    """Write data_em/artemis_dataset_release_v0.csv under ``root``."""
    return write_csv_rows(root / ARTEMIS_CSV, ARTEMIS_HEADER, rows, **kw)


def build_root(root: Path, paintings: Sequence[Painting], extra_annotations: Sequence[dict] = (),
               extra_classes: Sequence[dict] = ()) -> Path:
    """Write a complete data root (archive/, both CSVs) for ``paintings`` plus any extra CSV rows."""
    (root / "archive").mkdir(parents=True, exist_ok=True)
    classes, artemis = [], []
    for p in paintings:
        if p.in_classes:
            classes.append(classes_row(p))
        if p.in_artemis:
            artemis += annotation_rows(p.artemis_style or p.style, p.artemis_name or p.name, p.emotions)
        disk = p.disk_name if p.disk_name is not None else p.path
        write_image_kind(root / "archive" / disk, p.image, p.size, p.seed or seed_of(p.path))
    write_classes(root, [*classes, *extra_classes])
    write_artemis(root, [*artemis, *extra_annotations])
    return root


@pytest.fixture
def make_root(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_root(paintings, extra_annotations=(), extra_classes=(), name='root')`` → data root path."""
    def _make(paintings: Sequence[Painting], extra_annotations: Sequence[dict] = (),
              extra_classes: Sequence[dict] = (), name: str = "root") -> Path:
        return build_root(tmp_path / name, paintings, extra_annotations, extra_classes)
    return _make


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in synthetic demo data root, generated once per test session."""
    from artlib.data.demo import generate

    root = tmp_path_factory.mktemp("demo") / "root"
    generate(root)
    return root


@pytest.fixture(scope="session")
def demo_prepared(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[PrepareResult, Path]:
    """prepare() on the demo root with default settings (one worker), run once per session."""
    from artlib.data.prepare import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("demo-out")
    return prepare(demo_root, out, PrepareConfig(workers=1), progress=False), out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small demo data root (about 150 paintings, small images) and its prepared run files, made once."""
    root = tmp_path_factory.mktemp("tiny-data") / "root"
    generate(root, DemoSpec(seed=3, scale=0.35, min_side=40, max_side=64, large_side=300))
    prepared = tmp_path_factory.mktemp("tiny-prepared")
    prepare(root, prepared, PrepareConfig(seed=0, workers=1), progress=False)
    return root, prepared


@pytest.fixture(scope="session")
def tiny_prepared(tiny_data: tuple[Path, Path]) -> Path:
    """The folder holding the tiny data's manifest.csv and prepare_report.json; tests copy them."""
    return tiny_data[1]


def new_run_dir(prepared: Path, where: Path) -> Path:
    """A fresh run directory at ``where`` holding a prepared manifest and report (no caches, no stages)."""
    if where.exists():
        raise FileExistsError(f"{where}: a fresh run directory must not exist yet")
    return rundir.copy_prepared(prepared, where)


@pytest.fixture
def run_dir(tiny_prepared: Path, tmp_path: Path) -> Path:
    """A fresh run directory holding the tiny manifest (no caches, no stages)."""
    return new_run_dir(tiny_prepared, tmp_path / "run")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for a module: on a busy 2-core machine oversubscription makes tiny stages ~5× slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def private_digest_memo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Weights digests the tests (and the processes they start) compute are remembered in a folder of this session,
    not in the user's cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("ARTLIB_CACHE_DIR", str(tmp_path_factory.mktemp("artlib-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def own_cores_and_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """This test process counts only its own stage-runs, on its own core under pytest-xdist.

    Each process gets a private thread-share registry (ARTLIB_ACTIVE_DIR), so artlib work elsewhere on the machine
    does not change the ``threads`` tests record; an xdist worker is also pinned to one core of its own, so two
    workers never oversubscribe the cores and every stage-run of a worker takes exactly one thread.
    """
    import os

    before = os.environ.get("ARTLIB_ACTIVE_DIR")
    os.environ["ARTLIB_ACTIVE_DIR"] = str(tmp_path_factory.mktemp("active"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if worker.startswith("gw") and len(cores) > 1:
        os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})
        import torch

        torch.set_num_threads(1)  # torch counted the cores at import: one spinning thread per core, not two
    yield
    if before is None:
        os.environ.pop("ARTLIB_ACTIVE_DIR", None)
    else:
        os.environ["ARTLIB_ACTIVE_DIR"] = before


def crash_after(epoch: int) -> Callable[[int, dict], None]:
    """An ``on_epoch_end`` callback that raises after ``epoch`` (its checkpoint written): a simulated crash."""
    def callback(done: int, row: dict) -> None:
        if done >= epoch:
            raise RuntimeError(f"simulated failure after epoch {done}")
    return callback


SLOW_FIXTURES = {"run_dir", "tiny_data", "tiny_prepared", "demo_root", "demo_prepared", "local_ray", "prepared", "clean"}
"""Fixtures that generate images, decode them or train: tests using them are marked slow (make unit-fast skips them)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that trains, decodes a demo root or starts Ray as slow."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def train_one(name: str, run_dir: Path, config: TrainConfig = TINY, seed: int = 0, **options: object) -> dict:
    """Train one stage for one seed through the one entry point (sources first); its results row."""
    from artlib.train.driver import run_stages

    rows = run_stages([name], run_dir, config, seeds=[seed], **options)
    return rows.iloc[-1].to_dict()
