"""Command line: ``python -m artlib <command>`` exposes the notebooks' functions for scripted use.

Relative paths: a path you type on the command line is relative to the current directory (as for every
Unix tool); a default you leave out (runs/demo, the demo data) is relative to the repository root, as in
the notebooks and params/*.yaml files.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from artlib import rundir
from artlib.errors import CheckpointError, DataError

PATHS_RULE = ("Relative paths you type are relative to the current directory; defaults you leave out (runs/demo, the "
              "demo data) are relative to the repository root, as in the notebooks and params files.")

if TYPE_CHECKING:
    from artlib.train.config import TrainConfig


def _cmd_demo_data(args: argparse.Namespace) -> int:
    """Write the synthetic demo data root."""
    from artlib.data.demo import DemoSpec, generate

    counts = generate(_user_path(args.out), DemoSpec(seed=args.seed, scale=args.scale))
    print(f"Wrote a SYNTHETIC demo data root to {args.out}: {counts}")
    return 0


def _user_path(value: str | Path) -> Path:
    """A path typed on the command line: relative to the current directory (defaults go through resolve_path)."""
    return Path(value).expanduser().absolute()


def _parse_fractions(text: str) -> tuple[float, float, float]:
    """'70/15/15' or '0.7,0.15,0.15' → (0.7, 0.15, 0.15)."""
    try:
        parts = [float(p) for p in text.replace("/", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give three numbers, e.g. 70/15/15") from None
    if len(parts) != 3 or any(p < 0 or p != p or p == float("inf") for p in parts) or sum(parts) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give three non-negative numbers with a positive sum, e.g. 70/15/15")
    total = sum(parts)
    return (parts[0] / total, parts[1] / total, parts[2] / total)


def _cmd_prepare(args: argparse.Namespace) -> int:
    """Build manifest.csv and prepare_report.json."""
    from artlib.data.funnel import format_funnel
    from artlib.data.manifest import export_layout
    from artlib.data.prepare import PrepareConfig, prepare
    from artlib.data.roots import resolve_data_root

    config = PrepareConfig(label_rule=args.label_rule, era_map=args.era_map, seed=args.seed,
                           split_seeds=args.split_seeds, fractions=args.splits, group_by=args.group_by,
                           phash_distance=args.phash_distance,
                           duplicates=args.duplicates, cap_per_era=args.cap_per_era,
                           cap_per_emotion=args.cap_per_emotion, check_images=not args.no_check_images,
                           workers=args.workers)
    t0 = time.perf_counter()
    data_root = resolve_data_root(args.data_root if args.data_root == "demo" else _user_path(args.data_root))
    out = _user_path(args.out)
    if args.export_layout is not None:  # refuse before the long work, not after it
        from artlib.atomic import check_replaceable
        from artlib.paths import repo_root

        check_replaceable(_user_path(args.export_layout), "layout", "--export-layout", (repo_root(), data_root, out))
    result = prepare(data_root, out, config, progress=not args.quiet)
    print(format_funnel(result.funnel))
    excluded = {k: len(v) for k, v in result.report["excluded"].items() if v}
    if excluded:
        print(f"excluded images by reason: {excluded} (paths in {rundir.prepare_report(args.out)})")
    if args.export_layout:
        counts = export_layout(result.manifest, data_root / "archive", _user_path(args.export_layout),
                               protect=(data_root, out))
        print(f"symlinked the original folder layout into {args.export_layout}: {counts}")
    print(f"wrote {rundir.manifest(args.out)} ({len(result.manifest)} paintings) in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole notebook series on the demo data (or --data-root), then summarise."""
    from artlib.paths import display_path, resolve_path
    from artlib.series import run_series

    run_dir = resolve_path("runs/demo") if args.run_dir is None else _user_path(args.run_dir)
    params: dict = {}
    if args.params is not None:
        import yaml

        params.update(yaml.safe_load(_user_path(args.params).read_text()) or {})
        if "run_dir" in params and args.run_dir is None:
            run_dir = resolve_path(params["run_dir"])  # a params file's paths are the notebooks': repository-relative
    params["run_dir"] = str(run_dir)
    if args.data_root is not None:
        params["data_root"] = args.data_root if args.data_root == "demo" else str(_user_path(args.data_root))
    if args.seeds is not None:
        params["seeds"] = args.seeds
    if args.executor is not None:
        params["executor"] = args.executor
    t0 = time.perf_counter()
    result = run_series(run_dir, params, html=not args.no_html)
    if result.failed is not None:
        return 1
    print(f"\nall {len(result.executed)} notebooks ran in {time.perf_counter() - t0:.0f} s")
    _print_summary(run_dir)
    print(f"results:   {display_path(rundir.results(run_dir))}")
    print(f"verdicts:  {display_path(rundir.verdicts(run_dir))}")
    print(f"notebooks: {display_path(rundir.notebooks(run_dir))}")
    if result.html:
        print(f"report:    {display_path(rundir.report(run_dir) / 'index.html')}")
    return 0


