"""The C allocator during a stage-run: freed memory kept for reuse instead of handed back to the kernel each batch.

glibc serves an allocation above its mmap threshold (128 KiB at first, raised as it goes, at most 32 MiB) with a
fresh mapping, unmapped when freed, and hands the free top of its heap back to the kernel once more than twice that
threshold lies there. A CPU forward pass allocates and frees activations of a few to tens of MB in every batch, so
every batch faults in fresh pages the kernel must zero first. Measured with eager PyTorch on the README's 2-core
machine (bf16, batch 32, the frozen prefix as feature-cache building runs it): 1.5× more images/s with freed memory
kept at 112 px (conv1–conv3: 568–666 → 958–975 img/s; conv1–conv4: 414–425 → 620–631), 1.0–2.1× at 224 px; the
trainable blocks' training steps, whose activations are small, are unchanged (``benchmarks/train_throughput.py``
measures the prefix both ways in every run).

Within :func:`freed_memory_kept` allocations up to 32 MiB (glibc's ceiling for the setting) come from the heap and up
to 1 GiB of freed memory stays there for the next batch; it is never more than the stage-run's own peak, which the
process reached anyway. Afterwards the heap's free memory is handed back (``malloc_trim``) and the trimming threshold
is 64 MiB: the state glibc's own adjustment ends in (setting either value turns that adjustment off for good).
Elsewhere than glibc (macOS, Windows, musl) nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator
from typing import Any

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts (HEAP_MAX_SIZE / 2 on 64-bit)
KEPT_TRIM_THRESHOLD = 1 << 30  # free memory kept on the heap within the block
AFTER_TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # after it: where glibc's dynamic adjustment would end

_depth = 0
_lock = threading.Lock()


def glibc() -> Any | None:
    """The C library's handle where it is glibc (with mallopt and malloc_trim), else None."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL(None)  # the process's own symbols: the C library it runs on
    except (AttributeError, ValueError, OSError):  # no os.confstr or no such name (not glibc), or no handle
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """Within the block, glibc keeps freed memory for reuse (see the module's text); yields whether it does (False
    elsewhere than glibc). Nested blocks leave the setting to the outermost one."""
    global _depth
    libc = glibc()
    with _lock:
        outermost = _depth == 0
        _depth += 1
        applied = libc is not None and (not outermost or _keep(libc))
    try:
        yield applied
    finally:
        with _lock:
            _depth -= 1
            if outermost and applied and libc is not None:
                libc.mallopt(M_TRIM_THRESHOLD, AFTER_TRIM_THRESHOLD)
                libc.malloc_trim(0)


def _keep(libc: Any) -> bool:
    """Set glibc to serve allocations up to 32 MiB from the heap and keep up to 1 GiB of it free; whether it took."""
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD,
                                                                                      KEPT_TRIM_THRESHOLD))
