"""A synthetic data root in exactly the real formats, for demos and tests.

THE DEMO DATA IS SYNTHETIC: generated pictures, not paintings. It exists so the notebook
series runs anywhere without the 34 GB WikiArt download. It is built to be learnable:

* each era has its own visual signature (Renaissance: warm smooth gradient with a central
  figure; Post-Renaissance: dark ground with one bright light; Modern: many small saturated
  strokes; Contemporary: a few large flat colour fields), with a hue shift per style;
* emotion shows in the image (positive: brighter and warmer; negative: darker and cooler),
  with era-dependent positive rates;
* each painting has a *top emotion* among ArtEmis's nine, from its polarity (one of the four
  positive or four negative emotions; "something else" for paintings annotated only so), shown as
  a coloured disc in the centre of the picture (one hue per emotion, stronger with intensity:
  the centre survives the square crop), so a nine-emotion model has something to learn;
* 5–8 annotations per painting (ArtEmis has at least 5) exercise every label case: unanimous,
  mixed with a majority, ties, only "something else"; the top emotion takes 30–90% of the
  votes of its polarity, so some paintings have a > 50% majority emotion and some do not;
* it carries the real data's awkward cases: mojibake and NFD names, near-duplicates
  sharing a phash, grayscale/CMYK/large JPEGs, paintings present in one CSV only, and a few
  broken entries (missing, zero-byte, truncated, not-an-image, unknown style, unsafe path).
"""

from __future__ import annotations

import logging
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from artlib import atomic
from artlib.data.labels import ERA_MAPS, NEGATIVE_EMOTIONS, POSITIVE_EMOTIONS, SOMETHING_ELSE
from artlib.data.readers import ARTEMIS_RELPATH, CLASSES_RELPATH

log = logging.getLogger(__name__)

DEMO_VERSION = "5"
"""Bump when the generator's output changes, so stale demo roots are regenerated."""

POSITIVE_RATE = {"Renaissance": 0.55, "Post-Renaissance": 0.40, "Modern": 0.70, "Contemporary": 0.60}
PAINTINGS_PER_ERA = {"Renaissance": 80, "Post-Renaissance": 78, "Modern": 78, "Contemporary": 80}
PATTERN_RATES = {"unanimous": 0.58, "majority": 0.22, "tie": 0.10, "only_something_else": 0.10}

_ACCENTED_ARTISTS = ("joaquín-sorolla", "zdzisław-beksiński", "józef-mehoffer", "édouard-vuillard", "mikalojus-čiurlionis")
_WORDS = ("garden", "portrait", "river", "evening", "madonna", "harbour", "still-life", "storm", "dancers",
          "mountain", "window", "bathers", "city", "lament", "feast", "night", "composition", "field", "woman",
          "boats", "saint", "forest", "study", "market", "sea", "interior", "flowers", "ruins", "sunrise", "crowd")
_UTTER_POS = ("The warm light makes me feel calm", "Bright colours that cheer me up", "It looks like a happy day",
              "The scene is peaceful and lovely", "Such lively joyful movement")
_UTTER_NEG = ("The dark tones feel heavy and sad", "Something threatening in the shadows", "Cold and lonely",
              "The figures look afraid", "It makes me uneasy")
_UTTER_SE = ("I am not sure what to feel", "It reminds me of something", "Hard to say")


@dataclass(frozen=True)
class DemoSpec:
    """Size and seed of a generated demo root."""

    seed: int = 7
    scale: float = 1.0  # multiply the number of paintings per era
    min_side: int = 120
    max_side: int = 256
    large_side: int = 2400  # one painting this large (longest side), to exercise draft decoding


def _slug(rng: np.random.Generator, n: int) -> str:
    """A WikiArt-like title slug of n random words."""
    return "-".join(rng.choice(_WORDS, size=n, replace=False))


