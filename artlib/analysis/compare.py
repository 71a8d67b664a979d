"""Comparing the stages of a run: the tables notebook 06 shows, computed from run-directory files only.

Reads results.csv, every stage-run's predictions.csv and (for the era-prior baseline) the
manifest — pandas and numpy, no torch. Conventions a reader must know:

- ``mean ± std`` is over training seeds (sample std, ddof=1; no ± with one seed).
- A stage's ``[95% CI]`` treats both the training seed and the test painting as random (Korn–Graubard
  Clopper–Pearson at the seed-aware effective sample size; :mod:`artlib.analysis.stats`): never of zero
  width. One model's (one seed's) interval is exact Clopper–Pearson.
- Every number of a stage is on its *scored* test paintings (predictions.csv's ``scored`` column): every
  test painting for genre and emotion, those where one emotion has more than half of the votes for the
  nine-emotion task (ArtEmis's metric). A column on another set says so in its name (``at_least_half_*``,
  ``accuracy_all_test``, ``mean_kl``, ``polarity_*``).
- Two trivial baselines sit beside every stage, on the same scored test paintings: always answering the
  training split's majority class, and answering each era's majority class in the training split
  (the *era-prior* baseline — what knowing the era buys with no image at all); both chosen on the scored
  training paintings.
- Stages compared must have been trained alike: backbone weights, image size, epochs, learning rate,
  label rule, era map and manifest. Otherwise :func:`check_comparable` refuses, naming the setting.
- A stage whose best epoch was its last, for any seed, was still improving when it stopped.
- Accuracies and differences are fractions in the frames (0.052 = 5.2 points); text shows percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from artlib import atomic, rundir
from artlib.analysis.stats import clopper_pearson, mean_std, stage_accuracy_interval
from artlib.data.labels import ERAS
from artlib.data.manifest import read_manifest
from artlib.data.splits import split_column
from artlib.errors import DataError
from artlib.results import read_results, results_path
from artlib.rundir import DEFAULT_BACKBONE
from artlib.metrics import accuracy, confusion, from_confusion, majority_class, prior_by_group, scored
from artlib.stages import CONFIGURATIONS, STAGES, STUDY_CONFIGURATIONS
from artlib.tasks import EMOTION, EMOTION9, find_task, get_task, rows_of

NO_ERA = "(no era)"
TABLE_COLUMNS = ("Fine-tuning Process", "Output Observed", "Layers Fine Tuned", "Accuracy", "F1 Score")
SETTINGS = ("backbone", "backbone_weights", "image_size", "epochs", "lr", "label_rule", "era_map", "manifest_sha256")
"""What two compared stages must share (results.csv columns); a run that did not record one cannot check it."""
STILL_IMPROVING = "still improving when stopped — raise epochs"


# ---- loading -----------------------------------------------------------------------------
def load_results(run_dir: str | Path, backbone: str = DEFAULT_BACKBONE) -> pd.DataFrame:
    """run_dir/results.csv's rows of one backbone (the study's resnet50 unless named), with a clear error when no
    stage has finished yet: every comparison is between stages of one backbone."""
    table = read_results(run_dir)
    if table.empty:
        raise DataError(f"{results_path(run_dir)}: no results yet; train the stages first (the training notebooks, "
                        f"or artlib.train.driver.run_stages) for this run directory.")
    present = sorted(set(table["backbone"]))
    table = table.loc[table["backbone"] == backbone].reset_index(drop=True)
    if table.empty:
        raise DataError(f"{results_path(run_dir)}: no results for backbone {backbone}; it holds "
                        f"{', '.join(present)} — pass one of those (or train {backbone} first).")
    table["seed"] = table["seed"].astype(int)
    return table


def backbones_of(run_dir: str | Path) -> list[str]:
    """The backbones with results in the run directory, resnet50 first."""
    table = read_results(run_dir)
    return sorted(set(table["backbone"]), key=lambda b: (b != DEFAULT_BACKBONE, b)) if len(table) else []


def backbone_of(results: pd.DataFrame) -> str:
    """The one backbone of a results table (resnet50 for a table without the column); an error for a mixed one."""
    values = set(results["backbone"]) if "backbone" in results.columns and len(results) else {DEFAULT_BACKBONE}
    if len(values) > 1:
        raise DataError(f"these results mix backbones ({', '.join(sorted(map(str, values)))}); compare stages of one "
                        f"backbone: load_results(run_dir, backbone=...).")
    return str(values.pop())


def load_predictions(run_dir: str | Path, stage: str, seed: int, split_seed: int = 0,
                     backbone: str = DEFAULT_BACKBONE) -> pd.DataFrame:
    """One stage-run's test predictions (predictions.csv), labels as strings, missing eras as NO_ERA."""
    path = rundir.stage_run(run_dir, stage, seed, split_seed, backbone).predictions
    if not path.is_file():
        on = f", split {split_seed}" if split_seed else ""
        raise FileNotFoundError(f"{path}: missing; stage {stage} (seed {seed}{on}) is in results.csv but its "
                                f"predictions are not — rerun the stage.")
    frame = pd.read_csv(path, dtype={"image_path": str, "label": str, "predicted": str, "era": str},
                        keep_default_na=False)
    missing = {"image_path", "label", "predicted"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: column(s) {sorted(missing)} missing; expected image_path, label, predicted (and era).")
    frame["era"] = frame.get("era", pd.Series("", index=frame.index)).replace("", NO_ERA)
    return frame


@dataclass
class StagePredictions:
    """A stage's predictions for several seeds on the same scored paintings, sorted by image_path.

    For the nine-emotion task the scored paintings are those where one emotion has more than half of the
    votes (ArtEmis's metric); for the other tasks every test painting.
    """

    stage: str
    seeds: list[int]
    image_path: np.ndarray  # (n,)
    era: np.ndarray  # (n,)
    label: np.ndarray  # (n,) class names
    predicted: np.ndarray  # (seeds, n) class names
    era_prior: np.ndarray | None = None  # (n,) the era-prior baseline's answers, when predictions.csv has them
    split_seed: int = 0  # the train/val/test split these predictions come from

    @property
    def correct(self) -> np.ndarray:
        """(seeds, n) boolean correctness."""
        return self.predicted == self.label[None, :]


def _scored(stage: str, frame: pd.DataFrame) -> np.ndarray:
    """Which test paintings a stage is scored on: predictions.csv's ``scored`` column; for files written before it
    (0.2) the same rule recomputed: the > 50% subset for the nine-emotion task, else all."""
    if "scored" in frame.columns:
        return pd.to_numeric(frame["scored"]).to_numpy() == 1
    columns = list(STAGES[stage].spec.count_columns) if stage in STAGES else []
    counts = frame[columns].to_numpy(dtype=np.int64) if columns and set(columns) <= set(frame.columns) else None
    return scored(counts, len(frame))


def stage_predictions(run_dir: str | Path, stage: str, seeds: list[int], split_seed: int = 0,
                      backbone: str = DEFAULT_BACKBONE) -> StagePredictions:
    """Load a stage's predictions for these seeds of one split and check every seed covers the same test paintings."""
    if not seeds:
        raise DataError(f"{rundir.results(run_dir)}: {stage} has no results on split {split_seed}; train it there "
                        f"(its other splits cannot stand in for this one's test paintings).")
    frames = [load_predictions(run_dir, stage, s, split_seed, backbone).sort_values("image_path").reset_index(drop=True)
              for s in seeds]
    first = frames[0]
    for s, f in zip(seeds[1:], frames[1:]):
        if len(f) != len(first) or not np.array_equal(f["image_path"].to_numpy(), first["image_path"].to_numpy()):
            raise DataError(f"{stage}: seed {s} was tested on other paintings than seed {seeds[0]}; seeds of one run "
                            f"must share the test split (same manifest.csv).")
    keep = _scored(stage, first)
    return StagePredictions(stage=stage, seeds=list(seeds), image_path=first["image_path"].to_numpy()[keep],
                            era=first["era"].to_numpy()[keep], label=first["label"].to_numpy()[keep],
                            predicted=np.stack([f["predicted"].to_numpy()[keep] for f in frames]),
                            era_prior=first["era_prior"].to_numpy()[keep] if "era_prior" in first else None,
                            split_seed=split_seed)


def stage_classes(sp: StagePredictions) -> tuple[str, ...]:
    """A stage's class names in label-index order (sorted names seen for a stage artlib does not define)."""
    if sp.stage in STAGES:
        return STAGES[sp.stage].classes
    return tuple(sorted(set(sp.label) | set(np.unique(sp.predicted))))


def confusions(sp: StagePredictions, answers: np.ndarray | None = None) -> np.ndarray:
    """(seeds, k, k) confusion matrices of a stage's scored paintings; ``answers`` (n,) replaces the predictions
    (e.g. a trivial baseline's)."""
    classes = stage_classes(sp)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in sp.label], dtype=np.int64)
    predicted = sp.predicted if answers is None else np.asarray(answers)[None, :]
    return np.stack([confusion(y, np.array([index[c] for c in row], dtype=np.int64), len(classes))
                     for row in predicted])


