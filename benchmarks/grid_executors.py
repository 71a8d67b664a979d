"""The demo grid on the local executor and on Ray (this machine's CPUs), timed in one run, results compared.

    python benchmarks/grid_executors.py [--configurations 1 3] [--seeds 0 1] [--skip-grid] [--out runs/bench/grid]

Prepares the demo data once, then trains the same stage-runs (TrainConfig defaults) three times in fresh run
directories: ``local`` (one stage-run after another, each with every core), ``ray`` (``executor="ray"`` as a user
runs it: a local Ray instance is started with every core, one CPU per stage-run, so stage-runs run side by side)
and ``local, 1 thread`` (the same thread count as each Ray task). It prints the wall times, their ratios, and
whether results.csv metrics and predictions.csv bytes are identical between Ray and each local run (torch's last
bits can depend on the thread count).

Then two independent stage-runs (one stage with each of ``--seeds``), in two sizes (``PAIRS``: the demo's tiny
stage-runs, and longer ones through public TrainConfig options): one after the other locally (every core each), and
side by side on a Ray instance that is already running (one CPU each; starting the instance is timed apart) — what
running them side by side costs once threads are not oversubscribed, and what Ray's per-task start costs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd

from artlib import log, rundir
from artlib.data.prepare import PrepareConfig, prepare
from artlib.data.roots import resolve_data_root
from artlib.paths import resolve_path
from artlib.stages import CONFIGURATIONS
from artlib.train.config import TrainConfig
from artlib.train.driver import run_stages
from artlib.train.grid import Executor

METRICS = ["stage", "seed", "accuracy", "f1", "balanced_accuracy", "best_epoch", "epochs_run", "config_hash"]
PAIRS = {"demo defaults: emotion_conv5, 64 px, 4 epochs": ("emotion_conv5", {}),
         "emotion_conv45, 112 px, 10 epochs, no early stopping": ("emotion_conv45",
                                                                  {"image_size": 112, "epochs": 10, "patience": None})}
VARIANTS = {"local": {"executor": Executor("local")}, "ray": {"executor": Executor("ray", cpus=1)},
            "local, 1 thread": {"executor": Executor("local", cpus=1)}}


def run(prepared: Path, work: Path, names: list[str], seeds: list[int], options: dict,
        config: TrainConfig = TrainConfig()) -> float:
    """Train the grid in a fresh run directory with these executor options; its wall time in seconds."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rundir.copy_prepared(prepared, work)
    t0 = time.perf_counter()
    run_stages(names, work, config, seeds=seeds, progress=False, **options)
    return time.perf_counter() - t0


def pairs(prepared: Path, out: Path, seeds: list[int]) -> dict:
    """Two independent stage-runs per PAIRS size: one after the other locally vs side by side on a running Ray."""
    import ray

    from artlib.train.threads import available_cpus

    t0 = time.perf_counter()
    ray.init(num_cpus=available_cpus(), include_dashboard=False, log_to_driver=False)
    report = {"starting a local Ray instance": time.perf_counter() - t0}
    try:
        for i, (label, (stage, options)) in enumerate(PAIRS.items()):
            config = TrainConfig(**options)
            local, on_ray = out / f"pair{i}_local", out / f"pair{i}_ray"
            seconds = {"local, one after the other": run(prepared, local, [stage], seeds,
                                                         {"executor": Executor("local")}, config),
                       "ray, side by side": run(prepared, on_ray, [stage], seeds,
                                                {"executor": Executor("ray", cpus=1)}, config)}
            report[label] = {"seconds": seconds,
                             "side_by_side / one_after_the_other": seconds["ray, side by side"]
                             / seconds["local, one after the other"],
                             "metrics, predictions identical": identical(on_ray, local)}
    finally:
        ray.shutdown()
    return report


def identical(a: Path, b: Path) -> tuple[bool, bool]:
    """(results.csv metrics equal, every predictions.csv byte-identical) between two run directories."""
    ra = pd.read_csv(rundir.results(a)).sort_values(["stage", "seed"]).reset_index(drop=True)
    rb = pd.read_csv(rundir.results(b)).sort_values(["stage", "seed"]).reset_index(drop=True)
    same_preds = all(rundir.stage_file(a, r.stage, r.seed, "predictions.csv").read_bytes()
                     == rundir.stage_file(b, r.stage, r.seed, "predictions.csv").read_bytes() for r in ra.itertuples())
    return ra[METRICS].equals(rb[METRICS]), same_preds


def main() -> None:
    """Time the three variants and print the comparison; save it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configurations", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--skip-grid", action="store_true", help="only the two-stage-run measurement")
    parser.add_argument("--out", default="runs/bench/grid")
    args = parser.parse_args()
    log.quiet()
    out = resolve_path(args.out)
    prepared = out / "prepared"
    if not rundir.manifest(prepared).is_file():
        prepare(resolve_data_root("demo"), prepared, PrepareConfig(), progress=False)
    report: dict = {}
    if not args.skip_grid:
        names = [s for c in args.configurations for s in CONFIGURATIONS[c]]
        seconds = {name: run(prepared, out / name.replace(" ", "_").replace(",", ""), names, args.seeds, options)
                   for name, options in VARIANTS.items()}
        report.update({"stage_runs": len(names) * len(args.seeds), "seconds": seconds,
                       "ray_vs_local": seconds["ray"] / seconds["local"]})
        for name in ("local", "local, 1 thread"):
            report[f"ray vs {name}: metrics, predictions identical"] = identical(
                out / "ray", out / name.replace(" ", "_").replace(",", ""))
    report["two independent stage-runs"] = pairs(prepared, out, args.seeds)
    print(json.dumps(report, indent=1))
    (out / ("pairs.json" if args.skip_grid else "grid_executors.json")).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
