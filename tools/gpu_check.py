"""GPU check (``make gpu-check``): artlib's public command line timed on one NVIDIA GPU, written to one JSON.

    python tools/gpu_check.py [--paintings 2000] [--epochs 10] [--out runs/gpu-check/gpu_check.json]

Without CUDA it exits with status 2 and one line on stderr, before any work. With CUDA, in a fresh work
folder (default runs/gpu-check/work; relative paths are taken from the repository root):

1. ``demo-data`` generates about ``--paintings`` synthetic paintings (nothing is downloaded), ``prepare`` makes
   a run directory;
2. ``train --plan`` for configuration 1, seeds 0 1 2 at 224 px on CUDA (its predicted time is recorded), then
   the same ``train`` for real;
3. ``emotion_conv5`` and ``emotion_conv45`` (independent stages) with a fresh seed, each alone, then both with
   another fresh seed on Ray sharing the GPU (``--executor ray --gpus-per-stage 0.5``).

Every step is a ``python -m artlib …`` subprocess; the JSON is built only from what artlib writes (results.csv,
stages/<stage>/seed_<n>/metrics.json) and prints (the plan's table). A number artlib does not record is null in
the JSON, with a note, never estimated. Anything wrong (a step's non-zero exit, a missing file, a NaN test
accuracy) stops the check with a non-zero status and one line naming it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this tree's artlib, the one the subprocesses run

PAINTINGS_AT_SCALE_1 = 329
"""Paintings ``demo-data --scale 1`` writes (demo generator v5; the count it prints is recorded and checked)."""
GRID_STAGES_SEEDS = (0, 1, 2)
PAIR = ("emotion_conv5", "emotion_conv45")  # independent of each other: both start from the pretrained backbone
ALONE_SEED, PAIR_SEED = 3, 4
BACKBONE, BACKBONE_SEED = "clip_vit_b16", 5
BACKBONE_STAGES = ("genre_conv4", "emotion_conv5", "genre_conv4_then_emotion_conv5", "emotion_probe")
"""Configuration 1 and the linear probe on CLIP's image tower at 224 px (issue 20's GPU measurement)."""
IMAGE_SIZE = 224
BUDGET_SECONDS = 480  # the check's target on one H100/H200
WORK_MARKER = ".gpu-check-work"
EPOCHS_CHOICE = ("10 epochs, early stopping off (--patience = epochs) so every stage-run runs them all and the "
                 "plan's prediction (which assumes all epochs) is comparable: an estimate, not a measurement, put "
                 "~2,000 paintings x 9 stage-runs at 224 px under ~3 minutes on an H100 (compute is seconds per "
                 "epoch; each epoch's fsynced checkpoint of the trainable blocks and Adam state, ~0.1-0.3 GB, is "
                 "likely the larger cost), leaving room for data generation, prepare, the plan and the Ray pair "
                 "within 8 minutes. The JSON's total_seconds says whether it held.")
NOT_RECORDED = {
    "peak_gpu_memory_mib": "artlib does not record a stage-run's peak GPU memory (not in results.csv or metrics.json); "
                           "the phases' nvidia-smi peaks (whole device) are the nearest figure",
    "feature_cache_gpu_resident": "artlib does not record whether a stage-run's feature cache was copied onto the GPU; "
                                  "plan_predicts_gpu_resident is the plan's answer (cache <= half the free memory "
                                  "when the plan ran)",
}


class CheckFailed(Exception):
    """Something the check relies on went wrong; the message is the one line printed."""


# ---- small, testable pieces ----------------------------------------------------------------
def scale_for(paintings: int, at_scale_1: int = PAINTINGS_AT_SCALE_1) -> float:
    """The ``demo-data --scale`` that writes about ``paintings`` paintings."""
    if paintings < 60:
        raise CheckFailed(f"--paintings {paintings}: too few for the demo generator; use at least 60")
    return round(paintings / at_scale_1, 2)


def parse_demo_count(stdout: str) -> int | None:
    """The number of paintings ``demo-data`` says it wrote, or None when its line is not there."""
    match = re.search(r"'paintings':\s*(\d+)", stdout)
    return int(match.group(1)) if match else None


def parse_plan(text: str) -> list[dict[str, Any]]:
    """The stage-run rows of ``train --plan``'s printed table: stage, backbone, seed, split seed, cache and time.

    Read from both ends of each line, by the header's names, because ``after`` and ``cache_from`` hold spaces or nothing.
    """
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.split()[:2] == ["order", "stage"]), None)
    if start is None:
        raise CheckFailed("train --plan printed no table (no line starting 'order stage'); see its log")
    header = lines[start].split()
    left_columns = header[: header.index("split_seed") + 1]  # order, stage, [backbone,] seed, split_seed: no spaces
    rows = []
    for line in lines[start + 1:]:
        tokens = line.split()
        if not tokens or not tokens[0].isdigit():
            break
        left, right = dict(zip(left_columns, tokens)), dict(zip(header[-4:], tokens[-4:]))
        rows.append({"stage": left["stage"], "seed": int(left["seed"]), "split_seed": int(left["split_seed"]),
                     "backbone": left.get("backbone", "resnet50"),
                     "cache_bytes": int(right["cache_bytes"]), "cache_shared": right["cache_shared"] == "True",
                     "gpu_bytes": int(right["gpu_bytes"]), "est_seconds": float(right["est_seconds"])})
    if not rows:
        raise CheckFailed("train --plan printed a table without stage-runs; see its log")
    return rows


def read_results(run_dir: Path) -> dict[tuple[str, int], dict[str, str]]:
    """results.csv's rows by (stage, seed), or CheckFailed when it is missing."""
    path = run_dir / "results.csv"
    if not path.is_file():
        raise CheckFailed(f"{path}: missing after training; the train step wrote no results (see its log)")
    with open(path, encoding="utf-8", newline="") as fh:
        return {(row["stage"], int(float(row["seed"]))): row for row in csv.DictReader(fh)}