def painting_units(run_dir: str | Path) -> tuple[dict[str, str], str]:
    """image_path → artist from the manifest, and the unit's name: 'artist', or 'painting' when none is recorded.

    WikiArt's paintings cluster by artist, so intervals treat artists as random units; a manifest without
    artists (or a run directory without a manifest) leaves every painting its own unit.
    """
    path = rundir.manifest(run_dir)
    if not path.is_file():
        return {}, "painting"
    manifest = read_manifest(path)
    artists = manifest.get("artist", pd.Series("", index=manifest.index)).fillna("").astype(str).str.strip()
    known = artists != ""
    return dict(zip(manifest["image_path"][known], artists[known])), "artist" if known.any() else "painting"


def units_of(image_paths: np.ndarray, units: tuple[dict[str, str], str]) -> np.ndarray:
    """Each painting's unit label: its artist (paintings without one are their own unit), or the painting itself."""
    artists, unit = units
    if unit != "artist":
        return np.asarray(image_paths, dtype=object)
    return np.array([artists.get(p, p) for p in image_paths], dtype=object)


def stage_order(results: pd.DataFrame) -> list[str]:
    """Stages present in results, in the study's order (unknown stage names last)."""
    present = list(dict.fromkeys(results["stage"]))
    return [s for s in STAGES if s in present] + [s for s in present if s not in STAGES]


