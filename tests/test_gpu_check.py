"""tools/gpu_check.py on CPU: the no-CUDA exit, the record built from artlib's files, the plan comparison, failures."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "gpu_check.py"


def _load() -> ModuleType:
    """tools/gpu_check.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gc = _load()

PLAN_OUTPUT = """\
 order                          stage  seed  split_seed                after    task trains  n_train  n_val  n_test \
                              cache_from  cache_bytes  cache_shared  gpu_bytes  est_seconds
     1                    genre_conv4     0           0                        genre  conv4      226     51      46 \
          conv4 input, prefix pretrained     21168256         False   21168256        120.7
     2                  emotion_conv5     0           0                      emotion  conv5      129     30      26 \
          conv5 input, prefix pretrained      6062208         False          0         99.2
     3 genre_conv4_then_emotion_conv5     0           0 genre_conv4 (seed 0) emotion  conv5      129     30      26 \
conv5 input, prefix genre_conv4 (seed 0)      6062208         False          0         99.2
     4                  emotion_conv5     1           0                      emotion  conv5      129     30      26 \
          conv5 input, prefix pretrained            0          True          0         42.4

4 stage-runs (1 split seed(s)) on cuda: feature caches 0.03 GB + image cache 0.00 GB; 54.5 GB free in the run directory
estimated time: 0.10 h one after another; with N devices at least max(0.06 h critical path, 0.10 h / N) — an estimate
""".replace("\\\n", "")

RESULT = {"configuration": "1 sequential", "stage": "emotion_conv5", "seed": "0", "split_seed": "0",
          "accuracy": "0.75", "f1": "0.7", "balanced_accuracy": "0.72", "n_test": "40", "best_epoch": "8",
          "epochs_run": "10", "train_seconds": "4.0", "cache_seconds": "2.0", "n_train": "200", "n_val": "40",
          "device": "cuda", "precision": "bf16", "feature_cache": "True"}


