"""The grid of stage-runs: every (stage, seed, split seed) in dependency order, run by an executor, recorded by the driver.

    runs = expand(["genre_conv4_then_emotion_conv5"], seeds=[0, 1])   # genre_conv4 first, per seed
    runs = expand(["emotion_conv5"], seeds=[0, 1], split_seeds=[0, 1, 2])   # every seed on every split
    run_grid(runs, run_dir, TrainConfig(), executor="local")           # or "ray"

Executors only run stage-runs (:func:`artlib.train.runner.train_stage_run`) and hand back their rows;
the driver — this process — is the only writer of results.csv. A stage-run that fails does not stop
the others: the ones that need its backbone are skipped, everything else finishes, and
:class:`GridFailure` then lists what failed, stage, seed and split named. A carried stage starts from its
source's stage-run of the same seed and the same split.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from artlib import results
from artlib.log import progress as progress_bar
from artlib.stages import dependency_chain
from artlib.train.config import TrainConfig

log = logging.getLogger(__name__)
EXECUTORS = ("local", "ray")


RunKey = tuple[str, int, int]
"""(stage, seed, split seed): a stage-run's identity in the grid and in results.csv."""


def run_label(stage: str, seed: int, split_seed: int = 0) -> str:
    """'stage (seed n)' for split seed 0, 'stage (seed n, split k)' otherwise."""
    return f"{stage} (seed {seed})" if not split_seed else f"{stage} (seed {seed}, split {split_seed})"


@dataclass(frozen=True)
class StageRun:
    """One stage trained with one seed on one split; ``source`` is the stage-run whose backbone it starts from."""

    stage: str
    seed: int
    source: RunKey | None = None
    requested: bool = True  # named by the caller (``force`` retrains it); False for a source run only when missing
    split_seed: int = 0  # the manifest's split column it trains and tests on (0: 'split')

    @property
    def key(self) -> RunKey:
        """(stage, seed, split seed)."""
        return self.stage, self.seed, self.split_seed

    def __str__(self) -> str:
        """'stage (seed n)', or 'stage (seed n, split k)'."""
        return run_label(*self.key)


def expand(names: list[str] | tuple[str, ...], seeds: list[int] | tuple[int, ...],
           split_seeds: list[int] | tuple[int, ...] = (0,)) -> list[StageRun]:
    """Every stage-run the names need, sources first, each once (split-major, then seed-major as before)."""
    runs: dict[RunKey, StageRun] = {}
    for split_seed in split_seeds:
        for seed in seeds:
            for name in names:
                for st in dependency_chain(name):
                    requested = st.name in names
                    if (st.name, seed, split_seed) not in runs or requested:
                        source = (st.init_from, seed, split_seed) if st.init_from else None
                        runs[(st.name, seed, split_seed)] = StageRun(st.name, seed, source, requested, split_seed)
    return list(runs.values())


@dataclass
class Failure:
    """A stage-run that failed, or was skipped because its source failed."""

    run: StageRun
    error: str
    skipped: bool = False


class GridFailure(RuntimeError):
    """Some stage-runs failed; the others finished and were recorded. ``failures`` lists them."""

    def __init__(self, failures: list[Failure]):
        self.failures = failures
        lines = [f"{f.run}: {'skipped — ' if f.skipped else ''}{f.error}" for f in failures]
        super().__init__(f"{len(failures)} stage-run(s) did not finish:\n  " + "\n  ".join(lines))


@dataclass
class Progress:
    """One bar over the grid's stage-runs (done / running / queued) and a line per finished stage-run."""

    total: int
    enabled: bool = True
    done: int = 0
    running: int = 0
    rows: list[dict] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Open the bar."""
        self.bar = progress_bar(total=self.total, desc="stage-runs", unit="run", enabled=self.enabled)

    def started(self, n: int = 1) -> None:
        """n more stage-runs are running."""
        self.running += n
        self._show()

    def finished(self, run: StageRun, row: dict, node: str) -> None:
        """A stage-run finished on ``node``: say so, with its test accuracy."""
        self.running, self.done = max(self.running - 1, 0), self.done + 1
        self.rows.append(row)
        log.info("✓ %s on %s: test accuracy %.3f", run, node, float(row["accuracy"]))
        self.bar.update()
        self._show()

    def failed(self, failure: Failure) -> None:
        """A stage-run failed (or was skipped): say so."""
        if not failure.skipped:
            self.running = max(self.running - 1, 0)
        self.done += 1
        self.failures.append(failure)
        log.error("✗ %s %s: %s", failure.run, "skipped" if failure.skipped else "failed", failure.error)
        self.bar.update()
        self._show()

    def _show(self) -> None:
        """Refresh the bar's counts."""
        self.bar.set_postfix(done=self.done, running=self.running, queued=self.total - self.done - self.running)

    def close(self) -> None:
        """Finish the bar."""
        self.bar.close()


Worker = Callable[[StageRun], tuple[dict, str]]


def run_local(runs: list[StageRun], worker: Worker, record: Callable[[dict], None], progress: Progress) -> None:
    """Run stage-runs one after another in this process; a failure skips only the runs that need it."""
    failed: set[RunKey] = set()
    for run in runs:
        if run.source in failed:
            failed.add(run.key)
            progress.failed(Failure(run, f"its source {run_label(*run.source)} failed", skipped=True))
            continue
        progress.started()
        try:
            row, node = worker(run)
        except Exception as exc:  # noqa: BLE001 (reported with the stage-run; the grid goes on)
            failed.add(run.key)
            progress.failed(Failure(run, f"{type(exc).__name__}: {exc}"))
            continue
        record(row)
        progress.finished(run, row, node)


def run_grid(runs: list[StageRun], run_dir: str | Path, config: TrainConfig = TrainConfig(), *, executor: str = "local",
             force: bool = False, progress: bool = True, data_root: str | Path | None = None,
             cpus_per_stage: int | None = None, gpus_per_stage: float = 0.0, ray_address: str | None = None,
             max_retries: int = 3) -> pd.DataFrame:
    """Run the stage-runs with an executor; results.csv rows are recorded here as each finishes.

    Raises :class:`GridFailure` after the others finished when any stage-run failed.
    """
    from artlib.train.runner import train_stage_run

    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    run_dir = Path(run_dir)
    bar = Progress(len(runs), progress)

    def record(row: dict) -> None:
        """The driver is the one writer of results.csv."""
        results.upsert(run_dir, [row])

    try:
        if executor == "ray":
            from artlib.train.ray_executor import run_on_ray

            run_on_ray(runs, run_dir, config, record, bar, force=force, data_root=data_root, cpus=cpus_per_stage or 1,
                       gpus=gpus_per_stage, address=ray_address, max_retries=max_retries)
        else:
            def worker(run: StageRun) -> tuple[dict, str]:
                """Train one stage-run in this process."""
                row = train_stage_run(run.stage, run_dir, config, run.seed, force and run.requested, progress,
                                      data_root, threads=cpus_per_stage, split_seed=run.split_seed)
                return row, os.uname().nodename

            run_local(runs, worker, record, bar)
    finally:
        bar.close()
    if bar.failures:
        raise GridFailure(bar.failures)
    return pd.DataFrame(bar.rows)
