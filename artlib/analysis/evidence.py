"""What a comparison measured: paired correctness per split, pooled into seed-, artist- and split-aware estimates.

Two layers, so that the simulations in the tests run exactly the code the notebooks run:

* :func:`measure` works on plain arrays — per split, the two stages' (seeds × paintings) correctness, the
  trivial baselines' correctness and each painting's artist — and returns a :class:`Measured`.
* :class:`RunEvidence` reads those arrays from a run directory once (predictions per stage and split, the
  manifest's artists and split sizes) and hands them to :func:`measure`.

The unit of independence is the artist when the manifest names artists (WikiArt's paintings cluster by
artist: a stage that suits an artist suits all of that artist's paintings), else the painting; the verdict
says which. Several splits (``prepare --split-seeds K``) are pooled with the split's own variance
(:func:`artlib.analysis.stats.pool_splits`); one split gives an answer conditional on that split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from artlib import rundir
from artlib.analysis.compare import (StagePredictions, baseline_correct, painting_units, seeds_of,
                                     split_seeds_of, stage_predictions, units_of, backbone_of)
from artlib.analysis.stats import SeedAwareMean, paired_predictions, pool_splits
from artlib.data.manifest import read_manifest

ARTIST = "artist"
PAINTING = "painting"


@dataclass(frozen=True)
class SplitData:
    """One split's paired test data for a comparison (paintings in the same order in every array)."""

    stage: np.ndarray  # (seeds, n) 0/1 correctness of the compared stage
    baseline: np.ndarray  # (seeds, n) 0/1 correctness of the stage it is compared with
    references: dict[str, np.ndarray]  # trivial baselines' (n,) correctness: "majority", "era prior"
    units: np.ndarray  # (n,) the artist (or painting) of each painting: the independent unit


@dataclass(frozen=True)
class Measured:
    """The pooled estimates of one comparison, before Holm's correction decides anything."""

    difference: SeedAwareMean  # stage minus baseline
    above_reference: SeedAwareMean  # the better of the two models minus the stronger trivial baseline
    stage_accuracy: float
    baseline_accuracy: float
    reference: str  # the stronger trivial baseline's name ('none' when there is none)
    reference_accuracy: float
    n_test: int  # test paintings per split, summed over splits
    seeds: tuple[int, ...] = ()


def _pooled_accuracy(parts: list[SplitData], which: str) -> float:
    """Mean correctness over splits (each split weighted equally, as the pooled estimate weights them)."""
    return float(np.mean([getattr(p, which).mean() for p in parts]))


def strongest_reference(parts: list[SplitData]) -> tuple[str, float]:
    """The trivial baseline present in every split with the highest pooled accuracy; ('none', NaN) if none."""
    names = set.intersection(*(set(p.references) for p in parts)) if parts else set()
    if not names:
        return "none", float("nan")
    scores = {n: float(np.mean([p.references[n].mean() for p in parts])) for n in sorted(names)}
    best = max(scores, key=lambda n: scores[n])
    return best, scores[best]


def measure(parts: list[SplitData], test_share: float, unit: str = ARTIST, seeds: tuple[int, ...] = ()) -> Measured:
    """Pool one comparison over its splits: the difference, and the better model against the stronger baseline."""
    diff = pool_splits([(p.stage.astype(float) - p.baseline, p.units) for p in parts], test_share, unit)
    reference, reference_accuracy = strongest_reference(parts)
    better = "stage" if diff.estimate >= 0 else "baseline"
    if reference == "none":
        above = SeedAwareMean(float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), float("nan"),
                              (), 0)
    else:
        above = pool_splits([(getattr(p, better).astype(float) - p.references[reference][None, :], p.units)
                             for p in parts], test_share, unit)
    return Measured(diff, above, _pooled_accuracy(parts, "stage"), _pooled_accuracy(parts, "baseline"), reference,
                    reference_accuracy, int(sum(p.stage.shape[1] for p in parts)), seeds)


@dataclass
class RunEvidence:
    """A run directory's predictions, artists and split sizes, each read once and shared by every comparison."""

    run_dir: Path
    results: pd.DataFrame
    _predictions: dict[tuple[str, int, tuple[int, ...]], StagePredictions] = field(default_factory=dict)
    _units: tuple[dict[str, str], str] | None = None
    _test_share: float | None = None

    def predictions(self, stage: str, seeds: list[int], split: int = 0) -> StagePredictions:
        """A stage's predictions for these seeds in one split (loaded on first use)."""
        key = (stage, split, tuple(seeds))
        if key not in self._predictions:
            self._predictions[key] = stage_predictions(self.run_dir, stage, list(seeds), split,
                                                       backbone_of(self.results))
        return self._predictions[key]

    def units(self) -> tuple[dict[str, str], str]:
        """image_path → artist and the unit's name; paintings are their own units when no artist is recorded."""
        if self._units is None:
            self._units = painting_units(self.run_dir)
        return self._units

    def test_share(self) -> float:
        """n_test / n_train of the manifest's split (Nadeau–Bengio's correction when splits are pooled)."""
        if self._test_share is None:
            path = rundir.manifest(self.run_dir)
            split = read_manifest(path)["split"] if path.is_file() else pd.Series(dtype=str)
            train, test = int((split == "train").sum()), int((split == "test").sum())
            self._test_share = test / train if train else 0.25
        return self._test_share

    def split_data(self, stage: str, baseline: str, split: int, seeds: list[int] | None = None) -> SplitData | None:
        """Both stages' correctness on (their common) seeds of one split, paired painting by painting."""
        seeds = self.common_seeds(stage, baseline, split) if seeds is None else seeds
        if not seeds:
            return None
        a, b = self.predictions(stage, seeds, split), self.predictions(baseline, seeds, split)
        pairs = [paired_predictions(_frame(a, i), _frame(b, i), f"{stage} (seed {s})", f"{baseline} (seed {s})")
                 for i, s in enumerate(seeds)]
        units = units_of(a.image_path, self.units())
        references = baseline_correct(self.run_dir, self.results, a)
        return SplitData(np.stack([p[0] for p in pairs]).astype(np.int8), np.stack([p[1] for p in pairs]).astype(np.int8),
                         references, units)

    def common_seeds(self, stage: str, baseline: str, split: int) -> list[int]:
        """The seeds both stages have results for in one split."""
        return sorted(set(seeds_of(self.results, stage, split)) & set(seeds_of(self.results, baseline, split)))

    def measure(self, stage: str, baseline: str) -> Measured | None:
        """The comparison pooled over every split where both stages have results; None if never run.

        Splits are pooled over the seeds every one of them has (the same seeds, so per-seed differences line up).
        """
        splits = [k for k in split_seeds_of(self.results) if self.common_seeds(stage, baseline, k)]
        if not splits:
            return None
        seeds = sorted(set.intersection(*(set(self.common_seeds(stage, baseline, k)) for k in splits)))
        if not seeds:  # splits without a common seed: judge split 0's (or the first split's) alone
            splits, seeds = splits[:1], self.common_seeds(stage, baseline, splits[0])
        parts = [self.split_data(stage, baseline, k, seeds) for k in splits]
        return measure(parts, self.test_share(), self.units()[1], tuple(seeds))


def _frame(sp: StagePredictions, i: int) -> pd.DataFrame:
    """Seed ``i`` of a stage's predictions as the frame paired_predictions aligns."""
    return pd.DataFrame({"image_path": sp.image_path, "label": sp.label, "predicted": sp.predicted[i]})