def in_split(results: pd.DataFrame, split_seed: int = 0) -> pd.DataFrame:
    """The results rows of one split (every row of a results table from before splits were varied)."""
    if "split_seed" not in results.columns:
        return results
    return results.loc[pd.to_numeric(results["split_seed"]).fillna(0).astype(int) == int(split_seed)]


def split_seeds_of(results: pd.DataFrame) -> list[int]:
    """The split seeds results.csv holds, sorted (a table from before splits were varied is split 0)."""
    if "split_seed" not in results.columns or results.empty:
        return [0]
    return sorted(int(s) for s in pd.to_numeric(results["split_seed"]).fillna(0).unique())


def table_split(results: pd.DataFrame, stage: str) -> int:
    """The split a stage's table row comes from: split 0, or its first split with results (a failed split-0 run)."""
    return next((k for k in split_seeds_of(results) if seeds_of(results, stage, k)), 0)


def seeds_of(results: pd.DataFrame, stage: str, split_seed: int = 0) -> list[int]:
    """The seeds a stage has results for in one split (split 0: the tables' split), sorted."""
    part = in_split(results, split_seed)
    return sorted(int(s) for s in part.loc[part["stage"] == stage, "seed"].unique())


def first_value(values: pd.Series) -> object:
    """The most common value of a column (NaN if empty): per-stage constants such as majority_class."""
    values = values.dropna()
    return values.mode().iloc[0] if len(values) else float("nan")


def task_of_stage(results: pd.DataFrame, stage: str) -> str:
    """A stage's task name: the study's definition, or results.csv's 'task' for a stage artlib no longer defines."""
    return STAGES[stage].task if stage in STAGES else str(first_value(results.loc[results["stage"] == stage, "task"]))


# ---- comparable or refused ---------------------------------------------------------------
def check_comparable(results: pd.DataFrame, stages: list[str], allow: tuple[str, ...] = ()) -> list[str]:
    """Refuse stages (and seeds) trained with different SETTINGS within a split; return notes on unrecorded or
    allowed ones. Stages are paired within a split, so each split is checked on its own.

    ``allow`` names settings that may differ on purpose; the notes then say they did.
    """
    every = results.loc[results["stage"].isin(stages)]
    notes: list[str] = []
    for split in split_seeds_of(every):
        part = in_split(every, split)
        for setting in SETTINGS:
            if setting not in part.columns or part[setting].isna().all():
                notes.append(f"{setting} not recorded in results.csv, so not checked")
                continue
            if len({str(v) for v in part[setting].dropna()}) <= 1:
                continue
            by_stage = {s: sorted({str(v) for v in part.loc[part["stage"] == s, setting].dropna()}) for s in stages}
            if setting in allow:
                notes.append(f"{setting} differs ({by_stage}), allowed explicitly")
                continue
            on = f" on split {split}" if split else ""
            raise DataError(f"{' vs '.join(stages)}: trained with different {setting}{on} ({by_stage}); they cannot "
                            f"be compared. Retrain one of them with the other's setting, or pass allow=('{setting}',) "
                            f"to compare anyway (the tables will say so).")
    return list(dict.fromkeys(notes))