def _style_tint(style: str) -> np.ndarray:
    """A small deterministic colour shift per style, so styles of one era differ a little."""
    h = sum(ord(c) * (i + 1) for i, c in enumerate(style))
    return np.array([(h % 31) - 15, (h // 31 % 31) - 15, (h // 961 % 31) - 15], dtype=np.float32)


EMOTION_HUES = {"amusement": (250, 210, 0), "awe": (0, 210, 250), "contentment": (90, 220, 90),
                "excitement": (250, 60, 200), "anger": (210, 0, 0), "disgust": (120, 130, 0), "fear": (90, 0, 150),
                "sadness": (0, 50, 170), SOMETHING_ELSE: (140, 140, 140)}
"""The colour of each top emotion's centre disc in the demo pictures."""


def _emotion_disc(img: np.ndarray, top_emotion: str, intensity: float) -> np.ndarray:
    """Blend a disc of the top emotion's hue into the picture's centre (radius 18% of the shorter side)."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    disc = (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) <= (0.18 * min(h, w)) ** 2)[..., None]
    alpha = 0.45 + 0.4 * intensity
    return np.where(disc, (1 - alpha) * img + alpha * np.asarray(EMOTION_HUES[top_emotion], np.float32), img)


def _draw(era: str, style: str, emotion: str, intensity: float, w: int, h: int, rng: np.random.Generator,
          top_emotion: str = SOMETHING_ELSE) -> np.ndarray:
    """One synthetic painting as an h×w×3 uint8 array, its era, emotion and top emotion visible."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= max(h - 1, 1)
    xx /= max(w - 1, 1)
    img = np.zeros((h, w, 3), np.float32)
    if era == "Renaissance":
        top, bottom = np.array([150, 112, 60]), np.array([70, 48, 26])
        img[:] = top * (1 - yy[..., None]) + bottom * yy[..., None]
        cy, cx = 0.55 + rng.normal(0, 0.04), 0.5 + rng.normal(0, 0.04)
        r = ((yy - cy) / 0.30) ** 2 + ((xx - cx) / 0.18) ** 2
        figure = np.clip(1.5 - r, 0, 1)[..., None]
        img = img * (1 - figure) + np.array([196, 130, 96]) * figure
    elif era == "Post-Renaissance":
        img[:] = np.array([34, 28, 24])
        cy, cx = rng.uniform(0.2, 0.45), rng.choice([rng.uniform(0.15, 0.35), rng.uniform(0.65, 0.85)])
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        light = np.exp(-d2 / 0.02)[..., None]
        img = img + np.array([210, 170, 120]) * light
        img += 18 * np.sin(12 * (xx + yy))[..., None]
    elif era == "Modern":
        img[:] = rng.uniform(60, 160, size=3)
        palette = np.array([[230, 200, 40], [40, 90, 200], [200, 50, 40], [60, 170, 80], [240, 140, 30], [140, 60, 170]])
        for _ in range(int(w * h / 180)):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            ry, rx = rng.integers(2, 5), rng.integers(4, 10)
            ys, xs = slice(max(0, y0 - ry), min(h, y0 + ry)), slice(max(0, x0 - rx), min(w, x0 + rx))
            img[ys, xs] = img[ys, xs] * 0.3 + palette[rng.integers(len(palette))] * 0.7
    else:  # Contemporary
        img[:] = rng.choice([[235, 230, 220], [30, 30, 40], [200, 40, 40]])
        for _ in range(rng.integers(2, 5)):
            y0, x0 = rng.uniform(0, 0.6), rng.uniform(0, 0.6)
            y1, x1 = y0 + rng.uniform(0.2, 0.4), x0 + rng.uniform(0.2, 0.4)
            mask = ((yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1))[..., None]
            color = rng.choice([[220, 30, 30], [20, 60, 200], [250, 210, 20], [20, 20, 20], [240, 240, 240]])
            img = np.where(mask, np.asarray(color, np.float32), img)
    img += _style_tint(style)
    img *= rng.uniform(0.8, 1.2)  # lighting that has nothing to do with emotion: brightness alone is not enough
    if emotion == "positive":
        img = img * (1 + 0.30 * intensity) + intensity * np.array([40, 25, -25])
    elif emotion == "negative":
        img = img * (1 - 0.35 * intensity) + intensity * np.array([-20, -5, 30])
    img = _emotion_disc(img, top_emotion, intensity)
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _votes(top: str, pool: tuple[str, ...], k: int, dominance: float, rng: np.random.Generator) -> list[str]:
    """k votes of one polarity: about ``dominance`` of them for the top emotion, the rest spread over the pool."""
    if k <= 0:
        return []
    n_top = int(np.clip(round(dominance * k), 1, k)) if top in pool else 0
    return [top] * n_top + [str(e) for e in rng.choice(pool, size=k - n_top)]


def _annotations(true_emotion: str, pattern: str, rng: np.random.Generator, top: str = "",
                 dominance: float = 0.6) -> list[str]:
    """5–8 ArtEmis emotion strings for one painting following a label pattern and its top emotion."""
    n = int(rng.integers(5, 9))
    same_pool, other_pool = (POSITIVE_EMOTIONS, NEGATIVE_EMOTIONS) if true_emotion == "positive" else \
        (NEGATIVE_EMOTIONS, POSITIVE_EMOTIONS)
    if pattern == "unanimous":
        k_se = int(rng.integers(0, 2))
        out = _votes(top, same_pool, n - k_se, dominance, rng) + [SOMETHING_ELSE] * k_se
    elif pattern == "majority":
        k_other = int(rng.integers(1, max(2, (n - 1) // 2)))
        out = _votes(top, same_pool, n - k_other, dominance, rng) + _votes("", other_pool, k_other, 0, rng)
    elif pattern == "tie":
        k = max(1, (n - 1) // 2)
        out = _votes(top, same_pool, k, dominance, rng) + _votes("", other_pool, k, 0, rng) + \
            [SOMETHING_ELSE] * (n - 2 * k)
    else:
        out = [SOMETHING_ELSE] * n
    return [str(e) for e in rng.permutation(out)]


def _mojibake(text: str) -> str:
    """How ArtEmis spells some non-ASCII names: UTF-8 bytes read as Latin-1, then lower-cased."""
    return text.encode("utf-8").decode("latin-1").lower()


def _artists(rng: np.random.Generator) -> dict[str, list[str]]:
    """Three made-up artist names per style."""
    firsts = ["anna", "pierre", "ivan", "maria", "luca", "hans", "yoko", "carlos", "ines", "tomas"]
    lasts = ["moretti", "weber", "novak", "silva", "berg", "dubois", "tanaka", "lind", "costa"]
    return {s: [f"{a}-{b}" for a, b in zip(rng.choice(firsts, 3), rng.choice(lasts, 3))]
            for styles in ERA_MAPS["chronological"].values() for s in styles}


def _plan(spec: DemoSpec, rng: np.random.Generator) -> pd.DataFrame:
    """One row per painting: era, style, artist, name, emotion, label pattern, and its role in the demo."""
    artists = _artists(rng)
    paintings: list[dict] = []
    for era, n_era in PAINTINGS_PER_ERA.items():
        styles = ERA_MAPS["chronological"][era]
        for i in range(int(round(n_era * spec.scale))):
            style = styles[i % len(styles)]
            artist = str(rng.choice(artists[style]))
            if i % 23 == 5:
                artist = _ACCENTED_ARTISTS[(i // 23) % len(_ACCENTED_ARTISTS)]
            emotion = "positive" if rng.random() < POSITIVE_RATE[era] else "negative"
            pattern = str(rng.choice(list(PATTERN_RATES), p=list(PATTERN_RATES.values())))
            name = f"{artist}_{_slug(rng, 2)}-{int(rng.integers(1400, 2020))}"
            pool = POSITIVE_EMOTIONS if emotion == "positive" else NEGATIVE_EMOTIONS
            top = SOMETHING_ELSE if pattern == "only_something_else" else str(rng.choice(pool))
            paintings.append(dict(era=era, style=style, artist=artist, painting=name, emotion=emotion,
                                  pattern=pattern, intensity=float(rng.uniform(0.15, 0.8)),
                                  phash=f"{int(rng.integers(0, 2**62)):016x}", top_emotion=top,
                                  dominance=float(rng.uniform(0.3, 0.9))))
    frame = pd.DataFrame(paintings).drop_duplicates("painting").reset_index(drop=True)
    if len(frame) < 60:
        raise ValueError(f"DemoSpec.scale={spec.scale} gives {len(frame)} paintings; at least 60 are needed for every case")
    return _assign_roles(frame, rng)


def _assign_roles(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Most paintings are in both CSVs; some in one only; a few broken on purpose; some gray, CMYK, huge, NFD."""
    n = len(frame)
    role = np.full(n, "both", dtype=object)
    idx = rng.permutation(n)
    role[idx[:14]] = "classes_only"
    role[idx[14:19]] = "artemis_only"
    for j, defect in enumerate(["missing_image", "missing_image", "zero_bytes", "truncated", "not_an_image"]):
        role[idx[19 + j]] = defect
    frame["role"] = role
    frame["mode"] = "RGB"
    frame.loc[idx[30:36], "mode"] = "L"
    frame.loc[idx[36:40], "mode"] = "CMYK"
    frame["large"] = False
    frame.loc[idx[40], "large"] = True
    frame["nfd_on_disk"] = False
    accented = frame.index[~frame["painting"].map(str.isascii)]
    frame.loc[accented[::2], "nfd_on_disk"] = True
    return frame


class _Writer:
    """Writes the planned paintings' files and collects both CSVs' rows, in one seeded order."""

    def __init__(self, root: Path, spec: DemoSpec, rng: np.random.Generator):
        self.root, self.spec, self.rng = root, spec, rng
        self.archive = root / "archive"
        self.classes: list[dict] = []
        self.artemis: list[dict] = []

    def _image(self, p: pd.Series, path: Path) -> tuple[int, int]:
        """Draw the painting at a random size and save it (or its deliberate defect); returns (w, h)."""
        spec, rng = self.spec, self.rng
        side = spec.large_side if p["large"] else int(rng.integers(spec.min_side + 20, spec.max_side + 1))
        aspect = float(rng.uniform(0.65, 1.5))
        w, h = (side, max(spec.min_side, int(side / aspect))) if aspect >= 1 else \
            (max(spec.min_side, int(side * aspect)), side)
        if p["role"] == "missing_image":
            return w, h
        im = Image.fromarray(_draw(p["era"], p["style"], p["emotion"], p["intensity"], w, h, rng, p["top_emotion"]))
        (im.convert(p["mode"]) if p["mode"] != "RGB" else im).save(path, quality=88)
        if p["role"] == "zero_bytes":
            path.write_bytes(b"")
        elif p["role"] == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        elif p["role"] == "not_an_image":
            path.write_text("<html>403 Forbidden</html>\n")
        return w, h

    def painting(self, k: int, p: pd.Series) -> None:
        """One planned painting: its file, its classes.csv row and its ArtEmis annotations (per its role)."""
        rng = self.rng
        (self.archive / p["style"]).mkdir(parents=True, exist_ok=True)
        disk_name = unicodedata.normalize("NFD" if p["nfd_on_disk"] else "NFC", p["painting"]) + ".jpg"
        w, h = self._image(p, self.archive / p["style"] / disk_name)
        genres = [p["style"].replace("_", " ")]
        if k % 17 == 3:  # a few paintings list a second style, as the real genre column does
            others = [s for s in ERA_MAPS["chronological"][p["era"]] if s != p["style"]]
            genres.append(str(rng.choice(others)).replace("_", " "))
        if p["role"] != "artemis_only":
            self.classes.append(dict(filename=f"{p['style']}/{p['painting']}.jpg", artist=p["artist"], genre=str(genres),
                                     description=p["painting"].split("_", 1)[1], phash=p["phash"], width=w, height=h,
                                     genre_count=len(genres),
                                     subset=str(rng.choice(["train", "test", "uncertain artist"], p=[0.7, 0.25, 0.05]))))
        if p["role"] != "classes_only":
            emotions = _annotations(p["emotion"], p["pattern"], rng, p["top_emotion"], p["dominance"])
            ae_name = _mojibake(p["painting"]) if not p["painting"].isascii() and k % 2 == 0 else p["painting"]
            for j, e in enumerate(emotions):
                pool = _UTTER_SE if e == SOMETHING_ELSE else (_UTTER_POS if e in POSITIVE_EMOTIONS else _UTTER_NEG)
                self.artemis.append(dict(art_style=p["style"], painting=ae_name, emotion=e,
                                         utterance=f"{rng.choice(pool)} (annotator {j + 1})", repetition=len(emotions)))
            if k % 151 == 7:  # the same annotation twice, as exports sometimes repeat a row
                self.artemis.append(dict(self.artemis[-1]))

    def near_duplicates(self, frame: pd.DataFrame) -> int:
        """Re-scans of 12 paintings under another name (cropped, re-encoded), with the same phash."""
        base = frame[(frame["role"] == "both")].sample(n=12, random_state=self.spec.seed)
        for _, p in base.iterrows():
            form = "NFD" if p["nfd_on_disk"] else "NFC"
            src = next((self.archive / p["style"]).glob(unicodedata.normalize(form, p["painting"]) + ".jpg"))
            im = Image.open(src).convert("RGB")
            im = im.crop((2, 2, im.width - 3, im.height - 3))
            dup = f"{p['painting']}-1"
            im.save(self.archive / p["style"] / f"{dup}.jpg", quality=80)
            self.classes.append(dict(filename=f"{p['style']}/{dup}.jpg", artist=p["artist"],
                                     genre=str([p["style"].replace("_", " ")]), description=dup.split("_", 1)[1],
                                     phash=p["phash"], width=im.width, height=im.height, genre_count=1, subset="train"))
            for j, e in enumerate(_annotations(p["emotion"], "unanimous", self.rng, p["top_emotion"], p["dominance"])):
                self.artemis.append(dict(art_style=p["style"], painting=dup, emotion=e,
                                         utterance=f"Same as the other version (annotator {j + 1})", repetition=5))
        return len(base)

    def untrusted_entries(self) -> None:
        """Entries no loader should trust: an unknown style, a path escaping the archive."""
        (self.archive / "Fantasy_Art").mkdir()
        Image.fromarray(_draw("Modern", "Fantasy_Art", "positive", 0.8, 150, 150, self.rng)).save(
            self.archive / "Fantasy_Art" / "anna-weber_dragon-1990.jpg")
        self.classes.append(dict(filename="Fantasy_Art/anna-weber_dragon-1990.jpg", artist="anna-weber",
                                 genre="['Fantasy Art']", description="dragon-1990", phash="ffffffffffffffff",
                                 width=150, height=150, genre_count=1, subset="train"))
        for e in ("awe", "awe", "contentment"):
            self.artemis.append(dict(art_style="Fantasy_Art", painting="anna-weber_dragon-1990", emotion=e,
                                     utterance=f"A dragon ({len(self.artemis)})", repetition=3))
            self.artemis.append(dict(art_style="Baroque", painting="../../../etc/passwd", emotion=e,
                                     utterance=f"Not a painting ({len(self.artemis)})", repetition=3))

    def finish(self, frame: pd.DataFrame) -> tuple[int, int]:
        """Write both CSVs, the ground truth and the markers; returns (classes rows, ArtEmis rows)."""
        classes = pd.DataFrame(self.classes, columns=["filename", "artist", "genre", "description", "phash", "width",
                                                      "height", "genre_count", "subset"])
        artemis = pd.DataFrame(self.artemis, columns=["art_style", "painting", "emotion", "utterance", "repetition"])
        atomic.write_csv(self.root / CLASSES_RELPATH, classes)
        atomic.write_csv(self.root / ARTEMIS_RELPATH, artemis)
        frame.drop(columns=["large"]).to_csv(self.root / "demo_truth.csv", index=False)
        (self.root / "README.md").write_text(
            "# artlib demo data — SYNTHETIC\n\nGenerated pictures in the real WikiArt/ArtEmis formats, made by "
            "`python -m artlib demo-data`. They are not paintings; see artlib/data/demo.py for how they are built.\n")
        (self.root / ".artlib-demo").write_text(DEMO_VERSION + "\n")
        return len(classes), len(artemis)


def generate(out: str | os.PathLike[str], spec: DemoSpec = DemoSpec()) -> dict[str, int]:
    """Write a demo data root (archive/, data_gen/classes.csv, data_em/artemis…csv) into ``out``."""
    rng = np.random.default_rng(spec.seed)
    frame = _plan(spec, rng)
    from artlib.paths import repo_root

    with atomic.atomic_dir(Path(out), "demo", "the demo data folder (demo-data OUT)", protect=(repo_root(),)) as tmp:
        writer = _Writer(tmp, spec, rng)
        for k, p in frame.iterrows():
            writer.painting(int(k), p)
        n_dups = writer.near_duplicates(frame)
        writer.untrusted_entries()
        n_classes, n_artemis = writer.finish(frame)
    return {"paintings": len(frame) + n_dups + 1, "classes_rows": n_classes, "artemis_rows": n_artemis}


def is_demo_root(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds a complete demo root of the current generator version."""
    marker = Path(path) / ".artlib-demo"
    return marker.is_file() and marker.read_text().strip() == DEMO_VERSION


def ensure_demo_data(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` holding the demo data, generating it (atomically, under a lock) if absent or stale."""
    from filelock import FileLock

    path = Path(path)
    if is_demo_root(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not is_demo_root(path):
            log.info("Generating the synthetic demo data in %s …", path)
            generate(path)
    return path
