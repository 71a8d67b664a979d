"""Issue #19: what a new user with messy data types, table-driven through the command line.

Every case builds its scenario in a temporary folder from the small demo data (copied, never
shared), runs ``artlib.cli.main`` in-process with that folder's ``cwd/`` as current directory, and
asserts: the exit status, no traceback, the file / row / option named in the output, and that every
file that existed before has the same SHA-256 afterwards unless the command's purpose was to replace
it (the case lists those). No case trains a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import pytest

import artlib.atomic
from artlib import cli, rundir
from artlib.data.manifest import read_manifest
from conftest import ARTEMIS_CSV, CLASSES_CSV, write_jpeg

Setup = Callable[[Path, pytest.MonkeyPatch], list[str]]


@dataclass
class Case:
    """One bad (or awkward but valid) input: how to build it, and what must happen."""

    id: str
    setup: Setup
    ok: bool
    named: tuple[str, ...] = ()
    """Strings the output must contain; ``{tmp}``, ``{root}``, ``{run}`` and ``{cwd}`` are filled in."""
    changes: tuple[str, ...] = ()
    """Glob patterns (relative to the case folder) of files the command exists to replace or move."""
    check: Callable[[Path, str], None] | None = field(default=None, repr=False)


# --- building blocks -------------------------------------------------------------------------

_BASE: dict[str, Path] = {}


@pytest.fixture(scope="module", autouse=True)
def base(tiny_data: tuple[Path, Path]) -> tuple[Path, Path]:
    """The tiny demo data root and its prepared run files (made once per session by conftest), for the builders."""
    _BASE.update(root=tiny_data[0], prepared=tiny_data[1])
    return tiny_data


def root(tmp: Path) -> Path:
    """A private copy of the demo data root at tmp/root."""
    dest = tmp / "root"
    if not dest.exists():
        shutil.copytree(_BASE["root"], dest, symlinks=True)
    return dest


def run(tmp: Path) -> Path:
    """A private run directory at tmp/run holding the prepared manifest.csv and prepare_report.json."""
    dest = tmp / "run"
    if not dest.exists():
        dest.mkdir()
        rundir.copy_prepared(_BASE["prepared"], dest)
    return dest


def prep(*extra: str, check_images: bool = False) -> list[str]:
    """``prepare`` of tmp/root into tmp/out (placeholders filled by the runner) with ``extra`` options."""
    argv = ["prepare", "--data-root", "{root}", "--out", "{tmp}/out", "--workers", "1", "--quiet", *extra]
    return argv if check_images else [*argv, "--no-check-images"]


def edit(rel: Path | str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """A mutator of tmp/root that rewrites one file's bytes."""
    def mutate(r: Path) -> None:
        """Apply ``change`` to root/rel."""
        (r / rel).write_bytes(change((r / rel).read_bytes()))
    return mutate


def on_root(mutate: Callable[[Path], None] | None, *extra: str, check_images: bool = False) -> Setup:
    """Setup: copy the root, apply ``mutate`` to it, then run prepare with ``extra`` options."""
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        """Build the case."""
        r = root(tmp)
        if mutate is not None:
            mutate(r)
        return prep(*extra, check_images=check_images)
    return setup


def argv(*args: str, need_root: bool = False, need_run: bool = False,
         then: Callable[[Path], None] | None = None) -> Setup:
    """Setup: optional root / run copies, an optional mutation of the case folder, then ``args``."""
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        """Build the case."""
        if need_root:
            root(tmp)
        if need_run:
            run(tmp)
        if then is not None:
            then(tmp)
        return list(args)
    return setup


A, C = ARTEMIS_CSV, CLASSES_CSV


def replace_bytes(old: bytes, new: bytes, count: int = 1) -> Callable[[bytes], bytes]:
    """A byte edit: replace ``old`` by ``new`` ``count`` times (-1: all)."""
    return lambda data: data.replace(old, new, count)


