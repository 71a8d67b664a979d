"""Does genre still help with today's backbones? The tables notebook 09 shows, one backbone per row group.

For each backbone the study's configuration 1 (genre on conv4, then emotion on conv5), its matched control
(emotion on conv4, then conv5) and the linear probe are trained alike; every figure of a backbone comes from that
backbone's own stage-runs on the same test paintings, and its verdicts are its own Holm families: the study's
``binary`` comparisons and the ``linear-probe`` ones (``binary:<backbone>``, ``linear-probe:<backbone>`` for a
backbone other than resnet50).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from artlib.analysis.compare import load_results, summary_table
from artlib.tasks import EMOTION, rows_of

BACKBONE_STAGES = ("genre_conv4", "emotion_conv5", "genre_conv4_then_emotion_conv5", "emotion_conv4",
                   "emotion_conv4_then_emotion_conv5", "emotion_probe")
"""What notebook 09 trains per backbone: configuration 1, its matched control and the emotion linear probe."""
BACKBONE_COMPARISONS = ("genre → conv5 vs matched control", "genre → conv5 vs the study's baseline",
                        "fine-tuned conv5 vs linear probe", "genre → conv5 vs linear probe")
"""The comparisons notebook 09 shows per backbone (each judged within its backbone's own family)."""

ANCHORS = pd.DataFrame([
    {"model": "CLIP RN50x16 image features, linear probe", "image size": "384 px", "accuracy": 0.694,
     "source": "robinszym/EmotionPredictor c13d728, ArtEmis_testset_results/C-RN50x16 (recomputed)"},
    {"model": "CLIP ViT-B/16 image features, linear probe", "image size": "224 px", "accuracy": 0.681,
     "source": "robinszym/EmotionPredictor c13d728, ArtEmis_testset_results/C-ViT-B16 (recomputed)"},
    {"model": "ImageNet ResNet-50 features, linear probe", "image size": "224 px", "accuracy": 0.590,
     "source": "robinszym/EmotionPredictor c13d728, ArtEmis_testset_results/I-resnet50 (recomputed)"},
    {"model": "ImageNet ResNet-34, layer4 fine-tuned + MLP head (ArtEmis's classifier)", "image size": "256 px",
     "accuracy": 0.602, "source": "optas/artemis d84b719, image_to_emotion_classifier.ipynb cell 17 (quoted)"},
]).assign(n_scored=3023, metric="top emotion of nine, test paintings where > 50% of annotators agree",
          data="ArtEmis's official test split (7,933 paintings) — other data, split and protocol than this run")
"""Published anchors on ArtEmis's own metric, quoted for scale only. The three probes were recomputed from the
committed test predictions (argmax against the vote distribution's argmax on the 3,023 test paintings with a
> 50% emotion); ArtEmis's figure is its notebook's printed output (its predictions are not committed). Not
comparable to a demo run: other paintings, split, image sizes, model selection, and the nine-emotion task rather
than positive/negative."""


def emotion_table(run_dir: str | Path, backbones: list[str], confidence: float = 0.95) -> pd.DataFrame:
    """Per backbone, its emotion stages' accuracy with the seed- and artist-aware interval, the majority baseline,
    and the weights the backbone used (from results.csv's backbone_weights)."""
    parts = []
    for backbone in backbones:
        results = load_results(run_dir, backbone)
        results = results.loc[results["stage"].isin(BACKBONE_STAGES)]
        emotion = rows_of(results, EMOTION)
        summary = summary_table(emotion, run_dir, confidence)
        weights = ", ".join(sorted(set(emotion["backbone_weights"].astype(str))))
        parts.append(summary.assign(backbone=backbone, weights=weights))
    table = pd.concat(parts, ignore_index=True)
    columns = ["backbone", "weights", "stage", "trained_blocks", "n_seeds", "n_test", "accuracy_mean",
               "accuracy_ci_low", "accuracy_ci_high", "majority_baseline_accuracy"]
    return table[[c for c in columns if c in table.columns]]


def blocks_table(backbones: list[str], image_size: int = 224) -> pd.DataFrame:
    """Per backbone: its source, default weights, the modules of the conv4 and conv5 roles and their parameter
    counts, and the pooled feature width (built on the meta device: no weights are read or allocated)."""
    import torch

    from artlib.models.backbone import ArtNet
    from artlib.models.networks import create_backbone
    from artlib.models.registry import get_backbone

    rows = []
    for name in backbones:
        spec = get_backbone(name)
        with torch.device("meta"):
            table = ArtNet(create_backbone(spec, image_size), 2, spec=spec).parameter_table().set_index("block")
        rows.append({"backbone": name, "architecture": spec.title,
                     "pretrained weights": f"timm {spec.timm_name}" if spec.timm_name else "torchvision IMAGENET1K_V2",
                     "conv4 role": table.loc["conv4", "modules"], "conv4 parameters": int(table.loc["conv4", "parameters"]),
                     "conv5 role": table.loc["conv5", "modules"], "conv5 parameters": int(table.loc["conv5", "parameters"]),
                     "features": spec.features})
    return pd.DataFrame(rows)


def verdicts(run_dir: str | Path, backbones: list[str], alpha: float = 0.05,
             allow_unconverged: bool = False) -> tuple[pd.DataFrame, dict[str, str]]:
    """Judge each backbone's binary and linear-probe families (writing their rows of verdicts.csv); the rows of
    BACKBONE_COMPARISONS with their backbone, and each family's conclusion."""
    from artlib.analysis.family import family_name, judge_family
    from artlib.stages import BINARY, LINEAR_PROBE

    rows, conclusions = [], {}
    for backbone in backbones:
        summary = summary_table(load_results(run_dir, backbone), run_dir)  # once for both families
        for members in (BINARY, LINEAR_PROBE):
            judgement = judge_family(run_dir, family_name(members, backbone), alpha, allow_unconverged=allow_unconverged,
                                     summary=summary)
            table = judgement.table
            rows.append(table.loc[table["comparison"].isin(BACKBONE_COMPARISONS)].assign(backbone=backbone))
            conclusions[judgement.family] = judgement.conclusion
    return pd.concat(rows, ignore_index=True), conclusions
