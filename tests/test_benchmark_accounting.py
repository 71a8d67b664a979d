"""benchmarks/train_throughput.py's accounting of the wall time: the checkpoint's cost includes the slowdown its
background write causes in the validation pass it overlaps (issue 21's overhead share is computed with it)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str = "train_throughput") -> ModuleType:
    """benchmarks/<name>.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tt = _load()


def test_the_validation_slowdown_of_overlapping_checkpoint_writes_is_charged_to_checkpoints() -> None:
    """Three epochs wrote a checkpoint during validation (0.15, 0.16, 0.14 s: the first is left out as cold, the
    median of the others is 0.15), the last did not (0.08 s): 3 x 0.07 = 0.21 s of validation was the checkpoint's;
    the shares move it and the outside share grows by it."""
    history = pd.DataFrame({"val_seconds": [0.15, 0.16, 0.14, 0.08], "checkpoint_seconds": [0.01, 0.01, 0.01, 0.0]})
    assert tt.checkpoint_overlap(history) == pytest.approx(0.21)
    timing = {"startup_seconds": 0.1, "model_seconds": 0.2, "image_cache_seconds": 1.0, "feature_cache_seconds": 1.0,
              "training_seconds": 6.0, "validation_seconds": 0.53, "checkpoint_seconds": 0.03, "test_seconds": 0.1}
    out = tt.row_timing({"timing": timing}, {}, wall=10.0, history=history)
    assert out["validation_part_seconds"] == pytest.approx(0.32)
    assert out["checkpoint_part_seconds"] == pytest.approx(0.24)
    assert out["share_outside_epochs_and_cache"] == pytest.approx(1 - (1.0 + 1.0 + 6.0 + 0.32) / 10.0)
    assert tt.row_timing({"timing": timing}, {}, wall=10.0)["checkpoint_part_seconds"] == pytest.approx(0.03)
    # nothing to compare with (every epoch wrote one), or validation faster while writing: no charge
    assert tt.checkpoint_overlap(history.iloc[:3]) == 0.0
    faster = pd.DataFrame({"val_seconds": [0.07, 0.08], "checkpoint_seconds": [0.01, 0.0]})
    assert tt.checkpoint_overlap(faster) == 0.0
    resumed = pd.DataFrame({"val_seconds": [0.5, 0.15, 0.16, 0.08], "checkpoint_seconds": [None, 0.01, 0.01, 0.0]})
    assert tt.checkpoint_overlap(resumed) == pytest.approx(2 * (0.16 - 0.08))  # the unknown first row is left out


def test_repeated_rounds_give_each_stages_median_and_range() -> None:
    """Three rounds: the median and the extremes of each value, per stage."""
    rounds = [[{"stage": "emotion_conv5", "epoch_efficiency": e, "share_outside_epochs_and_cache": s}]
              for e, s in ((0.9, 0.08), (0.96, 0.07), (0.93, 0.10))]
    (summary,) = tt.summarize_rounds(rounds)
    assert summary["rounds"] == 3
    assert (summary["epoch_efficiency"], summary["epoch_efficiency_min"], summary["epoch_efficiency_max"]) == \
        (0.93, 0.9, 0.96)
    assert summary["share_outside_epochs_and_cache"] == 0.08


@pytest.mark.parametrize(("label", "spec", "option"), [
    ("self-supervised:imgsim-0.1.2", "auto", "self-supervised"),  # auto fell back (offline): no download per row
    ("imagenet:IMAGENET1K_V2", "auto", "imagenet"),
    ("random", "none", "none"),
    ("file:model.pth", "/data/model.pth", "/data/model.pth"),
])
def test_rows_get_the_weights_the_benchmark_resolved_without_asking_the_network_again(label: str, spec: str,
                                                                                      option: str) -> None:
    """The rows' weights option resolves to the same weights (same label), never through another download try."""
    from artlib.models.weights import Weights

    assert tt.option_for(Weights(label=label, source="x"), spec) == option