_TRAIN_HELP = {
    "image_size": "pixels (the study: 224)", "epochs": "the study: 100", "lr": "Adam learning rate (the study: 1e-6)",
    "weights": "auto | pretrained (= imagenet) | self-supervised (resnet50) | none | a .pth/.bin/.safetensors file | "
               "a Hugging Face cache folder (timm backbones)",
    "backbone": "the network fine-tuned (the study: resnet50)",
    "device": "auto | cuda | mps | cpu", "precision": "auto | fp32 | bf16",
    "monitor": "early-stopping metric", "patience": "epochs without improvement before stopping",
    "images": "cache (decode once) | files (decode every batch, as the original)",
    "layout": "auto | channels_last | contiguous", "cache_dtype": "feature cache storage: float16 | float32",
    "workers": "image decoding processes (default: all cores)",
}


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field, its default taken from TrainConfig (the one source of defaults)."""
    from artlib.models.registry import BACKBONES
    from artlib.train.config import CACHE_DTYPES, IMAGE_SOURCES, LAYOUTS, MONITORS, PRECISIONS, defaults

    d = defaults()
    choices = {"monitor": tuple(MONITORS), "precision": PRECISIONS, "images": IMAGE_SOURCES, "layout": LAYOUTS,
               "cache_dtype": CACHE_DTYPES, "backbone": tuple(BACKBONES)}
    for name in ("image_size", "epochs", "batch_size", "patience", "workers"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=d[name], help=_TRAIN_HELP.get(name))
    for name in ("lr", "weight_decay"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=d[name], help=_TRAIN_HELP.get(name))
    for name in ("backbone", "weights", "device", "monitor", "precision", "images", "layout", "cache_dtype"):
        p.add_argument(f"--{name.replace('_', '-')}", default=d[name], choices=choices.get(name),
                       help=_TRAIN_HELP.get(name))
    p.add_argument("--augment", action="store_true", default=d["augment"], help="flips and small affine changes")
    p.add_argument("--no-class-weights", dest="class_weights", action="store_false", default=d["class_weights"])
    p.add_argument("--no-feature-cache", dest="feature_cache", action="store_false", default=d["feature_cache"])
    p.add_argument("--no-draft", dest="draft", action="store_false", default=d["draft"],
                   help="decode JPEGs at full size before resizing")


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the parsed options describe."""
    from dataclasses import fields

    from artlib.train.config import TrainConfig

    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)})


def _print_summary(run_dir: Path) -> None:
    """The emotion stages' accuracy beside both baselines, then every verdict, from the run's files."""
    import pandas as pd

    from artlib.tasks import EMOTION, rows_of

    with pd.option_context("display.width", 200, "display.precision", 3, "display.max_colwidth", 70):
        if rundir.comparison(run_dir).is_file():
            table = pd.read_csv(rundir.comparison(run_dir))
            cols = [c for c in ("stage", "accuracy_mean", "accuracy_std", "accuracy_ci_low", "accuracy_ci_high",
                                "majority_baseline_accuracy", "era_prior_baseline_accuracy") if c in table.columns]
            print(rows_of(table, EMOTION)[cols].to_string(index=False))
        if rundir.verdicts(run_dir).is_file():
            verdicts = pd.read_csv(rundir.verdicts(run_dir))
            columns = [c for c in ("family", "comparison", "verdict", "reason") if c in verdicts.columns]
            print(verdicts[columns].to_string(index=False))


