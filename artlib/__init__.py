"""artlib: reproducible genre-aware emotion classification of artworks.

Importing ``artlib`` is cheap (no torch); import submodules for the work itself:
``artlib.data.manifest`` (prepare), ``artlib.train.runner`` (training stages), ``artlib.analysis.compare`` …
"""

__version__ = "0.1.0"

from artlib.errors import DataError  # noqa: E402  (re-exported: the one error users catch)

__all__ = ["DataError", "__version__"]

from artlib import log as _log  # noqa: E402

_log.setup()
