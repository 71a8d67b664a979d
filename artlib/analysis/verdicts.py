"""Verdicts: one rule decides whether a comparison 'improved', got 'worse' or is 'inconclusive', and says why.

The rule (:func:`decide`), in the order it is applied:

1. Fewer than ``MIN_SEEDS`` (3) seeds ran for both stages → **inconclusive**: seed-to-seed variation
   cannot be estimated well enough to trust an interval.
2. A compared stage was still improving when it stopped (its best epoch was its last, for some seed) →
   **inconclusive** ("still improving — raise epochs"), unless the caller allows unconverged stages; the
   verdict's notes then say so.
3. Both stages are below the stronger of the two trivial baselines (always the majority class; each
   era's majority emotion) → **inconclusive**: the difference is between two models that have learnt
   less than the class balance. The sentence says so first.
4. The Holm-adjusted p (within the comparison's family) is at least ``alpha`` → **inconclusive**, with
   the reason that holds: "the interval spans 0" (with "seeds disagree" when the seeds' own differences
   have both signs); or, when this comparison's interval excludes 0 all the same, "Holm's step-down
   stopped" at a comparison with a smaller p, or "few artists differ" (the exact sign test over them,
   one-sided in the difference's direction, which floors the p-value, does not confirm the t interval).
5. Holm passes but some seed's own difference went the other way → **inconclusive** ("seeds disagree").
6. The better of the two models is not significantly above the stronger trivial baseline at the same
   level (the interval of its difference from that baseline does not exclude 0) → **inconclusive**
   ("not above the … baseline").
7. Otherwise **improved** (difference > 0) or **worse** (difference < 0).

Every interval and test treats the training seed, the artist (the manifest's; each painting when it has
none) and the painting within its artist as random (:mod:`artlib.analysis.stats`), and with several
splits the split too (:mod:`artlib.analysis.evidence`). Comparisons belong to named **families**
(``binary``: notebook 06's seven; ``nine-emotion``: notebook 08's); Holm controls the family-wise error at
``alpha`` within each family, and the conclusion states the bound across the families reported.

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
from artlib.analysis.compare import STILL_IMPROVING, check_comparable, still_improving
from artlib.analysis.evidence import Measured, RunEvidence
from artlib.analysis.stats import SeedAwareMean, holm, holm_levels, mcnemar_exact
from artlib.tasks import rows_of
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
    p_adjusted: float  # Holm within the family
    detectable: float  # about the smallest difference detected with 80% power at detectable_level (NaN if unknown)
    reference: str  # the stronger trivial baseline's name
    reference_accuracy: float
    flags: tuple[str, ...] = ()  # notes such as "allowed explicitly"
    detectable_level: float = 0.05  # the two-sided level ``detectable`` is computed at (alpha / family size)
    family: str = "binary"  # the Holm family the comparison belongs to
    above_reference_low: float = float("nan")  # lower end (at ``confidence``) of the better model − that baseline
    unconverged: tuple[str, ...] = ()  # compared stages still improving when they stopped
    allow_unconverged: bool = False  # decide all the same (the notes say so)
    unit: str = "painting"  # the independent unit: "artist" or "painting"
    n_units: int = 0  # how many of them the test paintings come from
    n_splits: int = 1  # splits pooled (1: the verdict is conditional on that split)
    estimate: SeedAwareMean | None = None  # the difference's estimate with its variance pieces (for planning)


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


def _both_below(e: Evidence) -> bool:
    """Both models' accuracies are below the stronger trivial baseline's."""
    return e.stage_accuracy < e.reference_accuracy and e.baseline_accuracy < e.reference_accuracy


def decide(e: Evidence, alpha: float = 0.05, min_seeds: int = MIN_SEEDS) -> Verdict:
    """Apply the verdict rule (module docstring) to one comparison's evidence."""
    better = sum(d > 0 for d in e.per_seed)
    split = f"better in {better} of {len(e.per_seed)} seeds"
    if e.n_seeds < min_seeds:
        reason = f"too few seeds ({e.n_seeds} < {min_seeds})"
        if seeds_disagree(e.per_seed):
            reason += f"; seeds disagree ({split})"
        return Verdict(e, "inconclusive", reason)
    if e.unconverged and not e.allow_unconverged:
        return Verdict(e, "inconclusive", f"still improving — raise epochs ({', '.join(e.unconverged)} had its best "
                                          f"epoch last)")
    if _both_below(e):
        return Verdict(e, "inconclusive", f"both models are below the {e.reference} baseline "
                                          f"({e.reference_accuracy * 100:.1f}%)")
    if not (e.p_adjusted < alpha):
        return Verdict(e, "inconclusive", _why_not(e, split))
    if seeds_disagree(e.per_seed):
        return Verdict(e, "inconclusive", f"seeds disagree ({split})")
    if e.reference != "none" and not (e.above_reference_low > 0):
        model = e.stage if e.difference > 0 else e.baseline
        return Verdict(e, "inconclusive", f"not above the {e.reference} baseline: the interval of {model} minus that "
                                          f"baseline ({_pct(e.reference_accuracy)}) includes 0 at this level")
    direction = "improved" if e.difference > 0 else "worse"
    return Verdict(e, direction, f"the interval excludes 0 after Holm's correction, none of the {e.n_seeds} seeds "
                                 f"went the other way, and the better model is above the {e.reference} baseline")


