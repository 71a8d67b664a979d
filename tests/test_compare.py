"""artlib.analysis.compare on synthetic run directories written by the test (no training, no torch).

``write_stage`` writes what training (artlib.train.driver.run_stages) leaves behind for one stage and seed
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
from artlib.analysis.compare import (TABLE_COLUMNS, check_comparable, confusion_matrices, era_priors, load_results,
                                     original_tables, per_era_accuracy, table_by_seed, summary_table,
                                     write_comparison)
from artlib.analysis.verdicts import conclusion_text, evaluate, detail_by_seed, verdict_table, write_verdicts
from artlib.errors import DataError
from artlib.data.labels import EMOTION_CLASSES, ERAS
from artlib.metrics import classification_metrics
from artlib.stages import STAGES


def write_stage(run_dir: Path, stage: str, seed: int, paths: Sequence[str], eras: Sequence[str],
                labels: Sequence[str], predicted: Sequence[str], majority: str | None = None,
                **settings: object) -> dict:
    """Write predictions.csv, metrics.json and the results.csv row of one stage/seed, like training does."""
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
           "backbone_weights": "synthetic", "best_epoch": 1, "epochs_run": 2, "train_seconds": 0.1, "image_size": 96,
           "epochs": 2, "lr": 1e-4, "label_rule": "unanimous", "era_map": "chronological",
           "manifest_sha256": "0123456789abcdef", **settings}
    atomic.write_json(folder / "metrics.json", {"result": row, "metrics": m, "classes": list(st.classes)})
    results.upsert(run_dir, [row])
    return row


# Accuracy per stage in the two opposite runs (baselines the same in both).
BETTER = {"emotion_conv5": 0.72, "genre_conv4_then_emotion_conv5": 0.90, "emotion_conv45": 0.72,
          "genre_conv45_then_emotion_conv45": 0.90, "emotion_conv4": 0.72, "emotion_conv4_then_emotion_conv5": 0.74,
          "emotion_conv45_then_emotion_conv45": 0.74}
# the better model of a "worse" comparison must itself be clearly above the majority baseline (≈ 64%)
WORSE = {**{name: 0.86 for name in BETTER}, "genre_conv4_then_emotion_conv5": 0.45,
         "genre_conv45_then_emotion_conv45": 0.45}
N_EMOTION, N_GENRE = 600, 120
FIVE = (0, 1, 2, 3, 4)  # with 3 nearly identical seeds the df are capped at 2: too few to decide at Holm's levels


def make_run(run_dir: Path, accuracy: dict[str, float], seeds: Sequence[int] = (0, 1, 2),
             stages: Sequence[str] | None = None) -> Path:
    """All (or the given) stages × seeds with the given emotion accuracy per stage; genre stages ≈ 0.6.

    As with real seeds, a stage's seeds agree on most paintings: each seed re-draws 5% of them.
    """
    rng = np.random.default_rng(123)
    emo_paths = [f"Style_{i % 7}/painting_{i:04d}.jpg" for i in range(N_EMOTION)]
    emo_eras = [ERAS[i % 4] if i % 25 else "" for i in range(N_EMOTION)]  # a few paintings without an era
    emo_labels = np.where(rng.random(N_EMOTION) < 0.62, "positive", "negative")
    gen_paths = [f"Style_{i % 7}/genre_{i:04d}.jpg" for i in range(N_GENRE)]
    gen_labels = np.array([ERAS[i % 4] for i in range(N_GENRE)])
    for name in stages or [s for s in STAGES if STAGES[s].task != "emotion9" and not STAGES[s].probe]:
        st = STAGES[name]
        n = N_GENRE if st.task == "genre" else N_EMOTION
        share = 0.6 if st.task == "genre" else accuracy[name]
        base = np.random.default_rng(list(STAGES).index(name)).random(n) < share
        for seed in seeds:
            srng = np.random.default_rng([seed, list(STAGES).index(name)])
            redraw = srng.random(n) < 0.05
            right = np.where(redraw, srng.random(n) < share, base)
            if st.task == "genre":
                wrong = np.array([ERAS[(ERAS.index(v) + 1) % 4] for v in gen_labels])
                write_stage(run_dir, name, seed, gen_paths, gen_labels, gen_labels, np.where(right, gen_labels, wrong))
            else:
                flipped = np.where(emo_labels == "positive", "negative", "positive")
                write_stage(run_dir, name, seed, emo_paths, emo_eras, emo_labels, np.where(right, emo_labels, flipped),
                            majority="positive")
    return run_dir


@pytest.fixture(scope="module")
def better_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run where the genre-informed stages are clearly better than every baseline (5 seeds)."""
    return make_run(tmp_path_factory.mktemp("better"), BETTER, seeds=FIVE)


