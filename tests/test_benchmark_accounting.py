"""benchmarks/train_throughput.py's accounting of the wall time: the checkpoint's cost includes the slowdown its
background write causes in the validation pass it overlaps (issue 21's overhead share is computed with it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    """benchmarks/train_throughput.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("train_throughput", ROOT / "benchmarks" / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_throughput"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tt = _load()


def test_the_validation_slowdown_of_overlapping_checkpoint_writes_is_charged_to_checkpoints() -> None:
    """Three epochs wrote a checkpoint during validation (0.15, 0.16, 0.14 s: the first is left out as cold, the
    median of the others is 0.15), the last did not (0.08 s): 3 x 0.07 = 0.21 s of validation was the checkpoint's;
    the shares move it and the outside share grows by it."""
    history = pd.DataFrame({"val_seconds": [0.15, 0.16, 0.14, 0.08], "checkpoint_seconds": [0.01, 0.01, 0.01, 0.0]})
    assert tt.checkpoint_overlap(history) == pytest.approx(0.21)
    timing = {"startup_seconds": 0.1, "model_seconds": 0.2, "image_cache_seconds": 1.0, "feature_cache_seconds": 1.0,
              "training_seconds": 6.0, "validation_seconds": 0.53, "checkpoint_seconds": 0.03, "test_seconds": 0.1}
    out = tt.row_timing({"timing": timing}, {}, wall=10.0, history=history)
    assert out["validation_part_seconds"] == pytest.approx(0.32)
    assert out["checkpoint_part_seconds"] == pytest.approx(0.24)
    assert out["share_outside_epochs_and_cache"] == pytest.approx(1 - (1.0 + 1.0 + 6.0 + 0.32) / 10.0)
    assert tt.row_timing({"timing": timing}, {}, wall=10.0)["checkpoint_part_seconds"] == pytest.approx(0.03)
    # nothing to compare with (every epoch wrote one), or validation faster while writing: no charge
    assert tt.checkpoint_overlap(history.iloc[:3]) == 0.0
    faster = pd.DataFrame({"val_seconds": [0.07, 0.08], "checkpoint_seconds": [0.01, 0.0]})
    assert tt.checkpoint_overlap(faster) == 0.0
    resumed = pd.DataFrame({"val_seconds": [0.5, 0.15, 0.16, 0.08], "checkpoint_seconds": [None, 0.01, 0.01, 0.0]})
    assert tt.checkpoint_overlap(resumed) == pytest.approx(2 * (0.16 - 0.08))  # the unknown first row is left out


def test_repeated_rounds_give_each_stages_median_and_range() -> None:
    """Three rounds: the median and the extremes of each value, per stage."""
    rounds = [[{"stage": "emotion_conv5", "epoch_efficiency": e, "share_outside_epochs_and_cache": s}]
              for e, s in ((0.9, 0.08), (0.96, 0.07), (0.93, 0.10))]
    (summary,) = tt.summarize_rounds(rounds)
    assert summary["rounds"] == 3
    assert (summary["epoch_efficiency"], summary["epoch_efficiency_min"], summary["epoch_efficiency_max"]) == \
        (0.93, 0.9, 0.96)
    assert summary["share_outside_epochs_and_cache"] == 0.08


@pytest.mark.parametrize(("label", "spec", "option"), [
    ("self-supervised:imgsim-0.1.2", "auto", "self-supervised"),  # auto fell back (offline): no download per row
    ("imagenet:IMAGENET1K_V2", "auto", "imagenet"),
    ("random", "none", "none"),
    ("file:model.pth", "/data/model.pth", "/data/model.pth"),
])
def test_rows_get_the_weights_the_benchmark_resolved_without_asking_the_network_again(label: str, spec: str,
                                                                                      option: str) -> None:
    """The rows' weights option resolves to the same weights (same label), never through another download try."""
    from artlib.models.weights import Weights

    assert tt.option_for(Weights(label=label, source="x"), spec) == option
