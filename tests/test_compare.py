"""artlib.analysis.compare on synthetic run directories written by the test (no training, no torch).

``write_stage`` writes what artlib.train.runner.run_stage leaves behind for one stage and seed
(predictions.csv, metrics.json, a results.csv row); ``make_run`` writes all eight stages
for two seeds with a chosen accuracy per stage, so two runs with opposite outcomes can be
compared through the conclusion text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artlib import atomic, results
from artlib.analysis.compare import (TABLE_COLUMNS, conclusion_text, format_p, load_results, original_tables, paired_tests,
                            per_era_accuracy, summary_table, write_comparison)
from artlib.errors import DataError
from artlib.data.labels import EMOTION_CLASSES, ERAS
from artlib.metrics import classification_metrics
from artlib.stages import STAGES


def write_stage(run_dir: Path, stage: str, seed: int, paths: Sequence[str], eras: Sequence[str],
                labels: Sequence[str], predicted: Sequence[str], majority: str | None = None) -> dict:
    """Write predictions.csv, metrics.json and the results.csv row of one stage/seed, like run_stage does."""
    st = STAGES[stage]
    index = {c: i for i, c in enumerate(st.classes)}
    y = np.array([index[v] for v in labels])
    p = np.array([index[v] for v in predicted])
    base = index[majority] if majority else int(np.argmax(np.bincount(y, minlength=len(st.classes))))
    m = classification_metrics(y, p, len(st.classes), base)
    folder = run_dir / "stages" / stage / f"seed_{seed}"
    probs = np.where(np.arange(len(st.classes))[None, :] == p[:, None], 0.9, 0.1 / (len(st.classes) - 1))
    atomic.write_csv(folder / "predictions.csv", pd.DataFrame({
        "image_path": list(paths), "era": list(eras), "label": list(labels), "predicted": list(predicted),
        "probability": probs.max(1), **{f"p_{c}": probs[:, i] for i, c in enumerate(st.classes)}}))
    row = {"configuration": st.configuration_name, "stage": stage, "task": st.task, "trained_blocks": st.trained_blocks,
           "init_from": st.init_from or "pretrained", "seed": seed, "accuracy": m["accuracy"], "f1": m["f1"],
           "balanced_accuracy": m["balanced_accuracy"], "n_test": m["n"],
           "majority_baseline_accuracy": m["majority_baseline_accuracy"],
           "majority_baseline_f1": m["majority_baseline_f1"], "majority_class": st.classes[base],
           "backbone_weights": "synthetic", "best_epoch": 1, "epochs_run": 2, "train_seconds": 0.1}
    atomic.write_json(folder / "metrics.json", {"result": row, "metrics": m, "classes": list(st.classes)})
    results.upsert(run_dir, [row])
    return row


# Accuracy per stage in the two opposite runs (baselines the same in both).
BETTER = {"emotion_conv5": 0.60, "genre_conv4_then_emotion_conv5": 0.85, "emotion_conv45": 0.58,
          "genre_conv45_then_emotion_conv45": 0.80, "emotion_conv4": 0.62, "emotion_conv4_then_emotion_conv5": 0.78}
WORSE = {"emotion_conv5": 0.60, "genre_conv4_then_emotion_conv5": 0.42, "emotion_conv45": 0.58,
         "genre_conv45_then_emotion_conv45": 0.40, "emotion_conv4": 0.62, "emotion_conv4_then_emotion_conv5": 0.45}
N_EMOTION, N_GENRE = 300, 120


def make_run(run_dir: Path, accuracy: dict[str, float], seeds: Sequence[int] = (0, 1),
             stages: Sequence[str] | None = None) -> Path:
    """All (or the given) stages × seeds with roughly the given emotion accuracy per stage; genre stages ≈ 0.6."""
    rng = np.random.default_rng(123)
    emo_paths = [f"Style_{i % 7}/painting_{i:04d}.jpg" for i in range(N_EMOTION)]
    emo_eras = [ERAS[i % 4] if i % 25 else "" for i in range(N_EMOTION)]  # a few paintings without an era
    emo_labels = np.where(rng.random(N_EMOTION) < 0.62, "positive", "negative")
    gen_paths = [f"Style_{i % 7}/genre_{i:04d}.jpg" for i in range(N_GENRE)]
    gen_labels = np.array([ERAS[i % 4] for i in range(N_GENRE)])
    for seed in seeds:
        for name in stages or STAGES:
            st = STAGES[name]
            srng = np.random.default_rng([seed, list(STAGES).index(name)])
            if st.task == "genre":
                right = srng.random(N_GENRE) < 0.6
                wrong = np.array([ERAS[(ERAS.index(v) + 1) % 4] for v in gen_labels])
                write_stage(run_dir, name, seed, gen_paths, gen_labels, gen_labels, np.where(right, gen_labels, wrong))
            else:
                right = srng.random(N_EMOTION) < accuracy[name]
                flipped = np.where(emo_labels == "positive", "negative", "positive")
                write_stage(run_dir, name, seed, emo_paths, emo_eras, emo_labels, np.where(right, emo_labels, flipped),
                            majority="positive")
    return run_dir


@pytest.fixture(scope="module")
def better_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run where the genre-informed (and sequential) stages are clearly better than their baselines."""
    return make_run(tmp_path_factory.mktemp("better"), BETTER)


