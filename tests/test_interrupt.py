"""Issue #6, interruptions: a stage killed with SIGKILL (mid-epoch, mid-checkpoint or mid-cache) resumes to the
uninterrupted result; a failing notebook stops the series, keeping its partly executed copy.

The killed stage runs in a subprocess. Its only change is a sleep (in validation, per feature batch, or per write
into epoch 2's checkpoint slot) that widens the window in which the parent kills it, so the kill lands where
intended on a slow or busy machine; the numbers it computes are untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from artlib.models import checkpoints
from artlib.data.demo import DemoSpec, generate
from artlib.data.prepare import PrepareConfig, prepare
from artlib.results import read_results
from conftest import train_one
from artlib.rundir import stage_dir
from artlib.train.config import TrainConfig
from conftest import new_run_dir

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")

REPO = Path(__file__).resolve().parent.parent
STAGE = "emotion_conv5"
CONFIG = TrainConfig(image_size=32, epochs=4, batch_size=16, lr=1e-4, weights="none", precision="fp32", workers=1,
                     patience=None)
THREADS = 1  # the killed child, the resumed run and the clean run use the same intra-op threads: same floats
POLL_S = 0.02
TIMEOUT_S = 180.0

CHILD = """
import contextlib, sys, time
import torch
torch.set_num_threads({threads})
import artlib.train.features, artlib.train.loop
from artlib.train.driver import run_stages
from artlib.train.config import TrainConfig

if sys.argv[2] == "slot":
    import os
    pwrite = os.pwrite
    def slow_pwrite(fd, data, offset):
        if os.readlink(f"/proc/self/fd/{{fd}}").endswith(("slot1-0.safetensors", "slot1-1.safetensors")):
            time.sleep({sleep} / 20)  # epoch 2's slot is written slowly: the parent kills in the middle of it
        return pwrite(fd, data, offset)
    os.pwrite = slow_pwrite
elif sys.argv[2] == "epoch":
    evaluate = artlib.train.loop.evaluate
    def slow_evaluate(*args, **kwargs):
        time.sleep({sleep})  # every epoch lasts a while: the parent kills during epoch 2
        return evaluate(*args, **kwargs)
    artlib.train.loop.evaluate = slow_evaluate
else:
    autocast = artlib.train.features.autocast
    @contextlib.contextmanager
    def slow_autocast(*args, **kwargs):
        time.sleep({sleep})  # every feature batch lasts a while: the parent kills during the cache build
        with autocast(*args, **kwargs):
            yield
    artlib.train.features.autocast = slow_autocast
run_stages([{stage!r}], sys.argv[1], {config!r}, seeds=[0], progress=False)
print("finished", flush=True)
"""


@pytest.fixture(scope="module", autouse=True)
def torch_threads() -> Iterator[None]:
    """The in-process runs use THREADS intra-op threads, like the child."""
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo data root prepared once (manifest.csv and prepare_report.json)."""
    root = tmp_path_factory.mktemp("interrupt-data") / "root"
    generate(root, DemoSpec(seed=3, scale=0.35, min_side=40, max_side=64, large_side=300))
    out = tmp_path_factory.mktemp("interrupt-prepared")
    prepare(root, out, PrepareConfig(seed=0, workers=1), progress=False)
    return out


def final_row(run_dir: Path) -> dict:
    """The stage's results row without timing columns."""
    row = read_results(run_dir).set_index(["stage", "seed"]).loc[(STAGE, 0)].to_dict()
    return {k: v for k, v in row.items() if not k.endswith("_seconds")}


def history(run_dir: Path) -> pd.DataFrame:
    """The stage's history.csv without the timing columns."""
    frame = pd.read_csv(stage_dir(run_dir, STAGE, 0) / "history.csv")
    return frame.drop(columns=[c for c in frame.columns if c.endswith("seconds")])


