"""The local executor, and the one interface every executor offers the driver.

An executor takes the grid's stage-runs in dependency order, a :class:`~artlib.train.grid.Job` (what they share),
the progress bar and a ``blocked`` test (the driver's rule: the source of this stage-run failed), and yields an
:class:`~artlib.train.grid.Outcome` per stage-run as it ends. It never writes results.csv and never decides what
a failure means: the driver does both. Ray is the other executor (:mod:`artlib.train.ray_executor`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from artlib.train.grid import Executor, Job, Outcome, Progress, StageRun
from artlib.train.runner import train_stage_run

Blocked = Callable[[StageRun], bool]
Backend = Callable[[list[StageRun], Job, Executor, Progress, Blocked], Iterator[Outcome]]


def run_local(runs: list[StageRun], job: Job, executor: Executor, progress: Progress,
              blocked: Blocked) -> Iterator[Outcome]:
    """Run stage-runs one after another in this process; a blocked one is handed back unrun."""
    for run in runs:
        if blocked(run):
            yield Outcome(run)
            continue
        progress.started()
        try:
            row = train_stage_run(run.stage, job.run_dir, job.config, run.seed, job.force and run.requested,
                                  job.progress, job.data_root, job.on_epoch_end, threads=executor.cpus,
                                  split_seed=run.split_seed)
        except Exception as exc:  # noqa: BLE001 (reported with the stage-run; the grid goes on)
            yield Outcome(run, error=f"{type(exc).__name__}: {exc}", exception=exc)
            continue
        yield Outcome(run, row, os.uname().nodename)


def backend(executor: Executor) -> Backend:
    """The executor function of this kind (Ray imported only when asked for)."""
    if executor.kind == "ray":
        from artlib.train.ray_executor import run_on_ray

        return run_on_ray
    return run_local