@pytest.fixture(scope="module")
def worse_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The opposite run: genre-informed (and sequential) stages clearly worse than their baselines."""
    return make_run(tmp_path_factory.mktemp("worse"), WORSE)


# ---- a tiny handmade case with exact numbers ---------------------------------------------
PATHS = [f"S/p{i}.jpg" for i in range(6)]
ERAS6 = ["Renaissance", "Renaissance", "Modern", "Modern", "Contemporary", "Contemporary"]
LABELS6 = ["positive"] * 4 + ["negative"] * 2
P, N = "positive", "negative"


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    """Config 1's emotion stages on 6 paintings, 2 seeds, written by hand (numbers below computed by hand)."""
    run = tmp_path / "tiny"
    preds = {
        ("genre_conv4_then_emotion_conv5", 0): [P, P, P, P, N, N],  # 6/6
        ("genre_conv4_then_emotion_conv5", 1): [P, P, P, P, N, P],  # 5/6, p5 wrong
        ("emotion_conv5", 0): [P, P, P, P, P, P],  # 4/6 (always positive)
        ("emotion_conv5", 1): [N, P, P, P, P, P],  # 3/6, p0 p4 p5 wrong
    }
    for (stage, seed), pred in preds.items():
        write_stage(run, stage, seed, PATHS, ERAS6, LABELS6, pred, majority="positive")
    return run


def test_summary_of_tiny_case_has_hand_computed_numbers(tiny_run: Path) -> None:
    """Mean ± sample std over seeds, F1 of the positive class, the majority comparison and paired counts."""
    res = load_results(tiny_run)
    summary = summary_table(res, tiny_run, n_boot=500).set_index("stage")
    g = summary.loc["genre_conv4_then_emotion_conv5"]
    assert g["n_seeds"] == 2 and g["n_test"] == 6 and g["seeds"] == "0,1"
    assert g["accuracy_mean"] == pytest.approx(11 / 12)
    assert g["accuracy_std"] == pytest.approx((1 / 6) / math.sqrt(2))
    assert g["f1_mean"] == pytest.approx((1 + 8 / 9) / 2)  # seed 1: tp 4, fp 1, fn 0
    b = summary.loc["emotion_conv5"]
    assert b["accuracy_mean"] == pytest.approx((4 / 6 + 3 / 6) / 2)
    assert b["f1_mean"] == pytest.approx((0.8 + 6 / 9) / 2)
    assert g["majority_class"] == "positive" and g["majority_baseline_accuracy"] == pytest.approx(4 / 6)
    # vs always-positive: per-painting seed means [1,1,1,1,1,.5] vs [1,1,1,1,0,0] → b=2, c=0, p=0.5.
    assert (g["vs_majority_b"], g["vs_majority_c"], g["vs_majority_p_value"]) == (2, 0, 0.5)
    assert g["vs_majority_accuracy_diff"] == pytest.approx(11 / 12 - 4 / 6)
    assert g["beats_majority_accuracy"] and not g["beats_majority_significant"]
    assert g["accuracy_ci_low"] <= g["accuracy_mean"] <= g["accuracy_ci_high"] <= 1.0
    # Without run_dir: same means, no CIs.
    bare = summary_table(res).set_index("stage")
    assert bare.loc["emotion_conv5", "accuracy_mean"] == pytest.approx(7 / 12)
    assert math.isnan(bare.loc["emotion_conv5", "accuracy_ci_low"])


