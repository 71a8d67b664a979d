"""The run directory's layout, in one place: every other module asks here where a file lives.

    run_dir/
      manifest.csv  prepare_report.json  image_checks.csv        (notebook 02 / prepare)
      results.csv                                    (one row per stage × seed × split seed)
      comparison.csv  verdicts.csv                             (notebook 06)
      stages/<stage>/seed_<n>/                                 (one folder per stage-run, split seed 0)
          config.json  checkpoint.pt  model.pt  metrics.json  predictions.csv  history.csv
          checkpoint-slot<i>-<j>.safetensors         (while training: the record's weights, slot i in 0‥2, part j in 0‥1)
      stages/<stage>/split_<k>/seed_<n>/                       (the same for split seed k ≥ 1)
      stages/<stage>/<backbone>/[split_<k>/]seed_<n>/          (a backbone other than the study's resnet50)
      cache/        figures/        notebooks/        report/

Torch-free and pandas-free: reading a layout must never pull in the training stack.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

PathLike = str | os.PathLike[str]

STAGE_FILES = ("config.json", "checkpoint.pt", "model.pt", "metrics.json", "predictions.csv", "history.csv")
_SEED_FOLDER = re.compile(r"^seed_(-?\d+)$")
_SPLIT_FOLDER = re.compile(r"^split_([1-9]\d*)$")
DEFAULT_BACKBONE = "resnet50"
"""The study's backbone: its stage-runs keep the folders of 0.2; any other backbone's live one level deeper."""


def manifest(run_dir: PathLike) -> Path:
    """run_dir/manifest.csv: one row per usable painting (written by prepare)."""
    return Path(run_dir) / "manifest.csv"


def prepare_report(run_dir: PathLike) -> Path:
    """run_dir/prepare_report.json: what prepare kept, excluded and why."""
    return Path(run_dir) / "prepare_report.json"


def image_checks(run_dir: PathLike) -> Path:
    """run_dir/image_checks.csv: prepare's per-file check cache (size, mtime, reason, phash)."""
    return Path(run_dir) / "image_checks.csv"


def results(run_dir: PathLike) -> Path:
    """run_dir/results.csv: one row per (stage, seed, split_seed, backbone)."""
    return Path(run_dir) / "results.csv"


def results_lock(run_dir: PathLike) -> Path:
    """run_dir/.results.lock: the lock file guarding results.csv."""
    return Path(run_dir) / ".results.lock"


def comparison(run_dir: PathLike) -> Path:
    """run_dir/comparison.csv: one row per stage (notebook 06)."""
    return Path(run_dir) / "comparison.csv"


def verdicts(run_dir: PathLike) -> Path:
    """run_dir/verdicts.csv: one row per comparison (notebooks 06 and 08)."""
    return Path(run_dir) / "verdicts.csv"


def cache_dir(run_dir: PathLike) -> Path:
    """run_dir/cache: decoded-image and feature caches (safe to delete; rebuilt on demand)."""
    return Path(run_dir) / "cache"


def figures(run_dir: PathLike) -> Path:
    """run_dir/figures: every figure the notebooks save, as PNG."""
    return Path(run_dir) / "figures"


def notebooks(run_dir: PathLike) -> Path:
    """run_dir/notebooks: executed copies of the notebook series."""
    return Path(run_dir) / "notebooks"


def report(run_dir: PathLike) -> Path:
    """run_dir/report: the HTML report (index.html leads with the verdicts)."""
    return Path(run_dir) / "report"


PREPARED = (manifest, prepare_report)
"""The files prepare writes that training needs: what a prepared run directory holds."""


def copy_prepared(prepared: PathLike, where: PathLike) -> Path:
    """A fresh run directory at ``where`` holding a copy of a prepared one's manifest and report (no caches, no
    stages): how tests and benchmarks start many runs from one prepare."""
    where = Path(where)
    where.mkdir(parents=True, exist_ok=True)
    for path in PREPARED:
        shutil.copy(path(prepared), path(where))
    return where


def stages_root(run_dir: PathLike) -> Path:
    """run_dir/stages/: every stage-run's folder lives below it."""
    return Path(run_dir) / "stages"


def stage_dir(run_dir: PathLike, stage: str, seed: int, split_seed: int = 0, backbone: str = DEFAULT_BACKBONE) -> Path:
    """One stage-run's folder: run_dir/stages/<stage>/[<backbone>/][split_<k>/]seed_<seed>/.

    The backbone's folder appears for a backbone other than resnet50, the split's for split seed k ≥ 1.
    """
    if split_seed < 0:
        raise ValueError(f"split seeds count from 0, got {split_seed}")
    if _SEED_FOLDER.match(backbone) or _SPLIT_FOLDER.match(backbone) or not re.fullmatch(r"[a-z0-9_]+", backbone):
        raise ValueError(f"backbone {backbone!r} cannot name a folder")
    folder = stages_root(run_dir) / stage
    folder = folder if backbone == DEFAULT_BACKBONE else folder / backbone
    return (folder / f"split_{int(split_seed)}" if split_seed else folder) / f"seed_{int(seed)}"


