"""The driver's rules without training: the skip rule, the plan's critical path and time, the shared-storage check,
and checkpoints that give the same bytes for the same payload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from artlib import results
from artlib.errors import DataError
from artlib.models import checkpoints
from artlib.train import driver, ray_executor
from artlib.train.config import TrainConfig
from artlib.train.grid import Executor, GridFailure, Job, Outcome, Progress, StageRun, expand
from artlib.train.plan import critical_path, estimated_seconds


def test_the_driver_skips_dependents_of_a_failure_and_records_the_rest(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed source skips the stage-runs carrying it (never run), the others are recorded in results.csv."""
    runs = expand(["genre_conv4_then_emotion_conv5", "emotion_conv5"], seeds=[0])
    ran: list[str] = []

    def executor(runs: list[StageRun], job: Job, executor: Executor, progress: Progress,
                 blocked: object) -> Iterator[Outcome]:
        """Fails genre_conv4, runs what is not blocked."""
        for run in runs:
            if blocked(run):
                yield Outcome(run)
                continue
            ran.append(run.stage)
            if run.stage == "genre_conv4":
                yield Outcome(run, error="RuntimeError: boom")
            else:
                yield Outcome(run, {"stage": run.stage, "seed": run.seed, "split_seed": 0, "accuracy": 0.5}, "here")

    monkeypatch.setattr(driver, "backend", lambda kind: executor)
    with pytest.raises(GridFailure) as failure:
        driver.run_grid(runs, Job(tmp_path, TrainConfig(), progress=False))
    assert ran == ["genre_conv4", "emotion_conv5"]
    assert [(f.run.stage, f.skipped) for f in failure.value.failures] == [
        ("genre_conv4", False), ("genre_conv4_then_emotion_conv5", True)]
    assert "its source genre_conv4 (seed 0) failed" in str(failure.value)
    assert results.read_results(tmp_path)["stage"].tolist() == ["emotion_conv5"]


def test_executor_settings_are_checked_once() -> None:
    """An unknown executor kind is refused where the settings are built."""
    with pytest.raises(ValueError, match="local"):
        Executor("slurm")
    assert Executor("ray", cpus=2).retries == 3


def test_critical_path_is_the_longest_chain_of_carried_stage_runs() -> None:
    """Sources before the runs that carry them: a chain's seconds add up; independent runs do not."""
    table = pd.DataFrame([
        {"stage": "genre_conv4", "seed": 0, "split_seed": 0, "after": "", "est_seconds": 10.0},
        {"stage": "genre_conv4_then_emotion_conv5", "seed": 0, "split_seed": 0, "after": "genre_conv4 (seed 0)",
         "est_seconds": 5.0},
        {"stage": "emotion_conv5", "seed": 0, "split_seed": 0, "after": "", "est_seconds": 12.0},
        {"stage": "genre_conv4", "seed": 0, "split_seed": 1, "after": "", "est_seconds": 1.0},
        {"stage": "genre_conv4_then_emotion_conv5", "seed": 0, "split_seed": 1,
         "after": "genre_conv4 (seed 0, split 1)", "est_seconds": 2.0},
    ])
    assert critical_path(table) == 15.0
    assert critical_path(table.iloc[0:0]) == 0.0


def test_without_a_feature_cache_the_frozen_blocks_cost_every_epoch() -> None:
    """With a cache the prefix runs once per painting; without one, once per image per epoch (and for the test)."""
    n = {"train": 100, "val": 20, "test": 30}
    speed = (1.0, 0.1, 0.05)  # prefix, step, evaluate: seconds per image
    cached = estimated_seconds(n, 150, speed, epochs=10, cached=True, shared=False)
    assert cached == pytest.approx(10 * (100 * 0.1 + 20 * 0.05) + 30 * 0.05 + 150 * 1.0)
    assert estimated_seconds(n, 150, speed, epochs=10, cached=True, shared=True) == pytest.approx(cached - 150)
    uncached = estimated_seconds(n, 150, speed, epochs=10, cached=False, shared=False)
    assert uncached == pytest.approx(10 * (100 * 1.1 + 20 * 1.05) + 30 * 1.05)