def _cmd_train(args: argparse.Namespace) -> int:
    """Train stages (sources first) into a run directory that holds a manifest."""
    from artlib.stages import CONFIGURATIONS, get_stage
    from artlib.train.driver import run_stages
    from artlib.train.grid import Executor, GridFailure

    names = [s for c in args.configuration for s in CONFIGURATIONS[c]] if args.configuration else args.stages
    if not names:
        raise ValueError("name stages (e.g. genre_conv4) or --configuration 1 … 6 (6: the linear probes)")
    for name in names:
        get_stage(name, "train: stage")
    executor = Executor(args.executor, args.cpus_per_stage, args.gpus_per_stage, args.ray_address)
    try:
        rows = run_stages(names, _user_path(args.run_dir), train_config(args), seeds=args.seeds, force=args.force,
                          progress=not args.quiet, executor=executor, plan=args.plan, split_seeds=args.split_seeds)
    except GridFailure as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    if not args.plan and len(rows):
        print(rows[["stage", "backbone", "seed", "split_seed", "accuracy", "f1", "majority_baseline_accuracy",
                    "best_epoch"]].to_string(index=False))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    """Emotion (and era) probabilities for image files; exit 1 if any file could not be read."""
    import pandas as pd

    from artlib.analysis.predict import predict_images, write_predictions

    frame = predict_images(_user_path(args.run_dir), [_user_path(p) for p in args.images], stage=args.stage, seed=args.seed,
                           gradcam_dir=args.gradcam_dir)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        ok = frame[frame["error"] == ""].drop(columns=["error"])
        if len(ok):
            print(ok.to_string(index=False))
    for row in frame[frame["error"] != ""].itertuples():
        print(f"error: {row.image}: {row.error}", file=sys.stderr)
    if args.out:
        write_predictions(frame, args.out)
    return 1 if (frame["error"] != "").any() else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    """Recompute comparison.csv and verdicts.csv from a finished run directory; print conclusions and the power plan."""
    from artlib.analysis.family import compare_run

    run_dir = _user_path(args.run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run directory; give --run-dir a folder that training wrote.")
    judgements = compare_run(run_dir, alpha=args.alpha)
    for j in judgements:
        print(f"== family: {j.family} ==")
        print(j.conclusion)
        print(j.plan_text)
    if not judgements:
        print("no comparison has both of its stages trained yet, so there is no verdict to give "
              "(the stages' table is in comparison.csv)")
    print(f"wrote {rundir.comparison(run_dir)}" + (f" and {rundir.verdicts(run_dir)}" if judgements else ""))
    return 0


def _prepare_parser(sub: argparse._SubParsersAction) -> None:
    """The ``prepare`` sub-command's options (choices from artlib.data, not repeated here)."""
    from artlib.data.labels import ERA_MAPS, LABEL_RULES
    from artlib.data.prepare import GROUP_BY, PrepareConfig

    d = PrepareConfig()
    p = sub.add_parser("prepare", epilog=PATHS_RULE, help="labels, eras, image checks and splits → OUT/manifest.csv")
    p.add_argument("--data-root", required=True, help="folder with archive/, data_gen/, data_em/ (or 'demo')")
    p.add_argument("--out", required=True, type=Path, help="run directory to write manifest.csv into")
    p.add_argument("--label-rule", choices=LABEL_RULES, default=d.label_rule)
    p.add_argument("--era-map", choices=tuple(ERA_MAPS), default=d.era_map)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--split-seeds", type=int, default=d.split_seeds, metavar="K",
                   help="K repeated random splits (column split, then split_1 …); train runs every stage on each")
    p.add_argument("--splits", type=_parse_fractions, default=d.fractions, help="train/val/test, e.g. 70/15/15")
    p.add_argument("--group-by", choices=GROUP_BY, default=d.group_by,
                   help="keep groups in one split: phash = near-duplicates; artist = artists and near-duplicates; "
                        "none = no near-duplicate grouping (a --duplicates list still holds)")
    p.add_argument("--phash-distance", type=int, default=d.phash_distance,
                   help="near-duplicates: phashes at most this many bits apart (default from a measurement, README)")
    p.add_argument("--duplicates", default=None,
                   help="ArtEmis's wiki_art_duplicate_paintings.pkl as shipped, or a CSV of duplicate pairs")
    p.add_argument("--cap-per-era", type=int, default=None, help="at most N paintings per era (the original: ~2900)")
    p.add_argument("--cap-per-emotion", type=int, default=None, help="at most N paintings per emotion class")
    p.add_argument("--no-check-images", action="store_true", help="only look files up, do not decode them")
    p.add_argument("--workers", type=int, default=None, help="processes for image checks (default: all cores)")
    p.add_argument("--export-layout", type=Path, default=None,
                   help="also symlink the original's folder layout (one folder per era / emotion) here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_prepare)


def _train_parser(sub: argparse._SubParsersAction) -> None:
    """The ``train`` sub-command's options (training options from TrainConfig)."""
    from artlib.stages import CONFIGURATION_NAMES

    p = sub.add_parser("train", epilog=PATHS_RULE, help="train stages into a run directory holding manifest.csv")
    p.add_argument("stages", nargs="*", help="stage names (sources run first when missing)")
    p.add_argument("--configuration", type=int, nargs="+", choices=sorted(CONFIGURATION_NAMES), default=None,
                   help="; ".join(f"{k}: {v}" for k, v in CONFIGURATION_NAMES.items()))
    p.add_argument("--run-dir", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--split-seeds", type=int, default=None, metavar="K",
                   help="train every stage on the manifest's first K splits (default: every split prepare wrote)")
    _add_train_options(p)
    _add_executor_options(p)
    p.add_argument("--plan", action="store_true", help="print the stage-runs, cache sizes and estimated time; train nothing")
    p.add_argument("--force", action="store_true", help="retrain finished stages")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)


