"""glibc keeps freed memory for reuse during a stage-run (no fresh pages faulted in per batch) and hands it back after;
a user's own malloc settings are left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from artlib.train.allocator import glibc

# Run in a fresh interpreter each: the allocator's settings are process-wide. numpy's huge-page hint is off, so that
# glibc's defaults fault in every 4 KiB page of a fresh mapping (with huge pages, fewer faults would hide the
# difference this test looks for).
SCRIPT = textwrap.dedent("""
    import contextlib, json, os, resource, sys
    import numpy as np
    from artlib.train.allocator import freed_memory_kept

    PAGE = os.sysconf("SC_PAGE_SIZE")

    def rss_mb():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * PAGE / 2**20

    def cycles(n):  # three activations (24, 48 and 80 MB) made and freed per "batch", as a forward pass does
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(n):
            a, b, c = np.ones(3_000_000), np.ones(6_000_000), np.ones(10_000_000)
            del a, b, c
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n

    block = freed_memory_kept if sys.argv[1] == "kept" else (lambda: contextlib.nullcontext(False))
    with block() as kept:
        with block() as nested:
            cycles(2)
        faults = cycles(10)  # after the nested block ended: still kept
        held = [np.ones(3_000_000) for _ in range(8)]  # 192 MB, then freed: kept on the heap
        del held
        rss_inside = rss_mb()
    rss_after = rss_mb()
    print(json.dumps({"kept": kept, "nested": nested, "faults": faults, "page": PAGE,
                      "rss_inside": rss_inside, "rss_after": rss_after}))
""")


def _run(mode: str, **env: str) -> dict:
    """The script's figures, in a fresh interpreter with numpy's huge-page hint off (and ``env``)."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0", **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(glibc() is None, reason="glibc's allocator only")
def test_freed_memory_is_reused_within_the_block_and_handed_back_after_it() -> None:
    """A 'batch' of 152 MB faults in about 37,000 fresh 4 KiB pages when glibc unmaps or trims it (the control, glibc's
    defaults: well over 5,000); kept, almost none. After the block the 192 MB freed last goes back to the kernel."""
    control, kept = _run("default"), _run("kept")
    pages = 152e6 / kept["page"]
    if control["faults"] < 0.15 * pages:  # e.g. transparent huge pages set to 'always': few faults either way
        pytest.skip(f"glibc's defaults faulted only {control['faults']:.0f} pages per batch here: nothing to compare")
    assert kept["kept"] is True and kept["nested"] is True
    assert kept["faults"] < 0.01 * pages
    assert kept["rss_inside"] - kept["rss_after"] > 150  # MB handed back


@pytest.mark.skipif(glibc() is None, reason="glibc's allocator only")
def test_a_users_own_malloc_settings_are_left_alone() -> None:
    """With MALLOC_TRIM_THRESHOLD_ set by the user, the block changes nothing and says so."""
    got = _run("kept", MALLOC_TRIM_THRESHOLD_="131072")
    assert got["kept"] is False and got["nested"] is False