def read_metrics(run_dir: Path, stage: str, seed: int, backbone: str = "resnet50") -> dict[str, Any]:
    """A stage-run's metrics.json, or CheckFailed naming the missing or damaged file."""
    folder = run_dir / "stages" / stage if backbone == "resnet50" else run_dir / "stages" / stage / backbone
    path = folder / f"seed_{seed}" / "metrics.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckFailed(f"{path}: missing; stage-run {stage} seed {seed} did not finish (see the train log)") from None
    except ValueError as exc:
        raise CheckFailed(f"{path}: damaged ({exc}); rerun the check") from None


def _number(value: Any) -> float | None:
    """A float from a CSV/JSON field, or None when empty or absent (NaN stays NaN)."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    return float(value)


def _count(value: Any) -> int | None:
    """An integer from a CSV/JSON field (``'70'``, ``70.0``), or None when empty or absent."""
    number = _number(value)
    return None if number is None or math.isnan(number) else int(number)


def _rate(images: float | None, seconds: float | None) -> float | None:
    """images / seconds, rounded; None when either is unknown or the time is not positive."""
    if images is None or seconds is None or seconds <= 0:
        return None
    return round(images / seconds, 1)


def stage_record(phase: str, row: dict[str, str], metrics: dict[str, Any],
                 planned: dict[str, Any] | None = None) -> dict[str, Any]:
    """One stage-run's JSON record: accuracy, throughput derived from artlib's timings, device, precision, cache."""
    result = {**row, **{k: v for k, v in metrics.get("result", {}).items() if v is not None}}
    n_train, n_val, n_test, epochs_run = (_count(result.get(k)) for k in ("n_train", "n_val", "n_test", "epochs_run"))
    train_s, cache_s = _number(result.get("train_seconds")), _number(result.get("cache_seconds"))
    trained = None if n_train is None or epochs_run is None else n_train * epochs_run
    passed = None if trained is None or n_val is None else (n_train + n_val) * epochs_run
    cached = None if None in (n_train, n_val, n_test) else n_train + n_val + n_test
    precision, device = result.get("precision"), str(result.get("device", ""))
    record = {
        "phase": phase, "stage": result.get("stage"), "seed": int(float(result["seed"])),
        "configuration": result.get("configuration"), "accuracy": _number(result.get("accuracy")),
        "f1": _number(result.get("f1")), "balanced_accuracy": _number(result.get("balanced_accuracy")),
        "n_train": n_train, "n_val": n_val, "n_test": n_test, "epochs_run": epochs_run,
        "best_epoch": _count(result.get("best_epoch")), "train_seconds": train_s, "cache_seconds": cache_s,
        "train_images_per_s": _rate(trained, train_s), "epoch_images_per_s": _rate(passed, train_s),
        "cache_images_per_s": _rate(cached, cache_s),
        "device": device, "on_cuda": device.startswith("cuda"), "precision": precision, "bf16": precision == "bf16",
        "feature_cache": str(result.get("feature_cache")).lower() in ("true", "1"),
        "feature_cache_gpu_resident": None, "peak_gpu_memory_mib": None,
        "test_loss": _number(metrics.get("test_loss")),
    }
    if planned is not None:
        record.update(plan_est_seconds=planned["est_seconds"], plan_cache_shared=planned["cache_shared"],
                      plan_predicts_gpu_resident=planned["gpu_bytes"] > 0)
    return record


def check_accuracies(records: list[dict[str, Any]]) -> None:
    """CheckFailed naming the first stage-run whose test accuracy is missing or NaN."""
    for r in records:
        if r["accuracy"] is None or math.isnan(r["accuracy"]):
            raise CheckFailed(f"{r['phase']}: {r['stage']} seed {r['seed']} has test accuracy {r['accuracy']} "
                              f"(NaN or missing) in results.csv/metrics.json; training diverged or scored no paintings")


def compare_plan(planned: list[dict[str, Any]], records: list[dict[str, Any]], wall_seconds: float) -> dict[str, Any]:
    """The plan's predicted time against the measured one: per stage-run and for the whole grid (measured / predicted).

    The plan models cache building + epochs x (train + validation) + the test pass, so per stage-run it is
    compared with cache_seconds + train_seconds; the grid's CLI wall time (imports, model building,
    checkpoints included) is compared too.
    """
    by_key = {(r["stage"], r["seed"]): r for r in records}
    per_run, modelled = [], 0.0
    for p in planned:
        r = by_key[(p["stage"], p["seed"])]
        measured = (r["train_seconds"] or 0.0) + (r["cache_seconds"] or 0.0)
        modelled += measured
        per_run.append({"stage": p["stage"], "seed": p["seed"], "predicted_seconds": p["est_seconds"],
                        "measured_seconds": round(measured, 2), "ratio": _ratio(measured, p["est_seconds"])})
    predicted = round(sum(p["est_seconds"] for p in planned), 1)
    return {"predicted_seconds": predicted, "measured_cache_plus_train_seconds": round(modelled, 2),
            "ratio_cache_plus_train": _ratio(modelled, predicted), "measured_wall_seconds": round(wall_seconds, 2),
            "ratio_wall": _ratio(wall_seconds, predicted), "ratio_means": "measured / predicted (above 1: slower than "
            "planned)", "per_stage_run": per_run}


def _ratio(measured: float, predicted: float) -> float | None:
    """measured / predicted, rounded; None when nothing was predicted."""
    return round(measured / predicted, 3) if predicted > 0 else None


def compare_ray(alone: dict[str, float], pair_wall: float, alone_records: list[dict[str, Any]],
                pair_records: list[dict[str, Any]]) -> dict[str, Any]:
    """The Ray pair's wall time against the two stage-runs alone, and each stage-run's training time shared vs alone."""
    total = sum(alone.values())
    train_alone = {r["stage"]: r["train_seconds"] for r in alone_records}
    sharing = {r["stage"]: _ratio(r["train_seconds"] or 0.0, train_alone.get(r["stage"]) or 0.0) for r in pair_records}
    return {"alone_wall_seconds": {k: round(v, 2) for k, v in alone.items()}, "alone_sum_seconds": round(total, 2),
            "ray_pair_wall_seconds": round(pair_wall, 2), "ratio": _ratio(pair_wall, total),
            "training_slowdown_when_sharing": sharing,
            "note": "wall times of whole CLI calls: each alone run imports torch and artlib once; the Ray call also "
                    "starts a local Ray instance and its workers. training_slowdown_when_sharing: train_seconds on "
                    "Ray (GPU shared by two) / train_seconds alone, per stage; 1 = no slowdown, 2 = no gain"}


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write the report atomically (a reader sees the old file or the new one, never half)."""
    from artlib.atomic import write_json

    write_json(path, report)


