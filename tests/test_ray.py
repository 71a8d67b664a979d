"""The grid on the real Ray engine (a local instance with 2 CPUs): same results as local, order, faults, failures."""

from __future__ import annotations

import json
from dataclasses import replace
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from artlib import rundir
from artlib.data.manifest import write_outputs

from artlib.train.config import TrainConfig
from artlib.train.grid import Executor, GridFailure
from artlib.train.driver import run_stages

from conftest import TINY, new_run_dir

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
METRICS = ["stage", "seed", "accuracy", "f1", "balanced_accuracy", "n_test", "majority_baseline_accuracy", "best_epoch",
           "epochs_run", "config_hash", "threads"]
GRID = ["genre_conv4_then_emotion_conv5", "emotion_conv5"]


@pytest.fixture(scope="module")
def local_ray() -> object:
    """A local Ray instance with 2 CPUs for the module (artlib connects to it instead of starting its own)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _grid(run_dir: Path, executor: str, config: TrainConfig = TINY, names: list[str] = GRID,
          seeds: tuple[int, ...] = (0, 1)) -> pd.DataFrame:
    """Run the grid with an executor, one CPU (thread) per stage-run, and return results.csv."""
    run_stages(names, run_dir, config, seeds=list(seeds), progress=False, executor=Executor(executor, cpus=1))
    return pd.read_csv(rundir.results(run_dir))


def test_ray_gives_the_same_results_and_predictions_as_local(local_ray: object, tiny_prepared: Path,
                                                              tmp_path: Path) -> None:
    """Bit for bit: every metric of results.csv and every predictions.csv byte, local vs Ray (one thread each)."""
    local = _grid(new_run_dir(tiny_prepared, tmp_path / "local"), "local")
    remote = _grid(new_run_dir(tiny_prepared, tmp_path / "ray"), "ray")
    assert len(local) == len(remote) == 6  # genre_conv4, emotion_conv5 and the carried stage, 2 seeds each
    assert local[METRICS].equals(remote[METRICS])
    for row in local.itertuples():
        a = rundir.stage_file(tmp_path / "local", row.stage, row.seed, "predictions.csv").read_bytes()
        b = rundir.stage_file(tmp_path / "ray", row.stage, row.seed, "predictions.csv").read_bytes()
        assert a == b
    # `compare` works on the Ray executor's run directory and reaches the local run's verdicts
    from artlib.cli import main

    for name in ("local", "ray"):
        assert main(["compare", "--run-dir", str(tmp_path / name)]) == 0
    verdicts = [pd.read_csv(rundir.verdicts(tmp_path / name)) for name in ("local", "ray")]
    assert len(verdicts[0]) == 7 and verdicts[0].equals(verdicts[1])


def test_carried_stages_start_only_after_their_source_finished(local_ray: object, tiny_prepared: Path,
                                                               tmp_path: Path) -> None:
    """Start (config.json's worker.started) of every carried stage-run is after its source's metrics.json was written."""
    run_dir = new_run_dir(tiny_prepared, tmp_path / "run")
    _grid(run_dir, "ray", names=["genre_conv4_then_emotion_conv5", "emotion_conv4_then_emotion_conv5"])
    for seed in (0, 1):
        for carried, source in (("genre_conv4_then_emotion_conv5", "genre_conv4"),
                                ("emotion_conv4_then_emotion_conv5", "emotion_conv4")):
            started = json.loads(rundir.stage_file(run_dir, carried, seed, "config.json").read_text())["worker"]["started"]
            source_end = rundir.stage_file(run_dir, source, seed, "metrics.json").stat().st_mtime
            assert started >= source_end, (carried, seed)


def _kill_when_checkpointed(run_dir: Path, stage: str, seed: int, killed: list[int]) -> None:
    """Wait for the stage-run's first checkpoint, then SIGKILL the worker process training it."""
    folder = rundir.stage_dir(run_dir, stage, seed)
    deadline = time.time() + 120
    while time.time() < deadline and not killed:
        if (folder / "checkpoint.pt").is_file() and (folder / "config.json").is_file():
            pid = json.loads((folder / "config.json").read_text())["worker"]["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.02)


def test_a_killed_worker_is_retried_and_resumes_to_the_same_result(local_ray: object, tiny_prepared: Path,
                                                                    tmp_path: Path) -> None:
    """SIGKILL the worker mid-run: Ray retries the task, it resumes from its checkpoint, metrics equal a clean run's."""
    config = replace(TINY, epochs=6)
    clean = _grid(new_run_dir(tiny_prepared, tmp_path / "clean"), "local", config, ["emotion_conv4"], (0,))
    run_dir = new_run_dir(tiny_prepared, tmp_path / "faulty")
    killed: list[int] = []
    killer = threading.Thread(target=_kill_when_checkpointed, args=(run_dir, "emotion_conv4", 0, killed))
    killer.start()
    faulty = _grid(run_dir, "ray", config, ["emotion_conv4"], (0,))
    killer.join()
    assert killed, "the worker finished before it could be killed"
    metrics = json.loads(rundir.stage_file(run_dir, "emotion_conv4", 0, "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] >= 1
    assert clean[METRICS].equals(faulty[METRICS])
    assert len(faulty) == 1 and not faulty.duplicated(["stage", "seed"]).any()


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_data_failure_is_reported_and_the_others_finish(local_ray: object, tiny_prepared: Path, tmp_path: Path,
                                                          executor: str) -> None:
    """No genre test paintings: genre_conv4 fails (named with its seed), the carried stage is skipped, the rest finish."""
    run_dir = new_run_dir(tiny_prepared, tmp_path / "run")
    manifest = pd.read_csv(rundir.manifest(run_dir), dtype=str, keep_default_na=False)
    manifest.loc[manifest["split"] == "test", "era"] = ""
    report = json.loads(rundir.prepare_report(run_dir).read_text())
    write_outputs(manifest, report, run_dir)  # as prepare writes it: with the digest training checks
    with pytest.raises(GridFailure) as info:
        run_stages(GRID, run_dir, TINY, seeds=[0], progress=False, executor=Executor(executor, cpus=1))
    failed = {(f.run.stage, f.run.seed, f.skipped) for f in info.value.failures}
    assert failed == {("genre_conv4", 0, False), ("genre_conv4_then_emotion_conv5", 0, True)}
    assert "genre_conv4 (seed 0)" in str(info.value) and "no 'test' paintings for the genre task" in str(info.value)
    assert pd.read_csv(rundir.results(run_dir))["stage"].tolist() == ["emotion_conv5"]
