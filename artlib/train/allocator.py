"""The C allocator during a stage-run: freed memory kept for reuse instead of handed back to the kernel each batch.

glibc serves an allocation above its mmap threshold (128 KiB at first, raised as blocks are freed, to at most 32 MiB)
with a fresh mapping, unmapped when freed, and hands the free top of its heap back to the kernel once more than the
trimming threshold (twice the mmap threshold once it has been raised) lies there. A CPU forward pass allocates and
frees activations of a few to a hundred MB in every batch, so every batch faults in fresh pages the kernel must zero
first. Measured with eager PyTorch on the README's 2-core machine (bf16, batch 32, the frozen prefix as
feature-cache building runs it): 1.2–1.8× more images/s with freed memory kept at 112 px (medians of two runs),
1.7–2.3× at 224 px; the trainable blocks' training steps, whose activations are small, are unchanged.
``benchmarks/train_throughput.py`` measures the prefix both ways in every run.

Within :func:`freed_memory_kept` allocations up to 256 MiB (32 MiB where glibc refuses more) come from the
heap and up to 1 GiB of free memory stays at its top for the next batch. Memory freed in the middle of the heap is
kept too, so the stage-run's peak can be somewhat higher than with glibc's defaults. Afterwards the free memory is
handed back (``malloc_trim``) and the thresholds are 32 MiB and 64 MiB: the state glibc's own adjustment ends in
(setting either value turns that adjustment off for good). Nothing changes elsewhere than glibc (macOS, Windows,
musl), where another allocator is preloaded (jemalloc, tcmalloc), or where the user set glibc's malloc options
(``MALLOC_*_`` variables or ``GLIBC_TUNABLES``): their choice stands.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
MMAP_THRESHOLDS = (256 << 20, 32 << 20)  # tried in turn (some glibc builds and settings accept at most 32 MiB)
KEPT_TRIM_THRESHOLD = 1 << 30  # free memory kept at the heap's top within the block
AFTER = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20}  # where glibc's dynamic adjustment would end
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")

_lock = threading.Lock()
_state: dict[str, Any] = {"depth": 0, "libc": None}  # blocks open in this process; the C library they set, if any


def glibc() -> Any | None:
    """The C library's handle where glibc is the allocator and its malloc options are artlib's to set, else None."""
    if any(name in os.environ for name in USER_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return None
    if any(name in os.environ.get("LD_PRELOAD", "") for name in OTHER_ALLOCATORS):
        return None
    try:
        import ctypes

        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL(None)  # the process's own symbols: the C library it runs on
    except (ImportError, AttributeError, ValueError, OSError):  # no ctypes; no os.confstr or no such name (not glibc)
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """Within the block, glibc keeps freed memory for reuse (see the module's text); yields whether it does. Blocks
    may nest or overlap (threads): the first to open sets the allocator, the last to close restores it."""
    with _lock:
        if _state["depth"] == 0:
            libc = glibc()
            _state["libc"] = libc if libc is not None and _keep(libc) else None
        _state["depth"] += 1
        applied = _state["libc"] is not None
    try:
        yield applied
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state["libc"] is not None:
                _hand_back(_state["libc"])
                _state["libc"] = None


def _keep(libc: Any) -> bool:
    """Set glibc to serve large allocations from the heap and keep its free top; whether it took (if not, a threshold
    set on the way is put where glibc's own adjustment ends, as after a block)."""
    threshold = next((value for value in MMAP_THRESHOLDS if libc.mallopt(M_MMAP_THRESHOLD, value)), None)
    if threshold is not None and libc.mallopt(M_TRIM_THRESHOLD, KEPT_TRIM_THRESHOLD):
        return True
    if threshold is not None:
        _hand_back(libc)
    return False


def _hand_back(libc: Any) -> None:
    """Set the thresholds where glibc's own adjustment ends and return the heap's free memory to the kernel."""
    for option, value in AFTER.items():
        libc.mallopt(option, value)
    libc.malloc_trim(0)
