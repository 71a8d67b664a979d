"""Issue #6, crash safety: damaged caches, checkpoints and results are detected and rebuilt, never trusted.

Also: loading never executes code from a file (weights_only), results.csv survives concurrent writers,
and disk problems (read-only run directory, full disk) stop a stage before training with a clear DataError.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import pathlib
import re
import shutil
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import artlib.train.inputs
import artlib.train.runner
from artlib import results
from artlib.models import checkpoints
from artlib.models.backbone import ArtNet
from artlib.models.weights import resolve_weights
from artlib.errors import CheckpointError, DataError
from artlib.train.cachefile import cache_bytes
from artlib.train.grid import GridFailure
from artlib.train.features import FeatureCache, build_feature_cache
from artlib.train.imagecache import build_image_cache
from artlib.data.manifest import read_manifest
from artlib.atomic import atomic_dir, check_writable, write_json, write_text
from conftest import train_one
from artlib.models.stored import load_stage_model
from artlib.rundir import stage_dir
from artlib.train.inputs import _check_free_space
from artlib.train.config import TrainConfig
from conftest import crash_after, new_run_dir

TINY = TrainConfig(image_size=32, epochs=2, batch_size=16, lr=1e-3, weights="none", precision="fp32", workers=1,
                   patience=None)
DiskUsage = namedtuple("DiskUsage", "total used free")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def result_row(run_dir: Path, stage: str, seed: int = 0) -> dict:
    """A stage's results.csv row without timing columns."""
    row = results.read_results(run_dir).set_index(["stage", "seed"]).loc[(stage, seed)].to_dict()
    return {k: v for k, v in row.items() if not k.endswith("_seconds")}


@pytest.fixture(scope="module")
def clean_run(tiny_data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """emotion_conv5 trained once, uninterrupted, with TINY: the reference for restarted runs."""
    run_dir = new_run_dir(tiny_data[1], tmp_path_factory.mktemp("crash-clean") / "run")
    train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    return run_dir


# --- the decoded-image cache -------------------------------------------------------------------

def _damage(npy: Path, how: str) -> None:
    """Damage a cache (.npy + .json sidecar) in one way."""
    meta = npy.with_suffix(".json")
    if how == "truncated-npy":
        data = npy.read_bytes()
        npy.write_bytes(data[: len(data) // 2])
    elif how == "garbage-npy":
        npy.write_bytes(os.urandom(npy.stat().st_size))
    elif how == "missing-sidecar":
        meta.unlink()
    elif how == "sidecar-wrong-key":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "key": "0123456789abcdef0123"}))
    elif how == "sidecar-incomplete":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "complete": False}))
    elif how == "sidecar-not-an-object":
        meta.write_text("[]")
    elif how == "sidecar-garbage":
        meta.write_bytes(b"\xff\xfe{not json")
    elif how == "sidecar-bad-errors":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "errors": {"99999": "x"}}))
    else:
        raise ValueError(how)


CACHE_DAMAGE = ["truncated-npy", "garbage-npy", "missing-sidecar", "sidecar-wrong-key", "sidecar-incomplete",
                "sidecar-not-an-object", "sidecar-garbage", "sidecar-bad-errors"]


@pytest.mark.parametrize("how", CACHE_DAMAGE)
def test_damaged_image_cache_is_rebuilt(tiny_data: tuple[Path, Path], tmp_path: Path, how: str) -> None:
    """A damaged or incomplete image cache is rebuilt (same pixels), never read; a leftover temp file is removed."""
    root, prepared = tiny_data
    paths = read_manifest(prepared / "manifest.csv")["image_path"].tolist()
    cache_dir = tmp_path / "cache"
    first = build_image_cache(root / "archive", paths, 32, cache_dir, workers=1, progress=False)
    reference = np.array(first.array)
    assert build_image_cache(root / "archive", paths, 32, cache_dir, workers=1, progress=False).seconds == 0.0
    del first
    _damage(next(cache_dir.glob("images_*.npy")), how)
    (cache_dir / f".{next(cache_dir.glob('images_*.npy')).name}.abc123.tmp.npy").write_bytes(b"killed build")
    again = build_image_cache(root / "archive", paths, 32, cache_dir, workers=1, progress=False)
    assert again.seconds > 0  # rebuilt, not reused
    np.testing.assert_array_equal(np.array(again.array), reference)
    assert json.loads(again.path.with_suffix(".json").read_text())["complete"] is True
    assert not list(cache_dir.glob(".images_*"))  # the killed build's temporary file is gone


