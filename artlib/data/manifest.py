"""From a data root to ``manifest.csv``: one row per usable painting, labels, era, one split.

    data root ──prepare──▶ run_dir/manifest.csv + prepare_report.json

No torch here: preparing labels and splits for the full 454k-row ArtEmis file takes seconds.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from artlib import __version__, atomic
from artlib.data.archive import ArchiveIndex, check_images, unsafe_reason
from artlib.errors import DataError
from artlib.data.labels import (
    ERA_MAPS, ERAS, LABEL_RULES, apply_label_rule, canonical_style, count_polarities, eras_for_styles, polarity,
)
from artlib.data.names import canonical_name
from artlib.data.readers import ARCHIVE_RELPATH, ARTEMIS_RELPATH, CLASSES_RELPATH, parse_genre_list, read_artemis, read_classes
from artlib.data.splits import assign_splits, check_fractions

MANIFEST_COLUMNS = (
    "image_path", "art_style", "painting", "artist", "era", "emotion", "n_positive", "n_negative",
    "n_something_else", "split", "phash", "genres", "in_artemis", "in_classes", "width", "height",
)
EXCLUSION_REASONS = ("unsafe_path", "unknown_style", "missing_image", "unreadable_image")
GROUP_BY = ("phash", "artist", "none")


@dataclass(frozen=True)
class PrepareConfig:
    """Every choice ``prepare`` makes; recorded in the report so a manifest can be rebuilt exactly."""

    label_rule: str = "unanimous"
    era_map: str = "chronological"
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    group_by: str = "phash"
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
        for cap in (self.cap_per_era, self.cap_per_emotion):
            if cap is not None and cap < 1:
                raise ValueError(f"caps must be positive integers or None, got {cap}")


@dataclass
class PrepareResult:
    """The manifest, the report (JSON-able) and the label funnel of one ``prepare`` run."""

    manifest: pd.DataFrame
    report: dict
    funnel: pd.DataFrame = field(repr=False)


@dataclass(frozen=True)
class DataPaths:
    """The three inputs of a data root."""

    root: Path
    archive: Path
    classes_csv: Path
    artemis_csv: Path

    @classmethod
    def of(cls, data_root: str | os.PathLike[str]) -> DataPaths:
        """The standard layout under ``data_root``, checked to exist, with a clear error if not."""
        root = Path(data_root)
        if not root.is_dir():
            raise DataError(f"{root}: data root does not exist. Pass the folder that holds archive/, data_gen/ and "
                            f"data_em/ (or data_root='demo' for the built-in synthetic data).")
        paths = cls(root, root / ARCHIVE_RELPATH, root / CLASSES_RELPATH, root / ARTEMIS_RELPATH)
        missing = [str(p) for p in (paths.archive, paths.classes_csv, paths.artemis_csv) if not p.exists()]
        if missing:
            raise DataError(f"{root}: missing {', '.join(missing)}. Expected archive/<Style>/<painting>.jpg, "
                            f"data_gen/classes.csv and data_em/artemis_dataset_release_v0.csv (see the READMEs there).")
        if not paths.archive.is_dir():
            raise DataError(f"{paths.archive}: is not a directory; put the WikiArt style folders there.")
        return paths


class Funnel:
    """Counts of what each preparation step kept or dropped, in order."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, stage: str, step: str, count: int) -> None:
        """Record one line of the funnel."""
        self.rows.append({"stage": stage, "step": step, "count": int(count)})

    def frame(self) -> pd.DataFrame:
        """The funnel as a table."""
        return pd.DataFrame(self.rows, columns=["stage", "step", "count"])


def _has_files(folder: Path) -> bool:
    """True when ``folder`` holds a non-hidden file or a symlinked folder at any depth (stops at the first)."""
    for top, dirs, files in os.walk(folder):
        if any(not f.startswith(".") for f in files) or any(os.path.islink(os.path.join(top, d)) for d in dirs):
            return True
    return False


def _row_numbers(mask: pd.Series, limit: int = 20, line_of: dict[int, int] | None = None) -> list[int]:
    """1-based CSV line numbers (header = line 1) of the first rows where ``mask`` holds."""
    return [(line_of or {}).get(int(i), int(i) + 2) for i in np.flatnonzero(mask.to_numpy())[:limit]]


