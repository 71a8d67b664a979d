"""The label funnel: how many annotations and paintings each preparation step kept or dropped, in order."""

from __future__ import annotations

import pandas as pd


class Funnel:
    """Counts of what each preparation step kept or dropped, in order."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, stage: str, step: str, count: int) -> None:
        """Record one line of the funnel."""
        self.rows.append({"stage": stage, "step": step, "count": int(count)})

    def frame(self) -> pd.DataFrame:
        """The funnel as a table."""
        return pd.DataFrame(self.rows, columns=["stage", "step", "count"])


def format_funnel(funnel: pd.DataFrame) -> str:
    """The label funnel as aligned text, one line per step."""
    width = max(len(s) for s in funnel["step"]) if len(funnel) else 10
    lines, stage = [], None
    for row in funnel.itertuples():
        if row.stage != stage:
            stage = row.stage
            lines.append(f"{stage}:")
        lines.append(f"  {row.step:<{width}}  {row.count:>8,}")
    return "\n".join(lines)