@pytest.mark.parametrize("how", ["truncated-npy", "garbage-npy", "missing-sidecar", "sidecar-wrong-key",
                                 "sidecar-not-an-object"])
def test_damaged_feature_cache_is_rebuilt(tiny_data: tuple[Path, Path], tmp_path: Path, how: str) -> None:
    """A damaged or incomplete feature cache is recomputed (same features), never read."""
    root, prepared = tiny_data
    paths = read_manifest(prepared / "manifest.csv")["image_path"].tolist()
    images = build_image_cache(root / "archive", paths, 32, tmp_path, workers=1, progress=False)
    model = ArtNet.build(2, None, seed=1).freeze_all().unfreeze("conv5")
    rows = np.arange(20)

    def features() -> FeatureCache:
        """Build (or reuse) the fp32 feature cache of 20 rows."""
        return build_feature_cache(model, images.array, rows, images.key, tmp_path, torch.device("cpu"), "fp32",
                                   "float32", batch_size=8, progress=False)

    reference = np.array(features().array)
    assert features().seconds == 0.0
    _damage(next(tmp_path.glob("features_*.npy")), how)
    again = features()
    assert again.seconds > 0
    np.testing.assert_array_equal(np.array(again.array), reference)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the written file's name in /proc")
def test_a_full_disk_while_features_are_written_names_the_cache_and_leaves_nothing_trusted(
        tiny_data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up at the third batch of a feature cache: the error names the cache and what to do, no cache
    file or temporary file is left, and the next build (disk freed) gives the features an undisturbed build gives."""
    root, prepared = tiny_data
    paths = read_manifest(prepared / "manifest.csv")["image_path"].tolist()
    images = build_image_cache(root / "archive", paths, 32, tmp_path / "images", workers=1, progress=False)
    model = ArtNet.build(2, None, seed=1).freeze_all().unfreeze("conv5")

    def features(where: Path) -> FeatureCache:
        """Build (or reuse) the fp16 feature cache of 20 rows in ``where``."""
        return build_feature_cache(model, images.array, np.arange(20), images.key, where, torch.device("cpu"), "fp32",
                                   "float16", batch_size=4, progress=False)

    pwrite, batches = os.pwrite, []

    def full_disk(fd: int, data: memoryview, offset: int) -> int:
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".features_"):
            batches.append(offset)
            if len(batches) == 4:  # the header, then the rows of batches 1 and 2 went through
                raise OSError(errno.ENOSPC, "No space left on device")
        return pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(DataError) as info:
        features(tmp_path / "cache")
    monkeypatch.undo()
    target = next(iter(str(info.value).split(":")))
    assert target.startswith(str(tmp_path / "cache" / "features_conv5_")) and target.endswith(".npy")
    assert str(info.value).endswith("could not be written (No space left on device); nothing was changed. Free some "
                                    "space or choose another folder.")
    assert not [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]
    np.testing.assert_array_equal(np.array(features(tmp_path / "cache").array),
                                  np.array(features(tmp_path / "undisturbed").array))


# --- checkpoints -------------------------------------------------------------------------------

class _Plant:
    """Unpickling this calls open(marker, 'w'): a stand-in for any code an attacker could run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        """Tell pickle to call open(marker, 'w') when loading."""
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path) -> None:
    """Write a torch zip file that looks like an artlib checkpoint but runs code when unpickled unsafely."""
    torch.save({"meta": checkpoints.make_meta(kind="model", stage="emotion_conv5", task="emotion"),
                "state_dict": {"head.weight": torch.zeros(2, 2048)}, "extra": _Plant(marker)}, path)


