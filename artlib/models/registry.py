"""Every backbone artlib can fine-tune, as data: where it comes from, its blocks in forward order, its two study roles.

The study fine-tunes two blocks of a ResNet50: conv4 (``layer3``) and conv5 (``layer4``). Every backbone here
declares the same five blocks in forward order — ``stem, conv2, conv3, conv4, conv5`` — as the modules of its own
architecture that make them up, so every stage and configuration of the study maps onto any backbone unchanged:

    ==============  =====================  ===================  ==========================================
    backbone        conv4 (study role)     conv5 (study role)   source and default weights
    ==============  =====================  ===================  ==========================================
    resnet50        layer3                 layer4               torchvision IMAGENET1K_V2 (the study's)
    resnet34        layer3                 layer4               timm resnet34.tv_in1k (torchvision's, ArtEmis's)
    convnext_tiny   stages.2               stages.3 + head.norm timm convnext_tiny.in12k_ft_in1k
    vit_b16         blocks.9–10            blocks.11 + norm     timm vit_base_patch16_224.augreg2_in21k_ft_in1k
    clip_vit_b16    blocks.9–10            blocks.11 + norm     timm vit_base_patch16_clip_quickgelu_224.openai
    ==============  =====================  ===================  ==========================================

ConvNeXt: its last two of four stages, like ResNet's last two of four layers. ViT-B/16 has twelve equal blocks:
conv4 and conv5 are its last three (two, then one with the final norm), the share of depth ResNet50's conv5 has
and close to its trainable parameters (14.2 M and 7.1 M against 7.1 M and 15.0 M). A block's final norm belongs to
the last block (it trains with conv5). CLIP's image tower is used before its projection to the text space, as the
CLIP paper's linear probes do.

This module is plain data (no torch), so option parsing and the run layout can name backbones without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from artlib.errors import no_such
from artlib.rundir import DEFAULT_BACKBONE as DEFAULT_BACKBONE  # the study's: a results row without one used it

BLOCK_ORDER = ("stem", "conv2", "conv3", "conv4", "conv5")
"""Every backbone's blocks in forward order; stages train ``conv4`` and/or ``conv5``."""
HEAD = "head"
"""Where the pooled features enter the linear head: the feature-cache start of a stage that trains no block."""


def _range(prefix: str, lo: int, hi: int) -> tuple[str, ...]:
    """Module paths prefix.lo … prefix.(hi−1)."""
    return tuple(f"{prefix}.{i}" for i in range(lo, hi))


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone: its architecture, default pretrained weights and the modules of each block."""

    name: str  # the ``backbone`` setting and results.csv column
    title: str
    family: str  # 'resnet' (torchvision or timm), 'convnext' or 'vit': how the blocks run
    timm_name: str  # timm architecture with the pretrained tag ('' : torchvision's resnet50)
    blocks: dict[str, tuple[str, ...]]  # block → the modules (or parameters) it owns, in forward order
    runs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # block → modules applied in order (default: owned)
    features: int = 2048  # width of the pooled features the head takes
    patch: int = 0  # a ViT's patch size (image sizes must be multiples of it)

    @property
    def architecture(self) -> str:
        """timm's architecture name without the pretrained tag ('resnet50' for torchvision's)."""
        return self.timm_name.split(".")[0] if self.timm_name else "resnet50"

    @property
    def pretrained_tag(self) -> str:
        """The default pretrained weights' tag, e.g. 'in12k_ft_in1k' ('IMAGENET1K_V2' for torchvision's resnet50)."""
        return self.timm_name.split(".", 1)[1] if "." in self.timm_name else "IMAGENET1K_V2"

    def modules_of(self, block: str) -> tuple[str, ...]:
        """The module/parameter paths a block owns (trains when the block trains)."""
        return self.blocks[block]

    def run_order(self, block: str) -> tuple[str, ...]:
        """The modules applied, in order, when the block runs."""
        return self.runs.get(block, self.blocks[block])


_RESNET = {"conv2": ("layer1",), "conv3": ("layer2",), "conv4": ("layer3",), "conv5": ("layer4",)}
_VIT_BLOCKS = {"conv2": _range("blocks", 0, 5), "conv3": _range("blocks", 5, 9), "conv4": _range("blocks", 9, 11),
               "conv5": (*_range("blocks", 11, 12), "norm")}

BACKBONES: dict[str, BackboneSpec] = {s.name: s for s in (
    BackboneSpec("resnet50", "ResNet-50 (torchvision)", "resnet", "",
                 {"stem": ("conv1", "bn1", "relu", "maxpool"), **_RESNET}),
    BackboneSpec("resnet34", "ResNet-34 (timm; torchvision's ImageNet weights)", "resnet", "resnet34.tv_in1k",
                 {"stem": ("conv1", "bn1", "act1", "maxpool"), **_RESNET}, features=512),
    BackboneSpec("convnext_tiny", "ConvNeXt-T (timm)", "convnext", "convnext_tiny.in12k_ft_in1k",
                 {"stem": ("stem",), "conv2": ("stages.0",), "conv3": ("stages.1",), "conv4": ("stages.2",),
                  "conv5": ("stages.3", "head.norm")}, runs={"conv5": ("stages.3",)}, features=768),
    BackboneSpec("vit_b16", "ViT-B/16 (timm, ImageNet-21k → 1k)", "vit", "vit_base_patch16_224.augreg2_in21k_ft_in1k",
                 {"stem": ("patch_embed", "cls_token", "pos_embed", "norm_pre"), **_VIT_BLOCKS}, features=768,
                 patch=16),
    BackboneSpec("clip_vit_b16", "CLIP ViT-B/16 image tower (OpenAI, timm)", "vit",
                 "vit_base_patch16_clip_quickgelu_224.openai",
                 {"stem": ("patch_embed", "cls_token", "pos_embed", "norm_pre"), **_VIT_BLOCKS}, features=768,
                 patch=16),
)}
"""Every backbone by name: the one registry (the ``backbone`` option's choices)."""


def get_backbone(name: str, option: str = "backbone") -> BackboneSpec:
    """The backbone called ``name``; a ValueError naming ``option``, the close names and every choice otherwise."""
    if name not in BACKBONES:
        raise ValueError(no_such(option, name, "backbone", list(BACKBONES)))
    return BACKBONES[name]
