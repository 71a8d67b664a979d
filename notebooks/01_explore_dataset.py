# %% [markdown]
# # 01 · Explore the dataset
#
# What the two CSVs and the image archive hold before any labelling: paintings per style and era, annotations per painting, the emotions annotators chose, and what paintings of each era look like.
#
# With the default `data_root = "demo"` this runs on artlib's **synthetic demo data** — generated pictures in the exact WikiArt/ArtEmis formats, not paintings (see `artlib/demo.py`). Point `data_root` at a folder holding `archive/`, `data_gen/classes.csv` and `data_em/artemis_dataset_release_v0.csv` to explore the real data.

# %% tags=["parameters"]
data_root: str       = "demo"           # a data root or "demo" (synthetic, generated on first use)
run_dir: str         = "runs/demo"      # figures are written to run_dir/figures
era_map: str         = "chronological"  # or "seed" (the original study's map)
samples_per_era: int = 6
seed: int            = 0

# %%
# NBVAL_IGNORE_OUTPUT
import matplotlib.pyplot as plt

from artlib import workflow
from artlib.data import explore
from artlib.analysis import plots

session = workflow.start(data_root, run_dir)
classes, artemis = explore.load_raw(session.data_root)

# %% [markdown]
# ## Paintings per style and era

# %%
# NBVAL_CHECK_OUTPUT
styles = explore.style_counts(classes, era_map)
print(f"{len(classes):,} paintings in classes.csv over {len(styles)} style folders")
explore.era_counts(styles)

# %%
# NBVAL_IGNORE_OUTPUT
plots.style_bars(styles, session.figures / "01_styles.png")
plt.show()

# %% [markdown]
# ## Annotations per painting

# %%
# NBVAL_CHECK_OUTPUT
per_painting = explore.annotations_per_painting(artemis)
print(f"{len(artemis):,} annotations of {len(per_painting):,} paintings; "
      f"{per_painting.mean():.2f} per painting (min {per_painting.min()}, max {per_painting.max()})")

# %%
# NBVAL_IGNORE_OUTPUT
plots.annotation_histogram(per_painting, session.figures / "01_annotations.png")
plt.show()

# %% [markdown]
# ## Which emotions did annotators choose?
#
# ArtEmis offers eight emotions plus *something else*. The study groups them into positive (amusement, awe, contentment, excitement) and negative (anger, disgust, fear, sadness).

# %%
# NBVAL_CHECK_OUTPUT
distribution = explore.emotion_distribution(artemis, era_map)
explore.polarity_share(distribution)

# %%
# NBVAL_IGNORE_OUTPUT
plots.emotion_bars(distribution, session.figures / "01_emotions.png")
plt.show()

# %% [markdown]
# ## What each era looks like

# %%
# NBVAL_IGNORE_OUTPUT
sample = explore.sample_by_era(classes, session.archive, samples_per_era, seed, era_map)
grid = plots.image_grid(workflow.load_samples(session, sample), [p.split("/")[0][:18] for p in sample["image_path"]],
                        rows=4, cols=samples_per_era, row_labels=["Renaissance", "Post-Ren.", "Modern", "Contemporary"],
                        path=session.figures / "01_samples.png")
plots.show_as_jpeg(grid)
