"""Where things live: the repository root, run directories and the data root.

Notebooks run with their own folder as working directory under nbval and with the
caller's under papermill, so every default path is resolved against the repository
root, never the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

RUN_DIR_ENV = "ARTLIB_RUN_DIR"
"""When set, overrides every notebook's ``run_dir`` (tests use it to keep away from runs/demo)."""
ROOT_ENV = "ARTLIB_ROOT"


def repo_root() -> Path:
    """The repository root: the checkout holding this package, else $ARTLIB_ROOT, else the cwd."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "artlib").is_dir():
        return here
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).expanduser().resolve()
    return Path.cwd().resolve()


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """An absolute path: relative paths are taken relative to the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (repo_root() / p)


def resolve_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    """The run directory to use: $ARTLIB_RUN_DIR if set, else ``run_dir`` against the repo root."""
    override = os.environ.get(RUN_DIR_ENV)
    out = resolve_path(override if override else run_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def display_path(path: str | os.PathLike[str]) -> str:
    """A short form of ``path`` for messages and notebook output: relative to the repo root if inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(repo_root()))
    except ValueError:
        return str(p)
