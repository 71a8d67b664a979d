"""Figures for the notebooks: every function returns a matplotlib Figure and can save it as PNG atomically."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from artlib import atomic
from artlib.data.labels import ERAS

ERA_PALETTE = dict(zip(ERAS, sns.color_palette("colorblind", 4)))
EMOTION_PALETTE = {"positive": "#E69F00", "negative": "#0072B2", "something_else": "#999999", "unknown": "#CC79A7"}


def save(fig: plt.Figure, path: str | os.PathLike[str] | None, dpi: int = 110) -> None:
    """Write a figure as PNG atomically (nothing if ``path`` is None)."""
    if path is None:
        return
    with atomic.atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")


def style_bars(styles: pd.DataFrame, path: str | Path | None = None) -> plt.Figure:
    """Paintings per style, coloured by era."""
    fig, ax = plt.subplots(figsize=(8, max(3, 0.28 * len(styles))))
    palette = {**ERA_PALETTE, "(unknown style)": "#BBBBBB", "(no era in this map)": "#DDDDDD"}
    sns.barplot(data=styles, y="style", x="paintings", hue="era", dodge=False, palette=palette, ax=ax)
    ax.set(title="Paintings per style (classes.csv)", xlabel="paintings", ylabel="")
    ax.legend(title="era", loc="lower right", fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return fig


def annotation_histogram(counts: pd.Series, path: str | Path | None = None) -> plt.Figure:
    """Distribution of the number of annotations per painting."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.arange(counts.min() - 0.5, counts.max() + 1.5) if len(counts) else 10
    ax.hist(counts, bins=bins, color="#56B4E9", edgecolor="white")
    ax.set(title=f"Annotations per painting (mean {counts.mean():.2f})", xlabel="annotations", ylabel="paintings")
    fig.tight_layout()
    save(fig, path)
    return fig


def emotion_bars(distribution: pd.DataFrame, path: str | Path | None = None) -> plt.Figure:
    """Annotations per emotion overall, and the polarity mix per era."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    overall = distribution.groupby(["emotion", "polarity"], as_index=False)["annotations"].sum()
    overall = overall.sort_values("annotations", ascending=False)
    sns.barplot(data=overall, x="emotion", y="annotations", hue="polarity", dodge=False, palette=EMOTION_PALETTE,
                ax=axes[0])
    axes[0].tick_params(axis="x", rotation=45)
    axes[0].set(title="Annotations per emotion", xlabel="")
    per_era = distribution.pivot_table(index="era", columns="polarity", values="annotations", aggfunc="sum",
                                       fill_value=0)
    per_era = per_era.reindex([e for e in ERAS if e in per_era.index] +
                              [e for e in per_era.index if e not in ERAS])
    share = per_era.div(per_era.sum(axis=1), axis=0)
    share.plot.barh(stacked=True, ax=axes[1], color=[EMOTION_PALETTE.get(c, "#333") for c in share.columns])
    axes[1].set(title="Polarity of annotations per era", xlabel="share", ylabel="")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save(fig, path)
    return fig


def image_grid(images: list[np.ndarray], titles: list[str], rows: int, cols: int, row_labels: list[str] | None = None,
               path: str | Path | None = None, size: float = 1.8) -> plt.Figure:
    """A grid of images (row-major) with small titles and optional row labels."""
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size * 1.05), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (img, title) in enumerate(zip(images, titles)):
        ax = axes[i // cols][i % cols]
        ax.imshow(img)
        ax.set_title(title, fontsize=7)
    if row_labels:
        for r, label in enumerate(row_labels):
            axes[r][0].text(-0.08, 0.5, label, transform=axes[r][0].transAxes, ha="right", va="center",
                            fontsize=9, rotation=90)
    fig.tight_layout()
    save(fig, path)
    return fig


def split_balance(manifest: pd.DataFrame, path: str | Path | None = None) -> plt.Figure:
    """Paintings per split for each task's classes (eras; emotions)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, column, title in ((axes[0], "era", "Genre task: eras per split"),
                              (axes[1], "emotion", "Emotion task: labels per split")):
        data = manifest[manifest[column] != ""]
        table = pd.crosstab(data["split"], data[column]).reindex(["train", "val", "test"]).fillna(0)
        palette = ERA_PALETTE if column == "era" else EMOTION_PALETTE
        table.plot.bar(ax=ax, color=[palette.get(c, "#333") for c in table.columns], rot=0)
        ax.set(title=title, xlabel="", ylabel="paintings")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return fig