def still_improving(results: pd.DataFrame, stage: str) -> bool:
    """True when, for some seed, the stage's best epoch was its last one (it had not converged). A linear probe
    (trained_blocks 'head') has no epochs: its rows count C values, and the edge of that grid is logged instead."""
    part = results.loc[results["stage"] == stage]
    if "trained_blocks" in part.columns:
        part = part.loc[part["trained_blocks"].astype(str) != "head"]
    if not {"best_epoch", "epochs_run"} <= set(part.columns):
        return False
    return bool((pd.to_numeric(part["best_epoch"]) >= pd.to_numeric(part["epochs_run"])).any())


# ---- trivial baselines -------------------------------------------------------------------
def era_priors(run_dir: str | Path, task: str, split_seed: int = 0) -> tuple[dict[str, str], str] | None:
    """Each era's majority class in the manifest's training split, and the overall one (for paintings without an era).

    For results whose predictions.csv lacks the era-prior answers (runs made before artlib recorded them).
    None when the run directory has no manifest, or for a task without a label column.
    """
    path = rundir.manifest(run_dir)
    if not path.is_file() or find_task(task) is None or not get_task(task).column:
        return None
    manifest = read_manifest(path)
    column = get_task(task).column
    split = manifest[split_column(split_seed)] if split_column(split_seed) in manifest else manifest["split"]
    train = manifest.loc[(split == "train") & (manifest[column].astype(str) != "")]
    if train.empty:
        return None
    classes = sorted(set(train[column]))
    y = train[column].map({c: i for i, c in enumerate(classes)}).to_numpy()
    eras = train["era"].replace("", NO_ERA).to_numpy()
    groups = sorted(set(eras))
    answers = prior_by_group(eras, y, np.asarray(groups), len(classes))
    return {g: classes[a] for g, a in zip(groups, answers)}, classes[majority_class(y, len(classes))]


def baseline_correct(run_dir: str | Path, results: pd.DataFrame, sp: StagePredictions) -> dict[str, np.ndarray]:
    """Per-painting correctness of the trivial baselines on the stage's test paintings ('majority', 'era prior')."""
    part = in_split(results, sp.split_seed)
    part = part.loc[part["stage"] == sp.stage]
    out: dict[str, np.ndarray] = {}
    majority = first_value(part["majority_class"]) if "majority_class" in part else float("nan")
    if isinstance(majority, str):
        out["majority"] = sp.label == majority
    if sp.era_prior is not None:
        out["era prior"] = sp.label == sp.era_prior
        return out
    task = task_of_stage(part, sp.stage)
    priors = era_priors(run_dir, task, sp.split_seed) if (spec := find_task(task)) and spec.era_prior else None
    if priors is not None:
        table, overall = priors
        out["era prior"] = sp.label == np.array([table.get(str(e), overall) for e in sp.era])
    return out


def strongest_baseline(baselines: dict[str, np.ndarray]) -> tuple[str, float]:
    """The trivial baseline with the highest accuracy (name, accuracy); ('none', NaN) if there is none."""
    if not baselines:
        return "none", float("nan")
    name = max(baselines, key=lambda k: float(np.mean(baselines[k])))
    return name, float(np.mean(baselines[name]))


