"""Loading a finished stage-run's model from its run-directory folder (no training code involved)."""

from __future__ import annotations

import os

from artlib import atomic, rundir
from artlib.models import checkpoints
from artlib.models.backbone import ArtNet


def load_stage_model(run_dir: str | os.PathLike[str], stage: str, seed: int, task: str | None = None,
                     split_seed: int = 0, backbone: str = rundir.DEFAULT_BACKBONE) -> tuple[ArtNet, dict]:
    """A finished stage-run's best model (validated: architecture, task, recorded hash) and its metrics."""
    metrics_file = rundir.stage_run(run_dir, stage, seed, split_seed, backbone).metrics
    if not metrics_file.is_file():
        on = f", split {split_seed}" if split_seed else ""
        raise FileNotFoundError(f"{metrics_file.parent}: stage {stage} (seed {seed}{on}) has not finished; run it first.")
    metrics = atomic.read_json(metrics_file, f"retrain {stage} (`python -m artlib train {stage} --force`)")
    expect = {"kind": "model", "stage": stage}
    if task is not None:
        expect["task"] = task
    payload = checkpoints.load(rundir.stage_run(run_dir, stage, seed, split_seed, backbone).model, expect=expect,
                               sha256=metrics.get("model_sha256"))
    meta = payload["meta"]
    model = ArtNet.from_state(len(meta["classes"]), payload["state_dict"], meta["mean"], meta["std"],
                              meta.get("backbone", rundir.DEFAULT_BACKBONE), int(meta.get("image_size", 224)))
    return model.eval(), metrics
