"""CRC-32 of joined parts from the parts' CRCs: zlib's crc32_combine, which Python's zlib does not expose.

The per-epoch checkpoint slot is written by two threads, each computing the CRC-32 of its half
(artlib.models.tensorfile); the file's CRC-32 is combined from them. Tested against ``zlib.crc32`` of the whole.
"""

from __future__ import annotations

import functools


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