def test_cache_building_is_compared_with_the_decode_and_prefix_limits_added() -> None:
    """400 images: the image cache took 2.0 s where the decode limit took 1.8 s (90%); the feature cache 1.0 s where
    the prefix limit runs 500 img/s (0.8 s: 80%); the whole cache 3.0 s against 1.8 + 0.8 = 2.6 s of limits (86.7%).
    Another stage's limits are not used. A scaling row with twice the images at the same rates gets the same
    efficiencies (rates are compared, not seconds)."""
    row = {"pipeline": "artlib", "stage": "emotion_conv5", "n_task": 400, "n_train": 300, "epochs_run": 10,
           "training_part_seconds": 10.0, "image_cache_part_seconds": 2.0, "feature_cache_part_seconds": 1.0,
           "feature_cache": True}
    limits = [{"stage": "emotion_conv5", "limit": "decode", "median_seconds": 1.8, "images_per_s": 400 / 1.8},
              {"stage": "emotion_conv5", "limit": "prefix_forward", "images_per_s": 500.0},
              {"stage": "emotion_conv5", "limit": "paired_whole_cache", "efficiency": 0.91, "efficiency_cold": 0.8},
              {"stage": "emotion_conv45", "limit": "decode", "median_seconds": 0.1, "images_per_s": 4000.0}]
    scaled = {**row, "n_task": 800, "image_cache_part_seconds": 4.0, "feature_cache_part_seconds": 2.0}
    tt.add_efficiency([row, scaled], limits)
    for r in (row, scaled):
        assert r["image_cache_efficiency"] == pytest.approx(0.9)
        assert r["feature_cache_efficiency"] == pytest.approx(0.8)
        assert r["whole_cache_efficiency"] == pytest.approx(2.6 / 3.0)
        assert r["decode_limit_images_per_s"] == pytest.approx(400 / 1.8)
        assert (r["paired_whole_cache_efficiency"], r["paired_whole_cache_efficiency_cold"]) == (0.91, 0.8)


def test_the_decode_limit_decodes_the_files_a_stage_runs_image_cache_decoded(tiny_data: tuple[Path, Path],
                                                                           run_dir: Path) -> None:
    """The decode limit's files are exactly the rows the stage-run's image cache filled, and it goes through every one
    of them in every round: in this process below 64 files, as the image cache decodes so few; with 64 or more, in a
    pool of the processes asked for, started before the timing."""
    from dataclasses import replace

    from conftest import TINY, train_one

    from artlib import rundir
    from artlib.data.manifest import read_manifest
    from artlib.train.cachefile import CacheFile
    from artlib.train.imagecache import open_cache, uses_pool

    limits = _load("limits")
    root, prepared = tiny_data
    train_one("emotion_conv5", run_dir, replace(TINY, epochs=1), progress=False)
    (sidecar,) = rundir.cache_dir(run_dir).glob(f"images_{TINY.image_size}px_*.json")
    manifest = read_manifest(rundir.manifest(run_dir))
    cache = open_cache(CacheFile(sidecar.with_suffix(".npy"), json.loads(sidecar.read_text())["key"]), len(manifest),
                       TINY.image_size)
    assert cache is not None and 0 < int(cache.filled.sum()) < len(manifest)  # the emotion rows, not every row
    decoded = sorted(str(root / "archive" / p) for p in manifest["image_path"].to_numpy()[cache.filled])
    assert sorted(limits.stage_image_files(prepared, root / "archive", "emotion_conv5")) == decoded
    job = {"prepared": str(prepared), "archive": str(root / "archive"), "stage": "emotion_conv5",
           "image_size": TINY.image_size, "workers": 2, "rounds": 2}
    out = limits.decode_limit(job)
    assert not uses_pool(2, len(decoded)) and (out["n_images"], out["calls"], out["threads"], out["processes_used"]) == \
        (len(decoded), 2, 1, 1)
    every = [str(root / "archive" / p) for p in manifest["image_path"]]
    assert uses_pool(2, len(every))
    with limits.bare_decoder(every, TINY.image_size, True, 2) as (decode, workers):
        assert workers == 2 and 1 <= decode() <= 2  # (on a busy machine one process may take every batch of 8)
    assert out["images_per_s"] == pytest.approx(len(decoded) / out["median_seconds"])


