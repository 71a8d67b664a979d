"""ArtEmis's list of duplicate WikiArt paintings (``wiki_art_duplicate_paintings.pkl``), read safely, or a CSV.

ArtEmis ships 1,414 groups of WikiArt files that show the same painting (found with fdupes and a manual
check of nearest neighbours), most of them the same image filed under two styles. The file holds two
consecutive protocol-2 pickles — an int (how many items follow), then a list of groups, each a list of
``(art_style, painting)`` tuples — written by ArtEmis's ``pickle_data``. A pickle can run arbitrary code
when loaded, so this one is read with a restricted unpickler: every opcode is checked first and only those
that build ints, strings, lists and tuples are accepted; anything else (a class, a function, a reduce, a
dict, a float, bytes, None …) is refused with an error naming the file, before anything is built.

A CSV of the same pairs works too: either ``group, art_style, painting`` (one row per member), or one pair
per row as ``art_style_a, painting_a, art_style_b, painting_b`` (suffixes ``_1``/``_2`` also accepted), or two
``Style/painting.jpg`` paths (``path_a, path_b`` or ``filename_a, filename_b``). Names go through the same
repair and normalisation as the ArtEmis CSV (:func:`artlib.data.names.canonical_name`).
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
from pathlib import Path

import pandas as pd

from artlib.data.names import canonical_name
from artlib.data.readers import detect_encoding
from artlib.errors import DataError

ALLOWED_OPCODES = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP",
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "NEWTRUE", "NEWFALSE",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
    "EMPTY_LIST", "LIST", "APPEND", "APPENDS", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
    "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET",
})
"""Opcodes that only build ints, strings, lists and tuples (and reuse them through the memo)."""


class _NoGlobals(pickle.Unpickler):
    """An unpickler that refuses to look up any class or function (defence in depth after the opcode check)."""

    def find_class(self, module: str, name: str) -> object:
        """Never resolve a global: this file may only hold plain data."""
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def _check_opcodes(path: Path, data: bytes, start: int) -> int:
    """Verify the pickle starting at ``start`` uses only ALLOWED_OPCODES; returns where it ends."""
    stream = io.BytesIO(data)
    stream.seek(start)
    try:
        ops = [(opcode.name, pos) for opcode, _, pos in pickletools.genops(stream)]
    except (ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable pickle ({exc}); expected ArtEmis's wiki_art_duplicate_paintings.pkl "
                        f"or a CSV of duplicate pairs.") from None
    for name, pos in ops:
        if name not in ALLOWED_OPCODES:
            raise DataError(f"{path}: refused to load: its pickle uses {name} at byte {pos}, which could run code or "
                            f"build objects other than ints, strings, lists and tuples. ArtEmis's "
                            f"wiki_art_duplicate_paintings.pkl holds only those; use that file, or a CSV of pairs.")
    return stream.tell()


def _unpickle_all(path: Path) -> list[object]:
    """Every consecutive pickle in the file, each checked opcode by opcode before it is built."""
    data = path.read_bytes()
    items, offset = [], 0
    while offset < len(data):
        end = _check_opcodes(path, data, offset)
        try:
            items.append(_NoGlobals(io.BytesIO(data[offset:end])).load())
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise DataError(f"{path}: refused to load ({exc}).") from None
        offset = end
    return items


def _groups_from_pickle(path: Path) -> list[list[str]]:
    """Groups of 'Style/painting.jpg' names from ArtEmis's pickle (count first, then the list of groups)."""
    items = _unpickle_all(path)
    groups_obj = items[1] if len(items) >= 2 and isinstance(items[0], int) else items[0] if items else None
    if not isinstance(groups_obj, list):
        raise DataError(f"{path}: expected a list of duplicate groups (after an int count), found "
                        f"{type(groups_obj).__name__}.")
    groups = []
    for k, group in enumerate(groups_obj):
        members = []
        for member in group if isinstance(group, (list, tuple)) else [None]:
            if not (isinstance(member, (list, tuple)) and len(member) == 2 and all(isinstance(x, str) for x in member)):
                raise DataError(f"{path}: group {k} holds {member!r}; expected (art_style, painting) pairs of strings.")
            members.append(f"{member[0]}/{member[1]}.jpg")
        groups.append(members)
    return groups


def _path(style: object, painting: object) -> str:
    """'Style/painting.jpg' from a style and a painting name (a name already ending in .jpg is kept)."""
    name = str(painting).strip()
    return f"{str(style).strip()}/{name if name.lower().endswith('.jpg') else name + '.jpg'}"


def _groups_from_csv(path: Path) -> list[list[str]]:
    """Groups from a CSV in one of the accepted layouts (module docstring); a clear error otherwise."""
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the duplicates file is empty; give ArtEmis's wiki_art_duplicate_paintings.pkl or a "
                        f"CSV of pairs (or leave --duplicates out).")
    try:
        frame = pd.read_csv(io.StringIO(raw.decode(detect_encoding(path, raw))), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the duplicate pairs CSV ({str(exc).strip()[:150]}); fix the file or give "
                        f"ArtEmis's wiki_art_duplicate_paintings.pkl.") from None
    cols = {c.strip().lower(): c for c in frame.columns}
    if {"group", "art_style", "painting"} <= set(cols):
        return [[_path(s, p) for s, p in zip(g[cols["art_style"]], g[cols["painting"]])]
                for _, g in frame.groupby(cols["group"], sort=False)]
    for a, b in (("_a", "_b"), ("_1", "_2"), ("1", "2")):
        if {f"art_style{a}", f"painting{a}", f"art_style{b}", f"painting{b}"} <= set(cols):
            return [[_path(r[cols[f"art_style{a}"]], r[cols[f"painting{a}"]]),
                     _path(r[cols[f"art_style{b}"]], r[cols[f"painting{b}"]])] for _, r in frame.iterrows()]
        for stem in ("path", "filename"):
            if {f"{stem}{a}", f"{stem}{b}"} <= set(cols):
                return [[str(r[cols[f"{stem}{a}"]]).strip(), str(r[cols[f"{stem}{b}"]]).strip()]
                        for _, r in frame.iterrows()]
    raise DataError(f"{path}: cannot read duplicate pairs from columns {list(frame.columns)}. Use group,art_style,"
                    f"painting (one row per member), art_style_a,painting_a,art_style_b,painting_b, or path_a,path_b "
                    f"(Style/painting.jpg).")


def read_duplicates(path: str | os.PathLike[str]) -> list[list[str]]:
    """Groups of duplicate paintings as canonical 'Style/painting.jpg' keys, from ArtEmis's .pkl or a CSV."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: duplicates file not found. Get wiki_art_duplicate_paintings.pkl from the ArtEmis "
                        f"repository (artemis/data/), or write a CSV of pairs.")
    groups = _groups_from_csv(path) if path.suffix.lower() in (".csv", ".txt") else _groups_from_pickle(path)
    return [[canonical_name(m.replace("\\", "/")) for m in g] for g in groups if len(g) >= 2]
