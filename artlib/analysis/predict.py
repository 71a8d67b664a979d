"""Applying trained stages to new artworks: emotion (and era) probabilities, optional Grad-CAM overlays.

    predict_images("runs/demo", ["my_painting.jpg"])                 # best emotion stage of the run
    python -m artlib predict --run-dir runs/demo my_painting.jpg --gradcam-dir out/
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from artlib import atomic
from artlib.errors import DataError
from artlib.data.images import ImageLoadError, load_square
from artlib.results import read_results
from artlib import rundir
from artlib.models.stored import load_stage_model
from artlib.stages import STAGES, dependency_chain, get_stage
from artlib.tasks import EMOTION, TASKS, Task, rows_of


def default_stage(run_dir: Path, task: Task = EMOTION) -> tuple[str, int]:
    """The finished resnet50 stage of ``task`` with the best mean test accuracy, and its lowest seed (predict loads the
    study's backbone)."""
    res = read_results(run_dir)
    res = rows_of(res.loc[res["backbone"] == rundir.DEFAULT_BACKBONE], task) if len(res) else res
    if res.empty:
        raise DataError(f"{run_dir}: no finished {task.name} stage (results.csv); train one first (notebooks 03–05).")
    best = res.groupby("stage")["accuracy"].mean().sort_values(ascending=False).index[0]
    return str(best), int(res.loc[res["stage"] == best, "seed"].min())


def companion_stage(run_dir: Path, stage: str, seed: int, task: Task) -> str | None:
    """A finished stage of another task to report beside the emotion: the stage's own source of that task if it has
    one (its genre stage), else the first finished one in the study's order."""
    chain = [s.name for s in dependency_chain(stage) if task.is_task_of(s.task)]
    others = [s for s, st in STAGES.items() if task.is_task_of(st.task)]
    for name in chain + others:
        if rundir.stage_run(run_dir, name, seed).metrics.is_file():
            return name
    return None


def _probabilities(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """Softmax class probabilities of one uint8 HWC image."""
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(image[None])).float(), dim=1)[0].numpy()


def predict_images(run_dir: str | os.PathLike[str], images: list[str | os.PathLike[str]], stage: str | None = None,
                   seed: int | None = None, gradcam_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Emotion (and, when such stages exist, era and nine-emotion) probabilities per image; unreadable files get an
    error row."""
    run_dir = Path(run_dir)
    if stage is None:
        stage, best_seed = default_stage(run_dir)
        seed = best_seed if seed is None else seed
    seed = 0 if seed is None else seed
    if not get_stage(stage, "--stage").spec.binary_emotion:
        raise ValueError(f"{stage} is not a positive/negative emotion stage; pass one (its genre source is used "
                         f"for eras, a finished nine-emotion stage for the distribution)")
    model, metrics = load_stage_model(run_dir, stage, seed, task=EMOTION.name)
    size = int(metrics["result"]["image_size"])
    extra = {}
    for task in TASKS.values():
        if task.predicts and not task.binary_emotion and (name := companion_stage(run_dir, stage, seed, task)):
            extra[task] = (name, load_stage_model(run_dir, name, seed, task=task.name)[0])
    rows = []
    for path in map(Path, images):
        row: dict = {"image": str(path), "stage": stage, "seed": seed, "error": ""}
        try:
            image = load_square(path, size)
        except ImageLoadError as exc:
            rows.append({**row, "error": f"{exc.reason}: {exc.detail}"})
            continue
        probs = _probabilities(model, image)
        classes = STAGES[stage].classes
        row.update({EMOTION.predicts: classes[int(probs.argmax())],
                    **{f"p_{c}": float(p) for c, p in zip(classes, probs)}})
        for task, (name, other) in extra.items():
            other_probs, other_classes = _probabilities(other, image), STAGES[name].classes
            row.update({task.predicts: other_classes[int(other_probs.argmax())], f"{task.name}_stage": name,
                        **{f"p_{c}": float(p) for c, p in zip(other_classes, other_probs)}})
        if gradcam_dir is not None:
            row["gradcam"] = str(write_gradcam(model, image, int(probs.argmax()), Path(gradcam_dir) /
                                               f"{path.stem}_gradcam.png", f"{stage}: {row['emotion']} "
                                               f"({probs.max():.0%})"))
        rows.append(row)
    return pd.DataFrame(rows)


def write_gradcam(model: torch.nn.Module, image: np.ndarray, target: int, out: Path, title: str) -> Path:
    """Save the image and its Grad-CAM overlay side by side as a PNG (atomically)."""
    import matplotlib.pyplot as plt

    from artlib.analysis.explain import gradcam, overlay
    from artlib.analysis.plots import save

    heat = gradcam(model, image[None], target)[0]
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
    axes[0].imshow(image)
    axes[1].imshow(overlay(image, heat))
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    save(fig, out)
    plt.close(fig)
    return out


def write_predictions(frame: pd.DataFrame, out: str | os.PathLike[str]) -> None:
    """Save predictions as CSV atomically."""
    atomic.write_csv(out, frame)
