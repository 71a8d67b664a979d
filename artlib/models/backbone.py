"""The ResNet50 backbone: where its weights come from, its blocks, and which of them train.

Blocks follow the ResNet paper's names: ``conv4`` is conv4_x (torchvision ``layer3``,
7,098,368 parameters) and ``conv5`` is conv5_x (``layer4``, 14,964,736 parameters).

    model = ArtNet.build(num_classes=2, weights=resolve_weights("auto"))
    model.freeze_all().unfreeze("conv5")          # fluent, and tested
    model.parameter_table()                        # what trains, in numbers
"""

from __future__ import annotations

import logging
import contextlib
import functools
import hashlib
import importlib.util
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torchvision
from torch import nn

from artlib.models.checkpoints import verify_zip
from artlib.errors import CheckpointError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"  # torchvision IMAGENET1K_V2
IMAGENET_FILE = "resnet50-11ad3fa6.pth"
WEIGHT_CHOICES = ("auto", "imagenet", "self-supervised", "none")

BLOCK_ORDER = ("stem", "conv2", "conv3", "conv4", "conv5")
"""Backbone blocks in forward order (conv2..conv5 = torchvision layer1..layer4)."""
TRAINABLE_BLOCKS = ("conv4", "conv5")
BLOCK_MODULES = {"stem": ("conv1", "bn1"), "conv2": ("layer1",), "conv3": ("layer2",), "conv4": ("layer3",),
                 "conv5": ("layer4",)}
_KEY_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "resnet.", "pre.", "net.")


@dataclass(frozen=True)
class Weights:
    """Resolved backbone weights: a recorded label, where they came from, the normalisation they expect."""

    label: str  # recorded as results.csv 'backbone_weights'
    source: str  # file path, URL or 'random'
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    digest: str = "random"  # content hash, part of every cache key

    def load_state_dict(self) -> OrderedDict[str, torch.Tensor] | None:
        """The backbone's state dict (fc removed, prefixes stripped), or None for random init.

        Kept in memory for the next stage-run of this process while the file is unchanged (size, mtime and the
        digest checked at resolution): a grid builds the same backbone dozens of times.
        """
        if self.source == "random":
            return None
        stat = os.stat(self.source)
        return _loaded(self.source, stat.st_size, stat.st_mtime_ns, self.digest)


@functools.lru_cache(maxsize=2)
def _loaded(path: str, size: int, mtime_ns: int, digest: str) -> OrderedDict[str, torch.Tensor]:
    """load_backbone_file, remembered per (file, size, mtime, digest); callers copy the tensors into their model."""
    return load_backbone_file(path)


def _file_digest(path: str | os.PathLike[str]) -> str:
    """A short content hash of a weights file (cache keys change when the file does)."""
    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def imagenet_cache_path() -> Path:
    """Where torchvision keeps (and artlib looks for) the ImageNet ResNet50 weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


def self_supervised_path() -> Path | None:
    """The offline ResNet50 of the ``imgsim`` package (self-supervised on ImageNet images), if installed."""
    spec = importlib.util.find_spec("imgsim")  # located, never imported: importing needs OpenCV
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model.pth"
    return path if path.is_file() else None


def _download_imagenet(timeout: float = 20.0) -> Path:
    """Download torchvision's IMAGENET1K_V2 file into the hub cache (short network timeout)."""
    target = imagenet_cache_path()
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.load_state_dict_from_url(IMAGENET_URL, progress=False, check_hash=True, weights_only=True,
                                           file_name=IMAGENET_FILE)
    finally:
        socket.setdefaulttimeout(old)
    return target


def offline_instructions() -> str:
    """How to provide the ImageNet weights without network."""
    return (f"On a machine with internet, download {IMAGENET_URL} and copy it to {imagenet_cache_path()} "
            f"(torchvision's cache, $TORCH_HOME), or pass weights='<path to the .pth file>'. "
            f"weights='auto' falls back to the self-supervised offline weights (pip install --no-deps imgsim==0.1.2).")


_RESOLVED: dict[str, Weights] = {}


def resolve_weights(spec: str = "auto", verbose: bool = True) -> Weights:
    """Like :func:`_resolve_weights`, remembered per process so a notebook asks the network once."""
    if spec not in _RESOLVED:
        _RESOLVED[spec] = _resolve_weights(spec, verbose)
    elif verbose:
        _announce(_RESOLVED[spec], True)
    return _RESOLVED[spec]