def loss_curves(histories: dict[str, pd.DataFrame], path: str | Path | None = None) -> plt.Figure:
    """Train and validation loss per epoch (the original's train_val_loss_vis), best epoch marked; for a linear
    probe per regularisation strength C (log scale), the lowest validation loss marked."""
    n = len(histories)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2), squeeze=False)
    for ax, (label, h) in zip(axes[0], histories.items()):
        x, name = (h["C"], "C (inverse L2 strength)") if "C" in h.columns else (h["epoch"], "epoch")
        ax.plot(x, h["train_loss"], "o-", label="train", color="#0072B2")
        ax.plot(x, h["val_loss"], "s-", label="validation", color="#D55E00")
        ax.axvline(x.iloc[int(h["val_loss"].to_numpy().argmin())], color="#999", ls=":", lw=1)
        if "C" in h.columns:
            ax.set_xscale("log")
        ax.set(title=label, xlabel=name, ylabel="loss")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return fig


def confusion_matrices(matrices: dict[str, tuple[np.ndarray, list[str]]], path: str | Path | None = None,
                       normalise: bool = True) -> plt.Figure:
    """Confusion matrices side by side (rows: true class; row-normalised by default)."""
    n = len(matrices)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (title, (cm, classes)) in zip(axes.flat, matrices.items()):
        cm = np.asarray(cm, dtype=float)
        shown = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None) if normalise else cm
        sns.heatmap(shown, annot=cm.astype(int), fmt="d", cmap="Blues", vmin=0, vmax=1 if normalise else None,
                    xticklabels=classes, yticklabels=classes, cbar=False, ax=ax)
        ax.set_title(title, fontsize=9)
        ax.set(xlabel="predicted", ylabel="true")
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    save(fig, path)
    return fig


def accuracy_bars(summary: pd.DataFrame, confidence: float = 0.95, path: str | Path | None = None) -> plt.Figure:
    """Emotion stages' mean accuracy with their seed-aware intervals, both trivial baselines as lines.

    A hatched bar marks a stage that was still improving when it stopped (best epoch = last epoch).
    """
    fig, ax = plt.subplots(figsize=(max(6.5, 1.1 * len(summary)), 3.9))
    mean = summary["accuracy_mean"].to_numpy()
    err = [mean - summary["accuracy_ci_low"].to_numpy(), summary["accuracy_ci_high"].to_numpy() - mean]
    colors = [sns.color_palette("colorblind")[int(str(c)[0]) - 1] for c in summary["configuration"]]
    bars = ax.bar(range(len(summary)), mean, yerr=err, capsize=4, color=colors, edgecolor="black", lw=0.5)
    for bar, flagged in zip(bars, summary["still_improving"].astype(bool)):
        if flagged:
            bar.set_hatch("//")
    for column, label, style in (("majority_baseline_accuracy", "always the majority class", "--"),
                                 ("era_prior_baseline_accuracy", "each era's majority emotion", ":")):
        value = float(summary[column].mean())
        if np.isfinite(value):
            ax.axhline(value, color="#D55E00", ls=style, lw=1.3, label=f"{label} ({value:.1%})")
    if summary["still_improving"].astype(bool).any():
        ax.bar([0], [0], color="white", edgecolor="black", hatch="//", label="still improving when stopped")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_xticks(range(len(summary)), summary["stage"], rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="test accuracy", ylim=(0, 1),
           title=f"Emotion stages: mean over seeds, {confidence:.0%} interval (seeds and paintings random)")
    fig.tight_layout()
    save(fig, path)
    return fig


VERDICT_COLORS = {"improved": "#009E73", "worse": "#D55E00", "inconclusive": "#999999"}


def verdict_forest(verdicts: pd.DataFrame, path: str | Path | None = None) -> plt.Figure:
    """Each comparison's difference with its Holm-level interval, coloured by verdict; 0 marked."""
    rows = verdicts.dropna(subset=["difference"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 0.55 * max(len(rows), 1) + 1.2))
    for i, r in rows.iterrows():
        color = VERDICT_COLORS.get(r["verdict"], "#333")
        ax.errorbar(r["difference"] * 100, i, xerr=[[(r["difference"] - r["ci_low"]) * 100],
                                                   [(r["ci_high"] - r["difference"]) * 100]],
                    fmt="o", color=color, capsize=3)
        ax.text(1.01, i, r["verdict"], transform=ax.get_yaxis_transform(), va="center", fontsize=8, color=color)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{c} ({k})" for c, k in zip(rows["comparison"], rows["kind"])], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="accuracy difference, stage − baseline (points; interval at each comparison's Holm level)",
           title="Verdicts")
    fig.tight_layout()
    save(fig, path)
    return fig


