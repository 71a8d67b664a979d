"""Command line: ``python -m artlib <command>`` exposes the notebooks' functions for scripted use."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from artlib.errors import CheckpointError, DataError


def _cmd_demo_data(args: argparse.Namespace) -> int:
    """Write the synthetic demo data root."""
    from artlib.demo import DemoSpec, generate

    counts = generate(args.out, DemoSpec(seed=args.seed, scale=args.scale))
    print(f"Wrote a SYNTHETIC demo data root to {args.out}: {counts}")
    return 0


def _parse_fractions(text: str) -> tuple[float, float, float]:
    """'70/15/15' or '0.7,0.15,0.15' → (0.7, 0.15, 0.15)."""
    parts = [float(p) for p in text.replace("/", ",").split(",")]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("give three numbers, e.g. 70/15/15")
    total = sum(parts)
    return (parts[0] / total, parts[1] / total, parts[2] / total)


def _cmd_prepare(args: argparse.Namespace) -> int:
    """Build manifest.csv and prepare_report.json."""
    from artlib.manifest import PrepareConfig, export_layout, format_funnel, prepare
    from artlib.paths import resolve_data_root

    config = PrepareConfig(label_rule=args.label_rule, era_map=args.era_map, seed=args.seed,
                           fractions=args.splits, group_by=args.group_by, cap_per_era=args.cap_per_era,
                           cap_per_emotion=args.cap_per_emotion, check_images=not args.no_check_images,
                           workers=args.workers)
    t0 = time.perf_counter()
    data_root = resolve_data_root(args.data_root)
    result = prepare(data_root, args.out, config, progress=not args.quiet)
    print(format_funnel(result.funnel))
    excluded = {k: len(v) for k, v in result.report["excluded"].items() if v}
    if excluded:
        print(f"excluded images by reason: {excluded} (paths in {Path(args.out) / 'prepare_report.json'})")
    if args.export_layout:
        counts = export_layout(result.manifest, data_root / "archive", args.export_layout)
        print(f"symlinked the original folder layout into {args.export_layout}: {counts}")
    print(f"wrote {Path(args.out) / 'manifest.csv'} ({len(result.manifest)} paintings) in {time.perf_counter() - t0:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(prog="python -m artlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-data", help="write a synthetic data root in the real formats")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the number of paintings")
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser("prepare", help="labels, eras, image checks and splits → OUT/manifest.csv")
    p.add_argument("--data-root", required=True, help="folder with archive/, data_gen/, data_em/ (or 'demo')")
    p.add_argument("--out", required=True, type=Path, help="run directory to write manifest.csv into")
    p.add_argument("--label-rule", choices=["unanimous", "majority"], default="unanimous")
    p.add_argument("--era-map", choices=["chronological", "seed"], default="chronological")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--splits", type=_parse_fractions, default=(0.7, 0.15, 0.15), help="train/val/test, e.g. 70/15/15")
    p.add_argument("--group-by", choices=["phash", "artist", "none"], default="phash",
                   help="keep these groups in one split (phash: near-duplicates; artist: artist-disjoint)")
    p.add_argument("--cap-per-era", type=int, default=None, help="at most N paintings per era (the original: ~2900)")
    p.add_argument("--cap-per-emotion", type=int, default=None, help="at most N paintings per emotion class")
    p.add_argument("--no-check-images", action="store_true", help="only look files up, do not decode them")
    p.add_argument("--workers", type=int, default=None, help="processes for image checks (default: all cores)")
    p.add_argument("--export-layout", type=Path, default=None,
                   help="also symlink the original's folder layout (one folder per era / emotion) here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a sub-command; user errors print one clear line and exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, CheckpointError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