def header(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    """An edit of the first line only."""
    def change(data: bytes) -> bytes:
        """Replace in the header line."""
        head, rest = data.split(b"\n", 1)
        return head.replace(old, new) + b"\n" + rest
    return change


def reencode(encoding: str) -> Callable[[bytes], bytes]:
    """Re-save a UTF-8 file in ``encoding`` (characters it lacks become '?')."""
    return lambda data: data.decode("utf-8").encode(encoding, errors="replace")


def quote_at_line(line: int, extra: str = "") -> Callable[[bytes], bytes]:
    """Open a quote in the utterance of ``line`` (1-based) and never close it."""
    def change(data: bytes) -> bytes:
        """Insert the stray quote."""
        lines = data.split(b"\n")
        fields = lines[line - 1].split(b",")
        fields[3] = b'"' + fields[3] + extra.encode()
        lines[line - 1] = b",".join(fields)
        return b"\n".join(lines)
    return change


def mk(rel: str, data: bytes | str = b"") -> Callable[[Path], None]:
    """A mutation of the case folder: write a file (folders made)."""
    def mutate(tmp: Path) -> None:
        """Write it."""
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return mutate


def both(*mutations: Callable[[Path], None]) -> Callable[[Path], None]:
    """Several mutations in order."""
    def mutate(tmp: Path) -> None:
        """Apply each."""
        for m in mutations:
            m(tmp)
    return mutate


def remove(rel: str) -> Callable[[Path], None]:
    """A mutation of a root: delete a file or folder."""
    def mutate(r: Path) -> None:
        """Delete it."""
        p = r / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return mutate


def non_utf8_name(r: Path) -> None:
    """Rename one archive image to its cp1252 bytes (a name that is not UTF-8) and name it with an accent in both CSVs."""
    old = next((r / "archive" / "Baroque").glob("*.jpg"))
    stem = old.stem
    new_stem = stem + "-\u00e9t\u00e9"
    os.rename(old, os.fsencode(old.parent) + b"/" + new_stem.encode("cp1252") + b".jpg")
    for rel in (A, C):
        (r / rel).write_bytes((r / rel).read_bytes().replace(stem.encode(), new_stem.encode()))


def symlink_tree_count(folder: Path) -> int:
    """Number of symlinks below ``folder``."""
    return sum(1 for p in folder.rglob("*") if p.is_symlink())


# --- run-directory files -------------------------------------------------------------------------

def fake_stage(tmp: Path, stage: str = "emotion_conv5", seed: int = 0, accuracy: float = 0.6,
               text: str | None = None) -> Path:
    """A finished-looking stage folder with a metrics.json (no model): enough for results and predict."""
    row = {"configuration": 1, "stage": stage, "task": "emotion", "seed": seed, "accuracy": accuracy,
           "f1": 0.5, "n_test": 20, "backbone_weights": "none", "best_epoch": 1, "epochs_run": 1}
    folder = run(tmp) / "stages" / stage / f"seed_{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"result": row}, indent=2) if text is None else text
    (folder / "metrics.json").write_bytes(data.encode("latin-1" if text and "\xff" in text else "utf-8"))
    return folder


def results_csv(body: str) -> Callable[[Path], None]:
    """A mutation of the case folder: a finished stage plus run/results.csv holding ``body``."""
    def mutate(tmp: Path) -> None:
        """Write them."""
        fake_stage(tmp)
        (run(tmp) / "results.csv").write_text(body)
    return mutate


RESULTS_HEADER = "configuration,stage,task,trained_blocks,init_from,seed,accuracy,f1,n_test,best_epoch\n"
RESULTS_ROW = "1,emotion_conv5,emotion,conv5,,0,0.6,0.5,20,1\n"


def aside_kept(original: str) -> Callable[[Path, str], None]:
    """Check: the damaged results.csv lies beside as results.csv.damaged-*, bytes intact, and a valid one replaced it."""
    def check(tmp: Path, out: str) -> None:
        """Look for it."""
        aside = list((tmp / "run").glob("results.csv.damaged-*"))
        assert len(aside) == 1 and aside[0].read_text() == original
    return check


def not_aside(tmp: Path, out: str) -> None:
    """Check: a valid results.csv was not set aside."""
    assert not list((tmp / "run").glob("results.csv.damaged-*"))


def manifest_edit(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """A mutation of the case folder: run/manifest.csv changed after prepare."""
    def mutate(tmp: Path) -> None:
        """Change it."""
        path = run(tmp) / "manifest.csv"
        path.write_bytes(change(path.read_bytes()))
    return mutate


def cut_mid_line(data: bytes) -> bytes:
    """Cut a file in the middle of a line, about half way through."""
    return data[: len(data) // 2 + 7]


def drop_last_row(data: bytes) -> bytes:
    """Remove the last row cleanly (a file that still parses)."""
    return b"\n".join(data.rstrip(b"\n").split(b"\n")[:-1]) + b"\n"


def report_edit(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """A mutation of the case folder: run/prepare_report.json changed."""
    def mutate(tmp: Path) -> None:
        """Change it."""
        path = run(tmp) / "prepare_report.json"
        path.write_bytes(change(path.read_bytes()))
    return mutate


def disk_full(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    """prepare whose writes hit a full disk (fsync fails with ENOSPC, as on a full file system)."""
    root(tmp)

    def fsync(fd: int) -> None:
        """A full disk."""
        raise OSError(28, "No space left on device")

    mp.setattr(artlib.atomic.os, "fsync", fsync)
    return prep()


def relative_prepare(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    """prepare with relative --data-root and --out, typed from the case folder's cwd/."""
    root(tmp)
    return ["prepare", "--data-root", "../root", "--out", "runs/rel", "--workers", "1", "--quiet",
            "--no-check-images"]


def relative_train(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    """train with a relative --run-dir whose manifest was cut: the message names the manifest under cwd/."""
    target = tmp / "cwd" / "runs" / "rel"
    shutil.copytree(run(tmp), target)
    (target / "manifest.csv").write_bytes(cut_mid_line((target / "manifest.csv").read_bytes()))
    return ["train", "--quiet", "emotion_conv5", "--run-dir", "runs/rel"]


def relative_predict(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    """predict with a relative --run-dir that holds no results: the message names the folder under cwd."""
    shutil.copytree(run(tmp), tmp / "cwd" / "runs" / "rel")
    return ["predict", "x.jpg", "--run-dir", "runs/rel"]


def relative_written(tmp: Path, out: str) -> None:
    """Check: a relative --out is relative to the current directory."""
    assert (tmp / "cwd" / "runs" / "rel" / "manifest.csv").is_file()


def refused_early(tmp: Path, out: str) -> None:
    """Check: --export-layout was refused before prepare ran (no manifest written, nothing to undo)."""
    assert not (tmp / "out" / "manifest.csv").exists()


def layout_written(tmp: Path, out: str) -> None:
    """Check: the export exists with its marker and symlinks."""
    assert (tmp / "layout" / ".artlib-layout").is_file() and symlink_tree_count(tmp / "layout") > 0


def demo_written(where: str) -> Callable[[Path, str], None]:
    """Check: a demo root was written at ``where``."""
    def check(tmp: Path, out: str) -> None:
        """Look for it."""
        assert (tmp / where / ".artlib-demo").is_file() and (tmp / where / CLASSES_CSV).is_file()
    return check


def earlier_layout(tmp: Path) -> None:
    """An earlier --export-layout output (with its marker) at tmp/layout."""
    mk("layout/genre/old/x", "old")(tmp)
    mk("layout/.artlib-layout")(tmp)


DEMO = ["--scale", "0.2"]


# --- the table ---------------------------------------------------------------------------------

CASES: list[Case] = [
    # ---- critical: folders deleted (issue list) ----
    Case("export-layout-is-the-data-root", on_root(None, "--export-layout", "{root}"), False,
         ("{root}", "--export-layout"), check=refused_early),
    Case("export-layout-is-the-run-dir", argv(*prep("--export-layout", "{run}"), need_root=True, need_run=True,
                                              then=lambda t: fake_stage(t)), False, ("{run}", "--export-layout")),
    Case("export-layout-is-the-out-folder", on_root(None, "--export-layout", "{tmp}/out"), False,
         ("out", "--export-layout"), check=refused_early),
    Case("export-layout-is-cwd", on_root(None, "--export-layout", "."), False, ("{cwd}", "--export-layout"),
         check=refused_early),
    Case("export-layout-is-above-cwd", on_root(None, "--export-layout", ".."), False, ("--export-layout",),
         check=refused_early),
    Case("export-layout-is-the-archive", on_root(None, "--export-layout", "{root}/archive"), False,
         ("archive", "--export-layout"), check=refused_early),
    Case("export-layout-is-a-user-folder", argv(*prep("--export-layout", "{tmp}/mine"), need_root=True,
                                                then=mk("mine/thesis.tex", "\\documentclass{article}")), False,
         ("mine", "--export-layout"), check=refused_early),
    Case("export-layout-is-a-file", argv(*prep("--export-layout", "{tmp}/notes.txt"), need_root=True,
                                         then=mk("notes.txt", "mine")), False, ("notes.txt", "--export-layout")),
    Case("export-layout-into-empty-folder", argv(*prep("--export-layout", "{tmp}/layout"), need_root=True,
                                                 then=lambda t: (t / "layout").mkdir()), True, (),
         check=layout_written),
    Case("export-layout-replaces-earlier-export", argv(*prep("--export-layout", "{tmp}/layout"), need_root=True,
                                                       then=earlier_layout), True, (), ("layout/**",),
         check=layout_written),
    Case("export-layout-new-folder", on_root(None, "--export-layout", "{tmp}/layout"), True, (),
         check=layout_written),
    Case("demo-data-into-user-folder", argv("demo-data", "{tmp}/mine", *DEMO, then=mk("mine/thesis.tex", "x")),
         False, ("mine",)),
    Case("demo-data-into-cwd", argv("demo-data", ".", *DEMO), False, ("{cwd}",)),
    Case("demo-data-above-cwd", argv("demo-data", "..", *DEMO), False, ("{tmp}",)),
    Case("demo-data-onto-a-file", argv("demo-data", "{tmp}/notes.txt", *DEMO, then=mk("notes.txt", "x")), False,
         ("notes.txt",)),
    Case("demo-data-over-a-demo-data-root", argv("demo-data", "{root}", *DEMO, need_root=True), True, (),
         ("root/**",), check=demo_written("root")),
    Case("demo-data-into-a-real-data-root", argv("demo-data", "{root}", *DEMO, need_root=True,
                                                 then=lambda t: (t / "root" / ".artlib-demo").unlink()), False,
         ("{root}",)),
    Case("demo-data-into-the-run-dir", argv("demo-data", "{run}", *DEMO, need_run=True), False, ("{run}",)),
    Case("demo-data-new-folder", argv("demo-data", "{tmp}/demo", *DEMO), True, (), check=demo_written("demo")),
    Case("demo-data-empty-folder", argv("demo-data", "{tmp}/demo", *DEMO, then=lambda t: (t / "demo").mkdir()),
         True, (), check=demo_written("demo")),
    Case("demo-data-replaces-earlier-demo", argv("demo-data", "{tmp}/demo", *DEMO,
                                                 then=both(mk("demo/.artlib-demo", "0\n"), mk("demo/old.csv", "x"))),
         True, (), ("demo/**",), check=demo_written("demo")),
    Case("demo-data-scale-too-small", argv("demo-data", "{tmp}/demo", "--scale", "0.01"), False, ("scale",)),
    Case("demo-data-relative-to-cwd", argv("demo-data", "mydemo", *DEMO), True, (),
         check=demo_written("cwd/mydemo")),
    # ---- high: a manifest changed after prepare ----
    Case("manifest-cut-mid-line", argv("train", "--quiet", "emotion_conv5", "--run-dir", "{run}",
                                       then=manifest_edit(cut_mid_line)), False, ("manifest.csv", "prepare")),
    Case("manifest-row-deleted", argv("train", "--quiet", "emotion_conv5", "--run-dir", "{run}",
                                      then=manifest_edit(drop_last_row)), False, ("manifest.csv", "prepare")),
    Case("manifest-value-edited", argv("train", "--quiet", "emotion_conv5", "--run-dir", "{run}",
                                       then=manifest_edit(replace_bytes(b",positive,", b",negative,"))), False,
         ("manifest.csv",)),
    Case("manifest-empty", argv("train", "--quiet", "emotion_conv5", "--run-dir", "{run}", then=manifest_edit(lambda d: b"")),
         False, ("manifest.csv",)),
    Case("manifest-missing", argv("train", "--quiet", "emotion_conv5", "--run-dir", "{run}",
                                  then=lambda t: (run(t) / "manifest.csv").unlink()), False, ("manifest.csv",)),
    Case("manifest-no-split-column-old-report", argv(
        "train", "emotion_conv5", "--run-dir", "{run}",
        then=both(manifest_edit(header(b",split,", b",fold,")),
                  report_edit(lambda d: json.dumps({k: v for k, v in json.loads(d).items() if k != "manifest"})
                              .encode()))), False, ("manifest.csv", "split")),
    Case("manifest-bad-split-old-report", argv(
        "train", "emotion_conv5", "--run-dir", "{run}",
        then=both(manifest_edit(replace_bytes(b",train,", b",training,")),
                  report_edit(lambda d: json.dumps({k: v for k, v in json.loads(d).items() if k != "manifest"})
                              .encode()))), False, ("manifest.csv", "line")),
    Case("prepare-report-truncated", argv("train", "--quiet", "emotion_conv5", "--run-dir", "{run}",
                                          then=report_edit(cut_mid_line)), False, ("prepare_report.json",)),
    Case("prepare-report-missing", argv("train", "--quiet", "emotion_conv5", "--run-dir", "{run}",
                                        then=lambda t: (run(t) / "prepare_report.json").unlink()), False,
         ("prepare_report.json",)),
    # ---- medium: results.csv damaged ----
    Case("results-cut-after-seed", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}",
                                        then=results_csv(RESULTS_HEADER + "1,emotion_conv5,emotion,conv5,,0,0.53\n")),
         False, ("model.pt",), ("run/results.csv",), check=aside_kept(RESULTS_HEADER + "1,emotion_conv5,emotion,conv5,,"
                                                                       "0,0.53\n")),
    Case("results-accuracy-not-a-number", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}",
                                               then=results_csv(RESULTS_HEADER + RESULTS_ROW.replace("0.6", "high"))),
         False, ("model.pt",), ("run/results.csv",),
         check=aside_kept(RESULTS_HEADER + RESULTS_ROW.replace("0.6", "high"))),
    Case("results-seed-not-an-integer", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}",
                                             then=results_csv(RESULTS_HEADER + RESULTS_ROW.replace(",0,0.6", ",0.5,0.6"))),
         False, ("model.pt",), ("run/results.csv",),
         check=aside_kept(RESULTS_HEADER + RESULTS_ROW.replace(",0,0.6", ",0.5,0.6"))),
    Case("results-extra-field", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}",
                                     then=results_csv(RESULTS_HEADER + RESULTS_ROW.rstrip() + ",9\n")),
         False, ("model.pt",), ("run/results.csv",), check=aside_kept(RESULTS_HEADER + RESULTS_ROW.rstrip() + ",9\n")),
    Case("results-binary-garbage", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}",
                                        then=results_csv("\x00\x01garbage")), False, ("model.pt",),
         ("run/results.csv",), check=aside_kept("\x00\x01garbage")),
    Case("results-with-split-seed-is-valid", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}",
                                                  then=results_csv(RESULTS_HEADER.rstrip() + ",split_seed\n"
                                                                   + RESULTS_ROW.rstrip() + ",1\n")),
         False, ("model.pt",), check=not_aside),
    Case("results-valid-empty-optional-fields", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}",
                                                     then=results_csv(RESULTS_HEADER + "1,emotion_conv5,emotion,conv5,"
                                                                      ",0,0.6,,20,\n")),
         False, ("model.pt",), check=not_aside),
    Case("metrics-json-truncated", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}", "--stage", "emotion_conv5",
                                        then=lambda t: fake_stage(t, text='{"result": {"stage": "emotion_conv5",\n "ta')),
         False, ("metrics.json",)),
    Case("metrics-json-empty", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}", "--stage", "emotion_conv5",
                                    then=lambda t: fake_stage(t, text="")), False, ("metrics.json",)),
    Case("metrics-json-not-utf8", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}", "--stage", "emotion_conv5",
                                       then=lambda t: fake_stage(t, text="\xff\xfe{")), False, ("metrics.json",)),
    Case("checkpoint-missing", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}", "--stage", "emotion_conv5",
                                    then=lambda t: fake_stage(t)), False, ("model.pt",)),
    Case("checkpoint-garbage", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}", "--stage", "emotion_conv5",
                                    then=lambda t: (fake_stage(t) / "model.pt").write_bytes(b"not a checkpoint")),
         False, ("model.pt",)),
    # ---- medium: tracebacks on a user's mistake ----
    Case("artemis-unterminated-quote", on_root(edit(A, quote_at_line(5))), False,
         ("artemis_dataset_release_v0.csv", "line 5")),
    Case("artemis-unterminated-quote-huge-field", on_root(edit(A, quote_at_line(3, "x" * 140_000))), False,
         ("artemis_dataset_release_v0.csv", "line 3")),
    Case("classes-unterminated-quote", on_root(edit(C, lambda d: d.replace(b"['Baroque']", b"\"['Baroque']", 1))),
         False, ("classes.csv",)),
    Case("artemis-cr-only-line-ends", on_root(edit(A, replace_bytes(b"\n", b"\r", -1))), True),
    Case("classes-cr-only-line-ends", on_root(edit(C, replace_bytes(b"\n", b"\r", -1))), True),
    Case("splits-all-zero", on_root(None, "--splits", "0/0/0"), False, ("--splits",)),
    Case("splits-two-numbers", on_root(None, "--splits", "70/30"), False, ("--splits",)),
    Case("splits-not-numbers", on_root(None, "--splits", "a/b/c"), False, ("--splits",)),
    Case("splits-negative", on_root(None, "--splits", "-10/60/50"), False, ("--splits",)),
    Case("splits-percent-form", on_root(None, "--splits", "80/10/10"), True),
    Case("train-misspelt-stage", argv("train", "--quiet", "emotion_cnov5", "--run-dir", "{run}", need_run=True), False,
         ("emotion_cnov5", "emotion_conv5")),
    Case("train-unknown-stage", argv("train", "--quiet", "vgg16", "--run-dir", "{run}", need_run=True), False, ("vgg16",)),
    Case("train-no-stage", argv("train", "--quiet", "--run-dir", "{run}", need_run=True), False, ("--configuration",)),
    Case("train-bad-configuration", argv("train", "--quiet", "--configuration", "9", "--run-dir", "{run}", need_run=True),
         False, ("--configuration",)),
    Case("train-seeds-not-integers", argv("train", "--quiet", "emotion_conv5", "--seeds", "a", "--run-dir", "{run}",
                                          need_run=True), False, ("--seeds",)),
    Case("train-unknown-device", argv("train", "--quiet", "emotion_conv5", "--device", "tpu", "--run-dir", "{run}",
                                      need_run=True), False, ("device", "tpu")),
    Case("train-unknown-precision", argv("train", "--quiet", "emotion_conv5", "--precision", "fp8", "--run-dir", "{run}",
                                         need_run=True), False, ("--precision",)),
    Case("train-epochs-not-a-number", argv("train", "--quiet", "emotion_conv5", "--epochs", "ten", "--run-dir", "{run}",
                                           need_run=True), False, ("--epochs",)),
    Case("train-unknown-executor", argv("train", "--quiet", "emotion_conv5", "--executor", "slurm", "--run-dir", "{run}",
                                        need_run=True), False, ("--executor",)),
    Case("train-run-dir-without-manifest", argv("train", "--quiet", "emotion_conv5", "--run-dir", "{tmp}/empty-run",
                                                then=lambda t: (t / "empty-run").mkdir()), False,
         ("empty-run", "manifest")),
    Case("predict-unknown-stage", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}", "--stage", "nonsense",
                                       need_run=True), False, ("--stage", "nonsense")),
    Case("predict-misspelt-stage", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}", "--stage", "emotion_con5",
                                        need_run=True), False, ("--stage", "emotion_conv5")),
    Case("predict-genre-stage", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}", "--stage", "genre_conv4",
                                     need_run=True), False, ("genre_conv4",)),
    Case("predict-nothing-trained", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}", need_run=True), False,
         ("results.csv",)),
    Case("predict-stage-not-finished", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}", "--stage",
                                            "emotion_conv5", need_run=True), False, ("emotion_conv5",)),
    Case("predict-seed-not-integer", argv("predict", "{tmp}/x.jpg", "--run-dir", "{run}", "--seed", "x",
                                          need_run=True), False, ("--seed",)),
    # ---- medium: relative paths ----
    Case("relative-out-and-data-root-follow-cwd", relative_prepare, True, (), check=relative_written),
    Case("relative-run-dir-follows-cwd", relative_train, False, ("{cwd}/runs/rel/manifest.csv",)),
    Case("relative-run-dir-named-under-cwd", relative_predict, False, ("{cwd}/runs/rel",)),
    # ---- low: messages that name no file ----
    Case("artemis-duplicated-column", on_root(edit(A, header(b"utterance", b"emotion"))), False,
         ("artemis_dataset_release_v0.csv", "emotion")),
    Case("classes-duplicated-column", on_root(edit(C, header(b"description", b"genre"))), False,
         ("classes.csv", "genre")),
    Case("duplicates-csv-empty", argv(*prep("--duplicates", "{tmp}/dups.csv"), need_root=True,
                                      then=mk("dups.csv", b"")), False, ("dups.csv",)),
    Case("duplicates-csv-cp1252", argv(*prep("--duplicates", "{tmp}/dups.csv"), need_root=True,
                                       then=mk("dups.csv", "path_a,path_b\nBaroque/caf\u00e9.jpg,Baroque/b.jpg\n"
                                               .encode("cp1252"))), True),
    Case("duplicates-csv-wrong-columns", argv(*prep("--duplicates", "{tmp}/dups.csv"), need_root=True,
                                              then=mk("dups.csv", "a,b\n1,2\n")), False, ("dups.csv",)),
    Case("duplicates-csv-unterminated-quote", argv(*prep("--duplicates", "{tmp}/dups.csv"), need_root=True,
                                                   then=mk("dups.csv", 'path_a,path_b\n"Baroque/a.jpg,x\n')),
         False, ("dups.csv",)),
    Case("duplicates-file-missing", argv(*prep("--duplicates", "{tmp}/nope.pkl"), need_root=True), False,
         ("nope.pkl",)),
    Case("duplicates-pickle-garbage", argv(*prep("--duplicates", "{tmp}/dups.pkl"), need_root=True,
                                           then=mk("dups.pkl", b"\x80\x04garbage")), False, ("dups.pkl",)),
    Case("disk-full-while-writing", disk_full, False, ("manifest.csv",)),
    Case("non-utf8-file-name", on_root(non_utf8_name), True, ("archive", "UTF-8")),
    Case("invalid-phash-values", on_root(edit(C, lambda d: d.replace(b",22e0ff0a6fe7a50c,", b",not-a-hash,"))), True,
         ("classes.csv", "phash")),
    # ---- already behaving: a missing or misplaced data root ----
    Case("data-root-missing", argv(*prep()), False, ("{root}",)),
    Case("data-root-is-a-file", argv(*prep(), then=mk("root", "x")), False, ("{root}",)),
    Case("archive-missing", on_root(remove("archive")), False, ("archive",)),
    Case("archive-empty", on_root(both(remove("archive"), lambda r: (r / "archive").mkdir())), False, ("archive",)),
    Case("archive-is-a-file", on_root(both(remove("archive"), lambda r: (r / "archive").write_text("x"))), False,
         ("archive",)),
    Case("archive-one-level-too-deep", on_root(lambda r: (os.rename(r / "archive", r / "wikiart"),
                                                          (r / "archive").mkdir(),
                                                          os.rename(r / "wikiart", r / "archive" / "wikiart"))),
         False, ("archive",)),
    Case("classes-missing", on_root(remove(str(C))), False, ("classes.csv",)),
    Case("artemis-missing", on_root(remove(str(A))), False, ("artemis_dataset_release_v0.csv",)),
    Case("artemis-is-a-folder", on_root(both(remove(str(A)), lambda r: (r / A).mkdir())), False,
         ("artemis_dataset_release_v0.csv",)),
    # ---- already behaving: CSV contents ----
    Case("classes-empty", on_root(edit(C, lambda d: b"")), False, ("classes.csv",)),
    Case("artemis-whitespace-only", on_root(edit(A, lambda d: b"\n  \n")), False, ("artemis_dataset_release_v0.csv",)),
    Case("classes-header-only", on_root(edit(C, lambda d: d.split(b"\n")[0] + b"\n")), False, ("classes.csv",)),
    Case("artemis-header-only", on_root(edit(A, lambda d: d.split(b"\n")[0] + b"\n")), False,
         ("artemis_dataset_release_v0.csv",)),
    Case("artemis-missing-emotion-column", on_root(edit(A, header(b"emotion", b"feeling"))), False,
         ("artemis_dataset_release_v0.csv", "emotion")),
    Case("artemis-misspelt-painting-column", on_root(edit(A, header(b"painting", b"paintng"))), False,
         ("artemis_dataset_release_v0.csv", "paintng")),
    Case("classes-missing-phash-column", on_root(edit(C, header(b"phash", b"hash_p"))), False,
         ("classes.csv", "phash")),
    Case("classes-misspelt-filename-column", on_root(edit(C, header(b"filename", b"file_name"))), False,
         ("classes.csv", "file_name")),
    Case("artemis-semicolons", on_root(edit(A, replace_bytes(b",", b";", -1))), True),
    Case("classes-tabs", on_root(edit(C, lambda d: d.replace(b"', '", b"'|'").replace(b",", b"\t")
                                      .replace(b"'|'", b"', '"))), True),
    Case("artemis-cp1252", on_root(edit(A, reencode("cp1252"))), True),
    Case("classes-cp1252", on_root(edit(C, reencode("cp1252"))), True),
    Case("artemis-utf16-excel", on_root(edit(A, reencode("utf-16"))), True),
    Case("artemis-utf8-bom", on_root(edit(A, lambda d: b"\xef\xbb\xbf" + d)), True),
    Case("artemis-crlf", on_root(edit(A, replace_bytes(b"\n", b"\r\n", -1))), True),
    Case("artemis-binary-garbage", on_root(edit(A, lambda d: bytes(range(256)) * 4)), False,
         ("artemis_dataset_release_v0.csv",)),
    Case("artemis-too-many-fields", on_root(edit(A, lambda d: d.replace(b"\n", b",extra,field\n", 3)
                                                 .replace(b",extra,field\n", b"\n", 2))), False,
         ("artemis_dataset_release_v0.csv", "line 3")),
    Case("artemis-unknown-emotions-only", on_root(edit(A, lambda d: b"\n".join(
        [d.split(b"\n")[0]] + [b"Baroque,x,joy,hi,1"] * 3) + b"\n")), False, ("artemis_dataset_release_v0.csv",)),
    Case("classes-unknown-style", on_root(edit(C, replace_bytes(b"['Baroque']", b"['Vaporwave']", -1))), True),
    Case("artemis-spaces-in-header", on_root(edit(A, header(b",", b" , "))), True),
    # ---- already behaving: images ----
    Case("image-zero-bytes", on_root(lambda r: next((r / "archive" / "Baroque").glob("*.jpg")).write_bytes(b""),
                                     check_images=True), True),
    Case("image-truncated", on_root(lambda r: (lambda p: p.write_bytes(p.read_bytes()[:100]))(
        next((r / "archive" / "Baroque").glob("*.jpg"))), check_images=True), True),
    Case("image-is-html", on_root(lambda r: next((r / "archive" / "Baroque").glob("*.jpg")).write_text("<html>"),
                                  check_images=True), True),
    Case("image-grayscale", on_root(lambda r: write_jpeg(next((r / "archive" / "Baroque").glob("*.jpg")), mode="L"),
                                    check_images=True), True),
    Case("image-cmyk", on_root(lambda r: write_jpeg(next((r / "archive" / "Baroque").glob("*.jpg")), mode="CMYK"),
                               check_images=True), True),
    Case("image-missing", on_root(lambda r: next((r / "archive" / "Baroque").glob("*.jpg")).unlink(),
                                  check_images=True), True),
    # ---- already behaving: options ----
    Case("label-rule-unknown", on_root(None, "--label-rule", "strict"), False, ("--label-rule",)),
    Case("era-map-unknown", on_root(None, "--era-map", "decades"), False, ("--era-map",)),
    Case("group-by-unknown", on_root(None, "--group-by", "museum"), False, ("--group-by",)),
    Case("phash-distance-too-large", on_root(None, "--phash-distance", "99"), False, ("phash_distance",)),
    Case("cap-per-era-zero", on_root(None, "--cap-per-era", "0"), False, ("cap",)),
    Case("seed-not-an-integer", on_root(None, "--seed", "one"), False, ("--seed",)),
    Case("majority-and-seed-era-map", on_root(None, "--label-rule", "majority", "--era-map", "seed"), True),
    Case("out-is-a-file", argv(*prep(), need_root=True, then=mk("out", "x")), False, ("out",)),
    Case("out-below-a-file", argv("prepare", "--data-root", "{root}", "--out", "{tmp}/notes.txt/run", "--quiet",
                                  "--no-check-images", need_root=True, then=mk("notes.txt", "x")), False,
         ("notes.txt",)),
    Case("prepare-into-earlier-run-keeps-stages", argv(*prep(), need_root=True,
                                                       then=lambda t: (shutil.copytree(run(t), t / "out"),
                                                                       fake_stage(t))),
         True, (), ("out/manifest.csv", "out/prepare_report.json", "out/image_checks.csv")),
    Case("unknown-command", argv("trian"), False, ("trian",)),
    Case("prepare-without-out", argv("prepare", "--data-root", "{root}", need_root=True), False, ("--out",)),
]


