"""manifest.csv: one row per usable painting — the contract between preparation and every task.

Columns (design.md §5): image_path (relative to archive/, as on disk), art_style, painting,
artist, era, emotion, the annotation counts, split, and what prepare found (phash, genres,
which CSVs list it, image size); with ``prepare --split-seeds K`` also split_1 … split_<K-1>, the other
split seeds (:mod:`artlib.data.splits`). Written by :mod:`artlib.data.prepare`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from artlib import atomic, rundir
from artlib.data.labels import EMOTION_COUNT_COLUMNS
from artlib.data.splits import split_column, split_seeds_in
from artlib.errors import DataError

MANIFEST_COLUMNS = (
    "image_path", "art_style", "painting", "artist", "era", "emotion", "n_positive", "n_negative",
    "n_something_else", "split", "phash", "genres", "in_artemis", "in_classes", "width", "height",
    *EMOTION_COUNT_COLUMNS[:-1],  # n_amusement … n_sadness (n_something_else is above)
)


RERUN = "rerun prepare (notebook 02, or `python -m artlib prepare`)"


def write_outputs(manifest: pd.DataFrame, report: dict, out: str | os.PathLike[str]) -> None:
    """Write manifest.csv and prepare_report.json into ``out`` atomically; the report records the manifest's digest."""
    import hashlib

    Path(out).mkdir(parents=True, exist_ok=True)
    data = manifest.to_csv(index=False, lineterminator="\n").encode("utf-8")
    report["manifest"] = {"rows": len(manifest), "sha256": hashlib.sha256(data).hexdigest()}
    atomic.write_bytes(rundir.manifest(out), data)
    atomic.write_json(rundir.prepare_report(out), report)


def check_manifest(path: Path) -> None:
    """Compare manifest.csv with the rows and SHA-256 prepare recorded beside it; a DataError on any difference.

    A report from an older prepare (no digest) or no report at all: nothing to compare, the manifest is used.
    """
    import hashlib
    import json

    report_path = path.with_name(rundir.prepare_report(".").name)
    try:
        recorded = json.loads(report_path.read_text(encoding="utf-8")).get("manifest") or {}
    except (OSError, ValueError, AttributeError):
        return  # a missing or damaged report is reported where the report itself is needed
    if not isinstance(recorded, dict) or not recorded.get("sha256"):
        return
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != recorded["sha256"]:
        rows = max(len(data.splitlines()) - 1, 0)
        raise DataError(f"{path}: differs from what prepare wrote ({rows} lines of rows now, {recorded.get('rows')} "
                        f"rows recorded in {report_path.name}): cut, edited or replaced; {RERUN}.")


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a manifest.csv with the right dtypes, checking the contract's columns are there."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no manifest. Run notebook 02 or `python -m artlib prepare --out {path.parent}` first.")
    check_manifest(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: damaged manifest ({str(exc).strip()[:150]}); rerun notebook 02 or "
                        f"`python -m artlib prepare` to write it again.") from None
    required = ("image_path", "era", "emotion", "split")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: column(s) {', '.join(missing)} missing; regenerate it with `python -m artlib prepare`.")
    for c in ("n_positive", "n_negative", "width", "height", *EMOTION_COUNT_COLUMNS):
        if c in frame.columns:
            frame[c] = pd.to_numeric(frame[c], errors="coerce").fillna(0).astype("int64")
    for column in map(split_column, range(split_seeds_in(frame.columns))):
        bad_split = ~frame[column].isin(["train", "val", "test"])
        if bad_split.any():
            raise DataError(f"{path}: line {int(np.flatnonzero(bad_split)[0]) + 2}: {column} must be train, val or test.")
    return frame


def manifest_split_seeds(path: str | os.PathLike[str]) -> int:
    """How many split seeds a manifest.csv holds (its header only: 'split', 'split_1', …); 0 when it has none."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no manifest. Run notebook 02 or `python -m artlib prepare --out {path.parent}` first.")
    return split_seeds_in(pd.read_csv(path, nrows=0).columns)


def export_layout(manifest: pd.DataFrame, archive: str | os.PathLike[str], dest: str | os.PathLike[str],
                  protect: tuple[str | os.PathLike[str], ...] = ()) -> dict[str, int]:
    """Symlink the original study's folder layout: dest/{genre,emotion}/<split>/<class>/<file>.

    One folder per era and per emotion class, inside per-split folders so no tool can mix
    them up. Built in a temporary folder and renamed into place; an existing ``dest`` is replaced
    only when it is an earlier export (never the archive, ``protect``, the current folder or the repo).
    """
    archive = Path(archive).resolve()
    counts: dict[str, int] = {}
    from artlib.paths import repo_root

    with atomic.atomic_dir(dest, "layout", "--export-layout", protect=(repo_root(), archive, *protect)) as tmp:
        for task, column in (("genre", "era"), ("emotion", "emotion")):
            rows = manifest[manifest[column] != ""]
            for row in rows.itertuples():
                rel = str(row.image_path)
                target = tmp / task / str(row.split) / str(getattr(row, column))
                target.mkdir(parents=True, exist_ok=True)
                os.symlink(archive / rel, target / rel.replace("/", "__"))
            counts[task] = len(rows)
    return counts
