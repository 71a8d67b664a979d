# %% [markdown]
# # 06 · Compare the results — and decide what they show
#
# Does genre training help emotion classification, and is sequential block training better than simultaneous?
# Everything here is computed from `results.csv`, the per-painting `predictions.csv` files notebooks 03–05 wrote
# and the manifest, so it can be rerun at any time.
#
# **How every number is made** (details in `artlib/analysis/stats.py`):
#
# * **± values** are the standard deviation over training seeds.
# * **Intervals treat the training seed, the artist and the painting as random.** A model trained with another
#   seed, or tested on other artists' paintings, would score differently; WikiArt's paintings cluster by artist
#   (a stage that suits an artist suits most of that artist's paintings), so artists — not paintings — are the
#   independent units (paintings, when the manifest has no artists). One stage's accuracy interval is
#   Clopper–Pearson at the seed- and artist-aware effective sample size (never of zero width); a difference's
#   interval is a t interval with the crossed seeds × artists variance. With several splits
#   (`prepare --split-seeds K`) the split's own variance is included; with one, every verdict is conditional on it.
# * **Two trivial baselines** sit beside every number, on the same test paintings: always answering the training
#   split's majority class, and answering each era's majority emotion (the *era-prior* baseline — what knowing the
#   era buys without looking at the painting).
# * **Matched controls.** `genre_conv4 → emotion_conv5` is judged against `emotion_conv4 → emotion_conv5` (same
#   blocks, same order, no genre), and `genre_conv45 → emotion_conv45` against `emotion_conv45 → emotion_conv45`.
#   Only these isolate genre; the study's own comparisons are kept beside them, labelled "original".
#
# **The verdict rule** (one function, `artlib.analysis.verdicts.decide`): a comparison is **improved** or **worse**
# only when at least 3 seeds ran, both stages had stopped improving (or `allow_unconverged` is set), not both models
# are below the stronger trivial baseline, the interval of the difference excludes 0 after Holm's correction over
# the seven comparisons of this family (its p-value is floored by an exact sign test over the artists that differ,
# in the difference's direction), no seed's own difference goes the other way, and the better model is itself
# significantly above the stronger trivial baseline. Otherwise it is **inconclusive**, with the reason.

# %% tags=["parameters"]
data_root: str            = "demo"
run_dir: str              = "runs/demo"
backbone: str             = "resnet50"   # whose stages to judge: the family is "binary" (resnet50) or "binary:<backbone>"
confidence: float         = 0.95         # intervals of single stages
alpha: float              = 0.05         # family-wise error rate of the verdicts (Holm within the binary family)
allow_mismatch: list[str] = []           # settings compared stages may differ in, e.g. ["backbone_weights"] (the tables then say so)
allow_unconverged: bool   = False        # decide comparisons of stages still improving when stopped (the verdicts then say so)

# %%
# NBVAL_IGNORE_OUTPUT
import matplotlib.pyplot as plt
from IPython.display import display

from artlib import workflow
from artlib.analysis import compare, family, plots, verdicts
from artlib.stages import BINARY, COMPARISONS

session = workflow.start(data_root, run_dir)
results = compare.load_results(session.run_dir, backbone)
allow = tuple(allow_mismatch)

# %%
# NBVAL_CHECK_OUTPUT
print(f"{len(results)} results: {results['stage'].nunique()} stages × {results['seed'].nunique()} seeds "
      f"({results['task'].value_counts().sort_index().to_dict()})")

# %% [markdown]
# ## Were the compared stages trained alike?
#
# Backbone weights, image size, epochs, learning rate, label rule, era map and the manifest must match, or a
# comparison is refused with the differing setting named (`allow_mismatch` overrides, and says so).

# %%
# NBVAL_CHECK_OUTPUT
compare.check_comparable(results, list(results["stage"].unique()), allow) or "every recorded setting matches"

# %% [markdown]
# ## Every stage: mean ± std over seeds, its interval and both trivial baselines

# %%
# NBVAL_IGNORE_OUTPUT
summary = compare.summary_table(results, session.run_dir, confidence)
summary[["stage", "n_seeds", "n_test", "accuracy_mean", "accuracy_std", "accuracy_ci_low", "accuracy_ci_high",
         "f1_mean", "majority_baseline_accuracy", "era_prior_baseline_accuracy", "still_improving"]].round(3)

