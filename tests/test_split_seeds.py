"""Split seeds end to end: manifest columns, run-directory folders, results.csv keys, the grid, the plan, training."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from artlib import results, rundir
from artlib.cli import main
from artlib.data.manifest import manifest_split_seeds, read_manifest
from artlib.data.prepare import PrepareConfig, prepare
from artlib.errors import DataError
from artlib.train.config import TrainConfig
from artlib.train.grid import expand
from artlib.train.driver import run_stages
from artlib.train.runner import train_stage_run

from conftest import TINY, Painting, new_run_dir

ONE_EPOCH = TrainConfig(**{**TINY.__dict__, "epochs": 1})
CARRIED = "emotion_conv4_then_emotion_conv5"


# ---- the run-directory layout and results.csv ---------------------------------------------------------------
def test_split_zero_keeps_the_folder_of_0_2_and_other_splits_get_their_own(tmp_path: Path) -> None:
    """stages/<stage>/seed_<n>/ for split seed 0; stages/<stage>/split_<k>/seed_<n>/ for k ≥ 1; files follow."""
    assert rundir.stage_dir(tmp_path, "emotion_conv5", 2) == tmp_path / "stages" / "emotion_conv5" / "seed_2"
    assert rundir.stage_dir(tmp_path, "emotion_conv5", 2, 0) == rundir.stage_dir(tmp_path, "emotion_conv5", 2)
    assert rundir.stage_dir(tmp_path, "emotion_conv5", 2, 3) == tmp_path / "stages" / "emotion_conv5" / "split_3" / "seed_2"
    assert rundir.stage_file(tmp_path, "emotion_conv5", 2, "predictions.csv", split_seed=3).parent == \
        rundir.stage_dir(tmp_path, "emotion_conv5", 2, 3)
    with pytest.raises(ValueError):
        rundir.stage_dir(tmp_path, "emotion_conv5", 0, -1)


def fake_run(run_dir: Path, stage: str, seed: int, split_seed: int, accuracy: float, with_key: bool = True) -> dict:
    """Write a finished stage-run's metrics.json (only what results needs); its result row is returned."""
    row = {"stage": stage, "seed": seed, "accuracy": accuracy} | ({"split_seed": split_seed} if with_key else {})
    folder = rundir.stage_dir(run_dir, stage, seed, split_seed)
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"result": row}))
    return row


def test_finished_runs_yield_every_split_and_finished_metrics_only_split_zero(tmp_path: Path) -> None:
    """finished_runs walks split_<k> folders too (sorted by stage, split, seed); finished_metrics stays 0.2's."""
    fake_run(tmp_path, "emotion_conv5", 1, 0, 0.5)
    fake_run(tmp_path, "emotion_conv5", 0, 2, 0.6)
    fake_run(tmp_path, "emotion_conv5", 0, 1, 0.7)
    (rundir.stage_dir(tmp_path, "emotion_conv5", 5, 1)).mkdir(parents=True)  # unfinished: no metrics.json
    found = [(r.stage, r.seed, r.split_seed) for r in rundir.finished_runs(tmp_path)]
    assert found == [("emotion_conv5", 1, 0), ("emotion_conv5", 0, 1), ("emotion_conv5", 0, 2)]
    assert [(s, d) for s, d, _ in rundir.finished_metrics(tmp_path)] == [("emotion_conv5", 1)]


def test_results_are_keyed_by_stage_seed_and_split(tmp_path: Path) -> None:
    """The same (stage, seed) on two splits is two rows; rerunning one split replaces only its row."""
    results.upsert(tmp_path, [{"stage": "emotion_conv5", "seed": 0, "split_seed": 0, "accuracy": 0.5},
                              {"stage": "emotion_conv5", "seed": 0, "split_seed": 1, "accuracy": 0.6}])
    table = results.upsert(tmp_path, [{"stage": "emotion_conv5", "seed": 0, "split_seed": 1, "accuracy": 0.9}])
    assert results.KEY == ("stage", "seed", "split_seed", "backbone")
    assert table[["seed", "split_seed", "accuracy"]].values.tolist() == [[0, 0, 0.5], [0, 1, 0.9]]
    assert results.read_results(tmp_path)["split_seed"].tolist() == [0, 1]


