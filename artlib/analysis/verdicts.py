"""Verdicts: one rule decides whether a comparison 'improved', got 'worse' or is 'inconclusive', and says why.

The rule (:func:`decide`), in the order it is applied:

1. Fewer than ``MIN_SEEDS`` (3) seeds ran for both stages → **inconclusive**: seed-to-seed variation
   cannot be estimated well enough to trust an interval.
2. Both stages are below the stronger of the two trivial baselines (always the majority class; each
   era's majority emotion) → **inconclusive**: the difference is between two models that have learnt
   less than the class balance, and says nothing about the question. The sentence says so first.
3. The Holm-adjusted p (over the comparisons shown) is at least ``alpha`` → **inconclusive**, with
   the reason that holds: "the interval spans 0" (with "seeds disagree" when the seeds' own
   differences have both signs); or, when this comparison's interval excludes 0 all the same,
   "Holm's step-down stopped" at a comparison with a smaller p, or "few paintings differ" (the exact
   sign test over them, which floors the p-value, does not confirm the t interval).
4. Holm passes but some seed's own difference went the other way → **inconclusive** ("seeds disagree").
5. Otherwise **improved** (difference > 0) or **worse** (difference < 0).

Every sentence is generated from one :class:`Verdict`, so no sentence can contradict another: the
p-value printed is the Holm-adjusted one the rule used, the interval printed is the one at the
level Holm tested this comparison at, and "improved"/"worse" appear only as the verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from artlib import atomic, rundir
from artlib.analysis.compare import (STILL_IMPROVING, StagePredictions, baseline_correct, check_comparable, seeds_of,
                                     stage_predictions, still_improving, strongest_baseline)
from artlib.analysis.stats import holm, holm_levels, mcnemar_exact, paired_predictions, crossed_mean
from artlib.stages import COMPARISONS, MATCHED, ORIGINAL, SEQUENTIAL_VS_SIMULTANEOUS, Comparison

MIN_SEEDS = 3
VERDICTS = ("improved", "worse", "inconclusive")


@dataclass(frozen=True)
class Evidence:
    """What one comparison measured, with the settings that make it readable."""

    comparison: str
    stage: str
    baseline: str
    kind: str
    question: str
    n_seeds: int
    n_test: int
    stage_accuracy: float
    baseline_accuracy: float
    difference: float  # stage minus baseline, a fraction (0.05 = 5 points)
    per_seed: tuple[float, ...]  # each common seed's difference
    ci_low: float  # the seed-aware interval of the difference at ``confidence``
    ci_high: float
    confidence: float  # the level of that interval (Holm's per-comparison level)
    p_value: float  # two-sided, seed-aware
    p_adjusted: float  # Holm over the comparisons shown
    detectable: float  # about the smallest difference detected with 80% power at detectable_level (NaN if unknown)
    reference: str  # the stronger trivial baseline's name
    reference_accuracy: float
    flags: tuple[str, ...] = ()  # notes such as "still improving when stopped"
    detectable_level: float = 0.05  # the two-sided level ``detectable`` is computed at (alpha / family size)


@dataclass(frozen=True)
class Verdict:
    """The decision on one comparison and the reason for it."""

    evidence: Evidence
    verdict: str  # one of VERDICTS
    reason: str


def seeds_disagree(per_seed: tuple[float, ...]) -> bool:
    """True when some seed's difference is positive and another's negative."""
    arr = np.asarray(per_seed, dtype=float)
    return bool((arr > 0).any() and (arr < 0).any())


def decide(e: Evidence, alpha: float = 0.05, min_seeds: int = MIN_SEEDS) -> Verdict:
    """Apply the verdict rule (module docstring) to one comparison's evidence."""
    better = sum(d > 0 for d in e.per_seed)
    split = f"better in {better} of {len(e.per_seed)} seeds"
    if e.n_seeds < min_seeds:
        reason = f"too few seeds ({e.n_seeds} < {min_seeds})"
        if seeds_disagree(e.per_seed):
            reason += f"; seeds disagree ({split})"
        return Verdict(e, "inconclusive", reason)
    if e.stage_accuracy < e.reference_accuracy and e.baseline_accuracy < e.reference_accuracy:
        return Verdict(e, "inconclusive", f"both models are below the {e.reference} baseline "
                                          f"({e.reference_accuracy * 100:.1f}%)")
    if not (e.p_adjusted < alpha):
        return Verdict(e, "inconclusive", _why_not(e, split))
    if seeds_disagree(e.per_seed):
        return Verdict(e, "inconclusive", f"seeds disagree ({split})")
    direction = "improved" if e.difference > 0 else "worse"
    return Verdict(e, direction, f"the interval excludes 0 after Holm's correction and none of the {e.n_seeds} "
                                 f"seeds went the other way")


