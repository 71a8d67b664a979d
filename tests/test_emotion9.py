"""ArtEmis's own task: nine-emotion vote distributions, the KL loss, ArtEmis's metrics, the stages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from artlib import rundir
from artlib.data.labels import ARTEMIS_EMOTIONS, EMOTION_COUNT_COLUMNS
from artlib.data.prepare import PrepareConfig, prepare
from artlib.metrics import dominant, emotion9_metrics, mean_kl, polarity_of
from artlib.stages import STAGES
from artlib.train.inputs import task_data
from artlib.train.losses import SoftTargetKL
from conftest import train_one

from conftest import TINY, Painting

# Vote counts in ArtEmis's order: amusement, awe, contentment, excitement, anger, disgust, fear, sadness, something else.
COUNTS = np.array([
    [4, 1, 0, 0, 0, 0, 0, 1, 0],  # amusement 4 of 6: more than half → top amusement
    [0, 3, 0, 0, 0, 0, 3, 0, 0],  # 3 of 6 each: exactly 50% — counted by ≥ 50%, not by > 50%; top = awe (first)
    [2, 0, 2, 0, 0, 0, 0, 2, 0],  # no majority at all
    [0, 0, 0, 0, 5, 0, 0, 0, 0],  # unanimous anger
    [0, 0, 0, 0, 0, 0, 0, 1, 4],  # 'something else' 4 of 5
])


def test_dominant_subsets_count_ties_exactly() -> None:
    """> 50%: rows 0, 3, 4; ≥ 50% adds the 3-of-6 tie (row 1); row 2 has no majority in either."""
    assert dominant(COUNTS, strict=True).tolist() == [True, False, False, True, True]
    assert dominant(COUNTS, strict=False).tolist() == [True, True, False, True, True]


def test_emotion9_metrics_by_hand() -> None:
    """Top-emotion accuracy on each subset, its share, the majority baseline, polarity accuracy; by hand."""
    probs = np.full((5, 9), 0.01)
    predicted = [0, 6, 0, 7, 8]  # right, wrong (top is awe), -, wrong (anger), right
    probs[np.arange(5), predicted] = 0.92
    polarity = np.array(["positive", "", "", "negative", ""])
    m = emotion9_metrics(COUNTS, probs, polarity, majority=8)
    assert (m["dominant_n"], m["dominant_share"], m["dominant_accuracy"]) == (3, 0.6, pytest.approx(2 / 3))
    assert (m["at_least_half_n"], m["at_least_half_accuracy"]) == (4, pytest.approx(2 / 4))
    assert m["dominant_majority_baseline_accuracy"] == pytest.approx(1 / 3)  # only the 'something else' row
    assert (m["polarity_n"], m["polarity_accuracy"]) == (2, 1.0)  # row 0 → positive, row 3 (sadness) → negative
    shares = COUNTS / COUNTS.sum(axis=1, keepdims=True)
    expected = np.mean([sum(s * np.log(s / q) for s, q in zip(srow, qrow) if s > 0) for srow, qrow in zip(shares, probs)])
    assert m["mean_kl"] == pytest.approx(expected) == mean_kl(shares, probs)


def test_polarity_is_four_positive_against_four_negative() -> None:
    """Positive when amusement+awe+contentment+excitement beat anger+disgust+fear+sadness; 'something else' ignored."""
    probs = np.array([[0.1, 0.1, 0, 0, 0.25, 0, 0, 0, 0.55], [0.1, 0.1, 0.1, 0, 0.1, 0, 0, 0, 0.6]])
    assert polarity_of(probs).tolist() == ["negative", "positive"]


def test_kl_loss_equals_torch_kl_div_and_its_gradient() -> None:
    """SoftTargetKL equals F.kl_div(log_softmax, target, 'batchmean') on random histograms with zeros, gradients too."""
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(0, 4, (32, 9), generator=g).float()
    counts[counts.sum(1) == 0, 0] = 1
    target = counts / counts.sum(1, keepdim=True)
    a = torch.randn(32, 9, generator=g, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    ours, theirs = SoftTargetKL()(a, target), F.kl_div(F.log_softmax(b, 1), target, reduction="batchmean")
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(a.grad, b.grad, atol=1e-7)


def test_one_hot_histograms_train_like_hard_labels() -> None:
    """A tiny model fitted to one-hot histograms with the KL loss matches the same model fitted with cross-entropy."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 12, generator=g)
    y = (x[:, :9] + 0.5 * torch.randn(300, 9, generator=g)).argmax(1)
    accuracies = []
    for loss_of in (lambda out: SoftTargetKL()(out, F.one_hot(y, 9).float()), lambda out: F.cross_entropy(out, y)):
        torch.manual_seed(0)
        model = torch.nn.Linear(12, 9)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(60):
            optimizer.zero_grad()
            loss_of(model(x)).backward()
            optimizer.step()
        accuracies.append(float((model(x).argmax(1) == y).float().mean()))
    assert accuracies[0] == accuracies[1] > 0.5