# ---- summary -----------------------------------------------------------------------------
def _stage_row(results: pd.DataFrame, name: str) -> dict:
    """The results.csv part of a stage's summary row (split 0): identity, seeds, majority class, convergence."""
    every = results.loc[results["stage"] == name]
    split = table_split(results, name)
    part = in_split(every, split)
    st = STAGES.get(name)
    seeds = seeds_of(results, name, split)
    row: dict = {"configuration": st.configuration_name if st else first_value(part["configuration"]),
                 "stage": name, "task": st.task if st else first_value(part["task"]),
                 "process": st.process if st else "", "output": st.output if st else "",
                 "layers": st.layers if st else "", "n_seeds": len(seeds), "seeds": ",".join(map(str, seeds))}
    row["majority_class"] = first_value(part["majority_class"]) if "majority_class" in part else float("nan")
    row["still_improving"] = still_improving(results, name)
    row["split_seed"], row["n_splits"] = split, len(split_seeds_of(every))
    return row


def _scored_figures(sp: StagePredictions, majority: object) -> dict:
    """n_test, accuracy, F1 and balanced accuracy (mean ± std over seeds) and the majority baseline's F1, all on
    the stage's scored test paintings."""
    conf = confusions(sp)
    k = conf.shape[-1]
    row: dict = {"n_test": len(sp.label)}
    for metric in ("accuracy", "f1", "balanced_accuracy"):
        row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(from_confusion(conf, metric, k))
    always = confusions(sp, np.full(len(sp.label), majority)) if isinstance(majority, str) and len(sp.label) else None
    row["majority_baseline_f1"] = float(from_confusion(always[0], "f1", k)) if always is not None else float("nan")
    return row


def summary_table(results: pd.DataFrame, run_dir: str | Path, confidence: float = 0.95) -> pd.DataFrame:
    """One row per stage: mean ± std over seeds, the seed-aware accuracy interval, both trivial baselines.

    Every number is computed from predictions.csv on the stage's scored test paintings (nine emotions: those with
    a > 50% emotion; see :func:`stage_predictions`) of split 0 (``split_seed``; the verdicts pool every split,
    ``n_splits``): n_test, accuracy, F1, balanced accuracy and the baselines. The interval treats seeds, artists
    (when the manifest names them) and paintings as random.
    """
    rows, units = [], painting_units(run_dir)
    for name in stage_order(results):
        row = _stage_row(results, name)
        sp = stage_predictions(run_dir, name, seeds_of(results, name, row["split_seed"]), row["split_seed"],
                               backbone_of(results))
        row.update(_scored_figures(sp, row["majority_class"]))
        row["accuracy_ci_low"], row["accuracy_ci_high"] = stage_accuracy_interval(sp.correct, confidence,
                                                                                  units_of(sp.image_path, units))
        baselines = baseline_correct(run_dir, results, sp)
        row["majority_baseline_accuracy"] = float(np.mean(baselines["majority"])) if "majority" in baselines \
            else float("nan")
        row["era_prior_baseline_accuracy"] = float(np.mean(baselines["era prior"])) if "era prior" in baselines \
            else float("nan")
        row["strongest_baseline"], row["strongest_baseline_accuracy"] = strongest_baseline(baselines)
        row["above_baselines"] = bool(row["accuracy_mean"] > row["strongest_baseline_accuracy"])
        rows.append(row)
    return pd.DataFrame(rows)


