"""The label funnel on the demo data root, checked against a hand count; and the prepare command line.

The hand count uses only the csv module, unicodedata, os and Pillow (to try decoding) —
never artlib's own readers, name repair or label code.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from PIL import Image

from artlib.data.prepare import PrepareResult

REPO = Path(__file__).resolve().parent.parent
POSITIVE = {"amusement", "awe", "contentment", "excitement"}
NEGATIVE = {"anger", "disgust", "fear", "sadness"}
ERA_OF = {  # design.md §2, the chronological map
    **dict.fromkeys(["Early_Renaissance", "High_Renaissance", "Northern_Renaissance", "Mannerism_Late_Renaissance"],
                    "Renaissance"),
    **dict.fromkeys(["Baroque", "Rococo", "Romanticism", "Realism", "Ukiyo_e"], "Post-Renaissance"),
    **dict.fromkeys(["Impressionism", "Post_Impressionism", "Pointillism", "Symbolism", "Art_Nouveau_Modern",
                     "Fauvism", "Expressionism", "Cubism", "Analytical_Cubism", "Synthetic_Cubism",
                     "Naive_Art_Primitivism"], "Modern"),
    **dict.fromkeys(["Abstract_Expressionism", "Action_painting", "Color_Field_Painting", "Minimalism", "Pop_Art",
                     "New_Realism", "Contemporary_Realism"], "Contemporary"),
}


def read_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a UTF-8 CSV as dicts (csv module)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def nfc(text: str) -> str:
    """NFC form of a string."""
    return unicodedata.normalize("NFC", text)


def disk_files(archive: Path) -> dict[str, str]:
    """NFC 'Style/file.jpg' → the relative path as spelt on disk, for every file under archive/."""
    found = {}
    for style in sorted(os.listdir(archive)):
        for name in sorted(os.listdir(archive / style)):
            found[nfc(f"{style}/{name}")] = f"{style}/{name}"
    return found


def decodes(path: Path) -> bool:
    """True when Pillow can fully decode the file."""
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:  # noqa: BLE001 - any failure means unreadable
        return False


def hand_count(root: Path) -> dict:
    """The funnel of the demo root counted by hand: (stage, step) → count, plus the excluded paths."""
    archive = root / "archive"
    artemis = read_rows(root / "data_em" / "artemis_dataset_release_v0.csv")
    classes = read_rows(root / "data_gen" / "classes.csv")
    on_disk = disk_files(archive)
    f: dict[tuple[str, str], int] = {}

    # Annotations.
    f["annotations", "rows read"] = len(artemis)
    no_name = [not r["painting"].strip() or not r["art_style"].strip() for r in artemis]
    emotion = [" ".join(r["emotion"].strip().lower().replace("_", " ").split()) for r in artemis]
    unknown = [not nn and e not in POSITIVE | NEGATIVE | {"something else"} for nn, e in zip(no_name, emotion)]
    seen, duplicate = set(), []
    for r, nn, un in zip(artemis, no_name, unknown):
        key = (r["art_style"], r["painting"], r["emotion"], r["utterance"])
        duplicate.append(key in seen and not nn and not un)
        seen.add(key)
    used = [r for r, a, b, c in zip(artemis, no_name, unknown, duplicate) if not (a or b or c)]
    f["annotations", "dropped: painting or style name missing"] = sum(no_name)
    f["annotations", "dropped: unknown emotion string"] = sum(unknown)
    f["annotations", "dropped: exact duplicate rows"] = sum(duplicate)
    f["annotations", "rows used"] = len(used)

    # Names: a mojibake spelling is found by spelling every known correct name the way ArtEmis does.
    known = {nfc(c["filename"]).rsplit("/", 1)[1][:-4] for c in classes}
    known |= {path.rsplit("/", 1)[1][:-4] for path in on_disk}
    spelt_as = {k.encode("utf-8").decode("latin-1").lower(): k for k in known if not k.isascii()}
    counts: dict[str, Counter] = defaultdict(Counter)
    repaired = set()
    for r in used:
        name = nfc(spelt_as.get(r["painting"], r["painting"]))
        if name != r["painting"]:
            repaired.add((r["art_style"], r["painting"]))
        e = " ".join(r["emotion"].strip().lower().replace("_", " ").split())
        counts[f"{r['art_style']}/{name}.jpg"]["pos" if e in POSITIVE else "neg" if e in NEGATIVE else "se"] += 1
    class_keys = {nfc(c["filename"]) for c in classes}
    f["paintings", "annotated in ArtEmis"] = len(counts)
    f["paintings", "listed in classes.csv"] = len(class_keys)
    f["paintings", "names repaired (mojibake / Unicode form)"] = len(repaired)
    f["paintings", "in both CSVs"] = len(class_keys & set(counts))
    f["paintings", "in ArtEmis only"] = len(set(counts) - class_keys)
    f["paintings", "in classes.csv only (no annotations)"] = len(class_keys - set(counts))

    # Path safety and style.
    paintings = sorted(class_keys | set(counts))
    unsafe = [p for p in paintings if p.startswith("/") or ".." in p.split("/")]
    unknown_style = [p for p in paintings if p not in unsafe and p.split("/")[0] not in ERA_OF]
    f["images", "excluded: unsafe path"] = len(unsafe)
    f["images", "excluded: unknown style"] = len(unknown_style)
    kept = [p for p in paintings if p not in unsafe and p not in unknown_style]

    # Labels (unanimous rule) and eras.
    label = {}
    for p in kept:
        c = counts.get(p, Counter())
        label[p] = "positive" if c["pos"] and not c["neg"] else "negative" if c["neg"] and not c["pos"] else ""
    f["labels", "emotion positive"] = sum(v == "positive" for v in label.values())
    f["labels", "emotion negative"] = sum(v == "negative" for v in label.values())
    f["labels", "no emotion: mixed positive and negative"] = sum(
        1 for p in kept if counts.get(p, Counter())["pos"] and counts.get(p, Counter())["neg"])
    f["labels", "no emotion: only 'something else'"] = sum(
        1 for p in kept if p in counts and not counts[p]["pos"] and not counts[p]["neg"])
    f["labels", "no emotion: no annotations"] = sum(1 for p in kept if p not in counts)
    era = {p: ERA_OF[p.split("/")[0]] for p in kept}
    for name in ("Renaissance", "Post-Renaissance", "Modern", "Contemporary"):
        f["labels", f"era {name}"] = sum(v == name for v in era.values())
    f["labels", "no era: style not in the 'chronological' map"] = sum(not v for v in era.values())
    f["labels", "dropped: neither era nor emotion"] = sum(1 for p in kept if not era[p] and not label[p])

    # Images on disk.
    missing = [p for p in kept if p not in on_disk]
    links = [p for p in kept if p in on_disk and os.path.islink(archive / on_disk[p])]
    present = [p for p in kept if p in on_disk and p not in links]
    unreadable = [on_disk[p] for p in present if not decodes(archive / on_disk[p])]
    f["images", "excluded: missing image"] = len(missing)
    f["images", "excluded: path resolves outside archive/"] = len(links)
    f["images", "excluded: unreadable image (zero bytes, truncated, not an image, too large)"] = len(unreadable)
    final = [p for p in present if on_disk[p] not in unreadable]
    # Near-duplicates: the demo's re-scans share classes.csv's phash with their original; nothing else is close.
    phash_of = {nfc(c["filename"]): c["phash"] for c in classes}
    sharing = [n for n in Counter(phash_of[p] for p in final if p in phash_of).values() if n >= 2]
    f["groups", f"near duplicates: paintings joined in {len(sharing)} group(s)"] = sum(sharing)
    f["manifest", "paintings in manifest"] = len(final)
    f["manifest", "with an era (genre task)"] = sum(1 for p in final if era[p])
    f["manifest", "with an emotion (emotion task)"] = sum(1 for p in final if label[p])
    return {"funnel": f, "missing": sorted(missing), "unreadable": sorted(unreadable), "unsafe": sorted(unsafe),
            "unknown_style": sorted(unknown_style), "final": sorted(on_disk[p] for p in final),
            "label": {on_disk[p]: label[p] for p in final}}


@pytest.fixture(scope="module")
def hand(demo_root: Path) -> dict:
    """The hand count of the demo root (module-wide)."""
    return hand_count(demo_root)


def test_hand_count_sees_the_demo_defects(demo_root: Path, hand: dict) -> None:
    """Sanity check of the hand count itself against the generator's own record (demo_truth.csv)."""
    truth = Counter(r["role"] for r in read_rows(demo_root / "demo_truth.csv"))
    assert len(hand["missing"]) == truth["missing_image"] == 2
    assert len(hand["unreadable"]) == truth["zero_bytes"] + truth["truncated"] + truth["not_an_image"] == 3
    assert hand["unsafe"] == ["Baroque/../../../etc/passwd.jpg"]
    assert hand["unknown_style"] == ["Fantasy_Art/anna-weber_dragon-1990.jpg"]
    assert hand["funnel"]["paintings", "names repaired (mojibake / Unicode form)"] > 0
    assert hand["funnel"]["annotations", "dropped: exact duplicate rows"] > 0


