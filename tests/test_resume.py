"""The per-epoch checkpoint: slots written in place with their CRC32, rotated so the last record's slots survive.

The stage-level resume tests (SIGKILL mid-epoch, a crash after an epoch, damaged files) are in test_interrupt.py,
test_training.py and test_crash_safety.py; these check the layout itself, including a best epoch older than the
current one, which the short stage runs there may not reach.
"""

from __future__ import annotations

import errno
import os
import re
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from artlib.errors import CheckpointError, DataError
from artlib.models import checkpoints, tensorfile
from artlib.models.crc32 import crc32
from artlib.models.backbone import ArtNet
from artlib.train import resume
from artlib.train.loop import make_adam

META = checkpoints.make_meta(kind="checkpoint", config_hash="h", task="emotion", stage="emotion_conv5")


def test_a_tensor_file_gives_back_the_same_bytes_dtypes_and_layouts(tmp_path: Path) -> None:
    """Every stored dtype, a 0-d tensor and a channels-last weight come back bit-identical, in the same layout;
    rewriting a file in place with less data cuts it to the new size."""
    g = torch.Generator().manual_seed(0)
    tensors = {"w": torch.randn(8, 3, 3, 3, generator=g).to(memory_format=torch.channels_last),
               "b": torch.randn(5, generator=g).to(torch.bfloat16), "h": torch.randn(4, generator=g).half(),
               "step": torch.tensor(7.0), "n": torch.tensor(3, dtype=torch.int64), "mask": torch.tensor([True, False]),
               "u": torch.arange(6, dtype=torch.uint8).reshape(2, 3)}
    path = tmp_path / "t.safetensors"
    big = tensorfile.write(path, {**tensors, "extra": torch.zeros(10_000)})
    written = tensorfile.write(path, tensors)
    assert written.nbytes == path.stat().st_size < big.nbytes
    back = tensorfile.read(path, written.crc32, written.nbytes)
    assert set(back) == set(tensors)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and back[name].shape == t.shape and back[name].stride() == t.stride()
        assert torch.equal(back[name], t)  # no NaN or -0.0 among them: equal values are equal bytes
    with pytest.raises(CheckpointError, match="damaged: its bytes changed"):
        tensorfile.read(path, written.crc32 ^ 1, written.nbytes)


