"""glibc keeps freed memory for reuse during a stage-run (no fresh pages faulted in per batch) and hands it back after."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from artlib.train.allocator import glibc

# Run in a fresh interpreter: the allocator's settings are process-wide.
SCRIPT = textwrap.dedent("""
    import json, resource
    import numpy as np
    from artlib.train.allocator import freed_memory_kept

    def rss_mb():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096 / 2**20

    def cycles(n):  # two 24 MB activations made and freed per "batch", as a forward pass does
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(n):
            a, b = np.ones(3_000_000), np.ones(3_000_000)
            del a, b
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n

    with freed_memory_kept() as kept:
        with freed_memory_kept() as nested:
            cycles(2)
        faults_inside = cycles(20)  # after the nested block ended: still kept
        held = [np.ones(3_000_000) for _ in range(8)]  # 192 MB, then freed: kept on the heap
        del held
        rss_inside = rss_mb()
    rss_after = rss_mb()
    print(json.dumps({"kept": kept, "nested": nested, "faults_inside": faults_inside,
                      "rss_inside": rss_inside, "rss_after": rss_after}))
""")


@pytest.mark.skipif(glibc() is None, reason="glibc's allocator only")
def test_freed_memory_is_reused_within_the_block_and_handed_back_after_it() -> None:
    """Each 'batch' of 48 MB would fault in about 11,700 fresh pages if glibc unmapped or trimmed it; kept, it
    faults almost none. After the block the 192 MB freed last is returned to the kernel."""
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["kept"] is True and got["nested"] is True
    assert got["faults_inside"] < 200  # pages per batch
    assert got["rss_inside"] - got["rss_after"] > 150  # MB handed back
