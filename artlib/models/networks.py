"""Building a backbone's network (torchvision's resnet50 or a timm model) without its classifier, weights loaded.

The one place that knows how each source builds its networks and loads (and, for timm, converts or resizes) a
state dict; :mod:`artlib.models.backbone` wraps the result with named blocks and a head.
"""

from __future__ import annotations

import copy
import functools

import torch
import torchvision
from torch import nn

from artlib.errors import CheckpointError
from artlib.models.registry import DEFAULT_BACKBONE, BackboneSpec


def check_image_size(backbone: BackboneSpec, image_size: int) -> None:
    """A ViT needs an image size that is a multiple of its patch size; a clear error otherwise."""
    if backbone.patch and image_size % backbone.patch:
        nearest = max(backbone.patch, image_size // backbone.patch * backbone.patch)
        raise ValueError(f"image_size {image_size}: {backbone.name} cuts images into {backbone.patch}-pixel patches; "
                         f"use a multiple of {backbone.patch} (e.g. {nearest}).")


def create_backbone(backbone: BackboneSpec, image_size: int | None, state: dict[str, torch.Tensor] | None = None,
                    source: str = "", exact: bool = False) -> nn.Module:
    """The backbone's network without a classifier, with ``state`` loaded (None: random init from torch's RNG).

    resnet50's loaded convolution weights come in channels-last memory, the layout :class:`ArtNet` converts to.

    resnet50 is torchvision's; the others are built by timm, which also converts and resizes a pretrained state
    dict (``exact=False``: a ViT's position embedding is resampled to ``image_size``); ``exact=True`` loads a
    state dict of this very network (a carried or saved stage) as it is. A state of another model is refused.
    """
    if backbone.name == DEFAULT_BACKBONE:
        if state is None:
            net = torchvision.models.resnet50()
        else:
            net = copy.deepcopy(_meta_resnet50())
            net.fc = nn.Identity()
            net.load_state_dict(_owned_copies(state, net), strict=True, assign=True)
        net.fc = nn.Identity()
        return net
    import timm

    size = {"img_size": image_size} if backbone.family == "vit" and image_size else {}
    net = timm.create_model(backbone.timm_name, pretrained=False, num_classes=0, **size)
    if state is None:
        return net
    try:
        net.load_state_dict(dict(state) if exact else timm_state(net, state), strict=True)
    except (RuntimeError, KeyError, ValueError) as exc:
        where = source or "the given state dict"
        raise CheckpointError(f"{where}: not {backbone.title} weights ({type(exc).__name__}: {str(exc)[:300]}). "
                              f"Pass the weights of {backbone.timm_name} (timm) or another backbone.") from None
    return net


def _owned_copies(state: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """Fresh CPU copies of ``state``'s tensors in the dtypes of ``net``'s entries (4-D ones in channels-last memory),
    for the network to own.

    Loaded with ``assign=True`` (which checks names and shapes as a copying load does, but converts nothing), they
    become the network's tensors: one allocation and one copy per tensor, where allocating the network, copying in
    and converting to channels last took two of each. The copy converts as a copying load would (a half-precision
    or a GPU state gives float32 CPU tensors). Copies always: the state may be the weights file's cached dict,
    which training must never change.
    """
    dtypes = {key: value.dtype for key, value in net.state_dict().items()}
    return {key: tensor.to(device="cpu", dtype=dtypes.get(key, tensor.dtype), copy=True,
                           memory_format=torch.channels_last if tensor.dim() == 4 else torch.contiguous_format)
            for key, tensor in state.items()}


def timm_state(net: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A pretrained state dict as this timm network takes it: timm's own converter for the architecture (other
    layouts, a ViT's position embedding resampled to the network's image size), the classifier dropped.

    The result is loaded strictly: timm's own loader only warns about keys that do not fit.
    """
    import sys

    converter = getattr(sys.modules[type(net).__module__], "checkpoint_filter_fn", None)
    state = dict(state)
    if converter is not None:
        state = converter(state, net)
    classifier = net.pretrained_cfg.get("classifier") or ()
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return {k: v for k, v in state.items() if not any(k in (f"{h}.weight", f"{h}.bias") for h in heads)}


def resnet50_shapes() -> dict[str, tuple[int, ...]]:
    """Every state-dict entry of torchvision's ResNet50 with its shape (a fresh dict: the caller may change it)."""
    return {k: tuple(v.shape) for k, v in _meta_resnet50().state_dict().items()}


@functools.cache
def _meta_resnet50() -> nn.Module:
    """torchvision's ResNet50 on the meta device: names and shapes only, no memory, no random initialisation.

    Built once per process (0.03-0.07 s: its initialisers run through torch's Python decompositions) and copied for
    every model that loads a state dict; never handed out itself (changing it would change every later copy).
    """
    with torch.device("meta"):
        return torchvision.models.resnet50()
