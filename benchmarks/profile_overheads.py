"""Where a stage-run's time goes outside its epochs and cache building: cProfile of one ``run_stages`` call.

    python benchmarks/profile_overheads.py [--paintings 100] [--image-size 64] [--epochs 2]
                                           [--stage emotion_conv5] [--weights none] [--out runs/bench/profile.json]

Generates (or reuses) the benchmark's synthetic data root (``train_throughput.data_root_for``), prepares it once,
then trains one stage with artlib's defaults through ``run_stages`` — the code users run, public options only —
under cProfile, in this process. Prints the import time of the training entry point, then each phase's cumulative
time as a share of ``run_stages``' wall time (start-up, model building, image and feature cache, training epochs,
validation, checkpoints, test and recording, results.csv), and, below every phase outside the epochs and cache
building, its costliest callees (two levels, each ≥ ``--min-share`` of the wall time). cProfile's overhead per
Python call inflates many-small-call code: read the shares as a map of where to look, and the stage's own
``metrics.json`` timing of a second, unprofiled run (printed last) for the sizes.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import train_throughput as tt

from artlib.paths import display_path, resolve_path

# (module path suffix, function name) → phase; cumulative times of these functions make up the phases
PHASES: list[tuple[str, str, str]] = [
    ("start-up: manifest reads (driver and worker)", "artlib/data/manifest.py", "read_manifest"),
    ("start-up: task rows", "artlib/train/inputs.py", "task_data"),
    ("start-up: identity (weights, hashes)", "artlib/train/runner.py", "stage_identity"),
    ("start-up: finished-run check", "artlib/train/runner.py", "finished_row"),
    ("start-up: stage folder, config.json", "artlib/train/runner.py", "_prepare_folder"),
    ("model building", "artlib/train/runner.py", "start_model"),
    ("image cache", "artlib/train/imagecache.py", "build_image_cache"),
    ("feature cache", "artlib/train/features.py", "build_feature_cache"),
    ("epochs: training", "artlib/train/loop.py", "_train_epoch"),
    ("epochs: validation", "artlib/train/loop.py", "validation_row"),
    ("checkpoints: writing the slot (its second half and its fsync run in threads cProfile does not see)",
     "artlib/train/resume.py", "__init__"),
    ("checkpoints: waiting for the disk after validation", "artlib/train/resume.py", "wait"),
    ("checkpoints: the record", "artlib/train/resume.py", "save_record"),
    ("resume check", "artlib/train/resume.py", "load"),
    ("test pass and recording", "artlib/train/runner.py", "evaluate_and_record"),
    ("results.csv", "artlib/results.py", "upsert"),
    ("total: the worker (train_stage_run; the driver's share is the wall time's rest)", "artlib/train/runner.py",
     "train_stage_run"),
    ("total: the loop (train_loop; its own share is the rest of its epochs, checkpoints and resume check)",
     "artlib/train/loop.py", "train_loop"),
]
INSIDE = {"epochs: training", "epochs: validation", PHASES[-2][0]}  # no callee listing (the model's own compute)


def _find(stats: pstats.Stats, suffix: str, name: str) -> tuple[Any, tuple] | None:
    """The stats entry of a function by file suffix and name (the one with the largest cumulative time)."""
    hits = [(k, v) for k, v in stats.stats.items() if k[0].endswith(suffix) and k[2] == name]  # type: ignore[attr-defined]
    return max(hits, key=lambda kv: kv[1][3]) if hits else None


def _callees(stats: pstats.Stats, parent: tuple) -> list[tuple[tuple, float]]:
    """Direct callees of ``parent`` with the cumulative time they spent when called from it, largest first."""
    out = [(k, v[4][parent][3]) for k, v in stats.stats.items() if parent in v[4]]  # type: ignore[attr-defined]
    return sorted(out, key=lambda kv: -kv[1])


def _label(key: tuple) -> str:
    """file:line(function), the file shortened to its package path."""
    file, line, name = key
    for marker in ("/artlib/", "/torch/", "/pandas/", "/numpy/", "/site-packages/"):
        if marker in file:
            file = marker.strip("/") + "/" + file.split(marker, 1)[1]
            break
    return f"{file}:{line}({name})"


def phase_table(stats: pstats.Stats, wall: float, min_share: float) -> list[dict[str, Any]]:
    """Each phase's cumulative seconds and share of the wall time; the overhead phases with their top callees."""
    rows = []
    for phase, suffix, name in PHASES:
        hit = _find(stats, suffix, name)
        if hit is None:
            continue
        key, value = hit
        row: dict[str, Any] = {"phase": phase, "function": _label(key), "calls": value[1], "seconds": value[3],
                               "share": value[3] / wall, "callees": []}
        if phase not in INSIDE:
            for child, seconds in _callees(stats, key)[:8]:
                if seconds / wall < min_share:
                    break
                # (cProfile keeps one caller level: a grandchild's time is over every call of the child, so it is
                # listed only when this phase is the child's only caller)
                only = len(stats.stats[child][4]) == 1  # type: ignore[attr-defined]
                grand = [{"function": _label(g), "seconds": s, "share": s / wall}
                         for g, s in _callees(stats, child)[:4] if s / wall >= min_share] if only else []
                row["callees"].append({"function": _label(child), "seconds": seconds, "share": seconds / wall,
                                       "callees": grand})
        rows.append(row)
    return rows


