"""The fine-tuning engine on tiny data: freezing, carrying, the feature cache, resume, determinism, refusal."""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from artlib.models import weights as backbone_weights
from artlib.models import checkpoints
from artlib.models.backbone import ArtNet
from artlib.models.weights import resolve_weights
from artlib.errors import CheckpointError
from artlib.train.features import as_input, build_feature_cache
from artlib.train.imagecache import build_image_cache
from artlib.data.manifest import read_manifest
from artlib.results import read_results
from conftest import train_one
from artlib.models.stored import load_stage_model
from artlib.rundir import stage_dir
from artlib.stages import CONFIGURATIONS, STAGES
from artlib.train.config import TrainConfig
from artlib.train.grid import GridFailure

from conftest import TINY, crash_after, new_run_dir

CONV4, CONV5 = 7_098_368, 14_964_736
HEAD = {"genre": 2048 * 4 + 4, "emotion": 2048 * 2 + 2, "emotion9": 2048 * 9 + 9}


@pytest.mark.parametrize("blocks, expected", [
    ((), 0), (("conv4",), CONV4), (("conv5",), CONV5), (("conv4", "conv5"), CONV4 + CONV5),
])
@pytest.mark.parametrize("task", ["genre", "emotion"])
def test_trainable_parameter_counts(blocks: tuple[str, ...], expected: int, task: str) -> None:
    """Exactly the named blocks plus the head train: conv4 7,098,368, conv5 14,964,736."""
    model = ArtNet.build(len(STAGES["genre_conv4" if task == "genre" else "emotion_conv5"].classes))
    model.freeze_all().unfreeze(*blocks)
    assert model.trainable_parameter_count() == expected + HEAD[task]
    table = model.parameter_table().set_index("block")
    assert table.loc["conv4", "parameters"] == CONV4 and table.loc["conv5", "parameters"] == CONV5
    assert table.loc["total trainable", "parameters"] == expected + HEAD[task]


@pytest.mark.parametrize("name", list(STAGES))
def test_every_stage_trains_exactly_its_blocks(name: str) -> None:
    """Each stage unfreezes exactly its listed blocks (one test over all variants)."""
    stage = STAGES[name]
    model = ArtNet.build(len(stage.classes)).freeze_all().unfreeze(*stage.blocks)
    expected = {"conv4": CONV4, "conv5": CONV5}
    assert model.trainable_parameter_count() == sum(expected[b] for b in stage.blocks) + HEAD[stage.task]
    assert model.trainable_blocks == stage.blocks


def test_configurations_group_the_stages() -> None:
    """The study's three configurations hold its eight stages plus the matched control; two more the nine-emotion
    ones; sources are defined before their dependants."""
    assert [len(CONFIGURATIONS[c]) for c in (1, 2, 3)] == [3, 4, 2]
    assert [len(CONFIGURATIONS[c]) for c in (4, 5)] == [4, 3]
    order = list(STAGES)
    for stage in STAGES.values():
        if stage.init_from:
            assert order.index(stage.init_from) < order.index(stage.name)


def test_unknown_block_is_refused() -> None:
    """A typo in a block name is an error naming the valid blocks."""
    with pytest.raises(ValueError, match="conv4 = layer3"):
        ArtNet.build(2).freeze_all().unfreeze("layer3")


