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
from artlib.models.crc32 import crc32, crc32_combine
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


def test_crc32_combine_equals_zlibs_crc32_of_the_joined_bytes() -> None:
    """The hand-written CRC32 combination (zlib's crc32_combine, not exposed by Python) against zlib.crc32 of the
    whole, for empty, one-byte and multi-megabyte parts cut anywhere."""
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 4096, 3_000_001):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        for cut in sorted({0, n, int(rng.integers(0, n + 1)), n // 2}):
            assert crc32_combine(zlib.crc32(data[:cut]), zlib.crc32(data[cut:]), n - cut) == zlib.crc32(data)


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


@pytest.mark.parametrize("pwrite", ["os.pwrite, two threads", "no os.pwrite (Windows): lseek and write, one thread"])
def test_a_file_written_in_two_halves_records_the_crc32_of_all_its_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pwrite: str) -> None:
    """start_write writes the halves of a file (from two threads, or one where os.pwrite is missing): the CRC32 it
    records is zlib's over the file's bytes, which give the tensors back (one tensor alone, several on either side of
    the cut, one big and one small), also when it rewrites a longer file in place."""
    if pwrite.startswith("no"):
        monkeypatch.delattr(os, "pwrite")
    g = torch.Generator().manual_seed(1)
    path = tmp_path / "t.safetensors"
    path.write_bytes(b"x" * 50_000_000)  # an older, longer file in the slot's place
    for tensors in ({"one": torch.randn(300_000, generator=g)},
                    {f"t{i}": torch.randn(int(n), generator=g) for i, n in enumerate((5, 2_000_000, 3, 1_500_000, 9))},
                    {"big": torch.randn(5_000_000, generator=g), "small": torch.zeros(2)}):
        written = tensorfile.start_write(path, tensors).sync()
        data = path.read_bytes()
        assert (written.nbytes, written.crc32) == (len(data), zlib.crc32(data))
        back = tensorfile.read(path, written.crc32, written.nbytes)
        assert back.keys() == tensors.keys() and all(torch.equal(v, tensors[k]) for k, v in back.items())


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
@pytest.mark.parametrize("failing", ["first half (this thread)", "second half (its own thread)"])
def test_a_full_disk_in_either_half_names_the_file_and_leaves_no_thread_or_open_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    """The disk fills up while one half of a slot is written, in this thread or in the second half's own: start_write
    raises a DataError naming the file, and neither a writing thread nor a file descriptor of it is left. The slot
    held an earlier epoch's state: the rewrite cut short leaves it without a valid header (its length is zero)."""
    g = torch.Generator().manual_seed(2)
    tensors = {f"t{i}": torch.randn(500_000, generator=g) for i in range(4)}  # 8 MB: two tensors in each half
    path, here, pwrite = tmp_path / "slot.safetensors", threading.current_thread(), os.pwrite
    tensorfile.write(path, {k: v + 1 for k, v in tensors.items()})  # the slot's earlier content, with its header

    def full_disk(fd: int, data: memoryview, offset: int) -> int:
        if offset > 0 and (threading.current_thread() is here) == failing.startswith("first"):  # (not the header)
            raise OSError(errno.ENOSPC, "No space left on device")
        return pwrite(fd, data, offset)

    open_before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(DataError, match=re.escape(f"{path}: could not be written (No space left on device)")):
        tensorfile.start_write(path, tensors)
    monkeypatch.undo()
    assert not [t for t in threading.enumerate() if t.name == "artlib-tensorfile"]
    assert len(os.listdir("/proc/self/fd")) == open_before
    with path.open("rb") as fh:
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