def test_paired_tests_of_tiny_case(tiny_run: Path) -> None:
    """Per seed McNemar (b=2, c=0 → p=0.5 each) and the pooled permutation test (d·4 = 2,0,0,0,4,2 → p=2/8)."""
    tests = paired_tests(tiny_run, load_results(tiny_run), n_boot=500)
    mine = tests.loc[(tests["stage"] == "genre_conv4_then_emotion_conv5")
                     & (tests["comparison"] == "vs baseline")].set_index("seed")
    for seed in (0, 1):
        assert (mine.loc[seed, "b"], mine.loc[seed, "c"], mine.loc[seed, "p_value"]) == (2, 0, 0.5)
        assert mine.loc[seed, "accuracy_diff"] == pytest.approx(1 / 3)
    pooled = mine.loc["pooled"]
    assert (pooled["b"], pooled["c"], pooled["p_value"]) == (3, 0, 0.25)
    assert pooled["accuracy_diff"] == pytest.approx(1 / 3)
    assert pooled["f1_diff"] == pytest.approx((1 + 8 / 9) / 2 - (0.8 + 6 / 9) / 2)
    assert not pooled["significant"] and pooled["n_seeds_significant"] == 0 and pooled["n_seeds_better"] == 2
    assert pooled["seed_noise"] == pytest.approx((1 / 6) / math.sqrt(2))  # max of the two seed stds (equal here)
    assert not pooled["within_seed_noise"]  # 33 points > 11.8 points
    assert 0 < pooled["accuracy_diff_ci_low"] <= 1 / 3 <= pooled["accuracy_diff_ci_high"]
    # Comparisons with a stage without results: one 'not run' row each.
    assert set(zip(*[tests.loc[tests["status"] == "not run", c] for c in ("stage", "baseline")])) == {
        ("genre_conv45_then_emotion_conv45", "emotion_conv45"), ("emotion_conv4_then_emotion_conv5", "emotion_conv4"),
        ("genre_conv4_then_emotion_conv5", "genre_conv45_then_emotion_conv45")}


def test_per_era_accuracy_of_tiny_case(tiny_run: Path) -> None:
    """Emotion accuracy per era, mean ± std over seeds, with each era's majority share."""
    era = per_era_accuracy(tiny_run, load_results(tiny_run)).set_index(["stage", "era"])
    g = "genre_conv4_then_emotion_conv5"
    assert era.loc[(g, "Renaissance"), "accuracy_mean"] == 1.0
    assert era.loc[(g, "Contemporary"), "accuracy_mean"] == 0.75
    assert era.loc[(g, "Contemporary"), "accuracy_std"] == pytest.approx(math.sqrt(0.125))
    assert era.loc[(g, "Contemporary"), "majority_baseline_accuracy"] == 0.0
    assert era.loc[("emotion_conv5", "Renaissance"), "accuracy_mean"] == 0.75
    assert list(era.loc[g].index) == ["Renaissance", "Modern", "Contemporary"]  # era order, absent eras left out


def test_original_tables_layout_and_format(tiny_run: Path) -> None:
    """Three tables in the study's columns; formatted values; 'not run' rows; the majority baseline row last."""
    tables = original_tables(load_results(tiny_run), tiny_run, n_boot=500)
    assert set(tables) == {1, 2, 3}
    t1 = tables[1]
    assert tuple(t1.columns) == TABLE_COLUMNS
    assert list(t1.index) == ["genre_conv4", "emotion_conv5", "genre_conv4_then_emotion_conv5", "majority_baseline"]
    assert t1.loc["genre_conv4", "Accuracy"] == "not run"
    acc = t1.loc["genre_conv4_then_emotion_conv5", "Accuracy"]
    assert re.fullmatch(r"91\.7% ± 11\.8 \[95% CI \d+\.\d–\d+\.\d\]", acc), acc
    assert t1.loc["genre_conv4_then_emotion_conv5", "F1 Score"] == "0.94 ± 0.08"
    assert t1.loc["emotion_conv5", "Layers Fine Tuned"] == "Conv5"
    assert t1.loc["majority_baseline"].tolist() == ["Always answer positive (baseline)", "Emotions Evoked", "none",
                                                    "66.7%", "0.80"]
    assert list(tables[3].index) == ["emotion_conv4", "emotion_conv4_then_emotion_conv5", "majority_baseline"]


