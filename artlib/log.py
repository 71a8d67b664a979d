"""Status messages through :mod:`logging`: shown in notebooks and terminals, silenced with one call.

artlib's loggers live under ``"artlib"``. Unless the application configured that logger itself,
artlib gives it one handler that writes INFO and above to the *current* ``sys.stdout`` (so Jupyter
shows the lines under the cell that caused them). ``quiet()`` keeps only warnings — the loud
backbone-weights banner is a warning, so it stays visible.
"""

from __future__ import annotations

import logging
import sys
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
