"""TrainConfig: every hyper-parameter and execution choice of a stage-run — the one source of defaults.

The command line takes its defaults from here, and a test checks that the notebooks' parameter
cells and the parameter profiles in params/ agree with it (or override it on purpose, e.g. 224 px
for the real data).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from artlib.models.registry import BACKBONES, DEFAULT_BACKBONE

MONITORS = {"val_loss": "min", "val_accuracy": "max", "val_f1": "max", "val_balanced_accuracy": "max"}
IMAGE_SOURCES = ("cache", "files")
PRECISIONS = ("auto", "fp32", "bf16")
CACHE_DTYPES = ("float16", "float32")
LAYOUTS = ("auto", "channels_last", "contiguous")
# Options added after runs existed: they enter a stage's identity hash only when set away from their
# default, so finished runs made before they existed stay reusable.
_HASHED_WHEN_CHANGED = {"images": "cache", "draft": True, "layout": "auto", "min_annotations": 5,
                        "backbone": DEFAULT_BACKBONE}
_NOT_RESULTS = ("device", "workers", "feature_cache")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters and execution choices of one training stage.

    Input pipeline (what the benchmark compares, and what a user may change): ``images="cache"``
    decodes every painting once into a memory-mapped cache, ``"files"`` decodes the JPEGs for every
    batch (the original study's way); ``draft`` decodes JPEGs at reduced DCT scale when that still
    gives ``image_size``; ``feature_cache`` runs the frozen blocks once (``None``: whenever there is
    no augmentation); ``layout`` picks channels_last by the trainable input size (``"auto"``).
    """

    image_size: int = 64  # the demo's; the real data: 224 (params/real_data.yaml)
    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    class_weights: bool = True
    monitor: str = "val_loss"
    patience: int | None = 3  # epochs without improvement before stopping; None = never stop early
    augment: bool = False
    feature_cache: bool | None = None
    cache_dtype: str = "float16"
    weights: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    workers: int | None = None  # image decoding processes/threads (None: all cores)
    max_skipped_fraction: float = 0.01  # images failing to load above this stop the stage
    images: str = "cache"
    draft: bool = True
    layout: str = "auto"
    min_annotations: int = 5  # nine-emotion task: paintings with at least this many votes (ArtEmis's filter)
    backbone: str = DEFAULT_BACKBONE  # the network fine-tuned (artlib.models.registry): the study's resnet50 by default

    def __post_init__(self) -> None:
        """Reject impossible settings with the valid choices."""
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {tuple(MONITORS)}, got {self.monitor!r}")
        if self.epochs < 1 or self.batch_size < 2 or self.image_size < 32:
            raise ValueError("need epochs >= 1, batch_size >= 2 and image_size >= 32")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(self.device)):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        for name, allowed in (("images", IMAGE_SOURCES), ("precision", PRECISIONS), ("cache_dtype", CACHE_DTYPES),
                              ("layout", LAYOUTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {tuple(BACKBONES)}, got {self.backbone!r}")
        patch = BACKBONES[self.backbone].patch
        if patch and self.image_size % patch:
            raise ValueError(f"image_size {self.image_size}: {self.backbone} cuts images into {patch}-pixel patches; "
                             f"use a multiple of {patch}")
        if self.images == "files" and self.feature_cache:
            raise ValueError("feature_cache needs the decoded-image cache (images='cache'); images='files' decodes "
                             "every batch and runs the whole network")

    @property
    def use_feature_cache(self) -> bool:
        """Whether the frozen prefix is cached (default: whenever there is no augmentation)."""
        if self.images == "files":
            return False
        return (not self.augment) if self.feature_cache is None else bool(self.feature_cache and not self.augment)

    def result_fields(self) -> dict[str, Any]:
        """The settings that change results (hashed into the stage's identity)."""
        out = asdict(self)
        for k in _NOT_RESULTS:
            out.pop(k)
        for k, default in _HASHED_WHEN_CHANGED.items():
            if out[k] == default:
                out.pop(k)
        return out


def defaults() -> dict[str, Any]:
    """Every TrainConfig field with its default (for the command line and the consistency test)."""
    return {f.name: f.default for f in fields(TrainConfig)}
