"""Comparing the stages of a run: what notebook 06 shows, computed from run_dir files only.

Reads run_dir/results.csv and every stage-run's predictions.csv (see :mod:`artlib.rundir`; pandas, no
torch) and returns plain DataFrames and text; plots live elsewhere. Choices a reader must know:

- ``mean ± std`` is over training seeds (sample std, ddof=1; no ± with one seed).
- ``[95% CI …]`` is a percentile bootstrap over *test paintings* of the seed-averaged metric
  (each resample of paintings is applied to every seed, the metric averaged over seeds): it
  says how much the number depends on which paintings happen to be in the test set, not on
  the training seed. The two are different uncertainties and are reported side by side.
- Paired tests use the same test paintings for both stages and the same training seed. Per
  seed: exact McNemar. Pooled over seeds: an exact paired permutation (sign-flip) test on
  each painting's seed-averaged correctness difference (McNemar itself when there is one
  seed); each painting counts once, so seeds are not treated as new paintings. The same
  test compares every stage with always answering its majority class.
- A difference is "within seed noise" when, with ≥2 seeds, its size is at most the larger of
  the two stages' seed std of accuracy.
- Accuracies and differences are fractions in the frames (0.052 = 5.2 points); the text
  and the original-layout tables show percent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from artlib import atomic, rundir
from artlib.errors import DataError
from artlib.data.labels import ERAS
from artlib.metrics import f1_for_task
from artlib.results import read_results, results_path
from artlib.stages import CONFIGURATION_NAMES, CONFIGURATIONS, STAGES
from artlib.analysis.stats import (bootstrap_ci, bootstrap_metric_ci, mcnemar_exact, mean_std, paired_predictions,
                          paired_permutation_test)

ALPHA = 0.05
NO_ERA = "(no era)"
VS_BASELINE = "vs baseline"
SEQ_VS_SIM = "sequential vs simultaneous"
# The study's second claim, tested like the baselines: config 1's final stage vs config 2's.
EXTRA_COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("genre_conv4_then_emotion_conv5", "genre_conv45_then_emotion_conv45", SEQ_VS_SIM),
)
TABLE_COLUMNS = ("Fine-tuning Process", "Output Observed", "Layers Fine Tuned", "Accuracy", "F1 Score")


# ---- loading -----------------------------------------------------------------------------
def load_results(run_dir: str | Path) -> pd.DataFrame:
    """run_dir/results.csv, with a clear error when no stage has finished yet."""
    table = read_results(run_dir)
    if table.empty:
        raise DataError(f"{results_path(run_dir)}: no results yet; train the stages first (the training notebooks, "
                        f"or artlib.train.runner.run_stages) for this run directory.")
    table = table.copy()
    table["seed"] = table["seed"].astype(int)
    return table


def load_predictions(run_dir: str | Path, stage: str, seed: int) -> pd.DataFrame:
    """One stage/seed's test predictions (predictions.csv), labels as strings, missing eras as NO_ERA."""
    path = rundir.stage_file(run_dir, stage, seed, "predictions.csv")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; stage {stage} (seed {seed}) is in results.csv but its predictions "
                                f"are not — rerun the stage.")
    frame = pd.read_csv(path, dtype={"image_path": str, "label": str, "predicted": str, "era": str},
                        keep_default_na=False)
    frame["era"] = frame.get("era", pd.Series("", index=frame.index)).replace("", NO_ERA)
    return frame


@dataclass
class StagePredictions:
    """A stage's predictions for several seeds on the same paintings, sorted by image_path."""

    stage: str
    seeds: list[int]
    image_path: np.ndarray  # (n,)
    era: np.ndarray  # (n,)
    label: np.ndarray  # (n,) class names
    predicted: np.ndarray  # (seeds, n) class names
    classes: tuple[str, ...]

    @property
    def correct(self) -> np.ndarray:
        """(seeds, n) boolean correctness."""
        return self.predicted == self.label[None, :]

    def indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Labels (n,) and predictions (seeds, n) as class indices, for metric functions."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        unknown = (set(self.label) | set(self.predicted.ravel())) - set(lookup)
        if unknown:
            raise DataError(f"{self.stage}: predictions hold classes {sorted(unknown)} outside {self.classes}")
        y = np.array([lookup[c] for c in self.label], dtype=np.int64)
        p = np.vectorize(lookup.__getitem__, otypes=[np.int64])(self.predicted) if self.predicted.size else \
            np.zeros(self.predicted.shape, dtype=np.int64)
        return y, p