# --- the runner --------------------------------------------------------------------------------

def snapshot(top: Path) -> dict[str, str]:
    """SHA-256 (or symlink target) of every file below ``top``, keyed by relative path."""
    out = {}
    for folder, dirs, files in os.walk(top):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = Path(folder) / name
            rel = os.fsdecode(os.path.relpath(path, top))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def fill(text: str, tmp: Path) -> str:
    """Fill the placeholders of an argument or expected string."""
    return text.format(tmp=tmp, root=tmp / "root", run=tmp / "run", cwd=tmp / "cwd")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_user_input(case: Case, base: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capfd: pytest.CaptureFixture) -> None:
    """Exit status, no traceback, the file/row/option named, and every earlier file intact unless meant to change."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "thesis.tex").write_text("\\documentclass{article} my thesis\n")
    args = [fill(a, tmp_path) for a in case.setup(tmp_path, monkeypatch)]
    monkeypatch.chdir(cwd)
    before = snapshot(tmp_path)
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse: a usage error
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capfd.readouterr()
    text = out + err
    assert "Traceback" not in text, text
    assert (code == 0) == case.ok, f"exit {code}:\n{text}"
    if not case.ok:
        assert any(line.startswith("error: ") or ": error: " in line for line in err.splitlines()), err
    for expected in case.named:
        assert fill(expected, tmp_path) in text, f"{fill(expected, tmp_path)!r} not named in:\n{text}"
    after = snapshot(tmp_path)
    changed = [rel for rel, digest in before.items() if after.get(rel) != digest
               and not any(fnmatch(rel, pattern) for pattern in case.changes)]
    assert not changed, f"files changed or lost: {changed[:10]}"
    if case.check is not None:
        case.check(tmp_path, text)


def test_the_table_is_large_enough() -> None:
    """The issue asks for at least 90 distinct inputs."""
    assert len(CASES) >= 90 and len({c.id for c in CASES}) == len(CASES)


def test_a_manifest_from_an_older_prepare_still_loads(tmp_path: Path) -> None:
    """A report without the digest (an older prepare): nothing to compare, the manifest loads."""
    run_dir = run(tmp_path)
    report = json.loads((run_dir / "prepare_report.json").read_text())
    del report["manifest"]
    (run_dir / "prepare_report.json").write_text(json.dumps(report))
    (run_dir / "manifest.csv").write_bytes(drop_last_row((run_dir / "manifest.csv").read_bytes()))
    assert len(read_manifest(run_dir / "manifest.csv")) == report["counts"]["manifest_rows"] - 1


def test_make_demo_filters_only_the_kernels_routine_lines(capfd: pytest.CaptureFixture) -> None:
    """The stderr filter around the notebook series drops the two IPKernelApp lines and passes everything else."""
    import subprocess
    import sys

    from artlib.log import filtered_stderr

    noise = ("[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication ...\n"
             "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.\n")
    with filtered_stderr():
        subprocess.run([sys.executable, "-c", f"import sys; sys.stderr.write({noise!r} + 'real problem\\n')"],
                       check=True)
        print("artlib's own line", file=sys.stderr)
    err = capfd.readouterr().err
    assert "real problem" in err and "artlib's own line" in err
    assert "IPKernelApp" not in err