def test_the_fast_crc32_equals_zlibs_for_any_bytes_and_starting_value() -> None:
    """artlib's CRC32 (zlib-ng's where installed) gives zlib.crc32's values: bytes, memoryviews of arrays and of
    slices, empty input, continued from a previous value (as the slot writer does chunk by chunk)."""
    rng = np.random.default_rng(2)
    for n in (0, 1, 15, 16, 63, 64, 65, 4097, 1_000_003):
        array = rng.integers(0, 256, n, dtype=np.uint8)
        for start in (0, 1, 0xFFFFFFFF, int(rng.integers(0, 2**32))):
            assert crc32(array.tobytes(), start) == zlib.crc32(array.tobytes(), start)
            assert crc32(memoryview(array)[n // 3:], start) == zlib.crc32(array[n // 3:].tobytes(), start)
    data = rng.integers(0, 256, 5_000_000, dtype=np.uint8).tobytes()
    chunked = 0
    for lo in range(0, len(data), 1 << 20):
        chunked = crc32(memoryview(data)[lo: lo + (1 << 20)], chunked)
    assert chunked == zlib.crc32(data)


@pytest.mark.parametrize("pwrite", ["os.pwrite", "no os.pwrite (Windows): lseek and write"])
def test_a_state_written_as_parts_records_each_files_crc32_and_gives_every_tensor_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pwrite: str) -> None:
    """start_write_parts writes the tensors as files of about equal size, each from its own thread: the size and
    CRC32 it records for each file are zlib's over the file's bytes, and the files together give every tensor back
    exactly once (one tensor alone, several of either size, one big and one small), also when they overwrite longer
    files in place."""
    if pwrite.startswith("no"):
        monkeypatch.delattr(os, "pwrite")
    g = torch.Generator().manual_seed(1)
    paths = [tmp_path / "t-0.safetensors", tmp_path / "t-1.safetensors"]
    for path in paths:
        path.write_bytes(b"x" * 50_000_000)  # an older, longer file in the part's place
    for tensors in ({"one": torch.randn(300_000, generator=g)},
                    {f"t{i}": torch.randn(int(n), generator=g) for i, n in enumerate((5, 2_000_000, 3, 1_500_000, 9))},
                    {"big": torch.randn(5_000_000, generator=g), "small": torch.zeros(2)}):
        written = [file.sync() for file in tensorfile.start_write_parts(paths, tensors)]
        back: dict[str, torch.Tensor] = {}
        for path, file in zip(paths, written):
            data = path.read_bytes()
            assert (file.path, file.nbytes, file.crc32) == (path, len(data), zlib.crc32(data))
            part = tensorfile.read(path, file.crc32, file.nbytes)
            assert not set(part) & set(back)
            back.update(part)
        assert back.keys() == tensors.keys() and all(torch.equal(v, tensors[k]) for k, v in back.items())


def test_the_parts_are_of_about_equal_size_in_the_tensors_order(tmp_path: Path) -> None:
    """Four tensors of 4 MB each go two to a file, in order; a 10 MB and a 1 MB tensor go one to a file; a lone
    tensor leaves the second file with none (a valid file all the same)."""
    paths = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    cases = [({f"t{i}": torch.full((1_000_000,), float(i)) for i in range(4)}, [["t0", "t1"], ["t2", "t3"]]),
             ({"big": torch.zeros(2_500_000), "small": torch.ones(250_000)}, [["big"], ["small"]]),
             ({"alone": torch.zeros(10)}, [["alone"], []])]
    for tensors, expected in cases:
        written = [file.sync() for file in tensorfile.start_write_parts(paths, tensors)]
        assert [sorted(tensorfile.read(f.path, f.crc32, f.nbytes)) for f in written] == expected


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts this process's open files in /proc")
def test_a_written_file_is_synced_or_given_up_once(tmp_path: Path) -> None:
    """An unsynced file is closed exactly once: given up twice, then synced, it refuses (a bug in the caller) and
    leaves no file open."""
    open_before = len(os.listdir("/proc/self/fd"))
    unsynced = tensorfile.start_write(tmp_path / "t.safetensors", {"w": torch.zeros(10)})
    unsynced.close()
    unsynced.close()
    with pytest.raises(RuntimeError, match="synced or closed already"):
        unsynced.sync()
    assert len(os.listdir("/proc/self/fd")) == open_before


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts this process's open files in /proc")
@pytest.mark.parametrize("failing", [0, 1])
def test_a_full_disk_in_either_part_names_the_file_and_leaves_no_thread_or_open_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: int) -> None:
    """The disk fills up while one part of a slot is written (the first, in this thread, or the second, in its own):
    start_write_parts raises a DataError naming that file, and neither a writing thread nor a file descriptor is
    left. The part held an earlier epoch's state: the rewrite cut short leaves it without a valid header (its length
    is zero)."""
    g = torch.Generator().manual_seed(2)
    tensors = {f"t{i}": torch.randn(500_000, generator=g) for i in range(4)}  # 8 MB: two tensors in each part
    paths = [tmp_path / "slot-0.safetensors", tmp_path / "slot-1.safetensors"]
    for file in tensorfile.start_write_parts(paths, {k: v + 1 for k, v in tensors.items()}):
        file.sync()  # the slot's earlier content, with its headers
    pwrite, target = os.pwrite, paths[failing]

    def full_disk(fd: int, data: memoryview, offset: int) -> int:
        if offset > 0 and os.readlink(f"/proc/self/fd/{fd}") == str(target):  # (not the header)
            raise OSError(errno.ENOSPC, "No space left on device")
        return pwrite(fd, data, offset)

    open_before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(DataError, match=re.escape(f"{target}: could not be written (No space left on device)")):
        tensorfile.start_write_parts(paths, tensors)
    monkeypatch.undo()
    assert not [t for t in threading.enumerate() if t.name == "artlib-tensorfile"]
    assert len(os.listdir("/proc/self/fd")) == open_before
    with target.open("rb") as fh:
        assert fh.read(8) == bytes(8)


def _model_and_adam() -> tuple[ArtNet, torch.optim.Optimizer]:
    """A random ResNet50 with conv5 trainable (channels-last 4-D weights) and its Adam."""
    model = ArtNet.build(2, None, seed=0, image_size=32).freeze_all().unfreeze("conv5")
    return model, make_adam([p for p in model.parameters() if p.requires_grad], 1e-3, 0.0)


def _epoch(model: ArtNet, optimizer: torch.optim.Optimizer, epoch: int) -> None:
    """A stand-in for a training pass: one Adam step on gradients made from the epoch number."""
    g = torch.Generator().manual_seed(epoch)
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.randn(p.shape, generator=g)
    optimizer.step()