def _classes_of(stage: str, frames: list[pd.DataFrame]) -> tuple[str, ...]:
    """The stage's class names (artlib.stages), or those seen in its predictions for an unknown stage."""
    if stage in STAGES:
        return STAGES[stage].classes
    seen = set()
    for f in frames:
        seen |= set(f["label"]) | set(f["predicted"])
    return tuple(sorted(seen))


def stage_predictions(run_dir: str | Path, stage: str, seeds: list[int]) -> StagePredictions:
    """Load a stage's predictions for these seeds and check every seed covers the same test paintings."""
    frames = [load_predictions(run_dir, stage, s).sort_values("image_path").reset_index(drop=True) for s in seeds]
    first = frames[0]
    for s, f in zip(seeds[1:], frames[1:]):
        if len(f) != len(first) or not np.array_equal(f["image_path"].to_numpy(), first["image_path"].to_numpy()):
            raise DataError(f"{stage}: seed {s} was tested on other paintings than seed {seeds[0]}; seeds of one run "
                            f"must share the test split (same manifest.csv).")
    return StagePredictions(stage=stage, seeds=list(seeds), image_path=first["image_path"].to_numpy(),
                            era=first["era"].to_numpy(), label=first["label"].to_numpy(),
                            predicted=np.stack([f["predicted"].to_numpy() for f in frames]),
                            classes=_classes_of(stage, frames))


def _stage_order(results: pd.DataFrame) -> list[str]:
    """Stages present in results, in the study's order (unknown stage names last)."""
    present = list(dict.fromkeys(results["stage"]))
    return [s for s in STAGES if s in present] + [s for s in present if s not in STAGES]


def _seeds(results: pd.DataFrame, stage: str) -> list[int]:
    """The seeds a stage has results for, sorted."""
    return sorted(int(s) for s in results.loc[results["stage"] == stage, "seed"].unique())


def _first(values: pd.Series) -> object:
    """The most common value of a column (NaN if empty): per-stage constants such as majority_class."""
    values = values.dropna()
    return values.mode().iloc[0] if len(values) else float("nan")