def _why_not(e: Evidence, split: str) -> str:
    """Why a comparison whose Holm-adjusted p is not below alpha is inconclusive, from what actually holds."""
    if e.ci_low > 0 or e.ci_high < 0:  # the t interval at this comparison's Holm level excludes 0
        if e.p_value >= 1 - e.confidence:
            return (f"few paintings differ: the exact sign test over them (p = {format_p(e.p_value)}) does not "
                    f"confirm the interval")
        return "Holm's step-down stopped at a comparison with a smaller p-value"
    if seeds_disagree(e.per_seed):
        return f"seeds disagree ({split}) and the interval spans 0"
    return "the interval of the difference spans 0"


def _pct(x: float) -> str:
    """A fraction as a percentage with one decimal."""
    return f"{x * 100:.1f}%"


def _pts(x: float) -> str:
    """A difference of fractions as signed percentage points."""
    return f"{x * 100:+.1f}"


def format_p(p: float) -> str:
    """A p-value with 3 decimals, or in scientific notation below 0.001."""
    if not np.isfinite(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def sentence(v: Verdict) -> str:
    """The comparison's verdict in words — baseline warning first, then verdict, numbers and reason."""
    e = v.evidence
    head = f"{e.comparison} ({e.kind}): {e.stage} vs {e.baseline}. "
    if e.stage_accuracy < e.reference_accuracy and e.baseline_accuracy < e.reference_accuracy:
        head += (f"Both models are below the {e.reference} baseline ({_pct(e.reference_accuracy)}), so neither has "
                 f"learnt more than that baseline knows. ")
    text = head + f"Verdict: {v.verdict.upper()} — {v.reason}. "
    text += f"Accuracy {_pct(e.stage_accuracy)} vs {_pct(e.baseline_accuracy)}, difference {_pts(e.difference)} points"
    if np.isfinite(e.ci_low) and np.isfinite(e.ci_high):
        text += (f" ({e.confidence * 100:.1f}% interval {_pts(e.ci_low)} to {_pts(e.ci_high)}, Holm-adjusted "
                 f"p = {format_p(e.p_adjusted)})")
    per_seed = ", ".join(_pts(d) for d in e.per_seed)
    text += f"; per seed: {per_seed} points over {e.n_test} test paintings."
    if np.isfinite(e.detectable) and e.detectable >= 1:
        text += " This run could not detect any difference (80% power would need more than 100 points)."
    elif np.isfinite(e.detectable):
        text += (f" This run could detect differences of about ±{e.detectable * 100:.1f} points (80% power at the "
                 f"two-sided level {e.detectable_level * 100:.2g}%, α over the family; approximate).")
    elif e.n_seeds < 2:
        text += " With fewer than 2 seeds the smallest detectable difference is unknown."
    else:
        text += " The difference was the same on every painting in every seed: no variance to size an effect by."
    for flag in e.flags:
        text += f" Note: {flag}."
    return text


# ---- evidence from a run directory ---------------------------------------------------------
def _paired(run_dir: Path, results: pd.DataFrame, c: Comparison, seeds: list[int]) -> tuple[np.ndarray, np.ndarray,
                                                                                           StagePredictions]:
    """(seeds × paintings) correctness of both stages, aligned on the same test paintings and labels."""
    a, b = stage_predictions(run_dir, c.stage, seeds), stage_predictions(run_dir, c.baseline, seeds)
    pairs = [paired_predictions(pd.DataFrame({"image_path": a.image_path, "label": a.label, "predicted": a.predicted[i]}),
                                pd.DataFrame({"image_path": b.image_path, "label": b.label, "predicted": b.predicted[i]}),
                                f"{c.stage} (seed {s})", f"{c.baseline} (seed {s})") for i, s in enumerate(seeds)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), a


def _measure(run_dir: Path, results: pd.DataFrame, c: Comparison, allow: tuple[str, ...]) -> dict | None:
    """The raw numbers of one comparison (before Holm), or None when a stage has no results."""
    seeds = sorted(set(seeds_of(results, c.stage)) & set(seeds_of(results, c.baseline)))
    if not seeds:
        return None
    notes = check_comparable(results, [c.stage, c.baseline], allow)
    ca, cb, sp = _paired(run_dir, results, c, seeds)
    diff = crossed_mean(ca.astype(float) - cb.astype(float))
    reference, reference_accuracy = strongest_baseline(baseline_correct(run_dir, results, sp))
    flags = [f"{s} {STILL_IMPROVING}" for s in (c.stage, c.baseline) if still_improving(results, s)]
    flags += [n for n in notes if "allowed explicitly" in n]
    return {"comparison": c, "seeds": seeds, "n_test": ca.shape[1], "stage_accuracy": float(ca.mean()),
            "baseline_accuracy": float(cb.mean()), "diff": diff, "p": diff.p_value(), "reference": reference,
            "reference_accuracy": reference_accuracy, "flags": tuple(flags)}


def evaluate(run_dir: str | Path, results: pd.DataFrame, comparisons: tuple[Comparison, ...] = COMPARISONS,
             alpha: float = 0.05, allow: tuple[str, ...] = (), min_seeds: int = MIN_SEEDS) -> list[Verdict | Comparison]:
    """A verdict for every comparison whose stages have results (Holm over those); the others come back as-is."""
    run_dir = Path(run_dir)
    measured = [_measure(run_dir, results, c, allow) for c in comparisons]
    done = [m for m in measured if m is not None]
    adjusted = holm([m["p"] for m in done])
    levels = holm_levels([m["p"] for m in done], alpha)
    strictest = alpha / max(int(np.isfinite(levels).sum()), 1)  # Holm's first step: what a lone effect must pass
    out: list[Verdict | Comparison] = []
    for c, m in zip(comparisons, measured):
        if m is None:
            out.append(c)
            continue
        i = done.index(m)
        level = float(levels[i]) if np.isfinite(levels[i]) else alpha
        low, high = m["diff"].interval(1 - level)
        low, high = max(low, -1.0), min(high, 1.0)  # a difference of two accuracies lies within ±1
        e = Evidence(c.name, c.stage, c.baseline, c.kind, c.question, len(m["seeds"]), m["n_test"],
                     m["stage_accuracy"], m["baseline_accuracy"], m["diff"].estimate, m["diff"].per_seed, low, high,
                     1 - level, m["p"], float(adjusted[i]), m["diff"].detectable(strictest), m["reference"],
                     m["reference_accuracy"], m["flags"], strictest)
        out.append(decide(e, alpha, min_seeds))
    return out


VERDICT_COLUMNS = ("comparison", "kind", "stage", "baseline", "verdict", "reason", "difference", "ci_low", "ci_high",
                   "confidence", "p_value", "p_adjusted", "n_seeds", "n_test", "stage_accuracy", "baseline_accuracy",
                   "detectable_difference", "reference_baseline", "reference_accuracy", "differences_by_seed",
                   "notes", "sentence")


def verdict_table(verdicts: list[Verdict | Comparison]) -> pd.DataFrame:
    """verdicts.csv's rows: one per comparison (not-run comparisons are inconclusive, reason 'not run')."""
    rows = []
    for v in verdicts:
        if isinstance(v, Comparison):
            rows.append({"comparison": v.name, "kind": v.kind, "stage": v.stage, "baseline": v.baseline,
                         "verdict": "inconclusive", "reason": "not run: a stage has no results yet", "n_seeds": 0,
                         "sentence": f"{v.name} ({v.kind}): not compared — {v.stage} or {v.baseline} has no results."})
            continue
        e = v.evidence
        rows.append({"comparison": e.comparison, "kind": e.kind, "stage": e.stage, "baseline": e.baseline,
                     "verdict": v.verdict, "reason": v.reason, "difference": e.difference, "ci_low": e.ci_low,
                     "ci_high": e.ci_high, "confidence": e.confidence, "p_value": e.p_value,
                     "p_adjusted": e.p_adjusted, "n_seeds": e.n_seeds, "n_test": e.n_test,
                     "stage_accuracy": e.stage_accuracy, "baseline_accuracy": e.baseline_accuracy,
                     "detectable_difference": e.detectable, "reference_baseline": e.reference,
                     "reference_accuracy": e.reference_accuracy,
                     "differences_by_seed": ";".join(f"{d:.4f}" for d in e.per_seed), "notes": "; ".join(e.flags),
                     "sentence": sentence(v)})
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def write_verdicts(run_dir: str | Path, table: pd.DataFrame) -> Path:
    """Write run_dir/verdicts.csv atomically, replacing rows of the same comparisons; returns its path."""
    path = rundir.verdicts(run_dir)
    if path.is_file():
        old = pd.read_csv(path)
        table = pd.concat([old.loc[~old["comparison"].isin(table["comparison"])], table], ignore_index=True)
    atomic.write_csv(path, table)
    return path


# ---- the conclusion ------------------------------------------------------------------------
def _claim(name: str, verdicts: list[Verdict], tests_claim: Callable[[Evidence], bool]) -> str:
    """One sentence on a claim of the study from the verdicts of the comparisons that test it."""
    relevant = [v for v in verdicts if tests_claim(v.evidence)]
    if not relevant:
        return f"{name}: not tested — the stages it needs have no results yet."
    said = [v.verdict for v in relevant]
    listing = "; ".join(f"{v.evidence.comparison}: {v.verdict}" for v in relevant)
    if all(s == "improved" for s in said):
        summary = "this run supports it"
    elif any(s == "worse" for s in said) and not any(s == "improved" for s in said):
        summary = "this run contradicts it"
    elif any(s == "worse" for s in said):
        summary = "this run gives mixed answers"
    else:
        summary = "this run cannot decide it"
    return f"{name}: {summary} ({listing})."


def conclusion_text(verdicts: list[Verdict | Comparison], summary: pd.DataFrame, alpha: float = 0.05,
                    task: str = "emotion") -> str:
    """The conclusion in words, generated only from the verdicts and the summary table (no sentence of its own)."""
    done = [v for v in verdicts if isinstance(v, Verdict)]
    tested = sum(np.isfinite(v.evidence.p_value) for v in done)
    seeds = sorted(set(int(n) for n in summary["n_seeds"])) if len(summary) else []
    lines = [f"Conclusions computed from this run ({'/'.join(map(str, seeds)) or 'no'} seed(s) per stage; "
             f"verdicts need ≥ {MIN_SEEDS} seeds and an interval that excludes 0 after Holm's correction over the "
             f"{tested} comparisons with a p-value at α = {alpha:g}; differences are stage minus baseline)."]
    emotion = summary.loc[summary["task"] == task]
    below = emotion.loc[~emotion["above_baselines"].astype(bool)]
    if len(below):
        lines.append("First, the baselines: " + "; ".join(
            f"{r.stage} ({r.accuracy_mean * 100:.1f}%) does not beat the {r.strongest_baseline} baseline "
            f"({r.strongest_baseline_accuracy * 100:.1f}%)" for r in below.itertuples()) + ".")
    lines.append(_claim("Claim 1, genre training helps emotion classification — the matched controls (the only "
                        "comparisons that isolate genre)", done, lambda e: e.kind == MATCHED and "genre" in e.stage))
    lines.append(_claim("Claim 1 as the study tested it, against its own baselines", done,
                        lambda e: e.kind == ORIGINAL and "genre" in e.stage))
    lines.append(_claim("Claim 2, sequential beats simultaneous training", done,
                        lambda e: e.kind == SEQUENTIAL_VS_SIMULTANEOUS))
    lines.extend("- " + sentence(v) for v in done)
    lines.extend(f"- {c.name} ({c.kind}): not compared — {c.stage} or {c.baseline} has no results yet."
                 for c in verdicts if isinstance(c, Comparison))
    flagged = summary.loc[summary["still_improving"].astype(bool), "stage"].tolist()
    if flagged:
        lines.append(f"Flagged: {', '.join(flagged)} — {STILL_IMPROVING} (the best epoch was the last one for some "
                     f"seed).")
    return "\n".join(lines)


def detail_by_seed(run_dir: str | Path, results: pd.DataFrame,
                comparisons: tuple[Comparison, ...] = COMPARISONS) -> pd.DataFrame:
    """Per comparison and seed: both accuracies, the difference and exact McNemar (detail; not the verdict)."""
    rows = []
    for c in comparisons:
        seeds = sorted(set(seeds_of(results, c.stage)) & set(seeds_of(results, c.baseline)))
        if not seeds:
            continue
        ca, cb, _ = _paired(Path(run_dir), results, c, seeds)
        for i, seed in enumerate(seeds):
            test = mcnemar_exact(ca[i], cb[i])
            rows.append({"comparison": c.name, "seed": seed, "stage_accuracy": float(ca[i].mean()),
                         "baseline_accuracy": float(cb[i].mean()), "difference": float(ca[i].mean() - cb[i].mean()),
                         "only_stage_right": test["b"], "only_baseline_right": test["c"],
                         "mcnemar_p": test["p_value"]})
    return pd.DataFrame(rows)