def test_results_csv_of_0_2_reads_as_split_zero(tmp_path: Path) -> None:
    """A results.csv without split_seed is split seed 0: read as such, and a split-1 row is added beside it."""
    pd.DataFrame({"stage": ["emotion_conv5", "emotion_conv5"], "seed": [0, 1], "accuracy": [0.5, 0.6]}).to_csv(
        rundir.results(tmp_path), index=False)
    table = results.read_results(tmp_path)
    assert table["split_seed"].tolist() == [0, 0] and list(table.columns[:3]) == ["stage", "seed", "split_seed"]
    table = results.upsert(tmp_path, [{"stage": "emotion_conv5", "seed": 0, "split_seed": 1, "accuracy": 0.7}])
    assert table[["seed", "split_seed"]].values.tolist() == [[0, 0], [1, 0], [0, 1]]
    assert not list(tmp_path.glob("results.csv.damaged-*"))  # an old file is not damaged


def test_rebuilt_results_keep_the_split(tmp_path: Path) -> None:
    """A damaged results.csv is rebuilt from every split's folders; metrics.json of 0.2 (no key) is split 0."""
    fake_run(tmp_path, "emotion_conv5", 0, 0, 0.5, with_key=False)
    fake_run(tmp_path, "emotion_conv5", 0, 1, 0.6)
    rundir.results(tmp_path).write_text("garbage\n\x00\n")
    table = results.read_results(tmp_path)
    assert table[["stage", "seed", "split_seed", "accuracy"]].values.tolist() == [
        ["emotion_conv5", 0, 0, 0.5], ["emotion_conv5", 0, 1, 0.6]]


# ---- the grid ----------------------------------------------------------------------------------------------
def test_expand_crosses_stages_seeds_and_splits_with_sources_on_the_same_split() -> None:
    """stages × seeds × splits stage-runs, each once; a carried stage starts from its source's same seed and split."""
    runs = expand([CARRIED, "emotion_conv5"], [0, 1], split_seeds=[0, 1, 2])
    assert len(runs) == 3 * 2 * 3 and len({r.key for r in runs}) == len(runs)
    carried = [r for r in runs if r.stage == CARRIED]
    assert {r.source for r in carried} == {("emotion_conv4", s, k) for s in (0, 1) for k in (0, 1, 2)}
    assert all(r.source == ("emotion_conv4", r.seed, r.split_seed) for r in carried)
    position = {r.key: i for i, r in enumerate(runs)}
    assert all(position[r.source] < position[r.key] for r in carried)
    assert [r.key for r in expand(["emotion_conv5"], [0, 1])] == [("emotion_conv5", 0, 0), ("emotion_conv5", 1, 0)]
    assert str(runs[-1]) == "emotion_conv5 (seed 1, split 2)" and str(runs[0]) == "emotion_conv4 (seed 0)"


# ---- prepare: the manifest's split columns and large groups --------------------------------------------------
@pytest.fixture(scope="module")
def split_prepared(tmp_path_factory: pytest.TempPathFactory, tiny_data: tuple[Path, Path]) -> Path:
    """The tiny data root prepared with two split seeds (seed 0, like tiny_prepared)."""
    out = tmp_path_factory.mktemp("two-splits")
    prepare(tiny_data[0], out, PrepareConfig(seed=0, workers=1, split_seeds=2), progress=False)
    return out


