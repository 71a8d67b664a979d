"""Reading the two real CSVs: WikiArt's classes.csv and ArtEmis's annotation release.

Both are validated on the way in: a missing file, an empty file, a missing or misspelt
column, an odd delimiter or a non-UTF-8 encoding give a :class:`DataError` naming the
file (and the column or row) and what to do, never a traceback from inside pandas.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from artlib.errors import DataError

CLASSES_COLUMNS = ("filename", "artist", "genre", "phash")
"""Columns of classes.csv that artlib needs (the file has more: description, width, height, genre_count, subset)."""
CLASSES_OPTIONAL = ("description", "width", "height", "genre_count", "subset")
ARTEMIS_COLUMNS = ("art_style", "painting", "emotion")
"""Columns of artemis_dataset_release_v0.csv that artlib needs (it also has utterance, repetition)."""
ARTEMIS_OPTIONAL = ("utterance", "repetition")

CLASSES_RELPATH = Path("data_gen") / "classes.csv"
ARTEMIS_RELPATH = Path("data_em") / "artemis_dataset_release_v0.csv"
ARCHIVE_RELPATH = Path("archive")

_DELIMITERS = (",", ";", "\t", "|")


@dataclass
class ReadNotes:
    """What reading a CSV had to work around, for the prepare report."""

    path: str
    encoding: str = "utf-8"
    delimiter: str = ","
    rows: int = 0
    warnings: list[str] = field(default_factory=list)


def detect_encoding(path: Path, raw: bytes) -> str:
    """'utf-8' when the bytes decode as UTF-8, 'utf-16' with a UTF-16 BOM (Excel's "Unicode Text"), else 'cp1252'."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    try:
        raw.decode("utf-8")
        return "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
    except UnicodeDecodeError:
        return "cp1252"


def _detect_delimiter(path: Path, header: str, expected: tuple[str, ...]) -> str:
    """The delimiter that splits the header into the expected column names (comma preferred)."""
    best, best_hits = ",", -1
    for delim in _DELIMITERS:
        try:
            names = next(csv.reader([header], delimiter=delim))
        except (csv.Error, StopIteration):
            continue
        hits = sum(1 for n in names if n.strip().lower() in expected)
        if hits > best_hits or (hits == best_hits and delim == ","):
            best, best_hits = delim, hits
    return best


def _check_columns(path: Path, found: list[str], required: tuple[str, ...], what: str) -> None:
    """Raise a DataError naming every required column that is missing, with close matches."""
    missing = [c for c in required if c not in found]
    if not missing:
        return
    parts = []
    for col in missing:
        close = difflib.get_close_matches(col, found, n=1, cutoff=0.6)
        hint = f" (found '{close[0]}' — misspelt or renamed? rename it to '{col}')" if close else ""
        parts.append(f"'{col}'{hint}")
    raise DataError(
        f"{path}: required column{'s' if len(missing) > 1 else ''} {', '.join(parts)} missing. "
        f"This should be the {what}; its header has: {', '.join(found) or '(nothing)'}. "
        f"Expected at least: {', '.join(required)}."
    )


def read_table(
    path: str | Path,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    what: str = "CSV file",
) -> tuple[pd.DataFrame, ReadNotes]:
    """Read a CSV as strings, validating columns; returns the frame and notes on what was worked around."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found. Put the {what} there (see the README in its folder).")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected the {what}.")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty. Download the {what} again.")
    notes = ReadNotes(path=str(path))
    notes.encoding = detect_encoding(path, raw)
    if notes.encoding in ("cp1252", "utf-16"):
        notes.warnings.append(f"{path}: not valid UTF-8; read as {notes.encoding} (Windows). Save it as UTF-8 to "
                              f"silence this.")
    text = raw.decode(notes.encoding, errors="replace")
    if "\r" in text and "\n" not in text:  # classic Mac line ends (CR only): pandas and csv read them as one line
        text = text.replace("\r", "\n")
        notes.warnings.append(f"{path}: lines end in CR only (old Mac format); read accordingly.")
    header = text.split("\n", 1)[0].rstrip("\r")
    notes.delimiter = _detect_delimiter(path, header, required + optional)
    if notes.delimiter != ",":
        notes.warnings.append(f"{path}: columns separated by {notes.delimiter!r}, not commas; read accordingly.")
    found = [h.strip() for h in next(csv.reader([header], delimiter=notes.delimiter))]
    _check_columns(path, found, required, what)
    twice = sorted({c for c in found if found.count(c) > 1 and c in required + optional})
    if twice:
        raise DataError(f"{path}: column{'s' if len(twice) > 1 else ''} {', '.join(repr(c) for c in twice)} appear(s) "
                        f"more than once in the header; keep one of each (delete or rename the copy).")
    wanted = [c for c in found if c in required or c in optional]
    try:
        with warnings.catch_warnings():
            # a row with more fields than the header (an unquoted comma) must not shift or vanish silently
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), sep=notes.delimiter, dtype=str, keep_default_na=False,
                                na_values=[""], engine="c", index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as exc:
        line = _first_bad_line(text, notes.delimiter, len(found))
        where = f" line {line}" if line else ""
        hint = (f"a quote opened{' on line ' + str(line) if line else ''} is never closed; close it or remove it"
                if "EOF inside string" in str(exc) else
                f"a field probably holds an unquoted '{notes.delimiter}' or quote; quote that field or fix the row")
        raise DataError(f"{path}:{where}: cannot parse the CSV ({str(exc).strip()[:200]}): {hint}.") from None
    frame.columns = [c.strip() for c in frame.columns]
    frame = frame.loc[:, wanted]
    notes.rows = len(frame)
    if frame.empty:
        raise DataError(f"{path}: has a header but no rows. Download the {what} again.")
    return frame, notes


def _first_bad_line(text: str, delimiter: str, n_fields: int) -> int | None:
    """1-based line number of the first CSV record whose field count differs from the header's, or where a
    record that cannot be parsed (an unterminated quote) starts."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    start = 1
    try:
        for record in reader:
            if record and len(record) != n_fields and reader.line_num > 1:
                return start
            start = reader.line_num + 1
    except csv.Error:  # an unterminated quote swallows the rest of the file: report where that record began
        return start
    return None


def read_classes(path: str | Path) -> tuple[pd.DataFrame, ReadNotes]:
    """Read WikiArt's classes.csv (filename, artist, genre, phash, …) as strings."""
    return read_table(path, CLASSES_COLUMNS, CLASSES_OPTIONAL, "WikiArt classes.csv (Kaggle 'wikiart')")


def read_artemis(path: str | Path) -> tuple[pd.DataFrame, ReadNotes]:
    """Read the ArtEmis annotations (art_style, painting, emotion, …) as strings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.DtypeWarning)
        return read_table(path, ARTEMIS_COLUMNS, ARTEMIS_OPTIONAL, "ArtEmis artemis_dataset_release_v0.csv")


_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")


def parse_genre_list(value: object) -> list[str]:
    """Parse classes.csv's list-string genre (``"['Post Impressionism']"``) into style names.

    Returns folder-style names (spaces become underscores): ``["Post_Impressionism"]``.
    A bare, unquoted value (``Impressionism``) is accepted too; empty gives ``[]``.
    """
    if not isinstance(value, str) or not value.strip():
        return []
    text = value.strip()
    items = [a or b for a, b in _QUOTED.findall(text)]
    if not items:
        items = [p for p in re.split(r"[,;]", text.strip("[]")) if p.strip()]
    return [re.sub(r"\s+", "_", it.strip()) for it in items if it.strip()]
