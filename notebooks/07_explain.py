# %% [markdown]
# # 07 · Explain: where do the emotion models look?
#
# Grad-CAM on the last convolutional block (conv5) for a sample of test paintings — correct and wrong, both classes — the emotion-only baseline next to the genre-informed model. Brighter means more evidence for the class each model predicted. (The study's future work asked for exactly this.)

# %% tags=["parameters"]
data_root: str      = "demo"
run_dir: str        = "runs/demo"
baseline_stage: str = "emotion_conv5"
informed_stage: str = "genre_conv4_then_emotion_conv5"
seed: int           = 0
per_group: int      = 2                                 # paintings per (true class, correct/wrong) group
alpha: float        = 0.45                              # heatmap opacity

# %%
# NBVAL_IGNORE_OUTPUT

from artlib import workflow
from artlib.analysis import explain
from artlib.analysis import plots
from artlib.models.stored import load_stage_model

session = workflow.start(data_root, run_dir)
baseline, _ = load_stage_model(session.run_dir, baseline_stage, seed, task="emotion")
informed, informed_metrics = load_stage_model(session.run_dir, informed_stage, seed, task="emotion")
image_size = int(informed_metrics["result"]["image_size"])

# %% [markdown]
# ## The sample

# %%
# NBVAL_IGNORE_OUTPUT
sample = explain.paired_sample(session.run_dir, baseline_stage, informed_stage, seed, per_group)
sample[["image_path", "label", "predicted", "probability", "correct", "baseline_predicted"]]

# %%
# NBVAL_CHECK_OUTPUT
images = explain.load_images(session.archive, sample["image_path"], image_size)
heat_base = explain.gradcam(baseline, images, explain.class_index(sample["baseline_predicted"], "emotion"))
heat_info = explain.gradcam(informed, images, explain.class_index(sample["predicted"], "emotion"))
print(f"{len(images)} paintings at {images.shape[1]} px; heatmaps within [0, 1]: "
      f"{all(h.min() >= 0 and h.max() <= 1 and h.shape == images.shape[:3] for h in (heat_base, heat_info))}")

# %% [markdown]
# ## Baseline vs genre-informed, side by side

# %%
# NBVAL_IGNORE_OUTPUT
tiles, titles = explain.side_by_side(sample, images, heat_base, heat_info, alpha)
grid = plots.image_grid(tiles, titles, rows=len(sample), cols=3, path=session.figures / "07_gradcam.png", size=2.2)
plots.show_as_jpeg(grid)