def test_funnel_matches_hand_count(demo_prepared: tuple[PrepareResult, Path], hand: dict) -> None:
    """Every funnel line (except the split sizes, checked below) equals the hand count, and there are no others."""
    result, _ = demo_prepared
    funnel = result.funnel
    assert list(funnel.columns) == ["stage", "step", "count"]
    actual = {(s, st): int(c) for s, st, c in funnel.itertuples(index=False) if not st.startswith("split ")}
    assert len(actual) == len(funnel) - 3  # (stage, step) pairs are unique
    assert actual == hand["funnel"]


def test_funnel_split_lines_match_manifest_file(demo_prepared: tuple[PrepareResult, Path]) -> None:
    """The split lines equal a count of manifest.csv's split column (read with the csv module)."""
    result, out = demo_prepared
    splits = Counter(r["split"] for r in read_rows(out / "manifest.csv"))
    funnel = {st: int(c) for _, st, c in result.funnel.itertuples(index=False)}
    assert {s: funnel[f"split {s}"] for s in ("train", "val", "test")} == {s: splits[s] for s in ("train", "val", "test")}
    assert sum(splits.values()) == funnel["paintings in manifest"]


def test_report_and_manifest_match_hand_count(demo_prepared: tuple[PrepareResult, Path], hand: dict) -> None:
    """The excluded paths, manifest rows and labels agree with the hand count."""
    result, out = demo_prepared
    report = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))
    assert report["excluded"]["missing_image"] == hand["missing"]
    assert report["excluded"]["unreadable_image"] == hand["unreadable"]
    assert report["excluded"]["unsafe_path"] == hand["unsafe"]
    assert report["excluded"]["unknown_style"] == hand["unknown_style"]
    rows = read_rows(out / "manifest.csv")
    assert sorted(r["image_path"] for r in rows) == hand["final"]
    assert {r["image_path"]: r["emotion"] for r in rows} == hand["label"]
    assert report["funnel"] == result.funnel.to_dict(orient="records")


