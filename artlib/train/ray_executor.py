"""Running the grid on Ray: each stage-run is a Ray task; sources finish before the runs that carry them.

Ray schedules the tasks by CPUs and (fractional) GPUs, retries a task whose worker process died
(``max_retries``; artlib's resume then continues from the last finished epoch) and does not retry a task
that raised (a data problem would fail again). Workers write their stage folders into the run directory,
which every node must see (shared storage, checked before any work); the driver alone writes results.csv.
artlib schedules nothing itself.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

from artlib.errors import DataError
from artlib.train.config import TrainConfig
from artlib.train.grid import Executor, Job, Outcome, Progress, StageRun

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a Ray address to answer before giving up (an unreachable cluster fails fast)."""


def import_ray() -> object:
    """The ray module, or an error saying exactly what to install."""
    try:
        import ray
    except ImportError:
        raise ImportError("executor='ray' needs Ray, an optional extra: pip install -e '.[ray]' "
                          "(or pip install 'ray[default]'); executor='local' needs nothing.") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail within CONNECT_TIMEOUT, naming the address, when nothing listens there."""
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    host, port = parsed.hostname, parsed.port or (10001 if address.startswith("ray://") else 6379)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach Ray at {address} ({host}:{port}: {exc}); start the cluster (ray start "
                              f"--head) or check --ray-address") from None


def check_ready(address: str | None) -> None:
    """Before any work: Ray is installed and, for a cluster address, something listens there."""
    import_ray()
    if address not in (None, "", "local", "auto"):
        _check_reachable(address)


def connect(address: str | None, cpus: int) -> bool:
    """Connect to Ray (None: start a local instance; 'auto' or an address: a running cluster); True if started."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address in (None, "", "local"):
        from artlib.train.threads import available_cpus

        ray.init(num_cpus=max(available_cpus(), cpus), include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
        return True
    if address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise ConnectionError(f"cannot connect to Ray at {address}: {exc}") from None
    return True


def _read_token(path: str) -> tuple[str, str]:
    """(this node's name, the token file's text or the error reading it): run on every node."""
    try:
        return socket.gethostname(), Path(path).read_text()
    except OSError as exc:
        return socket.gethostname(), f"unreadable: {exc}"


def check_shared_storage(run_dir: Path) -> None:
    """Write a token into the run directory and read it back in a task on every node; stop if a node cannot."""
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = run_dir / f".artlib-storage-check-{uuid.uuid4().hex}"
    text = uuid.uuid4().hex
    token.write_text(text)
    try:
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        probe = ray.remote(num_cpus=0)(_read_token)
        answers = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False))
                           .remote(str(token)) for n in nodes])
    finally:
        token.unlink(missing_ok=True)
    blind = [f"{host} ({seen})" for host, seen in answers if seen != text]
    if blind:
        raise DataError(f"{run_dir}: not visible from every Ray node ({', '.join(blind)}). Workers write stage folders "
                        f"there: put the run directory on storage every node mounts at the same path (NFS, a "
                        f"shared volume) and pass that path.")


def _stage_run_task(stage: str, run_dir: str, config: dict, seed: int, split_seed: int, force: bool,
                    data_root: str | None, threads: int, *sources: object) -> tuple[dict, str]:
    """A Ray task: train one stage-run (after its source, passed in ``sources``); its row and its node."""
    from artlib import log as artlib_log
    from artlib.train.runner import train_stage_run

    artlib_log.quiet()
    row = train_stage_run(stage, run_dir, TrainConfig(**config), seed, force, progress=False, data_root=data_root,
                          threads=threads, split_seed=split_seed)
    return row, socket.gethostname()


def _error_text(exc: BaseException) -> str:
    """The original error of a failed task, without Ray's traceback wrapping."""
    cause = getattr(exc, "cause", None)
    return f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(exc).__name__}: {exc}"


def run_on_ray(runs: list[StageRun], job: Job, executor: Executor, progress: Progress,
               blocked: object = None) -> Iterator[Outcome]:
    """Submit every stage-run as a Ray task in dependency order; yield each outcome as it ends.

    ``blocked`` is not consulted: a task whose source failed fails when Ray hands it its source's result.
    """
    ray = import_ray()
    cpus = executor.cpus or 1
    started = connect(executor.address, cpus)
    try:
        check_shared_storage(job.run_dir)
        task = ray.remote(_stage_run_task).options(num_cpus=cpus, num_gpus=executor.gpus,
                                                   max_retries=executor.retries, retry_exceptions=False)
        refs, run_of = {}, {}
        data_root = None if job.data_root is None else str(job.data_root)
        for run in runs:
            sources = [refs[run.source]] if run.source in refs else []
            ref = task.remote(run.stage, str(job.run_dir), asdict(job.config), run.seed, run.split_seed,
                              job.force and run.requested, data_root, cpus, *sources)
            refs[run.key], run_of[ref] = ref, run
        yield from _collect(ray, list(refs.values()), run_of, progress, _slots(ray, cpus))
    finally:
        if started:
            ray.shutdown()


def _collect(ray: object, pending: list, run_of: dict, progress: Progress, slots: int) -> Iterator[Outcome]:
    """Wait for the tasks, yielding each one's outcome as it ends."""
    progress.started(min(len(pending), slots))
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        run = run_of[done[0]]
        try:
            row, node = ray.get(done[0])
        except Exception as exc:  # noqa: BLE001 (a failed task: reported, the others go on)
            yield Outcome(run, error=_error_text(exc))
            continue
        yield Outcome(run, row, node)
        if progress.running < min(len(pending), slots):
            progress.started()


def _slots(ray: object, cpus: int) -> int:
    """How many stage-runs the cluster can run at once (its CPUs over the CPUs one stage-run asks for)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus, 1)))