def table_by_seed(results: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per stage-run: accuracy with its exact (Clopper–Pearson) interval, best epoch, convergence."""
    rows = []
    for r in results.sort_values(["stage", "seed"]).itertuples():
        correct = int(round(float(r.accuracy) * int(r.n_test)))
        low, high = clopper_pearson(correct, int(r.n_test), confidence)
        rows.append({"stage": r.stage, "seed": int(r.seed), "accuracy": float(r.accuracy), "ci_low": low,
                     "ci_high": high, "n_test": int(r.n_test), "best_epoch": getattr(r, "best_epoch", np.nan),
                     "epochs_run": getattr(r, "epochs_run", np.nan),
                     "probe": str(getattr(r, "trained_blocks", "")) == "head"})
    frame = pd.DataFrame(rows)
    if len(frame):  # a linear probe has no epochs (its rows count C values): never "still improving"
        frame["still_improving"] = (frame["best_epoch"] >= frame["epochs_run"]) & ~frame.pop("probe")
    return frame


# ---- the original study's tables ---------------------------------------------------------
def format_accuracy(mean: float, std: float, low: float = float("nan"), high: float = float("nan"),
                    confidence: float = 0.95, flag: str = "") -> str:
    """'68.9% ± 1.2 [95% CI 64.0–73.1]' (std and CI in points/percent; parts left out when unknown)."""
    if not np.isfinite(mean):
        return "not run"
    text = f"{mean * 100:.1f}%"
    if np.isfinite(std):
        text += f" ± {std * 100:.1f}"
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{confidence * 100:g}% CI {low * 100:.1f}–{high * 100:.1f}]"
    return text + flag


def format_f1(mean: float, std: float) -> str:
    """'0.74 ± 0.02' (no ± with one seed)."""
    if not np.isfinite(mean):
        return "not run"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if np.isfinite(std) else "")


def _baseline_rows(emotion: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """The two trivial baselines' rows for a table (from the emotion stages' summary rows)."""
    if not len(emotion):
        return []
    cls = first_value(emotion["majority_class"])
    rows = [("majority_baseline", [f"Always answer {cls} (baseline)", "Emotions Evoked", "none",
                                   format_accuracy(float(emotion["majority_baseline_accuracy"].mean()), float("nan")),
                                   format_f1(float(emotion["majority_baseline_f1"].mean()), float("nan"))])]
    era = float(emotion["era_prior_baseline_accuracy"].mean())
    if np.isfinite(era):
        rows.append(("era_prior_baseline", ["Answer each era's majority emotion (baseline)", "Emotions Evoked",
                                            "none", format_accuracy(era, float("nan")), "–"]))
    return rows


def original_tables(summary: pd.DataFrame, confidence: float = 0.95) -> dict[int, pd.DataFrame]:
    """Tables 1–3 in the study's layout (index: stage name), with both trivial baselines as rows.

    Stages without results show 'not run'; a stage still improving when it stopped is marked ' *'.
    """
    by_stage = summary.set_index("stage")
    emotion = rows_of(summary, EMOTION)
    tables: dict[int, pd.DataFrame] = {}
    for config in STUDY_CONFIGURATIONS:
        names, rows, index = CONFIGURATIONS[config], [], []
        for name in names:
            st = STAGES[name]
            acc = f1 = "not run"
            if name in by_stage.index:
                r = by_stage.loc[name]
                acc = format_accuracy(r["accuracy_mean"], r["accuracy_std"], r["accuracy_ci_low"], r["accuracy_ci_high"],
                                      confidence, " *" if r["still_improving"] else "")
                f1 = format_f1(r["f1_mean"], r["f1_std"])
            rows.append([st.process, st.output, st.layers, acc, f1])
            index.append(name)
        mine = emotion.loc[emotion["stage"].isin(names)]
        for key, row in _baseline_rows(mine if len(mine) else emotion):
            rows.append(row)
            index.append(key)
        tables[config] = pd.DataFrame(rows, columns=list(TABLE_COLUMNS), index=pd.Index(index, name="stage"))
    return tables


# ---- per era -----------------------------------------------------------------------------
MIN_ERA_PAINTINGS = 30
"""Below this many test paintings an era's accuracy is shown but marked too few to read."""