def _resolve_weights(spec: str = "auto", verbose: bool = True) -> Weights:
    """Turn a ``weights`` option into concrete weights, announcing loudly which ones are used.

    ``imagenet``: torchvision IMAGENET1K_V2 (cached file or download; an error says how to get it offline);
    a path: a state-dict file (.pth/.pt/.safetensors); ``self-supervised``: the imgsim ResNet50;
    ``none``: random initialisation; ``auto``: imagenet, else self-supervised, else random.
    """
    spec = str(spec)
    if spec not in WEIGHT_CHOICES:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights={spec!r}: no such file. Use one of {WEIGHT_CHOICES} or a path to a "
                                    f".pth/.pt/.safetensors state dict.")
        load_backbone_file(path)  # validate now, not in the middle of training
        weights = Weights(label=f"file:{path.name}", source=str(path), digest=_file_digest(path))
        return _announce(weights, verbose)
    if spec in ("imagenet", "auto"):
        path = imagenet_cache_path()
        error = None
        if not path.is_file():
            try:
                path = _download_imagenet()
            except Exception as exc:  # noqa: BLE001 (any network failure means: not available)
                error = exc
        if path.is_file():
            return _announce(Weights(label="imagenet:IMAGENET1K_V2", source=str(path), digest=_file_digest(path)), verbose)
        if spec == "imagenet":
            raise RuntimeError(f"ImageNet weights are not available ({type(error).__name__}: {error}). "
                               + offline_instructions())
        note = f"ImageNet weights unavailable ({type(error).__name__}); "
    else:
        note = ""
    if spec in ("self-supervised", "auto"):
        path = self_supervised_path()
        if path is not None:
            weights = Weights(label="self-supervised:imgsim-0.1.2", source=str(path), digest=_file_digest(path))
            return _announce(weights, verbose, note + "using the SELF-SUPERVISED imgsim ResNet50 (not ImageNet-supervised)")
        if spec == "self-supervised":
            raise RuntimeError("self-supervised weights need the imgsim package: pip install --no-deps imgsim==0.1.2")
        note += "imgsim not installed; "
    return _announce(Weights(label="random", source="random"), verbose, note + "using RANDOM initialisation")


def _announce(weights: Weights, verbose: bool, note: str = "") -> Weights:
    """Print which backbone weights are in use (results record the same label)."""
    if verbose:
        banner = "!" * 8 if weights.label.startswith(("self-supervised", "random")) else "*" * 3
        log.warning("%s backbone weights: %s%s %s", banner, weights.label, f" — {note}" if note else "", banner)
    return weights


def _strip_prefixes(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Remove wrapper prefixes ('module.', 'pre.', 'backbone.', …) until keys look like torchvision's."""
    out = OrderedDict(state)
    for _ in range(4):
        if any(k.startswith("conv1.") or k.startswith("layer1.") for k in out):
            break
        for prefix in _KEY_PREFIXES:
            if any(k.startswith(prefix) for k in out):
                out = OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v) for k, v in out.items())
    return out


