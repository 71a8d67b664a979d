"""Tensors in the safetensors format, written in place with a CRC32, for the per-epoch training state.

The resume state of an epoch (trainable weights and Adam's moments, ~180 MB for conv5) is written after
every epoch. :func:`start_write` hands each tensor's bytes straight from its memory to the file with
``os.pwrite``, two threads each taking half of the file with its own ``zlib.crc32`` (both release the GIL,
so the two cores share the copy and the CRC); :meth:`Unsynced.sync` then waits for the disk (fsync), which
the caller does in a thread while the validation pass computes. The halves' CRCs are combined into the
file's (:func:`crc32_combine`). The file is overwritten in place (no new file, no freed blocks) and is plain
safetensors (no pickle: :func:`read` parses it with ``safetensors.torch.load``, from the very bytes whose
CRC32 it checked against the one the caller kept: safetensors itself has no checksum).

Channels-last 4-D tensors are stored as their NHWC memory (a permuted view, no copy) and listed in the
metadata, so they come back in the same layout with the same bytes.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from artlib import atomic
from artlib.errors import CheckpointError, DataError

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
          torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
          torch.bool: "BOOL"}
CHUNK = 1 << 24  # bytes per write call
NHWC_KEY = "artlib.nhwc"  # metadata: the tensors stored as their channels-last memory


@dataclass(frozen=True)
class Written:
    """What :func:`write` wrote: the file, its size and the CRC32 of all its bytes (to check it on reading)."""

    path: Path
    nbytes: int
    crc32: int


def check_storable(tensors: dict[str, torch.Tensor]) -> None:
    """Raise a TypeError naming the first tensor whose dtype the format cannot hold."""
    for name, tensor in tensors.items():
        if tensor.dtype not in DTYPES:
            raise TypeError(f"{name}: dtype {tensor.dtype} cannot be stored")


def _stored(tensor: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The tensor as a dense array in memory order (channels-last 4-D: its NHWC view, no copy) and whether permuted."""
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1), True
    return t.contiguous(), False


def _raw(t: torch.Tensor) -> memoryview:
    """The bytes of a dense tensor, without copying (bf16 through int16: numpy has no bfloat16)."""
    flat = t.reshape(-1)
    if flat.dtype == torch.bfloat16:
        flat = flat.view(torch.int16)
    return memoryview(flat.numpy()).cast("B")


def _layout(tensors: dict[str, torch.Tensor]) -> tuple[bytes, list[memoryview]]:
    """The safetensors header (8-byte length, JSON padded to 8 bytes) and each tensor's bytes, in file order."""
    header: dict[str, object] = {}
    nhwc, parts, offset = [], [], 0
    check_storable(tensors)
    for name, tensor in tensors.items():
        dense, permuted = _stored(tensor)
        raw = _raw(dense)
        header[name] = {"dtype": DTYPES[tensor.dtype], "shape": list(dense.shape),
                        "data_offsets": [offset, offset + raw.nbytes]}
        nhwc += [name] if permuted else []
        parts.append(raw)
        offset += raw.nbytes
    header["__metadata__"] = {NHWC_KEY: json.dumps(nhwc)}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, parts


def write(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor]) -> Written:
    """Write ``tensors`` to ``path`` in place (created if absent, cut to size), fsync it; returns size and CRC32.

    Not atomic on its own: callers write a file no record points to, then record its CRC (see train/resume.py).
    """
    return start_write(path, tensors).sync()


def start_write(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor]) -> Unsynced:
    """Write every byte of ``tensors`` to ``path`` (two threads, each a half of the file with its CRC32) but do not
    wait for the disk: :meth:`Unsynced.sync` makes it durable.

    The tensors may change as soon as this returns: their bytes are in the operating system's hands.
    """
    head, parts = _layout(tensors)
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)  # Windows: no newline mangling
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        crc = _write_halves(fd, head, parts)
        size = len(head) + sum(raw.nbytes for raw in parts)
        os.ftruncate(fd, size)  # an older, longer file (other settings) must not keep a tail
    except OSError as exc:  # e.g. a full disk: name the file and what to do (the last record stays valid)
        os.close(fd)
        raise _write_error(path, exc) from None
    except BaseException:
        os.close(fd)
        raise
    return Unsynced(path, fd, size, crc)


def _write_halves(fd: int, head: bytes, parts: list[memoryview]) -> int:
    """Write the tensors' bytes, the second half in a thread of its own (where ``os.pwrite`` exists), then the header
    (last: a file cut short has none); the CRC32 of the whole file."""
    first_half, second_half = _halves(parts, len(head))
    if hasattr(os, "pwrite"):
        other: list[int | BaseException] = []
        # The thread writes through a descriptor of its own, which it closes: whatever happens here (even Ctrl-C
        # while it starts), closing ``fd`` can never leave it writing into another file that reused the number.
        thread = threading.Thread(target=_write_range_into, args=(os.dup(fd), second_half, other),
                                  name="artlib-tensorfile")
        thread.start()
        try:
            first = _write_range(fd, first_half)
        finally:
            _join_through_interrupts(thread)
        if isinstance(other[0], BaseException):
            raise other[0]
        second = other[0]
    else:  # (Windows: one thread, positioned writes through lseek)
        first, second = _write_range(fd, first_half), _write_range(fd, second_half)
    atomic.write_at(fd, memoryview(head), 0)
    second_bytes = sum(raw.nbytes for _, raw in second_half)
    first_bytes = sum(raw.nbytes for _, raw in first_half)
    return crc32_combine(crc32_combine(zlib.crc32(head), first, first_bytes), second, second_bytes)


