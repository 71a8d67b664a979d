"""What the notebooks call: resolve the parameters cell into paths, make sure inputs exist, gather tables.

Each notebook's second cell is ``session = workflow.start(data_root, run_dir)``; everything
after it reads and writes files in ``session.run_dir``, so notebooks hand results to each
other through files, never hidden state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from artlib.data.labels import ERAS
from artlib.data.manifest import read_manifest
from artlib.data.prepare import PrepareConfig, prepare
from artlib import atomic, rundir
from artlib.data.roots import resolve_data_root
from artlib.paths import display_path, resolve_run_dir
from artlib.tasks import EMOTION, GENRE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)
INLINE_DPI = 60
"""Resolution of figures shown in notebooks (stored notebooks stay small; saved PNGs are sharper)."""


@dataclass(frozen=True)
class Session:
    """Resolved locations for one notebook run."""

    data_root: Path
    run_dir: Path

    @property
    def archive(self) -> Path:
        """The painting images."""
        return self.data_root / "archive"

    @property
    def manifest_path(self) -> Path:
        """Where notebook 02 writes (and 03–07 read) the manifest."""
        return rundir.manifest(self.run_dir)

    @property
    def figures(self) -> Path:
        """Where notebooks save their figures as PNG."""
        out = rundir.figures(self.run_dir)
        out.mkdir(parents=True, exist_ok=True)
        return out

    def __str__(self) -> str:
        """Both locations, short."""
        return f"data root: {display_path(self.data_root)}\nrun dir:   {display_path(self.run_dir)}"


def start(data_root: str, run_dir: str) -> Session:
    """Resolve a notebook's data_root ('demo' = built-in synthetic data) and run_dir ($ARTLIB_RUN_DIR wins)."""
    session = Session(data_root=resolve_data_root(data_root), run_dir=resolve_run_dir(run_dir))
    log.info("%s", session)
    import matplotlib

    matplotlib.rcParams["figure.dpi"] = INLINE_DPI  # figures shown in notebooks; saved PNGs keep plots.save's dpi
    return session


def ensure_manifest(session: Session, progress: bool = False) -> pd.DataFrame:
    """The run's manifest; prepared with default settings if notebook 02 has not written one yet."""
    if not session.manifest_path.is_file():
        log.info("no manifest in %s yet: preparing one with default settings (run notebook 02 to choose them)",
                 display_path(session.run_dir))
        prepare(session.data_root, session.run_dir, PrepareConfig(), progress=progress)
    return read_manifest(session.manifest_path)


def split_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Paintings per split and class for both tasks, with each split's share."""
    parts = []
    for task in (GENRE, EMOTION):
        data = manifest[manifest[task.column] != ""]
        table = pd.crosstab(data[task.column], data["split"]).reindex(index=list(task.classes),
                                                                       columns=["train", "val", "test"], fill_value=0)
        table.index = pd.MultiIndex.from_product([[task.name], table.index], names=["task", "class"])
        parts.append(table)
    table = pd.concat(parts)
    table["total"] = table.sum(axis=1)
    return table


def era_emotion_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Paintings per era × emotion label ('' shown as 'no label'), with totals."""
    data = manifest.replace({"era": {"": "no era"}, "emotion": {"": "no label"}})
    table = pd.crosstab(data["era"], data["emotion"], margins=True, margins_name="total")
    rows = [e for e in (*ERAS, "no era", "total") if e in table.index]
    cols = [c for c in ("positive", "negative", "no label", "total") if c in table.columns]
    return table.loc[rows, cols]


def stage_histories(run_dir: Path, stage: str, seeds: list[int],
                    backbone: str = rundir.DEFAULT_BACKBONE) -> dict[str, pd.DataFrame]:
    """history.csv of a stage per seed, labelled for plotting."""
    out = {}
    for seed in seeds:
        path = rundir.stage_run(run_dir, stage, seed, backbone=backbone).history
        if path.is_file():
            out[f"{stage} (seed {seed})"] = pd.read_csv(path)
    return out


def describe_stage(name: str, training: Training | None = None) -> pd.DataFrame:
    """Print what a stage trains and starts from; return its parameter table on the training's backbone (resnet50
    without one): what trains, what is frozen."""
    from artlib.models.backbone import ArtNet
    from artlib.stages import STAGES

    stage = STAGES[name]
    backbone = training.config.backbone if training is not None else rundir.DEFAULT_BACKBONE
    size = training.config.image_size if training is not None else 224
    print(f"task: {stage.task} ({len(stage.classes)} classes)  trains: {stage.trained_blocks} of {backbone}  "
          f"starts from: {stage.init_from or 'the pretrained backbone'}")
    model = ArtNet.build(len(stage.classes), backbone=backbone, image_size=size)
    return model.freeze_all().unfreeze(*stage.blocks).parameter_table()


def loss_curves(session: Session, stage: str, seeds: list[int], backbone: str = rundir.DEFAULT_BACKBONE) -> Figure:
    """Plot a stage's training curves per seed and save them as figures/loss_<stage>[_<backbone>].png; the figure."""
    from artlib.analysis import plots

    name = stage if backbone == rundir.DEFAULT_BACKBONE else f"{stage}_{backbone}"
    return plots.loss_curves(stage_histories(session.run_dir, stage, seeds, backbone),
                             session.figures / f"loss_{name}.png")


