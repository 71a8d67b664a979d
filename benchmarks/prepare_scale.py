"""Time `prepare` (labels, eras, name repair, near-duplicate search, splits; no image decoding) on real-sized CSVs.

Generates an ArtEmis-format CSV of 454,684 annotations over 80,000 paintings and a matching
classes.csv (plus zero-byte placeholder images so the on-disk lookup runs as on real data),
then times ``prepare(..., check_images=False)`` end to end, reading the CSVs included.

    python benchmarks/prepare_scale.py [--paintings 80000] [--rows 454684] [--out runs/bench/prepare]
"""

from __future__ import annotations

import argparse
import json
import time

from artlib import atomic
from artlib.data.prepare import PrepareConfig, prepare
from artlib.paths import resolve_path
from scale_data import generate_scale_csvs


def main() -> None:
    """Generate (once) and time one preparation; print and save the numbers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paintings", type=int, default=80_000)
    parser.add_argument("--rows", type=int, default=454_684)
    parser.add_argument("--out", default="runs/bench/prepare")
    args = parser.parse_args()
    out = resolve_path(args.out)
    root = out / f"data-{args.paintings}-{args.rows}"
    if not (root / "data_em" / "artemis_dataset_release_v0.csv").is_file():
        t0 = time.perf_counter()
        generate_scale_csvs(root, args.paintings, args.rows)
        print(f"generated {root} in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    result = prepare(root, out / "run", PrepareConfig(check_images=False), progress=False)
    seconds = time.perf_counter() - t0
    counts = {row["step"]: row["count"] for row in result.report["funnel"]}
    summary = {"annotation_rows": counts["rows read"], "paintings": counts["listed in classes.csv"],
               "manifest_rows": len(result.manifest), "names_repaired": result.report["names_repaired"],
               "near_duplicate_groups": result.report["grouping"]["near_duplicates"]["groups"],
               "phash_distance": result.report["grouping"]["near_duplicates"]["max_distance"],
               "seconds": round(seconds, 2)}
    print(json.dumps(summary, indent=2))
    atomic.write_json(out / "prepare_scale.json", summary)


if __name__ == "__main__":
    main()