def load_backbone_file(path: str | os.PathLike[str]) -> OrderedDict[str, torch.Tensor]:
    """Load a ResNet50 backbone state dict safely (weights_only / safetensors), validated against the architecture."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            verify_zip(path)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot load as a state dict ({type(exc).__name__}: {exc}). "
                              f"Provide a .pth/.pt (torch.save of a state_dict) or .safetensors file.") from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict.")
    state = _strip_prefixes({k: v for k, v in state.items() if isinstance(v, torch.Tensor)})
    state = OrderedDict((k, v) for k, v in state.items() if not k.startswith("fc."))
    reference = torchvision.models.resnet50().state_dict()
    reference = {k: v for k, v in reference.items() if not k.startswith("fc.")}
    for key in [k for k in reference if k.endswith("num_batches_tracked") and k not in state]:
        state[key] = torch.zeros((), dtype=torch.long)  # older checkpoints (e.g. torchvision's) may lack these
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    wrong = [k for k in reference if k in state and tuple(state[k].shape) != tuple(reference[k].shape)]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: not a torchvision ResNet50 backbone: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(wrong)} with wrong shapes (e.g. {wrong[:3]}).")
    return state


class ArtNet(nn.Module):
    """ResNet50 backbone + a linear head, with named blocks that can be frozen and unfrozen.

    Frozen blocks have ``requires_grad=False`` and their BatchNorm layers stay in eval mode
    (running statistics untouched) even when the model is put in training mode.
    """

    def __init__(self, backbone: torchvision.models.ResNet, num_classes: int,
                 mean: tuple[float, float, float] = IMAGENET_MEAN, std: tuple[float, float, float] = IMAGENET_STD):
        super().__init__()
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = nn.Linear(2048, num_classes)
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
              state: dict[str, torch.Tensor] | None = None) -> ArtNet:
        """A model with the given backbone weights (or ``state``; random init seeded by ``seed``) and a fresh head."""
        if state is None and weights is not None:
            state = weights.load_state_dict()
        mean_std = () if weights is None else (weights.mean, weights.std)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if state is None:
                model = cls(torchvision.models.resnet50(), num_classes, *mean_std)
            else:
                model = cls(_empty_resnet50(), num_classes, *mean_std)  # no random init to throw away
                model.backbone.load_state_dict(state, strict=True)
        return model.use_channels_last(True)

    @classmethod
    def from_state(cls, num_classes: int, state: dict[str, torch.Tensor], mean: list[float],
                   std: list[float]) -> ArtNet:
        """A model rebuilt from a full saved state dict (backbone and head), without random initialisation."""
        model = cls(_empty_resnet50(), num_classes, tuple(mean), tuple(std))
        model.head = nn.Linear(2048, num_classes, device="meta").to_empty(device="cpu")
        model.load_state_dict(state, strict=True)
        return model.use_channels_last(True)

    # ---- blocks -------------------------------------------------------------------------
    def block(self, name: str) -> nn.Module:
        """The module(s) of a named block, as one module."""
        if name not in BLOCK_MODULES:
            raise ValueError(f"unknown block {name!r}; blocks are {BLOCK_ORDER} (conv4 = layer3, conv5 = layer4)")
        mods = [getattr(self.backbone, m) for m in BLOCK_MODULES[name]]
        return mods[0] if len(mods) == 1 else nn.ModuleList(mods)

    def freeze_all(self) -> ArtNet:
        """Freeze every backbone block (the head stays trainable); returns self for chaining."""
        return self._set_trainable(())

    def unfreeze(self, *blocks: str) -> ArtNet:
        """Make the named blocks trainable in addition to those already trainable; returns self."""
        for b in blocks:
            self.block(b)  # validates the name
        return self._set_trainable(tuple(b for b in BLOCK_ORDER if b in self._trainable or b in blocks))

    def _set_trainable(self, blocks: tuple[str, ...]) -> ArtNet:
        """Set requires_grad per block and re-apply the BatchNorm rule."""
        self._trainable = blocks
        for name in BLOCK_ORDER:
            for p in self.block(name).parameters():
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

    def train(self, mode: bool = True) -> ArtNet:
        """Training mode for trainable blocks and the head; frozen blocks (their BatchNorm) stay in eval."""
        super().train(mode)
        for name in BLOCK_ORDER:
            if name not in self._trainable:
                self.block(name).eval()
        return self

    def parameter_table(self) -> pd.DataFrame:
        """Parameters per block and whether they train (the head included)."""
        rows = [{"block": name, "torchvision": "+".join(BLOCK_MODULES[name]),
                 "parameters": sum(p.numel() for p in self.block(name).parameters()),
                 "trainable": name in self._trainable} for name in BLOCK_ORDER]
        rows.append({"block": "head", "torchvision": "fc", "parameters": sum(p.numel() for p in self.head.parameters()),
                     "trainable": True})
        table = pd.DataFrame(rows)
        total = {"block": "total trainable", "torchvision": "",
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
        if name == "stem":
            return b.maxpool(b.relu(b.bn1(b.conv1(x))))
        return self.block(name)(x)

    def forward_blocks(self, x: torch.Tensor, start: str | None, stop: str | None) -> torch.Tensor:
        """Run blocks from ``start`` (inclusive, None = image input) up to ``stop`` (exclusive, None = logits)."""
        names = list(BLOCK_ORDER)
        i0 = 0 if start is None else names.index(start)
        i1 = len(names) if stop is None else names.index(stop)
        if start is None:
            x = self.normalise(x)
        x = x.contiguous(memory_format=self.memory_format)
        for name in names[i0:i1]:
            x = self._run_block(name, x)
        if stop is None:
            x = torch.flatten(self.backbone.avgpool(x), 1)
            x = self.head(x)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for raw images (uint8 NHWC or float NCHW in [0,1])."""
        return self.forward_blocks(images, None, None)

    def backbone_state(self) -> OrderedDict[str, torch.Tensor]:
        """The backbone's weights and BatchNorm statistics (no head)."""
        return OrderedDict((k, v) for k, v in self.backbone.state_dict().items())

    def prefix_digest(self, first_trainable: str) -> str:
        """Hash of every weight and buffer before ``first_trainable`` (a feature-cache key part)."""
        h = hashlib.blake2b(digest_size=10)
        h.update(repr((tuple(self.mean.flatten().tolist()), tuple(self.std.flatten().tolist()))).encode())
        for name in BLOCK_ORDER[: BLOCK_ORDER.index(first_trainable)]:
            for key, tensor in self.block(name).state_dict().items():
                h.update(key.encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


def _empty_resnet50() -> torchvision.models.ResNet:
    """A torchvision ResNet50 with allocated but uninitialised weights (they are loaded right after)."""
    with torch.device("meta"):
        net = torchvision.models.resnet50()
    return net.to_empty(device="cpu")


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