def test_frozen_weights_and_batchnorm_stats_do_not_change() -> None:
    """After training steps, frozen blocks (weights and BN running stats) are bit-identical; trainable ones moved."""
    torch.manual_seed(0)
    model = ArtNet.build(2, seed=0).freeze_all().unfreeze("conv5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    assert not model.backbone.layer3[0].bn1.training and model.backbone.layer4[0].bn1.training
    for _ in range(3):
        x = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
        loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 0, 1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    frozen = [k for k in before if not k.startswith(("backbone.layer4.", "head."))]
    trainable = [k for k in before if k.startswith(("backbone.layer4.", "head."))]
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert any("running_mean" in k for k in frozen)
    moved = [k for k in trainable if not torch.equal(before[k], after[k])]
    assert any(k.endswith("conv1.weight") for k in moved) and "head.weight" in moved
    assert any("running_mean" in k for k in moved)  # trainable BN keeps learning its statistics


def _loss_and_grads(model: ArtNet, x: torch.Tensor, start: str | None, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Loss and the flattened gradient of every trainable parameter for one batch."""
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model.forward_blocks(x, start, None), y)
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])


@pytest.mark.parametrize("blocks", [("conv5",), ("conv4", "conv5")])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_feature_cache_matches_full_forward(run_dir: Path, blocks: tuple[str, ...], dtype: str) -> None:
    """Loss and gradients computed from cached prefix features equal those of the full forward pass.

    fp32 storage: equal to rounding (1e-6). fp16 storage on a random-init network (whose gradients
    amplify any rounding chaotically): loss within 2e-3 and gradient direction preserved; with trained
    weights (the self-supervised ResNet50, when installed) the gradients agree within 1%.
    """
    manifest = read_manifest(run_dir / "manifest.csv")
    archive = Path(json.loads((run_dir / "prepare_report.json").read_text())["data_root"]) / "archive"
    images = build_image_cache(archive, manifest["image_path"].tolist(), 48, run_dir / "cache", workers=1,
                               progress=False)
    rows = np.arange(12)
    y = torch.tensor([0, 1] * 6)
    candidates = [None] + ([resolve_weights("self-supervised", verbose=False)]
                           if backbone_weights.self_supervised_path() and dtype == "float16" else [])
    for weights in candidates:
        model = ArtNet.build(2, weights, seed=1).freeze_all().unfreeze(*blocks).train()
        feats = build_feature_cache(model, images.array, rows, images.key, run_dir / "cache", torch.device("cpu"),
                                    "fp32", dtype, batch_size=5, progress=False)
        assert feats.start == blocks[0]
        loss_full, grad_full = _loss_and_grads(model, torch.from_numpy(np.asarray(images.array[rows])), None, y)
        loss_cached, grad_cached = _loss_and_grads(model, as_input(feats.array), feats.start, y)
        rel = float((grad_full - grad_cached).norm() / grad_full.norm())
        cosine = float(torch.nn.functional.cosine_similarity(grad_full, grad_cached, dim=0))
        if dtype == "float32":
            assert loss_cached == pytest.approx(loss_full, abs=1e-6) and rel < 1e-6
        elif weights is None:
            assert loss_cached == pytest.approx(loss_full, abs=2e-3) and cosine > 0.98
        else:
            assert loss_cached == pytest.approx(loss_full, abs=1e-4) and rel < 1e-2


def test_carried_stage_starts_from_source_backbone(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """genre_conv4 → emotion_conv5 starts with every backbone weight of genre_conv4 and a fresh 2-class head."""
    import artlib.train.runner as runner

    captured = {}
    original = runner.train_loop

    def spy(model, *args, **kwargs):  # noqa: ANN001, ANN202
        captured.setdefault("states", []).append({k: v.clone() for k, v in model.backbone_state().items()})
        captured.setdefault("heads", []).append(model.head.out_features)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(runner, "train_loop", spy)
    train_one("genre_conv4_then_emotion_conv5", run_dir, TINY, seed=0, progress=False)  # runs genre_conv4 first
    source, _ = load_stage_model(run_dir, "genre_conv4", 0, task="genre")
    start_state = captured["states"][1]
    assert captured["heads"] == [4, 2]
    assert all(torch.equal(start_state[k], v) for k, v in source.backbone_state().items())
    carried, _ = load_stage_model(run_dir, "genre_conv4_then_emotion_conv5", 0, task="emotion")
    # conv4 (frozen in the carried stage) is still genre_conv4's; conv5 has trained away from it.
    src, dst = source.backbone_state(), carried.backbone_state()
    assert all(torch.equal(src[k], dst[k]) for k in src if k.startswith("layer3."))
    assert any(not torch.equal(src[k], dst[k]) for k in src if k.startswith("layer4."))


def _row(run_dir: Path, stage: str, seed: int = 0) -> dict:
    """The stage's results row without timing columns."""
    row = read_results(run_dir).set_index(["stage", "seed"]).loc[(stage, seed)].to_dict()
    return {k: v for k, v in row.items() if not k.endswith("_seconds")}


def test_resume_after_failure_gives_the_same_result(run_dir: Path, tmp_path: Path, tiny_prepared: Path) -> None:
    """A stage that dies after epoch 1 resumes at epoch 2 and ends exactly as an uninterrupted run."""
    with pytest.raises(RuntimeError, match="simulated failure after epoch 1"):
        train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False, on_epoch_end=crash_after(1))
    folder = stage_dir(run_dir, "emotion_conv5", 0)
    assert (folder / "checkpoint.pt").is_file() and not (folder / "metrics.json").exists()
    train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == 1
    assert not (folder / "checkpoint.pt").exists()
    clean = new_run_dir(tiny_prepared, tmp_path / "clean")
    train_one("emotion_conv5", clean, TINY, seed=0, progress=False)
    assert _row(run_dir, "emotion_conv5") == _row(clean, "emotion_conv5")
    h1, h2 = pd.read_csv(folder / "history.csv"), pd.read_csv(stage_dir(clean, "emotion_conv5", 0) / "history.csv")
    timing = ["seconds", "val_seconds", "checkpoint_seconds"]
    assert list(h1.columns) == list(h2.columns) and set(timing) <= set(h1.columns)
    assert h1["checkpoint_seconds"].isna().tolist() == [True, False, False]  # epoch 1's time went with the process
    assert (h2["checkpoint_seconds"].to_numpy()[:-1] > 0).all() and h2["checkpoint_seconds"].iloc[-1] == 0
    pd.testing.assert_frame_equal(h1.drop(columns=timing), h2.drop(columns=timing))


def test_a_best_epoch_older_than_the_last_survives_two_interruptions(run_dir: Path, tmp_path: Path,
                                                                    tiny_prepared: Path) -> None:
    """Monitoring val_accuracy, epoch 1 stays the best while epochs 2 and 3 train: the record after epoch 3 names
    two slots (epoch 3's and epoch 1's), epoch 4 writes into the third. Crashed after epoch 3, resumed, crashed after
    epoch 4, resumed again: the results (test metrics of the best epoch's weights) equal an uninterrupted run's."""
    cfg = TrainConfig(**{**TINY.__dict__, "epochs": 5, "monitor": "val_accuracy"})
    folder = stage_dir(run_dir, "emotion_conv5", 0)
    with pytest.raises(RuntimeError, match="simulated failure after epoch 3"):
        train_one("emotion_conv5", run_dir, cfg, seed=0, progress=False, on_epoch_end=crash_after(3))
    record = checkpoints.load(folder / "checkpoint.pt")
    assert record["best_epoch"] < 3 and record["best_slot"]["slot"] != record["state"]["slot"]  # the case to test
    with pytest.raises(RuntimeError, match="simulated failure after epoch 4"):
        train_one("emotion_conv5", run_dir, cfg, seed=0, progress=False, on_epoch_end=crash_after(4))
    assert checkpoints.load(folder / "checkpoint.pt")["epoch"] == 4
    train_one("emotion_conv5", run_dir, cfg, seed=0, progress=False)
    assert json.loads((folder / "metrics.json").read_text())["resumed_from_epoch"] == 4
    clean = new_run_dir(tiny_prepared, tmp_path / "clean")
    train_one("emotion_conv5", clean, cfg, seed=0, progress=False)
    assert _row(run_dir, "emotion_conv5") == _row(clean, "emotion_conv5")
    assert not list(folder.glob("checkpoint*"))


def test_a_failed_slot_write_names_the_file_and_the_last_epoch_still_resumes(
        run_dir: Path, tmp_path: Path, tiny_prepared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up while epoch 2's slot is written: the stage stops with the slot's name and what to do, no
    writer thread is left, and the rerun resumes from epoch 1 to the uninterrupted result."""
    pwrite = os.pwrite

    def full_disk(fd: int, data: memoryview, offset: int) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("slot1-1.safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full_disk)
    folder = stage_dir(run_dir, "emotion_conv5", 0)
    with pytest.raises(GridFailure) as info:
        train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    assert f"{folder / 'checkpoint-slot1-1.safetensors'}: could not be written (No space left on device); the " \
           f"previous epoch's checkpoint is unchanged. Free some space" in str(info.value)
    assert not [t for t in threading.enumerate() if t.name in ("artlib-checkpoint", "artlib-tensorfile")]
    assert checkpoints.load(folder / "checkpoint.pt")["epoch"] == 1
    monkeypatch.undo()
    train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    assert json.loads((folder / "metrics.json").read_text())["resumed_from_epoch"] == 1
    clean = new_run_dir(tiny_prepared, tmp_path / "clean")
    train_one("emotion_conv5", clean, TINY, seed=0, progress=False)
    assert _row(run_dir, "emotion_conv5") == _row(clean, "emotion_conv5")


def test_an_error_during_validation_waits_for_the_slot_writer(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation fails while epoch 1's slot is still on its way to the disk (a slow fsync): the error passes on
    only once the writer's thread has ended, so no thread is left holding the slot's file afterwards."""
    import artlib.train.loop

    fsync, finished = os.fsync, []

    def slow_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".safetensors"):
            time.sleep(1.0)
            fsync(fd)
            finished.append(time.perf_counter())
        else:
            fsync(fd)

    def failing(*args: object, **kwargs: object) -> dict:
        raise RuntimeError("validation failed")

    monkeypatch.setattr(os, "fsync", slow_fsync)
    monkeypatch.setattr(artlib.train.loop, "validation_row", failing)
    with pytest.raises(GridFailure, match="validation failed"):
        train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    raised = time.perf_counter()
    assert finished and finished[0] <= raised  # the slot was durable before the error reached the caller
    assert not [t for t in threading.enumerate() if t.name == "artlib-checkpoint"]


def test_same_seed_same_row_and_finished_stage_is_reused(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """Same seed ⇒ identical results row; rerunning does not retrain or duplicate; force retrains identically."""
    train_one("emotion_conv4", run_dir, TINY, seed=5, progress=False)
    first = _row(run_dir, "emotion_conv4", 5)
    model_file = stage_dir(run_dir, "emotion_conv4", 5) / "model.pt"
    mtime = model_file.stat().st_mtime_ns
    with pytest.raises(RuntimeError, match="simulated failure after epoch 1"):  # an interrupted --force rerun
        train_one("emotion_conv4", run_dir, TINY, seed=5, progress=False, force=True, on_epoch_end=crash_after(1))
    assert (model_file.parent / "checkpoint.pt").is_file()
    capsys.readouterr()
    train_one("emotion_conv4", run_dir, TINY, seed=5, progress=False)
    assert _row(run_dir, "emotion_conv4", 5) == first
    assert "finished earlier with these settings — reusing it" in capsys.readouterr().out  # said even when quiet
    assert model_file.stat().st_mtime_ns == mtime
    assert not (model_file.parent / "checkpoint.pt").exists()  # the interrupted rerun's leftover is removed
    train_one("emotion_conv4", run_dir, TINY, seed=5, progress=False, force=True)
    assert _row(run_dir, "emotion_conv4", 5) == first
    assert len(read_results(run_dir)) == 1
    other = train_one("emotion_conv4", run_dir, TINY, seed=6, progress=False)
    assert len(read_results(run_dir)) == 2 and other["seed"] == 6


def test_outputs_follow_the_contract(run_dir: Path) -> None:
    """Stage folder files, results.csv columns, metrics consistent with predictions."""
    row = train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    folder = stage_dir(run_dir, "emotion_conv5", 0)
    for name in ("history.csv", "metrics.json", "model.pt", "predictions.csv", "config.json"):
        assert (folder / name).is_file()
    contract = ["configuration", "stage", "task", "trained_blocks", "init_from", "seed", "accuracy", "f1",
                "balanced_accuracy", "n_test", "majority_baseline_accuracy", "backbone_weights", "best_epoch",
                "epochs_run", "train_seconds"]
    assert set(contract) <= set(read_results(run_dir).columns)
    preds = pd.read_csv(folder / "predictions.csv")
    assert len(preds) == row["n_test"] and preds["scored"].tolist() == [1] * len(preds)  # binary: every painting
    assert row["accuracy"] == pytest.approx((preds["label"] == preds["predicted"]).mean())
    history = pd.read_csv(folder / "history.csv")
    assert len(history) == row["epochs_run"] == 3
    assert row["best_epoch"] == int(history["val_loss"].idxmin()) + 1  # monitor val_loss, minimised
    assert row["backbone_weights"] == "random" and row["configuration"] == "1 sequential"
    metrics = json.loads((folder / "metrics.json").read_text())
    timing = metrics["timing"]  # where the time went, for whoever wants to know (the benchmark reads it)
    assert set(timing) == {"startup_seconds", "model_seconds", "image_cache_seconds", "feature_cache_seconds",
                           "training_seconds", "validation_seconds", "checkpoint_seconds", "test_seconds"}
    assert all(v >= 0 for v in timing.values()) and metrics["layout"] in ("channels_last", "contiguous")
    assert timing["training_seconds"] + timing["validation_seconds"] == pytest.approx(row["train_seconds"], abs=0.01)
    assert timing["checkpoint_seconds"] == pytest.approx(history["checkpoint_seconds"].sum(), abs=1e-3)


def test_early_stopping_direction_and_best_epoch(run_dir: Path) -> None:
    """Monitoring a metric to maximise keeps the epoch with the highest value; test metrics come from it."""
    cfg = TrainConfig(**{**TINY.__dict__, "monitor": "val_accuracy", "epochs": 4, "patience": 2})
    row = train_one("emotion_conv5", run_dir, cfg, seed=0, progress=False)
    history = pd.read_csv(stage_dir(run_dir, "emotion_conv5", 0) / "history.csv")
    best = int(history["epoch"][history["val_accuracy"].to_numpy().argmax()])
    assert row["best_epoch"] == best
    assert row["epochs_run"] == len(history) <= 4
    if len(history) < 4:  # stopped early: patience epochs without improvement
        assert len(history) - best >= 2


def test_wrong_task_checkpoint_is_refused(run_dir: Path) -> None:
    """Loading a genre model as an emotion model, or a tampered file, is refused with a clear message."""
    train_one("genre_conv4", run_dir, TINY, seed=0, progress=False)
    with pytest.raises(CheckpointError, match="task='genre'.*task='emotion'"):
        load_stage_model(run_dir, "genre_conv4", 0, task="emotion")
    model_file = stage_dir(run_dir, "genre_conv4", 0) / "model.pt"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the hash"):
        load_stage_model(run_dir, "genre_conv4", 0, task="genre")
    torch.save({"meta": {"format": "something else"}}, run_dir / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an artlib checkpoint"):
        checkpoints.load(run_dir / "foreign.pt")


def test_imagenet_offline_fails_fast_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """weights='imagenet' without network: an error naming the file to provide and where to put it."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(backbone_weights, "_download_imagenet", lambda timeout=20.0: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setattr(backbone_weights, "_RESOLVED", {})
    with pytest.raises(RuntimeError) as info:
        resolve_weights("imagenet", verbose=False)
    message = str(info.value)
    assert backbone_weights.IMAGENET_FILE in message and str(tmp_path / "hub" / "checkpoints") in message
    assert backbone_weights.IMAGENET_URL in message


def test_auto_works_offline_and_records_what_it_used(run_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """weights='auto' offline falls back (self-supervised if installed, else random) and says so in results."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(backbone_weights, "_download_imagenet", lambda timeout=20.0: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setattr(backbone_weights, "_RESOLVED", {})
    weights = resolve_weights("auto", verbose=False)
    expected = "self-supervised:imgsim-0.1.2" if backbone_weights.self_supervised_path() else "random"
    assert weights.label == expected
    cfg = TrainConfig(**{**TINY.__dict__, "weights": "auto", "epochs": 1})
    row = train_one("emotion_conv5", run_dir, cfg, seed=0, progress=False)
    assert row["backbone_weights"] == expected


def test_state_dict_file_with_prefixes_loads(tmp_path: Path) -> None:
    """A weights file with 'module.' prefixes and an fc layer loads as the backbone; a wrong file is refused."""
    ref = ArtNet.build(2, seed=4)
    state = {f"module.{k}": v for k, v in ref.backbone.state_dict().items()}
    state["module.fc.weight"] = torch.zeros(10, 2048)
    torch.save(state, tmp_path / "w.pth")
    weights = resolve_weights(str(tmp_path / "w.pth"), verbose=False)
    model = ArtNet.build(2, weights, seed=9)
    assert all(torch.equal(v, ref.backbone.state_dict()[k]) for k, v in model.backbone.state_dict().items())
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="not a torchvision ResNet50"):
        resolve_weights(str(tmp_path / "bad.pth"), verbose=False)


def test_a_changed_weights_file_gets_a_new_digest_and_an_unchanged_one_is_not_hashed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest (part of every config hash) follows the file's content, in one process and across processes; the
    digest of a file whose size, times, inode and device are unchanged is read from the user's cache folder."""
    monkeypatch.setenv("ARTLIB_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "w.pth"
    torch.save(ArtNet.build(2, seed=4).backbone.state_dict(), path)
    time.sleep(2.1)  # a file changed in the last 2 s is not remembered (a second change could keep its times)
    first = resolve_weights(str(path), verbose=False)
    memo = json.loads(backbone_weights.digest_memo_path().read_text())
    assert list(memo.values()) == [first.digest]
    for name in ("_RESOLVED", "_DIGESTS"):  # a new process: the digest comes from the memo, not from the bytes
        monkeypatch.setattr(backbone_weights, name, {})
    with monkeypatch.context() as m:
        m.setattr(backbone_weights.hashlib, "blake2b", None)
        assert resolve_weights(str(path), verbose=False) == first
    torch.save(ArtNet.build(2, seed=5).backbone.state_dict(), path)  # same size, new bytes (and times)
    second = resolve_weights(str(path), verbose=False)  # same process, same option: resolved again
    assert second.digest != first.digest
    for name in ("_RESOLVED", "_DIGESTS"):
        monkeypatch.setattr(backbone_weights, name, {})
    assert resolve_weights(str(path), verbose=False).digest == second.digest  # and in a new process


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_models_built_from_a_weights_file_hold_its_values_in_tensors_of_their_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    """Every model built from one weights file holds exactly the file's values, in tensors of its own: the first
    from the file mapped into memory while it is built (no longer once it is built), the next ones from the state read
    and kept in memory per process (never mapped); changing one model's weights in place changes neither the next
    model, nor the kept state, nor the file; convolution weights come in channels-last memory."""
    from safetensors.torch import save_file

    from artlib.models import backbone as backbone_module

    path = tmp_path / f"w{suffix}"
    source = {k: v.contiguous() for k, v in ArtNet.build(2, seed=4).backbone.state_dict().items()}
    torch.save(source, path) if suffix == ".pth" else save_file(source, str(path))
    before = path.read_bytes()
    weights = resolve_weights(str(path), verbose=False)
    linux = sys.platform.startswith("linux")
    mapped_while_built = []
    create_backbone = backbone_module.create_backbone

    def watched(*args: object, **kwargs: object) -> torch.nn.Module:
        """create_backbone, noting whether the weights file is mapped while the network takes its tensors."""
        mapped_while_built.append(linux and str(path) in Path("/proc/self/maps").read_text())
        return create_backbone(*args, **kwargs)

    monkeypatch.setattr(backbone_module, "create_backbone", watched)
    for _ in range(3):
        model = ArtNet.build(2, weights, seed=0)
        if linux:
            assert str(path) not in Path("/proc/self/maps").read_text()
        with torch.no_grad():
            for tensor in model.backbone.state_dict().values():
                tensor.zero_()
    assert mapped_while_built == [linux, False, False]
    assert path.read_bytes() == before
    second = ArtNet.build(2, weights, seed=0)
    state = second.backbone.state_dict()
    assert state.keys() == {k for k in source if not k.startswith("fc.")}
    assert all(torch.equal(state[k], source[k]) for k in state)
    convs = [k for k, v in state.items() if v.dim() == 4]
    assert len(convs) == 53 and all(state[k].is_contiguous(memory_format=torch.channels_last) for k in convs)
    assert sum(p.numel() for p in second.backbone.parameters()) == 23_508_032
    assert all(p.requires_grad for p in second.backbone.parameters())


def test_a_half_precision_weights_file_gives_a_float32_model_that_runs(tmp_path: Path) -> None:
    """Weights saved in float16 are loaded as a copying load would: float32 parameters (BatchNorm's counters stay
    integers), the file's values rounded once, and the model runs on float32 images."""
    path = tmp_path / "half.pth"
    source = ArtNet.build(2, seed=4).backbone.state_dict()
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in source.items()}, path)
    model = ArtNet.build(2, resolve_weights(str(path), verbose=False), seed=0)
    state = model.backbone.state_dict()
    assert {v.dtype for k, v in state.items() if not k.endswith("num_batches_tracked")} == {torch.float32}
    assert {state[k].dtype for k in state if k.endswith("num_batches_tracked")} == {torch.long}
    assert all(torch.equal(state[k], source[k].half().float()) for k in state if source[k].is_floating_point())
    assert model.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 2)


