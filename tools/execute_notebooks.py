"""Sync, execute and clean the notebooks (``make notebooks``): the .py sources are the truth for inputs.

    python tools/execute_notebooks.py [01 06 …]      # all numbered notebooks by default

1. ``jupytext --sync`` each pair, so the .ipynb holds the .py file's cells (outputs of unchanged
   cells are kept).
2. Execute the .ipynb in place with its default parameters (papermill) — run with
   ARTLIB_RUN_DIR pointing at a scratch directory so outputs come from a clean run — with progress
   bars off (ARTLIB_PROGRESS=0), so stored outputs hold no bar timings.
3. Clean what would change on every run without the results changing: papermill's timestamps and
   durations, execution metadata, widget state; cell ids become stable (``06-03``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import papermill

from artlib.log import filtered_stderr

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def _coalesce(outputs: list) -> list:
    """Merge consecutive stream outputs of the same stream (how they are split depends on timing, not content)."""
    merged: list = []
    for out in outputs:
        if merged and out.get("output_type") == "stream" and merged[-1].get("output_type") == "stream" \
                and merged[-1].get("name") == out.get("name"):
            merged[-1]["text"] = merged[-1]["text"] + out["text"]
        else:
            merged.append(out)
    return merged


def clean(nb: nbformat.NotebookNode, prefix: str) -> nbformat.NotebookNode:
    """Drop run-specific metadata (papermill, execution times, widgets), set stable cell ids and counts.

    Code cells are numbered 1, 2, … in order (what a fresh kernel running them top to bottom gives): nbval
    compares only cells with an execution count, and refuses a cell that has outputs but none.
    """
    for key in ("papermill", "widgets", "jupytext"):
        nb.metadata.pop(key, None)
    nb.metadata.setdefault("kernelspec", {"display_name": "Python 3 (ipykernel)", "language": "python",
                                          "name": "python3"})
    nb.metadata["language_info"] = {"name": "python"}
    count = 0
    for i, cell in enumerate(nb.cells):
        cell.id = f"{prefix}-{i:02d}"
        for key in ("papermill", "execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
            cell.outputs = _coalesce(cell.get("outputs", []))
            for out in cell.outputs:
                out.pop("execution_count", None)
                if out.get("output_type") == "execute_result":
                    out["execution_count"] = count
    return nb


def sync(py: Path) -> Path:
    """Write the .py file's cells into its paired .ipynb, keeping outputs of cells whose source is unchanged."""
    ipynb = py.with_suffix(".ipynb")
    source = jupytext.read(py)
    if ipynb.is_file():
        old = nbformat.read(ipynb, as_version=4)
        kept = {(c.cell_type, c.source): c for c in old.cells}
        for i, cell in enumerate(source.cells):
            match = kept.get((cell.cell_type, cell.source))
            if match is not None and cell.cell_type == "code":
                cell.outputs = match.get("outputs", [])
            source.cells[i] = cell
    nbformat.write(clean(source, py.name.split("_")[0]), ipynb)
    return ipynb


def main(names: list[str]) -> int:
    """Sync, execute and clean each notebook (all by default); stop at the first failure (``--clean``: clean only)."""
    if names[:1] == ["--clean"]:
        for ipynb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
            nbformat.write(clean(nbformat.read(ipynb, as_version=4), ipynb.name.split("_")[0]), ipynb)
        return 0
    os.environ.setdefault("ARTLIB_PROGRESS", "0")
    for py in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        if names and not any(py.name.startswith(n) for n in names):
            continue
        ipynb = sync(py)
        t0 = time.perf_counter()
        with filtered_stderr():  # the kernel's routine IPKernelApp lines; every other line passes
            papermill.execute_notebook(str(ipynb), str(ipynb), kernel_name="python3", cwd=str(NOTEBOOKS),
                                       progress_bar=False)
        nbformat.write(clean(nbformat.read(ipynb, as_version=4), py.name.split("_")[0]), ipynb)
        print(f"{ipynb.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
