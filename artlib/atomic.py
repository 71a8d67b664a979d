"""Crash-safe writes: everything artlib writes goes to a temporary file first and is renamed.

A reader therefore sees either the old complete file or the new complete file, never a
half-written one, even after a power cut or SIGKILL.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (read without changing it where /proc allows), for the modes of new files."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:  # elsewhere: read it by setting it, then put it back at once (one thread at a time)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a just-written byte range to the disk now (``posix_fadvise`` DONTNEED, which
    keeps pages still being written), so the fsync after the file's last bytes finds little left; where the call is
    missing (not POSIX) or refused, a no-op: it is a hint only.

    Used by the feature cache per batch and by model.pt every 16 MiB. Not by the per-epoch checkpoint slots: there,
    180 MB at once from two threads, the call waits for the disk and doubled the nine slot writes' time."""
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


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
        _fsync_folder(path.parent)  # the rename itself survives a power cut
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp_path)):  # a bare "[Errno 28]": name the file
            from artlib.errors import DataError

            raise DataError(f"{path}: could not be written ({exc.strerror or exc}); nothing was changed. Free some "
                            f"space or choose another folder.") from None
        raise


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries to disk (POSIX; elsewhere, or where the file system refuses, a no-op)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


MARKER_PREFIX = ".artlib-"
"""A folder artlib wrote whole holds ``.artlib-<kind>``: only such a folder is ever replaced."""


def _inside(child: Path, parent: Path) -> bool:
    """True when ``child`` is ``parent`` or lies below it (both resolved)."""
    return child == parent or parent in child.parents


def check_replaceable(path: str | os.PathLike[str], kind: str, option: str,
                      protect: tuple[str | os.PathLike[str], ...] = ()) -> None:
    """Raise a DataError unless ``path`` is absent, an empty folder, or artlib's own earlier ``kind`` output.

    Never replaced, marker or not: a folder that is or contains the current directory or any of
    ``protect`` (callers pass the repository, the data root, the run directory), or anything that is not a folder.
    """
    from artlib.errors import DataError

    path = Path(path)
    target = path.resolve()
    fix = f"choose another folder for {option}"
    for other, what in [(Path.cwd(), "the current directory"),
                        *((Path(p), "the repository, the data or the run directory") for p in protect)]:
        if _inside(other.resolve(), target):
            raise DataError(f"{path}: is or contains {what} ({other}); artlib will not replace it. {fix.capitalize()}.")
    if not os.path.lexists(path):
        return
    if not path.is_dir() or path.is_symlink():
        raise DataError(f"{path}: already exists and is not a folder artlib wrote; nothing was changed. "
                        f"{fix.capitalize()}.")
    if any(path.iterdir()) and not (path / f"{MARKER_PREFIX}{kind}").is_file():
        raise DataError(f"{path}: already holds files that artlib did not write as {kind} output (no "
                        f"{MARKER_PREFIX}{kind} marker); nothing was changed. {fix.capitalize()}, or empty it yourself.")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], kind: str, option: str,
               protect: tuple[str | os.PathLike[str], ...] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (whole, by one rename).

    The folder gets the marker ``.artlib-<kind>``; an existing ``path`` is replaced only when
    :func:`check_replaceable` allows it (checked before anything is written), else a DataError names
    it and ``option``.
    """
    import shutil

    path = Path(path)
    check_replaceable(path, kind, option, protect)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))  # same file system: rename is atomic
    old = None
    try:
        yield tmp
        (tmp / f"{MARKER_PREFIX}{kind}").touch(exist_ok=True)
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; give what mkdir would have given
        check_replaceable(path, kind, option, protect)  # again: something may have arrived meanwhile
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "x")
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            os.replace(old / "x", path)  # put the earlier output back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_at(fd: int, data: memoryview, offset: int) -> None:
    """Write every byte of ``data`` at ``offset`` (os.pwrite, which may write fewer than asked; where it does not
    exist, Windows, lseek and write: then one thread per descriptor)."""
    done = 0
    while done < data.nbytes:
        if hasattr(os, "pwrite"):
            n = os.pwrite(fd, data[done:], offset + done)
        else:
            os.lseek(fd, offset + done, os.SEEK_SET)
            n = os.write(fd, data[done:])
        if n <= 0:  # (never expected: a write that makes no progress would otherwise loop forever)
            raise OSError(errno.EIO, "the write made no progress")
        done += n


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


def read_json(path: str | os.PathLike[str], fix: str) -> Any:
    """Parse a JSON file, or raise a DataError naming it, what is wrong and ``fix`` (damaged, missing, unreadable)."""
    from artlib.errors import DataError

    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {fix}.") from None
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DataError(f"{path}: damaged or unreadable ({str(exc).strip()[:120]}); {fix}.") from None


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
