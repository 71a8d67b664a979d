"""Grad-CAM: where in a painting the last convolutional block (conv5) found evidence for a class.

Uses captum's LayerGradCam (a maintained implementation) on torchvision ``layer4``; the
coarse map (image size / 32) is upsampled bilinearly to the input and overlaid on it.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch
from captum.attr import LayerAttribution, LayerGradCam

from artlib.models.backbone import ArtNet


def gradcam(model: ArtNet, images: np.ndarray, targets: int | list[int] | np.ndarray, block: str = "conv5",
            normalise: bool = True) -> np.ndarray:
    """Grad-CAM heatmaps [N, H, W] for uint8 images [N, H, W, 3] and target class(es), in [0, 1] if normalised."""
    if model.spec.family != "resnet":
        raise ValueError(f"Grad-CAM here explains ResNet backbones (a block's output is a feature map); {model.spec.name} "
                         f"is not one — use a resnet50 or resnet34 stage.")
    model = model.eval()
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255.0)
    x.requires_grad_(True)  # makes sure a graph reaches the block even if its weights are frozen
    n = x.shape[0]
    target = torch.as_tensor(np.broadcast_to(np.asarray(targets), (n,)).copy(), dtype=torch.long)
    cam = LayerGradCam(model, model.block(block))
    with torch.enable_grad():
        attr = cam.attribute(x, target=target, relu_attributions=True)
    heat = LayerAttribution.interpolate(attr, tuple(x.shape[2:]), interpolate_mode="bilinear")
    heat = heat.detach().squeeze(1).clamp_min(0).numpy().astype(np.float64)
    if normalise:
        top = heat.reshape(n, -1).max(axis=1).reshape(n, 1, 1)
        heat = np.divide(heat, top, out=np.zeros_like(heat), where=top > 0)
    return heat


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45, cmap: str = "inferno") -> np.ndarray:
    """The painting with a heatmap blended over it, as uint8 RGB."""
    import matplotlib

    colours = matplotlib.colormaps[cmap](np.clip(heat, 0, 1))[..., :3] * 255.0
    return np.clip((1 - alpha) * image.astype(np.float64) + alpha * colours, 0, 255).astype(np.uint8)


def pick_examples(predictions: pd.DataFrame, per_group: int = 2, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of test paintings: ``per_group`` of each (true class, correct/wrong) combination."""
    frame = predictions.assign(correct=predictions["label"] == predictions["predicted"])
    parts = []
    for (label, correct), group in frame.groupby(["label", "correct"], sort=True):
        parts.append(group.sample(n=min(per_group, len(group)), random_state=seed))
    if not parts:
        return frame.iloc[0:0]
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["label", "correct"], ascending=[True, False], ignore_index=True)


def paired_sample(run_dir: str | os.PathLike[str], baseline_stage: str, informed_stage: str, seed: int,
                  per_group: int = 2) -> pd.DataFrame:
    """Test paintings picked from the informed stage's predictions, with the baseline's prediction beside."""
    from artlib.analysis.compare import load_predictions

    informed = load_predictions(run_dir, informed_stage, seed)
    baseline = load_predictions(run_dir, baseline_stage, seed).set_index("image_path")
    sample = pick_examples(informed, per_group=per_group, seed=seed)
    return sample.assign(baseline_predicted=baseline.loc[sample["image_path"], "predicted"].to_numpy())


def load_images(archive: str | os.PathLike[str], paths: pd.Series | list[str], size: int) -> np.ndarray:
    """Paintings as a uint8 [N, size, size, 3] stack, preprocessed exactly as in training."""
    from pathlib import Path

    from artlib.data.images import load_square

    return np.stack([load_square(Path(archive) / p, size) for p in paths])


def class_index(names: pd.Series | list[str], task: str) -> np.ndarray:
    """Class names → label indices of a task (targets for Grad-CAM)."""
    from artlib.tasks import get_task

    lookup = {c: i for i, c in enumerate(get_task(task).classes)}
    return np.asarray([lookup[str(n)] for n in names], dtype=np.int64)


def side_by_side(sample: pd.DataFrame, images: np.ndarray, heat_base: np.ndarray, heat_info: np.ndarray,
                 alpha: float = 0.45) -> tuple[list[np.ndarray], list[str]]:
    """Tiles and titles for a grid: painting | baseline overlay | genre-informed overlay, one row per painting."""
    tiles, titles = [], []
    for i, row in enumerate(sample.itertuples()):
        tiles += [images[i], overlay(images[i], heat_base[i], alpha), overlay(images[i], heat_info[i], alpha)]
        titles += [f"true: {row.label}", f"baseline → {row.baseline_predicted}", f"genre-informed → {row.predicted}"]
    return tiles, titles