def per_era_bars(per_era: pd.DataFrame, path: str | Path | None = None) -> plt.Figure:
    """Emotion accuracy per era for each emotion stage, with intervals; eras with too few paintings faded."""
    stages = list(dict.fromkeys(per_era["stage"]))
    eras = [e for e in ERAS if e in set(per_era["era"])]
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(stages)), 3.9))
    width = 0.8 / max(len(eras), 1)
    for k, era in enumerate(eras):
        part = per_era.set_index(["stage", "era"])
        for i, stage in enumerate(stages):
            if (stage, era) not in part.index:
                continue
            r = part.loc[(stage, era)]
            ax.bar(i + (k - (len(eras) - 1) / 2) * width, r["accuracy_mean"], width,
                   yerr=[[r["accuracy_mean"] - r["ci_low"]], [r["ci_high"] - r["accuracy_mean"]]], capsize=2,
                   color=ERA_PALETTE[era], alpha=0.35 if r["too_few"] else 1.0, label=era if i == 0 else None)
    ax.set_xticks(range(len(stages)), stages, rotation=30, ha="right", fontsize=8)
    ax.set(ylim=(0, 1), ylabel="test accuracy", title="Emotion accuracy per era (exploratory; faded: too few paintings)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save(fig, path)
    return fig


EMOTION9_COLORS = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#D55E00", "#8C6D31", "#7B3294", "#0072B2", "#999999"]


def emotion9_shares(distribution: pd.DataFrame, path: str | Path | None = None) -> plt.Figure:
    """Share of votes per emotion, per era and overall (rows of ``distribution``), as stacked bars."""
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(distribution) + 1.6))
    distribution.plot.barh(stacked=True, ax=ax, color=EMOTION9_COLORS[: distribution.shape[1]], width=0.75)
    ax.invert_yaxis()
    ax.set(xlabel="share of ArtEmis votes", ylabel="", xlim=(0, 1), title="Which emotions annotators chose, per era")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    fig.tight_layout()
    save(fig, path)
    return fig


def distribution_pairs(predictions: pd.DataFrame, classes: tuple[str, ...], path: str | Path | None = None) -> plt.Figure:
    """For a few test paintings, the annotated vote shares next to the predicted distribution."""
    n = len(predictions)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8), squeeze=False, sharey=True)
    x = np.arange(len(classes))
    for ax, (_, row) in zip(axes[0], predictions.iterrows()):
        votes = np.array([row[f"n_{c.replace(' ', '_')}"] for c in classes], dtype=float)
        ax.bar(x - 0.2, votes / max(votes.sum(), 1), 0.4, color="#999999", label="annotated")
        ax.bar(x + 0.2, [row[f"p_{c}"] for c in classes], 0.4, color="#0072B2", label="predicted")
        ax.set_xticks(x, [c[:5] for c in classes], rotation=90, fontsize=7)
        ax.set_title(str(row["image_path"]).split("/")[-1][:22], fontsize=7)
    axes[0][0].set_ylabel("share")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)
    return fig


def show_as_jpeg(fig: plt.Figure, quality: int = 80) -> None:
    """Show a figure of paintings inline as JPEG (a tenth of a PNG's size in a stored notebook) and close it."""
    import io

    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=fig.dpi, bbox_inches="tight", pil_kwargs={"quality": quality})
    plt.close(fig)
    display(Image(data=buffer.getvalue(), format="jpeg"))


def backbone_accuracy(table: pd.DataFrame, path: str | Path | None = None) -> plt.Figure:
    """Emotion accuracy by backbone: each stage's mean with its seed- and artist-aware interval, one colour per
    stage, the always-majority baseline per backbone as a short line (``table``: artlib.analysis.backbones.table)."""
    backbones = list(dict.fromkeys(table["backbone"]))
    stages = list(dict.fromkeys(table["stage"]))
    fig, ax = plt.subplots(figsize=(max(6.5, 1.9 * len(backbones)), 3.9))
    palette = sns.color_palette("colorblind", len(stages))
    width = 0.8 / max(len(stages), 1)
    for j, stage in enumerate(stages):
        part = table.loc[table["stage"] == stage]
        x = np.array([backbones.index(b) for b in part["backbone"]]) - 0.4 + width * (j + 0.5)
        mean = part["accuracy_mean"].to_numpy()
        err = [mean - part["accuracy_ci_low"].to_numpy(), part["accuracy_ci_high"].to_numpy() - mean]
        ax.errorbar(x, mean, yerr=err, fmt="o", capsize=3, color=palette[j], label=stage)
    for i, b in enumerate(backbones):
        value = float(table.loc[table["backbone"] == b, "majority_baseline_accuracy"].mean())
        ax.hlines(value, i - 0.45, i + 0.45, color="#D55E00", ls="--", lw=1.2,
                  label="always the majority class" if i == 0 else None)
    labels = [f"{b}\n{w}" for b, w in dict(zip(table["backbone"], table["weights"])).items()]
    ax.set_xticks(range(len(backbones)), labels, fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    ax.set(ylabel="test accuracy", ylim=(0, 1), title="Emotion accuracy by backbone (95% interval; weights below)")
    fig.tight_layout()
    save(fig, path)
    return fig
