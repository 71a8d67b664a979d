"""The run directory's layout, in one place: every other module asks here where a file lives.

    run_dir/
      manifest.csv  prepare_report.json  image_checks.csv        (notebook 02 / prepare)
      results.csv                                    (one row per stage × seed × split seed)
      comparison.csv  verdicts.csv                             (notebook 06)
      stages/<stage>/seed_<n>/                                 (one folder per stage-run, split seed 0)
          config.json  checkpoint.pt  model.pt  metrics.json  predictions.csv  history.csv
      stages/<stage>/split_<k>/seed_<n>/                       (the same for split seed k ≥ 1)
      cache/        figures/        notebooks/        report/

Torch-free and pandas-free: reading a layout must never pull in the training stack.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

PathLike = str | os.PathLike[str]

STAGE_FILES = ("config.json", "checkpoint.pt", "model.pt", "metrics.json", "predictions.csv", "history.csv")
_SEED_FOLDER = re.compile(r"^seed_(-?\d+)$")
_SPLIT_FOLDER = re.compile(r"^split_([1-9]\d*)$")


TOP_LEVEL = {
    "manifest": ("manifest.csv", "one row per usable painting (written by prepare)"),
    "prepare_report": ("prepare_report.json", "what prepare kept, excluded and why"),
    "image_checks": ("image_checks.csv", "prepare's per-file check cache (size, mtime, reason, phash)"),
    "results": ("results.csv", "one row per (stage, seed, split_seed)"),
    "results_lock": (".results.lock", "the lock file guarding results.csv"),
    "comparison": ("comparison.csv", "one row per stage (notebook 06)"),
    "verdicts": ("verdicts.csv", "one row per comparison (notebooks 06 and 08)"),
    "cache_dir": ("cache", "decoded-image and feature caches (safe to delete; rebuilt on demand)"),
    "figures": ("figures", "every figure the notebooks save, as PNG"),
    "notebooks": ("notebooks", "executed copies of the notebook series"),
    "report": ("report", "the HTML report (index.html leads with the verdicts)"),
}
"""Every file and folder directly in a run directory: accessor name → (name on disk, what it holds)."""


def _accessor(name: str, what: str) -> Callable[[PathLike], Path]:
    """A function giving run_dir/<name>."""
    def path(run_dir: PathLike) -> Path:
        """run_dir/<name>."""
        return Path(run_dir) / name

    path.__doc__ = f"run_dir/{name}: {what}."
    return path


manifest, prepare_report, image_checks, results, results_lock, comparison, verdicts, cache_dir, figures, notebooks, \
    report = (_accessor(*TOP_LEVEL[key]) for key in TOP_LEVEL)


def stages_root(run_dir: PathLike) -> Path:
    """run_dir/stages/: every stage-run's folder lives below it."""
    return Path(run_dir) / "stages"


def stage_dir(run_dir: PathLike, stage: str, seed: int, split_seed: int = 0) -> Path:
    """One stage-run's folder: run_dir/stages/<stage>/seed_<seed>/, or …/<stage>/split_<k>/seed_<seed>/ for split seed k ≥ 1."""
    if split_seed < 0:
        raise ValueError(f"split seeds count from 0, got {split_seed}")
    stage_folder = stages_root(run_dir) / stage
    return (stage_folder / f"split_{int(split_seed)}" if split_seed else stage_folder) / f"seed_{int(seed)}"


def stage_file(run_dir: PathLike, stage: str, seed: int, name: str, split_seed: int = 0) -> Path:
    """A named file of a stage-run's folder (one of STAGE_FILES)."""
    if name not in STAGE_FILES:
        raise ValueError(f"unknown stage file {name!r}; stage folders hold {', '.join(STAGE_FILES)}")
    return stage_dir(run_dir, stage, seed, split_seed) / name


class FinishedRun(NamedTuple):
    """A stage-run folder holding a metrics.json: its stage, seed, split seed and that file."""

    stage: str
    seed: int
    split_seed: int
    metrics: Path


def _seed_folders(folder: Path, split_seed: int, stage: str) -> Iterator[FinishedRun]:
    """The finished stage-runs in one folder of seed_<n> folders."""
    for seed_folder in sorted(folder.iterdir()):
        match = _SEED_FOLDER.match(seed_folder.name)
        metrics = seed_folder / "metrics.json"
        if match and metrics.is_file():
            yield FinishedRun(stage, int(match.group(1)), split_seed, metrics)


def finished_runs(run_dir: PathLike) -> Iterator[FinishedRun]:
    """Every stage-run folder holding a metrics.json, every split seed, sorted by stage, split seed, seed."""
    root = stages_root(run_dir)
    if not root.is_dir():
        return
    for stage_folder in sorted(p for p in root.iterdir() if p.is_dir()):
        yield from _seed_folders(stage_folder, 0, stage_folder.name)
        splits = [(int(m.group(1)), p) for p in stage_folder.iterdir() if p.is_dir() and (m := _SPLIT_FOLDER.match(p.name))]
        for split_seed, folder in sorted(splits):
            yield from _seed_folders(folder, split_seed, stage_folder.name)


def finished_metrics(run_dir: PathLike) -> Iterator[tuple[str, int, Path]]:
    """(stage, seed, metrics.json path) of every finished stage-run of split seed 0, sorted (see finished_runs)."""
    for run in finished_runs(run_dir):
        if run.split_seed == 0:
            yield run.stage, run.seed, run.metrics