def test_manifest_keeps_the_nine_vote_counts_and_the_task_uses_five_or_more(make_root) -> None:  # noqa: ANN001
    """n_amusement … n_something_else per painting; the nine-emotion task takes paintings with ≥ 5 votes."""
    paintings = [Painting("Baroque", "five_votes", ("awe", "awe", "fear", "something else", "contentment")),
                 Painting("Baroque", "three_votes", ("awe", "awe", "awe")),
                 *[Painting("Rococo", f"r_{i}", ("amusement",) * 5 if i % 2 else ("sadness",) * 6) for i in range(30)]]
    result = prepare(make_root(paintings), None, PrepareConfig(workers=1), progress=False)
    rows = result.manifest.set_index("painting")
    assert rows.loc["five_votes", list(EMOTION_COUNT_COLUMNS)].tolist() == [0, 2, 1, 0, 0, 0, 1, 0, 1]
    assert (rows.loc["five_votes", "n_positive"], rows.loc["five_votes", "n_negative"]) == (3, 1)
    data = task_data(result.manifest, STAGES["emotion9_conv5"], min_annotations=5)
    names = data.frame["painting"].tolist()
    assert "five_votes" in names and "three_votes" not in names and len(names) == 31
    target = data.targets[names.index("five_votes")]
    assert target.tolist() == pytest.approx([0, 0.4, 0.2, 0, 0, 0, 0.2, 0, 0.2])
    assert data.labels[names.index("five_votes")] == ARTEMIS_EMOTIONS.index("awe")


@pytest.mark.slow
def test_a_nine_emotion_stage_trains_and_records_artemis_metrics(run_dir: Path) -> None:
    """emotion9_conv5 trains with the KL loss; metrics.json, results.csv and predictions.csv carry ArtEmis's metrics."""
    row = train_one("emotion9_conv5", run_dir, TINY, seed=0, progress=False)
    for key in ("dominant_accuracy", "dominant_share", "at_least_half_accuracy", "mean_kl", "polarity_accuracy"):
        assert np.isfinite(row[key]), key
    predictions = pd.read_csv(rundir.stage_file(run_dir, "emotion9_conv5", 0, "predictions.csv"), keep_default_na=False)
    assert set(EMOTION_COUNT_COLUMNS) <= set(predictions.columns) and "polarity" in predictions
    assert np.allclose(predictions[[f"p_{e}" for e in ARTEMIS_EMOTIONS]].sum(axis=1), 1, atol=1e-4)
    counts = predictions[list(EMOTION_COUNT_COLUMNS)].to_numpy()
    assert row["dominant_share"] == pytest.approx(dominant(counts).mean())
    metrics = json.loads(rundir.stage_file(run_dir, "emotion9_conv5", 0, "metrics.json").read_text())
    assert len(metrics["metrics"]["confusion_matrix"]) == 9


def test_artemis_emotion_order_is_pinned() -> None:
    """The class order is ArtEmis's (artemis/emotions.py ARTEMIS_EMOTIONS); the vote columns follow it."""
    assert ARTEMIS_EMOTIONS == ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear",
                                "sadness", "something else")
    assert EMOTION_COUNT_COLUMNS[-1] == "n_something_else" and len(EMOTION_COUNT_COLUMNS) == 9


def test_kl_loss_on_one_hot_targets_is_cross_entropy() -> None:
    """With one-hot histograms the soft-target loss is the ordinary cross-entropy (the target's entropy is 0)."""
    torch.manual_seed(0)
    logits, labels = torch.randn(16, 9), torch.randint(0, 9, (16,))
    loss = SoftTargetKL()(logits, F.one_hot(labels, 9).float())
    assert torch.allclose(loss, F.cross_entropy(logits, labels), atol=1e-6)