def test_the_paired_whole_cache_builds_artlibs_caches_and_times_the_bare_limits_in_turn(
        tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    """Each round times artlib's image and feature caches for the stage's rows and the bare decode and prefix forward,
    artlib first in every other round; the efficiency is the median of the rounds' limit / artlib seconds, and every
    round builds its caches afresh, in a folder of its own (none is left behind)."""
    from conftest import TINY

    limits = _load("limits")
    built: list[tuple[str, int, float]] = []
    real = limits.build_image_cache

    def recorded(archive: str, paths: list[str], size: int, folder: str, **options: object) -> object:
        """artlib's build_image_cache, noting the folder, the rows and the seconds it decoded for."""
        cache = real(archive, paths, size, folder, **options)
        built.append((str(folder), int(cache.filled.sum()), cache.seconds))
        return cache

    limits.build_image_cache = recorded
    root, prepared = tiny_data
    job = {"prepared": str(prepared), "archive": str(root / "archive"), "stage": "emotion_conv5",
           "image_size": TINY.image_size, "workers": 1, "draft": True, "threads": 1, "precision": "fp32",
           "inference_batch": 16, "weights": "none", "seed": 0, "tmp_dir": str(tmp_path), "rounds": 3}
    out = limits.paired_whole_cache(job)
    assert out["calls"] == 3 and [list(r)[:2] for r in out["rounds"]] == [["artlib", "limit"], ["limit", "artlib"],
                                                                         ["artlib", "limit"]]
    ratios = sorted(r["limit"] / r["artlib"] for r in out["rounds"])
    assert out["efficiency"] == pytest.approx(ratios[1]) and out["efficiency_cold"] == pytest.approx(
        out["rounds"][0]["limit"] / out["rounds"][0]["artlib"])
    assert out["images_per_s"] == pytest.approx(len(limits.stage_rows(prepared, "emotion_conv5")[1]) /
                                                out["median_seconds"])
    assert list(tmp_path.iterdir()) == []
    rows = len(limits.stage_rows(prepared, "emotion_conv5")[1])
    assert len({folder for folder, _, _ in built}) == 3 and all(n == rows and sec > 0 for _, n, sec in built)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_a_row_process_ends_when_the_benchmark_that_started_it_is_killed(tmp_path: Path) -> None:
    """A killed benchmark leaves no row running beside the next benchmark's rows (which it would slow)."""
    import os
    import signal
    import subprocess
    import time

    ready, child_pid = tmp_path / "ready", tmp_path / "child.pid"
    child = (f"import os, sys, time; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import train_throughput as tt; "
             f"tt._die_with_parent(int(sys.argv[1])); open({str(child_pid)!r}, 'w').write(str(os.getpid())); "
             f"open({str(ready)!r}, 'w').close(); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", f"import os, subprocess, sys, time; "
                               f"subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid())]); time.sleep(120)"])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.05)
        assert ready.exists(), "the row process did not start"
        pid = int(child_pid.read_text())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # gone (reaped by init)
        if Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return  # dead, waiting to be reaped
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the row process outlived the benchmark that started it")


def test_a_row_process_is_told_which_process_to_die_with(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_in_fresh_process hands the row its parent's pid (which _child needs before anything else): a job of an
    unknown kind gets as far as its dispatch, and its error comes back, not a dead process."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # where the spawned process finds the benchmark
    with pytest.raises(RuntimeError, match="has no attribute 'no_such_kind'"):
        tt.run_in_fresh_process({"kind": "no_such_kind", "stage": "emotion_conv5"})
