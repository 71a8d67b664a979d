"""CRC-32 (zlib's), computed fast.

:func:`crc32` is zlib-ng's (``zlib-ng`` package: carry-less multiplication, about 27 GB/s on the 2-core machine
the README's figures come from, against 4.7 GB/s for Python's ``zlib.crc32``); where it is not installed, Python's
``zlib.crc32``: the same function, the same values (tested against it), only slower. It checks the per-epoch
checkpoint's files (artlib.models.tensorfile) and the records of torch's zip files (artlib.models.checkpoints).
"""

from __future__ import annotations

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
