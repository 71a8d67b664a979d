"""The grid's values: stage-runs in dependency order, the executor settings, outcomes, failures and progress.

    runs = expand(["genre_conv4_then_emotion_conv5"], seeds=[0, 1])   # genre_conv4 first, per seed
    runs = expand(["emotion_conv5"], seeds=[0, 1], split_seeds=[0, 1, 2])   # every seed on every split
    Executor("ray", cpus=1, gpus=0.25)                                  # where they run, built once

The driver (:mod:`artlib.train.driver`) walks these; the executors (:mod:`artlib.train.executors`, Ray in
:mod:`artlib.train.ray_executor`) run them and yield an :class:`Outcome` each; the worker
(:func:`artlib.train.runner.train_stage_run`) trains one. A carried stage starts from its source's stage-run
of the same seed and the same split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from artlib.log import progress as progress_bar
from artlib.stages import dependency_chain
from artlib.train.config import TrainConfig
from artlib.train.loop import EpochCallback

log = logging.getLogger(__name__)
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Executor:
    """Where and how the grid's stage-runs run, built once (CLI, notebook) and handed to the driver.

    ``kind``: "local" (one stage-run after another in this process) or "ray" (each stage-run a Ray task);
    ``cpus``: torch threads per stage-run (local default: this process's share; Ray default 1); ``gpus``: GPUs per
    stage-run on Ray (fractions share a GPU); ``address``: a Ray cluster ("auto", ray://host:port; None starts a
    local instance); ``retries``: how often Ray reruns a stage-run whose worker process died.
    """

    kind: str = "local"
    cpus: int | None = None
    gpus: float = 0.0
    address: str | None = None
    retries: int = 3

    def __post_init__(self) -> None:
        """Reject an unknown kind at once."""
        if self.kind not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.kind!r}")


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
    exception: BaseException | None = None  # the error itself, where the executor ran the stage-run in this process


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


@dataclass(frozen=True)
class Job:
    """What every stage-run of one grid shares: the worker's arguments apart from the stage-run itself."""

    run_dir: Path
    config: TrainConfig
    force: bool = False
    progress: bool = True
    data_root: Path | None = None
    on_epoch_end: EpochCallback | None = None


@dataclass(frozen=True)
class Outcome:
    """What an executor hands back for one stage-run: its row and node, its error, or neither (not run)."""

    run: StageRun
    row: dict | None = None
    node: str = ""
    error: str | None = None
    exception: BaseException | None = None  # the error itself (local executor), kept as the GridFailure's cause