# %%
# NBVAL_CHECK_OUTPUT
print("stages compared:", ", ".join(summary["stage"]))
print("intervals of zero width:", int((summary["accuracy_ci_high"] <= summary["accuracy_ci_low"]).sum()))

# %% [markdown]
# ## Tables 1–3 in the original study's layout
#
# With both trivial baselines as rows; `*` marks a stage still improving when it stopped (raise `epochs`).

# %%
# NBVAL_IGNORE_OUTPUT
for number, table in compare.original_tables(summary, confidence).items():
    print(f"Table {number}: configuration {number}")
    display(table)

# %%
# NBVAL_IGNORE_OUTPUT
emotion = summary[summary["task"] == "emotion"].reset_index(drop=True)
plots.accuracy_bars(emotion, confidence, session.figures / "06_emotion_accuracy.png")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
plots.confusion_matrices(compare.confusion_matrices(session.run_dir, results, task="emotion"),
                         session.figures / "06_confusion_emotion.png")
plt.show()

# %% [markdown]
# ## The verdicts
#
# Every comparison of the `binary` family, the matched controls first. `p_adjusted` is Holm-adjusted within the
# family; the interval is at the level Holm tested that comparison at; `unit` says what was treated as the
# independent unit (artists, or paintings when the manifest has none) and `n_splits` how many splits were pooled;
# `detectable` is about the smallest difference this run could have found with 80% power at α divided by the number
# of comparisons (Holm's first step). Writing this family replaces its rows in `verdicts.csv`
# (`python -m artlib compare --run-dir …` computes exactly the same).

# %%
# NBVAL_CHECK_OUTPUT
for c in COMPARISONS:
    print(f"{c.kind:27s} {c.stage} vs {c.baseline}")

# %%
# NBVAL_IGNORE_OUTPUT
judgement = family.judge_family(session.run_dir, family.family_name(BINARY, backbone), alpha, allow, allow_unconverged,
                                summary=summary)
table = judgement.table
table[["comparison", "kind", "verdict", "reason", "difference", "ci_low", "ci_high", "p_adjusted", "n_seeds", "unit",
       "n_units", "n_splits", "detectable_difference"]].round(4)

# %%
# NBVAL_IGNORE_OUTPUT
plots.verdict_forest(table, session.figures / "06_verdicts.png")
plt.show()

# %% [markdown]
# ## Conclusion (generated from the verdicts above)

# %%
# NBVAL_IGNORE_OUTPUT
print(judgement.conclusion)

# %% [markdown]
# ## What would decide it: seeds and splits for 2, 5 and 10 points
#
# From this run's own variance components: the seed part shrinks with more seeds, the artists' part only with more
# test artists (more splits). Approximate, and optimistic about splits when only one was run.

# %%
# NBVAL_IGNORE_OUTPUT
print(judgement.plan_text)

# %% [markdown]
# ## Detail: each seed on its own (exact McNemar)
#
# Per seed, paintings only the stage got right vs only the baseline; these p-values treat the trained models as
# fixed and are not corrected — detail for reading, not for deciding.

# %%
# NBVAL_IGNORE_OUTPUT
verdicts.detail_by_seed(session.run_dir, results).round(4)

# %% [markdown]
# ## Per era (exploratory)
#
# No test is made per era: with few test paintings per era, the era where "genre helped" is easy to find by
# chance. Eras with fewer than 30 test paintings are faded.

# %%
# NBVAL_IGNORE_OUTPUT
per_era = compare.per_era_accuracy(session.run_dir, results, confidence)
plots.per_era_bars(per_era, session.figures / "06_per_era.png")
plt.show()
per_era.round(3)

# %%
# NBVAL_IGNORE_OUTPUT
compare.write_comparison(session.run_dir, summary)
print(f"wrote comparison.csv ({len(summary)} stages), verdicts.csv ({len(table)} comparisons) and "
      f"{len(list(session.figures.glob('06_*.png')))} figures")

# %%
# NBVAL_CHECK_OUTPUT
import pandas as pd

from artlib import rundir

print(list(pd.read_csv(rundir.verdicts(session.run_dir)).columns))