def stage_file(run_dir: PathLike, stage: str, seed: int, name: str, split_seed: int = 0,
               backbone: str = DEFAULT_BACKBONE) -> Path:
    """A named file of a stage-run's folder (one of STAGE_FILES)."""
    if name not in STAGE_FILES:
        raise ValueError(f"unknown stage file {name!r}; stage folders hold {', '.join(STAGE_FILES)}")
    return getattr(stage_run(run_dir, stage, seed, split_seed, backbone), name.split(".")[0])


def checkpoint_slot(checkpoint: Path, slot: int, part: int) -> Path:
    """A file of a checkpoint slot beside the record ``checkpoint``: checkpoint-slot<i>-<j>.safetensors (part j of
    the weights and Adam state of one epoch; see artlib.train.resume)."""
    return checkpoint.with_name(f"{checkpoint.stem}-slot{int(slot)}-{int(part)}.safetensors")


@dataclass(frozen=True)
class StageRunFiles:
    """Where one stage-run's files live (its folder from :func:`stage_dir`)."""

    folder: Path

    @property
    def config(self) -> Path:
        """config.json: the stage, seed, settings and origin it was started with, and which worker trains it."""
        return self.folder / "config.json"

    @property
    def checkpoint(self) -> Path:
        """checkpoint.pt: the last finished epoch's record (resume from it; it names the slots holding the weights);
        removed once the stage-run finished."""
        return self.folder / "checkpoint.pt"

    @property
    def model(self) -> Path:
        """model.pt: the best epoch's weights."""
        return self.folder / "model.pt"

    @property
    def metrics(self) -> Path:
        """metrics.json: the results row, test metrics and hashes; written last (its presence means finished)."""
        return self.folder / "metrics.json"

    @property
    def predictions(self) -> Path:
        """predictions.csv: every test painting's label, prediction and probabilities."""
        return self.folder / "predictions.csv"

    @property
    def history(self) -> Path:
        """history.csv: one row per epoch."""
        return self.folder / "history.csv"


def stage_run(run_dir: PathLike, stage: str, seed: int, split_seed: int = 0,
              backbone: str = DEFAULT_BACKBONE) -> StageRunFiles:
    """The files of one stage-run (stage, seed, split seed, backbone)."""
    return StageRunFiles(stage_dir(run_dir, stage, seed, split_seed, backbone))


class FinishedRun(NamedTuple):
    """A stage-run folder holding a metrics.json: its stage, seed, split seed, that file and its backbone."""

    stage: str
    seed: int
    split_seed: int
    metrics: Path
    backbone: str = DEFAULT_BACKBONE


def _seed_folders(folder: Path, split_seed: int, stage: str, backbone: str) -> Iterator[FinishedRun]:
    """The finished stage-runs in one folder of seed_<n> folders."""
    for seed_folder in sorted(folder.iterdir()):
        match = _SEED_FOLDER.match(seed_folder.name)
        metrics = StageRunFiles(seed_folder).metrics
        if match and metrics.is_file():
            yield FinishedRun(stage, int(match.group(1)), split_seed, metrics, backbone)


def _backbone_folders(stage_folder: Path) -> Iterator[tuple[str, Path]]:
    """(backbone, folder) of a stage's folder: resnet50's is the stage folder, another's a named folder in it."""
    yield DEFAULT_BACKBONE, stage_folder
    for p in sorted(stage_folder.iterdir()):
        if p.is_dir() and not (_SEED_FOLDER.match(p.name) or _SPLIT_FOLDER.match(p.name)):
            yield p.name, p


def finished_runs(run_dir: PathLike) -> Iterator[FinishedRun]:
    """Every stage-run folder holding a metrics.json: every backbone and split seed, sorted by stage, backbone
    (resnet50 first), split seed, seed."""
    root = stages_root(run_dir)
    if not root.is_dir():
        return
    for stage_folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for backbone, folder in _backbone_folders(stage_folder):
            yield from _seed_folders(folder, 0, stage_folder.name, backbone)
            splits = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _SPLIT_FOLDER.match(p.name))]
            for split_seed, split_folder in sorted(splits):
                yield from _seed_folders(split_folder, split_seed, stage_folder.name, backbone)


def finished_metrics(run_dir: PathLike) -> Iterator[tuple[str, int, Path]]:
    """(stage, seed, metrics.json path) of every finished resnet50 stage-run of split seed 0 (see finished_runs)."""
    for run in finished_runs(run_dir):
        if run.split_seed == 0 and run.backbone == DEFAULT_BACKBONE:
            yield run.stage, run.seed, run.metrics