@pytest.fixture(scope="module")
def worse_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The opposite run: genre-informed stages clearly worse than their baselines (5 seeds)."""
    return make_run(tmp_path_factory.mktemp("worse"), WORSE, seeds=FIVE)


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
    """Mean ± sample std over seeds, F1 of the positive class, both trivial baselines, exact-ish intervals."""
    res = load_results(tiny_run)
    summary = summary_table(res, tiny_run).set_index("stage")
    g = summary.loc["genre_conv4_then_emotion_conv5"]
    assert g["n_seeds"] == 2 and g["n_test"] == 6 and g["seeds"] == "0,1"
    assert g["accuracy_mean"] == pytest.approx(11 / 12)
    assert g["accuracy_std"] == pytest.approx((1 / 6) / math.sqrt(2))
    assert g["f1_mean"] == pytest.approx((1 + 8 / 9) / 2)  # seed 1: tp 4, fp 1, fn 0
    b = summary.loc["emotion_conv5"]
    assert b["accuracy_mean"] == pytest.approx((4 / 6 + 3 / 6) / 2)
    assert b["f1_mean"] == pytest.approx((0.8 + 6 / 9) / 2)
    assert g["majority_class"] == "positive" and g["majority_baseline_accuracy"] == pytest.approx(4 / 6)
    assert g["accuracy_ci_low"] < g["accuracy_mean"] < g["accuracy_ci_high"] <= 1.0
    assert not g["still_improving"]  # best epoch 1 of 2


def test_era_prior_baseline_is_each_eras_training_majority(tmp_path: Path) -> None:
    """The era-prior baseline answers each era's majority emotion in the manifest's training split."""
    run = tmp_path / "run"
    manifest = pd.DataFrame({
        "image_path": [f"S/t{i}.jpg" for i in range(7)] + PATHS,
        "era": ["Renaissance", "Renaissance", "Renaissance", "Modern", "Modern", "Modern", ""] + ERAS6,
        "emotion": [N, N, P, P, P, N, P] + LABELS6,
        "split": ["train"] * 7 + ["test"] * 6})
    run.mkdir()
    manifest.to_csv(run / "manifest.csv", index=False)
    priors, overall = era_priors(run, "emotion")
    assert priors == {"Renaissance": N, "Modern": P, "(no era)": P} and overall == P
    for seed in (0, 1):
        write_stage(run, "emotion_conv5", seed, PATHS, ERAS6, LABELS6, LABELS6, majority="positive")
    row = summary_table(load_results(run), run).iloc[0]
    # test: Renaissance p0 p1 (P, P) → answered N: 0/2; Modern p2 p3 (P, P) → P: 2/2; Contemporary (N, N): no
    # training paintings of that era → the overall majority P: 0/2.  2 of 6.
    assert row["era_prior_baseline_accuracy"] == pytest.approx(2 / 6)
    assert row["strongest_baseline"] == "majority" and row["strongest_baseline_accuracy"] == pytest.approx(4 / 6)


def test_per_era_accuracy_of_tiny_case(tiny_run: Path) -> None:
    """Emotion accuracy per era, mean ± std over seeds, intervals, and the 'too few paintings' mark."""
    era = per_era_accuracy(tiny_run, load_results(tiny_run)).set_index(["stage", "era"])
    g = "genre_conv4_then_emotion_conv5"
    assert era.loc[(g, "Renaissance"), "accuracy_mean"] == 1.0
    assert era.loc[(g, "Contemporary"), "accuracy_mean"] == 0.75
    assert era.loc[(g, "Contemporary"), "accuracy_std"] == pytest.approx(math.sqrt(0.125))
    assert era.loc[(g, "Contemporary"), "majority_baseline_accuracy"] == 0.0
    assert era.loc[("emotion_conv5", "Renaissance"), "accuracy_mean"] == 0.75
    assert list(era.loc[g].index) == ["Renaissance", "Modern", "Contemporary"]  # era order, absent eras left out
    assert era["too_few"].all() and (era["ci_low"] < era["ci_high"]).all()


def test_original_tables_layout_and_format(tiny_run: Path) -> None:
    """Three tables in the study's columns; formatted values; 'not run' rows; the baseline rows last."""
    tables = original_tables(summary_table(load_results(tiny_run), tiny_run))
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
    assert list(tables[2].index)[-1] == "majority_baseline"
    assert "emotion_conv45_then_emotion_conv45" in tables[2].index