class Unsynced:
    """A file :func:`start_write` wrote, still open, whose bytes may not be on the disk yet."""

    def __init__(self, path: Path, fd: int, nbytes: int, crc32: int) -> None:
        """The open file ``fd`` at ``path``, with the size and CRC32 of what was written."""
        self.path, self.nbytes, self.crc32 = path, nbytes, crc32
        self._fd, self._lock = fd, threading.Lock()

    def _take(self) -> int:
        """The descriptor, once (-1 after it was synced or closed: never closed twice)."""
        with self._lock:
            fd, self._fd = self._fd, -1
        return fd

    def sync(self) -> Written:
        """Wait until the file is on the disk (fsync), close it; its size and CRC32."""
        fd = self._take()
        if fd < 0:
            raise RuntimeError(f"{self.path}: synced or closed already")
        try:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        return Written(self.path, self.nbytes, self.crc32)

    def close(self) -> None:
        """Give the file up without waiting for the disk (no record may name it); a no-op after :meth:`sync`."""
        fd = self._take()
        if fd >= 0:
            os.close(fd)


def _write_error(path: Path, exc: OSError) -> DataError:
    """The error for a failed write: the file, the reason, and what to do (space vs permissions)."""
    fix = ("Free some space or choose another run_dir" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
           else "Check that the folder is writable, or choose another run_dir")
    return DataError(f"{path}: could not be written ({exc.strerror or exc}); the previous epoch's checkpoint is "
                     f"unchanged. {fix}, then rerun to resume.")


Range = list[tuple[int, memoryview]]
"""Tensors' bytes with their offsets in the file, in file order."""


def _halves(parts: list[memoryview], start: int) -> tuple[Range, Range]:
    """The tensors' bytes with their file offsets, cut at a tensor boundary into two runs of about equal size."""
    placed, offset = [], start
    for raw in parts:
        placed.append((offset, raw))
        offset += raw.nbytes
    middle = (start + offset) / 2
    cut = next((i for i, (o, raw) in enumerate(placed) if o + raw.nbytes / 2 >= middle), len(placed))
    return placed[:cut], placed[cut:]


def _write_range(fd: int, placed: Range) -> int:
    """Write a run of tensors at their offsets, in chunks; the run's CRC32."""
    crc = 0
    for offset, raw in placed:
        for lo in range(0, raw.nbytes, CHUNK):
            piece = raw[lo: lo + CHUNK]
            crc = zlib.crc32(piece, crc)
            atomic.write_at(fd, piece, offset + lo)
    return crc


def _write_range_into(fd: int, placed: Range, out: list[int | BaseException]) -> None:
    """:func:`_write_range` in a thread, through its own descriptor ``fd`` (closed here): its CRC32 or its error goes
    into ``out``."""
    try:
        out.append(_write_range(fd, placed))
    except BaseException as exc:  # noqa: BLE001 (re-raised by the thread that started this one)
        out.append(exc)
    finally:
        os.close(fd)


def _join_through_interrupts(thread: threading.Thread) -> None:
    """Wait for ``thread`` even through Ctrl-C (its file descriptor must outlive it), then pass an interrupt on."""
    interrupted: KeyboardInterrupt | None = None
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt as exc:
            interrupted = exc
    if interrupted is not None:
        raise interrupted


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC32 of A+B from crc32(A), crc32(B) and len(B), as zlib's crc32_combine (which Python does not expose):
    appends len(B) zero bytes to crc1 through precomputed GF(2) operators, one per set bit of len(B)."""
    k = 0
    while len2:
        if len2 & 1:
            crc1 = _times(_zeros_operator(k), crc1)
        len2 >>= 1
        k += 1
    return crc1 ^ crc2


def _times(matrix: tuple[int, ...], vector: int) -> int:
    """A 32×32 GF(2) matrix (its columns as words) times a 32-bit vector."""
    out, i = 0, 0
    while vector:
        if vector & 1:
            out ^= matrix[i]
        vector >>= 1
        i += 1
    return out


@functools.cache
def _zeros_operator(k: int) -> tuple[int, ...]:
    """The operator that runs a CRC32 register over 2**k zero bytes (the one-bit operator squared 3 + k times)."""
    if k > 0:
        half = _zeros_operator(k - 1)
        return tuple(_times(half, column) for column in half)
    matrix = (0xEDB88320, *(1 << n for n in range(31)))  # one zero bit: the reflected polynomial, then a shift
    for _ in range(3):
        matrix = tuple(_times(matrix, column) for column in matrix)
    return matrix


def read(path: str | os.PathLike[str], crc32: int, nbytes: int) -> dict[str, torch.Tensor]:
    """The tensors of a file :func:`write` wrote, after checking its size and CRC32 (CheckpointError if changed)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        data = path.read_bytes()  # read once: the bytes checked are the bytes parsed (into memory of their own)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (the checkpoint refers to it).") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    if (zlib.crc32(data), len(data)) != (crc32, nbytes):
        raise CheckpointError(f"{path}: damaged: its bytes changed after they were written (size {len(data):,} for "
                              f"{nbytes:,}, CRC mismatch: disk error, a copy cut short, or an edit).")
    try:
        tensors = load(data)
        (length,) = struct.unpack("<Q", data[:8])
        nhwc = json.loads(json.loads(data[8: 8 + length]).get("__metadata__", {}).get(NHWC_KEY, "[]"))
    except (SafetensorError, ValueError, struct.error) as exc:
        raise CheckpointError(f"{path}: cannot be read ({type(exc).__name__}: {str(exc)[:200]}).") from None
    return {k: (v.permute(0, 3, 1, 2) if k in nhwc else v) for k, v in tensors.items()}
