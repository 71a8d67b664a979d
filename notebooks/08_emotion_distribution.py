# %% [markdown]
# # 08 · ArtEmis's own task: the distribution of nine emotions — does genre help there?
#
# The study collapses ArtEmis's nine emotions into positive/negative and keeps only paintings whose annotators agreed
# on a polarity. ArtEmis's own classifier does something else: for every painting with at least 5 annotations it
# predicts the whole distribution of the nine emotions (amusement, awe, contentment, excitement, anger, disgust,
# fear, sadness, something else), trained against the annotators' vote shares with a KL-divergence loss, and it is
# judged by the **accuracy of its top emotion on test paintings where one emotion has more than half of the votes**
# (also reported: at least half). This notebook asks the study's question on that task, with the same matched
# comparisons and seed-aware verdicts as notebook 06.
#
# Stages: `emotion9_conv5` (conv5 on nine emotions), `genre_conv4_then_emotion9_conv5` (genre on conv4 first), and
# its matched control `emotion9_conv4_then_emotion9_conv5`; with `include_conv45`, the conv4+conv5 counterparts.

# %% tags=["parameters"]
data_root: str          = "demo"       # a data root (archive/, data_gen/, data_em/) or "demo"
run_dir: str            = "runs/demo"  # where results are read and written
backbone: str           = "resnet50"   # the study's; or resnet34, convnext_tiny, vit_b16, clip_vit_b16 (README: Backbones)
image_size: int         = 64           # pixels (ArtEmis: 256)
epochs: int             = 4
batch_size: int         = 32
lr: float               = 1e-4
seeds: list[int]        = [0, 1]       # one training run per seed
split_seeds: int | None = None         # train on the manifest's first K splits (None: every split notebook 02 wrote)
weights: str            = "auto"       # "imagenet", "self-supervised", "none", a .pth/.safetensors path, or "auto"
device: str             = "auto"
precision: str          = "auto"
min_annotations: int    = 5            # paintings with at least this many votes (ArtEmis's own filter)
include_conv45: bool    = False        # also train the conv4+conv5 counterparts (three more stages per seed)
executor: str           = "local"      # "local" or "ray"
alpha: float            = 0.05         # family-wise error rate of the verdicts (Holm within the nine-emotion family)
allow_unconverged: bool = False        # decide comparisons of stages still improving when stopped (the verdicts say so)

# %%
# NBVAL_IGNORE_OUTPUT
import matplotlib.pyplot as plt
from IPython.display import display

from artlib import workflow
from artlib.analysis import compare, family, plots
from artlib.stages import CONFIGURATIONS, EMOTION9_COMPARISONS, NINE_EMOTION, STAGES
from artlib.train.config import TrainConfig
from artlib.train.driver import run_stages
from artlib.train.grid import Executor

run_on = Executor(executor)  # where the stage-runs run, built once
session = workflow.start(data_root, run_dir)
manifest = workflow.ensure_manifest(session)
config = TrainConfig(image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr, weights=weights,
                     device=device, precision=precision, min_annotations=min_annotations, backbone=backbone)
stages = list(CONFIGURATIONS[4]) + (list(CONFIGURATIONS[5]) if include_conv45 else [])
comparisons = tuple(c for c in EMOTION9_COMPARISONS if c.stage in stages and c.baseline in stages)

# %% [markdown]
# ## The nine emotions in the data
#
# Share of all votes per emotion, per era. Then the task's paintings per split, and how many have a majority emotion.

# %%
# NBVAL_CHECK_OUTPUT
distribution = workflow.emotion9_distribution(manifest)
distribution

# %%
# NBVAL_IGNORE_OUTPUT
plots.emotion9_shares(distribution, session.figures / "08_emotion_shares.png")
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
workflow.emotion9_subsets(manifest, min_annotations)

# %% [markdown]
# ## Training the nine-emotion stages
#
# Same freezing, caches, early stopping, resume and seeds as every other stage; the loss is the KL divergence from
# the vote shares to the predicted distribution (`artlib.train.losses.SoftTargetKL`). `genre_conv4` is reused from
# notebook 03 when it has run.

