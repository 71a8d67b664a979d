"""From a data root to ``manifest.csv`` in named steps: read, join, label, check images, split, write.

    data root ──prepare──▶ run_dir/manifest.csv + prepare_report.json

    prep = Preparation(data_root, PrepareConfig())   # notebook 02 runs the steps one by one
    prep.read(); prep.join(); prep.label(); prep.check_images(); prep.split(); prep.write(run_dir)

``PrepareConfig.split_seeds = K`` writes K repeated random splits: split seed 0 in the column ``split``
(exactly the one split of 0.2), split seed k in ``split_<k>`` (see :mod:`artlib.data.splits`); the report's
``split_seeds`` lists the columns and their random streams. Every split keeps every group whole.

No torch here: preparing labels and splits for the full 454k-row ArtEmis file takes seconds.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from artlib import __version__, atomic, rundir
from artlib.data.annotations import annotation_counts, classes_table
from artlib.data.archive import ArchiveIndex, check_images, unsafe_reason
from artlib.data.duplicates import read_duplicates
from artlib.data.funnel import Funnel
from artlib.data.groups import Links, artist_links, compose, large_group_limit, listed_links, near_duplicate_links
from artlib.data.labels import (EMOTION_COUNT_COLUMNS, ERA_MAPS, ERAS, LABEL_RULES, apply_label_rule, canonical_style,
                                eras_for_genres, eras_for_styles)
from artlib.data.manifest import MANIFEST_COLUMNS, write_outputs
from artlib.data.names import canonical_name, repair_candidates
from artlib.data.phash import DEFAULT_MAX_DISTANCE
from artlib.data.readers import read_artemis, read_classes
from artlib.data.roots import DataPaths, has_files
from artlib.data.splits import assign_splits, check_fractions, split_column, stream
from artlib.errors import DataError

log = logging.getLogger(__name__)

EXCLUSION_REASONS = ("unsafe_path", "unknown_style", "missing_image", "unreadable_image")
GROUP_BY = ("phash", "artist", "none")
COUNT_COLUMNS = (*EMOTION_COUNT_COLUMNS, "n_positive", "n_negative")


@dataclass(frozen=True)
class PrepareConfig:
    """Every choice ``prepare`` makes; recorded in the report so a manifest can be rebuilt exactly."""

    label_rule: str = "unanimous"
    era_map: str = "chronological"
    seed: int = 0
    split_seeds: int = 1  # K repeated random splits: column split (split seed 0), then split_1 … split_<K-1>
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    group_by: str = "phash"
    phash_distance: int = DEFAULT_MAX_DISTANCE
    duplicates: str | None = None  # ArtEmis's wiki_art_duplicate_paintings.pkl (or a CSV of pairs)
    cap_per_era: int | None = None
    cap_per_emotion: int | None = None
    check_images: bool = True
    workers: int | None = None

    def __post_init__(self) -> None:
        """Reject unknown options early, with the valid choices."""
        if self.label_rule not in LABEL_RULES:
            raise ValueError(f"label_rule must be one of {LABEL_RULES}, got {self.label_rule!r}")
        if self.era_map not in ERA_MAPS:
            raise ValueError(f"era_map must be one of {tuple(ERA_MAPS)}, got {self.era_map!r}")
        if self.group_by not in GROUP_BY:
            raise ValueError(f"group_by must be one of {GROUP_BY}, got {self.group_by!r}")
        check_fractions(self.fractions)
        if self.split_seeds < 1:
            raise ValueError(f"split_seeds must be at least 1 (the one split of 0.2), got {self.split_seeds}")
        if not 0 <= self.phash_distance <= 32:
            raise ValueError(f"phash_distance must be between 0 and 32 bits, got {self.phash_distance}")
        for cap in (self.cap_per_era, self.cap_per_emotion):
            if cap is not None and cap < 1:
                raise ValueError(f"caps must be positive integers or None, got {cap}")


@dataclass
class PrepareResult:
    """The manifest, the report (JSON-able) and the label funnel of one ``prepare`` run."""

    manifest: pd.DataFrame
    report: dict
    funnel: pd.DataFrame = field(repr=False)


class Preparation:
    """One preparation of a data root, step by step; each step adds to the funnel and the report."""

    def __init__(self, data_root: str | os.PathLike[str], config: PrepareConfig = PrepareConfig(),
                 progress: bool = True, check_cache: Path | None = None):
        self.t0 = time.perf_counter()
        self.paths = DataPaths.of(data_root)
        if not has_files(self.paths.archive):
            raise DataError(f"{self.paths.archive}: holds no image files at all. Unpack the WikiArt images there as "
                            f"archive/<Style>/<painting>.jpg (e.g. archive/Impressionism/claude-monet_water-lilies.jpg).")
        self.config, self.progress, self.check_cache = config, progress, check_cache
        self.funnel = Funnel()
        self.report: dict = {"artlib_version": __version__, "data_root": str(self.paths.root), "config": asdict(config),
                             "excluded": {r: [] for r in EXCLUSION_REASONS}, "details": {}}
        self.frame = pd.DataFrame()
        self._inputs: tuple[pd.DataFrame, pd.DataFrame] | None = None

    # ---- 1. read ----------------------------------------------------------------------------
    def read(self) -> Preparation:
        """Read and validate both CSVs (encoding, delimiter, columns), noting what was worked around."""
        artemis, notes_a = read_artemis(self.paths.artemis_csv)
        classes, notes_c = read_classes(self.paths.classes_csv)
        self.report["read"] = {"artemis": asdict(notes_a), "classes": asdict(notes_c)}
        self._inputs = (artemis, classes)
        return self

    # ---- 2. join ----------------------------------------------------------------------------
    def join(self) -> Preparation:
        """One row per painting: ArtEmis counts joined to classes.csv on the repaired, normalised name."""
        if self._inputs is None:
            self.read()
        assert self._inputs is not None
        artemis, classes = self._inputs
        counts = annotation_counts(artemis, self.paths.artemis_csv, self.funnel, self.report)
        self.funnel.add("paintings", "annotated in ArtEmis", len(counts))
        table = classes_table(classes, self.paths.classes_csv, self.funnel, self.report)
        counts = self._match_loosely(counts, table)
        self.funnel.add("paintings", "names repaired (mojibake / Unicode form)", self.report["names_repaired"])
        frame = table.join(counts, how="outer")
        frame["in_classes"] = frame["classes_path"].notna()
        frame["in_artemis"] = frame["artemis_path"].notna()
        self.funnel.add("paintings", "in both CSVs", (frame["in_classes"] & frame["in_artemis"]).sum())
        self.funnel.add("paintings", "in ArtEmis only", (~frame["in_classes"]).sum())
        self.funnel.add("paintings", "in classes.csv only (no annotations)", (~frame["in_artemis"]).sum())
        for c in COUNT_COLUMNS:
            frame[c] = frame[c].fillna(0).astype("int64")
        frame["declared_path"] = frame["classes_path"].fillna(frame["artemis_path"]).astype(str)
        artist_from_name = frame["declared_path"].str.extract(r"/([^/_]+)_", expand=False)
        frame["artist"] = frame["artist"].fillna(artist_from_name).fillna("")
        frame["phash"] = frame["phash"].fillna("")
        frame["genres"] = frame["genres"].fillna("")
        self.frame = self._drop_unsafe(frame.reset_index())
        self._inputs = None  # the raw CSVs are no longer needed
        return self

    def _match_loosely(self, counts: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
        """ArtEmis keys with no exact classes.csv match try other readings of ambiguous mojibake, then case."""
        missing = counts.index.difference(table.index)
        folded = pd.Series(table.index, index=table.index.str.casefold())
        folded = folded[~folded.index.duplicated(keep=False)]
        remap, by_reading = {}, 0
        for key in missing:
            for k, candidate in enumerate(repair_candidates(str(counts.at[key, "artemis_path"]))):  # readings of š/œ/ž
                match = candidate if candidate in table.index else folded.get(candidate.casefold())
                if match is not None:
                    remap[key] = match
                    by_reading += k > 0
                    break
        if remap:
            counts = counts.rename(index=remap)
            agg = {c: "sum" for c in COUNT_COLUMNS} | {"artemis_path": "first"}
            counts = counts.groupby(level=0).agg(agg)
        self.report["names_matched_case_insensitively"] = len(remap) - by_reading
        self.report["names_matched_by_another_mojibake_reading"] = by_reading
        return counts

    def _drop_unsafe(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Exclude paths that are unsafe (absolute, '..') or name no known WikiArt style."""
        unsafe = frame["declared_path"].map(unsafe_reason)
        folder = frame["declared_path"].str.replace("\\", "/", regex=False).str.split("/").str[0]
        frame["style"] = folder.map(canonical_style)
        bad_style = unsafe.isna() & (frame["style"].isna() | ~frame["declared_path"].str.contains("/", regex=False))
        self.report["excluded"]["unsafe_path"] = sorted(frame.loc[unsafe.notna(), "declared_path"])
        self.report["excluded"]["unknown_style"] = sorted(frame.loc[bad_style, "declared_path"])
        self.report["details"]["unsafe_path"] = dict(zip(frame.loc[unsafe.notna(), "declared_path"], unsafe.dropna()))
        self.funnel.add("images", "excluded: unsafe path", unsafe.notna().sum())
        self.funnel.add("images", "excluded: unknown style", bad_style.sum())
        return frame.loc[unsafe.isna() & ~bad_style].copy()

    # ---- 3. label ---------------------------------------------------------------------------
    def label(self) -> Preparation:
        """Emotion label per painting (the label rule) and era (the era map); paintings with neither go."""
        frame, config, funnel = self.frame, self.config, self.funnel
        label, why = apply_label_rule(frame[["n_positive", "n_negative", "n_something_else"]], config.label_rule)
        frame["emotion"] = label.to_numpy()
        annotated = frame["in_artemis"].to_numpy()
        funnel.add("labels", "emotion positive", (frame["emotion"] == "positive").sum())
        funnel.add("labels", "emotion negative", (frame["emotion"] == "negative").sum())
        reasons = {"unanimous": (("mixed", "no emotion: mixed positive and negative"),),
                   "majority": (("tie", "no emotion: tie"),)}[config.label_rule]
        for reason, text in (*reasons, ("only_something_else", "no emotion: only 'something else'")):
            funnel.add("labels", text, ((why.to_numpy() == reason) & annotated).sum())
        funnel.add("labels", "no emotion: no annotations", (~annotated).sum())
        if config.era_map == "seed":  # the original's rule works on classes.csv's genre list, else the folder
            frame["era"] = eras_for_genres(frame["genres"].where(frame["genres"] != "", frame["style"])).to_numpy()
        else:
            frame["era"] = eras_for_styles(frame["style"], config.era_map).to_numpy()
        for era in ERAS:
            funnel.add("labels", f"era {era}", (frame["era"] == era).sum())
        funnel.add("labels", f"no era: style not in the '{config.era_map}' map", (frame["era"] == "").sum())
        unlabelled = (frame["era"] == "") & (frame["emotion"] == "")
        funnel.add("labels", "dropped: neither era nor emotion", unlabelled.sum())
        self.frame = frame.loc[~unlabelled].copy()
        return self

    # ---- 4. images --------------------------------------------------------------------------
    def check_images(self) -> Preparation:
        """Find every painting on disk (name-tolerant, symlink escapes refused), then decode-check it once."""
        self._locate()
        frame = self.frame
        frame["width"] = 0
        frame["height"] = 0
        if not self.config.check_images:
            self.funnel.add("images", "image checks skipped", len(frame))
            return self
        checks = check_images(self.paths.archive, frame["image_path"], self.check_cache, self.config.workers,
                              self.progress)
        frame["width"] = checks.loc[frame["image_path"], "width"].to_numpy()
        frame["height"] = checks.loc[frame["image_path"], "height"].to_numpy()
        computed = checks.loc[frame["image_path"], "phash"].to_numpy()
        lacking = (frame["phash"] == "").to_numpy() & (computed != "")
        frame.loc[lacking, "phash"] = computed[lacking]  # classes.csv had none: hashed while checking the image
        self.report["phashes_computed"] = int(lacking.sum())
        reasons = checks.loc[frame["image_path"], "reason"].to_numpy()
        bad = pd.Series(reasons != "", index=frame.index)
        excluded = self.report["excluded"]
        for reason in ("missing_image", "unreadable_image"):
            hit = bad & (reasons == reason)
            excluded[reason] = sorted(excluded[reason] + frame.loc[hit, "image_path"].tolist())
        self.report["details"]["unreadable_image"] = {p: checks.loc[p, "detail"] for p in frame.loc[bad, "image_path"]}
        self.funnel.add("images", "excluded: unreadable image (zero bytes, truncated, not an image, too large)",
                        bad.sum())
        self.frame = frame.loc[~bad].copy()
        return self

    def _locate(self) -> None:
        """Set image_path (as on disk); exclude paintings not found or resolving outside archive/."""
        frame = self.frame
        index = ArchiveIndex(self.paths.archive)
        frame["image_path"] = frame["declared_path"].map(index.find)
        not_found = frame["image_path"].isna()
        escaping = ~not_found & frame["image_path"].fillna("").map(lambda p: bool(p) and index.escapes(p)).astype(bool)
        excluded = self.report["excluded"]
        excluded["missing_image"] = sorted(frame.loc[not_found, "declared_path"])
        if index.misnamed:
            self.report["details"]["missing_image"] = {
                k: f"archive/{v} exists but its name is not UTF-8; rename it" for k, v in index.misnamed.items()}
            log.warning("%s: %d image(s) exist under a file name that is not UTF-8, e.g. %s; they count as missing "
                        "until renamed to UTF-8 (e.g. convmv -f cp1252 -t utf8)", self.paths.archive,
                        len(index.misnamed), next(iter(index.misnamed.values())))
        excluded["unsafe_path"] = sorted(excluded["unsafe_path"] + frame.loc[escaping, "declared_path"].tolist())
        if len(frame) >= 10 and not_found.all():
            folders = sorted(index.styles_on_disk())[:8]
            raise DataError(f"{self.paths.archive}: none of the {len(frame):,} paintings the CSVs name was found there. "
                            f"Expected archive/<Style>/<painting>.jpg (e.g. archive/{frame['declared_path'].iloc[0]}); "
                            f"the folders there are {folders or 'none'} — unpacked one level too deep?")
        self.funnel.add("images", "excluded: missing image", not_found.sum())
        self.funnel.add("images", "excluded: path resolves outside archive/", escaping.sum())
        self.frame = frame.loc[~not_found & ~escaping].copy()

    # ---- 5. split ---------------------------------------------------------------------------
    def split(self) -> Preparation:
        """K train/val/test splits per painting (split seeds), groups of every source kept whole; then caps (labels only)."""
        config = self.config
        frame = self.frame.sort_values("image_path").reset_index(drop=True)
        ids, report = compose(len(frame), self._links(frame), large_group_limit(len(frame), config.fractions),
                              frame["image_path"])
        self._warn_invalid_phash(frame)
        strata, groups = frame["era"] + "|" + frame["emotion"], pd.Series(ids.astype(str))
        columns = [split_column(k) for k in range(config.split_seeds)]
        for k, column in enumerate(columns):
            frame[column] = assign_splits(strata, groups, config.fractions, stream(config.seed, k)).to_numpy()
        straddling = int(sum((frame.groupby(ids)[c].nunique() > 1).sum() for c in columns))
        if straddling:  # assign_splits keeps groups whole; this guards the promise the manifest makes
            raise RuntimeError(f"{straddling} painting groups straddle two splits; please report this as a bug")
        report["groups_straddling_splits"] = straddling
        self.report["grouping"] = report
        self.report["split_seeds"] = {"count": config.split_seeds, "columns": columns,
                                      "streams": [stream(config.seed, k) for k in range(config.split_seeds)]}
        for source, numbers in report.items():
            if source != "combined" and isinstance(numbers, dict):
                self.funnel.add("groups", f"{source.replace('_', ' ')}: paintings joined in {numbers['groups']} "
                                          f"group(s)", numbers["paintings_joined"])
        self.frame = self._apply_caps(frame)
        return self

    def _warn_invalid_phash(self, frame: pd.DataFrame) -> None:
        """Name the paintings whose phash is filled but not 1-16 hex digits (they take no part in near-duplicates)."""
        from artlib.data.phash import parse

        text = frame["phash"].fillna("").astype(str).str.strip()
        bad = (text != "").to_numpy() & ~parse(text)[1]
        if bad.any():
            paths = frame.loc[bad, "image_path"].tolist()
            self.report["invalid_phash"] = paths
            log.warning("%s: %d painting(s) have an invalid phash (not 1-16 hex digits), e.g. %s = %r; they are not "
                        "checked for near-duplicates. Fix or empty that column.", self.paths.classes_csv, len(paths),
                        paths[0], text[bad].iloc[0])

    def _links(self, frame: pd.DataFrame) -> list[Links]:
        """The grouping sources this configuration asks for: near-duplicates, a duplicate list, artists."""
        config, sources = self.config, []
        if config.group_by != "none":
            sources.append(near_duplicate_links(frame["phash"], frame["image_path"], config.phash_distance))
        if config.duplicates:
            sources.append(listed_links(frame["key"], read_duplicates(config.duplicates)))
        if config.group_by == "artist":
            sources.append(artist_links(frame["artist"]))
        return sources

    def _apply_caps(self, frame: pd.DataFrame) -> pd.DataFrame:
        """At most N paintings per era / per emotion class (seeded): a cap clears that task's label only.

        The capped paintings stay in the manifest for the other task (capping eras to balance the genre
        task must not change the emotion study).
        """
        rng = np.random.default_rng(self.config.seed)
        task = {"era": "genre task", "emotion": "emotion task"}
        for column, cap in (("era", self.config.cap_per_era), ("emotion", self.config.cap_per_emotion)):
            if cap is None:
                continue
            cleared = []
            for value, idx in frame.groupby(column, sort=True).groups.items():
                if value != "" and len(idx) > cap:
                    cleared.extend(rng.permutation(np.sort(np.asarray(idx)))[cap:].tolist())
            frame.loc[cleared, column] = ""
            self.funnel.add("caps", f"cap of {cap} per {column}: {column} cleared, so out of the {task[column]}",
                            len(cleared))
        return frame

    # ---- 6. write ---------------------------------------------------------------------------
    def result(self) -> PrepareResult:
        """The manifest (contract columns), the report with funnel and counts, and the funnel table."""
        frame = self.frame
        frame["art_style"] = frame["image_path"].str.split("/").str[0]
        frame["painting"] = frame["image_path"].map(lambda p: canonical_name(p.rsplit("/", 1)[-1].rsplit(".", 1)[0]))
        extra = [split_column(k) for k in range(1, self.config.split_seeds)]
        manifest = frame.loc[:, [*MANIFEST_COLUMNS, *extra]].reset_index(drop=True)
        funnel = self.funnel
        funnel.add("manifest", "paintings in manifest", len(manifest))
        funnel.add("manifest", "with an era (genre task)", (manifest["era"] != "").sum())
        funnel.add("manifest", "with an emotion (emotion task)", (manifest["emotion"] != "").sum())
        for split in ("train", "val", "test"):
            funnel.add("manifest", f"split {split}", (manifest["split"] == split).sum())
        report = self.report
        report["funnel"] = funnel.frame().to_dict(orient="records")
        report["counts"] = {"manifest_rows": len(manifest),
                            "excluded": {k: len(v) for k, v in report["excluded"].items()}}
        report["seconds"] = round(time.perf_counter() - self.t0, 3)
        return PrepareResult(manifest=manifest, report=report, funnel=funnel.frame())

    def write(self, out: str | os.PathLike[str]) -> PrepareResult:
        """Write manifest.csv and prepare_report.json into ``out`` (atomically) and return the result."""
        result = self.result()
        write_outputs(result.manifest, result.report, out)
        return result


def prepare(data_root: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
            config: PrepareConfig = PrepareConfig(), progress: bool = True) -> PrepareResult:
    """Build the manifest (labels, eras, checked images, one leakage-free split) from a data root.

    Runs every step of :class:`Preparation`; writes ``out/manifest.csv`` and ``out/prepare_report.json``
    (atomically) when ``out`` is given.
    """
    prep = Preparation(data_root, config, progress, rundir.image_checks(out) if out is not None else None)
    if out is not None:
        atomic.check_writable(out, "write the manifest", "choose another output folder")
    prep.read().join().label().check_images().split()
    return prep.write(out) if out is not None else prep.result()
