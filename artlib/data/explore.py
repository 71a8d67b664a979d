"""Tables that describe a data root before any labelling (notebook 01): pandas only."""

from __future__ import annotations

import pandas as pd

from artlib.data.labels import ERAS, canonical_style, era_table, normalise_emotion, polarity
from artlib.data.roots import DataPaths
from artlib.data.names import canonical_name
from artlib.data.readers import read_artemis, read_classes


def load_raw(data_root: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two CSVs of a data root, validated (classes.csv, ArtEmis annotations)."""
    paths = DataPaths.of(data_root)
    classes, _ = read_classes(paths.classes_csv)
    artemis, _ = read_artemis(paths.artemis_csv)
    return classes, artemis


def style_counts(classes: pd.DataFrame, era_map: str = "chronological") -> pd.DataFrame:
    """Paintings per style (classes.csv folder) with the era the map gives it, largest first."""
    style = classes["filename"].fillna("").str.replace("\\", "/", regex=False).str.split("/").str[0]
    canonical = style.map(canonical_style)
    table = (pd.DataFrame({"style": style, "known": canonical.notna(),
                           "era": canonical.map(era_table(era_map)).fillna("")})
             .groupby(["style", "known", "era"], as_index=False).size()
             .rename(columns={"size": "paintings"})
             .sort_values(["paintings", "style"], ascending=[False, True], ignore_index=True))
    table.loc[~table["known"], "era"] = "(unknown style)"
    table.loc[table["known"] & (table["era"] == ""), "era"] = "(no era in this map)"
    return table.drop(columns="known")


def era_counts(styles: pd.DataFrame) -> pd.DataFrame:
    """Paintings per era from :func:`style_counts` (the study's four eras first)."""
    totals = styles.groupby("era")["paintings"].sum()
    order = [e for e in ERAS if e in totals.index] + sorted(set(totals.index) - set(ERAS))
    return totals.reindex(order).rename_axis("era").reset_index()


def annotations_per_painting(artemis: pd.DataFrame) -> pd.Series:
    """How many ArtEmis annotations each painting received (indexed by style/painting)."""
    key = (artemis["art_style"].fillna("") + "/" + artemis["painting"].fillna("")).map(canonical_name)
    return key.value_counts().rename("annotations")


def emotion_distribution(artemis: pd.DataFrame, era_map: str = "chronological") -> pd.DataFrame:
    """Annotations per emotion and polarity, overall and per era (long format for seaborn)."""
    frame = pd.DataFrame({
        "emotion": normalise_emotion(artemis["emotion"]),
        "polarity": polarity(artemis["emotion"]).fillna("unknown"),
        "era": artemis["art_style"].map(canonical_style).map(era_table(era_map)).fillna("(none)"),
    })
    return frame.groupby(["era", "polarity", "emotion"], as_index=False).size().rename(columns={"size": "annotations"})


def polarity_share(distribution: pd.DataFrame) -> pd.DataFrame:
    """Share of positive / negative / something-else annotations per era and overall (rows sum to 1)."""
    pivot = distribution.pivot_table(index="era", columns="polarity", values="annotations", aggfunc="sum",
                                     fill_value=0)
    pivot.loc["all eras"] = pivot.sum()
    share = pivot.div(pivot.sum(axis=1), axis=0)
    cols = [c for c in ("positive", "negative", "something_else", "unknown") if c in share.columns]
    order = [e for e in (*ERAS, "(none)", "all eras") if e in share.index]
    return share.loc[order, cols].round(3)


def sample_by_era(classes: pd.DataFrame, archive: str, per_era: int, seed: int = 0,
                  era_map: str = "chronological") -> pd.DataFrame:
    """Up to ``per_era`` readable paintings per era straight from classes.csv (no manifest needed)."""
    from pathlib import Path

    from artlib.data.archive import ArchiveIndex
    from artlib.data.images import check_image

    index = ArchiveIndex(archive)
    style = classes["filename"].fillna("").str.replace("\\", "/", regex=False).str.split("/").str[0]
    eras = style.map(canonical_style).map(era_table(era_map)).fillna("")
    rows = []
    for era in ERAS:
        candidates = classes.loc[eras == era, "filename"].sample(frac=1.0, random_state=seed)
        found = 0
        for name in candidates:
            rel = index.find(str(name).replace("\\", "/"))
            if rel is None or check_image(Path(archive) / rel).reason is not None:
                continue
            rows.append({"era": era, "image_path": rel})
            found += 1
            if found == per_era:
                break
    return pd.DataFrame(rows, columns=["era", "image_path"])