def test_resident_feature_source_matches_memory_mapped(run_dir: Path) -> None:
    """Gathering batches from a device-resident copy of the cache gives the same inputs as the memmap."""
    from artlib.train.inputs import FeatureSource

    manifest = read_manifest(run_dir / "manifest.csv")
    archive = Path(json.loads((run_dir / "prepare_report.json").read_text())["data_root"]) / "archive"
    images = build_image_cache(archive, manifest["image_path"].tolist(), 32, run_dir / "cache", workers=1,
                               progress=False)
    model = ArtNet.build(2, seed=1).freeze_all().unfreeze("conv5")
    feats = build_feature_cache(model, images.array, np.arange(10), images.key, run_dir / "cache",
                                torch.device("cpu"), "fp32", "float16", progress=False)
    positions = np.array([7, 2, 9, 0])
    mapped = FeatureSource(feats.array, feats.start).get(positions, epoch=0)
    resident = FeatureSource(feats.array, feats.start, torch.device("cpu"), resident=True).get(positions, epoch=0)
    assert torch.equal(mapped, resident) and mapped.shape[1] == 1024


def test_corrupted_model_of_finished_stage_is_retrained(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """A finished stage whose model.pt no longer matches its recorded hash is trained again, to the same row."""
    first = train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    model_file = stage_dir(run_dir, "emotion_conv5", 0) / "model.pt"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 3] ^= 0x55
    model_file.write_bytes(bytes(data))
    again = train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    assert "no longer matches the hash" in capsys.readouterr().out
    assert {k: v for k, v in again.items() if not k.endswith("_seconds")} == \
        {k: v for k, v in first.items() if not k.endswith("_seconds")}
    load_stage_model(run_dir, "emotion_conv5", 0, task="emotion")  # intact again


