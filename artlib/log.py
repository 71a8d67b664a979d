"""Status messages through :mod:`logging`: shown in notebooks and terminals, silenced with one call.

artlib's loggers live under ``"artlib"``. Unless the application configured that logger itself,
artlib gives it one handler that writes INFO and above to the *current* ``sys.stdout`` (so Jupyter
shows the lines under the cell that caused them). ``quiet()`` keeps only warnings — the loud
backbone-weights banner is a warning, so it stays visible.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from typing import TextIO

ROOT = "artlib"


class _StdoutHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stdout`` is at the time of each message."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        """The current standard output (notebooks and test runners replace it)."""
        return sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the handler always follows sys.stdout (StreamHandler assigns it once)."""


def setup() -> logging.Logger:
    """artlib's root logger, with the stdout handler added once (unless handlers were configured)."""
    logger = logging.getLogger(ROOT)
    if not logger.handlers:
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def quiet(level: int = logging.WARNING) -> None:
    """Show only messages at ``level`` and above (default: warnings, e.g. the backbone-weights banner)."""
    setup().setLevel(level)


def verbose() -> None:
    """Show artlib's status messages again (INFO and above)."""
    setup().setLevel(logging.INFO)


PROGRESS_ENV = "ARTLIB_PROGRESS"
"""Set to 0 to turn every progress bar off (``make notebooks`` does, so stored outputs hold no bar timings)."""


def progress(iterable: object = None, *, enabled: bool = True, **kwargs: object) -> object:
    """A plain-text tqdm progress bar (no notebook widgets), off when ``enabled`` is False or $ARTLIB_PROGRESS=0."""
    import os

    from tqdm import tqdm

    show = enabled and os.environ.get(PROGRESS_ENV, "1") != "0"
    return tqdm(iterable, disable=not show, **kwargs)


KERNEL_NOISE = (
    re.compile(r"\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption"),
    re.compile(r"\[IPKernelApp\] ERROR \| KeyboardInterrupt caught in kernel"),
)
"""Lines a Jupyter kernel prints on every headless run that worked: a note about local sockets and the
interrupt papermill's shutdown sends. Only these exact lines are dropped; every other line passes."""


@contextlib.contextmanager
def filtered_stderr(noise: tuple[re.Pattern[str], ...] = KERNEL_NOISE) -> Iterator[None]:
    """Pass file descriptor 2 (this process and the kernels it starts) through a filter dropping ``noise`` lines."""
    import os
    import threading

    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        """Copy lines from the pipe to the real stderr, skipping the noise."""
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not any(p.search(line.decode("utf-8", "replace")) for p in noise):
                    try:
                        os.write(saved, line)
                    except OSError:  # the real stderr is gone (a kernel outlived the block): nowhere to write
                        return

    thread = threading.Thread(target=pump, name="artlib-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer in this process is gone: the pump ends at EOF
        thread.join(timeout=5)
        os.close(saved)
