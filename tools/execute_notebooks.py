"""Execute the committed notebooks in place with their default parameters (for `make notebooks`).

Run with ARTLIB_RUN_DIR pointing at a scratch directory so the stored outputs come from a clean run.
"""

from __future__ import annotations

import sys
import time

import papermill

from artlib.series import notebook_paths


def main(names: list[str]) -> int:
    """Execute each notebook (all by default) in place; stop at the first failure."""
    for nb in notebook_paths():
        if names and not any(nb.name.startswith(n) for n in names):
            continue
        t0 = time.perf_counter()
        papermill.execute_notebook(str(nb), str(nb), kernel_name="python3", cwd=str(nb.parent), progress_bar=False)
        print(f"{nb.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