def test_augmentation_trains_from_images_and_is_reproducible(run_dir: Path, tmp_path: Path,
                                                              tiny_prepared: Path) -> None:
    """With augmentation the prefix runs every step (no feature cache); the same seed gives the same row."""
    cfg = TrainConfig(**{**TINY.__dict__, "augment": True, "epochs": 2})
    row = train_one("emotion_conv5", run_dir, cfg, seed=0, progress=False)
    assert row["feature_cache"] is False and row["augment"] is True and row["epochs_run"] == 2
    assert not list((run_dir / "cache").glob("features_*.npy"))
    again = new_run_dir(tiny_prepared, tmp_path / "again")
    train_one("emotion_conv5", again, cfg, seed=0, progress=False)
    assert _row(run_dir, "emotion_conv5") == _row(again, "emotion_conv5")


def test_during_the_last_epoch_only_the_slots_the_last_record_names_are_on_disk(
        run_dir: Path, tmp_path: Path, tiny_prepared: Path) -> None:
    """The last epoch writes no slot, so once the record before it is written the other slots are deleted (while
    it trains): stopped at the end of the last epoch, the folder holds exactly the files of the slots that record
    names, and a rerun resumes from it to the uninterrupted result."""
    folder = stage_dir(run_dir, "emotion_conv5", 0)
    config = TINY  # 3 epochs: slots written after epochs 1 and 2
    with pytest.raises(GridFailure, match="simulated failure after epoch 3"):
        train_one("emotion_conv5", run_dir, config, seed=0, progress=False, on_epoch_end=crash_after(3))
    for thread in [t for t in threading.enumerate() if t.name == "artlib-slot-removal"]:
        thread.join()
    record = checkpoints.load(folder / "checkpoint.pt")
    named = {record["state"]["slot"], *([record["best_slot"]["slot"]] if record["best_slot"] else [])}
    assert record["epoch"] == 2 and len(named) == 1  # (epoch 2 is this run's best so far: epoch 1's slot was freed)
    assert sorted(p.name for p in folder.glob("checkpoint-slot*")) == [
        f"checkpoint-slot{slot}-{part}.safetensors" for slot in sorted(named) for part in range(2)]
    train_one("emotion_conv5", run_dir, config, seed=0, progress=False)
    clean = new_run_dir(tiny_prepared, tmp_path / "clean")
    train_one("emotion_conv5", clean, config, seed=0, progress=False)
    assert _row(run_dir, "emotion_conv5") == _row(clean, "emotion_conv5")


