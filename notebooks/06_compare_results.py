# %% [markdown]
# # 06 · Compare the results
#
# Does genre training help emotion classification, by how much, and is the difference larger than seed-to-seed noise? Everything here is computed from `results.csv` and the per-painting `predictions.csv` files that notebooks 03–05 wrote, so it can be rerun at any time.
#
# * **± values** are the standard deviation over training seeds;
# * **[95% CI]** is a bootstrap over test paintings of the seed-averaged metric;
# * **p-values** compare two models on the *same* test paintings (exact McNemar per seed; an exact paired permutation test on seed-averaged correctness when seeds are pooled);
# * the **majority baseline** is what always answering the most frequent training class scores on the same test paintings — the original study never reported it, and several of its emotion models were below it.

# %% tags=["parameters"]
data_root   = "demo"
run_dir     = "runs/demo"
n_boot      = 2000     # bootstrap resamples for confidence intervals
confidence  = 0.95
alpha       = 0.05     # significance level of the paired tests

# %%
# NBVAL_IGNORE_OUTPUT
import matplotlib.pyplot as plt

from IPython.display import display

from artlib import workflow
from artlib.analysis import compare
from artlib.analysis import plots

session = workflow.start(data_root, run_dir)
results = compare.load_results(session.run_dir)

# %%
# NBVAL_CHECK_OUTPUT
print(f"{len(results)} results: {results['stage'].nunique()} stages × {results['seed'].nunique()} seeds "
      f"({results['task'].value_counts().sort_index().to_dict()})")

# %% [markdown]
# ## Every stage: mean ± std over seeds, with confidence intervals

# %%
# NBVAL_IGNORE_OUTPUT
summary = compare.summary_table(results, session.run_dir, n_boot=n_boot, confidence=confidence, alpha=alpha)
summary[["configuration", "stage", "task", "n_seeds", "accuracy_mean", "accuracy_std", "accuracy_ci_low",
         "accuracy_ci_high", "f1_mean", "f1_std", "majority_baseline_accuracy"]].round(3)

# %% [markdown]
# ## Tables 1–3 in the original study's layout

# %%
# NBVAL_IGNORE_OUTPUT
tables = compare.original_tables(results, session.run_dir, summary=summary)
for number, table in tables.items():
    print(f"Table {number}: configuration {number}")
    display(table)

# %% [markdown]
# ## Emotion stages against the always-majority baseline

# %%
# NBVAL_IGNORE_OUTPUT
emotion = summary[summary["task"] == "emotion"].reset_index(drop=True)
plots.metric_bars(emotion, "accuracy", baseline=float(emotion["majority_baseline_accuracy"].iloc[0]),
                  path=session.figures / "06_emotion_accuracy.png")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
plots.metric_bars(emotion, "f1", path=session.figures / "06_emotion_f1.png")
plt.show()

# %% [markdown]
# ## Confusion matrices (test paintings, summed over seeds)

# %%
# NBVAL_IGNORE_OUTPUT
plots.confusion_matrices(compare.confusion_matrices(session.run_dir, results, task="emotion"),
                         session.figures / "06_confusion_emotion.png")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
plots.confusion_matrices(compare.confusion_matrices(session.run_dir, results, task="genre"),
                         session.figures / "06_confusion_genre.png")
plt.show()

# %% [markdown]
# ## Genre-informed (or sequential) stage against its emotion-only baseline
#
# Same test paintings, same seeds. `b`: paintings only the stage got right; `c`: only the baseline.

# %%
# NBVAL_IGNORE_OUTPUT
tests = compare.paired_tests(session.run_dir, results, n_boot=n_boot, confidence=confidence, alpha=alpha)
pooled = tests[tests["seed"] == "pooled"]
pooled[["comparison", "stage", "baseline", "accuracy_stage", "accuracy_baseline", "accuracy_diff",
        "accuracy_diff_ci_low", "accuracy_diff_ci_high", "b", "c", "p_value", "significant"]].round(4)

# %% [markdown]
# ## Conclusion (generated from the numbers above)

# %%
# NBVAL_IGNORE_OUTPUT
print(compare.conclusion_text(tests, summary, alpha=alpha))

# %% [markdown]
# ## Does genre help some eras more than others?

# %%
# NBVAL_IGNORE_OUTPUT
per_era = compare.per_era_accuracy(session.run_dir, results)
plots.per_era_bars(per_era.rename(columns={"accuracy_mean": "accuracy"}), session.figures / "06_per_era.png")
plt.show()
per_era.pivot_table(index="stage", columns="era", values="accuracy_mean", sort=False).round(3)

# %%
# NBVAL_IGNORE_OUTPUT
comparison = compare.write_comparison(session.run_dir, n_boot=n_boot, confidence=confidence, alpha=alpha)
print(f"wrote comparison.csv ({len(comparison)} stages) and {len(list(session.figures.glob('06_*.png')))} figures")