def _record_lines(path: Path, encoding: str, delimiter: str, records: set[int]) -> dict[int, int]:
    """The file line each of these 0-based data records starts on (a quoted field can span several lines)."""
    found: dict[int, int] = {}
    if not records:
        return found
    last = max(records)
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        start, record = 1, -1  # record -1 is the header
        try:
            for fields in reader:
                if fields:  # pandas skips blank lines too
                    if record in records:
                        found[record] = start
                    if record >= last:
                        break
                    record += 1
                start = reader.line_num + 1
        except csv.Error:
            pass  # e.g. a field above csv's size limit: the rest keep their record-based numbers
    return found


def _annotation_counts(artemis: pd.DataFrame, path: Path, funnel: Funnel, report: dict) -> pd.DataFrame:
    """Per painting key: polarity counts and the path ArtEmis implies; drops are counted, never silent."""
    funnel.add("annotations", "rows read", len(artemis))
    no_name = artemis["painting"].isna() | artemis["art_style"].isna()
    pol = polarity(artemis["emotion"])
    unknown = pol.isna() & ~no_name
    if unknown.all():
        raise DataError(f"{path}: column 'emotion' holds no ArtEmis emotion (found e.g. "
                        f"{sorted(artemis['emotion'].dropna().astype(str).unique())[:5]}). Expected amusement, awe, "
                        f"contentment, excitement, anger, disgust, fear, sadness or 'something else'.")
    dup_cols = [c for c in ("art_style", "painting", "emotion", "utterance") if c in artemis.columns]
    duplicate = artemis.duplicated(subset=dup_cols, keep="first") & ~no_name & ~unknown if "utterance" in dup_cols \
        else pd.Series(False, index=artemis.index)
    read = report.get("read", {}).get("artemis", {})
    flagged = {int(i) for m in (no_name, unknown, duplicate) for i in np.flatnonzero(m.to_numpy())[:20]}
    line_of = _record_lines(path, read.get("encoding", "utf-8"), read.get("delimiter", ","), flagged)
    report["annotations"] = {
        "missing_painting_or_style": {"rows": int(no_name.sum()), "lines": _row_numbers(no_name, line_of=line_of)},
        "unknown_emotion": {"rows": int(unknown.sum()), "lines": _row_numbers(unknown, line_of=line_of),
                            "values": sorted(artemis.loc[unknown, "emotion"].fillna("<empty>").astype(str).unique())[:20]},
        "duplicate_rows": {"rows": int(duplicate.sum()), "lines": _row_numbers(duplicate, line_of=line_of)},
    }
    funnel.add("annotations", "dropped: painting or style name missing", no_name.sum())
    funnel.add("annotations", "dropped: unknown emotion string", unknown.sum())
    funnel.add("annotations", "dropped: exact duplicate rows", duplicate.sum())
    keep = ~(no_name | unknown | duplicate)
    kept = artemis.loc[keep]
    funnel.add("annotations", "rows used", len(kept))
    declared = (kept["art_style"].str.strip() + "/" + kept["painting"].str.strip() + ".jpg").str.replace("\\", "/", regex=False)
    uniq = pd.unique(declared)
    key_of = {d: canonical_name(d) for d in uniq}
    keys = declared.map(key_of)
    counts = count_polarities(keys, pol[keep])
    first_declared = pd.Series(declared.to_numpy(), index=keys.to_numpy())
    counts["artemis_path"] = first_declared[~first_declared.index.duplicated()].reindex(counts.index)
    report["names_repaired"] = int(sum(1 for d, k in key_of.items() if d != k))
    report["name_repair_examples"] = [[d, k] for d, k in key_of.items() if d != k][:10]
    return counts


def _classes_table(classes: pd.DataFrame, path: Path, funnel: Funnel, report: dict) -> pd.DataFrame:
    """Per painting key from classes.csv: declared path, artist, phash, parsed genres."""
    no_file = classes["filename"].isna()
    classes = classes.loc[~no_file].copy()
    classes["key"] = classes["filename"].str.strip().map(lambda f: canonical_name(f))
    dup = classes["key"].duplicated(keep="first")
    report["classes"] = {"missing_filename_rows": int(no_file.sum()), "duplicate_filename_rows": int(dup.sum()),
                         "duplicate_examples": classes.loc[dup, "filename"].head(10).tolist()}
    classes = classes.loc[~dup]
    genre_of = {g: ";".join(parse_genre_list(g)) for g in pd.unique(classes["genre"].fillna(""))}
    table = pd.DataFrame({
        "classes_path": classes["filename"].str.strip().str.replace("\\", "/", regex=False).to_numpy(),
        "artist": classes["artist"].fillna("").str.strip().to_numpy(),
        "phash": classes["phash"].fillna("").str.strip().to_numpy(),
        "genres": classes["genre"].fillna("").map(genre_of).to_numpy(),
    }, index=pd.Index(classes["key"].to_numpy(), name="key"))
    funnel.add("paintings", "listed in classes.csv", len(table))
    return table


