"""Executors without the Ray engine: the stage graph, clear errors, thread shares, and the plan."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artlib import rundir
from artlib.train import threads
from artlib.train.config import TrainConfig
from artlib.train.grid import Executor, expand
from artlib.models.weights import self_supervised_path
from artlib.train.driver import run_stages

from conftest import TINY, new_run_dir


def self_supervised_available() -> bool:
    """Whether the offline pretrained weights (imgsim) are installed."""
    return self_supervised_path() is not None


def test_expand_orders_sources_first_and_marks_what_was_asked() -> None:
    """Every (stage, seed) once, each after its source; only named stages are 'requested' (force retrains those)."""
    runs = expand(["genre_conv4_then_emotion_conv5", "emotion_conv5"], [0, 1])
    assert [(r.stage, r.seed) for r in runs] == [
        ("genre_conv4", 0), ("genre_conv4_then_emotion_conv5", 0), ("emotion_conv5", 0),
        ("genre_conv4", 1), ("genre_conv4_then_emotion_conv5", 1), ("emotion_conv5", 1)]
    assert [r.requested for r in runs] == [False, True, True, False, True, True]
    assert runs[1].source == ("genre_conv4", 0, 0) and runs[0].source is None  # (stage, seed, split seed)


def test_ray_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """executor='ray' without Ray installed: an ImportError naming the extra to install."""
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[ray\]'"):
        run_stages(["emotion_conv5"], tmp_path, TINY, executor=Executor("ray"), progress=False)


def test_unreachable_ray_address_fails_fast_naming_it(tmp_path: Path) -> None:
    """A Ray address nobody listens on fails within 30 s, and the message names the address."""
    pytest.importorskip("ray")
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match="127.0.0.1:9") as info:
        run_stages(["emotion_conv5"], tmp_path, TINY, executor=Executor("ray", address="ray://127.0.0.1:9"), progress=False)
    assert time.perf_counter() - t0 < 30 and "ray://127.0.0.1:9" in str(info.value)


def test_unknown_executor_is_refused(tmp_path: Path) -> None:
    """Only 'local' and 'ray' exist."""
    with pytest.raises(ValueError, match="executor must be one of"):
        run_stages(["emotion_conv5"], tmp_path, TINY, executor=Executor("slurm"), progress=False)


def test_thread_share_follows_the_other_active_stage_runs() -> None:
    """Alone a stage-run takes every CPU; with another artlib stage-run active it takes its share; explicit wins."""
    cpus = threads.available_cpus()
    with threads.cpu_share() as alone:
        assert alone == cpus
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    marker = threads._registry() / f"{other.pid}.pid"
    marker.touch()
    try:
        with threads.cpu_share() as shared:
            assert shared == max(1, cpus // 2)
        with threads.cpu_share(3) as explicit:
            assert explicit == 3
    finally:
        other.kill()
        other.wait()
        marker.unlink(missing_ok=True)
    assert threads.active_runs() == 1  # the dead process's entry is ignored


def test_the_test_pass_spares_one_core_for_the_model_writer_where_torch_takes_every_core() -> None:
    """Within the block torch has one thread fewer where its threads took every core (never none); with fewer threads
    than cores one is free already and nothing changes; after it, the count it had."""
    import torch

    before, cpus = torch.get_num_threads(), threads.available_cpus()
    try:
        for count, expected in ((cpus + 1, cpus), (cpus, max(1, cpus - 1)), (1, 1)):
            torch.set_num_threads(count)
            with threads.one_core_spared() as used:
                assert used == torch.get_num_threads() == expected
            assert torch.get_num_threads() == count
        if cpus > 2:
            torch.set_num_threads(cpus - 1)
            with threads.one_core_spared() as used:
                assert used == cpus - 1
    finally:
        torch.set_num_threads(before)


def test_two_runs_with_every_core_score_the_test_paintings_identically(tiny_prepared: Path, tmp_path: Path) -> None:
    """With torch's threads on every core the test pass scores on one thread fewer; two such runs of the same
    stage-run still write byte-identical predictions and equal results rows."""
    cpus = threads.available_cpus()
    outputs = []
    for name in ("a", "b"):
        run_dir = new_run_dir(tiny_prepared, tmp_path / name)
        row = run_stages(["emotion_conv5"], run_dir, TINY, seeds=[0], progress=False,
                         executor=Executor(cpus=cpus)).iloc[-1].to_dict()
        predictions = rundir.stage_file(run_dir, "emotion_conv5", 0, "predictions.csv").read_bytes()
        outputs.append(({k: v for k, v in row.items() if k not in ("train_seconds", "cache_seconds")}, predictions))
    assert outputs[0] == outputs[1]
    assert int(outputs[0][0]["threads"]) == cpus


@pytest.mark.slow
def test_plan_cache_bytes_are_the_bytes_the_caches_take(tiny_prepared: Path, tmp_path: Path) -> None:
    """The plan's feature-cache bytes (shared caches counted once) equal the .npy files training then writes."""
    run_dir = new_run_dir(tiny_prepared, tmp_path / "run")
    names = ["genre_conv4_then_emotion_conv5", "emotion_conv5", "emotion_conv45"]
    plan = run_stages(names, run_dir, TINY, seeds=[0, 1], plan=True, progress=False)
    assert not rundir.results(run_dir).exists()  # nothing trained
    assert len(plan) == 8 and plan["cache_shared"].sum() == 0  # random init: every seed's frozen prefix is its own
    shared = run_stages(names, run_dir, replace(TINY, weights="self-supervised"), seeds=[0, 1], plan=True,
                        progress=False) if self_supervised_available() else None
    if shared is not None:
        assert shared["cache_shared"].sum() == 3  # pretrained prefixes: seed 1 reuses seed 0's caches
    run_stages(names, run_dir, TINY, seeds=[0, 1], progress=False)
    written = sum(p.stat().st_size for p in rundir.cache_dir(run_dir).glob("features_*.npy"))
    assert abs(plan["cache_bytes"].sum() - written) <= 0.05 * written
    assert plan["cache_bytes"].sum() == written


@pytest.mark.slow
def test_plan_of_80k_paintings_prints_in_under_30_s(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--plan on an 80,000-painting manifest at 224 px: printed in under 30 s, with tens of GB of caches."""
    rng = np.random.default_rng(0)
    n = 80_000
    manifest = pd.DataFrame({"image_path": [f"Baroque/p{i}.jpg" for i in range(n)],
                             "era": rng.choice(["Renaissance", "Post-Renaissance", "Modern", "Contemporary"], n),
                             "emotion": rng.choice(["positive", "negative", ""], n, p=[0.4, 0.2, 0.4]),
                             "split": rng.choice(["train", "val", "test"], n, p=[0.7, 0.15, 0.15])})
    tmp_path.mkdir(exist_ok=True)
    manifest.to_csv(rundir.manifest(tmp_path), index=False)
    t0 = time.perf_counter()
    plan = run_stages(["genre_conv4_then_emotion_conv5", "emotion_conv45"], tmp_path,
                      TrainConfig(image_size=224, weights="none", device="cpu"), seeds=[0, 1, 2], plan=True)
    assert time.perf_counter() - t0 < 30
    assert "estimated time" in capsys.readouterr().out
    assert plan["cache_bytes"].sum() > 10e9  # conv4 inputs of ~48k paintings at 224 px alone: ~38 GB in float16