def test_perfect_stage_gets_an_interval_of_real_width(tmp_path: Path) -> None:
    """Right on all 6 paintings in both seeds: '100.0% ± 0.0 [95% CI 54.1–100.0]' (Clopper–Pearson), not 100–100."""
    run = tmp_path / "perfect"
    for seed in (0, 1):
        write_stage(run, "emotion_conv4", seed, PATHS, ERAS6, LABELS6, LABELS6, majority="positive")
    tables = original_tables(summary_table(load_results(run), run))
    assert tables[3].loc["emotion_conv4", "Accuracy"] == "100.0% ± 0.0 [95% CI 54.1–100.0]"
    seeds = table_by_seed(load_results(run))
    assert seeds["ci_low"].round(3).tolist() == [0.541, 0.541] and (seeds["ci_high"] == 1).all()


def test_one_seed_shows_no_spread_and_decides_nothing(tmp_path: Path) -> None:
    """One seed: no '±' (spread unknown), and every verdict is 'inconclusive: too few seeds (1 < 3)'."""
    run = tmp_path / "one"
    write_stage(run, "emotion_conv5", 0, PATHS, ERAS6, LABELS6, [P] * 6, majority="positive")
    write_stage(run, "genre_conv4_then_emotion_conv5", 0, PATHS, ERAS6, LABELS6, LABELS6, majority="positive")
    res = load_results(run)
    summary = summary_table(res, run)
    assert "±" not in original_tables(summary)[1].loc["emotion_conv5", "Accuracy"]
    table = verdict_table(evaluate(run, res))
    row = table.set_index("comparison").loc["genre → conv5 vs the study's baseline"]
    assert row["verdict"] == "inconclusive" and row["reason"].startswith("too few seeds (1 < 3)")
    assert "unknown" in row["sentence"]  # the detectable difference needs seed spread


# ---- opposite outcomes -------------------------------------------------------------------
@pytest.mark.parametrize("outcome", ["better", "worse"])
def test_verdicts_follow_the_numbers(outcome: str, better_run: Path, worse_run: Path) -> None:
    """Clearly better runs get 'improved' (and claim 1 supported); clearly worse runs get 'worse' (contradicted)."""
    run = better_run if outcome == "better" else worse_run
    res = load_results(run)
    found = evaluate(run, res)
    table = verdict_table(found).set_index("comparison")
    for name in ("genre → conv5 vs matched control", "genre → conv5 vs the study's baseline",
                 "genre → conv4+5 vs matched control", "genre → conv4+5 vs the study's baseline"):
        row = table.loc[name]
        assert row["verdict"] == ("improved" if outcome == "better" else "worse"), (name, row["reason"])
        assert row["p_adjusted"] < 0.05 and (row["ci_low"] > 0) == (outcome == "better")
        assert f"Verdict: {row['verdict'].upper()}" in row["sentence"]
    text = conclusion_text(found, summary_table(res, run))
    supported = "matched controls (the only comparisons that isolate genre): this run supports it"
    contradicted = "matched controls (the only comparisons that isolate genre): this run contradicts it"
    assert (supported in text) == (outcome == "better") and (contradicted in text) == (outcome == "worse")
    assert "significant" not in text


def test_equal_stages_are_inconclusive_with_the_reason(tmp_path: Path) -> None:
    """Stages of equal accuracy: 'inconclusive' because the interval spans 0 (or seeds disagree)."""
    run = tmp_path / "noise"
    same = {k: 0.66 for k in BETTER}
    make_run(run, same, stages=["emotion_conv5", "genre_conv4", "genre_conv4_then_emotion_conv5"])
    found = evaluate(run, load_results(run))
    row = verdict_table(found).set_index("comparison").loc["genre → conv5 vs the study's baseline"]
    assert row["verdict"] == "inconclusive" and ("spans 0" in row["reason"] or "disagree" in row["reason"])
    not_run = verdict_table(found).set_index("comparison").loc["genre → conv4+5 vs matched control"]
    assert not_run["verdict"] == "inconclusive" and not_run["reason"].startswith("not run")