def test_pickle_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    """A checkpoint carrying code is refused by every loader and the code never runs (it would, loaded unsafely)."""
    marker = tmp_path / "code-ran"
    evil = tmp_path / "model.pt"
    _plant(evil, marker)
    with pytest.raises(CheckpointError) as info:
        checkpoints.load(evil)
    assert str(info.value).startswith(f"{evil}: cannot be loaded safely (UnpicklingError: ")
    assert str(info.value).endswith("It is damaged or not an artlib checkpoint; delete it and rerun the stage.")
    with pytest.raises(CheckpointError, match="cannot load as a state dict"):
        resolve_weights(str(evil), verbose=False)  # a backbone weights file, same loader rules
    assert not marker.exists()
    # A finished stage whose model.pt was swapped, with the hash in metrics.json updated to match.
    folder = stage_dir(tmp_path / "run", "emotion_conv5", 0)
    folder.mkdir(parents=True)
    shutil.copy(evil, folder / "model.pt")
    (folder / "metrics.json").write_text(json.dumps({"model_sha256": checkpoints.file_sha256(evil), "result": {}}))
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_stage_model(tmp_path / "run", "emotion_conv5", 0, task="emotion")
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # the proof that the payload is live: unsafe loading runs it
    assert marker.exists()


def test_checkpoint_of_another_task_or_model_is_refused(tmp_path: Path) -> None:
    """A valid artlib file of another task, kind or architecture is refused, saying what it is and what was expected."""
    path = tmp_path / "model.pt"
    checkpoints.save(path, {"meta": checkpoints.make_meta(kind="model", stage="genre_conv4", task="genre")})
    with pytest.raises(CheckpointError) as info:
        checkpoints.load(path, expect={"kind": "model", "task": "emotion"})
    assert str(info.value) == (f"{path}: is a checkpoint for task='genre', but task='emotion' was expected. "
                               f"Point to the right stage's checkpoint (or rerun the stage).")
    with pytest.raises(CheckpointError, match="is a checkpoint for kind='model', but kind='checkpoint'"):
        checkpoints.load(path, expect={"kind": "checkpoint"})
    checkpoints.save(path, {"meta": {**checkpoints.make_meta(), "arch": "torchvision.vit_b_16"}})
    with pytest.raises(CheckpointError, match="architecture 'torchvision.vit_b_16', expected 'torchvision.resnet50'"):
        checkpoints.load(path)