def top_functions(stats: pstats.Stats, wall: float, n: int) -> list[dict[str, Any]]:
    """The ``n`` functions with the most own (exclusive) time, as shares of the wall time."""
    items = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:n]  # type: ignore[attr-defined]
    return [{"function": _label(k), "calls": v[1], "own_seconds": v[2], "share": v[2] / wall} for k, v in items]


def unprofiled_timing(prepared: Path, run_dir: Path, config: Any, args: argparse.Namespace) -> dict[str, float]:
    """Run the stage again without the profiler in a fresh run directory; its metrics.json timing and wall time."""
    from artlib import rundir
    from artlib.train.driver import run_stages

    again = run_dir.with_name(run_dir.name + "_unprofiled")
    shutil.rmtree(again, ignore_errors=True)
    rundir.copy_prepared(prepared, again)
    t0 = time.perf_counter()
    run_stages([args.stage], again, config, seeds=[args.seed], progress=False)
    wall = time.perf_counter() - t0
    timing = json.loads(rundir.stage_file(again, args.stage, args.seed, "metrics.json").read_text())["timing"]
    shutil.rmtree(again, ignore_errors=True)
    return {**timing, "rest_seconds": wall - sum(timing.values()), "wall_seconds": wall}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--paintings", type=int, default=100)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--stage", default="emotion_conv5", choices=tt.STAGES)
    p.add_argument("--weights", default="none")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-share", type=float, default=0.01, help="list callees taking at least this share of wall")
    p.add_argument("--bench-dir", default="runs/bench")
    p.add_argument("--out", default="runs/bench/profile.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Profile one stage-run and print where its time went."""
    args = parse_args(argv)
    t0 = time.perf_counter()
    import torch  # noqa: F401  (timed: the start-up a user's process pays once)

    from artlib.train.config import TrainConfig
    from artlib.train.driver import run_stages

    imports = time.perf_counter() - t0
    bench_dir = resolve_path(args.bench_dir)
    root, _ = tt.data_root_for(bench_dir, args.paintings, 980, 2000, args.seed)
    prepared = bench_dir / "prep" / root.name
    if not (prepared / "manifest.csv").is_file():
        tt.prepare_timed(root, prepared)
    run_dir = bench_dir / "rows" / "profile" / args.stage
    shutil.rmtree(run_dir, ignore_errors=True)
    from artlib import rundir

    rundir.copy_prepared(prepared, run_dir)
    config = TrainConfig(image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size, patience=None,
                         augment=False, weights=args.weights)
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    row = run_stages([args.stage], run_dir, config, seeds=[args.seed], progress=False).iloc[-1].to_dict()
    profiler.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(profiler)
    out = resolve_path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stats.dump_stats(out.with_suffix(".prof"))  # for pstats / snakeviz
    phases = phase_table(stats, wall, args.min_share)
    report = {"settings": vars(args), "import_seconds": imports, "wall_seconds": wall, "n_train": int(row["n_train"]),
              "phases": phases, "top_own_time": top_functions(stats, wall, 25)}
    print(f"import torch + artlib.train.driver: {imports:.2f} s (not in the wall time below)")
    print(f"run_stages: {wall:.2f} s wall under cProfile ({args.stage}, {row['n_train']} training paintings, "
          f"{args.epochs} epochs, {args.image_size} px)")
    for p in phases:
        print(f"  {p['share']:6.1%} {p['seconds']:7.2f} s  {p['phase']}  [{p['calls']} call(s)]")
        for c in p["callees"]:
            print(f"  {'':6s} {c['share']:6.1%}  {c['function']}")
            for g in c["callees"]:
                print(f"  {'':14s} {g['share']:6.1%}  {g['function']}")
    print("top own time:")
    for f in report["top_own_time"][:15]:
        print(f"  {f['share']:6.1%} {f['own_seconds']:7.2f} s  {f['calls']:6d}  {f['function']}")
    report["unprofiled_timing"] = unprofiled_timing(prepared, run_dir, config, args)
    print(f"the same stage-run again without the profiler (fresh run directory, same process): "
          f"{report['unprofiled_timing']['wall_seconds']:.2f} s wall; metrics.json timing:")
    for key, value in report["unprofiled_timing"].items():
        print(f"  {key:24s} {value:7.3f} s  {value / report['unprofiled_timing']['wall_seconds']:6.1%}")
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {display_path(out)} and the raw profile {display_path(out.with_suffix('.prof'))}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
