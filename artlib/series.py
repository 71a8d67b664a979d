"""Running the numbered notebook series headlessly with papermill (what `make demo` does).

Executed copies go to ``run_dir/notebooks/``; the committed notebooks stay untouched. The
series stops at the first failing notebook, keeps its partially executed copy and prints
the failing cell's error. At the end the comparison table is printed and the executed
notebooks are rendered to HTML in ``run_dir/report/`` for sharing without Jupyter.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artlib import rundir
from artlib.log import filtered_stderr
from artlib.paths import display_path, repo_root

log = logging.getLogger(__name__)


@dataclass
class SeriesResult:
    """Which notebooks ran, how long each took, and where the first failure (if any) is."""

    executed: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    failed: Path | None = None
    error: str = ""
    html: list[Path] = field(default_factory=list)


def notebook_paths(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks (NN_name.ipynb) in order."""
    folder = folder or repo_root() / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def _cell_error(nb_path: Path) -> str:
    """The error of the first failed cell of an executed notebook, as 'cell N: Name: message'."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
    return "unknown error (see the notebook)"


def run_series(run_dir: str | os.PathLike[str], parameters: dict[str, Any] | None = None,
               notebooks: list[Path] | None = None, html: bool = True, kernel: str = "python3") -> SeriesResult:
    """Execute the notebooks in order into run_dir/notebooks/, stopping at the first failure."""
    run_dir = Path(run_dir)
    out_dir = rundir.notebooks(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = SeriesResult()
    params = {**(parameters or {}), "run_dir": str(run_dir)}
    with filtered_stderr():  # the kernels' routine IPKernelApp lines are not news to a user
        for nb in notebooks or notebook_paths():
            if not _run_one(nb, out_dir / nb.name, _accepted(nb, params), kernel, result):
                return result
    if html:
        result.html = export_html(result.executed, rundir.report(run_dir))
    return result


def _run_one(nb: Path, target: Path, params: dict[str, Any], kernel: str, result: SeriesResult) -> bool:
    """Execute one notebook into ``target``, recording its time or its failure in ``result``; True when it ran."""
    import papermill

    log.info("▶ %s", nb.name)
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(nb), str(target), parameters=params, kernel_name=kernel, cwd=str(nb.parent),
                                   progress_bar=False)
    except Exception as exc:  # noqa: BLE001 (papermill wraps the cell's error)
        result.failed = target
        result.error = _cell_error(target) if target.is_file() else f"{type(exc).__name__}: {exc}"
        log.error("✗ %s failed — %s\n  the partially executed notebook is kept at %s", nb.name, result.error,
                  display_path(target))
        return False
    result.seconds[nb.name] = time.perf_counter() - t0
    result.executed.append(target)
    log.info("  done in %.0f s → %s", result.seconds[nb.name], display_path(target))
    return True


def _accepted(nb: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Only the parameters this notebook's parameters cell defines (papermill would add the rest blindly)."""
    import ast

    import nbformat

    cells = nbformat.read(nb, as_version=4).cells
    names: set[str] = set()
    for cell in cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign):
                    names.update(t.id for t in node.targets if isinstance(t, ast.Name))
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):  # `name: type = value`
                    names.add(node.target.id)
    return {k: v for k, v in params.items() if k in names}


def export_html(executed: list[Path], out_dir: Path) -> list[Path]:
    """Render executed notebooks to standalone HTML files and an index that leads with the verdicts (atomically)."""
    import nbformat
    from nbconvert import HTMLExporter

    from artlib import atomic

    exporter = HTMLExporter()
    written = []
    for nb in executed:
        body, _ = exporter.from_notebook_node(nbformat.read(nb, as_version=4))
        target = out_dir / (nb.stem + ".html")
        atomic.write_text(target, body)
        written.append(target)
    atomic.write_text(out_dir / "index.html", report_index(out_dir.parent, written))
    return written


KEY_FIGURES = ("06_verdicts.png", "06_emotion_accuracy.png", "08_verdicts.png", "09_backbone_accuracy.png")


def report_index(run_dir: Path, pages: list[Path]) -> str:
    """The report's front page: the verdicts table, the key figures, then links to every notebook."""
    import html

    import pandas as pd

    parts = ["<html><head><meta charset='utf-8'><title>artlib report</title><style>"
             "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}.improved{color:#009E73}"
             ".worse{color:#D55E00}.inconclusive{color:#777}</style></head><body><h1>artlib report</h1>"]
    verdicts = rundir.verdicts(run_dir)
    if verdicts.is_file():
        table = pd.read_csv(verdicts)
        parts.append("<h2>Verdicts</h2><table><tr><th>family</th><th>comparison</th><th>kind</th><th>verdict</th>"
                     "<th>reason</th>"
                     "<th>difference (points)</th><th>interval</th><th>Holm p</th><th>seeds</th></tr>")
        for r in table.itertuples():
            diff = f"{r.difference * 100:+.1f}" if pd.notna(r.difference) else "–"
            ci = f"{r.ci_low * 100:+.1f} to {r.ci_high * 100:+.1f}" if pd.notna(r.ci_low) else "–"
            p = f"{r.p_adjusted:.3g}" if pd.notna(r.p_adjusted) else "–"
            family = html.escape(str(getattr(r, "family", "")))
            parts.append(f"<tr><td>{family}</td><td>{html.escape(str(r.comparison))}</td><td>{html.escape(str(r.kind))}</td>"
                         f"<td class='{html.escape(str(r.verdict))}'><b>{html.escape(str(r.verdict))}</b></td>"
                         f"<td>{html.escape(str(r.reason))}</td><td>{diff}</td><td>{ci}</td><td>{p}</td>"
                         f"<td>{r.n_seeds}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No verdicts yet: run notebook 06.</p>")
    figures = [f for f in KEY_FIGURES if (rundir.figures(run_dir) / f).is_file()]
    if figures:
        parts.append("<h2>Key figures</h2>" + "".join(f"<p><img src='../figures/{f}' style='max-width:100%'></p>"
                                                    for f in figures))
    parts.append("<h2>Notebooks</h2><ul>" + "".join(f'<li><a href="{p.name}">{html.escape(p.stem)}</a></li>'
                                                    for p in pages) + "</ul></body></html>\n")
    return "".join(parts)