def test_slots_rotate_so_the_records_slots_survive_and_resume_gives_both_states(tmp_path: Path) -> None:
    """Best epochs 1, 1, 1, 4, 4, 6: each epoch writes a slot the last record does not name (three at most), and
    loading any record gives exactly that epoch's weights and Adam state and the best epoch's weights."""
    path = tmp_path / "checkpoint.pt"
    model, optimizer = _model_and_adam()
    state, seen, used = resume.Progress(history=[]), {}, set()
    for epoch, best in enumerate([1, 1, 1, 4, 4, 6], start=1):
        _epoch(model, optimizer, epoch)
        busy = state.busy_slots()
        writer = resume.SlotWriter(path, busy, model, optimizer)
        assert writer.slot not in busy and len(busy) <= 2
        used.add(writer.slot)
        seen[epoch] = (resume.trainable_state(model), {i: {k: v.clone() for k, v in s.items()}
                                                        for i, s in optimizer.state_dict()["state"].items()})
        if best == epoch:
            state.best = resume.Best(epoch, -float(epoch), seen[epoch][0])
        state.history.append({"epoch": epoch})
        state.current = writer.wait()
        state.best.slot = state.current if best == epoch else state.best.slot
        resume.save_record(path, META, epoch, optimizer, state, stopped=False)

        fresh, fresh_adam = _model_and_adam()
        loaded = resume.load(path, META, fresh, fresh_adam, epochs=10)
        assert loaded.start_epoch == epoch + 1 and loaded.best.epoch == best
        got = resume.trainable_state(fresh)
        assert all(torch.equal(got[k], v) and got[k].stride() == v.stride() for k, v in seen[epoch][0].items())
        assert all(torch.equal(loaded.best.state[k], v) for k, v in seen[best][0].items())
        adam = fresh_adam.state_dict()["state"]
        assert all(torch.equal(adam[i][n], v) for i, s in seen[epoch][1].items() for n, v in s.items())
    assert used == {0, 1, 2}  # the old best (epoch 1) kept a slot while epochs 2 and 3 took turns in the others
    resume.remove(path)
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_an_earlier_artlib_wrote_as_one_file_per_slot_still_resumes_and_is_removed(tmp_path: Path) -> None:
    """artlib 0.2 wrote each slot as one file (checkpoint-slot<i>.safetensors) and recorded its size and CRC32: such
    a record still resumes to its epoch's weights and Adam state, and removing the checkpoint deletes that file."""
    path = tmp_path / "checkpoint.pt"
    model, optimizer = _model_and_adam()
    _epoch(model, optimizer, 1)
    weights = resume.trainable_state(model)
    tensors = {**{f"model.{k}": v for k, v in weights.items()},
               **{f"optim.{i}.{n}": v for i, s in optimizer.state_dict()["state"].items() for n, v in s.items()}}
    written = tensorfile.write(tmp_path / "checkpoint-slot0.safetensors", tensors)
    state = resume.Progress(history=[{"epoch": 1}], best=resume.Best(1, -1.0, weights))
    state.current = state.best.slot = {"slot": 0, "bytes": written.nbytes, "crc32": written.crc32}
    resume.save_record(path, META, 1, optimizer, state, stopped=False)
    fresh, fresh_adam = _model_and_adam()
    loaded = resume.load(path, META, fresh, fresh_adam, epochs=10)
    assert loaded.start_epoch == 2 and loaded.best.epoch == 1
    got = resume.trainable_state(fresh)
    assert all(torch.equal(got[k], v) for k, v in weights.items())
    adam = fresh_adam.state_dict()["state"]
    assert all(torch.equal(adam[i][n], v) for i, s in optimizer.state_dict()["state"].items() for n, v in s.items())
    resume.remove(path)
    assert list(tmp_path.iterdir()) == []


def test_the_slots_no_record_will_name_again_are_deleted_and_the_named_ones_kept(tmp_path: Path) -> None:
    """remove_free_slots deletes both files of every slot outside ``busy`` (where they exist) and keeps the others."""
    path = tmp_path / "checkpoint.pt"
    for slot in range(3):
        for part in range(2):
            (tmp_path / f"checkpoint-slot{slot}-{part}.safetensors").write_bytes(b"x" * 1000)
    resume.remove_free_slots(path, {1}).join()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-slot1-0.safetensors",
                                                          "checkpoint-slot1-1.safetensors"]
    resume.remove_free_slots(path, {0, 1}).join()  # nothing left to delete: no error
    assert len(list(tmp_path.iterdir())) == 2