def test_two_split_manifest_reads_and_counts(split_prepared: Path, tiny_prepared: Path) -> None:
    """The manifest holds split and split_1 (both valid), split equal to the one-split manifest's; the report says so."""
    manifest = read_manifest(rundir.manifest(split_prepared))
    assert manifest_split_seeds(rundir.manifest(split_prepared)) == 2
    assert manifest_split_seeds(rundir.manifest(tiny_prepared)) == 1
    assert manifest["split"].tolist() == read_manifest(rundir.manifest(tiny_prepared))["split"].tolist()
    report = json.loads(rundir.prepare_report(split_prepared).read_text())
    assert report["split_seeds"]["columns"] == ["split", "split_1"] and report["config"]["split_seeds"] == 2


def test_a_bad_value_in_an_extra_split_column_is_a_data_error(split_prepared: Path, tmp_path: Path) -> None:
    """split_1 is checked like split: a value other than train/val/test names the column and line."""
    frame = pd.read_csv(rundir.manifest(split_prepared), dtype=str, keep_default_na=False)
    frame.loc[3, "split_1"] = "holdout"
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(DataError, match="split_1"):
        read_manifest(tmp_path / "manifest.csv")


def test_large_groups_of_every_kind_are_reported(make_root, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    """An artist holding 12 of 40 paintings (above 5%) is reported with its kind and size; phash grouping reports none."""
    paintings = [Painting("Baroque", f"big-painter_p{i}", ("awe",), artist="big-painter") for i in range(12)]
    paintings += [Painting("Rococo", f"artist{i}_x", ("fear",) if i % 2 else ("awe",)) for i in range(28)]
    root = make_root(paintings)
    with caplog.at_level(logging.WARNING, logger="artlib.data.groups"):
        report = prepare(root, None, PrepareConfig(group_by="artist", workers=1), progress=False).report["grouping"]
    assert [(g["paintings"], g["share"]) for g in report["artists"]["large_groups"]] == [(12, 0.3)]
    assert report["artists"]["large_groups"][0]["example"].startswith("Baroque/big-painter_")
    assert report["near_duplicates"]["large_groups"] == []
    assert any("artists" in r.getMessage() and "12" in r.getMessage() for r in caplog.records)
    phash = prepare(root, None, PrepareConfig(workers=1), progress=False).report["grouping"]
    assert all(numbers["large_groups"] == [] for numbers in phash.values() if isinstance(numbers, dict))


def test_split_seeds_must_be_positive() -> None:
    """split_seeds=0 is refused (1 is the one split of 0.2)."""
    with pytest.raises(ValueError, match="split_seeds"):
        PrepareConfig(split_seeds=0)


# ---- training on several splits ------------------------------------------------------------------------------
def test_asking_for_more_splits_than_the_manifest_holds(split_prepared: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    """One line naming --split-seeds and the fix, from the library and from the command line (exit 2)."""
    run_dir = new_run_dir(split_prepared, tmp_path / "run")
    with pytest.raises(DataError, match=r"--split-seeds 3: .* holds 2 split\(s\); rerun prepare with --split-seeds 3"):
        run_stages(["emotion_conv5"], run_dir, ONE_EPOCH, split_seeds=3, progress=False)
    assert main(["train", "emotion_conv5", "--run-dir", str(run_dir), "--split-seeds", "3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--split-seeds 3" in err[0]
    with pytest.raises(DataError, match="split_5"):
        train_stage_run("emotion_conv5", run_dir, ONE_EPOCH, split_seed=5, progress=False)


def test_plan_multiplies_stage_runs_not_pretrained_caches(split_prepared: Path, tmp_path: Path) -> None:
    """Two splits: twice the stage-runs; the conv4 cache of the carried stage (trained prefix) is per split."""
    run_dir = new_run_dir(split_prepared, tmp_path / "run")
    plan = run_stages([CARRIED, "emotion_conv5"], run_dir, ONE_EPOCH, seeds=[0], plan=True, progress=False)
    assert sorted(zip(plan["stage"], plan["split_seed"])) == sorted(
        (s, k) for s in ("emotion_conv4", CARRIED, "emotion_conv5") for k in (0, 1))
    carried = plan[plan["stage"] == CARRIED].set_index("split_seed")
    assert carried.loc[1, "after"] == "emotion_conv4 (seed 0, split 1)" and carried.loc[0, "after"] == "emotion_conv4 (seed 0)"
    assert not carried["cache_shared"].any()  # its frozen conv4 comes from each split's own emotion_conv4
    one = run_stages([CARRIED, "emotion_conv5"], run_dir, ONE_EPOCH, seeds=[0], plan=True, progress=False,
                     split_seeds=1)
    assert len(one) == 3 and set(one["split_seed"]) == {0}


@pytest.mark.usefixtures("one_torch_thread")
def test_training_on_two_splits_reuses_split_zero_and_carries_within_a_split(
        tiny_prepared: Path, split_prepared: Path, tmp_path: Path) -> None:
    """A run directory trained on one split, re-prepared with two: split 0 is reused, split 1 trained from its own source."""
    run_dir = new_run_dir(tiny_prepared, tmp_path / "run")
    run_stages([CARRIED], run_dir, ONE_EPOCH, seeds=[0], progress=False)
    model_0 = rundir.stage_file(run_dir, CARRIED, 0, "model.pt")
    stamp = model_0.stat().st_mtime_ns
    rundir.copy_prepared(split_prepared, run_dir)
    rows = run_stages([CARRIED], run_dir, ONE_EPOCH, seeds=[0], progress=False)  # every split the manifest holds
    assert model_0.stat().st_mtime_ns == stamp  # split 0: same data, same identity, reused
    table = results.read_results(run_dir)
    assert sorted(zip(table["stage"], table["seed"], table["split_seed"])) == sorted(
        (s, 0, k) for s in ("emotion_conv4", CARRIED) for k in (0, 1))
    assert sorted(zip(rows["stage"], rows["split_seed"])) == sorted((s, k) for s in ("emotion_conv4", CARRIED) for k in (0, 1))
    origin = json.loads(rundir.stage_file(run_dir, CARRIED, 0, "config.json", 1).read_text())["origin"]
    source = {k: json.loads(rundir.stage_file(run_dir, "emotion_conv4", 0, "metrics.json", k).read_text())["config_hash"]
              for k in (0, 1)}
    assert origin["config_hash"] == source[1] != source[0]
    manifest = read_manifest(rundir.manifest(run_dir))
    tested = set(pd.read_csv(rundir.stage_file(run_dir, CARRIED, 0, "predictions.csv", 1))["image_path"])
    assert tested == set(manifest.loc[(manifest["split_1"] == "test") & (manifest["emotion"] != ""), "image_path"])
    assert tested != set(pd.read_csv(rundir.stage_file(run_dir, CARRIED, 0, "predictions.csv"))["image_path"])
    assert sorted(map(tuple, results.collect_rows(run_dir)[["stage", "split_seed"]].values.tolist())) == sorted(
        (s, k) for s in ("emotion_conv4", CARRIED) for k in (0, 1))
    # the verdicts pool both splits: each split's test paintings, paired within their split
    from artlib.analysis.family import compare_run

    judged = compare_run(run_dir)[0].table.set_index("comparison").loc["conv4 → conv5 vs conv4 (emotion only)"]
    split_tests = [len(pd.read_csv(rundir.stage_file(run_dir, CARRIED, 0, "predictions.csv", k))) for k in (0, 1)]
    assert judged["n_splits"] == 2 and judged["n_test"] == sum(split_tests)
    assert judged["unit"] == "artist" and "1 seed" not in judged["reason"]
    summary = pd.read_csv(rundir.comparison(run_dir)).set_index("stage")
    assert summary.loc[CARRIED, "n_splits"] == 2 and summary.loc[CARRIED, "n_test"] == split_tests[0]
