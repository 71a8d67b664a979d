"""Data roots: the folder holding archive/, data_gen/classes.csv and data_em/artemis…csv, or the demo data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from artlib.data.readers import ARCHIVE_RELPATH, ARTEMIS_RELPATH, CLASSES_RELPATH
from artlib.errors import DataError
from artlib.paths import resolve_path

DEMO_DATA_ENV = "ARTLIB_DEMO_DATA"
"""When set, where the built-in demo data root is generated and read (default runs/demo-data)."""


@dataclass(frozen=True)
class DataPaths:
    """The three inputs of a data root."""

    root: Path
    archive: Path
    classes_csv: Path
    artemis_csv: Path

    @classmethod
    def of(cls, data_root: str | os.PathLike[str]) -> DataPaths:
        """The standard layout under ``data_root``, checked to exist, with a clear error if not."""
        root = Path(data_root)
        if root.exists() and not root.is_dir():
            raise DataError(f"{root}: is a file, not a data root folder. Pass the folder that holds archive/, "
                            f"data_gen/ and data_em/ (or data_root='demo' for the built-in synthetic data).")
        if not root.is_dir():
            raise DataError(f"{root}: data root does not exist. Pass the folder that holds archive/, data_gen/ and "
                            f"data_em/ (or data_root='demo' for the built-in synthetic data).")
        paths = cls(root, root / ARCHIVE_RELPATH, root / CLASSES_RELPATH, root / ARTEMIS_RELPATH)
        missing = [str(p) for p in (paths.archive, paths.classes_csv, paths.artemis_csv) if not p.exists()]
        if missing:
            raise DataError(f"{root}: missing {', '.join(missing)}. Expected archive/<Style>/<painting>.jpg, "
                            f"data_gen/classes.csv and data_em/artemis_dataset_release_v0.csv (see the READMEs there).")
        if not paths.archive.is_dir():
            raise DataError(f"{paths.archive}: is not a directory; put the WikiArt style folders there.")
        return paths


def has_files(folder: Path) -> bool:
    """True when ``folder`` holds a non-hidden file or a symlinked folder at any depth (stops at the first)."""
    for top, dirs, files in os.walk(folder):
        if any(not f.startswith(".") for f in files) or any(os.path.islink(os.path.join(top, d)) for d in dirs):
            return True
    return False


def demo_data_dir() -> Path:
    """Where the built-in demo data root lives ($ARTLIB_DEMO_DATA or runs/demo-data)."""
    return resolve_path(os.environ.get(DEMO_DATA_ENV, "runs/demo-data"))


def resolve_data_root(data_root: str | os.PathLike[str]) -> Path:
    """A data root directory; ``"demo"`` means the built-in demo data, generated on first use."""
    if str(data_root) == "demo":
        from artlib.data.demo import ensure_demo_data  # lazy: keeps Pillow out of plain imports

        return ensure_demo_data(demo_data_dir())
    return resolve_path(data_root)