# --- the command line ------------------------------------------------------------------------------

def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m artlib ARGS`` in a subprocess (artlib importable via PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTLIB_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "artlib", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_prepare_writes_outputs(demo_root: Path, hand: dict, tmp_path: Path) -> None:
    """`python -m artlib prepare --data-root DEMO --out TMP` exits 0 and writes the manifest and report."""
    out = tmp_path / "run"
    proc = run_cli("prepare", "--data-root", str(demo_root), "--out", str(out), "--quiet", "--workers", "1",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "manifest.csv").is_file() and (out / "prepare_report.json").is_file()
    rows = read_rows(out / "manifest.csv")
    assert len(rows) == hand["funnel"]["manifest", "paintings in manifest"]
    assert f"({len(rows)} paintings)" in proc.stdout
    report = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))
    assert report["config"]["label_rule"] == "unanimous" and report["config"]["seed"] == 0
    assert "Traceback" not in proc.stderr


def test_cli_prepare_options_reach_the_report(demo_root: Path, tmp_path: Path) -> None:
    """--label-rule, --era-map, --seed and --splits are recorded in the report; --export-layout links files."""
    out, layout = tmp_path / "run", tmp_path / "layout"
    proc = run_cli("prepare", "--data-root", str(demo_root), "--out", str(out), "--label-rule", "majority",
                   "--era-map", "seed", "--seed", "3", "--splits", "80/10/10", "--no-check-images", "--quiet",
                   "--export-layout", str(layout), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))["config"]
    assert (config["label_rule"], config["era_map"], config["seed"]) == ("majority", "seed", 3)
    assert config["fractions"] == pytest.approx([0.8, 0.1, 0.1])
    assert sorted(p.name for p in layout.iterdir()) == [".artlib-layout", "emotion", "genre"]


@pytest.mark.parametrize("case", ["no-such-dir", "empty-dir"])
def test_cli_bad_data_root(tmp_path: Path, case: str) -> None:
    """A bad data root exits 2 with one clear 'error:' line naming it, and no traceback."""
    root = tmp_path / case
    if case == "empty-dir":
        root.mkdir()
    proc = run_cli("prepare", "--data-root", str(root), "--out", str(tmp_path / "out"), "--quiet", cwd=tmp_path)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert str(root) in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out" / "manifest.csv").exists()