def test_constant_stage_formats_point_interval(tmp_path: Path) -> None:
    """A stage right on every painting in every seed: '100.0% ± 0.0 [95% CI 100.0–100.0]'."""
    run = tmp_path / "perfect"
    for seed in (0, 1):
        write_stage(run, "emotion_conv4", seed, PATHS, ERAS6, LABELS6, LABELS6, majority="positive")
    tables = original_tables(load_results(run), run, n_boot=100)
    assert tables[3].loc["emotion_conv4", "Accuracy"] == "100.0% ± 0.0 [95% CI 100.0–100.0]"
    assert tables[3].loc["emotion_conv4", "F1 Score"] == "1.00 ± 0.00"


def test_one_seed_shows_no_spread(tmp_path: Path) -> None:
    """One seed: no '±' (spread unknown) and the conclusion says so."""
    run = tmp_path / "one"
    write_stage(run, "emotion_conv5", 0, PATHS, ERAS6, LABELS6, [P] * 6, majority="positive")
    write_stage(run, "genre_conv4_then_emotion_conv5", 0, PATHS, ERAS6, LABELS6, LABELS6, majority="positive")
    res = load_results(run)
    summary = summary_table(res, run, n_boot=100)
    assert "±" not in original_tables(res, run, summary=summary)[1].loc["emotion_conv5", "Accuracy"]
    tests = paired_tests(run, res, n_boot=100)
    pooled = tests.loc[(tests["seed"] == "pooled") & (tests["stage"] == "genre_conv4_then_emotion_conv5")].iloc[0]
    assert pooled["test"] == "McNemar exact" and (pooled["b"], pooled["c"]) == (2, 0)
    assert "Only one seed" in conclusion_text(tests, summary)


# ---- opposite outcomes -------------------------------------------------------------------
def _config_line(text: str, config: int) -> str:
    """The conclusion line of one configuration."""
    return next(line for line in text.splitlines() if line.startswith(f"Configuration {config} "))


def _pooled(tests: pd.DataFrame, stage: str) -> pd.Series:
    """The pooled vs-baseline row of a stage."""
    return tests.loc[(tests["seed"] == "pooled") & (tests["stage"] == stage) & (tests["comparison"] == "vs baseline")
                     ].iloc[0]


@pytest.mark.parametrize("outcome", ["better", "worse"])
def test_conclusion_follows_the_numbers(outcome: str, better_run: Path, worse_run: Path) -> None:
    """Clearly better runs read 'improved … significant'; clearly worse runs 'did not improve … significantly worse'."""
    run = better_run if outcome == "better" else worse_run
    res = load_results(run)
    summary = summary_table(res, run, n_boot=300)
    tests = paired_tests(run, res, n_boot=300)
    text = conclusion_text(tests, summary)
    for config, stage in ((1, "genre_conv4_then_emotion_conv5"), (2, "genre_conv45_then_emotion_conv45"),
                          (3, "emotion_conv4_then_emotion_conv5")):
        line = _config_line(text, config)
        row = _pooled(tests, stage)
        assert row["significant"] and row["p_value"] < 0.001
        assert f"p = {format_p(row['p_value'])}, significant at 0.05" in line
        assert f"{row['accuracy_diff'] * 100:+.1f} points" in line
        if outcome == "better":
            assert row["accuracy_diff"] > 0.1
            assert " improved emotion accuracy" in line and "did not" not in line
        else:
            assert row["accuracy_diff"] < -0.1
            assert "did not improve emotion accuracy: it was significantly worse" in line
            assert " improved" not in line
    assert "genre-informed stage genre_conv4_then_emotion_conv5" in _config_line(text, 1)
    assert "sequential stage emotion_conv4_then_emotion_conv5" in _config_line(text, 3)
    majority_line = next(line for line in text.splitlines() if line.startswith("- genre_conv4_then_emotion_conv5:"))
    assert ("beats always 'positive'" in majority_line) == (outcome == "better")
    assert ("does not beat always 'positive'" in majority_line) == (outcome == "worse")


def test_opposite_runs_give_different_conclusions(better_run: Path, worse_run: Path) -> None:
    """The text is computed, not canned: the two runs' conclusions differ line by line for configs 1–3."""
    texts = []
    for run in (better_run, worse_run):
        res = load_results(run)
        texts.append(conclusion_text(paired_tests(run, res, n_boot=200), summary_table(res, run, n_boot=200)))
    for config in (1, 2, 3):
        assert _config_line(texts[0], config) != _config_line(texts[1], config)