def _apply_caps(frame: pd.DataFrame, config: PrepareConfig, funnel: Funnel) -> pd.DataFrame:
    """Subsample at most N paintings per era and per emotion class (seeded), for balanced subsets."""
    rng = np.random.default_rng(config.seed)
    for column, cap in (("era", config.cap_per_era), ("emotion", config.cap_per_emotion)):
        if cap is None:
            continue
        drop = []
        for value, idx in frame.groupby(column, sort=True).groups.items():
            if value == "" or len(idx) <= cap:
                continue
            idx = np.sort(np.asarray(idx))
            drop.extend(rng.permutation(idx)[cap:].tolist())
        frame = frame.drop(index=drop)
        funnel.add("caps", f"dropped by cap of {cap} per {column}", len(drop))
    return frame


def prepare(
    data_root: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    config: PrepareConfig = PrepareConfig(),
    progress: bool = True,
) -> PrepareResult:
    """Build the manifest (labels, eras, checked images, one leakage-free split) from a data root.

    Writes ``out/manifest.csv`` and ``out/prepare_report.json`` (atomically) when ``out`` is given.
    """
    t0 = time.perf_counter()
    paths = DataPaths.of(data_root)
    if not _has_files(paths.archive):
        raise DataError(f"{paths.archive}: holds no image files at all. Unpack the WikiArt images there as "
                        f"archive/<Style>/<painting>.jpg (e.g. archive/Impressionism/claude-monet_water-lilies.jpg).")
    if out is not None:
        atomic.check_writable(out, "write the manifest", "choose another output folder")
    funnel = Funnel()
    report: dict = {"artlib_version": __version__, "data_root": str(paths.root), "config": asdict(config),
                    "excluded": {r: [] for r in EXCLUSION_REASONS}, "details": {}}
    artemis, notes_a = read_artemis(paths.artemis_csv)
    classes, notes_c = read_classes(paths.classes_csv)
    report["read"] = {"artemis": asdict(notes_a), "classes": asdict(notes_c)}
    counts = _annotation_counts(artemis, paths.artemis_csv, funnel, report)
    funnel.add("paintings", "annotated in ArtEmis", len(counts))
    table = _classes_table(classes, paths.classes_csv, funnel, report)

    # Join on the canonical key; ArtEmis keys with no exact match try a case-insensitive one.
    missing = counts.index.difference(table.index)
    folded = pd.Series(table.index, index=table.index.str.casefold())
    folded = folded[~folded.index.duplicated(keep=False)]
    remap = {k: folded[k.casefold()] for k in missing if k.casefold() in folded.index}
    if remap:
        counts = counts.rename(index=remap)
        counts = counts.groupby(level=0).agg({"n_positive": "sum", "n_negative": "sum", "n_something_else": "sum",
                                              "artemis_path": "first"})
    report["names_matched_case_insensitively"] = len(remap)
    funnel.add("paintings", "names repaired (mojibake / Unicode form)", report["names_repaired"])
    frame = table.join(counts, how="outer")
    frame["in_classes"] = frame["classes_path"].notna()
    frame["in_artemis"] = frame["artemis_path"].notna()
    funnel.add("paintings", "in both CSVs", (frame["in_classes"] & frame["in_artemis"]).sum())
    funnel.add("paintings", "in ArtEmis only", (~frame["in_classes"]).sum())
    funnel.add("paintings", "in classes.csv only (no annotations)", (~frame["in_artemis"]).sum())
    for c in ("n_positive", "n_negative", "n_something_else"):
        frame[c] = frame[c].fillna(0).astype("int64")
    frame["declared_path"] = frame["classes_path"].fillna(frame["artemis_path"]).astype(str)
    frame["artist"] = frame["artist"].fillna(frame["declared_path"].str.extract(r"/([^/_]+)_", expand=False)).fillna("")
    frame["phash"] = frame["phash"].fillna("")
    frame["genres"] = frame["genres"].fillna("")
    frame = frame.reset_index()

    # Path safety and style.
    unsafe = frame["declared_path"].map(unsafe_reason)
    frame["style"] = frame["declared_path"].str.replace("\\", "/", regex=False).str.split("/").str[0].map(canonical_style)
    bad_style = unsafe.isna() & (frame["style"].isna() | ~frame["declared_path"].str.contains("/", regex=False))
    report["excluded"]["unsafe_path"] = sorted(frame.loc[unsafe.notna(), "declared_path"])
    report["excluded"]["unknown_style"] = sorted(frame.loc[bad_style, "declared_path"])
    report["details"]["unsafe_path"] = dict(zip(frame.loc[unsafe.notna(), "declared_path"], unsafe.dropna()))
    funnel.add("images", "excluded: unsafe path", unsafe.notna().sum())
    funnel.add("images", "excluded: unknown style", bad_style.sum())
    frame = frame.loc[unsafe.isna() & ~bad_style].copy()

    # Labels and eras.
    label, why = apply_label_rule(frame[["n_positive", "n_negative", "n_something_else"]], config.label_rule)
    frame["emotion"] = label.to_numpy()
    annotated = frame["in_artemis"].to_numpy()
    funnel.add("labels", "emotion positive", (frame["emotion"] == "positive").sum())
    funnel.add("labels", "emotion negative", (frame["emotion"] == "negative").sum())
    for reason, text in (("mixed", "no emotion: mixed positive and negative"), ("tie", "no emotion: tie"),
                         ("only_something_else", "no emotion: only 'something else'")):
        if reason == "mixed" and config.label_rule != "unanimous" or reason == "tie" and config.label_rule != "majority":
            continue
        funnel.add("labels", text, ((why.to_numpy() == reason) & annotated).sum())
    funnel.add("labels", "no emotion: no annotations", (~annotated).sum())
    frame["era"] = eras_for_styles(frame["style"], config.era_map).to_numpy()
    for era in ERAS:
        funnel.add("labels", f"era {era}", (frame["era"] == era).sum())
    funnel.add("labels", f"no era: style not in the '{config.era_map}' map", (frame["era"] == "").sum())
    unlabelled = (frame["era"] == "") & (frame["emotion"] == "")
    funnel.add("labels", "dropped: neither era nor emotion", unlabelled.sum())
    frame = frame.loc[~unlabelled].copy()

    # Images: find on disk, refuse symlink escapes, check decodability.
    index = ArchiveIndex(paths.archive)
    frame["image_path"] = frame["declared_path"].map(index.find)
    not_found = frame["image_path"].isna()
    escaping = ~not_found & frame["image_path"].fillna("").map(lambda p: bool(p) and index.escapes(p)).astype(bool)
    report["excluded"]["missing_image"] = sorted(frame.loc[not_found, "declared_path"])
    report["excluded"]["unsafe_path"] = sorted(report["excluded"]["unsafe_path"] + frame.loc[escaping, "declared_path"].tolist())
    if len(frame) >= 10 and not_found.all():
        folders = sorted(index.styles_on_disk())[:8]
        raise DataError(f"{paths.archive}: none of the {len(frame):,} paintings the CSVs name was found there. "
                        f"Expected archive/<Style>/<painting>.jpg (e.g. archive/{frame['declared_path'].iloc[0]}); "
                        f"the folders there are {folders or 'none'} — unpacked one level too deep?")
    funnel.add("images", "excluded: missing image", not_found.sum())
    funnel.add("images", "excluded: path resolves outside archive/", escaping.sum())
    frame = frame.loc[~not_found & ~escaping].copy()
    frame["width"] = 0
    frame["height"] = 0
    if config.check_images:
        cache = Path(out) / "image_checks.csv" if out is not None else None
        checks = check_images(paths.archive, frame["image_path"], cache, config.workers, progress)
        frame["width"] = checks.loc[frame["image_path"], "width"].to_numpy()
        frame["height"] = checks.loc[frame["image_path"], "height"].to_numpy()
        reasons = checks.loc[frame["image_path"], "reason"].to_numpy()
        bad = pd.Series(reasons != "", index=frame.index)
        for reason in ("missing_image", "unreadable_image"):
            hit = bad & (reasons == reason)
            report["excluded"][reason] = sorted(report["excluded"][reason] + frame.loc[hit, "image_path"].tolist())
        report["details"]["unreadable_image"] = {
            p: checks.loc[p, "detail"] for p in frame.loc[bad, "image_path"]}
        funnel.add("images", "excluded: unreadable image (zero bytes, truncated, not an image, too large)", bad.sum())
        frame = frame.loc[~bad].copy()
    else:
        funnel.add("images", "image checks skipped", len(frame))

    frame = _apply_caps(frame.sort_values("image_path").reset_index(drop=True), config, funnel)

    # One split per painting, groups kept whole.
    if config.group_by == "phash":
        groups = frame["phash"].where(frame["phash"] != "", "key:" + frame["key"])
    elif config.group_by == "artist":
        groups = frame["artist"].where(frame["artist"] != "", "key:" + frame["key"])
    else:
        groups = "key:" + frame["key"]
    strata = frame["era"] + "|" + frame["emotion"]
    frame["split"] = assign_splits(strata.reset_index(drop=True), groups.reset_index(drop=True),
                                   config.fractions, config.seed).to_numpy()
    frame["art_style"] = frame["image_path"].str.split("/").str[0]
    frame["painting"] = frame["image_path"].map(lambda p: canonical_name(p.rsplit("/", 1)[-1].rsplit(".", 1)[0]))
    manifest = frame.loc[:, list(MANIFEST_COLUMNS)].reset_index(drop=True)
    funnel.add("manifest", "paintings in manifest", len(manifest))
    funnel.add("manifest", "with an era (genre task)", (manifest["era"] != "").sum())
    funnel.add("manifest", "with an emotion (emotion task)", (manifest["emotion"] != "").sum())
    for split in ("train", "val", "test"):
        funnel.add("manifest", f"split {split}", (manifest["split"] == split).sum())

    report["funnel"] = funnel.frame().to_dict(orient="records")
    report["counts"] = {"manifest_rows": len(manifest),
                        "excluded": {k: len(v) for k, v in report["excluded"].items()}}
    report["seconds"] = round(time.perf_counter() - t0, 3)
    result = PrepareResult(manifest=manifest, report=report, funnel=funnel.frame())
    if out is not None:
        write_outputs(result, out)
    return result


