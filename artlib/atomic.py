"""Crash-safe writes: everything artlib writes goes to a temporary file first and is renamed.

A reader therefore sees either the old complete file or the new complete file, never a
half-written one, even after a power cut or SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


def current_umask() -> int:
    """The process's umask (read without changing it where /proc allows), for the modes of new files."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: read it by setting it, then put it back at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; give what open() would have given
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (whole, by one rename)."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))  # same file system: rename is atomic
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; give what mkdir would have given
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON (NaN becomes null)."""
    write_text(path, json.dumps(_json_safe(obj), indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Atomically write ``frame`` as CSV without its index."""
    with atomic_path(path, ".csv") as tmp:
        frame.to_csv(tmp, index=False)


def _json_safe(obj: Any) -> Any:
    """Replace float NaN/inf with None and numpy scalars with Python ones, recursively."""
    import math

    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def check_writable(folder: str | os.PathLike[str], what: str, fix: str) -> None:
    """Create ``folder`` and write a probe file, or raise a DataError naming it, ``what`` failed and ``fix``.

    Called before long work (image checks, training), so a read-only or missing location fails in
    the first second instead of after an hour.
    """
    from artlib.errors import DataError

    folder = Path(folder)
    probe = folder / ".write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise DataError(f"{folder}: cannot {what} here ({exc.strerror or exc}); {fix}.") from None


def check_free_space(folder: str | os.PathLike[str], need: int, what: str, fix: str) -> None:
    """Raise a DataError naming ``folder``, the space ``what`` needs and ``fix`` when the disk has less free."""
    import shutil

    from artlib.errors import DataError

    free = shutil.disk_usage(folder).free
    if need > free:
        raise DataError(f"{folder}: {what} needs {need / 1e9:.1f} GB ({need:,} bytes) but only {free / 1e9:.1f} GB "
                        f"are free; {fix}.")