@pytest.fixture(scope="module")
def clean(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted reference run, in its own run directory."""
    run_dir = new_run_dir(prepared, tmp_path_factory.mktemp("interrupt-clean") / "run")
    train_one(STAGE, run_dir, CONFIG, seed=0, progress=False)
    return run_dir


def kill_when(run_dir: Path, mode: str, ready: Callable[[], bool], tmp_path: Path, sleep: float) -> None:
    """Start the stage in a child process, SIGKILL it as soon as ``ready()`` holds, and reap it."""
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(threads=THREADS, sleep=sleep, stage=STAGE, config=CONFIG))
    log = tmp_path / "child.log"
    with open(log, "wb") as out:
        # the script's folder, not cwd, leads sys.path: PYTHONPATH makes the child import this checkout's artlib
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen([sys.executable, str(script), str(run_dir), mode], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"the child ended (exit {proc.returncode}) before the kill point:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the kill point was not reached in {TIMEOUT_S:.0f} s:\n{log.read_text()}")
            time.sleep(POLL_S)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    assert "finished" not in log.read_text()


def test_sigkill_mid_epoch_resumes_to_the_same_result(prepared: Path, clean: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """Killed during epoch 2 (epoch 1's checkpoint on disk), the rerun resumes at epoch 1 and ends as the clean run."""
    run_dir = new_run_dir(prepared, tmp_path / "run")
    folder = stage_dir(run_dir, STAGE, 0)
    kill_when(run_dir, "epoch", lambda: (folder / "checkpoint.pt").is_file(), tmp_path, sleep=2.0)
    # The first checkpoint is epoch 1's (written atomically: complete or absent); nothing finished.
    assert checkpoints.load(folder / "checkpoint.pt")["epoch"] == 1
    assert not (folder / "metrics.json").exists() and not (run_dir / "results.csv").exists()
    # A kill while saving would leave a temporary file beside it (here made by hand): the rerun removes it.
    stale = folder / ".checkpoint.pt.k1ll3d.tmp.pt"
    stale.write_bytes(b"half a checkpoint")
    capsys.readouterr()
    train_one(STAGE, run_dir, CONFIG, seed=0, progress=False)
    assert f"resuming from epoch 1 of 4 ({folder / 'checkpoint.pt'})" in capsys.readouterr().out
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == 1
    assert final_row(run_dir) == final_row(clean)
    pd.testing.assert_frame_equal(history(run_dir), history(clean))
    assert len(read_results(run_dir)) == 1
    assert not (folder / "checkpoint.pt").exists() and not stale.exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the child finds the slot's file name in /proc")
def test_sigkill_while_an_epochs_state_is_written_loses_only_that_epoch(prepared: Path, clean: Path,
                                                                        tmp_path: Path) -> None:
    """Killed while epoch 2's slot is half written (right after its training pass), the rerun resumes from epoch 1:
    the record and the slot it names were not touched, and the result matches the clean run."""
    run_dir = new_run_dir(prepared, tmp_path / "run")
    folder = stage_dir(run_dir, STAGE, 0)
    slot1 = folder / "checkpoint-slot1-0.safetensors"  # the first file of epoch 2's slot
    kill_when(run_dir, "slot", lambda: slot1.is_file() and slot1.stat().st_size > 1 << 20, tmp_path, sleep=1.0)
    record = checkpoints.load(folder / "checkpoint.pt")
    assert record["epoch"] == 1 and record["state"]["slot"] == 0
    assert slot1.stat().st_size < record["state"]["parts"][0]["bytes"]  # cut short
    with slot1.open("rb") as fh:
        assert fh.read(8) == bytes(8)  # and without its header, which is written last
    train_one(STAGE, run_dir, CONFIG, seed=0, progress=False)
    assert json.loads((folder / "metrics.json").read_text())["resumed_from_epoch"] == 1
    assert final_row(run_dir) == final_row(clean)
    pd.testing.assert_frame_equal(history(run_dir), history(clean))
    assert not list(folder.glob("checkpoint*"))


def test_sigkill_while_caching_features_rebuilds_and_gives_the_same_result(prepared: Path, clean: Path,
                                                                          tmp_path: Path) -> None:
    """Killed while the feature cache is being written, the rerun discards the partial file, rebuilds, and matches."""
    run_dir = new_run_dir(prepared, tmp_path / "run")
    cache = run_dir / "cache"

    def building() -> bool:
        """True once the feature cache's temporary file exists (the build has started writing)."""
        return cache.is_dir() and any(cache.glob(".features_*.tmp*"))

    kill_when(run_dir, "features", building, tmp_path, sleep=1.0)
    assert list(cache.glob(".features_*.tmp*"))  # the partial file is still there…
    assert not list(cache.glob("features_*.json"))  # …and no cache was marked complete
    assert not (stage_dir(run_dir, STAGE, 0) / "checkpoint.pt").exists()
    train_one(STAGE, run_dir, CONFIG, seed=0, progress=False)
    assert not list(cache.glob(".features_*"))  # discarded
    assert len(list(cache.glob("features_*.json"))) == 1  # rebuilt and marked complete
    metrics = json.loads((stage_dir(run_dir, STAGE, 0) / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == 0
    assert final_row(run_dir) == final_row(clean)
    pd.testing.assert_frame_equal(history(run_dir), history(clean))


# --- the notebook series ------------------------------------------------------------------------

def _notebook(path: Path, *cells: str) -> Path:
    """Write a python3 notebook whose first cell is the tagged parameters cell, then ``cells``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('run_dir = "unset"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, path)
    return path


def test_series_stops_at_the_first_failing_notebook(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The second notebook raises: the third never runs; the partial copy is kept; its path and error are reported."""
    from artlib.series import run_series

    src = tmp_path / "src"
    src.mkdir()
    marker = tmp_path / "third-ran"
    notebooks = [
        _notebook(src / "01_ok.ipynb", "from pathlib import Path", "Path(run_dir, 'first.txt').write_text('ok')"),
        _notebook(src / "02_fails.ipynb", "print('before the failure')", "raise ValueError('boom')",
                  "print('never printed')"),
        _notebook(src / "03_never.ipynb", f"open({str(marker)!r}, 'w').close()"),
    ]
    run_dir = tmp_path / "run"
    result = run_series(run_dir, {"seeds": [0]}, notebooks=notebooks, html=False)
    out_dir = run_dir / "notebooks"
    failed = out_dir / "02_fails.ipynb"
    assert result.executed == [out_dir / "01_ok.ipynb"]
    assert (run_dir / "first.txt").read_text() == "ok"  # the first notebook ran with run_dir injected
    assert result.failed == failed and failed.is_file()
    assert result.error.endswith("ValueError: boom") and result.error.startswith("cell ")
    assert not marker.exists() and not (out_dir / "03_never.ipynb").exists()
    assert not (run_dir / "report").exists()
    printed = capsys.readouterr().out
    assert f"✗ 02_fails.ipynb failed — {result.error}" in printed
    assert f"the partially executed notebook is kept at {failed}" in printed
    # The kept copy shows what ran: output before the failure, the error, nothing after it.
    import nbformat

    cells = [c for c in nbformat.read(failed, as_version=4).cells if c.cell_type == "code"]
    texts = ["".join(o.get("text", "") for o in c.get("outputs", [])) for c in cells]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert any("before the failure" in t for t in texts)
    assert not any("never printed" in t for t in texts)
    assert [(e["ename"], e["evalue"]) for e in errors] == [("ValueError", "boom")]