def _why_not(e: Evidence, split: str) -> str:
    """Why a comparison whose Holm-adjusted p is not below alpha is inconclusive, from what actually holds."""
    if e.ci_low > 0 or e.ci_high < 0:  # the t interval at this comparison's Holm level excludes 0
        if e.p_value >= 1 - e.confidence:
            return (f"few {e.unit}s differ: the exact sign test over them (p = {format_p(e.p_value)}) does not "
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
    text += " " + _units_sentence(e)
    for flag in e.flags:
        text += f" Note: {flag}."
    return text


def _units_sentence(e: Evidence) -> str:
    """What was random in the interval: seeds, artists or paintings, and the split (or that it was one split)."""
    if e.unit == "artist":
        units = f"seeds, the {e.n_units} artists and the paintings within them are treated as random"
    else:
        units = (f"seeds and the {e.n_units} paintings are treated as random (no artists in the manifest: paintings "
                 f"of one artist are assumed independent)")
    if e.n_splits > 1:
        return f"Units: {units}, and the {e.n_splits} train/val/test splits are pooled with their own variance."
    return f"Units: {units}; conditional on one train/val/test split (prepare --split-seeds K varies it)."


# ---- judging a family ----------------------------------------------------------------------
def judge(comparisons: list[Comparison], measured: list[Measured], alpha: float = 0.05, min_seeds: int = MIN_SEEDS,
          flags: list[tuple[str, ...]] | None = None, unconverged: list[tuple[str, ...]] | None = None,
          allow_unconverged: bool = False) -> list[Verdict]:
    """Holm over one family's measured comparisons, then the rule for each (what notebooks and simulations share)."""
    p = [m.difference.p_value() for m in measured]
    adjusted, levels = holm(p), holm_levels(p, alpha)
    strictest = alpha / max(int(np.isfinite(levels).sum()), 1)  # Holm's first step: what a lone effect must pass
    out = []
    for i, (c, m) in enumerate(zip(comparisons, measured)):
        level = float(levels[i]) if np.isfinite(levels[i]) else alpha
        low, high = m.difference.interval(1 - level)
        low, high = max(low, -1.0), min(high, 1.0)  # a difference of two accuracies lies within ±1
        d = m.difference
        e = Evidence(c.name, c.stage, c.baseline, c.kind, c.question, d.n_seeds, m.n_test, m.stage_accuracy,
                     m.baseline_accuracy, d.estimate, d.per_seed, low, high, 1 - level, p[i], float(adjusted[i]),
                     d.detectable(strictest), m.reference, m.reference_accuracy,
                     flags[i] if flags else (), strictest, c.family, m.above_reference.interval(1 - level)[0],
                     unconverged[i] if unconverged else (), allow_unconverged, d.unit, d.n_clusters, d.n_splits, d)
        out.append(decide(e, alpha, min_seeds))
    return out


def _notes(results: pd.DataFrame, c: Comparison, allow: tuple[str, ...], unconverged: tuple[str, ...],
           allow_unconverged: bool) -> tuple[str, ...]:
    """The notes a verdict carries: settings allowed to differ, stages decided although still improving."""
    notes = [n for n in check_comparable(results, [c.stage, c.baseline], allow) if "allowed explicitly" in n]
    if unconverged and allow_unconverged:
        notes.append(f"decided although {', '.join(unconverged)} {STILL_IMPROVING.split(' — ')[0]} "
                     f"(allow_unconverged is set)")
    return tuple(notes)


def evaluate(run_dir: str | Path, results: pd.DataFrame, comparisons: tuple[Comparison, ...] = COMPARISONS,
             alpha: float = 0.05, allow: tuple[str, ...] = (), min_seeds: int = MIN_SEEDS,
             allow_unconverged: bool = False) -> list[Verdict | Comparison]:
    """A verdict for every comparison whose stages have results (Holm within each family); the others as-is."""
    source = RunEvidence(Path(run_dir), results)
    measured = {c: source.measure(c.stage, c.baseline) for c in comparisons}
    decided: dict[Comparison, Verdict] = {}
    for family in dict.fromkeys(c.family for c in comparisons):
        done = [c for c in comparisons if c.family == family and measured[c] is not None]
        stuck = [tuple(s for s in (c.stage, c.baseline) if still_improving(results, s)) for c in done]
        notes = [_notes(results, c, allow, u, allow_unconverged) for c, u in zip(done, stuck)]
        found = judge(done, [measured[c] for c in done], alpha, min_seeds, notes, stuck, allow_unconverged)
        decided.update(zip(done, found))
    return [decided.get(c, c) for c in comparisons]


VERDICT_COLUMNS = ("family", "comparison", "kind", "stage", "baseline", "verdict", "reason", "difference", "ci_low",
                   "ci_high", "confidence", "p_value", "p_adjusted", "n_seeds", "n_test", "unit", "n_units",
                   "n_splits", "stage_accuracy", "baseline_accuracy", "detectable_difference", "reference_baseline",
                   "reference_accuracy", "above_reference_low", "differences_by_seed", "notes", "sentence")


def _row(v: Verdict | Comparison) -> dict:
    """One verdicts.csv row (a comparison never run is inconclusive, reason 'not run')."""
    if isinstance(v, Comparison):
        return {"family": v.family, "comparison": v.name, "kind": v.kind, "stage": v.stage, "baseline": v.baseline,
                "verdict": "inconclusive", "reason": "not run: a stage has no results yet", "n_seeds": 0,
                "sentence": f"{v.name} ({v.kind}): not compared — {v.stage} or {v.baseline} has no results."}
    e = v.evidence
    return {"family": e.family, "comparison": e.comparison, "kind": e.kind, "stage": e.stage, "baseline": e.baseline,
            "verdict": v.verdict, "reason": v.reason, "difference": e.difference, "ci_low": e.ci_low,
            "ci_high": e.ci_high, "confidence": e.confidence, "p_value": e.p_value, "p_adjusted": e.p_adjusted,
            "n_seeds": e.n_seeds, "n_test": e.n_test, "unit": e.unit, "n_units": e.n_units, "n_splits": e.n_splits,
            "stage_accuracy": e.stage_accuracy, "baseline_accuracy": e.baseline_accuracy,
            "detectable_difference": e.detectable, "reference_baseline": e.reference,
            "reference_accuracy": e.reference_accuracy, "above_reference_low": e.above_reference_low,
            "differences_by_seed": ";".join(f"{d:.4f}" for d in e.per_seed), "notes": "; ".join(e.flags),
            "sentence": sentence(v)}


def verdict_table(verdicts: list[Verdict | Comparison]) -> pd.DataFrame:
    """verdicts.csv's rows: one per comparison of the families judged."""
    return pd.DataFrame([_row(v) for v in verdicts], columns=list(VERDICT_COLUMNS))


def _family_of(comparison: str) -> str:
    """The family a comparison name belongs to (verdicts.csv files from before families were recorded)."""
    from artlib.stages import FAMILIES

    return next((f for f, cs in FAMILIES.items() if any(c.name == comparison for c in cs)), "")


def write_verdicts(run_dir: str | Path, table: pd.DataFrame) -> Path:
    """Write run_dir/verdicts.csv atomically; the table's families replace every earlier row of those families."""
    path = rundir.verdicts(run_dir)
    if path.is_file():
        old = pd.read_csv(path)
        if "family" not in old.columns:
            old.insert(0, "family", old["comparison"].map(_family_of))
        unnamed = old["family"].fillna("").astype(str) == ""  # a row no family claims (0.2) goes with its comparison
        old = old.loc[~old["family"].isin(set(table["family"])) & ~(unnamed & old["comparison"].isin(set(table["comparison"])))]
        table = pd.concat([old, table], ignore_index=True) if len(old) else table
    atomic.write_csv(path, table)
    return path


def families_reported(run_dir: str | Path) -> list[str]:
    """The families verdicts.csv holds (after a write), in the order first written."""
    path = rundir.verdicts(run_dir)
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    column = frame["family"] if "family" in frame.columns else frame["comparison"].map(_family_of)
    return list(dict.fromkeys(str(f) for f in column.dropna()))


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


def family_error_sentence(families: list[str], alpha: float) -> str:
    """The error rate across the families reported: Holm at α within each, Bonferroni's bound across them."""
    if len(families) <= 1:
        name = families[0] if families else "binary"
        return (f"Error rate: Holm keeps the chance of any false verdict in the {name} family at most α = {alpha:g}; "
                f"it is the only family reported in this run directory.")
    return (f"Error rate: Holm keeps each family's chance of any false verdict at most α = {alpha:g}; across the "
            f"{len(families)} families reported here ({', '.join(families)}) it is at most {len(families)}·α = "
            f"{len(families) * alpha:g} (Bonferroni). For {alpha:g} across all of them, judge with "
            f"α = {alpha / len(families):g} (python -m artlib compare --alpha {alpha / len(families):g}).")


def conclusion_text(verdicts: list[Verdict | Comparison], summary: pd.DataFrame, alpha: float = 0.05,
                    task: str = "emotion", families: list[str] | None = None) -> str:
    """The conclusion in words, generated only from the verdicts and the summary table (no sentence of its own)."""
    done = [v for v in verdicts if isinstance(v, Verdict)]
    tested = sum(np.isfinite(v.evidence.p_value) for v in done)
    seeds = sorted(set(int(n) for n in summary["n_seeds"])) if len(summary) else []
    own = list(dict.fromkeys(v.evidence.family for v in done)) or ["binary"]
    lines = [f"Conclusions computed from this run ({'/'.join(map(str, seeds)) or 'no'} seed(s) per stage; "
             f"verdicts need ≥ {MIN_SEEDS} seeds and an interval that excludes 0 after Holm's correction over the "
             f"{tested} comparisons of the {'/'.join(own)} family with a p-value at α = {alpha:g}; differences are "
             f"stage minus baseline).", family_error_sentence(families or own, alpha)]
    emotion = rows_of(summary, task)
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
    compared = {s for v in verdicts for s in ((v.evidence.stage, v.evidence.baseline) if isinstance(v, Verdict)
                                              else (v.stage, v.baseline))}
    flagged = [s for s in summary.loc[summary["still_improving"].astype(bool), "stage"] if s in compared]
    if flagged:
        lines.append(f"Flagged: {', '.join(flagged)} — {STILL_IMPROVING} (the best epoch was the last one for some "
                     f"seed); their comparisons stay inconclusive unless allow_unconverged is set.")
    return "\n".join(lines)


def detail_by_seed(run_dir: str | Path, results: pd.DataFrame,
                   comparisons: tuple[Comparison, ...] = COMPARISONS) -> pd.DataFrame:
    """Per comparison, split and seed: both accuracies, the difference and exact McNemar (detail; not the verdict)."""
    from artlib.analysis.compare import split_seeds_of

    source = RunEvidence(Path(run_dir), results)
    rows = []
    for c in comparisons:
        for split in split_seeds_of(results):
            data = source.split_data(c.stage, c.baseline, split)
            if data is None:
                continue
            seeds = source.common_seeds(c.stage, c.baseline, split)
            for i, seed in enumerate(seeds):
                test = mcnemar_exact(data.stage[i], data.baseline[i])
                rows.append({"comparison": c.name, "split_seed": split, "seed": seed,
                             "stage_accuracy": float(data.stage[i].mean()),
                             "baseline_accuracy": float(data.baseline[i].mean()),
                             "difference": float(data.stage[i].mean() - data.baseline[i].mean()),
                             "only_stage_right": test["b"], "only_baseline_right": test["c"],
                             "mcnemar_p": test["p_value"]})
    return pd.DataFrame(rows)