def test_after_the_last_epoch_a_finished_record_names_the_best_slot_alone_and_the_others_go(tmp_path: Path) -> None:
    """Best epoch 1 of 3: finish writes a record saying training is over, naming only epoch 1's slot, deletes the
    other slots' files, and that record resumes to no further epoch with epoch 1's weights; where the best epoch
    has no slot (the last epoch writes none), finish does nothing."""
    path = tmp_path / "checkpoint.pt"
    model, optimizer = _model_and_adam()
    state = resume.Progress(history=[])
    for epoch in (1, 2, 3):
        _epoch(model, optimizer, epoch)
        writer = resume.SlotWriter(path, state.busy_slots(), model, optimizer)
        if epoch == 1:
            state.best = resume.Best(1, -1.0, resume.trainable_state(model))
        state.history.append({"epoch": epoch})
        state.current = writer.wait()
        state.best.slot = state.current if epoch == 1 else state.best.slot
        if epoch < 3:
            resume.save_record(path, META, epoch, optimizer, state, stopped=False)
    best_weights, best_slot = state.best.state, state.best.slot["slot"]
    assert len(list(tmp_path.glob("checkpoint-slot*"))) == 6
    resume.finish(path, META, optimizer, state).join()
    record = checkpoints.load(path)
    assert (record["epoch"], record["stopped"], record["best_epoch"]) == (3, True, 1)
    assert record["state"] == record["best_slot"] == state.best.slot
    assert sorted(p.name for p in tmp_path.glob("checkpoint-slot*")) == [
        f"checkpoint-slot{best_slot}-{part}.safetensors" for part in range(2)]
    fresh, fresh_adam = _model_and_adam()
    loaded = resume.load(path, META, fresh, fresh_adam, epochs=3)
    assert loaded.start_epoch == 4 and loaded.best.epoch == 1 and len(loaded.history) == 3
    assert all(torch.equal(loaded.best.state[k], v) for k, v in best_weights.items())
    state.best = resume.Best(3, -3.0, resume.trainable_state(model))  # the last epoch as the best: no slot holds it
    assert resume.finish(path, META, optimizer, state) is None
    assert checkpoints.load(path)["best_epoch"] == 1  # the record is unchanged


def test_the_best_epochs_copy_reuses_the_superseded_one_and_never_shares_the_models_memory() -> None:
    """copy_trainable writes the trainable state into the previous best epoch's tensors (same memory, the new values,
    the same layout), never into the model's own, so it keeps its values when the model trains on; a previous copy
    that does not fit (other entries) is replaced by new tensors."""
    model, optimizer = _model_and_adam()
    _epoch(model, optimizer, 1)
    first = resume.copy_trainable(model, None)
    memory = {k: v.data_ptr() for k, v in first.items()}
    _epoch(model, optimizer, 2)
    second = resume.copy_trainable(model, first)
    now = resume.trainable_state(model)
    assert {k: v.data_ptr() for k, v in second.items()} == memory
    assert all(torch.equal(second[k], v) and second[k].stride() == v.stride() for k, v in now.items())
    live = {v.data_ptr() for v in resume.trainable_state(model, copy=False).values()}
    assert not live & set(memory.values())
    _epoch(model, optimizer, 3)
    assert all(torch.equal(second[k], v) for k, v in now.items())  # epoch 2's values, after epoch 3
    fresh = resume.copy_trainable(model, {"other": torch.zeros(3)})
    assert fresh.keys() == now.keys() and all(torch.equal(fresh[k], v) for k, v in resume.trainable_state(model).items())


def test_reading_or_removing_a_checkpoint_waits_for_the_deletion_of_its_slots(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A background deletion of slots is waited for by whatever loads or removes that checkpoint next, however its
    path is spelled (here relative, then absolute): nothing reads or writes slots while they are being deleted."""
    monkeypatch.chdir(tmp_path)
    model, optimizer = _model_and_adam()
    unlink = Path.unlink

    def slow_unlink(self: Path, missing_ok: bool = False) -> None:
        if threading.current_thread().name == "artlib-slot-removal":
            started.set()
            threading.Event().wait(0.3)  # a disk that takes its time, for the background deletion only
        unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", slow_unlink)
    for wait in (lambda: resume.remove(tmp_path / "checkpoint.pt"),
                 lambda: resume.load(tmp_path / "checkpoint.pt", META, model, optimizer, epochs=3)):
        for slot in range(3):
            for part in range(2):
                (tmp_path / f"checkpoint-slot{slot}-{part}.safetensors").write_bytes(b"x")
        started = threading.Event()
        thread = resume.remove_free_slots(Path("checkpoint.pt"), {0})
        started.wait()
        wait()
        assert not thread.is_alive()