def test_the_objects_held_before_a_stage_run_are_left_out_of_gc_scans_during_it_only(run_dir: Path) -> None:
    """While a stage-run trains, the objects that existed before it are frozen (skipped by garbage collections);
    afterwards none are, and a caller's own freeze is left as it was."""
    import gc

    counts: list[int] = []
    train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False,
              on_epoch_end=lambda epoch, row: counts.append(gc.get_freeze_count()))
    assert len(counts) == TINY.epochs and min(counts) > 10_000 and gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        train_one("emotion_conv5", run_dir, TINY, seed=1, progress=False)
        assert gc.get_freeze_count() > frozen // 2  # still frozen (less those freed meanwhile), not unfrozen
    finally:
        gc.unfreeze()


def test_a_crash_after_training_resumes_straight_to_the_results(
        run_dir: Path, tmp_path: Path, tiny_prepared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test pass fails after training stopped early (patience 1): the record says training is over and names
    only the best epoch's slot (the others are deleted), and the rerun trains no epoch and gives the uninterrupted
    run's results and history."""
    from artlib.train import runner

    config = TrainConfig(**{**TINY.__dict__, "epochs": 6, "patience": 1})
    folder = stage_dir(run_dir, "emotion_conv5", 0)

    def failing_test_pass(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated failure in the test pass")

    monkeypatch.setattr(runner, "evaluate", failing_test_pass)
    with pytest.raises(GridFailure, match="simulated failure in the test pass"):
        train_one("emotion_conv5", run_dir, config, seed=0, progress=False)
    monkeypatch.undo()
    for thread in [t for t in threading.enumerate() if t.name == "artlib-slot-removal"]:
        thread.join()
    record = checkpoints.load(folder / "checkpoint.pt")
    assert record["stopped"] and record["best_epoch"] < record["epoch"] < 6
    assert record["state"] == record["best_slot"]
    assert sorted(p.name for p in folder.glob("checkpoint-slot*")) == [
        f"checkpoint-slot{record['best_slot']['slot']}-{part}.safetensors" for part in range(2)]
    train_one("emotion_conv5", run_dir, config, seed=0, progress=False)
    assert json.loads((folder / "metrics.json").read_text())["resumed_from_epoch"] == record["epoch"]
    clean = new_run_dir(tiny_prepared, tmp_path / "clean")
    train_one("emotion_conv5", clean, config, seed=0, progress=False)
    assert _row(run_dir, "emotion_conv5") == _row(clean, "emotion_conv5")
    timings = ["seconds", "val_seconds", "checkpoint_seconds"]
    pd.testing.assert_frame_equal(pd.read_csv(folder / "history.csv").drop(columns=timings),
                                  pd.read_csv(stage_dir(clean, "emotion_conv5", 0) / "history.csv").drop(columns=timings))
    assert not list(folder.glob("checkpoint*"))
