"""Tensors in the safetensors format, written in place with a CRC32, for the per-epoch training state.

The resume state of an epoch (trainable weights and Adam's moments, ~180 MB for conv5) is written after
every epoch. :func:`write` streams each tensor's bytes straight from its memory to the file with ``os.write``
and ``zlib.crc32``, both of which release the GIL, so the write runs in a background thread while the
validation pass computes; it overwrites the file in place (no new file, no freed blocks) and fsyncs it. The
file is plain safetensors (no pickle: :func:`read` parses it with ``safetensors.torch.load``, from the very bytes
whose CRC32 it checked against the one the caller kept: safetensors itself has no checksum).

Channels-last 4-D tensors are stored as their NHWC memory (a permuted view, no copy) and listed in the
metadata, so they come back in the same layout with the same bytes.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from artlib.errors import CheckpointError, DataError

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
          torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
          torch.bool: "BOOL"}
CHUNK = 1 << 24  # bytes per os.write call
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
    head, parts = _layout(tensors)
    path = Path(path)
    crc, size = zlib.crc32(head), len(head)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)  # Windows: no newline mangling
        try:
            _write_all(fd, memoryview(head))
            for raw in parts:
                for lo in range(0, raw.nbytes, CHUNK):
                    piece = raw[lo: lo + CHUNK]
                    crc = zlib.crc32(piece, crc)
                    _write_all(fd, piece)
                size += raw.nbytes
            os.ftruncate(fd, size)  # an older, longer file (other settings) must not keep a tail
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:  # e.g. a full disk: name the file and what to do (the last record stays valid)
        fix = ("Free some space or choose another run_dir" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
               else "Check that the folder is writable, or choose another run_dir")
        raise DataError(f"{path}: could not be written ({exc.strerror or exc}); the previous epoch's checkpoint is "
                        f"unchanged. {fix}, then rerun to resume.") from None
    return Written(path, size, crc)


def _write_all(fd: int, data: memoryview) -> None:
    """os.write until every byte is written (it may write fewer than asked)."""
    done = 0
    while done < data.nbytes:
        done += os.write(fd, data[done:])


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
