"""Finding paintings on disk under archive/: safe relative paths, name-tolerant lookup, image checks.

Paths come from CSVs, so they are untrusted: absolute paths, ``..`` and anything that
resolves (through symlinks) outside the archive are refused. Names are matched through
:func:`artlib.data.names.canonical_name` (mojibake repaired, NFC), then case-insensitively.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path, PurePosixPath

import pandas as pd

from artlib import atomic
from artlib.data.images import ImageCheck, check_image
from artlib.data.names import canonical_name, repair_candidates
from artlib.log import progress as progress_bar


def unsafe_reason(rel: str) -> str | None:
    """Why a CSV-supplied relative path is unsafe (absolute, '..', NUL, empty), or None if it is fine."""
    if not rel or "\x00" in rel:
        return "empty or contains NUL"
    norm = rel.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "absolute path"
    parts = PurePosixPath(norm).parts
    if any(p == ".." for p in parts):
        return "contains '..'"
    if any(p in ("", ".") for p in norm.split("/")):
        return "empty or '.' path component"
    return None


class ArchiveIndex:
    """Looks up CSV paths on disk, tolerant of mojibake, NFC/NFD and case, listing each folder once."""

    def __init__(self, archive: str | os.PathLike[str]):
        self.archive = Path(archive)
        self._real = os.path.realpath(self.archive)
        self._listings: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self._links: set[str] = set()  # relative paths of entries that are symlinks
        self._undecodable: dict[tuple[str, str], str] = {}  # (folder, casefolded cp1252 reading) → name on disk
        self.misnamed: dict[str, str] = {}
        """CSV path → what lies on disk, for paintings present only under a file name that is not UTF-8."""

    def _listing(self, rel_dir: str) -> tuple[dict[str, str], dict[str, str]]:
        """canonical name → actual name, and casefolded canonical → actual, for one folder."""
        if rel_dir not in self._listings:
            exact: dict[str, str] = {}
            folded: dict[str, str] = {}
            try:
                with os.scandir(self.archive / rel_dir) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                entries = []
            prefix = f"{rel_dir}/" if rel_dir else ""
            self._links.update(prefix + e.name for e in entries if e.is_symlink())
            names = [e.name for e in entries]
            for name in names:
                raw = os.fsencode(name)
                if any("\udc80" <= c <= "\udcff" for c in name):  # bytes that are not UTF-8 (surrogateescape)
                    reading = canonical_name(raw.decode("cp1252", errors="replace")).casefold()
                    self._undecodable[(rel_dir, reading)] = prefix + repr(raw)[2:-1]
                    continue  # no usable str name: reported, not matched
                key = canonical_name(name)
                exact.setdefault(key, name)
                folded.setdefault(key.casefold(), name)
            self._listings[rel_dir] = (exact, folded)
        return self._listings[rel_dir]

    def find(self, rel: str) -> str | None:
        """The on-disk relative path (forward slashes) matching ``rel``, or None if nothing matches."""
        actual: list[str] = []
        for part in rel.replace("\\", "/").split("/"):
            exact, folded = self._listing("/".join(actual))
            hit = None
            for key in repair_candidates(part):  # the default repair first, then other readings of ambiguous letters
                hit = exact.get(key) or folded.get(key.casefold())
                if hit is not None:
                    break
            if hit is None:
                on_disk = self._undecodable.get(("/".join(actual), canonical_name(part).casefold()))
                if on_disk is not None:
                    self.misnamed[rel] = on_disk
                return None
            actual.append(hit)
        return "/".join(actual)

    def escapes(self, rel: str) -> bool:
        """True when ``rel`` (as returned by :meth:`find`) resolves through a symlink to outside the archive."""
        parts = rel.split("/")
        if not any("/".join(parts[: i + 1]) in self._links for i in range(len(parts))):
            return False  # no symlink on the way and no '..' (find never returns one): it stays inside
        real = os.path.realpath(self.archive / rel)
        return os.path.commonpath([real, self._real]) != self._real

    def styles_on_disk(self) -> list[str]:
        """The folder names directly under the archive."""
        return [n for n in self._listing("")[0].values() if (self.archive / n).is_dir()]


def _check_one(args: tuple[str, str]) -> tuple[str, ImageCheck]:
    """Worker: check one image (module level, so it pickles into worker processes)."""
    rel, full = args
    return rel, check_image(full)


CHECK_COLUMNS = ["path", "size", "mtime_ns", "reason", "detail", "width", "height", "phash"]


def _stats(archive: Path, rels: list[str]) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of each file, (-1, -1) when it cannot be read."""
    out = {}
    for rel in rels:
        try:
            st = os.stat(archive / rel)
            out[rel] = (st.st_size, st.st_mtime_ns)
        except OSError:
            out[rel] = (-1, -1)
    return out


def _read_check_cache(cache_file: Path | None) -> pd.DataFrame:
    """Earlier check results indexed by path; empty when absent, damaged or from before phashes were kept."""
    if cache_file is None or not cache_file.is_file():
        return pd.DataFrame()
    try:
        previous = pd.read_csv(cache_file, dtype={"path": str, "reason": str, "detail": str, "phash": str},
                               keep_default_na=False).set_index("path")
    except (pd.errors.ParserError, KeyError, ValueError, UnicodeDecodeError):
        return pd.DataFrame()  # a damaged cache is rebuilt, never trusted
    return previous if set(CHECK_COLUMNS[1:]) <= set(previous.columns) else pd.DataFrame()


def _run_checks(todo: list[tuple[str, str]], workers: int | None, progress: bool) -> dict[str, ImageCheck]:
    """Check these (relative path, full path) files, in worker processes from 200 files on."""
    results: dict[str, ImageCheck] = {}
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    bar = progress_bar(total=len(todo), desc="checking images", unit="img", enabled=progress and bool(todo))
    if n_workers > 1 and len(todo) >= 200:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            for rel, res in pool.map(_check_one, todo, chunksize=8):
                results[rel] = res
                bar.update()
    else:
        for item in todo:
            rel, res = _check_one(item)
            results[rel] = res
            bar.update()
    bar.close()
    return results


def check_images(archive: Path, rels: Iterable[str], cache_file: Path | None = None, workers: int | None = None,
                 progress: bool = True) -> pd.DataFrame:
    """Check (and phash) every image once, reusing earlier results for files whose size and mtime match.

    Returns a frame indexed by relative path with reason, detail, width, height and phash.
    """
    rels = list(dict.fromkeys(rels))
    stats = _stats(archive, rels)
    previous = _read_check_cache(cache_file)
    results: dict[str, ImageCheck] = {}
    todo = []
    for rel in rels:
        size, mtime = stats[rel]
        if rel in previous.index and size >= 0:
            row = previous.loc[rel]
            if int(row["size"]) == size and int(row["mtime_ns"]) == mtime:
                results[rel] = ImageCheck(row["reason"] or None, row["detail"], int(row["width"]), int(row["height"]),
                                          row["phash"])
                continue
        todo.append((rel, str(archive / rel)))
    results.update(_run_checks(todo, workers, progress))
    frame = pd.DataFrame([(rel, *stats[rel], r.reason or "", r.detail, r.width, r.height, r.phash)
                          for rel, r in results.items()], columns=CHECK_COLUMNS).set_index("path")
    if cache_file is not None and todo:
        merged = pd.concat([previous[~previous.index.isin(frame.index)], frame]) if len(previous) else frame
        atomic.write_csv(cache_file, merged.reset_index())
    return frame.reindex(rels)