SEES, BLIND = "a" * 56, "b" * 56  # node ids as Ray spells them (hex)


class _FakeRay:
    """Two nodes; the second mounts nothing at the run directory's path (it reads another folder)."""

    def __init__(self, blind_root: Path):
        self.blind_root = blind_root

    def nodes(self) -> list[dict]:
        """Two live nodes."""
        return [{"NodeID": SEES, "Alive": True}, {"NodeID": BLIND, "Alive": True}, {"NodeID": "0" * 56, "Alive": False}]

    def remote(self, **options: object) -> object:
        """A task factory whose calls run here, on the node they are pinned to."""
        fake = self

        class Task:
            def __init__(self, fn: object, node: str = ""):
                self.fn, self.node = fn, node

            def options(self, scheduling_strategy: object) -> Task:
                return Task(self.fn, scheduling_strategy.node_id)

            def remote(self, path: str) -> tuple[str, str]:
                seen = path if self.node == SEES else str(fake.blind_root / Path(path).name)
                return self.fn(seen)

        return lambda fn: Task(fn)

    def get(self, answers: list) -> list:
        """The answers as they are."""
        return answers


def test_shared_storage_check_names_the_node_that_cannot_see_the_run_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that cannot read the token written into the run directory stops the grid before any work."""
    pytest.importorskip("ray")
    run_dir, elsewhere = tmp_path / "run", tmp_path / "node_b"
    run_dir.mkdir()
    elsewhere.mkdir()
    monkeypatch.setattr(ray_executor, "import_ray", lambda: _FakeRay(elsewhere))
    with pytest.raises(DataError, match="not visible from every Ray node .*unreadable"):
        ray_executor.check_shared_storage(run_dir)
    assert list(run_dir.iterdir()) == []  # the token is removed either way
    monkeypatch.setattr(ray_executor, "import_ray", lambda: _FakeRay(run_dir))  # node b mounts the same folder
    ray_executor.check_shared_storage(run_dir)
    assert list(run_dir.iterdir()) == []


def test_the_same_checkpoint_payload_gives_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Saving one payload twice (different files, different times) writes identical bytes, so hashes can be compared;
    a 36 MB payload, whose write-back is started each time 16 MiB more were written, from the file's start on, range
    after range, is hashed as written and loads back unchanged."""
    from artlib import atomic

    kicked: list[tuple[int, int]] = []
    start_writeback = atomic.start_writeback

    def recorded(fd: int, offset: int, length: int) -> None:
        """atomic.start_writeback, noting the range."""
        kicked.append((offset, length))
        start_writeback(fd, offset, length)

    monkeypatch.setattr(atomic, "start_writeback", recorded)
    torch.manual_seed(0)
    payload = {"meta": checkpoints.make_meta(kind="model", stage="emotion_conv5", seed=0),
               "state_dict": {"w": torch.randn(4, 3), "b": torch.zeros(3),
                              **{f"big{i}": torch.randn(2_250_000) for i in range(4)}}}  # 4 × 9 MB
    first = checkpoints.save(tmp_path / "a" / "model.pt", payload, digest=True)
    second = checkpoints.save(tmp_path / "b" / "other.pt", payload, digest=True)
    assert first == second == checkpoints.file_sha256(tmp_path / "a" / "model.pt")  # hashed while written = on disk
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "other.pt").read_bytes()
    first_file = kicked[: len(kicked) // 2]
    assert len(kicked) == 4 and first_file == kicked[len(kicked) // 2:]  # per save: after 2 and after 4 tensors
    assert first_file[0][0] == 0 and all(length >= 16 << 20 for _, length in first_file)
    assert first_file[1][0] == sum(first_file[0])  # the next range starts where the last ended
    back = checkpoints.load(tmp_path / "a" / "model.pt")["state_dict"]
    assert all(torch.equal(back[k], v) for k, v in payload["state_dict"].items())
