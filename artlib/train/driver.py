"""The driver: one entry point that expands stages into stage-runs, runs them with an executor and records them.

    run_stages(["genre_conv4", "genre_conv4_then_emotion_conv5"], run_dir, TrainConfig(), seeds=[0, 1])
    run_stages(["emotion_conv5"], run_dir, config, seeds=[0], executor=Executor("ray", cpus=1))

A stage whose starting stage is missing runs that one first. A finished stage (same settings, same data) is
not retrained unless ``force``; an interrupted one resumes. The driver — this process — orders the stage-runs,
skips the dependents of a failure (the one place that rule lives), reports progress and is the only writer of
results.csv; executors only run stage-runs (:mod:`artlib.train.executors`), the worker trains one
(:func:`artlib.train.runner.train_stage_run`). A stage-run that fails does not stop the others:
:class:`~artlib.train.grid.GridFailure` then lists what failed, stage, seed and split named.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from artlib import results, rundir
from artlib.data.manifest import read_manifest
from artlib.train.config import TrainConfig
from artlib.train.executors import backend
from artlib.train.grid import Executor, Failure, GridFailure, Job, Outcome, Progress, RunKey, StageRun, expand, \
    run_label
from artlib.train.loop import EpochCallback
from artlib.train.plan import plan_grid, print_plan
from artlib.train.runner import data_root_of, resolve_split_seeds


def run_stages(names: list[str] | tuple[str, ...], run_dir: str | Path, config: TrainConfig = TrainConfig(),
               seeds: list[int] | tuple[int, ...] = (0,), force: bool = False, progress: bool = True,
               data_root: str | Path | None = None, executor: Executor = Executor(), plan: bool = False,
               split_seeds: int | None = None, on_epoch_end: EpochCallback | None = None) -> pd.DataFrame:
    """Run stages for every seed and split seed (sources first) with an executor; returns their results rows.

    ``split_seeds``: train on the manifest's first K split seeds (None: every split the manifest holds).
    ``plan=True`` trains nothing and returns the plan (stage-runs in order, paintings, cache bytes, estimated time).
    ``on_epoch_end(epoch, history_row)`` (local executor) runs after each epoch's checkpoint, e.g. to stop a run.
    """
    run_dir = Path(run_dir)
    if executor.kind == "ray" and not plan:
        from artlib.train.ray_executor import check_ready

        check_ready(executor.address)  # a missing extra or an unreachable cluster fails before anything is read
    read_manifest(rundir.manifest(run_dir))  # a missing, damaged or changed manifest stops here, once, not per stage-run
    runs = expand(names, seeds, resolve_split_seeds(run_dir, split_seeds))
    if plan:
        table = plan_grid(runs, run_dir, config, gpus_per_stage=executor.gpus)
        print_plan(table)
        return table
    if data_root is None:
        data_root_of(run_dir)  # so does a missing or damaged prepare_report.json
    job = Job(run_dir, config, force, progress, None if data_root is None else Path(data_root), on_epoch_end)
    return run_grid(runs, job, executor)


def run_grid(runs: list[StageRun], job: Job, executor: Executor = Executor()) -> pd.DataFrame:
    """Run the stage-runs with the executor, recording each row as it ends; raise GridFailure if any failed."""
    bar = Progress(len(runs), job.progress)
    failed: set[RunKey] = set()
    try:
        for outcome in backend(executor)(runs, job, executor, bar, lambda run: run.source in failed):
            settle(outcome, job.run_dir, bar, failed)
    finally:
        bar.close()
    if bar.failures:  # the first error raised in this process, if any, is the cause a traceback shows
        raise GridFailure(bar.failures) from next((f.exception for f in bar.failures if f.exception), None)
    return pd.DataFrame(bar.rows)


def settle(outcome: Outcome, run_dir: Path, bar: Progress, failed: set[RunKey]) -> None:
    """Record a finished stage-run in results.csv, or report it failed, or skipped because its source failed."""
    run = outcome.run
    if run.source in failed:
        failed.add(run.key)
        bar.failed(Failure(run, f"its source {run_label(*run.source)} failed", skipped=True))
    elif outcome.row is None:
        failed.add(run.key)
        bar.failed(Failure(run, outcome.error or "no result", exception=outcome.exception))
    else:
        results.upsert(run_dir, [outcome.row])
        bar.finished(run, outcome.row, outcome.node)