def test_comparisons_refuse_stages_trained_differently(tmp_path: Path) -> None:
    """Different backbone weights: a clear error naming the setting, unless allowed — then the notes say so."""
    run = tmp_path / "mixed"
    for seed in (0, 1, 2):
        write_stage(run, "emotion_conv5", seed, PATHS, ERAS6, LABELS6, LABELS6, majority="positive")
        write_stage(run, "genre_conv4_then_emotion_conv5", seed, PATHS, ERAS6, LABELS6, LABELS6, majority="positive",
                    backbone_weights="imagenet:IMAGENET1K_V2")
    res = load_results(run)
    with pytest.raises(DataError, match="different backbone_weights"):
        evaluate(run, res)
    notes = check_comparable(res, ["emotion_conv5", "genre_conv4_then_emotion_conv5"], allow=("backbone_weights",))
    assert any("backbone_weights differs" in n and "allowed" in n for n in notes)
    row = verdict_table(evaluate(run, res, allow=("backbone_weights",))).set_index("comparison").loc[
        "genre → conv5 vs the study's baseline"]
    assert "allowed explicitly" in row["notes"]


def test_unrecorded_settings_are_said_not_checked(tmp_path: Path) -> None:
    """A results.csv from before the settings were recorded: comparisons run, and the notes say what was not checked."""
    run = tmp_path / "old"
    for seed in (0, 1, 2):
        for stage in ("emotion_conv5", "genre_conv4_then_emotion_conv5"):
            write_stage(run, stage, seed, PATHS, ERAS6, LABELS6, LABELS6, majority="positive", label_rule=None,
                        era_map=None, manifest_sha256=None)
    notes = check_comparable(load_results(run), ["emotion_conv5", "genre_conv4_then_emotion_conv5"])
    assert {n.split()[0] for n in notes} == {"label_rule", "era_map", "manifest_sha256"}


def test_still_improving_is_flagged(tmp_path: Path) -> None:
    """A stage whose best epoch was its last is flagged in the summary, the tables and the conclusion."""
    run = tmp_path / "flag"
    for seed in (0, 1, 2):
        write_stage(run, "emotion_conv5", seed, PATHS, ERAS6, LABELS6, [P] * 6, majority="positive")
        write_stage(run, "genre_conv4_then_emotion_conv5", seed, PATHS, ERAS6, LABELS6, LABELS6, majority="positive",
                    best_epoch=2, epochs_run=2)
    res = load_results(run)
    summary = summary_table(res, run)
    assert summary.set_index("stage")["still_improving"].to_dict() == {
        "emotion_conv5": False, "genre_conv4_then_emotion_conv5": True}
    assert original_tables(summary)[1].loc["genre_conv4_then_emotion_conv5", "Accuracy"].endswith(" *")
    found = evaluate(run, res)
    flagged = [line for line in conclusion_text(found, summary).splitlines() if line.startswith("Flagged:")]
    assert len(flagged) == 1 and flagged[0].startswith("Flagged: genre_conv4_then_emotion_conv5 —")
    row = verdict_table(found).set_index("comparison").loc["genre → conv5 vs the study's baseline"]
    assert row["verdict"] == "inconclusive" and row["reason"].startswith("still improving")
    allowed = verdict_table(evaluate(run, res, allow_unconverged=True)).set_index("comparison")
    row = allowed.loc["genre → conv5 vs the study's baseline"]
    assert not row["reason"].startswith("still improving") and "allow_unconverged" in row["notes"]
    assert "allow_unconverged" in row["sentence"]


def test_verdicts_and_comparison_files(better_run: Path) -> None:
    """verdicts.csv: one row per comparison with the contract's columns; comparison.csv one row per stage."""
    res = load_results(better_run)
    summary = summary_table(res, better_run)
    write_comparison(better_run, summary)
    on_disk = pd.read_csv(better_run / "comparison.csv")
    assert list(on_disk["stage"]) == [s for s in STAGES if STAGES[s].task != "emotion9" and not STAGES[s].probe]
    write_verdicts(better_run, verdict_table(evaluate(better_run, res)))
    verdicts = pd.read_csv(better_run / "verdicts.csv")
    assert len(verdicts) == 7 and verdicts["comparison"].is_unique
    for col in ("comparison", "stage", "baseline", "verdict", "reason", "difference", "ci_low", "ci_high",
                "p_adjusted", "n_seeds"):
        assert col in verdicts.columns
    assert set(verdicts["verdict"]) <= {"improved", "worse", "inconclusive"}
    assert (verdicts["n_seeds"] == 5).all()
    detail = detail_by_seed(better_run, res)
    assert len(detail) == 7 * 5 and (detail["mcnemar_p"] <= 1).all()
    assert not list(better_run.glob(".verdicts.csv.*"))  # atomic write leaves no temp file


