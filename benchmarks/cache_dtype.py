"""How far from exact is the feature cache? float16 vs float32 storage vs no cache, through run_stages.

    python benchmarks/cache_dtype.py [--stages emotion_conv5 emotion_conv45] [--seeds 0 1] [--epochs 5]

Trains each stage three times on the demo data with the same seed and settings, changing only the
public options ``feature_cache`` / ``cache_dtype``: no cache (every frozen block runs every step), a
float32 cache, a float16 cache. For the test paintings it prints how often the predictions agree with
the no-cache run, the largest difference of the predicted probabilities and of their logarithms,
and the accuracies. precision is fp32 so the cache is the only
difference. The numbers chose the default (``TrainConfig.cache_dtype``) and the README's wording.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from artlib import rundir
from artlib.data.prepare import PrepareConfig, prepare
from artlib.data.roots import resolve_data_root
from artlib.paths import resolve_path
from artlib.train.config import TrainConfig
from artlib.train.driver import run_stages

VARIANTS = {"no cache": {"feature_cache": False}, "float32 cache": {"feature_cache": True, "cache_dtype": "float32"},
            "float16 cache": {"feature_cache": True, "cache_dtype": "float16"}}


def _log_probabilities(frame: pd.DataFrame) -> np.ndarray:
    """Per-class log-probabilities from predictions.csv's p_<class> columns."""
    probs = frame[[c for c in frame.columns if c.startswith("p_")]].to_numpy(dtype=np.float64)
    return np.log(np.clip(probs, 1e-300, None))


def run(prepared: Path, work: Path, stage: str, seed: int, options: dict, epochs: int) -> tuple[pd.DataFrame, float]:
    """One training run with these cache options in a fresh run directory; its predictions and wall time."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rundir.copy_prepared(prepared, work)
    config = TrainConfig(epochs=epochs, patience=None, precision="fp32", **options)
    t0 = time.perf_counter()
    run_stages([stage], work, config, seeds=[seed], progress=False)
    seconds = time.perf_counter() - t0
    frame = pd.read_csv(rundir.stage_file(work, stage, seed, "predictions.csv")).sort_values("image_path")
    return frame.reset_index(drop=True), seconds


def main() -> None:
    """Run every stage × seed × variant and print the agreement table; save it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="+", default=["emotion_conv5", "emotion_conv45"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default="runs/bench/cache_dtype")
    args = parser.parse_args()
    out = resolve_path(args.out)
    prepared = out / "prepared"
    if not rundir.manifest(prepared).is_file():
        prepare(resolve_data_root("demo"), prepared, PrepareConfig(), progress=False)
    rows = []
    for stage in args.stages:
        for seed in args.seeds:
            runs = {name: run(prepared, out / "runs" / name.replace(" ", "_"), stage, seed, opts, args.epochs)
                    for name, opts in VARIANTS.items()}
            reference, _ = runs["no cache"]
            for name, (frame, seconds) in runs.items():
                rows.append({"stage": stage, "seed": seed, "variant": name, "n_test": len(frame),
                             "agreement": float(np.mean(frame["predicted"] == reference["predicted"])),
                             "max_probability_diff": float(np.abs(
                                 frame[[c for c in frame if c.startswith("p_")]].to_numpy()
                                 - reference[[c for c in reference if c.startswith("p_")]].to_numpy()).max()),
                             "max_log_probability_diff": float(np.abs(
                                 _log_probabilities(frame) - _log_probabilities(reference)).max()),
                             "accuracy": float(np.mean(frame["predicted"] == frame["label"])), "seconds": seconds})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.float_format", "{:.6g}".format):
        print(table.to_string(index=False))
    (out / "cache_dtype.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
