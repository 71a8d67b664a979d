# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.16.0
#   kernelspec:
#     display_name: Python 3 (artlib)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Does genre still help with today's backbones?
#
# The study fine-tunes an ImageNet ResNet50. Since then, frozen CLIP features alone do far better on ArtEmis
# (the table at the end). So two questions, asked per backbone on the same paintings:
#
# 1. **Does genre pretraining still help?** Configuration 1 (genre on conv4, then emotion on conv5) against its
#    matched control (emotion on conv4, then conv5) and the study's baseline (emotion on conv5 only).
# 2. **Does fine-tuning beat a linear probe at all?** The probe: the backbone frozen, its pooled features
#    computed once, a logistic regression fitted on them (regularisation chosen on the validation split).
#
# Every backbone maps the study's blocks onto its own (the first table). Each backbone's verdicts are its own
# Holm family. The demo trains small images for a few epochs, and a backbone whose pretrained weights cannot be
# downloaded here starts from **random weights** — its row says so; such a run shows that the pipeline works,
# not how good the backbone is.

# %% tags=["parameters"]
data_root: str        = "demo"                          # a data root (archive/, data_gen/, data_em/) or "demo"
run_dir: str          = "runs/demo"                     # where results are read and written
backbones: list[str]  = ["resnet50", "convnext_tiny"]   # any of resnet50, resnet34, convnext_tiny, vit_b16, clip_vit_b16
image_size: int       = 64                              # pixels (the study: 224; ViTs need a multiple of 16)
epochs: int           = 4
batch_size: int       = 32
lr: float             = 1e-4
seeds: list[int]      = [0, 1]
weights: str          = "auto"                          # per backbone: its pretrained weights, else a labelled fallback
device: str           = "auto"
precision: str        = "auto"
alpha: float          = 0.05                            # family-wise error rate of each backbone's verdicts
allow_unconverged: bool = False                         # decide comparisons of stages still improving when stopped

# %%
# NBVAL_IGNORE_OUTPUT
from dataclasses import replace

import matplotlib.pyplot as plt
import timm  # noqa: F401 (it builds every backbone but resnet50; imported here, where its notices are ignored)

from artlib import workflow
from artlib.analysis import backbones as study, plots

session = workflow.start(data_root, run_dir)
training = workflow.training(session, globals())  # the parameters cell's values; a manifest if 02 has not run
per_backbone = {b: replace(training, config=replace(training.config, backbone=b)) for b in backbones}

# %% [markdown]
# ## The backbones and the study's blocks on each
#
# Every backbone has the study's five blocks in forward order; stages train the two named `conv4` and `conv5`.

# %%
# NBVAL_CHECK_OUTPUT
study.blocks_table(backbones, image_size)

# %% [markdown]
# ## Training: configuration 1, its matched control and the linear probe, per backbone
#
# Stage-runs that finished earlier with the same settings (notebooks 03 and 05 for resnet50) are reused.

# %%
# NBVAL_IGNORE_OUTPUT
for backbone, settings in per_backbone.items():
    for stage in study.BACKBONE_STAGES:
        workflow.train_stage(settings, stage)
    plt.close("all")

# %% [markdown]
# ## Accuracy by backbone
#
# Mean over seeds with the seed- and artist-aware interval, on each backbone's own test paintings (the same split
# for all). The weights each backbone started from are named in the table and under the figure.

# %%
# NBVAL_IGNORE_OUTPUT
table = study.emotion_table(session.run_dir, backbones)
plots.backbone_accuracy(table, session.figures / "09_backbone_accuracy.png")
plt.show()
table.round(3)

# %% [markdown]
# ## Verdicts per backbone
#
# Each backbone's comparisons are judged in its own families, with the same rule as notebook 06: the study's
# binary comparisons (for resnet50 also configurations 2 and 3, as in notebook 06) and the comparisons with the
# linear probe, Holm within each family. Shown here: the two questions above.

# %%
# NBVAL_IGNORE_OUTPUT
verdicts, conclusions = study.verdicts(session.run_dir, backbones, alpha, allow_unconverged)
for name, text in conclusions.items():
    print(f"--- family {name} ---\n{text}\n")
verdicts[["backbone", "family", "comparison", "verdict", "reason", "difference", "ci_low", "ci_high", "p_adjusted",
          "n_seeds"]].round(4)

# %% [markdown]
# ## For scale: published figures on ArtEmis's own metric
#
# Other data, split and protocol: ArtEmis's nine emotions on its official test split at full scale — not this
# run's positive/negative task on the demo paintings. Quoted so a reader knows what today's features reach.

# %%
# NBVAL_CHECK_OUTPUT
study.ANCHORS[["model", "image size", "accuracy", "n_scored", "source"]]
