"""run_dir/results.csv: one row per (stage, seed, split_seed, backbone), upserted under a file lock.

``split_seed`` is the split the stage-run trained and tested on (0: the manifest's column ``split``); a
results.csv written before 0.3 has no such column and reads as split seed 0; ``backbone`` the network the stage
fine-tuned (a row without one used the study's resnet50).

Rows are replaced, never duplicated, when a stage is rerun, also when two processes write
at once. Every row also lives in its stage folder's metrics.json, so a damaged results.csv
is set aside and rebuilt from those, never lost.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from filelock import FileLock

from artlib import atomic, rundir
from artlib.rundir import DEFAULT_BACKBONE

log = logging.getLogger(__name__)

RESULT_COLUMNS = (
    "configuration", "stage", "task", "trained_blocks", "init_from", "seed", "split_seed", "backbone", "accuracy", "f1",
    "balanced_accuracy",
    "n_test", "majority_baseline_accuracy", "majority_baseline_f1", "majority_class", "backbone_weights",
    "best_epoch", "epochs_run", "train_seconds", "cache_seconds", "n_train", "n_val", "skipped_images",
    "image_size", "epochs", "batch_size", "lr", "monitor", "augment", "feature_cache", "device", "precision",
    "config_hash", "label_rule", "era_map", "manifest_sha256", "threads", "era_prior_baseline_accuracy",
)
KEY = ("stage", "seed", "split_seed", "backbone")


def results_path(run_dir: str | Path) -> Path:
    """Where a run directory keeps its results table."""
    return rundir.results(run_dir)


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort rows by the study's stage order, then split seed and seed; contract columns first."""
    from artlib.stages import STAGES

    rank = {name: i for i, name in enumerate(STAGES)}
    frame = frame.assign(_r=frame["stage"].map(rank).fillna(len(rank)))
    frame = frame.assign(_b=frame["backbone"] != DEFAULT_BACKBONE)
    frame = frame.sort_values(["_b", "backbone", "_r", "split_seed", "seed"]).drop(columns=["_r", "_b"])
    cols = [c for c in RESULT_COLUMNS if c in frame.columns] + [c for c in frame.columns if c not in RESULT_COLUMNS]
    return frame.loc[:, cols].reset_index(drop=True)


INT_COLUMNS = ("seed", "n_test", "best_epoch", "epochs_run", "n_train", "n_val", "skipped_images",
               "image_size", "epochs", "batch_size", "threads", "split_seed")
FLOAT_COLUMNS = ("accuracy", "f1", "balanced_accuracy", "majority_baseline_accuracy", "majority_baseline_f1",
                 "train_seconds", "cache_seconds", "lr", "era_prior_baseline_accuracy")
BOOL_COLUMNS = ("augment", "feature_cache")
REQUIRED = ("stage", "seed")
"""Fields every row must fill; the typed columns above must parse where filled (any other column is free text)."""

_DAMAGED = (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, UnicodeDecodeError, csv.Error)


def _bad_value(column: str, value: str) -> bool:
    """True when a filled ``value`` does not parse as ``column``'s type."""
    try:
        if column in INT_COLUMNS:
            return not float(value).is_integer()
        if column in FLOAT_COLUMNS:
            float(value)
        elif column in BOOL_COLUMNS:
            return value not in ("True", "False", "true", "false", "0", "1")
    except ValueError:
        return True
    return False


def validate(path: Path) -> None:
    """Raise a ValueError naming the line and column unless every row of results.csv is complete and well typed."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        if not set(REQUIRED) <= set(header):  # also with no rows: a garbage line would pass as a header
            raise ValueError(f"key columns {', '.join(REQUIRED)} missing")  # (split_seed may be absent: 0.2 files)
        for record in reader:
            if len(record) != len(header):
                raise ValueError(f"line {reader.line_num}: {len(record)} fields, the header has {len(header)} (cut?)")
            for column, value in zip(header, record):
                if (column in REQUIRED and not value) or (value and _bad_value(column, value)):
                    raise ValueError(f"line {reader.line_num}: column {column} holds {value!r}")


def _load(path: Path) -> pd.DataFrame:
    """Read results.csv (empty table if absent); raises one of ``_DAMAGED`` when it is not a valid results table."""
    if not path.is_file():
        return with_split_seed(pd.DataFrame(columns=list(RESULT_COLUMNS)))
    validate(path)
    old = with_split_seed(pd.read_csv(path))
    return old.astype({"split_seed": "int64"}) if len(old) else old


def with_split_seed(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows without a split_seed (results.csv and metrics.json written before 0.3) are split seed 0, rows without a
    backbone the study's resnet50."""
    if "split_seed" not in frame.columns:
        at = list(frame.columns).index("seed") + 1 if "seed" in frame.columns else len(frame.columns)
        frame.insert(at, "split_seed", 0)
    if "backbone" not in frame.columns:
        frame.insert(list(frame.columns).index("split_seed") + 1, "backbone", DEFAULT_BACKBONE)
    else:
        frame["backbone"] = frame["backbone"].fillna(DEFAULT_BACKBONE).astype(str).replace("", DEFAULT_BACKBONE)
    return frame


def read_results(run_dir: str | Path) -> pd.DataFrame:
    """The results table (empty with the contract's columns if there is none yet; rebuilt if damaged)."""
    try:
        return _load(results_path(run_dir))
    except _DAMAGED:
        return upsert(run_dir, [])  # sets the damaged file aside and rebuilds it from the stage folders


def upsert(run_dir: str | Path, rows: Iterable[dict]) -> pd.DataFrame:
    """Insert or replace rows keyed by (stage, seed, split_seed, backbone), atomically and under a lock; returns the table."""
    path = results_path(run_dir)
    new = with_split_seed(pd.DataFrame(list(rows)))
    with FileLock(str(rundir.results_lock(run_dir))):
        try:
            old = _load(path)
        except _DAMAGED as exc:
            stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}"  # unique: never overwrite one
            aside = path.with_name(f"results.csv.damaged-{stamp}")
            path.rename(aside)
            log.warning("%s was unreadable (%s); kept it as %s and rebuilt it from the stage folders", path, exc,
                        aside.name)
            old = collect_rows(Path(run_dir))
        if len(new):
            keys = set(zip(new["stage"], new["seed"].astype(int), new["split_seed"].astype(int), new["backbone"]))
            keep = [(s, int(d), int(k), b) not in keys
                    for s, d, k, b in zip(old["stage"], old["seed"], old["split_seed"], old["backbone"])]
            old = old.loc[keep] if len(old) else old
            frames = [f for f in (old, new) if len(f)]
            table = pd.concat(frames, ignore_index=True) if frames else new
        else:
            table = old
        table = _order(table) if len(table) else table
        atomic.write_csv(path, table)
    return table


def collect_rows(run_dir: Path) -> pd.DataFrame:
    """Rebuild the results table from every finished stage-run's metrics.json (every split seed)."""
    rows = []
    for run in rundir.finished_runs(run_dir):
        try:
            result = json.loads(run.metrics.read_text())["result"]
            own = (result["stage"], int(result["seed"]), result.get("backbone") or DEFAULT_BACKBONE)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if own != (run.stage, run.seed, run.backbone):  # e.g. a copy kept in a folder of one's own
            log.warning("%s: holds the results of %s (seed %s, %s), not of the folder it is in; left out of "
                        "results.csv", run.metrics, *own)
            continue
        rows.append({**result, "split_seed": run.split_seed, "backbone": run.backbone})
    return with_split_seed(pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(RESULT_COLUMNS)))
