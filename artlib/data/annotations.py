"""Per-painting counts from the two CSVs: ArtEmis annotations counted per painting, classes.csv rows keyed.

Rows that cannot be used are counted with their CSV line numbers (a quoted field can span lines,
so line numbers are found by re-reading the file), never dropped silently.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from artlib.data.funnel import Funnel
from artlib.data.labels import count_emotions, normalise_emotion, polarity
from artlib.data.names import canonical_name
from artlib.data.readers import parse_genre_list
from artlib.errors import DataError


def _row_numbers(mask: pd.Series, limit: int = 20, line_of: dict[int, int] | None = None) -> list[int]:
    """1-based CSV line numbers (header = line 1) of the first rows where ``mask`` holds."""
    return [(line_of or {}).get(int(i), int(i) + 2) for i in np.flatnonzero(mask.to_numpy())[:limit]]


def _record_lines(path: Path, encoding: str, delimiter: str, records: set[int]) -> dict[int, int]:
    """The file line each of these 0-based data records starts on (a quoted field can span several lines)."""
    found: dict[int, int] = {}
    if not records:
        return found
    last = max(records)
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        start, record = 1, -1  # record -1 is the header
        try:
            for fields in reader:
                if fields:  # pandas skips blank lines too
                    if record in records:
                        found[record] = start
                    if record >= last:
                        break
                    record += 1
                start = reader.line_num + 1
        except csv.Error:
            pass  # e.g. a field above csv's size limit: the rest keep their record-based numbers
    return found


def annotation_counts(artemis: pd.DataFrame, path: Path, funnel: Funnel, report: dict) -> pd.DataFrame:
    """Per painting key: polarity counts and the path ArtEmis implies; drops are counted, never silent."""
    funnel.add("annotations", "rows read", len(artemis))
    no_name = artemis["painting"].isna() | artemis["art_style"].isna()
    pol = polarity(artemis["emotion"])
    unknown = pol.isna() & ~no_name
    if unknown.all():
        raise DataError(f"{path}: column 'emotion' holds no ArtEmis emotion (found e.g. "
                        f"{sorted(artemis['emotion'].dropna().astype(str).unique())[:5]}). Expected amusement, awe, "
                        f"contentment, excitement, anger, disgust, fear, sadness or 'something else'.")
    dup_cols = [c for c in ("art_style", "painting", "emotion", "utterance") if c in artemis.columns]
    duplicate = artemis.duplicated(subset=dup_cols, keep="first") & ~no_name & ~unknown if "utterance" in dup_cols \
        else pd.Series(False, index=artemis.index)
    read = report.get("read", {}).get("artemis", {})
    flagged = {int(i) for m in (no_name, unknown, duplicate) for i in np.flatnonzero(m.to_numpy())[:20]}
    line_of = _record_lines(path, read.get("encoding", "utf-8"), read.get("delimiter", ","), flagged)
    report["annotations"] = {
        "missing_painting_or_style": {"rows": int(no_name.sum()), "lines": _row_numbers(no_name, line_of=line_of)},
        "unknown_emotion": {"rows": int(unknown.sum()), "lines": _row_numbers(unknown, line_of=line_of),
                            "values": sorted(artemis.loc[unknown, "emotion"].fillna("<empty>").astype(str).unique())[:20]},
        "duplicate_rows": {"rows": int(duplicate.sum()), "lines": _row_numbers(duplicate, line_of=line_of)},
    }
    funnel.add("annotations", "dropped: painting or style name missing", no_name.sum())
    funnel.add("annotations", "dropped: unknown emotion string", unknown.sum())
    funnel.add("annotations", "dropped: exact duplicate rows", duplicate.sum())
    keep = ~(no_name | unknown | duplicate)
    kept = artemis.loc[keep]
    funnel.add("annotations", "rows used", len(kept))
    declared = (kept["art_style"].str.strip() + "/" + kept["painting"].str.strip() + ".jpg").str.replace("\\", "/", regex=False)
    uniq = pd.unique(declared)
    key_of = {d: canonical_name(d) for d in uniq}
    keys = declared.map(key_of)
    counts = count_emotions(keys, normalise_emotion(kept["emotion"]))
    first_declared = pd.Series(declared.to_numpy(), index=keys.to_numpy())
    counts["artemis_path"] = first_declared[~first_declared.index.duplicated()].reindex(counts.index)
    report["names_repaired"] = int(sum(1 for d, k in key_of.items() if d != k))
    report["name_repair_examples"] = [[d, k] for d, k in key_of.items() if d != k][:10]
    return counts


def classes_table(classes: pd.DataFrame, path: Path, funnel: Funnel, report: dict) -> pd.DataFrame:
    """Per painting key from classes.csv: declared path, artist, phash, parsed genres."""
    no_file = classes["filename"].isna()
    classes = classes.loc[~no_file].copy()
    classes["key"] = classes["filename"].str.strip().map(lambda f: canonical_name(f))
    dup = classes["key"].duplicated(keep="first")
    report["classes"] = {"missing_filename_rows": int(no_file.sum()), "duplicate_filename_rows": int(dup.sum()),
                         "duplicate_examples": classes.loc[dup, "filename"].head(10).tolist()}
    classes = classes.loc[~dup]
    genre_of = {g: ";".join(parse_genre_list(g)) for g in pd.unique(classes["genre"].fillna(""))}
    table = pd.DataFrame({
        "classes_path": classes["filename"].str.strip().str.replace("\\", "/", regex=False).to_numpy(),
        "artist": classes["artist"].fillna("").str.strip().to_numpy(),
        "phash": classes["phash"].fillna("").str.strip().to_numpy(),
        "genres": classes["genre"].fillna("").map(genre_of).to_numpy(),
    }, index=pd.Index(classes["key"].to_numpy(), name="key"))
    funnel.add("paintings", "listed in classes.csv", len(table))
    return table


