"""Resuming a stage-run: an epoch's state written to a free slot, on disk while validation runs, then a small record.

After every epoch but the last, a slot and the record make the checkpoint:

* a **slot** (``checkpoint-slot<i>-<j>.safetensors``, slot i in 0‥2, part j in 0‥1): the trainable weights and
  Adam's state as they are after the epoch's training pass, written right after it as two files of about equal
  size, one per core (:mod:`artlib.models.tensorfile`: in place, each with its CRC32); a background thread waits
  for the disk (fsync) while the validation pass runs.
* the **record** (``checkpoint.pt``, atomic, fsynced, written once the slot is durable): the epoch, history,
  best epoch and score, RNG states, Adam's hyper-parameters, and which slots hold the current and the best
  epoch's state with their files' sizes and CRC32s.

The record names at most two slots; the next epoch writes into the third, so what the last durable record
points to is never overwritten. A run killed at any moment resumes from the last record, which is complete
before the next epoch starts, and ends exactly as an uninterrupted run (tests/test_interrupt.py).

Slots no record will name again are deleted in a background thread: after the record before the last epoch (which
writes no slot), and after the last epoch, when :func:`finish` writes a record saying that training is over and
naming only the best epoch's slot, so the results can be computed (and a run killed meanwhile resumes straight to
them) while the other slots go. Whatever reads or removes this checkpoint next waits for such a thread first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from artlib import rundir
from artlib.errors import CheckpointError
from artlib.models import checkpoints, tensorfile
from artlib.models.backbone import ArtNet

log = logging.getLogger(__name__)
SLOTS = 3  # the record names at most two (current and best): one is always free for the next epoch
PARTS = 2  # files per slot, written in parallel (one file's writes are serialised by the file system)


@dataclass
class Best:
    """The best epoch so far, its monitored score, its trainable weights and the slot holding them on disk."""

    epoch: int = 0
    score: float | None = None
    state: dict[str, torch.Tensor] | None = None
    slot: dict[str, Any] | None = None

    def improves(self, score: float, mode: str) -> bool:
        """Whether ``score`` beats the best one in the monitored direction."""
        return self.score is None or (score < self.score if mode == "min" else score > self.score)


@dataclass
class Progress:
    """Where a (possibly resumed) loop stands, and the slot holding its last epoch's state."""

    history: list[dict[str, float]]
    best: Best = field(default_factory=Best)
    start_epoch: int = 1
    train_seconds: float = 0.0
    current: dict[str, Any] | None = None

    def busy_slots(self) -> set[int]:
        """The slots the last record points to (never overwritten before the next record)."""
        return {s["slot"] for s in (self.current, self.best.slot) if s is not None}


def trainable_state(model: ArtNet, copy: bool = True) -> dict[str, torch.Tensor]:
    """Weights and buffers of the trainable blocks and the head (what training changes); copies unless told not to."""
    keys = model.trainable_keys()
    state = {k: v.detach() for k, v in model.state_dict().items() if k in keys}
    return {k: v.cpu().clone() for k, v in state.items()} if copy else state