def fabricate_run(run: Path, rows: list[dict[str, str]], metrics: bool = True) -> None:
    """A run directory with results.csv holding ``rows`` and (optionally) each row's metrics.json."""
    run.mkdir(parents=True, exist_ok=True)
    with open(run / "results.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for row in rows if metrics else []:
        folder = run / "stages" / row["stage"] / f"seed_{row['seed']}"
        folder.mkdir(parents=True, exist_ok=True)
        accuracy = float(row["accuracy"])
        result = {**row, "seed": int(row["seed"]), "accuracy": None if math.isnan(accuracy) else accuracy}
        (folder / "metrics.json").write_text(json.dumps({"result": result, "test_loss": 0.5}))


def test_without_cuda_it_exits_2_with_one_line_before_any_work(tmp_path: Path) -> None:
    """CUDA hidden: status 2, exactly one stderr line naming the need for an NVIDIA GPU, nothing written."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out, work = tmp_path / "check.json", tmp_path / "work"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--work-dir", str(work)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "NVIDIA GPU" in lines[0] and "make gpu-check" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not out.exists() and not work.exists()


def test_scale_gives_about_the_paintings_asked() -> None:
    """The demo scale times the paintings at scale 1 comes within 1% of the number asked; too few is refused."""
    assert abs(gc.scale_for(2000) * gc.PAINTINGS_AT_SCALE_1 - 2000) < 20
    with pytest.raises(gc.CheckFailed, match="too few"):
        gc.scale_for(10)
    out = "Wrote a SYNTHETIC demo data root to x: {'paintings': 2003, 'classes_rows': 1990, 'artemis_rows': 12000}"
    assert gc.parse_demo_count(out) == 2003 and gc.parse_demo_count("nothing") is None


def test_the_real_plan_printout_is_read_by_its_header(capsys: pytest.CaptureFixture[str]) -> None:
    """What artlib's own print_plan prints (a backbone column beside stage and seed) is read by column name."""
    import pandas as pd

    from artlib.train.plan import print_plan

    table = pd.DataFrame([{"order": 1, "stage": "emotion_probe", "backbone": "clip_vit_b16", "seed": 5, "split_seed": 0,
                           "after": "", "task": "emotion", "trains": "head", "n_train": 129, "n_val": 30,
                           "n_test": 26, "cache_from": "head input, prefix pretrained", "cache_bytes": 240000,
                           "cache_shared": False, "gpu_bytes": 240000, "est_seconds": 3.5}])
    table.attrs.update(device="cuda", image_bytes=0, free_bytes=10**10)
    print_plan(table)
    rows = gc.parse_plan(capsys.readouterr().out)
    assert [(r["stage"], r["backbone"], r["seed"], r["cache_bytes"], r["est_seconds"]) for r in rows] == [
        ("emotion_probe", "clip_vit_b16", 5, 240000, 3.5)]


def test_the_plan_table_is_read_from_both_ends() -> None:
    """Stage, seed and the right-hand columns are read although 'after' and 'cache_from' hold spaces or nothing."""
    rows = gc.parse_plan(PLAN_OUTPUT)
    assert [(r["stage"], r["seed"]) for r in rows] == [("genre_conv4", 0), ("emotion_conv5", 0),
                                                      ("genre_conv4_then_emotion_conv5", 0), ("emotion_conv5", 1)]
    assert rows[0]["gpu_bytes"] == 21168256 and rows[0]["est_seconds"] == 120.7
    assert rows[3]["cache_shared"] is True and rows[3]["cache_bytes"] == 0
    with pytest.raises(gc.CheckFailed, match="no table"):
        gc.parse_plan("error: something else")


def test_the_record_is_derived_from_results_and_metrics(tmp_path: Path) -> None:
    """img/s from n_train, epochs_run and the recorded seconds; device, bf16, cache; unrecorded numbers stay null."""
    fabricate_run(tmp_path, [RESULT])
    planned = {"stage": "emotion_conv5", "seed": 0, "est_seconds": 5.0, "cache_shared": False, "gpu_bytes": 10}
    [r] = gc.collect("train_grid", tmp_path, [("emotion_conv5", 0)], {("emotion_conv5", 0): planned})
    assert r["train_images_per_s"] == 500.0  # 200 x 10 / 4.0
    assert r["epoch_images_per_s"] == 600.0  # (200 + 40) x 10 / 4.0
    assert r["cache_images_per_s"] == 140.0  # (200 + 40 + 40) / 2.0
    assert (r["accuracy"], r["epochs_run"], r["test_loss"]) == (0.75, 10, 0.5)
    assert r["on_cuda"] and r["bf16"] and r["feature_cache"] and r["plan_predicts_gpu_resident"]
    assert r["peak_gpu_memory_mib"] is None and r["feature_cache_gpu_resident"] is None
    assert set(gc.NOT_RECORDED) <= set(gc.notes())


def test_missing_files_and_rows_fail_with_one_clear_message(tmp_path: Path) -> None:
    """No results.csv, no row for a stage-run, no metrics.json: each a CheckFailed naming what is missing."""
    with pytest.raises(gc.CheckFailed, match="results.csv: missing"):
        gc.collect("train_grid", tmp_path, [("emotion_conv5", 0)])
    fabricate_run(tmp_path, [RESULT], metrics=False)
    with pytest.raises(gc.CheckFailed, match="no row for emotion_conv5 seed 1"):
        gc.collect("train_grid", tmp_path, [("emotion_conv5", 1)])
    with pytest.raises(gc.CheckFailed, match="metrics.json: missing"):
        gc.collect("train_grid", tmp_path, [("emotion_conv5", 0)])


def test_a_nan_accuracy_fails_the_check(tmp_path: Path) -> None:
    """A stage-run whose test accuracy is NaN (null in metrics.json, nan in results.csv) stops the check."""
    fabricate_run(tmp_path, [RESULT, {**RESULT, "stage": "genre_conv4", "accuracy": "nan"}])
    with pytest.raises(gc.CheckFailed, match="genre_conv4 seed 0 has test accuracy nan"):
        gc.collect("train_grid", tmp_path, [("emotion_conv5", 0), ("genre_conv4", 0)])


def test_plan_against_measured() -> None:
    """Per stage-run and in total: measured (cache + train seconds) / predicted, and the CLI wall time / predicted."""
    planned = [{"stage": "a", "seed": 0, "est_seconds": 10.0}, {"stage": "b", "seed": 0, "est_seconds": 30.0}]
    records = [{"stage": "a", "seed": 0, "train_seconds": 4.0, "cache_seconds": 1.0},
               {"stage": "b", "seed": 0, "train_seconds": 15.0, "cache_seconds": None}]
    out = gc.compare_plan(planned, records, wall_seconds=60.0)
    assert out["predicted_seconds"] == 40.0 and out["measured_cache_plus_train_seconds"] == 20.0
    assert out["ratio_cache_plus_train"] == 0.5 and out["ratio_wall"] == 1.5
    assert [r["ratio"] for r in out["per_stage_run"]] == [0.5, 0.5]


def test_ray_pair_against_the_two_alone() -> None:
    """The pair's wall time over the sum alone; each stage's training time shared over alone."""
    alone = [{"stage": "x", "train_seconds": 10.0}, {"stage": "y", "train_seconds": 20.0}]
    pair = [{"stage": "x", "train_seconds": 15.0}, {"stage": "y", "train_seconds": 20.0}]
    out = gc.compare_ray({"x": 30.0, "y": 50.0}, 60.0, alone, pair)
    assert out["alone_sum_seconds"] == 80.0 and out["ratio"] == 0.75
    assert out["training_slowdown_when_sharing"] == {"x": 1.5, "y": 1.0}


def test_the_report_is_written_whole(tmp_path: Path) -> None:
    """One JSON file, NaN written as null, no temporary file left beside it."""
    path = tmp_path / "sub" / "gpu_check.json"
    gc.write_report(path, {"x": float("nan"), "y": [1, 2]})
    assert json.loads(path.read_text()) == {"x": None, "y": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["gpu_check.json"]


def test_a_failing_step_shows_its_last_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CLI step's non-zero exit: its log's last lines on stderr, a CheckFailed naming the step and status."""
    with pytest.raises(gc.CheckFailed, match=r"step train_x \(python -m artlib train\) exited with status 2"):
        gc.run_cli("train_x", ["train", "emotion_conv5", "--run-dir", str(tmp_path / "nothing")], tmp_path / "logs",
                   deadline=time.monotonic() + 120)
    assert "error:" in capsys.readouterr().err
    assert (tmp_path / "logs" / "train_x.log").is_file()


def test_main_turns_a_failure_into_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A failed check: status 1, one 'error: gpu-check failed: …' line, no JSON."""
    def fail(args: object) -> dict:
        """A check that fails at once."""
        raise gc.CheckFailed("something broke; do this")

    monkeypatch.setattr(gc, "require_cuda", lambda: None)
    monkeypatch.setattr(gc, "check", fail)
    assert gc.main(["--out", str(tmp_path / "c.json")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: gpu-check failed: something broke; do this"] and not (tmp_path / "c.json").exists()


def test_a_foreign_work_folder_is_never_emptied(tmp_path: Path) -> None:
    """A non-empty folder without the check's marker is refused; the check's own is emptied and marked again."""
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(gc.CheckFailed, match="not made by gpu-check"):
        gc.fresh_work_dir(tmp_path)
    assert (tmp_path / "mine.txt").exists()
    work = tmp_path / "work"
    gc.fresh_work_dir(work)
    (work / "old").write_text("stale")
    gc.fresh_work_dir(work)
    assert [p.name for p in work.iterdir()] == [gc.WORK_MARKER]