def test_errors_are_clear(tmp_path: Path, tiny_run: Path) -> None:
    """No results yet, missing predictions, and seeds on different test sets each raise a helpful error."""
    with pytest.raises(DataError, match="no results yet"):
        load_results(tmp_path / "empty")
    (tiny_run / "stages" / "emotion_conv5" / "seed_1" / "predictions.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"emotion_conv5 \(seed 1\)"):
        summary_table(load_results(tiny_run), tiny_run)
    run = tmp_path / "split"
    write_stage(run, "emotion_conv5", 0, PATHS, ERAS6, LABELS6, LABELS6, majority="positive")
    write_stage(run, "emotion_conv5", 1, [p.replace("p", "q") for p in PATHS], ERAS6, LABELS6, LABELS6,
                majority="positive")
    with pytest.raises(DataError, match="seed 1 was tested on other paintings"):
        summary_table(load_results(run), run)


def test_emotion_classes_are_the_studys() -> None:
    """The synthetic runs use the package's class names (guards the helper against drift)."""
    assert set(EMOTION_CLASSES) == {"negative", "positive"}


# ---- the nine-emotion task: one scoring set --------------------------------------------------------------------
E9 = STAGES["emotion9_conv5"].classes
VOTES8 = np.array([  # ArtEmis's order: amusement, awe, contentment, excitement, anger, disgust, fear, sadness, else
    [0, 0, 0, 0, 0, 0, 0, 5, 0],  # sadness 5/5: > 50%
    [0, 2, 4, 0, 0, 0, 0, 0, 0],  # contentment 4/6: > 50%
    [0, 2, 1, 0, 0, 0, 1, 1, 0],  # awe 2/5: no majority
    [0, 3, 0, 0, 0, 0, 3, 0, 0],  # awe 3/6: exactly half, not above
    [0, 0, 0, 0, 0, 0, 1, 4, 0],  # sadness 4/5: > 50%
    [0, 0, 0, 0, 0, 0, 5, 0, 0],  # fear 5/5: > 50%
    [0, 2, 0, 1, 0, 0, 0, 1, 1],  # awe 2/5: no majority
    [0, 0, 5, 0, 0, 0, 0, 0, 0],  # contentment 5/5: > 50%
])
PREDICTED8 = {0: ["sadness", "contentment", "sadness", "fear", "fear", "fear", "awe", "awe"], 1: ["sadness"] * 8}


def write_emotion9_stage(run_dir: Path, seed: int, scored: Sequence[int] | None) -> None:
    """An emotion9_conv5 stage-run as the runner leaves it; ``scored`` None writes a 0.2 predictions.csv without it.
    results.csv's accuracy, f1, balanced_accuracy and n_test are deliberately over every test painting (as in 0.2)."""
    labels = [E9[i] for i in VOTES8.argmax(axis=1)]
    predicted = PREDICTED8[seed]
    frame = pd.DataFrame({"image_path": [f"S/n{i}.jpg" for i in range(8)], "era": ["Baroque"] * 8, "label": labels,
                          "predicted": predicted, "era_prior": ["sadness"] * 8,
                          **{f"p_{c}": [0.92 if c == p else 0.01 for p in predicted] for c in E9},
                          **{f"n_{c.replace(' ', '_')}": VOTES8[:, i] for i, c in enumerate(E9)}, "polarity": ""})
    if scored is not None:
        frame["scored"] = list(scored)
    folder = run_dir / "stages" / "emotion9_conv5" / f"seed_{seed}"
    atomic.write_csv(folder / "predictions.csv", frame)
    m = classification_metrics(VOTES8.argmax(axis=1), [E9.index(p) for p in predicted], 9, E9.index("sadness"))
    row = {"configuration": "4", "stage": "emotion9_conv5", "task": "emotion9", "seed": seed, "accuracy": m["accuracy"],
           "f1": m["f1"], "balanced_accuracy": m["balanced_accuracy"], "n_test": 8, "majority_class": "sadness",
           "majority_baseline_accuracy": m["majority_baseline_accuracy"], "best_epoch": 1, "epochs_run": 2}
    atomic.write_json(folder / "metrics.json", {"result": row, "metrics": m, "classes": list(E9)})
    results.upsert(run_dir, [row])


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("scored", [None, (1, 1, 0, 0, 1, 1, 0, 0)], ids=["0.2 file: > 50% recomputed", "column read"])
def test_nine_emotion_comparison_row_is_on_the_scored_paintings(tmp_path: Path, scored: tuple | None) -> None:
    """n_test, accuracy, F1, balanced accuracy, both baselines and the confusion matrix of an emotion9 stage all come
    from the scored paintings: predictions.csv's `scored` column when it has one (here deliberately not the > 50%
    rule, to show it is read), else the > 50% subset recomputed from the votes."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    for seed in (0, 1):
        write_emotion9_stage(tmp_path, seed, scored)
    keep = np.array(scored, dtype=bool) if scored else np.array([1, 1, 0, 0, 1, 1, 0, 1], dtype=bool)
    labels = np.array([E9[i] for i in VOTES8.argmax(axis=1)])[keep]
    per_seed = [[f(labels, np.array(PREDICTED8[s])[keep], **kw) for f, kw in (
        (accuracy_score, {}), (f1_score, {"average": "macro", "labels": list(E9), "zero_division": 0}),
        (balanced_accuracy_score, {}))] for s in (0, 1)]
    res = load_results(tmp_path)
    row = summary_table(res, tmp_path).set_index("stage").loc["emotion9_conv5"]
    assert row["n_test"] == keep.sum()
    for i, metric in enumerate(("accuracy", "f1", "balanced_accuracy")):
        assert row[f"{metric}_mean"] == pytest.approx(np.mean([p[i] for p in per_seed]), abs=1e-12), metric
    sad = float(np.mean(labels == "sadness"))
    assert row["majority_baseline_accuracy"] == row["era_prior_baseline_accuracy"] == pytest.approx(sad)
    assert row["majority_baseline_f1"] == pytest.approx(f1_score(labels, ["sadness"] * len(labels), average="macro",
                                                                 labels=list(E9), zero_division=0))
    matrix, _ = confusion_matrices(tmp_path, res, "emotion9")["emotion9_conv5"]
    assert matrix.sum() == keep.sum() * 2 and np.trace(matrix) == round(sum(p[0] for p in per_seed) * keep.sum())


# ---- families and the compare command ----------------------------------------------------
def test_compare_command_recomputes_comparison_and_verdicts(better_run: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    """`python -m artlib compare` on a finished run (0.2 layout: no split column, no manifest) writes both files."""
    import shutil

    from artlib.cli import main

    run = tmp_path / "run"
    shutil.copytree(better_run, run)
    for name in ("comparison.csv", "verdicts.csv"):
        (run / name).unlink(missing_ok=True)
    assert main(["compare", "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    verdicts = pd.read_csv(run / "verdicts.csv")
    assert not verdicts.duplicated(["family", "comparison"]).any()
    assert set(verdicts["family"]) == {"binary"} and len(verdicts) == 7
    assert set(verdicts["unit"].dropna()) == {"painting"}  # no manifest: paintings are the units, and it says so
    assert set(verdicts["n_splits"].dropna()) == {1}
    assert len(pd.read_csv(run / "comparison.csv")) == len(load_results(run)["stage"].unique())
    assert "Error rate" in out and "Power plan" in out
    # the same verdicts as the notebook's path (evaluate on the same files)
    again = verdict_table(evaluate(run, load_results(run)))
    assert again["verdict"].tolist() == verdicts["verdict"].tolist()


def test_writing_a_family_replaces_every_row_of_that_family(tmp_path: Path) -> None:
    """Rerunning notebook 08 with fewer comparisons leaves none of its earlier rows; other families stay."""
    from artlib.stages import COMPARISONS, EMOTION9_COMPARISONS

    write_verdicts(tmp_path, verdict_table(list(COMPARISONS)))
    write_verdicts(tmp_path, verdict_table(list(EMOTION9_COMPARISONS)))
    write_verdicts(tmp_path, verdict_table(list(EMOTION9_COMPARISONS[:2])))
    table = pd.read_csv(tmp_path / "verdicts.csv")
    assert table.groupby("family").size().to_dict() == {"binary": 7, "nine-emotion": 2}
    assert not table.duplicated(["family", "comparison"]).any()


def test_verdicts_from_before_families_get_theirs(tmp_path: Path) -> None:
    """A 0.2 verdicts.csv (no family column) is read with each comparison's family and replaced by family."""
    from artlib.stages import COMPARISONS, EMOTION9_COMPARISONS

    old = verdict_table(list(COMPARISONS) + list(EMOTION9_COMPARISONS)).drop(columns="family")
    old.to_csv(tmp_path / "verdicts.csv", index=False)
    write_verdicts(tmp_path, verdict_table(list(EMOTION9_COMPARISONS[:1])))
    table = pd.read_csv(tmp_path / "verdicts.csv")
    assert table.groupby("family").size().to_dict() == {"binary": 7, "nine-emotion": 1}


def test_the_conclusion_states_the_error_rate_across_families(better_run: Path) -> None:
    """Two families reported: each at α by Holm, at most 2α across both (Bonferroni), and how to get α overall."""
    from artlib.analysis.verdicts import family_error_sentence

    one = family_error_sentence(["binary"], 0.05)
    two = family_error_sentence(["binary", "nine-emotion"], 0.05)
    assert "0.05" in one and "0.1" in two and "--alpha 0.025" in two


def test_results_written_by_training_read_back_without_being_set_aside(tmp_path: Path) -> None:
    """A results.csv as training writes it ('1 sequential' configurations, empty optional fields) is valid."""
    from artlib.results import read_results, upsert

    row = {"configuration": "1 sequential", "stage": "genre_conv4", "task": "genre", "seed": 0, "accuracy": 1.0,
           "init_from": "", "best_epoch": 4, "epochs_run": 4, "feature_cache": True, "split_seed": 0}
    upsert(tmp_path, [row, {**row, "seed": 1, "configuration": "3 emotion only"}])
    assert len(read_results(tmp_path)) == 2
    assert not list(tmp_path.glob("results.csv.damaged-*"))


def test_compare_without_a_comparable_pair_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Only genre stages trained: `compare` writes comparison.csv, says there is no verdict yet, and exits 0."""
    from artlib.cli import main

    run = make_run(tmp_path / "genre", {}, stages=["genre_conv4", "genre_conv45"])
    assert main(["compare", "--run-dir", str(run)]) == 0
    assert (run / "comparison.csv").is_file() and not (run / "verdicts.csv").exists()
    assert "no comparison has both of its stages trained" in capsys.readouterr().out


def test_compare_takes_a_run_directory_relative_to_the_current_directory(better_run: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`compare --run-dir run` means ./run, as for every other command typed on the command line."""
    import shutil

    from artlib.cli import main

    shutil.copytree(better_run, tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--run-dir", "run"]) == 0
    assert (tmp_path / "run" / "verdicts.csv").is_file()


def test_a_stage_missing_on_split_0_is_tabled_from_its_first_split(better_run: Path, tmp_path: Path) -> None:
    """A stage whose split-0 run failed but whose split 1 finished: its table row comes from split 1, no crash."""
    import shutil

    from artlib import rundir
    from artlib.results import read_results
    from artlib.analysis.family import compare_run

    run = tmp_path / "run"
    shutil.copytree(better_run, run)
    for seed in FIVE:  # move emotion_conv4's stage-runs to split 1, as if split 0 had failed
        target = rundir.stage_dir(run, "emotion_conv4", seed, 1)
        target.parent.mkdir(parents=True, exist_ok=True)
        rundir.stage_dir(run, "emotion_conv4", seed).rename(target)
    table = read_results(run)
    table.loc[table["stage"] == "emotion_conv4", "split_seed"] = 1
    table.to_csv(rundir.results(run), index=False)
    judged = compare_run(run)
    summary = pd.read_csv(rundir.comparison(run)).set_index("stage")
    assert summary.loc["emotion_conv4", "split_seed"] == 1 and summary.loc["emotion_conv5", "split_seed"] == 0
    row = judged[0].table.set_index("comparison").loc["conv4 → conv5 vs conv4 (emotion only)"]
    assert row["reason"].startswith("not run")  # its two stages never share a split
