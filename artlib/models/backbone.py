"""A backbone + a linear head, with named blocks that can be frozen and unfrozen — for every registered backbone.

Blocks follow the ResNet paper's names on every backbone (see :mod:`artlib.models.registry`): on ResNet50 ``conv4``
is conv4_x (torchvision ``layer3``, 7,098,368 parameters) and ``conv5`` is conv5_x (``layer4``, 14,964,736).

    model = ArtNet.build(num_classes=2, weights=resolve_weights("auto"))
    model.freeze_all().unfreeze("conv5")          # fluent, and tested
    model.parameter_table()                        # what trains, in numbers
    ArtNet.build(2, resolve_weights("none", backbone="convnext_tiny"), backbone="convnext_tiny", image_size=64)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import OrderedDict
from pathlib import Path

import pandas as pd
import torch
import torchvision
from torch import nn

from artlib.models.networks import check_image_size, create_backbone
from artlib.models.registry import BLOCK_ORDER, DEFAULT_BACKBONE, HEAD, BackboneSpec, get_backbone
from artlib.models.weights import IMAGENET_MEAN, IMAGENET_STD, Weights

log = logging.getLogger(__name__)

TRAINABLE_BLOCKS = ("conv4", "conv5")
"""The blocks the study's stages train."""


class ArtNet(nn.Module):
    """A backbone + a linear head, with named blocks that can be frozen and unfrozen.

    Frozen blocks have ``requires_grad=False`` and their BatchNorm layers stay in eval mode
    (running statistics untouched) even when the model is put in training mode.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD, spec: BackboneSpec | None = None):
        super().__init__()
        self.spec = spec or get_backbone(DEFAULT_BACKBONE)
        if isinstance(backbone, torchvision.models.ResNet):
            backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = nn.Linear(self.spec.features, num_classes)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self._trainable: tuple[str, ...] = BLOCK_ORDER
        self.memory_format = torch.channels_last

    def use_channels_last(self, enabled: bool = True) -> ArtNet:
        """Run convolutions in channels_last (NHWC) layout, as cached images and features are stored; returns self.

        Inputs are always brought to the same layout, so cached and full forward passes compute identically.
        """
        self.memory_format = torch.channels_last if enabled else torch.contiguous_format
        return self.to(memory_format=self.memory_format)

    @classmethod
    def build(cls, num_classes: int, weights: Weights | None = None, seed: int = 0,
              state: dict[str, torch.Tensor] | None = None, backbone: str | None = None,
              image_size: int = 224) -> ArtNet:
        """A model with the given weights (or a carried ``state``; else random init seeded by ``seed``) and a fresh head.

        ``backbone`` defaults to the weights' (resnet50 without weights); ``image_size`` matters for a ViT.
        """
        spec = get_backbone(backbone or (weights.backbone if weights is not None else DEFAULT_BACKBONE))
        check_image_size(spec, image_size)
        exact = state is not None
        if state is None and weights is not None:
            state = weights.load_state_dict()
        mean_std = () if weights is None else (weights.mean, weights.std)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = create_backbone(spec, image_size, state, "" if weights is None else weights.source, exact)
            model = cls(net, num_classes, *mean_std, spec=spec)
        return model.use_channels_last(True)

    @classmethod
    def from_state(cls, num_classes: int, state: dict[str, torch.Tensor], mean: list[float], std: list[float],
                   backbone: str = DEFAULT_BACKBONE, image_size: int = 224) -> ArtNet:
        """A model rebuilt from a full saved state dict (backbone and head), without random initialisation."""
        spec = get_backbone(backbone)
        net_state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        with torch.random.fork_rng(devices=[]):
            net = create_backbone(spec, image_size, net_state, exact=True)
        model = cls(net, num_classes, tuple(mean), tuple(std), spec=spec)
        model.head = nn.Linear(spec.features, num_classes, device="meta").to_empty(device="cpu")
        model.load_state_dict(state, strict=True)
        return model.use_channels_last(True)

    # ---- blocks -------------------------------------------------------------------------
    def _owned(self, name: str) -> list[nn.Module | nn.Parameter]:
        """The modules and bare parameters (a ViT's cls token, position embedding) a block owns."""
        if name not in BLOCK_ORDER:
            raise ValueError(f"unknown block {name!r}; blocks are {BLOCK_ORDER} "
                             f"(on {self.spec.name}: conv4 = {'+'.join(self.spec.modules_of('conv4'))}, "
                             f"conv5 = {'+'.join(self.spec.modules_of('conv5'))})")
        out: list[nn.Module | nn.Parameter] = []
        for path in self.spec.modules_of(name):
            try:
                out.append(self.backbone.get_submodule(path))
            except AttributeError:
                out.append(self.backbone.get_parameter(path))
        return out

    def block(self, name: str) -> nn.Module:
        """The module(s) of a named block, as one module (bare parameters are not included)."""
        mods = [m for m in self._owned(name) if isinstance(m, nn.Module) and not isinstance(m, nn.Parameter)]
        return mods[0] if len(mods) == 1 else nn.ModuleList(mods)

    def block_parameters(self, name: str) -> list[nn.Parameter]:
        """Every parameter a block owns."""
        out: list[nn.Parameter] = []
        for part in self._owned(name):
            out.extend([part] if isinstance(part, nn.Parameter) else part.parameters())
        return out

    def freeze_all(self) -> ArtNet:
        """Freeze every backbone block (the head stays trainable); returns self for chaining."""
        return self._set_trainable(())

    def unfreeze(self, *blocks: str) -> ArtNet:
        """Make the named blocks trainable in addition to those already trainable; returns self."""
        for b in blocks:
            self._owned(b)  # validates the name
        return self._set_trainable(tuple(b for b in BLOCK_ORDER if b in self._trainable or b in blocks))

    def _set_trainable(self, blocks: tuple[str, ...]) -> ArtNet:
        """Set requires_grad per block and re-apply the BatchNorm rule."""
        self._trainable = blocks
        for name in BLOCK_ORDER:
            for p in self.block_parameters(name):
                p.requires_grad_(name in blocks)
        for p in self.head.parameters():
            p.requires_grad_(True)
        return self.train(self.training)

    @property
    def trainable_blocks(self) -> tuple[str, ...]:
        """Names of the backbone blocks that train."""
        return self._trainable

    def first_trainable(self) -> str | None:
        """The earliest trainable block: everything before it is a fixed function of the image."""
        return self._trainable[0] if self._trainable else None

    def feature_start(self) -> str:
        """Where fixed features end: the first trainable block, or the head when no block trains (a linear probe)."""
        return self.first_trainable() or HEAD

    def trainable_keys(self) -> set[str]:
        """state_dict keys of the trainable blocks and the head (what training changes)."""
        paths = [f"backbone.{m}" for b in self._trainable for m in self.spec.modules_of(b)] + ["head"]
        return {k for k in self.state_dict() if any(k == p or k.startswith(p + ".") for p in paths)}

    def train(self, mode: bool = True) -> ArtNet:
        """Training mode for trainable blocks and the head; frozen blocks (their BatchNorm) stay in eval."""
        super().train(mode)
        for name in BLOCK_ORDER:
            if name not in self._trainable:
                self.block(name).eval()
        return self

    def parameter_table(self) -> pd.DataFrame:
        """Parameters per block, the backbone's modules that make it up, and whether they train (the head included)."""
        rows = [{"block": name, "modules": "+".join(m for m, part in zip(self.spec.modules_of(name), self._owned(name))
                                                    if any(True for _ in _parameters_of(part))),
                 "parameters": sum(p.numel() for p in self.block_parameters(name)),
                 "trainable": name in self._trainable} for name in BLOCK_ORDER]
        rows.append({"block": "head", "modules": "linear head", "trainable": True,
                     "parameters": sum(p.numel() for p in self.head.parameters())})
        table = pd.DataFrame(rows)
        total = {"block": "total trainable", "modules": "",
                 "parameters": int(table.loc[table["trainable"], "parameters"].sum()), "trainable": True}
        return pd.concat([table, pd.DataFrame([total])], ignore_index=True)

    def trainable_parameter_count(self) -> int:
        """Number of parameters with requires_grad."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ---- forward ------------------------------------------------------------------------
    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC (as cached) or float NCHW in [0,1] → the weights' normalised float NCHW input."""
        if images.dtype == torch.uint8:
            images = images.permute(0, 3, 1, 2).float().div_(255.0)
        return (images - self.mean) / self.std

    def _run_block(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Forward through one block."""
        b = self.backbone
        if self.spec.family == "vit" and name == "stem":
            return b.norm_pre(b.patch_drop(b._pos_embed(b.patch_embed(x))))
        for path in self.spec.run_order(name):
            x = b.get_submodule(path)(x)
        return x

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output → the pooled features the head takes."""
        if isinstance(self.backbone, torchvision.models.ResNet):
            return torch.flatten(self.backbone.avgpool(x), 1)
        return self.backbone.forward_head(x, pre_logits=True)

    def forward_blocks(self, x: torch.Tensor, start: str | None, stop: str | None) -> torch.Tensor:
        """Run from ``start``'s input (None = image) up to ``stop``'s input (None = logits).

        ``HEAD`` names the head: ``forward_blocks(x, None, HEAD)`` gives the pooled features, and
        ``forward_blocks(features, HEAD, None)`` the logits.
        """
        names = BLOCK_ORDER
        i0 = 0 if start is None else (len(names) if start == HEAD else names.index(start))
        i1 = len(names) if stop in (None, HEAD) else names.index(stop)
        if start is None:
            x = self.normalise(x)
        if x.dim() == 4:
            x = x.contiguous(memory_format=self.memory_format)
        for name in names[i0:i1]:
            x = self._run_block(name, x)
        if stop in (None, HEAD) and start != HEAD:
            x = self._pool(x)
        if stop is None:
            x = self.head(x)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for raw images (uint8 NHWC or float NCHW in [0,1])."""
        return self.forward_blocks(images, None, None)

    def backbone_state(self) -> OrderedDict[str, torch.Tensor]:
        """The backbone's weights and buffers (BatchNorm statistics; no head)."""
        return OrderedDict((k, v) for k, v in self.backbone.state_dict().items())

    def prefix_digest(self, first_trainable: str) -> str:
        """Hash of the backbone's name (other than resnet50's), the normalisation and every weight and buffer before
        ``first_trainable`` (a feature-cache key part; ``HEAD``: the whole backbone)."""
        h = hashlib.blake2b(digest_size=10)
        if self.spec.name != DEFAULT_BACKBONE:
            h.update(self.spec.name.encode())
        h.update(repr((tuple(self.mean.flatten().tolist()), tuple(self.std.flatten().tolist()))).encode())
        end = len(BLOCK_ORDER) if first_trainable == HEAD else BLOCK_ORDER.index(first_trainable)
        for name in BLOCK_ORDER[:end]:
            for key, tensor in _state_of(self, name).items():
                h.update(key.encode())
                h.update(tensor.detach().cpu().contiguous().numpy())  # (its buffer: the same bytes, not copied)
        return h.hexdigest()


def _parameters_of(part: nn.Module | nn.Parameter) -> list[nn.Parameter]:
    """A module's parameters, or a bare parameter as a list."""
    return [part] if isinstance(part, nn.Parameter) else list(part.parameters())


def _state_of(model: ArtNet, name: str) -> dict[str, torch.Tensor]:
    """A block's weights and buffers, keyed as resnet50's digest always keyed them (the block module's state dict)."""
    state = dict(model.block(name).state_dict())
    for path, part in zip(model.spec.modules_of(name), model._owned(name)):
        if isinstance(part, nn.Parameter):
            state[path] = part
    return state


def pick_device(device: str = "auto") -> torch.device:
    """'auto' → cuda, else mps, else cpu; anything else is passed to torch.device."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX), where autocast really pays."""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
        return " avx512_bf16" in flags or " amx_bf16" in flags
    return False


def pick_precision(precision: str, device: torch.device) -> str:
    """'auto' → 'bf16' on CUDA with bf16 support and on CPUs with native bf16, else 'fp32'."""
    if precision in ("fp32", "bf16"):
        return precision
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for the chosen precision (a no-op for fp32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