# ---- summary -----------------------------------------------------------------------------
def summary_table(results: pd.DataFrame, run_dir: str | Path | None = None, n_boot: int = 2000,
                  confidence: float = 0.95, boot_seed: int = 0, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per stage: mean ± std over seeds, bootstrap CIs and the always-majority comparison.

    Means/stds come from results.csv. With ``run_dir``, CIs of accuracy and F1 come from the
    pooled per-painting predictions (bootstrap over paintings of the seed-averaged metric),
    and each stage is tested against always answering its majority class on the same
    paintings (exact paired permutation test, see module doc); without it those columns are NaN.
    """
    rows = []
    for name in _stage_order(results):
        part = results.loc[results["stage"] == name]
        st = STAGES.get(name)
        seeds = _seeds(results, name)
        row: dict = {
            "configuration": st.configuration_name if st else _first(part["configuration"]),
            "stage": name, "task": st.task if st else _first(part["task"]),
            "process": st.process if st else "", "output": st.output if st else "", "layers": st.layers if st else "",
            "compare_with": (st.compare_with or "") if st else "",
            "n_seeds": len(seeds), "seeds": ",".join(map(str, seeds)), "n_test": int(part["n_test"].max()),
        }
        for metric in ("accuracy", "f1", "balanced_accuracy"):
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(part[metric].to_numpy(dtype=float))
        row["majority_class"] = _first(part["majority_class"]) if "majority_class" in part else float("nan")
        for col in ("majority_baseline_accuracy", "majority_baseline_f1"):
            row[col] = float(part[col].mean()) if col in part else float("nan")
        row.update(dict.fromkeys(("accuracy_ci_low", "accuracy_ci_high", "f1_ci_low", "f1_ci_high",
                                  "vs_majority_b", "vs_majority_c", "vs_majority_p_value"), float("nan")))
        if run_dir is not None:
            sp = stage_predictions(run_dir, name, seeds)
            y, p = sp.indices()
            row["n_test"] = len(y)
            row["accuracy_ci_low"], row["accuracy_ci_high"] = bootstrap_ci(sp.correct, "mean", n_boot, confidence,
                                                                           boot_seed)
            row["f1_ci_low"], row["f1_ci_high"] = bootstrap_metric_ci(y, p, "f1", n_boot, confidence, boot_seed,
                                                                      n_classes=len(sp.classes))
            if isinstance(row["majority_class"], str):
                always = np.broadcast_to(sp.label == row["majority_class"], sp.correct.shape)
                test = paired_permutation_test(sp.correct, always)
                row["vs_majority_b"], row["vs_majority_c"] = test["b"], test["c"]
                row["vs_majority_p_value"] = test["p_value"]
        diff = row["accuracy_mean"] - row["majority_baseline_accuracy"]
        row["vs_majority_accuracy_diff"] = diff
        row["beats_majority_accuracy"] = bool(diff > 0)
        row["beats_majority_significant"] = bool(diff > 0 and row["vs_majority_p_value"] < alpha)
        row["beats_majority_f1"] = bool(row["f1_mean"] > row["majority_baseline_f1"])
        rows.append(row)
    return pd.DataFrame(rows)


# ---- the original study's tables ---------------------------------------------------------
def format_accuracy(mean: float, std: float, low: float = float("nan"), high: float = float("nan"),
                    confidence: float = 0.95) -> str:
    """'68.9% ± 1.2 [95% CI 64.0–73.1]' (std and CI in points/percent; parts left out when unknown)."""
    if not np.isfinite(mean):
        return "not run"
    text = f"{mean * 100:.1f}%"
    if np.isfinite(std):
        text += f" ± {std * 100:.1f}"
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{confidence * 100:g}% CI {low * 100:.1f}–{high * 100:.1f}]"
    return text


def format_f1(mean: float, std: float) -> str:
    """'0.74 ± 0.02' (no ± with one seed)."""
    if not np.isfinite(mean):
        return "not run"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if np.isfinite(std) else "")


def original_tables(results: pd.DataFrame, run_dir: str | Path | None = None, summary: pd.DataFrame | None = None,
                    n_boot: int = 2000, confidence: float = 0.95, boot_seed: int = 0) -> dict[int, pd.DataFrame]:
    """Tables 1–3 in the study's layout (index: stage name), plus an 'Always answer <class> (baseline)' row.

    Stages without results show 'not run'. Pass ``summary`` to reuse a summary_table.
    """
    if summary is None:
        summary = summary_table(results, run_dir, n_boot, confidence, boot_seed)
    by_stage = summary.set_index("stage")
    emotion = summary.loc[summary["task"] == "emotion"]
    tables: dict[int, pd.DataFrame] = {}
    for config, names in CONFIGURATIONS.items():
        rows, index = [], []
        for name in names:
            st = STAGES[name]
            if name in by_stage.index:
                r = by_stage.loc[name]
                acc = format_accuracy(r["accuracy_mean"], r["accuracy_std"], r["accuracy_ci_low"],
                                      r["accuracy_ci_high"], confidence)
                f1 = format_f1(r["f1_mean"], r["f1_std"])
            else:
                acc = f1 = "not run"
            rows.append([st.process, st.output, st.layers, acc, f1])
            index.append(name)
        # The baseline row: this configuration's emotion stages (they share one training set), else any.
        mine = emotion.loc[emotion["stage"].isin(names)]
        base = mine if len(mine) else emotion
        if len(base):
            cls = _first(base["majority_class"])
            rows.append([f"Always answer {cls} (baseline)", "Emotions Evoked", "none",
                         format_accuracy(float(base["majority_baseline_accuracy"].mean()), float("nan")),
                         format_f1(float(base["majority_baseline_f1"].mean()), float("nan"))])
            index.append("majority_baseline")
        table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS), index=pd.Index(index, name="stage"))
        tables[config] = table
    return tables


# ---- paired tests ------------------------------------------------------------------------
def _pairs() -> list[tuple[str, str, str]]:
    """(stage, baseline, comparison) for every stage with compare_with, then the extra comparisons."""
    pairs = [(s.name, s.compare_with, VS_BASELINE) for s in STAGES.values() if s.compare_with]
    return pairs + list(EXTRA_COMPARISONS)


def paired_tests(run_dir: str | Path, results: pd.DataFrame, n_boot: int = 2000, confidence: float = 0.95,
                 boot_seed: int = 0, alpha: float = ALPHA) -> pd.DataFrame:
    """Each stage vs its baseline (and sequential vs simultaneous) on the same paintings: per seed and pooled.

    Rows with seed = <int>: exact McNemar for that training seed (stage seed s vs baseline seed
    s). Row with seed = 'pooled': exact paired permutation test on per-painting seed-averaged correctness,
    the mean accuracy difference (stage minus baseline) and its bootstrap CI over paintings.
    Pairs where either stage has no results get one 'pooled' row with status 'not run'.
    """
    rows = []
    for stage, base, comparison in _pairs():
        st = STAGES[stage]
        common = sorted(set(_seeds(results, stage)) & set(_seeds(results, base)))
        head = {"comparison": comparison, "configuration": st.configuration_name, "stage": stage, "baseline": base}
        if not common:
            rows.append({**head, "seed": "pooled", "n_seeds": 0, "status": "not run"})
            continue
        a = stage_predictions(run_dir, stage, common)
        b = stage_predictions(run_dir, base, common)
        pair_a, pair_b = [], []
        for i, seed in enumerate(common):
            frame_a = pd.DataFrame({"image_path": a.image_path, "label": a.label, "predicted": a.predicted[i]})
            frame_b = pd.DataFrame({"image_path": b.image_path, "label": b.label, "predicted": b.predicted[i]})
            ca, cb = paired_predictions(frame_a, frame_b, f"{stage} (seed {seed})", f"{base} (seed {seed})")
            pair_a.append(ca)
            pair_b.append(cb)
        ca_all, cb_all = np.stack(pair_a), np.stack(pair_b)  # (seeds, n), aligned on sorted image_path
        ya, pa = a.indices()
        yb, pb = b.indices()
        k = len(a.classes)
        f1_a = [f1_for_task(ya, pa[i], k) for i in range(len(common))]
        f1_b = [f1_for_task(yb, pb[i], len(b.classes)) for i in range(len(common))]
        acc_a = ca_all.mean(axis=1)
        acc_b = cb_all.mean(axis=1)
        seed_rows = []
        for i, seed in enumerate(common):
            test = mcnemar_exact(ca_all[i], cb_all[i])
            low, high = bootstrap_ci(ca_all[i].astype(float) - cb_all[i], "mean", n_boot, confidence, boot_seed)
            seed_rows.append({**head, "seed": seed, "n_seeds": 1, "status": "ok", "test": "McNemar exact",
                              "n_test": test["n"], "accuracy_stage": acc_a[i], "accuracy_baseline": acc_b[i],
                              "accuracy_diff": acc_a[i] - acc_b[i], "accuracy_diff_ci_low": low,
                              "accuracy_diff_ci_high": high, "f1_diff": f1_a[i] - f1_b[i],
                              "b": test["b"], "c": test["c"], "n_discordant": test["n_discordant"],
                              "p_value": test["p_value"], "significant": bool(test["p_value"] < alpha)})
        pooled = paired_permutation_test(ca_all, cb_all)
        d = ca_all.mean(axis=0) - cb_all.mean(axis=0)  # per-painting seed-averaged difference
        low, high = bootstrap_ci(d, "mean", n_boot, confidence, boot_seed)
        _, std_a = mean_std(acc_a)
        _, std_b = mean_std(acc_b)
        diff = float(acc_a.mean() - acc_b.mean())
        noise = max(std_a, std_b) if len(common) > 1 else float("nan")
        rows.append({**head, "seed": "pooled", "n_seeds": len(common), "status": "ok",
                     "test": "McNemar exact" if len(common) == 1 else "exact paired permutation test on seed-averaged correctness",
                     "n_test": pooled["n"], "accuracy_stage": float(acc_a.mean()),
                     "accuracy_baseline": float(acc_b.mean()), "accuracy_diff": diff, "accuracy_diff_ci_low": low,
                     "accuracy_diff_ci_high": high, "f1_diff": float(np.mean(f1_a) - np.mean(f1_b)),
                     "b": pooled["b"], "c": pooled["c"], "n_discordant": pooled["n_discordant"],
                     "p_value": pooled["p_value"], "significant": bool(pooled["p_value"] < alpha),
                     "stage_accuracy_std": std_a, "baseline_accuracy_std": std_b, "seed_noise": noise,
                     "within_seed_noise": bool(np.isfinite(noise) and abs(diff) <= noise),
                     "n_seeds_significant": sum(r["significant"] for r in seed_rows),
                     "n_seeds_better": int(np.sum(acc_a > acc_b)),
                     "p_values_per_seed": "; ".join(f"seed {r['seed']}: {format_p(r['p_value'])}" for r in seed_rows)})
        rows.extend(seed_rows)
    columns = ["comparison", "configuration", "stage", "baseline", "seed", "n_seeds", "status", "test", "n_test",
               "accuracy_stage", "accuracy_baseline", "accuracy_diff", "accuracy_diff_ci_low", "accuracy_diff_ci_high",
               "f1_diff", "b", "c", "n_discordant", "p_value", "significant", "stage_accuracy_std",
               "baseline_accuracy_std", "seed_noise", "within_seed_noise", "n_seeds_significant", "n_seeds_better",
               "p_values_per_seed"]
    return pd.DataFrame(rows, columns=columns)


# ---- per era -----------------------------------------------------------------------------
def per_era_accuracy(run_dir: str | Path, results: pd.DataFrame) -> pd.DataFrame:
    """Emotion accuracy per era for every emotion stage (mean ± std over seeds), with each era's majority baseline.

    Long format (one row per stage × era; pivot for a heat map). The baseline is the share of
    the era's test paintings whose label is the stage's (training) majority class.
    """
    rows = []
    for name in _stage_order(results):
        part = results.loc[results["stage"] == name]
        if _first(part["task"]) != "emotion":
            continue
        seeds = _seeds(results, name)
        sp = stage_predictions(run_dir, name, seeds)
        majority = _first(part["majority_class"]) if "majority_class" in part else None
        eras = [e for e in (*ERAS, NO_ERA) if e in set(sp.era)] + sorted(set(sp.era) - {*ERAS, NO_ERA})
        for era in eras:
            mask = sp.era == era
            mean, std = mean_std(sp.correct[:, mask].mean(axis=1))
            rows.append({"configuration": _first(part["configuration"]), "stage": name, "era": era,
                         "n_paintings": int(mask.sum()), "n_seeds": len(seeds), "accuracy_mean": mean,
                         "accuracy_std": std, "majority_class": majority,
                         "majority_baseline_accuracy": float(np.mean(sp.label[mask] == majority))
                         if isinstance(majority, str) else float("nan")})
    return pd.DataFrame(rows, columns=["configuration", "stage", "era", "n_paintings", "n_seeds", "accuracy_mean",
                                       "accuracy_std", "majority_class", "majority_baseline_accuracy"])


# ---- conclusions -------------------------------------------------------------------------
def format_p(p: float) -> str:
    """A p-value as the conclusion text prints it: 3 decimals, or scientific notation below 0.001."""
    if not np.isfinite(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _pct(x: float) -> str:
    """A fraction as percent with one decimal."""
    return f"{x * 100:.1f}%"


def _pts(x: float) -> str:
    """A fraction difference as signed percentage points."""
    return f"{x * 100:+.1f} points"


def _verdict(row: pd.Series, alpha: float, what: str) -> str:
    """One comparison's verdict sentence, from its pooled numbers only."""
    diff, p = float(row["accuracy_diff"]), float(row["p_value"])
    sig = p < alpha
    p_text = f"p = {format_p(p)}, {'significant' if sig else 'not significant'} at {alpha:g}"
    agrees = (row["b"] > row["c"]) if diff > 0 else (row["c"] > row["b"])
    numbers = (f"{_pct(row['accuracy_stage'])} vs {_pct(row['accuracy_baseline'])}, a difference of {_pts(diff)}")
    if diff > 0 and sig and agrees:
        text = f"improved {what} ({numbers}; {p_text})."
    elif diff > 0:
        text = f"did not significantly improve {what} ({numbers}; {p_text})."
    elif diff < 0 and sig and agrees:
        text = f"did not improve {what}: it was significantly worse ({numbers}; {p_text})."
    else:
        text = f"did not improve {what} ({numbers}; {p_text})."
    ci = (row.get("accuracy_diff_ci_low"), row.get("accuracy_diff_ci_high"))
    if all(v is not None and np.isfinite(v) for v in ci):
        text += f" Bootstrap CI of the difference over test paintings: {ci[0] * 100:+.1f} to {ci[1] * 100:+.1f} points."
    n_seeds = int(row["n_seeds"])
    if n_seeds > 1:
        text += (f" Per seed: better in {int(row['n_seeds_better'])} of {n_seeds} seeds, McNemar significant in "
                 f"{int(row['n_seeds_significant'])} of {n_seeds}.")
        if bool(row["within_seed_noise"]):
            text += (f" The difference is within seed noise (seed std of accuracy up to "
                     f"{row['seed_noise'] * 100:.1f} points).")
    else:
        text += " Only one seed: seed-to-seed variation is unknown, so treat the difference with caution."
    if np.isfinite(row.get("f1_diff", float("nan"))):
        text += f" F1 changed by {row['f1_diff']:+.3f}."
    return text


def conclusion_text(tests_frame: pd.DataFrame, summary: pd.DataFrame, alpha: float = ALPHA) -> str:
    """Plain-language conclusions derived only from the numbers in paired_tests and summary_table frames."""
    pooled = tests_frame.loc[tests_frame["seed"].astype(str) == "pooled"]
    lines: list[str] = []
    seeds = sorted(set(int(n) for n in summary["n_seeds"])) if len(summary) else []
    lines.append(f"Conclusions computed from this run ({'/'.join(map(str, seeds)) or 'no'} seed(s) per stage; "
                 f"significance level {alpha:g}; accuracy differences are stage minus baseline).")
    for config, cname in CONFIGURATION_NAMES.items():
        rows = pooled.loc[(pooled["comparison"] == VS_BASELINE) & (pooled["stage"].map(
            lambda s: STAGES[s].configuration if s in STAGES else None) == config)]
        for _, row in rows.iterrows():
            kind = "genre-informed stage" if STAGES[row["stage"]].init_from and \
                STAGES[STAGES[row["stage"]].init_from].task == "genre" else "sequential stage"
            head = f"Configuration {config} ({cname}): the {kind} {row['stage']} vs its baseline {row['baseline']}: "
            if row["status"] != "ok":
                lines.append(head + "not compared — one of the two stages has no results yet.")
                continue
            lines.append(head + f"it {_verdict(row, alpha, 'emotion accuracy')}")
    for _, row in pooled.loc[pooled["comparison"] == SEQ_VS_SIM].iterrows():
        head = (f"Sequential vs simultaneous (the study's second claim): {row['stage']} (sequential) vs "
                f"{row['baseline']} (simultaneous): ")
        if row["status"] != "ok":
            lines.append(head + "not compared — one of the two stages has no results yet.")
            continue
        lines.append(head + f"sequential training {_verdict(row, alpha, 'emotion accuracy over simultaneous training')}")
    emotion = summary.loc[summary["task"] == "emotion"]
    if len(emotion):
        lines.append("Against always answering the majority class on the same test paintings:")
        n_beat = 0
        for _, r in emotion.iterrows():
            base_acc, diff = r["majority_baseline_accuracy"], r["vs_majority_accuracy_diff"]
            p = r["vs_majority_p_value"]
            has_p = np.isfinite(p)
            sig = has_p and p < alpha
            if diff > 0 and sig:
                verdict = "beats"
            elif diff > 0:
                verdict = "does not significantly beat" if has_p else "is above (untested)"
            else:
                verdict = "does not beat"
            n_beat += bool(diff > 0 and sig)
            p_text = f"p = {format_p(p)}, {'significant' if sig else 'not significant'} at {alpha:g}" if has_p \
                else "no per-painting test"
            f1_word = "above" if r["f1_mean"] > r["majority_baseline_f1"] else "not above"
            lines.append(f"- {r['stage']}: {verdict} always '{r['majority_class']}' — accuracy "
                         f"{_pct(r['accuracy_mean'])} vs {_pct(base_acc)} ({_pts(diff)}; {p_text}); F1 "
                         f"{r['f1_mean']:.3f} vs {r['majority_baseline_f1']:.3f} ({f1_word} the baseline's F1).")
        lines.append(f"{n_beat} of {len(emotion)} emotion stage(s) beat the always-majority baseline significantly.")
    return "\n".join(lines)


# ---- the file ----------------------------------------------------------------------------
def write_comparison(run_dir: str | Path, n_boot: int = 2000, confidence: float = 0.95, boot_seed: int = 0,
                     alpha: float = ALPHA) -> pd.DataFrame:
    """Write run_dir/comparison.csv (one row per stage: summary, CIs, pooled test vs its baseline) and return it."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    summary = summary_table(results, run_dir, n_boot, confidence, boot_seed, alpha)
    tests = paired_tests(run_dir, results, n_boot, confidence, boot_seed, alpha)
    pooled = tests.loc[(tests["seed"].astype(str) == "pooled") & (tests["comparison"] == VS_BASELINE)
                       & (tests["status"] == "ok")]
    keep = ["accuracy_diff", "accuracy_diff_ci_low", "accuracy_diff_ci_high", "f1_diff", "b", "c", "n_discordant",
            "p_value", "significant", "within_seed_noise", "n_seeds_significant", "p_values_per_seed"]
    merged = pooled[["stage", "baseline", *keep]].rename(
        columns={"baseline": "baseline_stage", **{k: f"vs_baseline_{k}" for k in keep}})
    table = summary.merge(merged, on="stage", how="left")
    atomic.write_csv(rundir.comparison(run_dir), table)
    return table


__all__ = ["ALPHA", "EXTRA_COMPARISONS", "StagePredictions", "conclusion_text", "format_accuracy", "format_f1",
           "format_p", "load_predictions", "load_results", "original_tables", "paired_tests", "per_era_accuracy",
           "stage_predictions", "summary_table", "write_comparison"]


def confusion_matrices(run_dir: str | Path, results: pd.DataFrame, task: str = "emotion") -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per stage of ``task``: the test confusion matrix summed over seeds (from metrics.json) and class names."""
    out: dict[str, tuple[np.ndarray, list[str]]] = {}
    for stage in _stage_order(results[results["task"] == task]):
        total, classes = None, []
        for seed in _seeds(results, stage):
            metrics = json.loads(rundir.stage_file(run_dir, stage, seed, "metrics.json").read_text())
            cm = np.asarray(metrics["metrics"]["confusion_matrix"], dtype=np.int64)
            total = cm if total is None else total + cm
            classes = list(metrics.get("classes", classes))
        if total is not None:
            out[stage] = (total, classes)
    return out