# ---- running the command line ------------------------------------------------------------------
class GpuMemorySampler:
    """The whole device's peak used memory (MiB) while a step runs, from nvidia-smi every half second."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True) if shutil.which("nvidia-smi") else None

    def _loop(self) -> None:
        """Poll nvidia-smi until stopped; a failing call ends the sampling quietly (the peak stays what it was)."""
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i",
                                      os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"],
                                     capture_output=True, text=True, timeout=10, check=True).stdout
                self.peak = max(self.peak or 0, int(out.split()[0]))
            except (subprocess.SubprocessError, OSError, ValueError, IndexError):
                return
            self._stop.wait(0.5)

    def __enter__(self) -> GpuMemorySampler:
        """Start sampling."""
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)


def run_cli(name: str, args: list[str], logs: Path, deadline: float) -> tuple[float, str, int | None]:
    """Run ``python -m artlib ARGS`` to its end (log in ``logs/NAME.log``); its seconds, stdout and nvidia-smi peak.

    A non-zero exit or passing ``deadline`` prints the log's last lines and raises CheckFailed.
    """
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    command = [sys.executable, "-m", "artlib", *args]
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log, GpuMemorySampler() as sampler:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
                                start_new_session=True)
        try:
            stdout, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            _print_tail(log_path)
            raise CheckFailed(f"step {name} ran past the check's time limit and was stopped; raise --max-minutes or "
                              f"lower --paintings/--epochs (log: {log_path})") from None
        log.write(stdout)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        _print_tail(log_path)
        raise CheckFailed(f"step {name} (python -m artlib {args[0]}) exited with status {proc.returncode}; "
                          f"its last lines are above, the whole log in {log_path}")
    return seconds, stdout, sampler.peak


def _print_tail(path: Path, lines: int = 15) -> None:
    """The last lines of a step's log, on stderr."""
    tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    print("\n".join(f"  | {line}" for line in tail), file=sys.stderr)