def _flip_bytes_inside_largest_record(path: Path) -> str:
    """Overwrite bytes in the middle of the file's largest zip record (a tensor); returns the record's name."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    with open(path, "r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", fh.read(4))
        fh.seek(info.header_offset + 30 + name_len + extra_len + info.file_size // 2)
        fh.write(b"garbage")
    return info.filename


def test_changed_bytes_inside_a_checkpoint_are_detected(tmp_path: Path) -> None:
    """torch.load would load changed tensor bytes silently; the zip CRCs catch them, for checkpoints and weights files."""
    path = tmp_path / "model.pt"
    checkpoints.save(path, {"meta": checkpoints.make_meta(kind="model"), "w": torch.arange(100_000.0)})
    assert checkpoints.load(path)["w"].sum() == torch.arange(100_000.0).sum()
    record = _flip_bytes_inside_largest_record(path)
    assert torch.load(path, weights_only=True)["w"].sum() != torch.arange(100_000.0).sum()  # silently wrong
    with pytest.raises(CheckpointError) as info:
        checkpoints.load(path)
    assert str(info.value).startswith(f"{path}: damaged: the bytes of record {record!r} changed after the file "
                                      f"was written (CRC mismatch")
    weights = tmp_path / "resnet50.pth"
    torch.save(torchvision_resnet50_state(), weights)
    _flip_bytes_inside_largest_record(weights)
    with pytest.raises(CheckpointError, match=r"resnet50.pth: damaged: the bytes of record '.*' changed"):
        resolve_weights(str(weights), verbose=False).load_state_dict()


def test_a_compressed_zip_record_is_checked_too(tmp_path: Path) -> None:
    """torch writes its records stored; a zip whose records are deflated (e.g. re-packed by a zip tool) is checked
    record by record as well: intact it passes, changed bytes inside a record are named."""
    import zipfile

    from artlib.models.checkpoints import verify_zip

    path = tmp_path / "weights.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data/0", np.random.default_rng(0).integers(0, 4, 200_000, dtype=np.uint8).tobytes())
        archive.writestr("archive/data.pkl", b"not checked for meaning, only for its CRC")
    verify_zip(path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("archive/data/0")
    with open(path, "r+b") as fh:
        fh.seek(info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2)
        fh.write(b"garbage")
    with pytest.raises(CheckpointError, match=r"weights.pth: damaged: the bytes of record 'archive/data/0' changed"):
        verify_zip(path)


def test_a_weights_file_gives_the_same_tensors_with_its_records_stored_or_deflated(tmp_path: Path) -> None:
    """A weights file gives the same tensors, read or mapped into memory, whether its records are stored, as torch
    writes them, or deflated by a zip tool (``torch.load(mmap=True)`` would take a deflated record's bytes as they
    are: such a file is read), or it is in torch's older, non-zip format (read), or a .safetensors file."""
    import zipfile

    from artlib.models.weights import read_state_file

    state = {"a.weight": torch.randn(64, 3, 3, 3, generator=torch.Generator().manual_seed(0)), "a.bias": torch.arange(5.0)}
    stored, deflated, legacy = tmp_path / "stored.pth", tmp_path / "deflated.pth", tmp_path / "legacy.pth"
    torch.save(state, stored)
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "plain.safetensors"))
    with zipfile.ZipFile(stored) as src, zipfile.ZipFile(deflated, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    for path in (stored, deflated, legacy, tmp_path / "plain.safetensors"):
        for mapped in (False, True):
            back = read_state_file(path, mapped)
            assert back.keys() == state.keys() and all(torch.equal(back[k], v) for k, v in state.items())


def torchvision_resnet50_state() -> dict[str, torch.Tensor]:
    """A randomly initialised torchvision ResNet50 state dict (a stand-in for a downloaded weights file)."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet50().state_dict()


@pytest.mark.parametrize("damage", ["truncated", "flipped-bytes", "garbage", "code", "other-stage", "slot-changed",
                                    "slot-missing", "earlier-artlib"])
def test_damaged_checkpoint_is_ignored_and_the_stage_restarts(tiny_data: tuple[Path, Path], tmp_path: Path,
                                                              clean_run: Path, damage: str,
                                                              capsys: pytest.CaptureFixture) -> None:
    """An unusable checkpoint.pt, or a changed or missing slot file it points to, is reported and ignored; the stage
    trains from epoch 1 to the clean run's result."""
    run_dir = new_run_dir(tiny_data[1], tmp_path / "run")
    folder = stage_dir(run_dir, "emotion_conv5", 0)
    marker = tmp_path / "code-ran"
    slot = folder / "checkpoint-slot0-1.safetensors"  # the second half of epoch 1's weights and Adam state
    if damage in ("truncated", "flipped-bytes", "other-stage", "slot-changed", "slot-missing", "earlier-artlib"):
        with pytest.raises(RuntimeError, match="simulated failure after epoch 1"):
            train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False, on_epoch_end=crash_after(1))
        ck = folder / "checkpoint.pt"
        if damage == "truncated":
            ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
        elif damage == "flipped-bytes":  # e.g. a disk error: torch.load alone would resume from wrong weights
            _flip_bytes_inside_largest_record(ck)
        elif damage == "slot-changed":  # safetensors has no checksum: the record's CRC32 of the slot catches it
            with open(slot, "r+b") as fh:
                fh.seek(slot.stat().st_size // 2)
                fh.write(b"garbage")
        elif damage == "slot-missing":
            slot.unlink()
        elif damage == "earlier-artlib":  # one file held everything before the slots: refused, not half-resumed
            payload = torch.load(ck, weights_only=True)
            payload["trainable_state"], payload["optimizer"] = {}, {}
            del payload["state"], payload["best_slot"]
            checkpoints.save(ck, payload)
        else:  # a valid checkpoint, but of another stage (copied by hand into the wrong folder)
            payload = torch.load(ck, weights_only=True)
            payload["meta"]["stage"] = "emotion_conv4"
            torch.save(payload, ck)
    else:
        folder.mkdir(parents=True)
        if damage == "garbage":
            (folder / "checkpoint.pt").write_bytes(os.urandom(4096))
        else:
            _plant(folder / "checkpoint.pt", marker)
    capsys.readouterr()
    train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    out = capsys.readouterr().out
    expected = {"truncated": "cannot be loaded safely", "garbage": "cannot be loaded safely",
                "flipped-bytes": "damaged: the bytes of record",
                "code": "cannot be loaded safely (UnpicklingError",
                "other-stage": "is a checkpoint for stage='emotion_conv4', but stage='emotion_conv5' was expected",
                "slot-changed": f"{slot}: damaged: its bytes changed after they were written",
                "slot-missing": f"{slot}: missing (the checkpoint refers to it)",
                "earlier-artlib": "written by an earlier artlib (one file, no slots); it is not resumed"}
    where = "" if damage.startswith("slot") else f"{folder / 'checkpoint.pt'}: "  # the slot messages name the slot
    assert f"ignoring checkpoint checkpoint.pt (training from epoch 1 instead): {where}{expected[damage]}" in out
    assert "resuming" not in out
    assert json.loads((folder / "metrics.json").read_text())["resumed_from_epoch"] == 0
    assert result_row(run_dir, "emotion_conv5") == result_row(clean_run, "emotion_conv5")
    assert not marker.exists()
    assert not (folder / "checkpoint.pt").exists()


# --- results.csv ---------------------------------------------------------------------------------

def _fake_stage(run_dir: Path, stage: str, seed: int, accuracy: float) -> dict:
    """Write a finished stage's metrics.json with a minimal results row; returns the row."""
    row = {"stage": stage, "seed": seed, "accuracy": accuracy, "task": "emotion"}
    folder = stage_dir(run_dir, stage, seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({"result": row}))
    return row


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_get_the_modes_of_ordinary_files(tmp_path: Path, umask: int) -> None:
    """Results shared with collaborators: atomic files and folders follow the umask, not mkstemp's 0600/0700."""
    old = os.umask(umask)
    try:
        write_text(tmp_path / "history.csv", "a\n")
        write_json(tmp_path / "history.csv", {"b": 1})  # a replaced file gets the mode too
        with atomic_dir(tmp_path / "layout", "layout", "--export-layout") as folder:
            (folder / "x.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "history.csv").stat().st_mode & 0o777 == 0o666 & ~umask
    assert json.loads((tmp_path / "history.csv").read_text()) == {"b": 1}
    assert (tmp_path / "layout").stat().st_mode & 0o777 == 0o777 & ~umask
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries left


def test_upsert_replaces_by_stage_and_seed(tmp_path: Path) -> None:
    """A rerun replaces its (stage, seed) row, keeps the others, never duplicates; rows come in study order."""
    results.upsert(tmp_path, [{"stage": "emotion_conv5", "seed": 0, "accuracy": 0.5},
                              {"stage": "genre_conv4", "seed": 0, "accuracy": 0.4}])
    results.upsert(tmp_path, [{"stage": "emotion_conv5", "seed": 1, "accuracy": 0.6}])
    results.upsert(tmp_path, [{"stage": "emotion_conv5", "seed": np.int64(0), "accuracy": 0.7}])
    results.upsert(tmp_path, [{"stage": "emotion_conv5", "seed": 0, "accuracy": 0.8}])
    table = results.read_results(tmp_path)
    assert table[["stage", "seed", "accuracy"]].values.tolist() == [
        ["genre_conv4", 0, 0.4], ["emotion_conv5", 0, 0.8], ["emotion_conv5", 1, 0.6]]


def _hammer(run_dir: str, worker: int, n: int) -> None:
    """Process body: upsert n rows of its own stage, each twice (a rerun), one call at a time."""
    for seed in range(n):
        for attempt in range(2):
            results.upsert(run_dir, [{"stage": f"stage_w{worker}", "seed": seed, "accuracy": attempt,
                                      "task": "emotion"}])


def test_concurrent_upserts_keep_every_row_once(tmp_path: Path) -> None:
    """Four processes upserting at once: every (stage, seed) row is present exactly once, with its last value."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    workers, n = 4, 8
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), w, n)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * workers
    table = results.read_results(tmp_path)
    assert len(table) == workers * n
    assert sorted(zip(table["stage"], table["seed"])) == sorted((f"stage_w{w}", s) for w in range(workers)
                                                                for s in range(n))
    assert set(table["accuracy"]) == {1}
    assert not list(tmp_path.glob("results.csv.damaged-*"))
    assert not list(tmp_path.glob(".results.csv.*"))  # no temporary file left behind


@pytest.mark.parametrize("damage", [b"\x00\xff\xfe\x00garbage", b"garbage\n", b"",
                                    b'stage,seed,accuracy\n"emotion_conv5,0,0.5\n',
                                    b"stage,seed,accuracy\nemotion_conv5,zero,0.5\n"],
                         ids=["binary", "one-garbage-line", "empty", "broken-quote", "bad-seed"])
@pytest.mark.parametrize("reader", ["upsert", "read_results"])
def test_damaged_results_are_set_aside_and_rebuilt(tmp_path: Path, damage: bytes, reader: str,
                                                   capsys: pytest.CaptureFixture) -> None:
    """A damaged results.csv is kept aside (bytes intact) and rebuilt from every stage's metrics.json."""
    rows = [_fake_stage(tmp_path, "genre_conv4", 0, 0.4), _fake_stage(tmp_path, "emotion_conv5", 0, 0.6),
            _fake_stage(tmp_path, "emotion_conv5", 1, 0.65)]
    results.upsert(tmp_path, rows)
    (tmp_path / "results.csv").write_bytes(damage)
    if reader == "upsert":
        table = results.upsert(tmp_path, [_fake_stage(tmp_path, "emotion_conv4", 0, 0.7)])
        expected = [("genre_conv4", 0, 0.4), ("emotion_conv5", 0, 0.6), ("emotion_conv5", 1, 0.65),
                    ("emotion_conv4", 0, 0.7)]
    else:
        table = results.read_results(tmp_path)
        expected = [("genre_conv4", 0, 0.4), ("emotion_conv5", 0, 0.6), ("emotion_conv5", 1, 0.65)]
    assert list(zip(table["stage"], table["seed"], table["accuracy"])) == expected
    on_disk = pd.read_csv(tmp_path / "results.csv")
    assert list(zip(on_disk["stage"], on_disk["seed"], on_disk["accuracy"])) == expected
    aside = list(tmp_path.glob("results.csv.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damage
    out = capsys.readouterr().out
    assert f"{tmp_path / 'results.csv'} was unreadable (" in out
    assert f"kept it as {aside[0].name} and rebuilt it from the stage folders" in out


def test_a_copy_of_a_stage_run_in_a_folder_of_its_own_is_not_taken_for_another_backbone(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Rebuilding results.csv, a stage-run folder copied to stages/<stage>/backup/ is left out (loudly), not read as
    the results of a backbone called 'backup'."""
    rows = [_fake_stage(tmp_path, "emotion_conv5", 0, 0.6), _fake_stage(tmp_path, "emotion_conv5", 1, 0.65)]
    results.upsert(tmp_path, rows)
    shutil.copytree(stage_dir(tmp_path, "emotion_conv5", 0), stage_dir(tmp_path, "emotion_conv5", 0).parent / "backup"
                    / "seed_0")
    (tmp_path / "results.csv").write_bytes(b"garbage\n")  # damaged: rebuilt from the stage folders
    table = results.read_results(tmp_path)
    assert list(zip(table["stage"], table["seed"], table["backbone"])) == [("emotion_conv5", 0, "resnet50"),
                                                                        ("emotion_conv5", 1, "resnet50")]
    assert "holds the results of emotion_conv5 (seed 0, resnet50), not of the folder it is in" in capsys.readouterr().out


def test_rerun_of_a_finished_stage_restores_its_lost_row(clean_run: Path, tmp_path: Path) -> None:
    """Deleting results.csv loses nothing: rerunning a finished stage puts its row back, unchanged, once."""
    run_dir = tmp_path / "run"
    shutil.copytree(clean_run, run_dir)
    (run_dir / "results.csv").unlink()
    train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    assert len(results.read_results(run_dir)) == 1
    assert result_row(run_dir, "emotion_conv5") == result_row(clean_run, "emotion_conv5")


# --- disk problems -------------------------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="needs POSIX permissions that bind a non-root user (root writes to read-only folders)")
def test_read_only_folder_real_permissions(tmp_path: Path) -> None:
    """With real permissions: a read-only folder is a DataError naming it."""
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(DataError, match=f"^{re.escape(str(tmp_path / 'stages'))}: cannot write here"):
            check_writable(tmp_path / "stages", "write", "choose another run_dir")
    finally:
        tmp_path.chmod(0o755)


def _deny_writes_under(monkeypatch: pytest.MonkeyPatch, top: Path) -> None:
    """Make mkdir and write_bytes under ``top`` fail with EACCES, as in a read-only folder (works as root too)."""
    real_mkdir, real_write = pathlib.Path.mkdir, pathlib.Path.write_bytes

    def inside(path: Path) -> bool:
        """Whether ``path`` lies under the read-only folder."""
        return top == path or top in path.parents

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        """mkdir refusing inside ``top`` (existing folders still pass with exist_ok, like the OS)."""
        if inside(self) and not (self.is_dir() and kwargs.get("exist_ok")):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    def write_bytes(self: Path, data: bytes) -> int:
        """write_bytes refusing inside ``top``."""
        if inside(self):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_write(self, data)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)


@pytest.mark.parametrize("readonly", ["run_dir", "stage_folder"])
def test_read_only_run_dir_stops_before_training(tiny_data: tuple[Path, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, readonly: str) -> None:
    """A run directory (or stage folder) that cannot be written: DataError naming the folder, before any work."""
    run_dir = new_run_dir(tiny_data[1], tmp_path / "run")
    folder = stage_dir(run_dir, "emotion_conv5", 0)
    if readonly == "stage_folder":
        folder.mkdir(parents=True)
    _deny_writes_under(monkeypatch, run_dir if readonly == "run_dir" else folder)
    monkeypatch.setattr(artlib.train.inputs, "build_image_cache", lambda *a, **k: pytest.fail("must stop before caching"))
    monkeypatch.setattr(artlib.train.runner, "train_loop", lambda *a, **k: pytest.fail("must stop before training"))
    with pytest.raises(GridFailure) as info:
        train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    assert isinstance(info.value.__cause__, DataError)
    assert str(info.value.__cause__) == f"{folder}: cannot write here (Permission denied); choose another run_dir."


def test_free_space_message_names_folder_size_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The free-space check passes when the cache fits and otherwise names the folder, the GB and the fixes."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(10 * 10**9, 8.5 * 10**9, 1.5 * 10**9))
    _check_free_space(tmp_path, 10**9)
    with pytest.raises(DataError) as info:
        _check_free_space(tmp_path, 5 * 10**9)
    assert str(info.value) == (f"{tmp_path}: the feature cache needs 5.0 GB (5,000,000,000 bytes) but only 1.5 GB "
                               f"are free; free space, use a smaller image_size, or set feature_cache=False.")


def test_full_disk_stops_before_caching_and_training(tiny_data: tuple[Path, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk: the image cache is not started (no half-written file), a DataError says how much it needs."""
    run_dir = new_run_dir(tiny_data[1], tmp_path / "run")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(10**12, 10**12, 0))
    monkeypatch.setattr(artlib.train.runner, "train_loop", lambda *a, **k: pytest.fail("must stop before training"))
    n = len(read_manifest(run_dir / "manifest.csv"))
    with pytest.raises(GridFailure) as info:
        train_one("emotion_conv5", run_dir, TINY, seed=0, progress=False)
    need = cache_bytes((n, 32, 32, 3), np.uint8)
    assert isinstance(info.value.__cause__, DataError)
    assert str(info.value.__cause__) == (f"{run_dir / 'cache'}: the image cache needs {need / 1e9:.1f} GB ({need:,} bytes) but "
                               f"only 0.0 GB are free; free space, choose a run_dir on a larger disk, or use a smaller "
                               f"image_size.")
    assert not [p for p in (run_dir / "cache").iterdir() if p.suffix in (".npy", ".json")]


def test_full_disk_does_not_block_resuming_with_complete_caches(tiny_data: tuple[Path, Path], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    """Caches already built need no new space: a stage resumes on a full disk; only a missing cache is refused."""
    config = TrainConfig(**{**TINY.__dict__, "epochs": 3})
    run_dir = new_run_dir(tiny_data[1], tmp_path / "run")
    with pytest.raises(RuntimeError, match="after epoch 1"):
        train_one("emotion_conv5", run_dir, config, seed=0, progress=False, on_epoch_end=crash_after(1))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(10**12, 10**12, 0))
    capsys.readouterr()
    with pytest.raises(RuntimeError, match="after epoch 2"):
        train_one("emotion_conv5", run_dir, config, seed=0, progress=False, on_epoch_end=crash_after(2))
    assert "resuming from epoch 1 of 3" in capsys.readouterr().out
    for f in (run_dir / "cache").glob("features_*"):
        f.unlink()
    with pytest.raises(GridFailure) as info:
        train_one("emotion_conv5", run_dir, config, seed=0, progress=False)
    assert re.fullmatch(f"{re.escape(str(run_dir / 'cache'))}: the feature cache needs .* but only 0.0 GB are free; "
                        f"free space, use a smaller image_size, or set feature_cache=False.", str(info.value.__cause__))
    assert checkpoints.load(stage_dir(run_dir, "emotion_conv5", 0) / "checkpoint.pt")["epoch"] == 2
    assert not list((run_dir / "cache").glob(".features_*"))  # the refused build left no temporary file
