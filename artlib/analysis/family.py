"""Judge a family of comparisons from a finished run directory: the one step notebooks 06/08 and ``compare`` share.

    judgement = judge_family(run_dir, "binary")      # evaluate, write verdicts.csv, conclude, plan
    print(judgement.conclusion); print(judgement.plan_text)

Writing a family replaces every earlier row of that family in ``verdicts.csv`` (rows are unique per
(family, comparison)), so rerunning notebook 08 with fewer stages leaves no stale row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from artlib.analysis import power
from artlib.analysis.compare import backbones_of, load_results, summary_table, write_comparison
from artlib.errors import DataError
from artlib.rundir import DEFAULT_BACKBONE
from artlib.analysis.evidence import RunEvidence
from artlib.analysis.verdicts import (Verdict, conclusion_text, evaluate, families_reported, verdict_table,
                                      write_verdicts)
from artlib.stages import BINARY, FAMILIES, FAMILY_TASK, Comparison


@dataclass(frozen=True)
class Judgement:
    """One family's verdicts, the table written to verdicts.csv, the conclusion and the power plan."""

    family: str
    verdicts: list[Verdict | Comparison]
    table: pd.DataFrame
    conclusion: str
    plan: pd.DataFrame
    plan_text: str


def comparisons_run(results: pd.DataFrame, family: str) -> tuple[Comparison, ...]:
    """The family's comparisons to judge: all of the binary family once any binary stage ran (unrun ones say
    'not run'), and of other families those whose two stages both have results."""
    stages = set(results["stage"])
    members = FAMILIES[family]
    if family == BINARY:
        return members if any({c.stage, c.baseline} & stages for c in members) else ()
    return tuple(c for c in members if {c.stage, c.baseline} <= stages)


def family_name(members: str, backbone: str = DEFAULT_BACKBONE) -> str:
    """A Holm family's name: its comparisons' set ('binary', 'nine-emotion') on one backbone ('binary:vit_b16');
    the study's resnet50 keeps the set's own name."""
    return members if backbone == DEFAULT_BACKBONE else f"{members}:{backbone}"


def parse_family(family: str) -> tuple[str, str]:
    """(the comparisons' set, the backbone) of a family name; a clear error for an unknown one."""
    members, _, backbone = family.partition(":")
    if members not in FAMILIES:
        raise DataError(f"family {family!r}: no such family; families are {', '.join(FAMILIES)}, optionally "
                        f"':<backbone>' (e.g. binary:convnext_tiny).")
    return members, backbone or DEFAULT_BACKBONE


def judge_family(run_dir: str | Path, family: str, alpha: float = 0.05, allow: tuple[str, ...] = (),
                 allow_unconverged: bool = False, comparisons: tuple[Comparison, ...] | None = None,
                 summary: pd.DataFrame | None = None, families: list[str] | None = None) -> Judgement:
    """Evaluate one family (one set of comparisons on one backbone's stages), write its rows of verdicts.csv, and
    conclude with the error rate across families."""
    run_dir = Path(run_dir)
    members, backbone = parse_family(family)
    results = load_results(run_dir, backbone)
    chosen = comparisons_run(results, members) if comparisons is None else comparisons
    chosen = tuple(replace(c, family=family) for c in chosen)
    summary = summary_table(results, run_dir) if summary is None else summary
    found = evaluate(run_dir, results, chosen, alpha, allow, allow_unconverged=allow_unconverged)
    table = verdict_table(found)
    write_verdicts(run_dir, table)
    reported = list(dict.fromkeys([*(families or []), *families_reported(run_dir)]))
    text = conclusion_text(found, summary, alpha, FAMILY_TASK.get(members, "emotion"), reported)
    decided = [v for v in found if isinstance(v, Verdict) and v.evidence.estimate is not None]
    level = decided[0].evidence.detectable_level if decided else alpha
    estimates = {v.evidence.comparison: v.evidence.estimate for v in decided}
    plan = power.plan_table(estimates, level, RunEvidence(run_dir, results).test_share())
    return Judgement(family, found, table, text, plan, power.plan_text(plan, level))


def compare_run(run_dir: str | Path, alpha: float = 0.05) -> list[Judgement]:
    """Recompute comparison.csv and every family's verdicts of a finished run directory (``python -m artlib compare``):
    each set of comparisons on each backbone with results (comparison.csv: the study's resnet50, else the first)."""
    run_dir = Path(run_dir)
    backbones = backbones_of(run_dir)
    tables = {b: load_results(run_dir, b) for b in backbones}
    families = [family_name(members, b) for b in backbones for members in FAMILIES if comparisons_run(tables[b], members)]
    summaries = {b: summary_table(tables[b], run_dir) for b in backbones}
    if backbones:
        write_comparison(run_dir, summaries[backbones[0]])
    return [judge_family(run_dir, family, alpha, summary=summaries[parse_family(family)[1]], families=families)
            for family in families]