def stage_metrics(run_dir: Path, stage: str, backbone: str = rundir.DEFAULT_BACKBONE) -> pd.DataFrame:
    """A stage's test metrics per seed (and split seed, when there are several) next to the always-majority baseline."""
    from artlib.results import read_results

    res = read_results(run_dir)
    res = res[(res["stage"] == stage) & (res["backbone"] == backbone)]
    split = ["split_seed"] if res["split_seed"].nunique() > 1 else []
    cols = ["stage", "seed", *split, "accuracy", "f1", "balanced_accuracy", "majority_baseline_accuracy",
            "majority_class", "best_epoch", "epochs_run", "n_test", "backbone_weights"]
    return res.loc[:, [c for c in cols if c in res.columns]].reset_index(drop=True)


def prepare_summary(run_dir: Path) -> dict:
    """The counts and exclusions notebook 02 reports (from prepare_report.json)."""
    report = atomic.read_json(rundir.prepare_report(run_dir), "rerun prepare (notebook 02)")
    return {"excluded": {k: len(v) for k, v in report["excluded"].items()},
            "names_repaired": report.get("names_repaired", 0), "config": report["config"]}


def load_samples(session: Session, sample: pd.DataFrame, size: int = 160) -> list[np.ndarray]:
    """Load sample paintings as square RGB arrays (decoded with artlib's safe image loader)."""
    from artlib.data.images import load_square

    return [load_square(session.archive / p, size) for p in sample["image_path"]]


def grouping_table(report: dict) -> pd.DataFrame:
    """Per grouping source (near-duplicates, listed duplicates, artists, all combined): groups and paintings joined."""
    grouping = report.get("grouping", {})
    rows = [{"source": source.replace("_", " "), "groups": numbers["groups"],
             "paintings joined": numbers["paintings_joined"], "largest group": numbers["largest_group"]}
            for source, numbers in grouping.items() if isinstance(numbers, dict)]
    return pd.DataFrame(rows, columns=["source", "groups", "paintings joined", "largest group"])


def emotion9_distribution(manifest: pd.DataFrame) -> pd.DataFrame:
    """Share of ArtEmis votes per emotion, per era and overall (rows sum to 1), from the manifest's vote counts."""
    from artlib.data.labels import ARTEMIS_EMOTIONS, EMOTION_COUNT_COLUMNS

    data = manifest.assign(era=manifest["era"].replace("", "no era"))
    votes = data.groupby("era")[list(EMOTION_COUNT_COLUMNS)].sum()
    votes.loc["all eras"] = votes.sum()
    votes.columns = list(ARTEMIS_EMOTIONS)
    order = [e for e in (*ERAS, "no era", "all eras") if e in votes.index]
    return votes.div(votes.sum(axis=1), axis=0).loc[order].round(3)


def emotion9_subsets(manifest: pd.DataFrame, min_annotations: int = 5) -> pd.DataFrame:
    """Paintings of the nine-emotion task per split, and how many have a > 50% / ≥ 50% majority emotion."""
    from artlib.data.labels import EMOTION_COUNT_COLUMNS
    from artlib.metrics import dominant

    counts = manifest[list(EMOTION_COUNT_COLUMNS)].to_numpy()
    task = counts.sum(axis=1) >= min_annotations
    frame = pd.DataFrame({"split": manifest["split"][task], "> 50%": dominant(counts[task], True),
                          "≥ 50%": dominant(counts[task], False)})
    table = frame.groupby("split").agg(paintings=("split", "size"), **{"> 50%": ("> 50%", "sum"),
                                                                       "≥ 50%": ("≥ 50%", "sum")})
    return table.reindex(["train", "val", "test"]).fillna(0).astype(int)


# ---- the training notebooks (03–05): one call per stage ------------------------------------------
@dataclass(frozen=True)
class Training:
    """What a training notebook trains with: its session, TrainConfig, seeds, split seeds, force and executor."""

    session: Session
    config: object  # a TrainConfig (typed loosely so this module imports no torch)
    seeds: tuple[int, ...]
    split_seeds: int | None
    force: bool
    executor: object  # a frozen artlib.train.grid.Executor


def training(session: Session, parameters: dict) -> Training:
    """A training notebook's settings from its parameters cell's values (TrainConfig's fields picked by name).

    Also makes sure the run has a manifest (prepared with defaults when notebook 02 has not run).
    """
    from dataclasses import fields

    from artlib.train.config import TrainConfig
    from artlib.train.grid import Executor

    ensure_manifest(session)
    config = TrainConfig(**{f.name: parameters[f.name] for f in fields(TrainConfig) if f.name in parameters})
    return Training(session, config, tuple(parameters["seeds"]), parameters.get("split_seeds"),
                    bool(parameters.get("force", False)), Executor(parameters.get("executor", "local")))


def train_stage(t: Training, name: str) -> pd.DataFrame:
    """Train one stage (its sources first) on every seed and split, show its loss curves; its metrics per seed."""
    import matplotlib.pyplot as plt

    from artlib.train.driver import run_stages

    run_stages([name], t.session.run_dir, t.config, seeds=list(t.seeds), split_seeds=t.split_seeds, force=t.force,
               executor=t.executor)
    loss_curves(t.session, name, list(t.seeds), t.config.backbone)
    plt.show()
    return stage_metrics(t.session.run_dir, name, t.config.backbone)


def configuration_table(session: Session, configuration: int, backbone: str = rundir.DEFAULT_BACKBONE) -> pd.DataFrame:
    """One configuration's stages in the original study's table layout, with both trivial baselines."""
    from artlib.analysis import compare

    summary = compare.summary_table(compare.load_results(session.run_dir, backbone), session.run_dir)
    return compare.original_tables(summary)[configuration]
