"""Two training notebooks at once: do they oversubscribe the cores? Both sides timed in one run.

    python benchmarks/concurrent_notebooks.py [--notebooks 03 04] [--out runs/bench/concurrent]

Runs notebook 02 once to prepare a manifest, then the two training notebooks one after the other (each in a
fresh run directory), then both started together (in two more fresh run directories), with papermill and the
notebooks' default parameters. Prints each wall time and the ratio of the concurrent wall time (until both
finished) to the sequential total: about 1 means side-by-side work costs nothing extra.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from artlib import rundir
from artlib.paths import repo_root, resolve_path

NOTEBOOKS = repo_root() / "notebooks"


def command(notebook: str, run_dir: Path, out: Path) -> list[str]:
    """papermill's command line for one notebook into run_dir (progress bars off via the environment)."""
    source = next(NOTEBOOKS.glob(f"{notebook}_*.ipynb"))
    return [sys.executable, "-m", "papermill", str(source), str(out / f"{notebook}-{run_dir.name}.ipynb"),
            "-p", "run_dir", str(run_dir), "--cwd", str(NOTEBOOKS), "--no-progress-bar", "-k", "python3"]


def fresh(template: Path, where: Path) -> Path:
    """A run directory holding the prepared manifest and report."""
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    rundir.copy_prepared(template, where)
    return where


def main() -> None:
    """Time the notebooks sequentially and concurrently; print and save the ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", nargs=2, default=["03", "04"])
    parser.add_argument("--out", default="runs/bench/concurrent")
    args = parser.parse_args()
    out = resolve_path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ARTLIB_PROGRESS": "0"}
    env.pop("ARTLIB_RUN_DIR", None)
    template = out / "prepared"
    subprocess.run(command("02", template, out), check=True, env=env, capture_output=True)
    sequential = {}
    for nb in args.notebooks:
        t0 = time.perf_counter()
        subprocess.run(command(nb, fresh(template, out / f"seq-{nb}"), out), check=True, env=env, capture_output=True)
        sequential[nb] = time.perf_counter() - t0
    t0 = time.perf_counter()
    procs = {nb: subprocess.Popen(command(nb, fresh(template, out / f"con-{nb}"), out), env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for nb in args.notebooks}
    together = {}
    while len(together) < len(procs):
        for nb, proc in procs.items():
            if nb not in together and proc.poll() is not None:
                together[nb] = time.perf_counter() - t0
        time.sleep(0.5)
    report = {"sequential_seconds": sequential, "together_seconds": together,
              "ratio": max(together.values()) / sum(sequential.values())}
    print(json.dumps(report, indent=1))
    (out / "concurrent_notebooks.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