def copy_trainable(model: ArtNet, into: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """A CPU copy of the trainable state, written into ``into``'s tensors where they match (the previous best epoch's,
    superseded: no new memory to allocate and fault in), else into new ones."""
    state = trainable_state(model, copy=False)
    if into is None or into.keys() != state.keys() or any(
            into[k].shape != v.shape or into[k].dtype != v.dtype or into[k].device.type != "cpu" for k, v in state.items()):
        return trainable_state(model)
    for key, value in state.items():
        into[key].copy_(value)
    return into


def remove(checkpoint: Path) -> None:
    """Delete a stage-run's checkpoint: the record first (without it the slots are never read), then the slots
    (also those an earlier artlib wrote as one file each)."""
    _wait_for_removal(checkpoint)
    checkpoint.unlink(missing_ok=True)
    for path in [*_slot_files(checkpoint, range(SLOTS)), *(_one_file_slot(checkpoint, slot) for slot in range(SLOTS))]:
        path.unlink(missing_ok=True)


def finish(path: Path, meta: dict[str, Any], optimizer: torch.optim.Optimizer, state: Progress) -> threading.Thread | None:
    """After the last epoch, where the best epoch's state is in a slot: write a record saying that training is over,
    naming that slot alone, and delete the other slots in a background thread (returned) while the results are
    computed. A run killed before its results are written then resumes straight to them, not to the last epoch.
    Where the best epoch is the last one, which writes no slot, nothing is done (None)."""
    if state.best.slot is None or not state.history:
        return None
    state.current = state.best.slot
    save_record(path, meta, int(state.history[-1]["epoch"]), optimizer, state, stopped=True)
    return remove_free_slots(path, state.busy_slots())


def remove_free_slots(checkpoint: Path, busy: set[int]) -> threading.Thread:
    """Delete the files of the slots the last record does not name, in a background thread (call once no epoch will
    write a slot again). Freeing a written file's blocks waits for the disk (0.03 s per 180 MB on the README's
    machine, a fifth of it CPU time): the last epoch's training hides it. A file that cannot be deleted is left
    to :func:`remove`, which reports it."""
    where = Path(_key(checkpoint))  # (absolute: a later change of the working directory cannot redirect the thread)
    _wait_for_removal(checkpoint)
    thread = threading.Thread(target=_unlink_quietly, args=(_slot_files(where, sorted(set(range(SLOTS)) - busy)),),
                              name="artlib-slot-removal", daemon=True)
    with _REMOVING_LOCK:
        thread.start()
        _REMOVING[str(where)] = thread
    return thread


_REMOVING: dict[str, threading.Thread] = {}  # per checkpoint, its last background deletion
_REMOVING_LOCK = threading.Lock()


def _key(checkpoint: Path) -> str:
    """The checkpoint's absolute path: the same file however the run directory was spelled."""
    return os.path.abspath(checkpoint)


def _wait_for_removal(checkpoint: Path) -> None:
    """Wait for the background deletion of this checkpoint's slots, if one was started (nothing may write, read or
    remove its slots meanwhile: e.g. a rerun in the same process right after a failure)."""
    with _REMOVING_LOCK:
        thread = _REMOVING.pop(_key(checkpoint), None)
    if thread is not None:
        thread.join()


def _slot_files(checkpoint: Path, slots: Iterable[int]) -> list[Path]:
    """Every file of these slots (both parts of each)."""
    return [rundir.checkpoint_slot(checkpoint, slot, part) for slot in slots for part in range(PARTS)]


def _unlink_quietly(paths: list[Path]) -> None:
    """Delete these files where they exist, leaving any that cannot be deleted."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _one_file_slot(checkpoint: Path, slot: int) -> Path:
    """Where an earlier artlib wrote a slot as one file (its records are still resumed)."""
    return checkpoint.with_name(f"{checkpoint.stem}-slot{int(slot)}.safetensors")


class SlotWriter:
    """Writes the model's trainable state and the optimizer's state into a free slot; the disk is waited for in a
    background thread."""

    def __init__(self, checkpoint: Path, busy: set[int], model: ArtNet, optimizer: torch.optim.Optimizer) -> None:
        """Write the bytes now, on both cores (call right after the training pass), then let a thread wait for the
        disk while the caller validates; the tensors may change once this returns."""
        self.slot = min(set(range(SLOTS)) - busy)
        tensors = {f"model.{k}": v for k, v in trainable_state(model, copy=False).items()}
        for index, values in optimizer.state_dict()["state"].items():
            for name, value in values.items():
                if not torch.is_tensor(value):  # (Adam keeps tensors only; another optimizer's state would be lost)
                    raise TypeError(f"optimizer state {index}.{name} is a {type(value).__name__}, not a tensor")
                tensors[f"optim.{index}.{name}"] = value
        if any(t.device.type != "cpu" for t in tensors.values()):  # a GPU's tensors: copied to be written
            tensors = {k: v.detach().cpu() for k, v in tensors.items()}
        # Written here, not beside validation: on a machine whose cores validation uses, a thread copying and
        # checksumming 180 MB stalls both of validation's threads for longer than its own CPU time (1.3-1.6x,
        # measured on 2 cores). What overlaps validation is the wait for the disk, which uses little CPU.
        unsynced = tensorfile.start_write_parts(_slot_files(checkpoint, [self.slot]), tensors)
        try:
            self._result: list[tensorfile.Written] | BaseException | None = None
            self._thread = threading.Thread(target=self._run, args=(unsynced,), name="artlib-checkpoint", daemon=True)
            self._thread.start()
        except BaseException:  # e.g. Ctrl-C right here: the files are given up (once, whoever comes first)
            for file in unsynced:
                file.close()
            raise

    def _run(self, unsynced: list[tensorfile.Unsynced]) -> None:
        """The thread: wait for the disk, keeping the outcome (or the first error) for wait()."""
        try:
            self._result = [file.sync() for file in unsynced]
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread by wait())
            for file in unsynced:
                file.close()  # those not synced yet (a no-op for the others)
            self._result = exc

    def __enter__(self) -> SlotWriter:
        """The writer, for a ``with`` block whose exit on an error waits for it."""
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        """On an error or interrupt in the block, wait for the thread (its own error dropped) before it passes on, so
        no thread is left holding the slot's file while the caller, e.g. a notebook, goes on."""
        if kind is not None:
            self.join_quietly()

    def join_quietly(self) -> None:
        """Wait for the thread, whatever it ends with, even through further interrupts."""
        tensorfile.join_through_interrupts(self._thread, reraise=False)

    def wait(self) -> dict[str, Any]:
        """Block until the slot is durable; its number and its files' sizes and CRC32s (re-raises the thread's
        error)."""
        self._thread.join()
        result = self._result
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        return {"slot": self.slot, "parts": [{"bytes": file.nbytes, "crc32": file.crc32} for file in result]}


def save_record(path: Path, meta: dict[str, Any], epoch: int, optimizer: torch.optim.Optimizer, state: Progress,
                stopped: bool) -> None:
    """Atomically write the epoch's record (its slot must be durable already)."""
    best = state.best
    checkpoints.save(path, {
        "meta": meta, "epoch": epoch, "state": state.current, "best_slot": best.slot,
        "param_groups": optimizer.state_dict()["param_groups"], "history": list(state.history),
        "best_epoch": best.epoch, "best_score": best.score, "rng": _rng_state(),
        "train_seconds": state.train_seconds, "stopped": stopped})


def load(path: Path, meta: dict[str, Any], model: ArtNet, optimizer: torch.optim.Optimizer, epochs: int) -> Progress:
    """The state of an earlier run of this stage from its checkpoint, or a fresh start (loudly, if damaged)."""
    _wait_for_removal(path)
    if not path.is_file():
        return Progress(history=[])
    try:
        ck = checkpoints.load(path, expect={k: meta[k] for k in ("kind", "config_hash", "task", "stage")})
        current, best_state = _read_states(path, ck)
    except Exception as exc:  # noqa: BLE001 (damaged or stale: start over, loudly)
        log.warning("ignoring checkpoint %s (training from epoch 1 instead): %s", path.name, exc)
        return Progress(history=[])
    model.load_state_dict({**model.state_dict(), **current["model"]})
    optimizer.load_state_dict(current["optimizer"])
    _set_rng_state(ck["rng"])
    start = epochs + 1 if ck.get("stopped") else int(ck["epoch"]) + 1
    log.info("resuming from epoch %d of %d (%s)%s", int(ck["epoch"]), epochs, path,
             ": training had ended, to the results" if ck.get("stopped") else "")
    best = Best(ck["best_epoch"], ck["best_score"], best_state, ck.get("best_slot"))
    return Progress(list(ck["history"]), best, start, float(ck.get("train_seconds", 0.0)), ck.get("state"))


def _read_states(path: Path, ck: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The current epoch's model and optimizer state and the best epoch's weights, from the slots the record names."""
    if "state" not in ck:
        raise CheckpointError(f"{path}: written by an earlier artlib (one file, no slots); it is not resumed.")
    if not ck.get("best_slot") and ck["best_epoch"] != ck["epoch"]:
        raise CheckpointError(f"{path}: names no slot for its best epoch {ck['best_epoch']}.")
    slots = {ck["state"]["slot"]: ck["state"], **({ck["best_slot"]["slot"]: ck["best_slot"]} if ck["best_slot"] else {})}
    read = {i: _read_slot(path, s) for i, s in slots.items()}
    tensors = read[ck["state"]["slot"]]
    optim: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            optim.setdefault(int(index), {})[name] = value
    current = {"model": _model_part(tensors), "optimizer": {"state": optim, "param_groups": ck["param_groups"]}}
    best = read[ck["best_slot"]["slot"]] if ck["best_slot"] else tensors
    return current, _model_part(best)


def _read_slot(checkpoint: Path, slot: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of a slot the record names, from its files (each checked against its recorded size and CRC32)."""
    if "parts" not in slot:  # written by an earlier artlib: one file
        return tensorfile.read(_one_file_slot(checkpoint, slot["slot"]), slot["crc32"], slot["bytes"])
    tensors: dict[str, torch.Tensor] = {}
    for part, file in enumerate(slot["parts"]):
        tensors.update(tensorfile.read(rundir.checkpoint_slot(checkpoint, slot["slot"], part), file["crc32"],
                                       file["bytes"]))
    return tensors


def _model_part(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's entries of a slot, under their state-dict names."""
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


def _rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in a weights_only-loadable form."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "numpy_pos": int(np_state[2]), "python": list(random.getstate()[1])}


def _set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`_rng_state` saved."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))
