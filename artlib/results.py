"""run_dir/results.csv: one row per (stage, seed), upserted under a file lock.

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

log = logging.getLogger(__name__)

RESULT_COLUMNS = (
    "configuration", "stage", "task", "trained_blocks", "init_from", "seed", "accuracy", "f1", "balanced_accuracy",
    "n_test", "majority_baseline_accuracy", "majority_baseline_f1", "majority_class", "backbone_weights",
    "best_epoch", "epochs_run", "train_seconds", "cache_seconds", "n_train", "n_val", "skipped_images",
    "image_size", "epochs", "batch_size", "lr", "monitor", "augment", "feature_cache", "device", "precision",
    "config_hash", "label_rule", "era_map", "manifest_sha256", "threads", "era_prior_baseline_accuracy",
)
KEY = ("stage", "seed")


def results_path(run_dir: str | Path) -> Path:
    """Where a run directory keeps its results table."""
    return rundir.results(run_dir)


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort rows by the study's stage order, then seed; contract columns first."""
    from artlib.stages import STAGES

    rank = {name: i for i, name in enumerate(STAGES)}
    frame = frame.assign(_r=frame["stage"].map(rank).fillna(len(rank))).sort_values(["_r", "seed"]).drop(columns="_r")
    cols = [c for c in RESULT_COLUMNS if c in frame.columns] + [c for c in frame.columns if c not in RESULT_COLUMNS]
    return frame.loc[:, cols].reset_index(drop=True)


INT_COLUMNS = ("seed", "n_test", "best_epoch", "epochs_run", "n_train", "n_val", "skipped_images",
               "image_size", "epochs", "batch_size", "threads", "split_seed")
FLOAT_COLUMNS = ("accuracy", "f1", "balanced_accuracy", "majority_baseline_accuracy", "majority_baseline_f1",
                 "train_seconds", "cache_seconds", "lr", "era_prior_baseline_accuracy")
BOOL_COLUMNS = ("augment", "feature_cache")
REQUIRED = KEY
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
        if not set(KEY) <= set(header):  # also with no rows: a garbage line would pass as a header
            raise ValueError(f"key columns {', '.join(KEY)} missing")
        for record in reader:
            if len(record) != len(header):
                raise ValueError(f"line {reader.line_num}: {len(record)} fields, the header has {len(header)} (cut?)")
            for column, value in zip(header, record):
                if (column in REQUIRED and not value) or (value and _bad_value(column, value)):
                    raise ValueError(f"line {reader.line_num}: column {column} holds {value!r}")


def _load(path: Path) -> pd.DataFrame:
    """Read results.csv (empty table if absent); raises one of ``_DAMAGED`` when it is not a valid results table."""
    if not path.is_file():
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    validate(path)
    return pd.read_csv(path)


def read_results(run_dir: str | Path) -> pd.DataFrame:
    """The results table (empty with the contract's columns if there is none yet; rebuilt if damaged)."""
    try:
        return _load(results_path(run_dir))
    except _DAMAGED:
        return upsert(run_dir, [])  # sets the damaged file aside and rebuilds it from the stage folders


def upsert(run_dir: str | Path, rows: Iterable[dict]) -> pd.DataFrame:
    """Insert or replace rows keyed by (stage, seed), atomically and under a lock; returns the table."""
    path = results_path(run_dir)
    new = pd.DataFrame(list(rows))
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
            keys = set(zip(new["stage"], new["seed"].astype(int)))
            keep = [(s, int(d)) not in keys for s, d in zip(old["stage"], old["seed"])] if len(old) else []
            old = old.loc[keep] if len(old) else old
            frames = [f for f in (old, new) if len(f)]
            table = pd.concat(frames, ignore_index=True) if frames else new
        else:
            table = old
        table = _order(table) if len(table) else table
        atomic.write_csv(path, table)
    return table


def collect_rows(run_dir: Path) -> pd.DataFrame:
    """Rebuild the results table from every finished stage's metrics.json."""
    rows = []
    for _, _, metrics in rundir.finished_metrics(run_dir):
        try:
            rows.append(json.loads(metrics.read_text())["result"])
        except (OSError, ValueError, KeyError):
            continue
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(RESULT_COLUMNS))
