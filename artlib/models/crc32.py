"""CRC-32 (zlib's) computed fast, and the CRC-32 of joined parts from the parts' CRCs (zlib's crc32_combine).

:func:`crc32` is zlib-ng's (``zlib-ng`` package: carry-less multiplication, about 27 GB/s on the 2-core machine
the README's figures come from, against 4.7 GB/s for Python's ``zlib.crc32``); where it is not installed, Python's
``zlib.crc32``: the same function, the same values (tested against it), only slower. The per-epoch checkpoint slot
is written by two threads, each computing the CRC-32 of its half (artlib.models.tensorfile); the file's CRC-32 is
combined from them with :func:`crc32_combine`, which Python's zlib does not expose. Tested against ``zlib.crc32``
of the whole.
"""

from __future__ import annotations

import functools
import zlib
from typing import Union

try:  # zlib-ng's CRC-32: the same values as zlib's, several times faster (it releases the GIL, as zlib's does)
    from zlib_ng.zlib_ng import crc32 as _crc32
except ImportError:  # pragma: no cover (zlib-ng is a dependency; a platform without its wheel falls back)
    _crc32 = zlib.crc32

Buffer = Union[bytes, bytearray, memoryview]


def crc32(data: Buffer, value: int = 0) -> int:
    """zlib's CRC-32 of ``data`` continuing from ``value`` (``zlib.crc32(data, value)``), through zlib-ng if installed."""
    return _crc32(data, value)


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