def environment() -> dict[str, Any]:
    """Device name, torch/CUDA/cuDNN versions, Python, host and date."""
    import torch

    from artlib import __version__ as artlib_version

    return {"device_name": torch.cuda.get_device_name(0), "device_count": torch.cuda.device_count(),
            "device_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "python": platform.python_version(), "artlib": artlib_version, "host": platform.node(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def require_cuda() -> None:
    """Exit with status 2 and one line on stderr unless torch sees a CUDA device (before any work)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch

        available = torch.cuda.is_available()
    if not available:
        print("error: gpu-check needs an NVIDIA GPU with CUDA (torch.cuda.is_available() is false here); run "
              "`make gpu-check` on a machine with one (meant to take at most 8 minutes on one H100/H200)", file=sys.stderr)
        raise SystemExit(2)


def fresh_work_dir(work: Path) -> None:
    """Empty the work folder if this check made it (it holds the marker file); refuse any other non-empty folder."""
    if work.exists() and any(work.iterdir()):
        if not (work / WORK_MARKER).is_file():
            raise CheckFailed(f"{work}: exists and was not made by gpu-check; choose another --work-dir")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / WORK_MARKER).write_text("made by tools/gpu_check.py; emptied at the start of every check\n")


# ---- the check's phases ------------------------------------------------------------------------
def train_args(run: Path, what: list[str], seeds: tuple[int, ...], epochs: int, *extra: str) -> list[str]:
    """A ``train`` command line at 224 px on CUDA, every epoch run (no early stopping)."""
    return ["train", *what, "--run-dir", str(run), "--seeds", *map(str, seeds), "--image-size", str(IMAGE_SIZE),
            "--device", "cuda", "--weights", "self-supervised", "--epochs", str(epochs), "--patience", str(epochs),
            "--quiet", *extra]  # the offline weights make setup installs: nothing is downloaded


def collect(phase: str, run: Path, keys: list[tuple[str, int]],
            planned: dict[tuple[str, int], dict[str, Any]] | None = None,
            backbone: str = "resnet50") -> list[dict[str, Any]]:
    """The records of these stage-runs from results.csv and their metrics.json (CheckFailed when one is missing)."""
    rows = read_results(run)
    records = []
    for stage, seed in keys:
        if (stage, seed) not in rows:
            raise CheckFailed(f"{run / 'results.csv'}: no row for {stage} seed {seed} after {phase}; see its log")
        records.append(stage_record(phase, rows[(stage, seed)], read_metrics(run, stage, seed, backbone),
                                    (planned or {}).get((stage, seed))))
    check_accuracies(records)
    return records


def make_data(work: Path, paintings: int, logs: Path, deadline: float, phases: dict[str, Any]) -> tuple[Path, int]:
    """demo-data at the scale for ``paintings``, then prepare; returns the run directory and the paintings written."""
    data, run = work / "data", work / "run"
    seconds, out, _ = run_cli("demo_data", ["demo-data", str(data), "--scale", str(scale_for(paintings))], logs, deadline)
    written = parse_demo_count(out)
    if written is None:
        raise CheckFailed(f"demo-data did not print how many paintings it wrote; see {logs / 'demo_data.log'}")
    phases["demo_data"] = {"seconds": round(seconds, 2), "paintings": written}
    seconds, _, _ = run_cli("prepare", ["prepare", "--data-root", str(data), "--out", str(run), "--quiet"], logs, deadline)
    if not (run / "manifest.csv").is_file():
        raise CheckFailed(f"{run / 'manifest.csv'}: missing after prepare; see {logs / 'prepare.log'}")
    with open(run / "manifest.csv", encoding="utf-8") as fh:
        phases["prepare"] = {"seconds": round(seconds, 2), "manifest_paintings": sum(1 for _ in fh) - 1,
                             "images_per_s_including_startup": _rate(written, seconds)}
    return run, written


def run_grid(run: Path, epochs: int, logs: Path, deadline: float, phases: dict[str, Any]) -> dict[str, Any]:
    """Plan configuration 1 (seeds 0 1 2), train it, and compare the plan with what was measured."""
    args = train_args(run, ["--configuration", "1"], GRID_STAGES_SEEDS, epochs)
    seconds, out, peak = run_cli("plan", [*args, "--plan"], logs, deadline)
    planned = parse_plan(out)
    phases["plan"] = {"seconds": round(seconds, 2), "gpu_peak_mib_nvidia_smi": peak}
    seconds, _, peak = run_cli("train_grid", args, logs, deadline)
    phases["train_grid"] = {"seconds": round(seconds, 2), "gpu_peak_mib_nvidia_smi": peak,
                            "stage_runs": len(planned)}
    keys = [(p["stage"], p["seed"]) for p in planned]
    records = collect("train_grid", run, keys, {(p["stage"], p["seed"]): p for p in planned})
    return {"records": records, "plan_vs_measured": compare_plan(planned, records, seconds)}


def run_pair(run: Path, epochs: int, logs: Path, deadline: float, phases: dict[str, Any]) -> dict[str, Any]:
    """Each of the two independent stages alone (one seed), then both on Ray sharing the GPU (another seed)."""
    alone: dict[str, float] = {}
    for stage in PAIR:
        seconds, _, peak = run_cli(f"alone_{stage}", train_args(run, [stage], (ALONE_SEED,), epochs,
                                                                "--cpus-per-stage", "4"), logs, deadline)
        alone[stage] = seconds
        phases[f"alone_{stage}"] = {"seconds": round(seconds, 2), "gpu_peak_mib_nvidia_smi": peak}
    ray = train_args(run, list(PAIR), (PAIR_SEED,), epochs, "--executor", "ray", "--gpus-per-stage", "0.5",
                     "--cpus-per-stage", "4")
    seconds, _, peak = run_cli("ray_pair", ray, logs, deadline)
    phases["ray_pair"] = {"seconds": round(seconds, 2), "gpu_peak_mib_nvidia_smi": peak}
    alone_records = collect("alone", run, [(s, ALONE_SEED) for s in PAIR])
    pair_records = collect("ray_pair", run, [(s, PAIR_SEED) for s in PAIR])
    return {"records": alone_records + pair_records,
            "ray_vs_alone": compare_ray(alone, seconds, alone_records, pair_records)}


def run_backbone(run: Path, epochs: int, logs: Path, deadline: float, phases: dict[str, Any]) -> dict[str, Any]:
    """Configuration 1 and the emotion linear probe on CLIP's image tower (random weights: nothing downloaded)."""
    args = train_args(run, list(BACKBONE_STAGES), (BACKBONE_SEED,), epochs, "--backbone", BACKBONE, "--weights", "none")
    seconds, _, peak = run_cli("backbone", args, logs, deadline)
    phases["backbone"] = {"seconds": round(seconds, 2), "gpu_peak_mib_nvidia_smi": peak, "backbone": BACKBONE}
    return {"records": collect("backbone", run, [(s, BACKBONE_SEED) for s in BACKBONE_STAGES], backbone=BACKBONE)}


def notes() -> dict[str, str]:
    """What each derived number means, and what artlib does not record."""
    return {**NOT_RECORDED,
            "train_images_per_s": "n_train x epochs_run / train_seconds (results.csv); train_seconds is the epochs' "
                                  "own time on the cached features, each epoch's validation pass included, "
                                  "checkpoints not",
            "epoch_images_per_s": "(n_train + n_val) x epochs_run / train_seconds: every image an epoch passes",
            "cache_images_per_s": "(n_train + n_val + n_test) / cache_seconds: building the image cache and the "
                                  "feature cache of the task's rows; where an earlier stage-run built them "
                                  "(plan_cache_shared true, or a later seed of the same stage) cache_seconds is only "
                                  "opening them, so the figure means cache building only where the cache was new",
            "gpu_peak_mib_nvidia_smi": "the whole device's peak memory.used while a step ran (nvidia-smi every 0.5 s; "
                                       "null without nvidia-smi): all processes together, not one stage-run",
            "phase seconds": "wall time of the whole python -m artlib call, Python and torch imports included"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The check's options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Relative paths are taken from the repository root.")
    p.add_argument("--paintings", type=int, default=2000, help="about this many synthetic paintings (default 2000)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per stage-run, all run (default 10)")
    p.add_argument("--out", default="runs/gpu-check/gpu_check.json", help="the JSON to write")
    p.add_argument("--work-dir", default="runs/gpu-check/work", help="data and run directory (emptied first)")
    p.add_argument("--max-minutes", type=float, default=20.0, help="stop (and fail) after this long (default 20)")
    args = p.parse_args(argv)
    for name in ("out", "work_dir"):
        path = Path(getattr(args, name)).expanduser()
        setattr(args, name, path if path.is_absolute() else ROOT / path)
    return args


def check(args: argparse.Namespace) -> dict[str, Any]:
    """Run every phase and return the report (CheckFailed on anything wrong)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise CheckFailed("Ray is not installed; the check runs two stage-runs on Ray: pip install -e '.[ray]' "
                          "(make setup does)")
    t0, deadline = time.perf_counter(), time.monotonic() + 60 * args.max_minutes
    fresh_work_dir(args.work_dir)
    logs, phases = args.work_dir / "logs", {}
    run, written = make_data(args.work_dir, args.paintings, logs, deadline, phases)
    grid = run_grid(run, args.epochs, logs, deadline, phases)
    pair = run_pair(run, args.epochs, logs, deadline, phases)
    other = run_backbone(run, args.epochs, logs, deadline, phases)
    total = time.perf_counter() - t0
    report: dict[str, Any] = {"environment": environment()}  # after the steps: this process holds no CUDA context during them
    report.update(
        settings={"paintings_asked": args.paintings, "paintings_written": written, "scale": scale_for(args.paintings),
                  "image_size": IMAGE_SIZE, "epochs": args.epochs, "patience": args.epochs,
                  "epochs_choice": EPOCHS_CHOICE, "grid": "configuration 1, seeds 0 1 2", "pair": list(PAIR),
                  "alone_seed": ALONE_SEED, "pair_seed": PAIR_SEED, "gpus_per_stage": 0.5, "weights": "self-supervised",
                  "backbone_phase": {"backbone": BACKBONE, "stages": list(BACKBONE_STAGES), "seed": BACKBONE_SEED,
                                     "weights": "none (random: nothing downloaded)"},
                  "work_dir": str(args.work_dir)},
        phases=phases, stage_runs=grid["records"] + pair["records"] + other["records"],
        plan_vs_measured=grid["plan_vs_measured"],
        ray_vs_alone=pair["ray_vs_alone"], total_seconds=round(total, 1), budget_seconds=BUDGET_SECONDS,
        within_budget=total <= BUDGET_SECONDS, notes=notes())
    return report


def main(argv: list[str] | None = None) -> int:
    """Check for CUDA, run the check, write the JSON; one line on stderr and a non-zero status on failure."""
    args = parse_args(argv)
    require_cuda()
    try:
        report = check(args)
        write_report(args.out, report)
    except CheckFailed as exc:
        print(f"error: gpu-check failed: {exc}", file=sys.stderr)
        return 1
    grid = report["plan_vs_measured"]
    print(f"gpu-check on {report['environment']['device_name']}: {len(report['stage_runs'])} stage-runs, all accuracies "
          f"finite; plan {grid['predicted_seconds']} s vs measured {grid['measured_wall_seconds']} s; "
          f"total {report['total_seconds']} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
