"""Write the numbered notebooks from the cell sources below (then `make notebooks` executes them).

The notebooks are thin: every cell calls artlib. Keeping their sources here makes reviews
readable; after editing, run `make notebooks` so the committed notebooks carry the outputs
of a run of their default parameters (what nbval compares).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
CHECK = "# NBVAL_CHECK_OUTPUT\n"
IGNORE = "# NBVAL_IGNORE_OUTPUT\n"
SKIP = "# NBVAL_SKIP\n"

TRAIN_PARAMETERS = '''data_root     = "demo"        # a data root (archive/, data_gen/, data_em/) or "demo"
run_dir       = "runs/demo"   # where results are read and written
image_size    = 96            # pixels (the study: 224)
epochs        = 5             # the study: 100
batch_size    = 32
lr            = 1e-4          # Adam learning rate (the study: 1e-6)
weight_decay  = 0.0
seeds         = [0, 1]        # one training run per seed, for spread and significance
weights       = "auto"        # "imagenet", "self-supervised", "none", a .pth/.safetensors path, or "auto"
device        = "auto"        # "cuda", "mps", "cpu" or "auto"
precision     = "auto"        # "bf16" where the hardware has it natively, else "fp32"
augment       = False         # flips and small affine changes (turns the feature cache off)
feature_cache = True          # cache what the frozen blocks compute (exact; used without augmentation)
class_weights = True          # per-class weights against imbalance
monitor       = "val_loss"    # early stopping metric: val_loss, val_accuracy, val_f1, val_balanced_accuracy
patience      = 3             # epochs without improvement before stopping
force         = False         # retrain stages that already finished with these settings'''

TRAIN_SETUP = IGNORE + '''import matplotlib.pyplot as plt

from artlib import workflow
from artlib.analysis import plots
from artlib.train.runner import run_stages
from artlib.stages import CONFIGURATIONS, STAGES
from artlib.train.config import TrainConfig

session = workflow.start(data_root, run_dir)
manifest = workflow.ensure_manifest(session)
config = TrainConfig(image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                     class_weights=class_weights, monitor=monitor, patience=patience, augment=augment,
                     feature_cache=feature_cache, weights=weights, device=device, precision=precision)
config'''


def stage_cells(stage: str, configuration: int) -> list:
    """Markdown, parameter table, training, curves and test metrics for one stage."""
    return [
        new_markdown_cell(f"### Stage `{stage}`"),
        new_code_cell(CHECK + f'''from artlib.models.backbone import ArtNet

stage = STAGES["{stage}"]
print(f"task: {{stage.task}} ({{len(stage.classes)}} classes)  trains: {{stage.trained_blocks}}  "
      f"starts from: {{stage.init_from or 'the pretrained backbone'}}")
ArtNet.build(len(stage.classes)).freeze_all().unfreeze(*stage.blocks).parameter_table()'''),
        new_code_cell(IGNORE + f'''run_stages(["{stage}"], session.run_dir, config, seeds=seeds, force=force)
workflow.stage_metrics(session.run_dir, "{stage}")'''),
        new_code_cell(IGNORE + f'''plots.loss_curves(workflow.stage_histories(session.run_dir, "{stage}", seeds),
                  session.figures / "loss_{stage}.png")
plt.show()'''),
    ]


def training_notebook(configuration: int, title: str, intro: str) -> nbformat.NotebookNode:
    """Notebook 03/04/05: one configuration's stages, then its table in the original's format."""
    from artlib.stages import CONFIGURATIONS

    cells = [new_markdown_cell(f"# {title}\n\n{intro}"),
             new_code_cell(TRAIN_PARAMETERS, metadata={"tags": ["parameters"]}),
             new_code_cell(TRAIN_SETUP)]
    for stage in CONFIGURATIONS[configuration]:
        cells += stage_cells(stage, configuration)
    cells += [
        new_markdown_cell("## The configuration's table, in the original study's format\n\n"
                          "Mean ± standard deviation over seeds; the last row is what always answering the "
                          "majority class scores on the same test paintings (the original never reported it). "
                          "Notebook 06 adds confidence intervals and significance tests."),
        new_code_cell(IGNORE + f'''from artlib import compare

compare.original_tables(compare.load_results(session.run_dir), session.run_dir)[{configuration}]'''),
    ]
    return new_notebook(cells=cells, metadata=_metadata())


def _metadata() -> dict:
    """Kernel python3 and language info, as JupyterLab writes them."""
    return {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"}}


def nb01() -> nbformat.NotebookNode:
    """01: explore the raw data."""
    cells = [
        new_markdown_cell(
            "# 01 · Explore the dataset\n\n"
            "What the two CSVs and the image archive hold before any labelling: paintings per style and era, "
            "annotations per painting, the emotions annotators chose, and what paintings of each era look like.\n\n"
            "With the default `data_root = \"demo\"` this runs on artlib's **synthetic demo data** — generated "
            "pictures in the exact WikiArt/ArtEmis formats, not paintings (see `artlib/demo.py`). Point "
            "`data_root` at a folder holding `archive/`, `data_gen/classes.csv` and "
            "`data_em/artemis_dataset_release_v0.csv` to explore the real data."),
        new_code_cell('''data_root        = "demo"           # a data root or "demo" (synthetic, generated on first use)
run_dir          = "runs/demo"      # figures are written to run_dir/figures
era_map          = "chronological"  # or "seed" (the original study's map)
samples_per_era  = 6
seed             = 0''', metadata={"tags": ["parameters"]}),
        new_code_cell(IGNORE + '''import matplotlib.pyplot as plt

from artlib import workflow
from artlib.data import explore
from artlib.analysis import plots

session = workflow.start(data_root, run_dir)
classes, artemis = explore.load_raw(session.data_root)'''),
        new_markdown_cell("## Paintings per style and era"),
        new_code_cell(CHECK + '''styles = explore.style_counts(classes, era_map)
print(f"{len(classes):,} paintings in classes.csv over {len(styles)} style folders")
explore.era_counts(styles)'''),
        new_code_cell(IGNORE + '''plots.style_bars(styles, session.figures / "01_styles.png")
plt.show()'''),
        new_markdown_cell("## Annotations per painting"),
        new_code_cell(CHECK + '''per_painting = explore.annotations_per_painting(artemis)
print(f"{len(artemis):,} annotations of {len(per_painting):,} paintings; "
      f"{per_painting.mean():.2f} per painting (min {per_painting.min()}, max {per_painting.max()})")'''),
        new_code_cell(IGNORE + '''plots.annotation_histogram(per_painting, session.figures / "01_annotations.png")
plt.show()'''),
        new_markdown_cell("## Which emotions did annotators choose?\n\n"
                          "ArtEmis offers eight emotions plus *something else*. The study groups them into "
                          "positive (amusement, awe, contentment, excitement) and negative (anger, disgust, fear, "
                          "sadness)."),
        new_code_cell(CHECK + '''distribution = explore.emotion_distribution(artemis, era_map)
explore.polarity_share(distribution)'''),
        new_code_cell(IGNORE + '''plots.emotion_bars(distribution, session.figures / "01_emotions.png")
plt.show()'''),
        new_markdown_cell("## What each era looks like"),
        new_code_cell(IGNORE + '''sample = explore.sample_by_era(classes, session.archive, samples_per_era, seed, era_map)
plots.image_grid(workflow.load_samples(session, sample), [p.split("/")[0][:18] for p in sample["image_path"]],
                 rows=4, cols=samples_per_era, row_labels=["Renaissance", "Post-Ren.", "Modern", "Contemporary"],
                 path=session.figures / "01_samples.png")
plt.show()'''),
    ]
    return new_notebook(cells=cells, metadata=_metadata())


def nb02() -> nbformat.NotebookNode:
    """02: build labels, eras and splits; write the manifest."""
    cells = [
        new_markdown_cell(
            "# 02 · Build labels, eras and splits\n\n"
            "Turns the data root into `run_dir/manifest.csv`: one row per usable painting with its emotion "
            "label (from all its ArtEmis annotations), its era (from its WikiArt style) and **one** split shared "
            "by every task, so no emotion test painting is ever seen while training on genre. Near-duplicates "
            "(same `phash`) stay in the same split. Every image is checked once; what cannot be used is listed "
            "by reason in `prepare_report.json`."),
        new_code_cell('''data_root        = "demo"           # a data root or "demo"
run_dir          = "runs/demo"
label_rule       = "unanimous"      # or "majority" (strictly more than half of the polar votes)
era_map          = "chronological"  # or "seed" (the original study's map)
seed             = 0
train_fraction   = 0.70
val_fraction     = 0.15
test_fraction    = 0.15
group_by         = "phash"          # "phash" (near-duplicates together), "artist" (artist-disjoint) or "none"
cap_per_era      = None             # e.g. 2900 for the original's balanced genre subsets
cap_per_emotion  = None
check_images     = True
export_layout    = None             # a folder: symlink the original's one-folder-per-class layout there''',
                      metadata={"tags": ["parameters"]}),
        new_code_cell(IGNORE + '''from artlib import plots, workflow
from artlib.data.funnel import format_funnel
from artlib.data.manifest import export_layout as export
from artlib.data.prepare import PrepareConfig, prepare
import matplotlib.pyplot as plt

session = workflow.start(data_root, run_dir)
config = PrepareConfig(label_rule=label_rule, era_map=era_map, seed=seed,
                       fractions=(train_fraction, val_fraction, test_fraction), group_by=group_by,
                       cap_per_era=cap_per_era, cap_per_emotion=cap_per_emotion, check_images=check_images)
result = prepare(session.data_root, session.run_dir, config)
manifest = result.manifest'''),
        new_markdown_cell("## The label funnel\n\nHow many annotations and paintings each step kept or dropped, "
                          "and why."),
        new_code_cell(CHECK + '''print(format_funnel(result.funnel))'''),
        new_code_cell(CHECK + '''{reason: paths for reason, paths in result.report["excluded"].items()}'''),
        new_markdown_cell("## Class balance per split\n\nThe split is stratified by era × emotion, so every split "
                          "keeps the same class mix."),
        new_code_cell(CHECK + '''workflow.split_table(manifest)'''),
        new_code_cell(IGNORE + '''plots.split_balance(manifest, session.figures / "02_splits.png")
plt.show()'''),
        new_markdown_cell("## Era × emotion"),
        new_code_cell(CHECK + '''workflow.era_emotion_table(manifest)'''),
        new_code_cell(CHECK + '''print(f"positive share of the emotion task: "
      f"{(manifest['emotion'] == 'positive').sum() / (manifest['emotion'] != '').sum():.1%} "
      f"— what always answering 'positive' would score")'''),
        new_code_cell(IGNORE + '''if export_layout:
    print(export(manifest, session.archive, export_layout))
print(f"manifest: {len(manifest)} paintings → {session.manifest_path.name} in the run directory")'''),
    ]
    return new_notebook(cells=cells, metadata=_metadata())


def nb06() -> nbformat.NotebookNode:
    """06: compare the configurations with spread, confidence intervals and paired tests."""
    cells = [
        new_markdown_cell(
            "# 06 · Compare the results\n\n"
            "Does genre training help emotion classification, by how much, and is the difference larger than "
            "seed-to-seed noise? Everything here is computed from `results.csv` and the per-painting "
            "`predictions.csv` files that notebooks 03–05 wrote, so it can be rerun at any time.\n\n"
            "* **± values** are the standard deviation over training seeds;\n"
            "* **[95% CI]** is a bootstrap over test paintings of the seed-averaged metric;\n"
            "* **p-values** compare two models on the *same* test paintings (exact McNemar per seed; an exact "
            "paired permutation test on seed-averaged correctness when seeds are pooled);\n"
            "* the **majority baseline** is what always answering the most frequent training class scores on the "
            "same test paintings — the original study never reported it, and several of its emotion models were "
            "below it."),
        new_code_cell('''data_root   = "demo"
run_dir     = "runs/demo"
n_boot      = 2000     # bootstrap resamples for confidence intervals
confidence  = 0.95
alpha       = 0.05     # significance level of the paired tests''', metadata={"tags": ["parameters"]}),
        new_code_cell(IGNORE + '''import matplotlib.pyplot as plt

from artlib import workflow
from artlib.analysis import compare
from artlib.analysis import plots

session = workflow.start(data_root, run_dir)
results = compare.load_results(session.run_dir)'''),
        new_code_cell(CHECK + '''print(f"{len(results)} results: {results['stage'].nunique()} stages × {results['seed'].nunique()} seeds "
      f"({results['task'].value_counts().sort_index().to_dict()})")'''),
        new_markdown_cell("## Every stage: mean ± std over seeds, with confidence intervals"),
        new_code_cell(IGNORE + '''summary = compare.summary_table(results, session.run_dir, n_boot=n_boot, confidence=confidence, alpha=alpha)
summary[["configuration", "stage", "task", "n_seeds", "accuracy_mean", "accuracy_std", "accuracy_ci_low",
         "accuracy_ci_high", "f1_mean", "f1_std", "majority_baseline_accuracy"]].round(3)'''),
        new_markdown_cell("## Tables 1–3 in the original study's layout"),
        new_code_cell(IGNORE + '''tables = compare.original_tables(results, session.run_dir, summary=summary)
for number, table in tables.items():
    print(f"Table {number}: configuration {number}")
    display(table)'''),
        new_markdown_cell("## Emotion stages against the always-majority baseline"),
        new_code_cell(IGNORE + '''emotion = summary[summary["task"] == "emotion"].reset_index(drop=True)
plots.metric_bars(emotion, "accuracy", baseline=float(emotion["majority_baseline_accuracy"].iloc[0]),
                  path=session.figures / "06_emotion_accuracy.png")
plt.show()'''),
        new_code_cell(IGNORE + '''plots.metric_bars(emotion, "f1", path=session.figures / "06_emotion_f1.png")
plt.show()'''),
        new_markdown_cell("## Confusion matrices (test paintings, summed over seeds)"),
        new_code_cell(IGNORE + '''plots.confusion_matrices(compare.confusion_matrices(session.run_dir, results, task="emotion"),
                         session.figures / "06_confusion_emotion.png")
plt.show()'''),
        new_code_cell(IGNORE + '''plots.confusion_matrices(compare.confusion_matrices(session.run_dir, results, task="genre"),
                         session.figures / "06_confusion_genre.png")
plt.show()'''),
        new_markdown_cell("## Genre-informed (or sequential) stage against its emotion-only baseline\n\n"
                          "Same test paintings, same seeds. `b`: paintings only the stage got right; `c`: only "
                          "the baseline."),
        new_code_cell(IGNORE + '''tests = compare.paired_tests(session.run_dir, results, n_boot=n_boot, confidence=confidence, alpha=alpha)
pooled = tests[tests["seed"] == "pooled"]
pooled[["comparison", "stage", "baseline", "accuracy_stage", "accuracy_baseline", "accuracy_diff",
        "accuracy_diff_ci_low", "accuracy_diff_ci_high", "b", "c", "p_value", "significant"]].round(4)'''),
        new_markdown_cell("## Conclusion (generated from the numbers above)"),
        new_code_cell(IGNORE + '''print(compare.conclusion_text(tests, summary, alpha=alpha))'''),
        new_markdown_cell("## Does genre help some eras more than others?"),
        new_code_cell(IGNORE + '''per_era = compare.per_era_accuracy(session.run_dir, results)
plots.per_era_bars(per_era.rename(columns={"accuracy_mean": "accuracy"}), session.figures / "06_per_era.png")
plt.show()
per_era.pivot_table(index="stage", columns="era", values="accuracy_mean", sort=False).round(3)'''),
        new_code_cell(IGNORE + '''comparison = compare.write_comparison(session.run_dir, n_boot=n_boot, confidence=confidence, alpha=alpha)
print(f"wrote comparison.csv ({len(comparison)} stages) and {len(list(session.figures.glob('06_*.png')))} figures")'''),
    ]
    return new_notebook(cells=cells, metadata=_metadata())


def nb07() -> nbformat.NotebookNode:
    """07: Grad-CAM of baseline vs genre-informed emotion models."""
    cells = [
        new_markdown_cell(
            "# 07 · Explain: where do the emotion models look?\n\n"
            "Grad-CAM on the last convolutional block (conv5) for a sample of test paintings — correct and "
            "wrong, both classes — the emotion-only baseline next to the genre-informed model. Brighter means "
            "more evidence for the class each model predicted. (The study's future work asked for exactly this.)"),
        new_code_cell('''data_root       = "demo"
run_dir         = "runs/demo"
baseline_stage  = "emotion_conv5"
informed_stage  = "genre_conv4_then_emotion_conv5"
seed            = 0
per_group       = 2       # paintings per (true class, correct/wrong) group
alpha           = 0.45    # heatmap opacity''', metadata={"tags": ["parameters"]}),
        new_code_cell(IGNORE + '''import matplotlib.pyplot as plt

from artlib import workflow
from artlib.analysis import explain
from artlib.analysis import plots
from artlib.models.stored import load_stage_model

session = workflow.start(data_root, run_dir)
baseline, _ = load_stage_model(session.run_dir, baseline_stage, seed, task="emotion")
informed, informed_metrics = load_stage_model(session.run_dir, informed_stage, seed, task="emotion")
image_size = int(informed_metrics["result"]["image_size"])'''),
        new_markdown_cell("## The sample"),
        new_code_cell(IGNORE + '''sample = explain.paired_sample(session.run_dir, baseline_stage, informed_stage, seed, per_group)
sample[["image_path", "label", "predicted", "probability", "correct", "baseline_predicted"]]'''),
        new_code_cell(CHECK + '''images = explain.load_images(session.archive, sample["image_path"], image_size)
heat_base = explain.gradcam(baseline, images, explain.class_index(sample["baseline_predicted"], "emotion"))
heat_info = explain.gradcam(informed, images, explain.class_index(sample["predicted"], "emotion"))
print(f"{len(images)} paintings at {images.shape[1]} px; heatmaps within [0, 1]: "
      f"{all(h.min() >= 0 and h.max() <= 1 and h.shape == images.shape[:3] for h in (heat_base, heat_info))}")'''),
        new_markdown_cell("## Baseline vs genre-informed, side by side"),
        new_code_cell(IGNORE + '''tiles, titles = explain.side_by_side(sample, images, heat_base, heat_info, alpha)
plots.image_grid(tiles, titles, rows=len(sample), cols=3, path=session.figures / "07_gradcam.png", size=2.2)
plt.show()'''),
    ]
    return new_notebook(cells=cells, metadata=_metadata())


NOTEBOOKS = {
    "01_explore_dataset.ipynb": nb01,
    "02_build_labels.ipynb": nb02,
    "03_config1_sequential.ipynb": lambda: training_notebook(
        1, "03 · Configuration 1 — sequential: genre on conv4, then emotion on conv5",
        "Stage 1 fine-tunes conv4 (torchvision `layer3`) on the four eras; stage 3 carries that backbone over, "
        "puts a fresh emotion head on it and fine-tunes conv5 (`layer4`) on positive/negative. The baseline, "
        "stage 2, fine-tunes conv5 on emotion straight from the pretrained backbone. Everything below the "
        "trainable blocks is frozen (BatchNorm included) and computed once (the feature cache)."),
    "04_config2_simultaneous.ipynb": lambda: training_notebook(
        2, "04 · Configuration 2 — simultaneous: conv4 and conv5 together",
        "Both blocks train at once: first on genre, then (carried, fresh head) on emotion; the baseline trains "
        "both blocks on emotion from the pretrained backbone."),
    "05_config3_emotion_only.ipynb": lambda: training_notebook(
        3, "05 · Configuration 3 — emotion only: conv4, then conv5",
        "The study's extra experiment: conv4 on emotion, then conv5 on emotion on top of it — sequential "
        "training without any genre step."),
    "06_compare_results.ipynb": nb06,
    "07_explain.ipynb": nb07,
}


def main(names: list[str]) -> None:
    """Write the requested notebooks (all by default) into notebooks/."""
    for name, build in NOTEBOOKS.items():
        if names and name not in names and name.split("_")[0] not in names:
            continue
        nb = build()
        for i, cell in enumerate(nb.cells):
            cell.id = f"{name.split('_')[0]}-{i:02d}"  # stable ids: rebuilding does not churn every cell's diff
        nbformat.validate(nb)
        nbformat.write(nb, ROOT / "notebooks" / name)
        print("wrote", name)


if __name__ == "__main__":
    main(sys.argv[1:])