# ---- one scoring set: the > 50% subset, everywhere a nine-emotion number is reported -----------------------------
def _recomputed(frame: pd.DataFrame) -> tuple[float, float, float]:
    """Accuracy, macro F1 and balanced accuracy of predictions.csv's scored rows, by scikit-learn."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    part = frame[frame["scored"] == 1]
    y, p = part["label"], part["predicted"]
    return (accuracy_score(y, p), f1_score(y, p, average="macro", labels=list(ARTEMIS_EMOTIONS), zero_division=0),
            balanced_accuracy_score(y, p))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_every_nine_emotion_figure_is_on_the_scored_subset(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """predictions.csv's `scored` is the > 50% subset; results.csv, the training log, comparison.csv's row and the
    confusion matrix are all computed on exactly those paintings; the baselines are chosen on the training subset."""
    from artlib.analysis.compare import confusion_matrices, load_results, summary_table
    from artlib.train.driver import run_stages

    seeds = [0, 1]
    run_stages(["emotion9_conv5"], run_dir, TINY, seeds=seeds, progress=False)
    logged = [float(x) for x in re.findall(r"emotion9_conv5.*test accuracy (\d\.\d+)", capsys.readouterr().out)]
    res = load_results(run_dir).set_index("seed")
    frames = [pd.read_csv(rundir.stage_file(run_dir, "emotion9_conv5", s, "predictions.csv"), keep_default_na=False)
              for s in seeds]
    n_scored = int(frames[0]["scored"].sum())
    assert 0 < n_scored < len(frames[0])  # the tiny data has paintings both in and out of the subset
    for seed, frame in zip(seeds, frames):
        counts = frame[list(EMOTION_COUNT_COLUMNS)].to_numpy()
        assert frame["scored"].tolist() == dominant(counts).astype(int).tolist()
        accuracy, f1, balanced = _recomputed(frame)
        row = res.loc[seed]
        assert (row["accuracy"], row["f1"], row["n_test"]) == (pytest.approx(accuracy, abs=1e-12),
                                                               pytest.approx(f1, abs=1e-12), n_scored)
        assert row["balanced_accuracy"] == pytest.approx(balanced, abs=1e-12)
        assert row["dominant_accuracy"] == pytest.approx(row["accuracy"], abs=1e-12)
        assert row["n_all_test"] == len(frame)
        assert row["accuracy_all_test"] == pytest.approx(np.mean(frame["label"] == frame["predicted"]), abs=1e-12)
        scored = frame[frame["scored"] == 1]
        assert row["majority_baseline_accuracy"] == pytest.approx(np.mean(scored["label"] == row["majority_class"]))
        assert row["era_prior_baseline_accuracy"] == pytest.approx(np.mean(scored["label"] == scored["era_prior"]))
    assert logged == [round(float(res.loc[s, "accuracy"]), 3) for s in seeds]
    manifest = pd.read_csv(rundir.manifest(run_dir), keep_default_na=False)
    train = manifest[(manifest["split"] == "train")]
    votes = train[list(EMOTION_COUNT_COLUMNS)].to_numpy()
    train_top = votes[(votes.sum(axis=1) >= TINY.min_annotations) & dominant(votes)].argmax(axis=1)
    assert res["majority_class"].tolist() == [ARTEMIS_EMOTIONS[np.bincount(train_top, minlength=9).argmax()]] * 2
    row = summary_table(load_results(run_dir), run_dir).set_index("stage").loc["emotion9_conv5"]
    per_seed = np.array([_recomputed(f) for f in frames])
    assert row["n_test"] == n_scored
    for i, metric in enumerate(("accuracy", "f1", "balanced_accuracy")):
        assert row[f"{metric}_mean"] == pytest.approx(per_seed[:, i].mean(), abs=1e-12), metric
    assert row["majority_baseline_accuracy"] == pytest.approx(res["majority_baseline_accuracy"].mean(), abs=1e-12)
    assert row["era_prior_baseline_accuracy"] == pytest.approx(res["era_prior_baseline_accuracy"].mean(), abs=1e-12)
    matrix, classes = confusion_matrices(run_dir, load_results(run_dir), "emotion9")["emotion9_conv5"]
    assert classes == list(ARTEMIS_EMOTIONS) and matrix.sum() == n_scored * len(seeds)
    assert np.trace(matrix) == round(per_seed[:, 0].sum() * n_scored)


SPREAD, SAD, CONTENT = [0, 2, 1, 0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0, 5, 0], [0, 0, 5, 0, 0, 0, 0, 0, 0]
"""Votes: awe on top with 2 of 5 (no majority), unanimous sadness, unanimous contentment."""


def _manifest(rows: list[tuple[str, str, list[int]]]) -> pd.DataFrame:
    """A manifest of (split, era, votes) rows with the columns the nine-emotion task reads."""
    frame = pd.DataFrame([dict(zip(EMOTION_COUNT_COLUMNS, votes)) for _, _, votes in rows])
    frame.insert(0, "image_path", [f"S/p{i}.jpg" for i in range(len(rows))])
    frame["split"], frame["era"] = [r[0] for r in rows], [r[1] for r in rows]
    frame["emotion"] = ["negative" if v == SAD else "positive" if v == CONTENT else "" for _, _, v in rows]
    return frame


def test_nine_emotion_baselines_are_chosen_on_the_training_subset() -> None:
    """All training paintings: awe leads overall and in both eras; > 50% subset: sadness overall, sadness in Baroque,
    contentment in Modern. Both baselines follow the subset and are scored on the scored test paintings only."""
    from artlib.train.runner import _predictions, _test_metrics

    train = [("train", "Baroque", SPREAD)] * 3 + [("train", "Baroque", SAD)] * 3 + \
        [("train", "Modern", SPREAD)] * 3 + [("train", "Modern", CONTENT)] * 2
    test = [("test", "Baroque", SAD), ("test", "Modern", CONTENT), ("test", "Modern", SPREAD), ("test", "Baroque", SAD)]
    data = task_data(_manifest([*train, ("val", "Modern", SAD), *test]), STAGES["emotion9_conv5"])
    probs = np.full((4, 9), 0.01)
    probs[:, ARTEMIS_EMOTIONS.index("sadness")] = 0.92  # always sadness: right on rows 0 and 3
    predictions = _predictions(STAGES["emotion9_conv5"], data, data.positions, probs)
    assert predictions["scored"].tolist() == [1, 1, 0, 1]
    assert predictions["era_prior"].tolist() == ["sadness", "contentment", "contentment", "sadness"]
    m, majority = _test_metrics(STAGES["emotion9_conv5"], data, data.positions, probs, predictions)
    assert ARTEMIS_EMOTIONS[majority] == "sadness" and m["n"] == 3
    assert (m["accuracy"], m["majority_baseline_accuracy"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert m["era_prior_baseline_accuracy"] == 1.0 and m["dominant_majority_baseline_accuracy"] == pytest.approx(2 / 3)
    assert (m["accuracy_all_test"], m["n_all_test"]) == (0.5, 4)
    assert np.asarray(m["confusion_matrix"]).sum() == 3


def test_every_test_painting_is_scored_for_the_binary_task() -> None:
    """For genre and emotion, scored = 1 on every test painting (with or without a > 50% emotion), and the majority
    class comes from every training painting (positive 3 : 2, though the > 50% subset holds only negative ones)."""
    from artlib.train.runner import _predictions, _test_metrics

    rows = [("train", "Baroque", SPREAD)] * 3 + [("train", "Baroque", SAD)] * 2 + [("val", "Baroque", SAD)] + \
        [("test", "Baroque", SPREAD), ("test", "Baroque", SAD)]
    manifest = _manifest(rows)
    manifest.loc[manifest["emotion"] == "", "emotion"] = "positive"  # labelled, but no emotion has > 50% of votes
    data = task_data(manifest, STAGES["emotion_conv5"])
    probs = np.array([[0.2, 0.8], [0.2, 0.8]])
    predictions = _predictions(STAGES["emotion_conv5"], data, data.positions, probs)
    m, majority = _test_metrics(STAGES["emotion_conv5"], data, data.positions, probs, predictions)
    assert predictions["scored"].tolist() == [1, 1] and m["n"] == 2
    assert STAGES["emotion_conv5"].classes[majority] == "positive" and "accuracy_all_test" not in m


@pytest.mark.slow
def test_a_nine_emotion_stage_scored_before_the_subset_rule_is_trained_again(run_dir: Path) -> None:
    """A finished emotion9 stage-run whose metrics.json has no all-test figure (0.2) is not reused as finished."""
    from conftest import train_one

    train_one("emotion9_conv5", run_dir, TINY, seed=0, progress=False)
    metrics_path = rundir.stage_file(run_dir, "emotion9_conv5", 0, "metrics.json")
    old = json.loads(metrics_path.read_text())
    for key in ("accuracy_all_test", "n_all_test"):
        del old["result"][key]
    metrics_path.write_text(json.dumps(old))
    row = train_one("emotion9_conv5", run_dir, TINY, seed=0, progress=False)
    assert row["n_all_test"] > row["n_test"] and "n_all_test" in json.loads(metrics_path.read_text())["result"]
