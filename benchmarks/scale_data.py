"""Real-sized WikiArt/ArtEmis CSVs (80,000 paintings, 454,684 annotations) for timing ``prepare`` at scale."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from artlib import atomic
from artlib.data.labels import ERA_MAPS, NEGATIVE_EMOTIONS, POSITIVE_EMOTIONS, SOMETHING_ELSE
from artlib.data.readers import ARTEMIS_RELPATH, CLASSES_RELPATH


def _mojibake(text: str) -> str:
    """How ArtEmis spells some non-ASCII names: UTF-8 bytes read as Latin-1, then lower-cased."""
    return text.encode("utf-8").decode("latin-1").lower()


def generate_scale_csvs(out: str | os.PathLike[str], n_paintings: int = 80_000, n_rows: int = 454_684,
                        seed: int = 0, touch_images: bool = True) -> dict[str, int]:
    """Real-sized CSVs (and, optionally, empty placeholder image files) to time ``prepare`` at full scale.

    Annotation counts follow ArtEmis's shape (about 5.7 per painting, 62% positive, 26% negative,
    12% something else); images are zero-byte placeholders, so use it with image checks off.
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    styles = np.array(sorted({s for v in ERA_MAPS["chronological"].values() for s in v}))
    style = styles[rng.integers(0, len(styles), n_paintings)]
    artist = np.char.add("artist-", rng.integers(0, 1119, n_paintings).astype(str))
    names = np.char.add(np.char.add(artist, "_painting-"), np.arange(n_paintings).astype(str))
    names = names.astype(object)
    names[::997] = names[::997] + "-joaquín"  # a sprinkle of non-ASCII names …
    artemis_names = names.copy()
    artemis_names[::997] = [_mojibake(n) for n in names[::997]]  # … spelt as mojibake in ArtEmis
    filenames = style.astype(object) + "/" + names + ".jpg"
    phash = np.array([f"{v:016x}" for v in rng.integers(0, 2**62, n_paintings)])
    phash[1::50] = phash[0::50][: len(phash[1::50])]  # near-duplicate pairs
    classes = pd.DataFrame({"filename": filenames, "artist": artist,
                            "genre": [f"['{s.replace('_', ' ')}']" for s in style], "description": names,
                            "phash": phash, "width": 1024, "height": 768, "genre_count": 1, "subset": "train"})
    which = rng.integers(0, n_paintings, n_rows)
    emotions = np.array(POSITIVE_EMOTIONS + NEGATIVE_EMOTIONS + (SOMETHING_ELSE,))
    p = np.array([0.155] * 4 + [0.065] * 4 + [0.12])
    artemis = pd.DataFrame({"art_style": style[which], "painting": artemis_names[which],
                            "emotion": emotions[rng.choice(len(emotions), n_rows, p=p / p.sum())],
                            "utterance": np.char.add("utterance ", np.arange(n_rows).astype(str)), "repetition": 5})
    atomic.write_csv(out / CLASSES_RELPATH, classes)
    atomic.write_csv(out / ARTEMIS_RELPATH, artemis)
    if touch_images:
        for s in styles:
            (out / "archive" / s).mkdir(parents=True, exist_ok=True)
        for f in filenames:
            (out / "archive" / f).touch()
    return {"paintings": n_paintings, "artemis_rows": n_rows}
