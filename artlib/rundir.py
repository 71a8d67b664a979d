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
from collections.abc import Callable, Iterator
from pathlib import Path

PathLike = str | os.PathLike[str]

STAGE_FILES = ("config.json", "checkpoint.pt", "model.pt", "metrics.json", "predictions.csv", "history.csv")
_SEED_FOLDER = re.compile(r"^seed_(-?\d+)$")


TOP_LEVEL = {
    "manifest": ("manifest.csv", "one row per usable painting (written by prepare)"),
    "prepare_report": ("prepare_report.json", "what prepare kept, excluded and why"),
    "image_checks": ("image_checks.csv", "prepare's per-file check cache (size, mtime, reason, phash)"),
    "results": ("results.csv", "one row per (stage, seed)"),
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