def write_outputs(result: PrepareResult, out: str | os.PathLike[str]) -> None:
    """Write manifest.csv and prepare_report.json into ``out`` atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_csv(out / "manifest.csv", result.manifest)
    atomic.write_json(out / "prepare_report.json", result.report)


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a manifest.csv with the right dtypes, checking the contract's columns are there."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no manifest. Run notebook 02 or `python -m artlib prepare --out {path.parent}` first.")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: damaged manifest ({str(exc).strip()[:150]}); rerun notebook 02 or "
                        f"`python -m artlib prepare` to write it again.") from None
    required = ("image_path", "era", "emotion", "split")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: column(s) {', '.join(missing)} missing; regenerate it with `python -m artlib prepare`.")
    for c in ("n_positive", "n_negative", "n_something_else", "width", "height"):
        if c in frame.columns:
            frame[c] = pd.to_numeric(frame[c], errors="coerce").fillna(0).astype("int64")
    bad_split = ~frame["split"].isin(["train", "val", "test"])
    if bad_split.any():
        raise DataError(f"{path}: line {int(np.flatnonzero(bad_split)[0]) + 2}: split must be train, val or test.")
    return frame


def format_funnel(funnel: pd.DataFrame) -> str:
    """The label funnel as aligned text, one line per step."""
    width = max(len(s) for s in funnel["step"]) if len(funnel) else 10
    lines, stage = [], None
    for row in funnel.itertuples():
        if row.stage != stage:
            stage = row.stage
            lines.append(f"{stage}:")
        lines.append(f"  {row.step:<{width}}  {row.count:>8,}")
    return "\n".join(lines)


def export_layout(manifest: pd.DataFrame, archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> dict[str, int]:
    """Symlink the original study's folder layout: dest/{genre,emotion}/<split>/<class>/<file>.

    One folder per era and per emotion class, inside per-split folders so no tool can mix
    them up. Built in a temporary folder and renamed into place.
    """
    archive = Path(archive).resolve()
    counts: dict[str, int] = {}
    with atomic.atomic_dir(dest) as tmp:
        for task, column in (("genre", "era"), ("emotion", "emotion")):
            rows = manifest[manifest[column] != ""]
            for row in rows.itertuples():
                rel = str(row.image_path)
                target = tmp / task / str(row.split) / str(getattr(row, column))
                target.mkdir(parents=True, exist_ok=True)
                os.symlink(archive / rel, target / rel.replace("/", "__"))
            counts[task] = len(rows)
    return counts