# %%
# NBVAL_CHECK_OUTPUT
for name in stages:
    stage = STAGES[name]
    print(f"{name:40s} trains {stage.trained_blocks:12s} starts from {stage.init_from or 'the pretrained backbone'}")

# %%
# NBVAL_IGNORE_OUTPUT
run_stages(stages, session.run_dir, config, seeds=seeds, split_seeds=split_seeds, executor=run_on)
results = compare.load_results(session.run_dir, backbone)

# %% [markdown]
# ## ArtEmis's metrics, beside the majority-emotion baseline and the published anchor
#
# `dominant` = test paintings where one emotion has more than half of the votes: the stage's **scored** paintings
# (`scored` = 1 in its predictions.csv). Every figure under a plain name — accuracy, F1, balanced accuracy, `n_test`,
# both trivial baselines, the training log's test accuracy, comparison.csv, the confusion matrix below and the
# verdicts — is on that one set, and both baselines (the majority emotion, each era's majority emotion) are chosen
# on the training paintings of the same subset. The other columns name their set: `at_least_half` counts a 50/50
# tie too; `mean_kl` is the mean KL divergence from the annotated shares to the prediction over every test painting
# (lower is better). `polarity_accuracy` sums the four positive and the four negative emotions' probabilities and
# scores the larger against the binary label, on the test paintings that have one (≥ 5 votes and a binary label);
# the section below compares with the binary models on exactly the paintings both scored.

# %%
# NBVAL_IGNORE_OUTPUT
compare.emotion9_table(results).round(3)

# %%
# NBVAL_CHECK_OUTPUT
print("Published anchor — other data and backbone, quoted for scale only, not comparable to this run:")
compare.ANCHORS

# %% [markdown]
# ## The same paintings, judged as positive/negative: nine-way models against the binary ones
#
# Then the 9×9 confusion matrix of the first stage, summed over seeds, on its scored paintings (> 50% subset).

# %%
# NBVAL_IGNORE_OUTPUT
compare.polarity_comparison(session.run_dir, results).round(3)

# %%
# NBVAL_IGNORE_OUTPUT
plots.confusion_matrices({k: v for k, v in compare.confusion_matrices(session.run_dir, results, "emotion9").items()
                          if k in stages[:1]}, session.figures / "08_confusion_emotion9.png")
plt.show()

# %% [markdown]
# ## Predicted against annotated distributions, for a few test paintings

# %%
# NBVAL_IGNORE_OUTPUT
sample = compare.load_predictions(session.run_dir, stages[1], seeds[0], backbone=backbone).sample(4, random_state=0)
plots.distribution_pairs(sample, STAGES[stages[1]].classes, session.figures / "08_distributions.png")
plt.show()

# %% [markdown]
# ## The verdicts (accuracy of the top emotion on the > 50% subset)
#
# The rule of notebook 06 (seeds, artists and paintings random): improved or worse only with ≥ 3 seeds, stages that
# had stopped improving, not both models below the stronger trivial baseline, an interval that excludes 0 after
# Holm's correction within the `nine-emotion` family, no seed's own difference going the other way, and the better
# model significantly above the stronger trivial baseline; otherwise inconclusive, with the reason. The conclusion
# states the error rate across the families in `verdicts.csv` (this one and notebook 06's `binary`).

# %%
# NBVAL_IGNORE_OUTPUT
summary = compare.summary_table(results[results["stage"].isin(stages)], session.run_dir)
judgement = family.judge_family(session.run_dir, family.family_name(NINE_EMOTION, backbone), alpha, (),
                                allow_unconverged, comparisons, summary)
table = judgement.table
plots.verdict_forest(table, session.figures / "08_verdicts.png")
plt.show()
display(table[["comparison", "kind", "verdict", "reason", "difference", "ci_low", "ci_high", "p_adjusted", "unit",
               "n_units"]].round(4))
print(judgement.conclusion)
print(judgement.plan_text)