def per_era_accuracy(run_dir: str | Path, results: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Emotion accuracy per era for every emotion stage, with its seed-aware interval and the era's baselines.

    Exploratory: no test is made per era (a reader should not fish for the era where genre "helped");
    eras with fewer than MIN_ERA_PAINTINGS test paintings are marked ``too_few``.
    """
    rows, units = [], painting_units(run_dir)
    for name in stage_order(results):
        if not EMOTION.is_task_of(task_of_stage(results, name)):
            continue
        split = table_split(results, name)
        sp = stage_predictions(run_dir, name, seeds_of(results, name, split), split, backbone_of(results))
        baselines = baseline_correct(run_dir, results, sp)
        eras = [e for e in (*ERAS, NO_ERA) if e in set(sp.era)] + sorted(set(sp.era) - {*ERAS, NO_ERA})
        for era in eras:
            mask = sp.era == era
            low, high = stage_accuracy_interval(sp.correct[:, mask], confidence, units_of(sp.image_path[mask], units))
            mean, std = mean_std(sp.correct[:, mask].mean(axis=1))
            rows.append({"stage": name, "era": era, "n_paintings": int(mask.sum()), "n_seeds": len(sp.seeds),
                         "accuracy_mean": mean, "accuracy_std": std, "ci_low": low, "ci_high": high,
                         **{f"{k.replace(' ', '_')}_baseline_accuracy": float(np.mean(v[mask]))
                            for k, v in baselines.items()},
                         "too_few": bool(mask.sum() < MIN_ERA_PAINTINGS)})
    return pd.DataFrame(rows)


def confusion_matrices(run_dir: str | Path, results: pd.DataFrame,
                       task: str = "emotion") -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per stage of ``task``: the confusion matrix of its scored test paintings summed over seeds (from
    predictions.csv, so it sums to n_test × seeds) and the class names."""
    out: dict[str, tuple[np.ndarray, list[str]]] = {}
    for stage in stage_order(rows_of(results, task)):
        split = table_split(results, stage)
        sp = stage_predictions(run_dir, stage, seeds_of(results, stage, split), split, backbone_of(results))
        out[stage] = (confusions(sp).sum(axis=0), list(stage_classes(sp)))
    return out


def write_comparison(run_dir: str | Path, summary: pd.DataFrame) -> Path:
    """Write the per-stage summary as run_dir/comparison.csv (atomically) and return its path."""
    path = rundir.comparison(run_dir)
    atomic.write_csv(path, summary)
    return path


# ---- the nine-emotion task ---------------------------------------------------------------
ANCHORS = pd.DataFrame([
    {"model": "ArtEmis image-to-emotion classifier (published)", "backbone": "ResNet-34, ImageNet; last block + MLP",
     "data": "ArtEmis test split, 7,933 WikiArt paintings, 256 px", "dominant_share": 0.381,
     "dominant_accuracy": 0.602, "at_least_half_share": 0.455, "at_least_half_accuracy": 0.576},
])
"""Published figures on the same metric definitions, quoted for scale — other data and backbones, not comparable to
a demo run (source: optas/artemis, image_to_emotion_classifier.ipynb, the released model's test output)."""


def emotion9_table(results: pd.DataFrame) -> pd.DataFrame:
    """The nine-emotion stages' ArtEmis metrics, mean ± std over seeds, beside the majority-emotion baseline."""
    part = rows_of(results, EMOTION9)
    rows = []
    for name in stage_order(part):
        stage = part.loc[part["stage"] == name]
        row = {"stage": name, "n_seeds": len(stage)}
        for metric in ("dominant_accuracy", "at_least_half_accuracy", "mean_kl", "polarity_accuracy",
                       "dominant_majority_baseline_accuracy", "dominant_share", "at_least_half_share"):
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(pd.to_numeric(stage[metric]).to_numpy())
        rows.append(row)
    return pd.DataFrame(rows)


def polarity_comparison(run_dir: str | Path, results: pd.DataFrame) -> pd.DataFrame:
    """Binary accuracy of every emotion model on the same test paintings: the binary stages' own predictions, and
    the nine-emotion stages' polarity (four positive vs four negative probabilities), on the paintings both test."""
    from artlib.metrics import polarity_of

    binary = {s: seeds_of(results, s) for s in stage_order(results)
              if EMOTION.is_task_of(task_of_stage(results, s)) and seeds_of(results, s)}  # split 0's paintings
    nine = {s: seeds_of(results, s) for s in stage_order(results)
            if EMOTION9.is_task_of(task_of_stage(results, s)) and seeds_of(results, s)}
    if not binary or not nine:
        return pd.DataFrame(columns=["stage", "kind", "paintings", "accuracy_mean", "accuracy_std"])
    backbone = backbone_of(results)
    frames = {s: [load_predictions(run_dir, s, seed, backbone=backbone).set_index("image_path") for seed in seeds]
              for s, seeds in {**binary, **nine}.items()}
    nine_paths = set.intersection(*(set(f.index[f["polarity"] != ""]) for s in nine for f in frames[s]))
    common = sorted(nine_paths.intersection(*(set(f.index) for s in binary for f in frames[s])))
    rows = []
    for stage in [*binary, *nine]:
        accs = []
        for f in frames[stage]:
            f = f.loc[common]
            if stage in nine:
                probs = f[[f"p_{e}" for e in STAGES[stage].classes]].to_numpy()
                accs.append(accuracy(f["polarity"].to_numpy(), polarity_of(probs)))
            else:
                accs.append(accuracy(f["label"].to_numpy(), f["predicted"].to_numpy()))
        mean, std = mean_std(accs)
        rows.append({"stage": stage, "kind": "nine emotions → polarity" if stage in nine else "binary",
                     "paintings": len(common), "accuracy_mean": mean, "accuracy_std": std})
    return pd.DataFrame(rows)