def test_within_seed_noise_wording(tmp_path: Path) -> None:
    """Equal-accuracy stages: not significant and, with seed spread larger than the gap, 'within seed noise'."""
    run = tmp_path / "noise"
    same = {k: 0.6 for k in BETTER}
    make_run(run, same, seeds=(0, 1, 2), stages=["emotion_conv5", "genre_conv4", "genre_conv4_then_emotion_conv5"])
    res = load_results(run)
    tests = paired_tests(run, res, n_boot=200)
    row = _pooled(tests, "genre_conv4_then_emotion_conv5")
    line = _config_line(conclusion_text(tests, summary_table(res, run, n_boot=200)), 1)
    assert not row["significant"] and "not significant at 0.05" in line
    assert ("within seed noise" in line) == bool(row["within_seed_noise"])
    assert abs(row["accuracy_diff"]) < 0.06
    assert "improved" not in line
    assert "Configuration 2" in conclusion_text(tests, summary_table(res, run, n_boot=50))  # 'not compared' line
    assert "not compared" in _config_line(conclusion_text(tests, summary_table(res, run, n_boot=50)), 2)


def test_write_comparison_file(better_run: Path) -> None:
    """comparison.csv: one row per stage in study order; vs-baseline columns only where a baseline exists."""
    table = write_comparison(better_run, n_boot=200)
    on_disk = pd.read_csv(better_run / "comparison.csv")
    assert list(on_disk["stage"]) == list(STAGES) == list(table["stage"])
    compared = on_disk.dropna(subset=["vs_baseline_p_value"])
    assert set(compared["stage"]) == {s.name for s in STAGES.values() if s.compare_with}
    assert dict(zip(compared["stage"], compared["baseline_stage"])) == {
        s.name: s.compare_with for s in STAGES.values() if s.compare_with}
    for col in ("accuracy_mean", "accuracy_std", "accuracy_ci_low", "accuracy_ci_high", "f1_ci_low", "f1_ci_high",
                "vs_baseline_accuracy_diff", "vs_baseline_b", "vs_baseline_c", "vs_baseline_significant",
                "vs_majority_p_value", "majority_baseline_accuracy"):
        assert col in on_disk.columns, col
    assert (on_disk["n_seeds"] == 2).all()
    assert not list(better_run.glob(".comparison.csv.*"))  # atomic write leaves no temp file
    # Same inputs, same boot seed ⇒ identical file.
    assert write_comparison(better_run, n_boot=200).equals(table)


def test_sequential_vs_simultaneous_row(better_run: Path) -> None:
    """The study's second claim is tested too (config 1's final stage vs config 2's) and reported in the text."""
    res = load_results(better_run)
    tests = paired_tests(better_run, res, n_boot=100)
    row = tests.loc[(tests["comparison"] == "sequential vs simultaneous") & (tests["seed"] == "pooled")].iloc[0]
    assert (row["stage"], row["baseline"]) == ("genre_conv4_then_emotion_conv5", "genre_conv45_then_emotion_conv45")
    assert "Sequential vs simultaneous" in conclusion_text(tests, summary_table(res, better_run, n_boot=100))


def test_errors_are_clear(tmp_path: Path, tiny_run: Path) -> None:
    """No results yet, missing predictions, and seeds on different test sets each raise a helpful error."""
    with pytest.raises(DataError, match="no results yet"):
        load_results(tmp_path / "empty")
    (tiny_run / "stages" / "emotion_conv5" / "seed_1" / "predictions.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"emotion_conv5 \(seed 1\)"):
        summary_table(load_results(tiny_run), tiny_run, n_boot=10)
    run = tmp_path / "split"
    write_stage(run, "emotion_conv5", 0, PATHS, ERAS6, LABELS6, LABELS6, majority="positive")
    write_stage(run, "emotion_conv5", 1, [p.replace("p", "q") for p in PATHS], ERAS6, LABELS6, LABELS6,
                majority="positive")
    with pytest.raises(DataError, match="seed 1 was tested on other paintings"):
        summary_table(load_results(run), run, n_boot=10)


def test_emotion_classes_are_the_studys() -> None:
    """The synthetic runs use the package's class names (guards the helper against drift)."""
    assert set(EMOTION_CLASSES) == {"negative", "positive"}
