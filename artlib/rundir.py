"""The run directory's layout, in one place: every other module asks here where a file lives.

    run_dir/
      manifest.csv  prepare_report.json  image_checks.csv        (notebook 02 / prepare)
      results.csv                                              (one row per stage × seed)
      comparison.csv  verdicts.csv                             (notebook 06)
      stages/<stage>/seed_<n>/                                 (one folder per stage-run)
          config.json  checkpoint.pt  model.pt  metrics.json  predictions.csv  history.csv
      cache/        figures/        notebooks/        report/

Torch-free and pandas-free: reading a layout must never pull in the training stack.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

PathLike = str | os.PathLike[str]

STAGE_FILES = ("config.json", "checkpoint.pt", "model.pt", "metrics.json", "predictions.csv", "history.csv")
_SEED_FOLDER = re.compile(r"^seed_(-?\d+)$")


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
    """run_dir/results.csv: one row per (stage, seed)."""
    return Path(run_dir) / "results.csv"


def results_lock(run_dir: PathLike) -> Path:
    """The lock file guarding results.csv."""
    return Path(run_dir) / ".results.lock"


def comparison(run_dir: PathLike) -> Path:
    """run_dir/comparison.csv: one row per stage (notebook 06)."""
    return Path(run_dir) / "comparison.csv"


def verdicts(run_dir: PathLike) -> Path:
    """run_dir/verdicts.csv: one row per comparison (notebook 06, 08)."""
    return Path(run_dir) / "verdicts.csv"


def stages_root(run_dir: PathLike) -> Path:
    """run_dir/stages/: every stage-run's folder lives below it."""
    return Path(run_dir) / "stages"


def stage_dir(run_dir: PathLike, stage: str, seed: int) -> Path:
    """run_dir/stages/<stage>/seed_<seed>/: one stage-run's folder."""
    return stages_root(run_dir) / stage / f"seed_{int(seed)}"


def stage_file(run_dir: PathLike, stage: str, seed: int, name: str) -> Path:
    """A named file of a stage-run's folder (one of STAGE_FILES)."""
    if name not in STAGE_FILES:
        raise ValueError(f"unknown stage file {name!r}; stage folders hold {', '.join(STAGE_FILES)}")
    return stage_dir(run_dir, stage, seed) / name


def finished_metrics(run_dir: PathLike) -> Iterator[tuple[str, int, Path]]:
    """(stage, seed, metrics.json path) of every stage-run folder holding a metrics.json, sorted."""
    root = stages_root(run_dir)
    if not root.is_dir():
        return
    for stage_folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for seed_folder in sorted(stage_folder.iterdir()):
            match = _SEED_FOLDER.match(seed_folder.name)
            metrics = seed_folder / "metrics.json"
            if match and metrics.is_file():
                yield stage_folder.name, int(match.group(1)), metrics


def cache_dir(run_dir: PathLike) -> Path:
    """run_dir/cache/: decoded-image and feature caches (safe to delete; rebuilt on demand)."""
    return Path(run_dir) / "cache"


def figures(run_dir: PathLike) -> Path:
    """run_dir/figures/: every figure the notebooks save, as PNG."""
    return Path(run_dir) / "figures"


def notebooks(run_dir: PathLike) -> Path:
    """run_dir/notebooks/: executed copies of the notebook series."""
    return Path(run_dir) / "notebooks"


def report(run_dir: PathLike) -> Path:
    """run_dir/report/: the HTML report (index.html leads with the verdicts)."""
    return Path(run_dir) / "report"
