"""How many CPU threads a stage-run may use, so that side-by-side work does not oversubscribe the cores.

torch (OpenMP) starts as many threads as there are cores in every process. Two notebooks training at
once on a 2-core machine then run four spinning threads on two cores and each slows down several
times (measured before this module: 581 s and 614 s together against 63 s alone). So a stage-run takes
its *share*: an explicit count when the executor knows it (a Ray task's CPUs), otherwise the cores
divided by the artlib stage-runs active on this machine right now. Active stage-runs announce
themselves with a small file named after their process id in a per-user folder of the temporary
directory (or the folder ``ARTLIB_ACTIVE_DIR`` names); files of processes that died are ignored and removed.

The count is recorded in results.csv (``threads``): torch's results can differ in the last bits with
the thread count, so a bit-for-bit repetition needs the same count (pin it with ``Executor(cpus=…)``, CLI ``--cpus-per-stage``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch


REGISTRY_ENV = "ARTLIB_ACTIVE_DIR"
"""Environment variable naming the registry folder: processes that share cores share it (default: one per user in
the temporary directory); a group given its own folder, e.g. a test run pinned to its own cores, counts only itself."""


def _registry() -> Path:
    """The folder where active stage-runs announce themselves (ARTLIB_ACTIVE_DIR, else one per user)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = Path(os.environ.get(REGISTRY_ENV) or Path(tempfile.gettempdir()) / f"artlib-active-{uid}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def active_runs() -> int:
    """How many artlib stage-runs are active on this machine (this one included), stale entries removed."""
    count = 0
    for entry in _registry().glob("*.pid"):
        try:
            pid = int(entry.stem)
        except ValueError:
            continue
        if _alive(pid):
            count += 1
        else:
            entry.unlink(missing_ok=True)
    return max(count, 1)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS says, else the core count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def cpu_share(threads: int | None = None) -> Iterator[int]:
    """Run a stage-run with ``threads`` torch threads, or its share of the cores; yields the count used."""
    marker = _registry() / f"{os.getpid()}.pid"
    marker.touch()
    before = torch.get_num_threads()
    try:
        count = int(threads) if threads else max(1, available_cpus() // active_runs())
        torch.set_num_threads(count)
        yield count
    finally:
        torch.set_num_threads(before)
        marker.unlink(missing_ok=True)


@contextlib.contextmanager
def one_core_spared() -> Iterator[int]:
    """Within the block torch uses one thread fewer where its threads take every core (never none), leaving a core
    to a thread working beside it: the one writing and hashing model.pt during the test pass; yields the count used.

    Measured on 2 cores: the scoring on both and the writer slowed each other to 0.175 s, one core each took 0.14 s.
    The test pass is thus computed with one thread fewer than the stage-run's recorded ``threads`` (the same count
    for the same ``threads``, so repetitions still agree bit for bit; against a run made before this, test
    probabilities may differ in the last bits where the count changes a kernel's summation order).
    """
    before = torch.get_num_threads()
    spare = before > 1 and before >= available_cpus()
    if spare:
        torch.set_num_threads(before - 1)
    try:
        yield torch.get_num_threads()
    finally:
        if spare:
            torch.set_num_threads(before)
