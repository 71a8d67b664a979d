"""The garbage collector during a stage-run: the objects the process held before it are left out of its scans.

Python's full (oldest-generation) collection walks every tracked object of the process: after importing torch,
pandas and artlib that is about 430,000 objects, 0.09 s on the 2-core machine of the README's figures, and one
such collection ran inside the benchmark's stage-run when it was traced (during model building). What a stage-run
allocates is still collected as usual; only the objects that existed before it are skipped while it trains, then
handed back to the collector (:func:`gc.unfreeze`). Freezing keeps unreachable objects too, so the young generations
are collected first (milliseconds): the process's recent garbage is freed, not frozen; older garbage cycles, if any,
wait until the stage-run ends. Where the caller has frozen objects itself, its freeze is left as it is.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def earlier_objects_frozen() -> Iterator[None]:
    """Within the block, garbage collections skip the objects that existed before it (:func:`gc.freeze`, after a
    collection of the young generations); they are unfrozen after it, unless objects were frozen already (then
    nothing changes)."""
    if gc.get_freeze_count():  # someone else's freeze: unfreezing would undo theirs
        yield
        return
    gc.collect(1)  # recent garbage is freed, not frozen
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