def _add_executor_options(p: argparse.ArgumentParser) -> None:
    """Where the grid's stage-runs run: this process, or Ray (a local instance or a cluster)."""
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: one stage-run after another in this process; ray: each stage-run a Ray task")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster to use: 'auto' or ray://host:port (default: start a local Ray instance)")
    p.add_argument("--gpus-per-stage", type=float, default=0.0,
                   help="GPUs per stage-run on Ray, fractions allowed (0.25: four stage-runs share a GPU)")
    p.add_argument("--cpus-per-stage", type=int, default=None,
                   help="CPUs (torch threads) per stage-run (Ray default 1; local default: this process's share)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(prog="python -m artlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-data", epilog=PATHS_RULE, help="write a synthetic data root in the real formats")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the number of paintings")
    p.set_defaults(func=_cmd_demo_data)
    _prepare_parser(sub)

    p = sub.add_parser("demo", epilog=PATHS_RULE, help="run every notebook in order with papermill (what `make demo` does)")
    p.add_argument("--run-dir", default=None, help="default: runs/demo in the repository")
    p.add_argument("--data-root", default=None, help="'demo' (the default: synthetic data) or a data root")
    p.add_argument("--params", type=Path, default=None, help="a YAML file of notebook parameters (params/*.yaml)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the training notebooks' seeds")
    p.add_argument("--no-html", action="store_true", help="skip the HTML report")
    p.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="the training notebooks' executor (default: their own parameter, local)")
    p.set_defaults(func=_cmd_demo)
    _train_parser(sub)

    p = sub.add_parser("predict", epilog=PATHS_RULE, help="emotion (and era) probabilities for new images, optional Grad-CAM")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--stage", default=None, help="an emotion stage (default: the run's most accurate one)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--gradcam-dir", type=Path, default=None, help="write <image>_gradcam.png overlays here")
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("compare", help="recompute comparison.csv and verdicts.csv from a finished run directory")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate of each family's verdicts (Holm)")
    p.set_defaults(func=_cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a sub-command; user errors print one clear line and exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, CheckpointError, OSError) as exc:  # OSError: a file where a folder should be, a full disk, …
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
